/* mprotectwrite: mmap RW, write, mprotect PROT_READ, write again -> SIGSEGV. */
#include <stdio.h>
#include <sys/mman.h>

int main(void)
{
    volatile unsigned char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        printf("mmap failed\n");
        return 1;
    }
    p[0] = 1;
    printf("first write ok: %s\n", p[0] == 1 ? "yes" : "no");
    printf("mprotect PROT_READ: %s\n", mprotect((void *)p, 4096, PROT_READ) == 0 ? "ok" : "failed");
    printf("read after mprotect: %u\n", p[0]);
    printf("writing to a read-only page\n");
    fflush(stdout);
    p[0] = 2;
    printf("survived\n");
    return 1;
}
