/*
 * stackoverflow: unbounded recursion -> SIGSEGV once the stack reaches its
 * limit (8 MiB by default; the guard gap below the stack is never mapped).
 */
#include <stdio.h>

static volatile int sink;

__attribute__((noinline)) static int recurse(int n)
{
    volatile unsigned char frame[512];

    frame[0] = (unsigned char)n;
    frame[511] = (unsigned char)n;
    /* Using frame after the call prevents a tail call. */
    return recurse(n + 1) + frame[0] + frame[511];
}

int main(void)
{
    printf("recursing without bound\n");
    fflush(stdout);
    sink = recurse(0);
    printf("survived\n");
    return 1;
}
