/*
 * forkcow: fork() gives the child a copy of every kind of memory, and the
 * copies are independent.  A global with an initial value (.data), a .bss
 * variable, a multi-page malloc buffer and a stack array are set before fork;
 * the child changes all four and prints them; the parent waits and prints its
 * own, unchanged, values.  The parent also fills a 4 MiB heap buffer before
 * fork; the child writes every second page of it (512 pages: copy-on-write
 * copies) and the parent checks afterwards that its bytes are still its own,
 * then rewrites every page itself (the child is gone, so these writes reuse
 * the frames).  Only values and checksums are printed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096
#define HEAP_PAGES 6                   /* small buffer: several pages */
#define BIG (4 << 20)                  /* 4 MiB */
#define BIG_PAGES (BIG / PAGE)
#define CHILD_STRIDE 2                 /* the child writes every second page */

int global_init = 12345;               /* .data */
int bss_var;                           /* .bss */

static unsigned long checksum(const unsigned char *p, size_t n)
{
    unsigned long h = (unsigned long)1469598103934665603ull;   /* FNV-1a; its low half on i386 */
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ul;
    }
    return h;
}

static void show(const char *who, const unsigned char *heap, const char *stack)
{
    printf("%s: global_init=%d bss_var=%d heap[0]=%u heap[last]=%u heap sum=%016lx stack=\"%s\"\n",
           who, global_init, bss_var, heap[0], heap[HEAP_PAGES * PAGE - 1],
           checksum(heap, HEAP_PAGES * PAGE), stack);
}

int main(void)
{
    char stack_arr[32];
    unsigned char *heap = malloc(HEAP_PAGES * PAGE);
    unsigned char *big = malloc(BIG);
    if (!heap || !big) {
        printf("malloc failed\n");
        return 1;
    }
    bss_var = 7;
    strcpy(stack_arr, "parent stack");
    for (size_t i = 0; i < HEAP_PAGES * PAGE; i++)
        heap[i] = (unsigned char)(i * 7);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (unsigned char)(i ^ (i >> 12));
    unsigned long big_sum = checksum(big, BIG);

    show("before fork", heap, stack_arr);
    fflush(stdout);

    pid_t pid = fork();
    if (pid < 0) {
        printf("fork failed\n");
        return 1;
    }
    if (pid == 0) {
        global_init = 54321;
        bss_var = 99;
        memset(heap, 0xAB, HEAP_PAGES * PAGE);
        strcpy(stack_arr, "child stack");
        show("child", heap, stack_arr);
        printf("child: big buffer inherited intact: %s\n",
               checksum(big, BIG) == big_sum ? "yes" : "no");
        int pages = 0;
        for (size_t p = 0; p < BIG_PAGES; p += CHILD_STRIDE) {
            big[p * PAGE + 100] = 0xEE;
            pages++;
        }
        printf("child: wrote %d pages of the big buffer, sum now differs: %s\n", pages,
               checksum(big, BIG) != big_sum ? "yes" : "no");
        fflush(stdout);
        _exit(7);
    }

    int status;
    if (waitpid(pid, &status, 0) != pid) {
        printf("waitpid failed\n");
        return 1;
    }
    printf("parent: child exited: %s, status %d\n", WIFEXITED(status) ? "yes" : "no",
           WEXITSTATUS(status));
    show("parent", heap, stack_arr);
    printf("parent: big buffer unchanged: %s\n", checksum(big, BIG) == big_sum ? "yes" : "no");

    /* The child is gone: the parent is the only owner of every page left. */
    for (size_t p = 0; p < BIG_PAGES; p++)
        big[p * PAGE + 200] = 0x11;
    printf("parent: rewrote %d pages, sum now differs: %s\n", BIG_PAGES,
           checksum(big, BIG) != big_sum ? "yes" : "no");
    free(big);
    free(heap);
    return 0;
}
