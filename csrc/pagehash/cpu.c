/* Run-time CPU feature detection: cpuid plus the OS check (XGETBV) that AVX state is saved. */
#include "pagehash.h"

#if PH_X86
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static void cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
    int regs[4];
    __cpuidex(regs, (int)leaf, (int)sub);
    for (int i = 0; i < 4; i++) r[i] = (unsigned)regs[i];
}
static unsigned long long xgetbv0(void) { return _xgetbv(0); }
#else
#include <cpuid.h>
static void cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
    r[0] = r[1] = r[2] = r[3] = 0;
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}
static unsigned long long xgetbv0(void) {
    unsigned lo, hi;
    /* raw encoding of xgetbv so no -mxsave is needed */
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif
#endif

static ph_cpu g_cpu;
static int g_cpu_done;

const ph_cpu *ph_cpu_features(void) {
    if (g_cpu_done) return &g_cpu;
#if PH_X86
    unsigned r[4];
    cpuid(0, 0, r);
    unsigned max_leaf = r[0];
    cpuid(1, 0, r);
    g_cpu.sse2 = (r[3] >> 26) & 1;
    g_cpu.ssse3 = (r[2] >> 9) & 1;
    g_cpu.sse41 = (r[2] >> 19) & 1;
    int osxsave = (r[2] >> 27) & 1, avx = (r[2] >> 28) & 1;
    unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
    int ymm_ok = avx && (xcr0 & 0x6) == 0x6;
    int zmm_ok = ymm_ok && (xcr0 & 0xe0) == 0xe0; /* opmask and both ZMM halves saved */
    if (max_leaf >= 7) {
        cpuid(7, 0, r);
        g_cpu.avx2 = ymm_ok && ((r[1] >> 5) & 1);
        g_cpu.avx512 = zmm_ok && g_cpu.avx2 && ((r[1] >> 16) & 1);
        g_cpu.avx512bw = g_cpu.avx512 && ((r[1] >> 30) & 1);
        g_cpu.sha = ((r[1] >> 29) & 1) && g_cpu.ssse3 && g_cpu.sse41;
    }
#endif
#if PH_ARM64
    g_cpu.neon = 1;
#endif
    g_cpu_done = 1;
    return &g_cpu;
}

void ph_init(void) {
    ph_cpu_features();
    ph_xxh3_set_impl(PH_XXH_AUTO);
    ph_sha256_set_impl(PH_SHA_AUTO);
    ph_compare_set_impl(PH_CMP_AUTO);
}
