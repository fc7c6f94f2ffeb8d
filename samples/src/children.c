/*
 * children: fork 20 children, child i exits with status (i * 3) % 256.  The
 * parent reaps them all with waitpid(-1) in whatever order they end, prints
 * the statuses sorted and how many it reaped; then waitpid(-1) has nothing
 * left to wait for and fails with ECHILD.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define N 20

static int cmp(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

int main(void)
{
    int statuses[N];
    int reaped = 0, other = 0;

    fflush(stdout);
    for (int i = 0; i < N; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            printf("fork %d failed\n", i);
            return 1;
        }
        if (pid == 0)
            _exit((i * 3) % 256);
    }
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0)
            break;
        if (reaped < N && WIFEXITED(status))
            statuses[reaped++] = WEXITSTATUS(status);
        else
            other++;
    }
    int err = errno;
    qsort(statuses, reaped, sizeof(int), cmp);
    printf("statuses:");
    for (int i = 0; i < reaped; i++)
        printf(" %d", statuses[i]);
    printf("\nreaped: %d\n", reaped);
    printf("not exited normally: %d\n", other);
    printf("waitpid after the last: %s\n", err == ECHILD ? "ECHILD" : "other");
    errno = 0;
    int again = (int)waitpid(-1, NULL, WNOHANG);
    printf("waitpid again: %d %s\n", again, errno == ECHILD ? "ECHILD" : "other");
    return 0;
}
