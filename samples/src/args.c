/*
 * args: what the loader put on the initial stack: argc, argv, the
 * environment and the auxiliary vector.  Prints facts only (no addresses or
 * random bytes), and exits with status argc so the exit status is checked too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <unistd.h>

extern char _start[];

static const char *yesno(int b) { return b ? "yes" : "no"; }

int main(int argc, char **argv)
{
    const char *v = getenv("RUN_ELF_SAMPLE");

    printf("argc: %d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d]: %s\n", i, argv[i]);
    printf("argv[argc] == NULL: %s\n", yesno(argv[argc] == NULL));
    printf("RUN_ELF_SAMPLE: %s\n", v ? v : "(unset)");
    printf("AT_PAGESZ: %lu\n", getauxval(AT_PAGESZ));
    printf("AT_RANDOM present: %s\n", yesno(getauxval(AT_RANDOM) != 0));
    printf("AT_PHDR present: %s\n", yesno(getauxval(AT_PHDR) != 0));
    printf("AT_PHENT: %lu\n", getauxval(AT_PHENT));
    printf("AT_ENTRY == _start: %s\n",
           yesno(getauxval(AT_ENTRY) == (unsigned long)_start));
    printf("AT_UID == getuid(): %s\n", yesno(getauxval(AT_UID) == getuid()));
    printf("AT_EUID == geteuid(): %s\n", yesno(getauxval(AT_EUID) == geteuid()));
    printf("AT_GID == getgid(): %s\n", yesno(getauxval(AT_GID) == getgid()));
    printf("AT_EGID == getegid(): %s\n", yesno(getauxval(AT_EGID) == getegid()));
    printf("AT_SECURE: %lu\n", getauxval(AT_SECURE));
    return argc;
}
