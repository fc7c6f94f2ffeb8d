/* kernelread: read from a kernel-half address -> SIGSEGV (supervisor page / unmapped). */
#include <stdio.h>

static volatile unsigned char *volatile ptr =
    (volatile unsigned char *)0xffffffff81000000UL;

int main(void)
{
    printf("reading 0xffffffff81000000\n");
    fflush(stdout);
    unsigned char v = *ptr;
    printf("survived, read %u\n", v);
    return 1;
}
