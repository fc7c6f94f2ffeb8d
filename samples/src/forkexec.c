/*
 * forkexec: fork, and the child execs a program (argv[1], default
 * samples/bin/hello, relative to the repository root) while the parent waits
 * and prints the child's exit status.  Then failed execs, which return to
 * the caller with an error and leave it running: a path that does not exist
 * (ENOENT) and a directory (EACCES).
 */
#include <errno.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *errname(int e)
{
    switch (e) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case ENOEXEC: return "ENOEXEC";
    case ENOTDIR: return "ENOTDIR";
    case EFAULT: return "EFAULT";
    case ENOSYS: return "ENOSYS";
    default: return "other";
    }
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "samples/bin/hello";
    char *child_argv[] = {(char *)path, NULL};

    printf("parent: exec %s in a child\n", path);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        printf("fork failed\n");
        return 1;
    }
    if (pid == 0) {
        execve(path, child_argv, environ);
        printf("child: execve failed: %s\n", errname(errno));
        fflush(stdout);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid) {
        printf("waitpid failed\n");
        return 1;
    }
    printf("parent: child exited: %s, status %d\n", WIFEXITED(status) ? "yes" : "no",
           WEXITSTATUS(status));

    char *missing_argv[] = {"missing", NULL};
    int r = execve("/nonexistent-run-elf-dir/missing-program", missing_argv, environ);
    printf("execve missing: returned %d, %s\n", r, errname(errno));

    char *dir_argv[] = {"/", NULL};
    r = execve("/", dir_argv, environ);
    printf("execve directory: returned %d, %s\n", r, errname(errno));

    printf("still running after failed execs: yes\n");
    return 0;
}
