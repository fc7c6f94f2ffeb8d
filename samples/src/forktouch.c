/*
 * forktouch: touch N MiB (one write per 4 KiB page), fork, and let the child
 * write every page again: one copy-on-write fault per page in the child.
 * argv[1]: MiB (default 64).  Used by the benchmark.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096

int main(int argc, char **argv)
{
    unsigned long mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 64;
    size_t len = mib << 20;
    volatile unsigned char *p = mmap(NULL, len ? len : PAGE, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        printf("mmap failed\n");
        return 1;
    }
    for (size_t off = 0; off < len; off += PAGE)
        p[off] = 1;
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) {
        printf("fork failed\n");
        return 1;
    }
    if (child == 0) {
        unsigned long sum = 0;
        for (size_t off = 0; off < len; off += PAGE) {
            p[off] += 1;
            sum += p[off];
        }
        _exit(sum == 2 * (len / PAGE) ? 0 : 1);
    }
    int status;
    waitpid(child, &status, 0);
    unsigned long parent_sum = 0;
    for (size_t off = 0; off < len; off += PAGE)
        parent_sum += p[off];
    printf("MiB: %lu\n", mib);
    printf("child wrote every page: %s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "yes" : "no");
    printf("parent still sees its own copy: %s\n", parent_sum == len / PAGE ? "yes" : "no");
    return 0;
}
