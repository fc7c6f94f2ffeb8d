"""Signals for 32-bit programs: the ia32 signal frames (sigframe_ia32 for plain handlers and
rt_sigframe_ia32 for SA_SIGINFO ones), sigreturn and rt_sigreturn through int 0x80, compat_siginfo_t,
the old i386 signal calls, waitid's 32-bit siginfo, synchronous signals, restarting an interrupted
int 0x80, and the alternate signal stack (for both ABIs).

Every program is built with `gcc -m32 -static` (and, where it means the same on x86-64, without -m32
too) and run natively and under run-elf: stdout and exit status must match the native run.
Without gcc's 32-bit support (gcc-multilib) the 32-bit cases are skipped.
"""
from __future__ import annotations

import shutil
import subprocess
import textwrap

import pytest

from conftest import ROOT, same_as_native

# Plain and SA_SIGINFO handlers: arguments, siginfo for kill/raise, the frame's alignment, the masks
# a handler runs with and the one sigreturn puts back, SA_RESETHAND, nested signals.
HANDLERS_C = r"""
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <ucontext.h>
static volatile int order[8], norder;
static void plain(int sig) {
    sigset_t now; sigprocmask(SIG_BLOCK, 0, &now);
    printf("plain %d aligned %d usr1-blocked %d usr2-blocked %d\n", sig, (int)((uintptr_t)&sig & 15) == 0,
           sigismember(&now, SIGUSR1), sigismember(&now, SIGUSR2));
}
static void info(int sig, siginfo_t *si, void *ucp) {
    ucontext_t *uc = ucp;
    printf("info %d signo %d code %d pid-is-me %d uid-is-me %d saved-mask-usr2 %d\n", sig, si->si_signo,
           si->si_code, si->si_pid == getpid(), si->si_uid == getuid(), sigismember(&uc->uc_sigmask, SIGUSR2));
}
static void blocker(int sig, siginfo_t *si, void *ucp) {
    ucontext_t *uc = ucp;
    sigaddset(&uc->uc_sigmask, SIGTERM);          /* stays blocked after rt_sigreturn */
}
static void inner(int sig) { order[norder++] = sig; }
static void outer(int sig) { order[norder++] = sig; raise(SIGUSR2); order[norder++] = -sig; }
int main(void) {
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_handler = plain; sigaddset(&sa.sa_mask, SIGUSR2);
    sigaction(SIGUSR1, &sa, 0);
    raise(SIGUSR1);
    sigset_t m, now; sigemptyset(&m); sigaddset(&m, SIGUSR2); sigprocmask(SIG_BLOCK, &m, 0);
    kill(getpid(), SIGUSR1);
    sigprocmask(SIG_BLOCK, 0, &now);
    printf("after: usr1-blocked %d usr2-blocked %d\n", sigismember(&now, SIGUSR1), sigismember(&now, SIGUSR2));
    sigprocmask(SIG_UNBLOCK, &m, 0);

    memset(&sa, 0, sizeof sa); sa.sa_sigaction = info; sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, 0);
    raise(SIGUSR1);
    kill(getpid(), SIGUSR1);
    sigprocmask(SIG_BLOCK, &m, 0);
    raise(SIGUSR1);
    sigprocmask(SIG_UNBLOCK, &m, 0);

    memset(&sa, 0, sizeof sa); sa.sa_sigaction = blocker; sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, 0);
    raise(SIGUSR1);
    sigprocmask(SIG_BLOCK, 0, &now);
    printf("uc_sigmask kept: term-blocked %d usr1-blocked %d\n", sigismember(&now, SIGTERM), sigismember(&now, SIGUSR1));

    memset(&sa, 0, sizeof sa); sa.sa_handler = outer; sigaction(SIGUSR1, &sa, 0);
    sa.sa_handler = inner; sigaction(SIGUSR2, &sa, 0);
    raise(SIGUSR1);
    sa.sa_handler = outer; sigaddset(&sa.sa_mask, SIGUSR2); sigaction(SIGUSR1, &sa, 0);
    raise(SIGUSR1);
    printf("order");
    for (int i = 0; i < norder; i++) printf(" %d", order[i]);
    printf("\n");

    struct sigaction old;
    memset(&sa, 0, sizeof sa); sa.sa_handler = plain; sa.sa_flags = SA_RESETHAND;
    sigaction(SIGUSR1, &sa, 0);
    raise(SIGUSR1);
    sigaction(SIGUSR1, 0, &old);
    printf("reset: dfl %d\n", old.sa_handler == SIG_DFL);
    fflush(stdout);
    raise(SIGUSR1);
    printf("not reached\n");
    return 0;
}
"""

# Handlers that change the interrupted registers through the saved context: an SA_SIGINFO handler edits
# uc_mcontext (EAX and EIP past a ud2), and a plain i386 handler edits the sigcontext that follows its
# argument on the stack (the sigframe_ia32 layout) before sigreturn.
CONTEXT_C = r"""
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>
#ifdef __i386__
#define PC REG_EIP
#define AX REG_EAX
#else
#define PC REG_RIP
#define AX REG_RAX
#endif
static void ill(int sig, siginfo_t *si, void *ucp) {
    ucontext_t *uc = ucp;
    printf("SIGILL code %d at-pc %d\n", si->si_code, (void *)uc->uc_mcontext.gregs[PC] == si->si_addr);
    uc->uc_mcontext.gregs[PC] += 2;                /* past the ud2 */
    uc->uc_mcontext.gregs[AX] = 4242;
}
#ifdef __i386__
static void plain_ill(int sig, struct sigcontext sc) {
    /* sigframe_ia32: the sigcontext follows sig; it is the frame itself, so sigreturn sees the change. */
    volatile struct sigcontext *frame = &sc;
    frame->eip += 2;
    frame->eax = 777;
}
#endif
static long trap(long in) {
    long out;
    __asm__ volatile("mov %1, %0\n\tud2\n" : "=a"(out) : "r"(in));
    return out;
}
int main(void) {
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = ill; sa.sa_flags = SA_SIGINFO;
    sigaction(SIGILL, &sa, 0);
    printf("eax after SA_SIGINFO handler: %ld\n", trap(1));
    printf("and again: %ld\n", trap(2));
#ifdef __i386__
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = (void (*)(int))plain_ill;
    sigaction(SIGILL, &sa, 0);
    printf("eax after plain handler: %ld\n", trap(3));
#else
    printf("eax after plain handler: 777\n");
#endif
    double x = 1.25, y = 0;
    for (int i = 0; i < 3; i++) y += x * trap(i) / 4242.0;
    printf("fp %.3f\n", y);
    return 0;
}
"""

# Synchronous signals: SIGSEGV (unmapped, read-only) and SIGFPE (divide error) with their siginfo,
# each left with siglongjmp, many times over (no frame is leaked).
FAULTS_C = r"""
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
static sigjmp_buf jb;
static volatile void *addr;
static volatile int code, signo;
static char *ro;
static void on_fault(int sig, siginfo_t *si, void *uc) {
    signo = sig; code = si->si_code; addr = si->si_addr;
    siglongjmp(jb, 1);
}
extern char divide_at[];
__attribute__((noinline)) static int divide(int a, int b) {
    int q = a, d = 0;
    __asm__ volatile(".globl divide_at\ndivide_at: idivl %2" : "+a"(q), "+d"(d) : "r"(b));
    return q;
}
int main(void) {
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault; sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, 0);
    sigaction(SIGFPE, &sa, 0);
    int caught = 0;
    for (int i = 0; i < 300; i++)
        if (sigsetjmp(jb, 1)) caught++; else *(volatile int *)(long)(0x1000 + 8 * i) = i;
    printf("unmapped: caught %d signo %d code %d addr %p\n", caught, signo, code, (void *)addr);
    ro = mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (sigsetjmp(jb, 1)) printf("read-only: signo %d code %d at-page %d\n", signo, code, addr == ro + 100);
    else ro[100] = 1;
    volatile int zero = 0;
    if (sigsetjmp(jb, 1)) printf("divide: signo %d code %d at-insn %d\n", signo, code, addr == divide_at);
    else printf("no fault %d\n", divide(7, zero));
    sigset_t now; sigprocmask(SIG_BLOCK, 0, &now);
    printf("mask clean: %d\n", !sigismember(&now, SIGSEGV) && !sigismember(&now, SIGFPE));
    signal(SIGSEGV, SIG_DFL);
    *(volatile int *)16 = 0;                        /* the default action now: death by SIGSEGV */
    return 0;
}
"""

# A blocking pipe read interrupted by a signal from a child: EINTR without SA_RESTART, restarted (and
# then reading the child's byte) with it; a signal to a sleeping sigsuspend.
RESTART_C = r"""
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
static volatile int got;
static void h(int s) { got++; }
static void attempt(int flags) {
    int p[2]; pipe(p);
    struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = h; sa.sa_flags = flags;
    sigaction(SIGUSR1, &sa, 0);
    got = 0;
    pid_t c = fork();
    if (!c) { usleep(150000); kill(getppid(), SIGUSR1); usleep(150000); write(p[1], "x", 1); _exit(0); }
    char b = 0;
    ssize_t r = read(p[0], &b, 1);
    printf("%s: read %zd errno-EINTR %d byte %c handler ran %d\n", flags ? "SA_RESTART" : "no SA_RESTART",
           r, r < 0 && errno == EINTR, b ? b : '-', got);
    waitpid(c, 0, 0);
    close(p[0]); close(p[1]);
}
int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    attempt(0);
    attempt(SA_RESTART);
    sigset_t block, empty; sigemptyset(&block); sigaddset(&block, SIGUSR1); sigemptyset(&empty);
    sigprocmask(SIG_BLOCK, &block, 0);
    got = 0;
    pid_t c = fork();
    if (!c) { kill(getppid(), SIGUSR1); _exit(0); }
    int r = sigsuspend(&empty);
    printf("sigsuspend %d errno-EINTR %d got %d\n", r, errno == EINTR, got);
    waitpid(c, 0, 0);
    return 0;
}
"""

# SIGCHLD to an SA_SIGINFO handler (exit and death by signal), and waitid's siginfo.
CHILDREN_C = r"""
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
static volatile int n, codes[4], statuses[4], pids[4];
static void chld(int sig, siginfo_t *si, void *uc) {
    codes[n] = si->si_code; statuses[n] = si->si_status; pids[n] = si->si_pid; n++;
}
int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_sigaction = chld; sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGCHLD, &sa, 0);
    sigset_t block, empty; sigemptyset(&block); sigaddset(&block, SIGCHLD); sigemptyset(&empty);
    sigprocmask(SIG_BLOCK, &block, 0);
    pid_t a = fork(); if (!a) _exit(7);
    while (n < 1) sigsuspend(&empty);
    pid_t b = fork(); if (!b) { raise(SIGTERM); _exit(1); }
    while (n < 2) sigsuspend(&empty);
    printf("sigchld 1: code %d status %d pid-ok %d\n", codes[0], statuses[0], pids[0] == a);
    printf("sigchld 2: code %d status %d pid-ok %d\n", codes[1], statuses[1], pids[1] == b);
    siginfo_t si;
    memset(&si, 0x55, sizeof si);
    int r = waitid(P_PID, a, &si, WEXITED | WNOWAIT);
    printf("waitid nowait: %d signo %d code %d status %d pid-ok %d\n", r, si.si_signo, si.si_code, si.si_status,
           si.si_pid == a);
    memset(&si, 0x55, sizeof si);
    r = waitid(P_PID, a, &si, WEXITED);
    printf("waitid: %d signo %d code %d status %d pid-ok %d\n", r, si.si_signo, si.si_code, si.si_status, si.si_pid == a);
    memset(&si, 0x55, sizeof si);
    r = waitid(P_ALL, 0, &si, WEXITED);
    printf("waitid killed: %d signo %d code %d status %d pid-ok %d\n", r, si.si_signo, si.si_code, si.si_status,
           si.si_pid == b);
    int p[2]; pipe(p);
    pid_t c = fork(); if (!c) { char x; read(p[0], &x, 1); _exit(0); }
    memset(&si, 0x55, sizeof si);
    r = waitid(P_PID, c, &si, WEXITED | WNOHANG);
    printf("waitid WNOHANG: %d pid %d signo %d\n", r, si.si_pid, si.si_signo);
    write(p[1], "x", 1);
    r = waitid(P_PID, c, &si, WEXITED);
    printf("waitid last: %d code %d status %d\n", r, si.si_code, si.si_status);
    return 0;
}
"""

# The alternate signal stack: sigaltstack's answers, a stack overflow caught on it, a nested signal
# staying on it, SS_AUTODISARM, and a frame that does not fit (SIGSEGV).
ALTSTACK_C = r"""
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)
#endif
static char *alt;
static size_t altsize = 1 << 16;
static sigjmp_buf jb;
static volatile int on_alt, depth_flags, nested_on_alt, nested_flags;
static int on(void *p) { return (char *)p > alt && (char *)p <= alt + altsize; }
static void nested(int sig) {
    char here; stack_t s; sigaltstack(0, &s);
    nested_on_alt = on(&here); nested_flags = s.ss_flags;
}
static void overflow(int sig, siginfo_t *si, void *uc) {
    char here; stack_t s; sigaltstack(0, &s);
    on_alt = on(&here); depth_flags = s.ss_flags;
    raise(SIGUSR1);
    siglongjmp(jb, 1);
}
static int recurse(int n) { volatile char pad[1024]; pad[0] = n; return recurse(n + 1) + pad[0]; }
static void where(int sig) { char here; on_alt = on(&here); }
static void descend(void) {
    char here;
    if (&here - alt > 256) { volatile char pad[64]; pad[0] = 0; descend(); pad[1] = 0; return; }
    pid_t me = getpid();                            /* kill, delivered with under 256 bytes of it left */
#ifdef __i386__
    long r;                                         /* by int 0x80: a vDSO entry would hide the overflow */
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(SYS_kill), "b"(me), "c"(SIGUSR1) : "memory");
#else
    kill(me, SIGUSR1);
#endif
}
static void deep(int sig) { descend(); }
int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    stack_t s, old;
    sigaltstack(0, &old);
    printf("initial: flags %d size %zu sp-null %d\n", old.ss_flags, old.ss_size, old.ss_sp == 0);
    alt = malloc(altsize);
    s.ss_sp = alt; s.ss_size = 100; s.ss_flags = 0;
    int r = sigaltstack(&s, 0);
    printf("too small: %d ENOMEM %d\n", r, errno == ENOMEM);
    s.ss_size = altsize; s.ss_flags = 7;
    r = sigaltstack(&s, 0);
    printf("bad flags: %d EINVAL %d\n", r, errno == EINVAL);
    s.ss_flags = 0;
    printf("set: %d\n", sigaltstack(&s, &old));
    sigaltstack(0, &old);
    printf("now: flags %d size-ok %d sp-ok %d\n", old.ss_flags, old.ss_size == altsize, old.ss_sp == alt);

    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_handler = where; sigaction(SIGUSR2, &sa, 0);
    raise(SIGUSR2); printf("without SA_ONSTACK: on alt %d\n", on_alt);
    sa.sa_flags = SA_ONSTACK; sigaction(SIGUSR2, &sa, 0);
    raise(SIGUSR2); printf("with SA_ONSTACK: on alt %d\n", on_alt);

    sa.sa_handler = nested; sa.sa_flags = 0; sigaction(SIGUSR1, &sa, 0);
    memset(&sa, 0, sizeof sa); sa.sa_sigaction = overflow; sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, 0);
    for (int i = 0; i < 3; i++) {
        if (!sigsetjmp(jb, 1)) recurse(0);
        printf("overflow %d: on alt %d flags %d nested on alt %d flags %d\n", i, on_alt, depth_flags,
               nested_on_alt, nested_flags);
    }
    sigaltstack(0, &old);
    printf("after: flags %d\n", old.ss_flags);

    s.ss_flags = SS_AUTODISARM; sigaltstack(&s, 0);
    sigaltstack(0, &old); printf("autodisarm: flags %#x\n", (unsigned)old.ss_flags);
    sa.sa_sigaction = overflow; sigaction(SIGSEGV, &sa, 0);
    if (!sigsetjmp(jb, 1)) recurse(0);
    printf("autodisarm overflow: on alt %d flags %#x\n", on_alt, (unsigned)depth_flags);
    sigaltstack(0, &old); printf("after longjmp: flags %#x\n", (unsigned)old.ss_flags);

    s.ss_flags = SS_DISABLE; sigaltstack(&s, 0);
    sigaltstack(0, &old); printf("disabled: flags %d size %zu\n", old.ss_flags, old.ss_size);

    /* A nested signal with no room left on the alternate stack: its frame would leave it, SIGSEGV. */
    s.ss_sp = alt; s.ss_size = altsize; s.ss_flags = 0; sigaltstack(&s, 0);
    signal(SIGSEGV, SIG_DFL);
    memset(&sa, 0, sizeof sa); sa.sa_handler = deep; sa.sa_flags = SA_ONSTACK; sigaction(SIGUSR2, &sa, 0);
    sa.sa_handler = where; sa.sa_flags = 0; sigaction(SIGUSR1, &sa, 0);
    raise(SIGUSR2);
    printf("not reached\n");
    return 0;
}
"""

# The old i386 signal calls, made directly: signal (48, returning through the frame's own retcode),
# sigaction (67), sigprocmask (126), sigpending (73), sigsuspend (72), sgetmask/ssetmask (68/69).
OLDCALLS_C = r"""
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
struct old_sigaction { void (*handler)(int); unsigned long mask; unsigned long flags; void (*restorer)(void); };
static long sys(long nr, long a, long b, long c) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return r;
}
static volatile int got, ctx_sig;
static void h(int sig) { got = sig; }
static void hctx(int sig) { ctx_sig = sig; }
int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    long r = sys(48, SIGUSR1, (long)h, 0);
    printf("signal: old %ld\n", r);
    raise(SIGUSR1);
    printf("handled %d\n", got);
    r = sys(48, SIGUSR1, (long)SIG_IGN, 0);
    printf("signal again: old-is-h %d (one-shot: SIG_DFL) %ld\n", r == (long)h, r);
    struct old_sigaction act = { hctx, 1UL << (SIGUSR2 - 1), 0, 0 }, old;
    memset(&old, 0x55, sizeof old);
    r = sys(67, SIGUSR1, (long)&act, (long)&old);
    printf("sigaction: %ld old handler-is-ign %d flags %#lx mask %#lx\n", r, old.handler == SIG_IGN, old.flags, old.mask);
    memset(&old, 0x55, sizeof old);
    sys(67, SIGUSR1, 0, (long)&old);
    printf("read back: handler-ok %d flags %#lx mask %#lx\n", old.handler == hctx, old.flags, old.mask);
    printf("sigaction SIGKILL: %ld\n", sys(67, SIGKILL, (long)&act, 0));
    raise(SIGUSR1);
    printf("old-style handler ran %d\n", ctx_sig);
    unsigned long set = 1UL << (SIGUSR1 - 1), prev = 77, pend = 77;
    r = sys(126, SIG_BLOCK, (long)&set, (long)&prev);
    printf("sigprocmask block: %ld prev %lu\n", r, prev);
    ctx_sig = 0;
    raise(SIGUSR1);
    r = sys(73, (long)&pend, 0, 0);
    printf("sigpending: %ld set %#lx ran %d\n", r, pend, ctx_sig);
    set = 0;
    printf("sigprocmask bad how: %ld\n", sys(126, 99, (long)&set, 0));
    printf("sgetmask %#lx\n", sys(68, 0, 0, 0));
    printf("ssetmask %#lx\n", sys(69, 1UL << (SIGTERM - 1), 0, 0));
    r = sys(68, 0, 0, 0);
    printf("ran %d sgetmask %#lx\n", ctx_sig, r);
    sys(126, SIG_SETMASK, (long)&set, (long)&prev);
    printf("sigprocmask setmask prev %#lx\n", prev);
    set = 1UL << (SIGUSR1 - 1);
    sys(126, SIG_BLOCK, (long)&set, 0);
    ctx_sig = 0;
    pid_t c = fork();
    if (!c) { usleep(100000); kill(getppid(), SIGUSR1); _exit(0); }
    r = sys(72, 0, 0, 0);
    printf("sigsuspend: %ld ran %d\n", r, ctx_sig);
    waitpid(c, 0, 0);
    sys(126, SIG_BLOCK, 0, (long)&prev);
    printf("mask after sigsuspend %#lx\n", prev);
    return 0;
}
"""

PROGRAMS = {"handlers": HANDLERS_C, "context": CONTEXT_C, "faults": FAULTS_C, "restart": RESTART_C,
            "children": CHILDREN_C, "altstack": ALTSTACK_C, "oldcalls": OLDCALLS_C}
ONLY_32 = {"oldcalls"}


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """name, bits -> path of the program built with gcc -static (-m32 for 32); compiled once per module."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the guest programs")
    out = tmp_path_factory.mktemp("signals32")
    built = {}
    for name, source in PROGRAMS.items():
        src = out / f"{name}.c"
        src.write_text(textwrap.dedent(source))
        for bits in (32, 64):
            if bits == 64 and name in ONLY_32:
                continue
            exe = out / f"{name}-{bits}"
            flags = ["-m32"] if bits == 32 else []
            proc = subprocess.run(["gcc", *flags, "-static", "-O1", "-o", str(exe), str(src)],
                                  capture_output=True, text=True)
            built[name, bits] = str(exe) if proc.returncode == 0 else proc.stderr[-600:]
    src = ROOT / "samples" / "src" / "signals.c"
    exe = out / "signals-sample-32"
    proc = subprocess.run(["gcc", "-m32", "-static", "-O1", "-o", str(exe), str(src)], capture_output=True, text=True)
    built["sample", 32] = str(exe) if proc.returncode == 0 else proc.stderr[-600:]
    return built


def build(programs, name: str, bits: int) -> str:
    """The program's path, or a skip saying why it could not be built."""
    path = programs[name, bits]
    if not path.startswith("/"):
        pytest.skip(f"gcc {'-m32 ' if bits == 32 else ''}-static cannot build it (gcc-multilib for -m32?): {path}")
    return path


def matches_native(path: str, *options: str):
    """Run natively and under run-elf; stdout and exit status must match. The run-elf result."""
    return same_as_native([path], *options, timeout=120)[1]


def test_signals_sample_32(programs):
    matches_native(build(programs, "sample", 32))


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("name", ["handlers", "context", "faults", "restart", "children", "altstack"])
def test_matches_native(programs, name, bits):
    matches_native(build(programs, name, bits))


def test_old_i386_signal_calls(programs):
    matches_native(build(programs, "oldcalls", 32))


def test_handled_faults_under_pae(programs):
    """The same frames on PAE page tables (NX), with a SIGSEGV handler left by siglongjmp."""
    matches_native(build(programs, "faults", 32), "--paging", "pae")


def test_signal_deaths_are_reported(programs):
    """SA_RESETHAND put SIG_DFL back, so the last SIGUSR1 kills pid 1; run-elf says so on stderr."""
    ours = matches_native(build(programs, "handlers", 32))
    assert b"killed by SIGUSR1" in ours.stderr
