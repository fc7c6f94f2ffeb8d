/*
 * mmapfile: file-backed memory.  A private mapping sees the file and keeps
 * its own writes; a shared mapping's writes reach the file (msync, munmap)
 * and the other process; a write() to the file shows in a mapping of it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096

int main(void)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/run-elf-mmapfile-%d.tmp", (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) { printf("open failed\n"); return 1; }
    char buf[3 * PAGE];
    for (int i = 0; i < (int)sizeof buf; i++) buf[i] = 'a' + i % 26;
    write(fd, buf, sizeof buf - 100);                       /* the last page is partial */

    char *priv = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    printf("private sees file: %s\n", memcmp(priv, buf, sizeof buf - 100) == 0 ? "yes" : "no");
    printf("zero past end of file: %s\n", priv[3 * PAGE - 1] == 0 ? "yes" : "no");
    priv[0] = 'X';
    char c; pread(fd, &c, 1, 0);
    printf("private write stays private: %s\n", c == 'a' ? "yes" : "no");

    char *shared = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, PAGE);
    shared[0] = 'S';
    msync(shared, PAGE, MS_SYNC);
    pread(fd, &c, 1, PAGE);
    printf("shared write reaches the file: %s\n", c == 'S' ? "yes" : "no");

    fflush(stdout);
    pid_t child = fork();
    if (child == 0) { shared[1] = 'C'; _exit(0); }
    waitpid(child, NULL, 0);
    printf("child's shared write seen by parent: %s\n", shared[1] == 'C' ? "yes" : "no");

    pwrite(fd, "W", 1, PAGE + 2);
    printf("write() seen through the mapping: %s\n", shared[2] == 'W' ? "yes" : "no");
    printf("private mapping of page 1 follows the file until written: %s\n", priv[PAGE + 2] == 'W' ? "yes" : "no");

    shared[3] = 'M';
    munmap(shared, 2 * PAGE);
    pread(fd, &c, 1, PAGE + 3);
    printf("munmap writes back: %s\n", c == 'M' ? "yes" : "no");

    char *ro = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, open(path, O_RDONLY), 0);
    printf("read-only shared mapping: %s\n", ro != MAP_FAILED && ro[0] == 'a' ? "yes" : "no");
    errno = 0;
    void *bad = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, open(path, O_RDONLY), 0);
    printf("shared writable mapping of a read-only descriptor: %s\n", bad == MAP_FAILED && errno == EACCES ? "EACCES" : "mapped");

    char *grown = mremap(priv, 3 * PAGE, 64 * PAGE, MREMAP_MAYMOVE);
    printf("mremap keeps contents: %s\n", grown != MAP_FAILED && grown[0] == 'X' && grown[1] == 'b' ? "yes" : "no");
    unlink(path);
    return 0;
}
