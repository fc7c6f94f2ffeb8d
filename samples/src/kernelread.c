/*
 * kernelread: read from a kernel address -> SIGSEGV (supervisor page / unmapped).
 * x86-64: the kernel half (0xffffffff81000000, where Linux keeps its text);
 * i386: the kernel's quarter of the 3G/1G split (0xc1000000, 16 MiB into the
 * direct map of low memory).
 */
#include <stdio.h>

#if defined(__i386__)
#define KERNEL_ADDRESS 0xc1000000UL
#define KERNEL_ADDRESS_TEXT "0xc1000000"
#else
#define KERNEL_ADDRESS 0xffffffff81000000UL
#define KERNEL_ADDRESS_TEXT "0xffffffff81000000"
#endif

static volatile unsigned char *volatile ptr = (volatile unsigned char *)KERNEL_ADDRESS;

int main(void)
{
    printf("reading " KERNEL_ADDRESS_TEXT "\n");
    fflush(stdout);
    unsigned char v = *ptr;
    printf("survived, read %u\n", v);
    return 1;
}
