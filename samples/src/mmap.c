/*
 * mmap: anonymous mappings.  mmap, check zero, write, read back, munmap;
 * then mmap, write, mprotect PROT_READ, read, mprotect back to RW, write.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define PAGE 4096
#define NPAGES 16

static const char *yesno(int b) { return b ? "yes" : "no"; }

int main(void)
{
    size_t len = NPAGES * PAGE;
    unsigned long sum = 0;
    int ok = 1;

    unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mmap rw: %s\n", yesno(p != MAP_FAILED));
    if (p == MAP_FAILED)
        return 1;
    for (size_t i = 0; i < len; i += 256)
        if (p[i])
            ok = 0;
    printf("fresh mapping zero: %s\n", yesno(ok));
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)(i ^ (i >> 8));
    ok = 1;
    for (size_t i = 0; i < len; i++) {
        if (p[i] != (unsigned char)(i ^ (i >> 8)))
            ok = 0;
        sum += p[i];
    }
    printf("readback ok: %s\n", yesno(ok));
    printf("checksum: %lu\n", sum);
    printf("munmap: %s\n", yesno(munmap(p, len) == 0));

    /* Partial munmap of the middle of a mapping. */
    p = mmap(NULL, len, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 1;
    memset(p, 0x11, len);
    printf("munmap middle: %s\n", yesno(munmap(p + 4 * PAGE, 4 * PAGE) == 0));
    printf("outside hole intact: %s\n",
           yesno(p[0] == 0x11 && p[4 * PAGE - 1] == 0x11 &&
                 p[8 * PAGE] == 0x11 && p[len - 1] == 0x11));
    munmap(p, len);

    p = mmap(NULL, len, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 1;
    for (size_t i = 0; i < len; i += PAGE)
        p[i] = (unsigned char)(i / PAGE + 1);
    printf("mprotect read-only: %s\n",
           yesno(mprotect(p, len, PROT_READ) == 0));
    sum = 0;
    for (size_t i = 0; i < len; i += PAGE)
        sum += p[i];
    printf("read after mprotect: %lu\n", sum);
    printf("mprotect read-write: %s\n",
           yesno(mprotect(p, len, PROT_READ | PROT_WRITE) == 0));
    for (size_t i = 0; i < len; i += PAGE)
        p[i] += 1;
    sum = 0;
    for (size_t i = 0; i < len; i += PAGE)
        sum += p[i];
    printf("write after mprotect: %lu\n", sum);
    printf("munmap: %s\n", yesno(munmap(p, len) == 0));

    /* Invalid requests fail cleanly. */
    printf("mmap length 0 fails: %s\n",
           yesno(mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                 == MAP_FAILED));
    return 0;
}
