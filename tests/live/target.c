/* Test target for the live scanner: a function to be changed, a buffer to jump to, and a
 * command loop on stdin. The scanner never talks to it; only the tests do.
 *   p            print "pid func buf" (addresses in hex)
 *   c            call target_func(20) and print the result
 *   l LIB SYM    dlopen LIB and redirect target_func's entry to SYM in it
 *                (mprotect + memcpy, the way an in-process live patcher does)
 *   s            map shared anonymous RWX memory (/dev/zero (deleted) in maps), put a ret
 *                there and redirect target_func's entry to it; print its address
 *   q            exit */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

__attribute__((noinline)) int target_func(int x) {
    volatile int y = x * 3;
    for (int i = 0; i < 5; i++) y += i ^ x;
    return y + 7;
}

static unsigned char *buf;

static void redirect(void *from, void *to) {
    /* movabs rax, imm64 ; jmp rax */
    unsigned char code[12] = {0x48, 0xb8};
    uint64_t t = (uint64_t)(uintptr_t)to;
    memcpy(code + 2, &t, 8);
    code[10] = 0xff;
    code[11] = 0xe0;
    long ps = sysconf(_SC_PAGESIZE);
    uintptr_t page = (uintptr_t)from & ~(uintptr_t)(ps - 1);
    mprotect((void *)page, 2 * ps, PROT_READ | PROT_WRITE | PROT_EXEC);
    memcpy(from, code, sizeof code);
    mprotect((void *)page, 2 * ps, PROT_READ | PROT_EXEC);
}

int main(void) {
    char line[4096], lib[2048], sym[256];
    /* Near the program, so a jmp rel32 from target_func reaches it. */
    void *hint = (void *)(((uintptr_t)&target_func & ~(uintptr_t)0xfffff) - 0x1000000);
    buf = mmap(hint, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(buf, 0xc3, 4096);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready\n");
    while (fgets(line, sizeof line, stdin)) {
        if (line[0] == 'p') {
            printf("%d %lx %lx\n", getpid(), (unsigned long)(uintptr_t)&target_func,
                   (unsigned long)(uintptr_t)buf);
        } else if (line[0] == 'c') {
            printf("%d\n", target_func(20));
        } else if (line[0] == 'l' && sscanf(line + 1, "%2047s %255s", lib, sym) == 2) {
            void *h = dlopen(lib, RTLD_NOW);
            void *f = h ? dlsym(h, sym) : NULL;
            if (!f) { printf("error %s\n", dlerror()); continue; }
            redirect((void *)&target_func, f);
            printf("%lx\n", (unsigned long)(uintptr_t)f);
        } else if (line[0] == 's') {
            unsigned char *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                                         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
            if (shared == MAP_FAILED) { printf("error mmap\n"); continue; }
            memset(shared, 0xc3, 4096);
            redirect((void *)&target_func, shared + 0x80);
            printf("%lx\n", (unsigned long)(uintptr_t)(shared + 0x80));
        } else if (line[0] == 'q') {
            break;
        }
    }
    return 0;
}
