/*
 * spawn: posix_spawn (glibc and musl both build it on clone with CLONE_VM
 * and CLONE_VFORK: the child borrows the parent's memory until it execs) of
 * argv[1] (default samples/bin/hello), then waitpid for its status; then
 * posix_spawn of a path that does not exist, which must report ENOENT to the
 * parent.
 */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *errname(int e)
{
    switch (e) {
    case 0: return "0";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case ENOEXEC: return "ENOEXEC";
    case ENOSYS: return "ENOSYS";
    case ECHILD: return "ECHILD";
    default: return "other";
    }
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "samples/bin/hello";
    char *child_argv[] = {(char *)path, NULL};
    pid_t pid = 0;
    int status;

    printf("spawn %s\n", path);
    fflush(stdout);
    int err = posix_spawn(&pid, path, NULL, NULL, child_argv, environ);
    /* Print nothing until the child is gone: its output would race with ours. */
    pid_t w = err == 0 ? waitpid(pid, &status, 0) : -1;
    printf("posix_spawn: %s\n", errname(err));
    if (err == 0) {
        printf("waitpid returned the child: %s\n", w == pid ? "yes" : "no");
        printf("child exited: %s, status %d\n", WIFEXITED(status) ? "yes" : "no",
               WEXITSTATUS(status));
    }

    char *missing_argv[] = {"missing", NULL};
    pid = 0;
    err = posix_spawn(&pid, "/nonexistent-run-elf-dir/missing-program", NULL, NULL,
                      missing_argv, environ);
    printf("posix_spawn missing: %s\n", errname(err));
    /* Nothing is left to wait for (glibc and musl reap a child whose exec failed). */
    errno = 0;
    w = waitpid(-1, &status, 0);
    printf("waitpid afterwards: %s\n", w < 0 ? errname(errno) : "found a child");
    return 0;
}
