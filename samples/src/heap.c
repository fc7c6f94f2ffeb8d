/*
 * heap: brk- and mmap-backed allocation.  Many small mallocs filled with a
 * pattern and verified, a few large (>= 1 MiB, mmap-backed in glibc)
 * allocations, and a buffer grown with realloc while checking that its
 * contents survive each move.  Prints checksums only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NSMALL 20000
#define NLARGE 4

static unsigned char *small[NSMALL];

static size_t small_size(size_t i) { return 1 + (i * 37) % 300; }

int main(void)
{
    unsigned long sum = 0;
    int ok = 1;

    for (size_t i = 0; i < NSMALL; i++) {
        small[i] = malloc(small_size(i));
        if (!small[i]) {
            printf("small malloc failed\n");
            return 1;
        }
        memset(small[i], (int)(i & 0xff), small_size(i));
    }
    for (size_t i = 0; i < NSMALL; i++)
        for (size_t j = 0; j < small_size(i); j++) {
            if (small[i][j] != (unsigned char)(i & 0xff))
                ok = 0;
            sum += small[i][j];
        }
    /* Free every other one, then reallocate: exercises the free lists. */
    for (size_t i = 0; i < NSMALL; i += 2) {
        free(small[i]);
        small[i] = NULL;
    }
    for (size_t i = 0; i < NSMALL; i += 2) {
        small[i] = malloc(small_size(i) * 2);
        memset(small[i], 0x5a, small_size(i) * 2);
        sum += small[i][small_size(i)];
    }
    for (size_t i = 0; i < NSMALL; i++)
        free(small[i]);
    printf("small allocations: %d\n", NSMALL);
    printf("small ok: %s\n", ok ? "yes" : "no");
    printf("small checksum: %lu\n", sum);

    sum = 0;
    ok = 1;
    unsigned char *large[NLARGE];
    for (int i = 0; i < NLARGE; i++) {
        size_t n = ((size_t)1 << 20) * (size_t)(i + 1);
        large[i] = malloc(n);
        if (!large[i]) {
            printf("large malloc failed\n");
            return 1;
        }
        /* Fresh mmap-backed memory must read as zero; calloc-like check. */
        for (size_t off = 0; off < n; off += 4096)
            large[i][off] = (unsigned char)(off / 4096 + i);
        large[i][n - 1] = 0xee;
    }
    for (int i = 0; i < NLARGE; i++) {
        size_t n = ((size_t)1 << 20) * (size_t)(i + 1);
        for (size_t off = 0; off < n; off += 4096) {
            if (large[i][off] != (unsigned char)(off / 4096 + i))
                ok = 0;
            sum += large[i][off];
        }
        sum += large[i][n - 1];
        free(large[i]);
    }
    printf("large allocations: %d (1..%d MiB)\n", NLARGE, NLARGE);
    printf("large ok: %s\n", ok ? "yes" : "no");
    printf("large checksum: %lu\n", sum);

    /* realloc growth from 16 bytes to 8 MiB, checking the old contents. */
    size_t cap = 16, used = 0;
    unsigned char *buf = malloc(cap);
    ok = 1;
    sum = 0;
    int moves = 0;
    while (cap < ((size_t)8 << 20)) {
        for (; used < cap; used++)
            buf[used] = (unsigned char)(used * 13 + 7);
        cap *= 2;
        buf = realloc(buf, cap);
        if (!buf) {
            printf("realloc failed\n");
            return 1;
        }
        moves++;
        for (size_t k = 0; k < used; k += 97)
            if (buf[k] != (unsigned char)(k * 13 + 7))
                ok = 0;
    }
    for (size_t k = 0; k < used; k++)
        sum += buf[k];
    free(buf);
    printf("realloc steps: %d, final size: %zu\n", moves, cap);
    printf("realloc ok: %s\n", ok ? "yes" : "no");
    printf("realloc checksum: %lu\n", sum);

    /* calloc of fresh memory must be zero. */
    unsigned char *z = calloc(3 << 20, 1);
    ok = z != NULL;
    for (size_t k = 0; ok && k < (3u << 20); k += 1024)
        if (z[k])
            ok = 0;
    free(z);
    printf("calloc zero: %s\n", ok ? "yes" : "no");
    return 0;
}
