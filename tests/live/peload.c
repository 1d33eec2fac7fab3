/* Maps a PE image the way Wine does when its sections are not page-aligned in the file: the
 * header page mapped from the file, every section read into anonymous memory at its RVA, code
 * made read+execute. At the preferred ImageBase, so no relocation is needed. With a second
 * argument N, N zeroed execute-read pages follow SizeOfImage, as 24H2 maps hotpatch extension
 * pages after a hotpatchable image. Then waits on stdin ("p" prints "pid base", "q" exits).
 * A test helper: the scanner never talks to it. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static uint32_t u32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t u64(const unsigned char *p) { return u32(p) | (uint64_t)u32(p + 4) << 32; }

int main(int argc, char **argv) {
    unsigned char h[4096];
    char line[64];
    if (argc < 2) return 2;
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0 || pread(fd, h, sizeof h, 0) != sizeof h) return 3;
    uint32_t pe = u32(h + 0x3c);
    unsigned nsec = h[pe + 6] | h[pe + 7] << 8, optsize = h[pe + 20] | h[pe + 21] << 8;
    const unsigned char *opt = h + pe + 24;
    uint64_t base = u64(opt + 24);
    uint32_t size_of_image = u32(opt + 56);
    unsigned char *img = mmap((void *)base, size_of_image, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (img != (void *)base) return 4;
    /* the header page from the file, as Wine maps it */
    if (mmap(img, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0) != img) return 5;
    uint32_t size_of_headers = u32(opt + 60);  /* the loader zero-fills past the headers */
    if (size_of_headers < 4096) memset(img + size_of_headers, 0, 4096 - size_of_headers);
    mprotect(img, 4096, PROT_READ);
    const unsigned char *sec = opt + optsize;
    for (unsigned i = 0; i < nsec; i++, sec += 40) {
        uint32_t vsize = u32(sec + 8), rva = u32(sec + 12), rawsize = u32(sec + 16);
        uint32_t rawptr = u32(sec + 20), chars = u32(sec + 36);
        uint32_t n = rawsize < vsize ? rawsize : vsize;
        if (n && pread(fd, img + rva, n, rawptr) != (ssize_t)n) return 6;
        uint32_t span = (vsize + 4095) & ~4095u;
        int prot = PROT_READ | (chars & 0x20000000 ? PROT_EXEC : 0) | (chars & 0x80000000 ? PROT_WRITE : 0);
        mprotect(img + rva, span, prot);
    }
    if (argc > 2) {
        size_t ext = (size_t)atoi(argv[2]) * 4096;
        unsigned char *at = img + ((size_of_image + 4095) & ~4095u);
        if (ext && mmap(at, ext, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                        -1, 0) != at) return 7;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready\n");
    while (fgets(line, sizeof line, stdin)) {
        if (line[0] == 'p') printf("%d %lx\n", getpid(), (unsigned long)base);
        if (line[0] == 'q') break;
    }
    return 0;
}
