/*
 * recursion: deep recursion with a 1 KiB local array per frame, so the stack
 * grows by ~3 MiB by default (well beyond the initial stack pages, well
 * within an 8 MiB limit).  argv[1]: depth (default 3000).
 */
#include <stdio.h>
#include <stdlib.h>

static int max_depth;

__attribute__((noinline)) static unsigned long descend(int depth)
{
    volatile unsigned char frame[1024];
    unsigned long r;

    for (int i = 0; i < (int)sizeof(frame); i += 64)
        frame[i] = (unsigned char)(depth + i);
    if (depth > max_depth)
        max_depth = depth;
    if (depth == 0)
        r = 1;
    else
        r = descend(depth - 1) * 31;
    /* Use the frame after the call returns, so it is not a tail call. */
    for (int i = 0; i < (int)sizeof(frame); i += 64)
        r += frame[i];
    return r;
}

int main(int argc, char **argv)
{
    int depth = argc > 1 ? atoi(argv[1]) : 3000;
    volatile char top;
    unsigned long sum = descend(depth);

    (void)top;
    printf("depth reached: %d\n", max_depth);
    printf("checksum: %lu\n", sum);
    return 0;
}
