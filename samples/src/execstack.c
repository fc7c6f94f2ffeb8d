/* execstack: copy a `ret` onto the stack and call it -> SIGSEGV (NX stack). */
#include <stdio.h>
#include <string.h>

__attribute__((noinline)) static void run(void (*fn)(void))
{
    fn();
}

int main(void)
{
    volatile unsigned char code[16];

    code[0] = 0xc3; /* ret */
    printf("calling code on the stack\n");
    fflush(stdout);
    run((void (*)(void))(void *)code);
    printf("survived\n");
    return 1;
}
