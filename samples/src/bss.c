/*
 * bss: initialised .data and a large zero-filled .bss.  Checks that .data
 * holds its initial values and that .bss starts out zero, then writes one
 * byte per page of .bss (demand-zero faults) and prints a checksum.
 * argv[1]: number of pages to touch (default 64, at most MAX_PAGES).
 */
#include <stdio.h>
#include <stdlib.h>

#define PAGE 4096
#define MAX_PAGES 256

/* Spans several pages of .data, with a value on each. */
static unsigned int data[3 * PAGE / sizeof(unsigned int)] = {
    [0] = 0x11111111, [1] = 0x22222222, [2] = 0x33333333,
    [PAGE / sizeof(unsigned int)] = 0x44444444,
    [2 * PAGE / sizeof(unsigned int)] = 0x55555555,
    [3 * PAGE / sizeof(unsigned int) - 1] = 0x66666666,
};

static unsigned char big[MAX_PAGES * PAGE];

int main(int argc, char **argv)
{
    long pages = argc > 1 ? atol(argv[1]) : 64;
    unsigned long sum = 0;
    int zero = 1;

    if (pages < 0)
        pages = 0;
    if (pages > MAX_PAGES)
        pages = MAX_PAGES;

    for (size_t i = 0; i < sizeof(data) / sizeof(data[0]); i++)
        sum += data[i];
    printf("data ok: %s\n",
           data[0] == 0x11111111 && data[1] == 0x22222222 &&
           data[2] == 0x33333333 && data[PAGE / 4] == 0x44444444 &&
           data[2 * PAGE / 4] == 0x55555555 &&
           data[3 * PAGE / 4 - 1] == 0x66666666 ? "yes" : "no");
    printf("data sum: %lu\n", sum);

    for (long p = 0; p < pages; p++)
        for (size_t o = 0; o < PAGE; o += 512)
            if (((volatile unsigned char *)big)[p * PAGE + o] != 0)
                zero = 0;
    printf("bss zero: %s\n", zero ? "yes" : "no");

    for (long p = 0; p < pages; p++)
        big[p * PAGE + (p * 17) % PAGE] = (unsigned char)(p * 7 + 1);

    sum = 0;
    for (size_t i = 0; i < sizeof(big); i++)
        sum = sum * 31 + big[i];
    printf("pages touched: %ld\n", pages);
    printf("bss checksum: %lu\n", sum);

    /* Write to .data too (copy-on-write of a file-backed private page). */
    data[PAGE / 4] += 1;
    printf("data write ok: %s\n", data[PAGE / 4] == 0x44444445 ? "yes" : "no");
    return 0;
}
