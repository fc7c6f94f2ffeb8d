/*
 * pipe: a child writes 200 KiB into a pipe in odd-sized chunks (more than
 * the 64 KiB a pipe holds, so the writer must block until the reader drains
 * it); the parent reads until end of file and prints the byte count and a
 * checksum, which the child also computed and returns to check.  Then a
 * second pipe whose read end is closed: the child, ignoring SIGPIPE, gets
 * EPIPE from write.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOTAL (200 * 1024)
#define CHUNK 3000

static unsigned int step(unsigned int h, unsigned char c)
{
    return (h ^ c) * 16777619u;
}

int main(void)
{
    int fds[2];
    if (pipe(fds) < 0) {
        printf("pipe failed\n");
        return 1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        unsigned char buf[CHUNK];
        unsigned int h = 2166136261u;
        size_t sent = 0;
        while (sent < TOTAL) {
            size_t n = TOTAL - sent < CHUNK ? TOTAL - sent : CHUNK;
            for (size_t i = 0; i < n; i++) {
                buf[i] = (unsigned char)((sent + i) * 31 + ((sent + i) >> 9));
                h = step(h, buf[i]);
            }
            size_t off = 0;
            while (off < n) {
                ssize_t w = write(fds[1], buf + off, n - off);
                if (w <= 0)
                    _exit(2);
                off += (size_t)w;
            }
            sent += n;
        }
        close(fds[1]);
        _exit((int)(h & 0x7f));    /* the low bits of the checksum, for the parent to compare */
    }
    close(fds[1]);

    unsigned char buf[4096];
    unsigned int h = 2166136261u;
    unsigned long total = 0, reads = 0;
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++)
            h = step(h, buf[i]);
        total += (unsigned long)n;
        reads++;
    }
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    printf("read until EOF: %s\n", n == 0 ? "yes" : "error");
    printf("bytes: %lu\n", total);
    printf("checksum: %08x\n", h);
    printf("more than one read: %s\n", reads > 1 ? "yes" : "no");
    printf("writer exited: %s, checksum matches writer: %s\n",
           WIFEXITED(status) ? "yes" : "no",
           WIFEXITED(status) && WEXITSTATUS(status) == (int)(h & 0x7f) ? "yes" : "no");

    /* A pipe nobody reads: write fails with EPIPE once SIGPIPE is ignored. */
    if (pipe(fds) < 0) {
        printf("pipe failed\n");
        return 1;
    }
    close(fds[0]);
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        signal(SIGPIPE, SIG_IGN);
        ssize_t w = write(fds[1], "x", 1);
        printf("write to a pipe without readers: %s\n", w < 0 ? "failed" : "succeeded");
        printf("EPIPE: %s\n", w < 0 && errno == EPIPE ? "yes" : "no");
        fflush(stdout);
        _exit(0);
    }
    close(fds[1]);
    waitpid(pid, &status, 0);
    printf("second child exited: %s, status %d\n", WIFEXITED(status) ? "yes" : "no",
           WEXITSTATUS(status));
    return 0;
}
