/*
 * compute: pure CPU work, no memory traffic beyond registers: an xorshift64
 * loop.  argv[1]: iterations (default 100000000).  Used by the benchmark.
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 0) : 100000000UL;
    unsigned long x = 88172645463325252UL;

    for (unsigned long i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    printf("iterations: %lu\n", n);
    printf("xorshift64: %016lx\n", x);
    return 0;
}
