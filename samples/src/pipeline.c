/*
 * pipeline: what a shell does for `PROGRAM | upcase`.  The parent makes a
 * pipe and forks two children: the first dup2()s the write end onto its
 * stdout and execs argv[1] (default samples/bin/hello; further arguments are
 * passed on); the second dup2()s the read end onto its stdin and copies the
 * lines it reads to stdout in upper case.  The parent closes both ends (else
 * the reader would never see end of file) and waits for both.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv)
{
    char *default_argv[] = {"samples/bin/hello", NULL};
    char **prog = argc > 1 ? argv + 1 : default_argv;
    int fds[2];

    if (pipe(fds) < 0) {
        printf("pipe failed\n");
        return 1;
    }
    fflush(stdout);
    pid_t writer = fork();
    if (writer == 0) {
        if (dup2(fds[1], 1) != 1)
            _exit(126);
        close(fds[0]);
        close(fds[1]);
        execve(prog[0], prog, environ);
        _exit(127);
    }
    pid_t reader = fork();
    if (reader == 0) {
        if (dup2(fds[0], 0) != 0)
            _exit(126);
        close(fds[0]);
        close(fds[1]);
        char line[4096];
        int lines = 0;
        while (fgets(line, sizeof(line), stdin)) {
            for (char *p = line; *p; p++)
                *p = (char)toupper((unsigned char)*p);
            fputs(line, stdout);
            lines++;
        }
        printf("[%d line%s]\n", lines, lines == 1 ? "" : "s");
        fflush(stdout);
        _exit(0);
    }
    close(fds[0]);
    close(fds[1]);

    int ws, rs;
    pid_t w1 = waitpid(writer, &ws, 0);
    pid_t w2 = waitpid(reader, &rs, 0);
    printf("writer: %s, status %d\n", w1 == writer && WIFEXITED(ws) ? "exited" : "other",
           WEXITSTATUS(ws));
    printf("reader: %s, status %d\n", w2 == reader && WIFEXITED(rs) ? "exited" : "other",
           WEXITSTATUS(rs));
    return 0;
}
