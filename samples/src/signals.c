/*
 * signals: handlers run on a signal frame and return through rt_sigreturn (raise, kill,
 * blocked then unblocked, SIGCHLD with sigsuspend, a caught SIGSEGV left with siglongjmp,
 * and a blocking read interrupted by a signal with EINTR).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <setjmp.h>
#include <sys/wait.h>
static volatile sig_atomic_t got, chld;
static sigjmp_buf jb;
static void h(int s, siginfo_t *si, void *uc) { got = s; }
static void hc(int s) { chld++; }
static void hsegv(int s, siginfo_t *si, void *uc) { siglongjmp(jb, 1); }
int main(void) {
    struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, 0);
    raise(SIGUSR1); printf("raise: got %d\n", got);
    double d = 1.5; got = 0; kill(getpid(), SIGUSR1); printf("kill: got %d fp %.2f\n", got, d * 2);
    sigset_t m; sigemptyset(&m); sigaddset(&m, SIGUSR1); sigprocmask(SIG_BLOCK, &m, 0);
    got = 0; raise(SIGUSR1); printf("blocked: got %d\n", got);
    sigprocmask(SIG_UNBLOCK, &m, 0); printf("unblocked: got %d\n", got);
    signal(SIGCHLD, hc);
    pid_t c = fork(); if (!c) _exit(3);
    sigset_t e; sigemptyset(&e);
    while (!chld) sigsuspend(&e);
    int st; waitpid(c, &st, 0); printf("sigchld: %d status %d\n", chld, WEXITSTATUS(st));
    struct sigaction ss; memset(&ss, 0, sizeof ss); ss.sa_sigaction = hsegv; ss.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &ss, 0);
    if (!sigsetjmp(jb, 1)) { *(volatile int *)0 = 1; printf("no fault?\n"); } else printf("caught SIGSEGV\n");
    int p[2]; pipe(p); signal(SIGALRM, hc);
    pid_t c2 = fork(); if (!c2) { usleep(200000); kill(getppid(), SIGUSR1); _exit(0); }
    char b; sa.sa_flags = SA_SIGINFO; sigaction(SIGUSR1, &sa, 0); got = 0;
    ssize_t r = read(p[0], &b, 1); printf("read interrupted: %zd errno EINTR %d got %d\n", r, r < 0, got);
    waitpid(c2, 0, 0);
    return 0;
}
