/*
 * touch: one write per 4 KiB page of a freshly mmap'd buffer, i.e. one
 * demand-zero page fault per page.  argv[1]: MiB to touch (default 64).
 * Used by the benchmark.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define PAGE 4096

int main(int argc, char **argv)
{
    unsigned long mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 64;
    size_t len = mib << 20;
    unsigned long pages = 0, sum = 0;

    if (len == 0) {
        printf("pages touched: 0\n");
        return 0;
    }
    volatile unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        printf("mmap failed\n");
        return 1;
    }
    for (size_t off = 0; off < len; off += PAGE) {
        p[off] = (unsigned char)(off / PAGE);
        pages++;
    }
    for (size_t off = 0; off < len; off += PAGE)
        sum += p[off];
    printf("MiB: %lu\n", mib);
    printf("pages touched: %lu\n", pages);
    printf("checksum: %lu\n", sum);
    return 0;
}
