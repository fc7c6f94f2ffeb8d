/* nullptr: read through a NULL pointer -> SIGSEGV (page 0 is never mapped). */
#include <stdio.h>

/* volatile so the compiler can't see the NULL and turn the load into ud2. */
static int *volatile ptr;

int main(void)
{
    printf("reading through a NULL pointer\n");
    fflush(stdout);
    int v = *ptr;
    printf("survived, read %d\n", v);
    return 1;
}
