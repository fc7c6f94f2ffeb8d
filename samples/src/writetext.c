/* writetext: write a byte into the program's own code -> SIGSEGV (.text is R-X). */
#include <stdio.h>

__attribute__((noinline)) static void poke(volatile unsigned char *p)
{
    *p = 0xc3;
}

int main(void)
{
    printf("writing to the code of main\n");
    fflush(stdout);
    poke((volatile unsigned char *)(void *)main);
    printf("survived\n");
    return 1;
}
