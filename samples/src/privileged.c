/* privileged: execute `hlt` at CPL 3 -> #GP -> SIGSEGV on Linux. */
#include <stdio.h>

int main(void)
{
    printf("executing hlt\n");
    fflush(stdout);
    __asm__ volatile("hlt");
    printf("survived\n");
    return 1;
}
