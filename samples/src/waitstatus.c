/*
 * waitstatus: the three ways a wait status reads.  A child blocked in read()
 * on a pipe nobody writes is killed by SIGTERM from kill(): WIFSIGNALED,
 * WTERMSIG.  A child blocked reading a pipe is still running, so waitpid with
 * WNOHANG returns 0; the parent then writes a byte, the child exits 42:
 * WIFEXITED, WEXITSTATUS.  A child's getppid() is its parent's getpid().
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void describe(const char *who, int status)
{
    printf("%s: WIFEXITED %d", who, WIFEXITED(status) ? 1 : 0);
    if (WIFEXITED(status))
        printf(" WEXITSTATUS %d", WEXITSTATUS(status));
    printf(" WIFSIGNALED %d", WIFSIGNALED(status) ? 1 : 0);
    if (WIFSIGNALED(status))
        printf(" WTERMSIG %d (%s)", WTERMSIG(status),
               WTERMSIG(status) == SIGTERM ? "SIGTERM" : "other");
    printf("\n");
}

int main(void)
{
    int fds[2], status;
    char c;
    pid_t parent = getpid();

    /* 1. Killed by a signal while blocked in read(). */
    if (pipe(fds) < 0) {
        printf("pipe failed\n");
        return 1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[1]);                 /* the parent keeps the write end: no EOF */
        for (;;)
            read(fds[0], &c, 1);
    }
    close(fds[0]);
    printf("WNOHANG while it blocks: %d\n", (int)waitpid(pid, &status, WNOHANG));
    printf("kill: %d\n", kill(pid, SIGTERM));
    printf("waitpid returned the child: %s\n", waitpid(pid, &status, 0) == pid ? "yes" : "no");
    describe("killed child", status);
    close(fds[1]);

    /* 2. Still running (WNOHANG gives 0) until released, then exits 42. */
    if (pipe(fds) < 0) {
        printf("pipe failed\n");
        return 1;
    }
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        close(fds[1]);
        ssize_t n = read(fds[0], &c, 1);
        _exit(n == 1 && c == 'g' ? 42 : 1);
    }
    close(fds[0]);
    printf("WNOHANG before it exits: %d\n", (int)waitpid(pid, &status, WNOHANG));
    write(fds[1], "g", 1);
    close(fds[1]);
    printf("waitpid returned the child: %s\n", waitpid(pid, &status, 0) == pid ? "yes" : "no");
    describe("released child", status);

    /* 3. The child's parent is us. */
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        printf("ppid ok: %s\n", getppid() == parent ? "yes" : "no");
        printf("child pid differs from parent: %s\n", getpid() != parent ? "yes" : "no");
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, &status, 0);
    printf("fork returned the child's pid: %s\n", pid > 0 && pid != parent ? "yes" : "no");
    describe("third child", status);

    errno = 0;
    printf("no more children: %s\n", waitpid(-1, &status, 0) < 0 && errno == ECHILD ? "ECHILD" : "no");
    return 0;
}
