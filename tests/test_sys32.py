"""The i386 system calls: 32-bit static glibc programs that call them (mostly through syscall(2), so
that each i386 number is reached with its own 32-bit structure layout) run natively and under
run-elf, and their stdout and exit status must be the same.

The programs print what they see as derived facts (return values, errno names, sizes, modes,
"set to 1000000000: yes"), never absolute times or inode numbers. Each structure the kernel
writes is followed by a canary, so a layout written too long shows up as a changed canary.
They are compiled once per module with `gcc -m32 -static` (Debian's gcc-multilib); without a
32-bit toolchain the module is skipped. The host must run i386 programs natively (IA32
emulation), which is the oracle.
"""
from __future__ import annotations


import pytest

from conftest import compile_static, run_elf, same_as_native

COMMON = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CANARY 0x5a5a5a5au
/* Print a raw system call's result: its value, or -1 and the errno name. */
#define SHOW(what, call) do { errno = 0; long r_ = (long)(call); \
    printf("%s: %ld%s%s\n", what, r_, r_ == -1 ? " " : "", r_ == -1 ? strerrorname_np(errno) : ""); } while (0)
#define YES(cond) ((cond) ? "yes" : "no")
"""

PROC_C = COMMON + r"""
#include <sys/resource.h>
#include <sys/wait.h>
#include <signal.h>

struct rusage32 { int32_t utime_s, utime_us, stime_s, stime_us; int32_t f[14]; uint32_t canary; };
struct rlimit32 { uint32_t cur, max; uint32_t canary; };
struct rlimit64k { uint64_t cur, max; };
struct sysinfo32 {
    int32_t uptime; uint32_t loads[3], totalram, freeram, sharedram, bufferram, totalswap, freeswap;
    uint16_t procs, pad; uint32_t totalhigh, freehigh, mem_unit; char f[8]; uint32_t canary;
};
struct tms32 { int32_t t[4]; uint32_t canary; };

static pid_t child(int code) {
    pid_t c = fork();
    if (c == 0) {
        char *m = malloc(1 << 20);
        memset(m, 1, 1 << 20);
        _exit(code);
    }
    return c;
}

int main(void) {
    int st = 0;
    pid_t c = child(7);
    struct rusage32 ru;
    memset(&ru, 0, sizeof ru);
    ru.canary = CANARY;
    long r = syscall(SYS_wait4, c, &st, 0, &ru);
    printf("wait4: child %s exited %d code %d\n", YES(r == c), WIFEXITED(st), WEXITSTATUS(st));
    printf("wait4 rusage: minflt>0 %s usec valid %s canary %s\n", YES(ru.f[4] > 0),
           YES(ru.utime_us >= 0 && ru.utime_us < 1000000 && ru.stime_us >= 0 && ru.stime_us < 1000000),
           YES(ru.canary == CANARY));

    c = child(3);
    r = syscall(SYS_waitpid, c, &st, 0);
    printf("waitpid: child %s exited %d code %d\n", YES(r == c), WIFEXITED(st), WEXITSTATUS(st));
    int fds[2];
    pipe(fds);
    c = fork();
    if (c == 0) { char b; close(fds[1]); read(fds[0], &b, 1); _exit(5); }
    close(fds[0]);
    SHOW("waitpid WNOHANG while it runs", syscall(SYS_waitpid, c, &st, WNOHANG));
    close(fds[1]);
    r = syscall(SYS_waitpid, -1, &st, 0);
    printf("waitpid -1: child %s code %d\n", YES(r == c), WEXITSTATUS(st));
    pipe(fds);
    c = fork();
    if (c == 0) { char b; close(fds[1]); read(fds[0], &b, 1); _exit(0); }
    close(fds[0]);
    kill(c, SIGKILL);
    r = syscall(SYS_waitpid, c, &st, 0);
    printf("waitpid killed: child %s signaled %d sig %d\n", YES(r == c), WIFSIGNALED(st), WTERMSIG(st));
    close(fds[1]);
    SHOW("waitpid without children", syscall(SYS_waitpid, -1, &st, 0));
    SHOW("wait4 bad options", syscall(SYS_wait4, -1, &st, 0x1000, 0));

    memset(&ru, 0, sizeof ru);
    ru.canary = CANARY;
    SHOW("getrusage self", syscall(SYS_getrusage, RUSAGE_SELF, &ru));
    printf("self: minflt>0 %s canary %s\n", YES(ru.f[4] > 0), YES(ru.canary == CANARY));
    memset(&ru, 0, sizeof ru);
    ru.canary = CANARY;
    SHOW("getrusage children", syscall(SYS_getrusage, RUSAGE_CHILDREN, &ru));
    printf("children: minflt>0 %s canary %s\n", YES(ru.f[4] > 0), YES(ru.canary == CANARY));
    SHOW("getrusage bad who", syscall(SYS_getrusage, 5, &ru));

    struct tms32 tms;
    tms.canary = CANARY;
    errno = 0;
    syscall(SYS_times, &tms);
    printf("times: errno %d canary %s\n", errno, YES(tms.canary == CANARY));

    uint32_t head = 0, len = 0;
    SHOW("get_robust_list", syscall(SYS_get_robust_list, 0, &head, &len));
    printf("robust head set %s len %u\n", YES(head != 0), len);
    SHOW("set_robust_list 24", syscall(SYS_set_robust_list, head, 24));
    SHOW("set_robust_list 12", syscall(SYS_set_robust_list, head, 12));
    SHOW("get_robust_list of no one", syscall(SYS_get_robust_list, 999999, &head, &len));

    struct rlimit32 rl = {0, 0, CANARY};
    struct rlimit32 nofile;
    SHOW("ugetrlimit NOFILE", syscall(SYS_ugetrlimit, RLIMIT_NOFILE, &nofile));
    printf("nofile %u %u\n", nofile.cur, nofile.max);
    SHOW("ugetrlimit AS", syscall(SYS_ugetrlimit, RLIMIT_AS, &rl));
    printf("as %#x %#x canary %s\n", rl.cur, rl.max, YES(rl.canary == CANARY));
    SHOW("old getrlimit AS", syscall(SYS_getrlimit, RLIMIT_AS, &rl));
    printf("as %#x %#x canary %s\n", rl.cur, rl.max, YES(rl.canary == CANARY));
    SHOW("old getrlimit NOFILE", syscall(SYS_getrlimit, RLIMIT_NOFILE, &rl));
    printf("nofile %u %u\n", rl.cur, rl.max);
    SHOW("ugetrlimit bad resource", syscall(SYS_ugetrlimit, 99, &rl));
    SHOW("old getrlimit bad resource", syscall(SYS_getrlimit, 99, &rl));
    struct rlimit32 lower = {64, nofile.max, 0};
    SHOW("setrlimit NOFILE soft 64", syscall(SYS_setrlimit, RLIMIT_NOFILE, &lower));
    syscall(SYS_ugetrlimit, RLIMIT_NOFILE, &rl);
    printf("nofile now %u, hard kept %s\n", rl.cur, YES(rl.max == nofile.max));
    struct rlimit32 inverted = {65, 64, 0};
    SHOW("setrlimit soft above hard", syscall(SYS_setrlimit, RLIMIT_NOFILE, &inverted));
    struct rlimit32 as = {0xffffffffu, 0xffffffffu, 0};
    SHOW("setrlimit AS infinity", syscall(SYS_setrlimit, RLIMIT_AS, &as));
    struct rlimit64k as64;
    SHOW("prlimit64 AS", syscall(SYS_prlimit64, 0, RLIMIT_AS, 0, &as64));
    printf("AS still infinite: %s\n", YES(as64.cur == ~0ULL && as64.max == ~0ULL));
    struct rlimit32 fsize = {1 << 30, 0xffffffffu, 0};
    SHOW("setrlimit FSIZE 1G", syscall(SYS_setrlimit, RLIMIT_FSIZE, &fsize));
    syscall(SYS_ugetrlimit, RLIMIT_FSIZE, &rl);
    printf("fsize %#x %#x\n", rl.cur, rl.max);

    struct sysinfo32 si;
    memset(&si, 0, sizeof si);
    si.canary = CANARY;
    SHOW("sysinfo", syscall(SYS_sysinfo, &si));
    printf("sysinfo: canary %s procs>0 %s unit power of two %s ram>0 %s free<=total %s uptime>0 %s\n",
           YES(si.canary == CANARY), YES(si.procs > 0), YES(si.mem_unit && !(si.mem_unit & (si.mem_unit - 1))),
           YES(si.totalram > 0), YES(si.freeram <= si.totalram), YES(si.uptime > 0));

    long uid = syscall(SYS_getuid32), gid = syscall(SYS_getgid32);
    long low_uid = uid > 65535 ? 65534 : uid, low_gid = gid > 65535 ? 65534 : gid;
    printf("16-bit ids: getuid %s geteuid %s getgid %s getegid %s\n", YES(syscall(SYS_getuid) == low_uid),
           YES(syscall(SYS_geteuid) == low_uid), YES(syscall(SYS_getgid) == low_gid),
           YES(syscall(SYS_getegid) == low_gid));
    uint16_t ids16[4] = {1, 1, 1, 0x5a5a};
    SHOW("getresuid16", syscall(SYS_getresuid, &ids16[0], &ids16[1], &ids16[2]));
    printf("all the uid %s canary %s\n", YES(ids16[0] == low_uid && ids16[1] == low_uid && ids16[2] == low_uid),
           YES(ids16[3] == 0x5a5a));
    SHOW("getresgid16", syscall(SYS_getresgid, &ids16[0], &ids16[1], &ids16[2]));
    printf("all the gid %s\n", YES(ids16[0] == low_gid && ids16[1] == low_gid && ids16[2] == low_gid));
    SHOW("setuid16 to itself", syscall(SYS_setuid, low_uid));
    SHOW("setreuid16 unchanged", syscall(SYS_setreuid, 0xffff, 0xffff));
    SHOW("setresgid16 unchanged", syscall(SYS_setresgid, 0xffff, 0xffff, 0xffff));
    SHOW("setfsuid16 query is the uid", syscall(SYS_setfsuid, 0xffff) == low_uid);
    long ngroups = syscall(SYS_getgroups32, 0, 0);
    uint16_t groups16[70];
    groups16[ngroups < 64 ? ngroups : 64] = 0x5a5a;
    SHOW("getgroups16 count agrees", syscall(SYS_getgroups, 0, 0) == ngroups);
    if (ngroups < 64) {
        SHOW("getgroups16 fills", syscall(SYS_getgroups, 64, groups16) == ngroups);
        printf("canary %s\n", YES(groups16[ngroups] == 0x5a5a));
    }
    SHOW("getgroups16 negative", syscall(SYS_getgroups, -1, groups16));
    char owned[] = "/tmp/run-elf-proc32-XXXXXX";
    int ofd = mkstemp(owned);
    SHOW("chown16 unchanged", syscall(SYS_chown, owned, 0xffff, 0xffff));
    SHOW("lchown16 unchanged", syscall(SYS_lchown, owned, 0xffff, 0xffff));
    SHOW("fchown16 to itself", syscall(SYS_fchown, ofd, low_uid, 0xffff));
    close(ofd);
    unlink(owned);

    uint32_t mask[4] = {0, 0, 0, CANARY};
    SHOW("sched_getaffinity 6 bytes", syscall(SYS_sched_getaffinity, 0, 6, mask));
    r = syscall(SYS_sched_getaffinity, 0, 12, mask);
    printf("sched_getaffinity 12 bytes: ok %s cpu0 %s canary %s\n", YES(r > 0), YES(mask[0] & 1),
           YES(mask[3] == CANARY));
    return 0;
}
"""

TIME_C = COMMON + r"""
#include <sys/select.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <time.h>

struct ts32 { int32_t sec, nsec; };
struct tv32 { int32_t sec, usec; };
struct ts64 { int64_t sec, nsec; };
struct stat64k {          /* the kernel's struct stat64 on i386 */
    uint64_t dev; uint32_t pad0, ino32, mode, nlink, uid, gid; uint64_t rdev; uint32_t pad3;
    int64_t size; uint32_t blksize; uint64_t blocks;
    uint32_t atime, atime_ns, mtime, mtime_ns, ctime, ctime_ns; uint64_t ino;
} __attribute__((packed));

static int64_t now_ns(int clock) {
    struct ts64 t;
    syscall(SYS_clock_gettime64, clock, &t);
    return t.sec * 1000000000LL + t.nsec;
}

static void file_times(const char *what, const char *path, uint32_t atime, uint32_t mtime) {
    struct stat64k st;
    syscall(SYS_stat64, path, &st);
    printf("%s: atime set %s mtime set %s\n", what, YES(st.atime == atime), YES(st.mtime == mtime));
}

int main(void) {
    int32_t t32[2] = {0, (int32_t)CANARY};
    long r = syscall(SYS_time, &t32[0]);
    int64_t real = now_ns(CLOCK_REALTIME) / 1000000000;
    printf("time: agrees with the clock %s stored %s canary %s\n", YES(r - real <= 1 && real - r <= 1),
           YES(t32[0] == (int32_t)r), YES(t32[1] == (int32_t)CANARY));
    SHOW("time NULL ok", syscall(SYS_time, 0) > 0);

    struct { struct tv32 tv; int32_t tz[2]; uint32_t canary; } g = {{0, 0}, {7, 7}, CANARY};
    SHOW("gettimeofday", syscall(SYS_gettimeofday, &g.tv, &g.tz));
    printf("gettimeofday: usec valid %s near the clock %s canary %s\n", YES(g.tv.usec >= 0 && g.tv.usec < 1000000),
           YES(g.tv.sec - real <= 1 && real - g.tv.sec <= 1), YES(g.canary == CANARY));
    struct tv32 bad_tv = {1000, 2000000};
    SHOW("settimeofday usec out of range", syscall(SYS_settimeofday, &bad_tv, 0));
    struct tv32 neg_tv = {-1, 0};
    SHOW("settimeofday negative", syscall(SYS_settimeofday, &neg_tv, 0));
    SHOW("settimeofday bad pointer", syscall(SYS_settimeofday, (void *)16, 0));

    struct { struct ts32 ts; uint32_t canary; } c = {{0, 0}, CANARY};
    SHOW("clock_gettime MONOTONIC", syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &c.ts));
    printf("monotonic: nsec valid %s canary %s\n", YES(c.ts.nsec >= 0 && c.ts.nsec < 1000000000),
           YES(c.canary == CANARY));
    syscall(SYS_clock_gettime, CLOCK_REALTIME, &c.ts);
    printf("realtime near the clock: %s\n", YES(c.ts.sec - real <= 1 && real - c.ts.sec <= 1));
    SHOW("clock_gettime bad clock", syscall(SYS_clock_gettime, 99, &c.ts));
    SHOW("clock_getres REALTIME", syscall(SYS_clock_getres, CLOCK_REALTIME, &c.ts));
    printf("res %d %d canary %s\n", c.ts.sec, c.ts.nsec, YES(c.canary == CANARY));
    SHOW("clock_getres NULL", syscall(SYS_clock_getres, CLOCK_MONOTONIC, 0));

    struct ts32 ten_ms = {0, 10000000};
    int64_t t0 = now_ns(CLOCK_MONOTONIC);
    SHOW("nanosleep 10ms", syscall(SYS_nanosleep, &ten_ms, 0));
    printf("slept 10ms: %s\n", YES(now_ns(CLOCK_MONOTONIC) - t0 >= 10000000));
    struct ts32 bad_ts = {0, 1000000000};
    SHOW("nanosleep bad nsec", syscall(SYS_nanosleep, &bad_ts, 0));
    t0 = now_ns(CLOCK_MONOTONIC);
    SHOW("clock_nanosleep relative", syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &ten_ms, 0));
    printf("slept 10ms: %s\n", YES(now_ns(CLOCK_MONOTONIC) - t0 >= 10000000));
    int64_t until = now_ns(CLOCK_MONOTONIC) + 20000000;
    struct ts32 abs = {(int32_t)(until / 1000000000), (int32_t)(until % 1000000000)};
    SHOW("clock_nanosleep absolute", syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, TIMER_ABSTIME, &abs, 0));
    printf("woke after the deadline: %s\n", YES(now_ns(CLOCK_MONOTONIC) >= until));

    char path[] = "/tmp/run-elf-time32-XXXXXX";
    int fd = mkstemp(path);
    int32_t ub[2] = {1000000000, 1100000000};
    SHOW("utime", syscall(SYS_utime, path, ub));
    file_times("utime", path, 1000000000, 1100000000);
    struct tv32 tv2[2] = {{1200000000, 5}, {1300000000, 999999}};
    SHOW("utimes", syscall(SYS_utimes, path, tv2));
    file_times("utimes", path, 1200000000, 1300000000);
    struct tv32 bad_tv2[2] = {{1, 1000000}, {1, 0}};
    SHOW("utimes usec out of range", syscall(SYS_utimes, path, bad_tv2));
    struct tv32 tv3[2] = {{1400000000, 0}, {1500000000, 0}};
    SHOW("futimesat", syscall(SYS_futimesat, AT_FDCWD, path, tv3));
    file_times("futimesat", path, 1400000000, 1500000000);
    struct ts32 ts2[2] = {{1600000000, 1}, {0, UTIME_OMIT}};
    SHOW("utimensat", syscall(SYS_utimensat, AT_FDCWD, path, ts2, 0));
    file_times("utimensat", path, 1600000000, 1500000000);
    struct ts32 bad_ts2[2] = {{0, 1000000000}, {0, 0}};
    SHOW("utimensat bad nsec", syscall(SYS_utimensat, AT_FDCWD, path, bad_ts2, 0));
    SHOW("utimensat on the descriptor", syscall(SYS_utimensat, fd, 0, ts2, 0));
    SHOW("utime missing file", syscall(SYS_utime, "/nonexistent/x", ub));
    close(fd);
    unlink(path);

    int p[2];
    pipe(p);
    fd_set rd, wr;
    struct tv32 tv = {0, 20000};
    t0 = now_ns(CLOCK_MONOTONIC);
    SHOW("_newselect nothing, 20ms", syscall(SYS__newselect, 0, 0, 0, 0, &tv));
    printf("waited 20ms %s, timeout left %d.%06d\n", YES(now_ns(CLOCK_MONOTONIC) - t0 >= 20000000), tv.sec, tv.usec);
    FD_ZERO(&rd); FD_SET(p[0], &rd);
    tv.sec = 0; tv.usec = 10000;
    SHOW("_newselect empty pipe", syscall(SYS__newselect, p[0] + 1, &rd, 0, 0, &tv));
    printf("read bit %d\n", FD_ISSET(p[0], &rd));
    write(p[1], "x", 1);
    FD_ZERO(&rd); FD_SET(p[0], &rd);
    FD_ZERO(&wr); FD_SET(p[1], &wr); FD_SET(p[0], &wr);
    tv.sec = 5; tv.usec = 0;
    SHOW("_newselect ready pipe", syscall(SYS__newselect, p[1] + 1, &rd, &wr, 0, &tv));
    printf("read bit %d write bits %d %d, timeout left <= 5s %s\n", FD_ISSET(p[0], &rd), FD_ISSET(p[1], &wr),
           FD_ISSET(p[0], &wr), YES(tv.sec <= 5 && tv.usec >= 0 && tv.usec < 1000000));
    FD_ZERO(&rd); FD_SET(40, &rd);
    SHOW("_newselect closed fd", syscall(SYS__newselect, 41, &rd, 0, 0, 0));
    SHOW("_newselect negative n", syscall(SYS__newselect, -1, 0, 0, 0, 0));
    struct tv32 neg = {0, -1};
    SHOW("_newselect negative timeout", syscall(SYS__newselect, 0, 0, 0, 0, &neg));
    struct tv32 carry = {0, 1500000};
    FD_ZERO(&rd); FD_SET(p[0], &rd);
    SHOW("_newselect usec past a second", syscall(SYS__newselect, p[0] + 1, &rd, 0, 0, &carry));
    struct { uint32_t n, inp, outp, exp, tvp; } sel = {p[0] + 1, (uint32_t)&rd, 0, 0, 0};
    FD_ZERO(&rd); FD_SET(p[0], &rd);
    SHOW("old select", syscall(SYS_select, &sel));
    printf("read bit %d\n", FD_ISSET(p[0], &rd));

    struct ts32 zero = {0, 0};
    FD_ZERO(&rd); FD_SET(p[0], &rd);
    SHOW("pselect6 ready", syscall(SYS_pselect6, p[0] + 1, &rd, 0, 0, &zero, 0));
    char b;
    read(p[0], &b, 1);
    FD_ZERO(&rd); FD_SET(p[0], &rd);
    SHOW("pselect6 drained", syscall(SYS_pselect6, p[0] + 1, &rd, 0, 0, &zero, 0));
    printf("read bit %d, zero timeout kept %s\n", FD_ISSET(p[0], &rd), YES(zero.sec == 0 && zero.nsec == 0));
    uint64_t sigset = 0;
    uint32_t pack[2] = {(uint32_t)&sigset, 4};
    SHOW("pselect6 bad sigset size", syscall(SYS_pselect6, 0, 0, 0, 0, &zero, pack));
    pack[1] = 8;
    SHOW("pselect6 with a sigset", syscall(SYS_pselect6, 0, 0, 0, 0, &zero, pack));
    struct ts32 bad_nsec = {0, 1000000000};
    SHOW("pselect6 bad nsec", syscall(SYS_pselect6, 0, 0, 0, 0, &bad_nsec, 0));
    struct ts64 ts = {0, 5000000};
    t0 = now_ns(CLOCK_MONOTONIC);
    SHOW("pselect6_time64 5ms", syscall(SYS_pselect6_time64, 0, 0, 0, 0, &ts, 0));
    printf("waited 5ms %s, left %lld %lld\n", YES(now_ns(CLOCK_MONOTONIC) - t0 >= 5000000), ts.sec, ts.nsec);
    close(p[1]);
    FD_ZERO(&rd); FD_SET(p[0], &rd);
    SHOW("_newselect at end of file", syscall(SYS__newselect, p[0] + 1, &rd, 0, 0, 0));
    printf("read bit %d\n", FD_ISSET(p[0], &rd));

    int q[2];
    pipe(q);
    pid_t writer = fork();
    if (writer == 0) {
        syscall(SYS_nanosleep, &ten_ms, 0);
        write(q[1], "y", 1);
        _exit(0);
    }
    FD_ZERO(&rd); FD_SET(q[0], &rd);
    tv.sec = 5; tv.usec = 0;
    SHOW("_newselect waits for a writer", syscall(SYS__newselect, q[0] + 1, &rd, 0, 0, &tv));
    printf("read bit %d, time left under 5s %s\n", FD_ISSET(q[0], &rd), YES(tv.sec < 5));
    waitpid(writer, 0, 0);
    read(q[0], &b, 1);
    FD_ZERO(&rd); FD_SET(q[0], &rd);
    tv.sec = 0; tv.usec = 30000;
    t0 = now_ns(CLOCK_MONOTONIC);
    SHOW("_newselect times out on a quiet pipe", syscall(SYS__newselect, q[0] + 1, &rd, 0, 0, &tv));
    printf("waited 30ms %s, read bit %d, left %d.%06d\n", YES(now_ns(CLOCK_MONOTONIC) - t0 >= 30000000),
           FD_ISSET(q[0], &rd), tv.sec, tv.usec);
    struct ts32 in_20ms = {0, 20000000};
    FD_ZERO(&wr); FD_SET(q[1], &wr);
    SHOW("pselect6 writable at once", syscall(SYS_pselect6, q[1] + 1, 0, &wr, 0, &in_20ms, 0));
    printf("write bit %d, timeout updated %s\n", FD_ISSET(q[1], &wr),
           YES(in_20ms.sec == 0 && in_20ms.nsec <= 20000000));
    return 0;
}
"""

FILES_C = COMMON + r"""
#include <dirent.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/utsname.h>

struct stat64k {          /* the kernel's struct stat64 on i386 */
    uint64_t dev; uint32_t pad0, ino32, mode, nlink, uid, gid; uint64_t rdev; uint32_t pad3;
    int64_t size; uint32_t blksize; uint64_t blocks;
    uint32_t atime, atime_ns, mtime, mtime_ns, ctime, ctime_ns; uint64_t ino; uint32_t canary;
} __attribute__((packed));
struct stat32k {          /* the kernel's struct stat (compat_stat) on i386 */
    uint32_t dev, ino; uint16_t mode, nlink, uid, gid; uint32_t rdev, size, blksize, blocks;
    uint32_t atime, atime_ns, mtime, mtime_ns, ctime, ctime_ns, unused[2]; uint32_t canary;
};
struct statfs32k { uint32_t type, bsize, blocks, bfree, bavail, files, ffree, fsid[2], namelen, frsize, flags, spare[4];
                   uint32_t canary; };
struct statfs64k { uint32_t type, bsize; uint64_t blocks, bfree, bavail, files, ffree; uint32_t fsid[2], namelen,
                   frsize, flags, spare[4]; uint32_t canary; } __attribute__((packed));
struct iov32 { void *base; uint32_t len; };

static void show_stat64(const char *what, struct stat64k *st, struct stat *ref) {
    printf("%s: mode %o nlink %u size %lld blksize %u blocks>=0 %s uid ok %s ino ok %s ino32 ok %s dev ok %s "
           "rdev %#llx times ok %s canary %s\n", what, st->mode, st->nlink, (long long)st->size, st->blksize,
           YES(st->blocks < (1ull << 40)), YES(st->uid == getuid()), YES(st->ino == ref->st_ino),
           YES(st->ino32 == (uint32_t)ref->st_ino), YES(st->dev == ref->st_dev), (unsigned long long)st->rdev,
           YES(st->mtime == (uint32_t)ref->st_mtim.tv_sec && st->mtime_ns == ref->st_mtim.tv_nsec &&
               st->atime == (uint32_t)ref->st_atim.tv_sec && st->ctime_ns == ref->st_ctim.tv_nsec),
           YES(st->canary == CANARY));
}

static int by_name(const void *a, const void *b) { return strcmp(*(char **)a, *(char **)b); }

int main(void) {
    char dir[] = "/tmp/run-elf-files32-XXXXXX";
    mkdtemp(dir);
    char path[256], link[256], sub[256];
    snprintf(path, sizeof path, "%s/data", dir);
    snprintf(link, sizeof link, "%s/link", dir);
    snprintf(sub, sizeof sub, "%s/subdir", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_LARGEFILE, 0640);
    write(fd, "hello, world\n", 13);
    symlink("data", link);
    mkdir(sub, 0750);
    struct timespec times[2] = {{1000000000, 5}, {1000000000, 123456789}};
    utimensat(AT_FDCWD, path, times, 0);

    struct stat ref;
    stat(path, &ref);
    struct stat64k st;
    memset(&st, 0, sizeof st);
    st.canary = CANARY;
    SHOW("stat64", syscall(SYS_stat64, path, &st));
    show_stat64("stat64", &st, &ref);
    printf("mtime %u.%09u atime %u.%09u\n", st.mtime, st.mtime_ns, st.atime, st.atime_ns);
    SHOW("lstat64", syscall(SYS_lstat64, link, &st));
    printf("lstat64: a link %s size %lld\n", YES(S_ISLNK(st.mode)), (long long)st.size);
    SHOW("fstat64", syscall(SYS_fstat64, fd, &st));
    show_stat64("fstat64", &st, &ref);
    SHOW("fstatat64 empty path", syscall(SYS_fstatat64, fd, "", &st, AT_EMPTY_PATH));
    printf("same file %s\n", YES(st.ino == ref.st_ino));
    SHOW("fstatat64 nofollow", syscall(SYS_fstatat64, AT_FDCWD, link, &st, AT_SYMLINK_NOFOLLOW));
    printf("a link %s\n", YES(S_ISLNK(st.mode)));
    SHOW("fstatat64 bad flags", syscall(SYS_fstatat64, AT_FDCWD, path, &st, 0x1));
    SHOW("stat64 missing", syscall(SYS_stat64, "/nonexistent/x", &st));
    struct stat devnull;
    stat("/dev/null", &devnull);
    SHOW("stat64 /dev/null", syscall(SYS_stat64, "/dev/null", &st));
    show_stat64("/dev/null", &st, &devnull);
    SHOW("stat64 directory", syscall(SYS_stat64, sub, &st));
    printf("directory mode %o nlink %u\n", st.mode, st.nlink);

    struct stat32k s32;
    memset(&s32, 0, sizeof s32);
    s32.canary = CANARY;
    SHOW("old stat", syscall(SYS_stat, path, &s32));
    printf("old stat: mode %o nlink %u size %u uid ok %s ino ok %s mtime %u.%09u canary %s\n", s32.mode, s32.nlink,
           s32.size, YES(s32.uid == (getuid() > 65535 ? 65534 : getuid())), YES(s32.ino == (uint32_t)ref.st_ino),
           s32.mtime, s32.mtime_ns, YES(s32.canary == CANARY));
    SHOW("old lstat", syscall(SYS_lstat, link, &s32));
    printf("a link %s\n", YES(S_ISLNK(s32.mode)));
    SHOW("old fstat", syscall(SYS_fstat, fd, &s32));
    printf("size %u\n", s32.size);

    struct statfs32k f32;
    struct statfs64k f64;
    memset(&f32, 0, sizeof f32);
    memset(&f64, 0, sizeof f64);
    f32.canary = f64.canary = CANARY;
    SHOW("statfs", syscall(SYS_statfs, path, &f32));
    SHOW("statfs64", syscall(SYS_statfs64, path, 84, &f64));
    printf("statfs: type %#x bsize %u namelen %u frsize %u canary %s\n", f32.type, f32.bsize, f32.namelen, f32.frsize,
           YES(f32.canary == CANARY));
    printf("statfs64: type %#x bsize %u namelen %u blocks agree %s files agree %s canary %s\n", f64.type, f64.bsize,
           f64.namelen, YES(f64.blocks == f32.blocks), YES(f64.files == f32.files), YES(f64.canary == CANARY));
    SHOW("fstatfs", syscall(SYS_fstatfs, fd, &f32));
    SHOW("fstatfs64", syscall(SYS_fstatfs64, fd, 84, &f64));
    printf("same file system %s\n", YES(f32.type == f64.type && f32.bsize == f64.bsize));
    SHOW("statfs64 wrong size", syscall(SYS_statfs64, path, 88, &f64));
    SHOW("fstatfs64 wrong size", syscall(SYS_fstatfs64, fd, 80, &f64));
    int pp[2];
    pipe(pp);
    SHOW("fstatfs pipe", syscall(SYS_fstatfs, pp[0], &f32));
    printf("pipefs magic %#x\n", f32.type);

    uint64_t pos = 0;
    SHOW("_llseek to 5G", syscall(SYS__llseek, fd, 1, 0x40000000, &pos, SEEK_SET));
    printf("position %#llx\n", (unsigned long long)pos);
    SHOW("lseek reports the low word", syscall(SYS_lseek, fd, 0, SEEK_CUR));
    SHOW("_llseek end", syscall(SYS__llseek, fd, 0, 0, &pos, SEEK_END));
    printf("position %llu\n", (unsigned long long)pos);
    SHOW("_llseek negative", syscall(SYS__llseek, fd, 0xffffffff, 0xfffffff0, &pos, SEEK_SET));
    SHOW("_llseek bad whence", syscall(SYS__llseek, fd, 0, 0, &pos, 9));
    SHOW("_llseek pipe", syscall(SYS__llseek, pp[0], 0, 0, &pos, SEEK_CUR));

    char buf[64];
    SHOW("pwrite64 at 4G+16", syscall(SYS_pwrite64, fd, "far", 3, 16, 1));
    SHOW("pread64 at 4G+16", syscall(SYS_pread64, fd, buf, 8, 16, 1));
    printf("read back %.3s\n", buf);
    SHOW("pread64 at 7", syscall(SYS_pread64, fd, buf, 5, 7, 0));
    printf("read %.5s\n", buf);
    syscall(SYS_fstat64, fd, &st);
    printf("size now %#llx\n", (long long)st.size);
    SHOW("pread64 negative", syscall(SYS_pread64, fd, buf, 5, 0, 0x80000000));
    SHOW("pwrite64 pipe", syscall(SYS_pwrite64, pp[1], "x", 1, 0, 0));
    SHOW("ftruncate64 to 3G", syscall(SYS_ftruncate64, fd, 0xc0000000, 0));
    syscall(SYS_fstat64, fd, &st);
    printf("size %#llx\n", (long long)st.size);
    SHOW("truncate64 to 6G", syscall(SYS_truncate64, path, 0x80000000, 1));
    syscall(SYS_stat64, path, &st);
    printf("size %#llx\n", (long long)st.size);
    SHOW("truncate64 negative", syscall(SYS_truncate64, path, 0, 0x80000000));
    SHOW("ftruncate64 to 13", syscall(SYS_ftruncate64, fd, 13, 0));
    SHOW("fallocate keep size", syscall(SYS_fallocate, fd, 1, 0, 0, 8192, 0));
    syscall(SYS_fstat64, fd, &st);
    printf("size %lld allocated %s\n", (long long)st.size, YES(st.blocks >= 16));
    SHOW("fallocate negative length", syscall(SYS_fallocate, fd, 0, 0, 0, 0, 0x80000000));
    SHOW("fadvise64", syscall(SYS_fadvise64, fd, 0, 0, 100, 0));
    SHOW("fadvise64_64", syscall(SYS_fadvise64_64, fd, 0, 1, 100, 0, 3));
    SHOW("fadvise64_64 bad advice", syscall(SYS_fadvise64_64, fd, 0, 0, 0, 0, 99));
    SHOW("fadvise64_64 pipe", syscall(SYS_fadvise64_64, pp[0], 0, 0, 0, 0, 0));
    SHOW("readahead", syscall(SYS_readahead, fd, 0, 0, 4096));
    SHOW("sync_file_range", syscall(SYS_sync_file_range, fd, 0, 0, 0, 0, 2));
    SHOW("sync_file_range bad flags", syscall(SYS_sync_file_range, fd, 0, 0, 0, 0, 8));
    SHOW("sync_file_range negative", syscall(SYS_sync_file_range, fd, 0, 0x80000000, 0, 0, 2));
    SHOW("sync_file_range pipe", syscall(SYS_sync_file_range, pp[0], 0, 0, 0, 0, 2));

    lseek(fd, 0, SEEK_SET);
    struct iov32 w[2] = {{"abc", 3}, {"defgh", 5}};
    SHOW("writev", syscall(SYS_writev, fd, w, 2));
    lseek(fd, 0, SEEK_SET);
    char r1[4] = {0}, r2[16] = {0};
    struct iov32 rv[2] = {{r1, 2}, {r2, 15}};
    SHOW("readv", syscall(SYS_readv, fd, rv, 2));
    printf("got %.2s|%s", r1, r2);
    struct iov32 neg[1] = {{r1, 0x80000000u}};
    SHOW("readv negative length", syscall(SYS_readv, fd, neg, 1));
    SHOW("writev too many", syscall(SYS_writev, fd, w, 1025));
    struct iov32 pw[2] = {{"XY", 2}, {"Z", 1}};
    SHOW("pwritev at 4G", syscall(SYS_pwritev, fd, pw, 2, 0, 1));
    memset(r1, 0, sizeof r1);
    memset(r2, 0, sizeof r2);
    struct iov32 pr[2] = {{r1, 1}, {r2, 4}};
    SHOW("preadv at 4G", syscall(SYS_preadv, fd, pr, 2, 0, 1));
    printf("got %.1s|%s position %ld\n", r1, r2, (long)lseek(fd, 0, SEEK_CUR));
    SHOW("preadv negative", syscall(SYS_preadv, fd, pr, 2, 0, 0x80000000));
    SHOW("preadv pipe", syscall(SYS_preadv, pp[0], pr, 2, 0, 0));

    DIR *dp = opendir(dir);               /* glibc's readdir: getdents64 with d_off in a 32-bit off_t */
    struct dirent *e;
    int count = 0;
    long mark = -1;
    char after[256] = "";
    errno = 0;
    while ((e = readdir(dp))) {
        if (++count == 2)
            mark = telldir(dp);
        else if (count == 3)
            strcpy(after, e->d_name);
    }
    printf("readdir: %d entries, errno %s\n", count, errno ? strerrorname_np(errno) : "0");
    seekdir(dp, mark);
    e = readdir(dp);
    printf("seekdir back: the same entry %s\n", YES(e && !strcmp(e->d_name, after)));
    rewinddir(dp);
    for (count = 0; readdir(dp); count++)
        ;
    printf("rewinddir: %d entries\n", count);
    closedir(dp);

    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    char dents[4096];
    char *names[16];
    int n = 0;
    long got;
    errno = 0;
    while ((got = syscall(SYS_getdents, dfd, dents, sizeof dents)) > 0) {
        for (long off = 0; off < got;) {
            uint32_t *ino = (uint32_t *)(dents + off);
            uint16_t reclen = *(uint16_t *)(dents + off + 8);
            char *name = dents + off + 10;
            char *entry = malloc(300);
            snprintf(entry, 300, "%s type %d ino>0 %s aligned %s", name, dents[off + reclen - 1], YES(*ino != 0),
                     YES(reclen % 4 == 0));
            names[n++] = entry;
            off += reclen;
        }
    }
    printf("getdents end: %ld %s, %d entries\n", got, got < 0 ? strerrorname_np(errno) : "", n);
    qsort(names, n, sizeof names[0], by_name);
    for (int i = 0; i < n; i++)
        printf("  %s\n", names[i]);
    lseek(dfd, 0, SEEK_SET);
    SHOW("getdents tiny buffer", syscall(SYS_getdents, dfd, dents, 8));
    SHOW("getdents on a file", syscall(SYS_getdents, fd, dents, sizeof dents));
    close(dfd);

    char out_path[256];
    snprintf(out_path, sizeof out_path, "%s/out", dir);
    int out = open(out_path, O_WRONLY | O_CREAT, 0600);
    int32_t off32[2] = {4, (int32_t)CANARY};
    SHOW("sendfile from offset 4", syscall(SYS_sendfile, out, fd, &off32[0], 3));
    printf("offset now %d canary %s\n", off32[0], YES(off32[1] == (int32_t)CANARY));
    int64_t off64 = 1;
    SHOW("sendfile64 from offset 1", syscall(SYS_sendfile64, out, fd, &off64, 2));
    printf("offset now %lld\n", (long long)off64);
    SHOW("sendfile at the position", syscall(SYS_sendfile, out, fd, 0, 2));
    printf("position %ld\n", (long)lseek(fd, 0, SEEK_CUR));
    off32[0] = -1;
    SHOW("sendfile negative offset", syscall(SYS_sendfile, out, fd, &off32[0], 3));
    SHOW("sendfile from a pipe", syscall(SYS_sendfile, out, pp[0], 0, 3));
    close(out);
    int in = open(out_path, O_RDONLY);
    memset(buf, 0, sizeof buf);
    read(in, buf, sizeof buf - 1);
    printf("copied %s\n", buf);
    close(in);

    SHOW("open a 4G file without O_LARGEFILE", open(path, O_RDONLY | O_TRUNC));
    SHOW("old fstat of a 4G file", syscall(SYS_fstat, fd, &s32));
    syscall(SYS_fstat64, fd, &st);
    printf("size %#llx\n", (long long)st.size);
    ftruncate(fd, 13);
    int large = open(path, O_RDWR | O_LARGEFILE | O_APPEND), small = open(path, O_RDONLY);
    SHOW("fcntl64 F_GETFL large", syscall(SYS_fcntl64, large, F_GETFL));
    SHOW("fcntl F_GETFL", syscall(SYS_fcntl, small, F_GETFL));
    SHOW("fcntl F_SETFL", syscall(SYS_fcntl, small, F_SETFL, O_NONBLOCK));
    SHOW("fcntl64 F_GETFL again", syscall(SYS_fcntl64, small, F_GETFL));
    SHOW("fcntl F_SETFD", syscall(SYS_fcntl, fd, F_SETFD, FD_CLOEXEC));
    SHOW("fcntl64 F_GETFD", syscall(SYS_fcntl64, fd, F_GETFD));
    SHOW("fcntl64 F_DUPFD", syscall(SYS_fcntl64, fd, F_DUPFD, 20));

    SHOW("socketcall shutdown of a file", syscall(SYS_socketcall, 13, (uint32_t[]){fd, 0}));
    SHOW("socketcall send on a pipe", syscall(SYS_socketcall, 9, (uint32_t[]){pp[1], (uint32_t)"x", 1, 0}));
    SHOW("socketcall bind of a closed fd", syscall(SYS_socketcall, 2, (uint32_t[]){77, 0, 0}));
    SHOW("socketcall getsockopt of a file", syscall(SYS_socketcall, 15, (uint32_t[]){fd, 1, 2, 0, 0}));
    SHOW("socketcall 0", syscall(SYS_socketcall, 0, (uint32_t[]){0}));
    SHOW("socketcall 21", syscall(SYS_socketcall, 21, (uint32_t[]){0}));
    SHOW("socketcall bad pointer", syscall(SYS_socketcall, 13, (void *)16));
    SHOW("shutdown of a file", syscall(SYS_shutdown, fd, 0));

    uint32_t margs[6] = {0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, (uint32_t)-1, 0};
    long m = syscall(SYS_mmap, margs);
    printf("old mmap: page aligned %s\n", YES(m != -1 && m % 4096 == 0));
    if (m != -1) {
        strcpy((char *)m + 4096, "mapped");
        printf("wrote %s\n", (char *)m + 4096);
    }
    uint32_t fargs[6] = {0, 4096, PROT_READ, MAP_PRIVATE, fd, 0};
    m = syscall(SYS_mmap, fargs);
    printf("old mmap of the file: %.8s\n", m == -1 ? "failed" : (char *)m);
    fargs[5] = 100;
    SHOW("old mmap unaligned offset", syscall(SYS_mmap, fargs));
    SHOW("old mmap bad pointer", syscall(SYS_mmap, (void *)16));

    struct utsname u;
    uname(&u);
    char old[5][65];
    char oldold[5][9];
    memset(old, 0x55, sizeof old);
    memset(oldold, 0x55, sizeof oldold);
    SHOW("olduname", syscall(SYS_olduname, old));
    printf("olduname: sysname %s machine %s matches uname %s\n", old[0], old[4],
           YES(!strcmp(old[1], u.nodename) && !strcmp(old[2], u.release) && !strcmp(old[3], u.version)));
    SHOW("oldolduname", syscall(SYS_oldolduname, oldold));
    printf("oldolduname: %s %s, release prefix %s, NUL-terminated %s\n", oldold[0], oldold[4],
           YES(!strncmp(oldold[2], u.release, 8)), YES(!oldold[1][8] && !oldold[2][8] && !oldold[3][8]));

    SHOW("unknown call 500", syscall(500));
    unlink(path);
    unlink(link);
    unlink(out_path);
    rmdir(sub);
    rmdir(dir);
    return 0;
}
"""

THREADS_C = COMMON + r"""
#include <pthread.h>

struct user_desc32 { uint32_t entry, base, limit, flags; };
static __thread int tls_value = 5;
static __thread char tls_name[16] = "main";
static int results[4];
static int tls_ok[4];
static int gs_ok[4];

static void *worker(void *arg) {
    int id = (int)(intptr_t)arg;
    int first = tls_value;                   /* a new thread's copy starts from the initial image */
    tls_value = 100 + id;
    snprintf(tls_name, sizeof tls_name, "thread %d", id);
    errno = 1000 + id;
    for (volatile int i = 0; i < 200000; i++)
        ;
    unsigned short gs;
    __asm__ volatile("mov %%gs, %0" : "=r"(gs));
    struct user_desc32 d = {gs >> 3, 0, 0, 0};
    long r = syscall(SYS_get_thread_area, &d);
    gs_ok[id] = r == 0 && d.base == (uint32_t)pthread_self() && (d.flags & 1) && d.limit == 0xfffff;
    uint32_t self;
    __asm__ volatile("movl %%gs:0, %0" : "=r"(self));
    tls_ok[id] = first == 5 && self == (uint32_t)pthread_self();
    results[id] = tls_value * 10 + (errno == 1000 + id) + (strncmp(tls_name, "thread", 6) == 0);
    return (void *)(intptr_t)(id * 7);
}

int main(void) {
    pthread_t t[4];
    tls_value = 42;
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], 0, worker, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        printf("thread %d: returned %d result %d own tls %s gs base %s\n", i, (int)(intptr_t)ret, results[i],
               YES(tls_ok[i]), YES(gs_ok[i]));
    }
    printf("main keeps its tls: %d %s\n", tls_value, tls_name);

    struct user_desc32 d = {(uint32_t)-1, 0x1000, 0xfff, 1 | 16 | 64};
    SHOW("set_thread_area new entry", syscall(SYS_set_thread_area, &d));
    printf("entry %u\n", d.entry);
    struct user_desc32 q = {d.entry, 0, 0, 0};
    SHOW("get_thread_area", syscall(SYS_get_thread_area, &q));
    printf("base %#x limit %#x flags %#x\n", q.base, q.limit, q.flags);
    struct user_desc32 sixteen = {d.entry, 0x2000, 0xfff, 0};
    SHOW("set_thread_area 16-bit", syscall(SYS_set_thread_area, &sixteen));
    struct user_desc32 zero = {d.entry, 0, 0, 0};
    SHOW("set_thread_area clear", syscall(SYS_set_thread_area, &zero));
    q.entry = d.entry;
    syscall(SYS_get_thread_area, &q);
    printf("cleared: base %#x limit %#x flags %#x\n", q.base, q.limit, q.flags);
    struct user_desc32 wrong = {3, 0x1000, 0xfff, 1};
    SHOW("set_thread_area entry 3", syscall(SYS_set_thread_area, &wrong));
    struct user_desc32 code = {(uint32_t)-1, 0x1000, 0xfff, 1 | 4};
    SHOW("set_thread_area code segment", syscall(SYS_set_thread_area, &code));
    struct user_desc32 absent = {(uint32_t)-1, 0x1000, 0xfff, 1 | 32};
    SHOW("set_thread_area not present", syscall(SYS_set_thread_area, &absent));
    return 0;
}
"""

SOURCES = {"proc32": (PROC_C, ()), "time32": (TIME_C, ()), "files32": (FILES_C, ()),
           "threads32": (THREADS_C, ("-pthread",))}


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """name -> path of each program above, built with gcc -m32 -static (the module is skipped without one)."""
    return compile_static(SOURCES, tmp_path_factory.mktemp("sys32"), flags=("-m32",))


def native_stdout(path: str, *options: str) -> bytes:
    """Run path natively and under run-elf; their stdout and exit status must match. The stdout."""
    return same_as_native([path], *options)[0].stdout


def test_process_calls(programs):
    """wait4/waitpid with a 32-bit rusage, getrusage, times, the robust list, the three rlimit calls
    (0xffffffff and 0x7fffffff for infinity), sysinfo and sched_getaffinity's 4-byte words."""
    out = native_stdout(programs["proc32"])
    assert b"canary no" not in out


def test_time_calls(programs):
    """time, gettimeofday, settimeofday's checks, the 32-bit clock calls and sleeps, utime/utimes/
    futimesat/utimensat with 32-bit times, and select/_newselect/pselect6 with 32-bit timeouts."""
    out = native_stdout(programs["time32"])
    assert b"canary no" not in out and b"set no" not in out


def test_file_calls(programs):
    """stat64 and the old stat, statfs and statfs64, _llseek and the calls with split 64-bit offsets,
    8-byte iovecs, the old getdents, sendfile's 32-bit offset, socketcall, the old mmap and uname."""
    out = native_stdout(programs["files32"])
    assert b"canary no" not in out


def test_threads_get_their_own_tls_descriptor(programs):
    """pthread_create's clone(CLONE_SETTLS) gives each thread its own GDT entry and %gs base: __thread
    variables, errno and %gs:0 are per thread; set_thread_area/get_thread_area check their descriptors."""
    out = native_stdout(programs["threads32"])
    assert out.count(b"own tls yes gs base yes") == 4


def test_threads_with_a_quantum(programs):
    """The same with threads preempted often, so their %gs bases must survive context switches."""
    native_stdout(programs["threads32"], "--quantum", "20000")


def test_strace_shows_enosys_for_an_unknown_i386_number(programs):
    """An i386 number with no handler is ENOSYS, and --strace says so."""
    r = run_elf([programs["files32"]], "--strace")
    assert b"unknown call 500: -1 ENOSYS" in r.stdout
    lines = [line for line in r.stderr.decode().splitlines() if line.startswith("syscall_0x1f4(")]
    assert lines and lines[0].endswith("= -1 ENOSYS (Function not implemented)"), r.stderr.decode()[-1000:]
