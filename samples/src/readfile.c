/*
 * readfile: open(), read() in chunks, close().  Prints the size and an
 * FNV-1a checksum of the file named by argv[1] (default: argv[0], the
 * program's own binary), then opens a missing file and prints the errno name.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *errname(int e)
{
    switch (e) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EBADF: return "EBADF";
    case EFAULT: return "EFAULT";
    case EINVAL: return "EINVAL";
    case ENOSYS: return "ENOSYS";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    default: return "other";
    }
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : argv[0];
    unsigned char buf[1000]; /* deliberately not a power of two */
    unsigned int h = 2166136261u;
    unsigned long size = 0;
    unsigned long chunks = 0;
    struct stat st;
    ssize_t n;

    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("open %s: %s\n", path, errname(errno));
        return 1;
    }
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            h ^= buf[i];
            h *= 16777619u;
        }
        size += (unsigned long)n;
        chunks++;
    }
    if (n < 0) {
        printf("read: %s\n", errname(errno));
        return 1;
    }
    printf("size: %lu\n", size);
    printf("reads: %lu\n", chunks);
    printf("fnv1a: %08x\n", h);
    printf("fstat size matches: %s\n",
           fstat(fd, &st) == 0 && (unsigned long)st.st_size == size ? "yes" : "no");
    printf("close: %s\n", close(fd) == 0 ? "ok" : errname(errno));
    printf("read after close: %s\n",
           read(fd, buf, 1) < 0 ? errname(errno) : "succeeded");

    fd = open("/nonexistent-run-elf-dir/missing-file", O_RDONLY);
    printf("open missing file: %s\n", fd < 0 ? errname(errno) : "succeeded");
    return 0;
}
