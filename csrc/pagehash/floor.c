/* The read floor: every byte of a buffer loaded once with loads of a given width (16, 32 or 64
 * bytes; from DRAM on the development machine 16-byte loads were ~10 % faster than 64-byte
 * ones in paired runs, so the benchmark takes the best of every width), split
 * over threads like the page hashing is, and folded into a value the caller gets back (so no
 * load can be dropped): the XOR of its 64-bit little-endian words, with the bytes after the
 * last whole word XORed into the low byte. No hash over the same bytes can beat it; the benchmark prints it
 * beside the hashing rows to show where memory, not code, sets the pace. Each width runs with
 * and without a prefetch a given distance ahead (the XXH3 loop prefetches one page ahead, see
 * pagehash.h): a floor without it could be beaten by code that has it. */
#include <stdlib.h>

#include "pagehash.h"

#if PH_X86
#include <immintrin.h>
#endif

typedef struct {
    const uint8_t *p;
    size_t len;
    int width; /* bytes a load: 16, 32 or 64 (8 = plain 64-bit loads) */
    size_t ahead; /* prefetch this many bytes ahead of each 64-byte line; 0: none */
    uint64_t fold;
} floor_task;

static uint64_t fold_tail(const uint8_t *p, size_t len, size_t ahead) {
    uint64_t x = 0;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        if (ahead && i % 64 == 0) PH_PREFETCH(p + i + ahead);
        x ^= ph_read64(p + i);
    }
    for (; i < len; i++) x ^= p[i];
    return x;
}

#if PH_X86
PH_TARGET("avx2")
static inline uint64_t fold256(__m256i a) {
    __m128i x = _mm_xor_si128(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    return (uint64_t)_mm_cvtsi128_si64(_mm_xor_si128(x, _mm_unpackhi_epi64(x, x)));
}

PH_TARGET("sse2")
static uint64_t fold_sse2(const uint8_t *p, size_t len, size_t ahead) {
    __m128i a = _mm_setzero_si128(), b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 64 <= len; i += 64) {
        if (ahead) PH_PREFETCH(p + i + ahead);
        a = _mm_xor_si128(a, _mm_loadu_si128((const __m128i *)(p + i)));
        b = _mm_xor_si128(b, _mm_loadu_si128((const __m128i *)(p + i + 16)));
        c = _mm_xor_si128(c, _mm_loadu_si128((const __m128i *)(p + i + 32)));
        d = _mm_xor_si128(d, _mm_loadu_si128((const __m128i *)(p + i + 48)));
    }
    a = _mm_xor_si128(_mm_xor_si128(a, b), _mm_xor_si128(c, d));
    return (uint64_t)_mm_cvtsi128_si64(_mm_xor_si128(a, _mm_unpackhi_epi64(a, a))) ^
           fold_tail(p + i, len - i, 0);
}

PH_TARGET("avx512f")
static uint64_t fold_avx512(const uint8_t *p, size_t len, size_t ahead) {
    __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 256 <= len; i += 256) {
        if (ahead)
            for (int k = 0; k < 4; k++) PH_PREFETCH(p + i + 64 * k + ahead);
        a = _mm512_xor_si512(a, _mm512_loadu_si512((const void *)(p + i)));
        b = _mm512_xor_si512(b, _mm512_loadu_si512((const void *)(p + i + 64)));
        c = _mm512_xor_si512(c, _mm512_loadu_si512((const void *)(p + i + 128)));
        d = _mm512_xor_si512(d, _mm512_loadu_si512((const void *)(p + i + 192)));
    }
    a = _mm512_xor_si512(_mm512_xor_si512(a, b), _mm512_xor_si512(c, d));
    return fold256(_mm256_xor_si256(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1))) ^
           fold_tail(p + i, len - i, 0);
}

PH_TARGET("avx2")
static uint64_t fold_avx2(const uint8_t *p, size_t len, size_t ahead) {
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 128 <= len; i += 128) {
        if (ahead) {
            PH_PREFETCH(p + i + ahead);
            PH_PREFETCH(p + i + 64 + ahead);
        }
        a = _mm256_xor_si256(a, _mm256_loadu_si256((const __m256i *)(p + i)));
        b = _mm256_xor_si256(b, _mm256_loadu_si256((const __m256i *)(p + i + 32)));
        c = _mm256_xor_si256(c, _mm256_loadu_si256((const __m256i *)(p + i + 64)));
        d = _mm256_xor_si256(d, _mm256_loadu_si256((const __m256i *)(p + i + 96)));
    }
    a = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
    return fold256(a) ^ fold_tail(p + i, len - i, 0);
}
#endif

static void fold_range(void *arg) {
    floor_task *t = (floor_task *)arg;
    switch (t->width) {
#if PH_X86
    case 64: t->fold = fold_avx512(t->p, t->len, t->ahead); break;
    case 32: t->fold = fold_avx2(t->p, t->len, t->ahead); break;
    case 16: t->fold = fold_sse2(t->p, t->len, t->ahead); break;
#endif
    default: t->fold = fold_tail(t->p, t->len, t->ahead);
    }
}

/* the load widths this CPU has; 0 asks for the widest */
static int floor_width(int width) {
    const ph_cpu *cpu = ph_cpu_features();
    int widest = cpu->avx512 ? 64 : cpu->avx2 ? 32 : cpu->sse2 ? 16 : 8;
    if (width == 0) return widest;
    return (width == 8 || width == 16 || width == 32 || width == 64) && width <= widest ? width : -1;
}

int ph_read_floor(const uint8_t *p, size_t len, int threads, int width, int prefetch, uint64_t *fold) {
    if ((width = floor_width(width)) < 0 || prefetch < 0) return PH_IMPL_UNAVAILABLE;
    size_t n = threads < 1 ? 1 : (size_t)threads;
    if (n > PH_MAX_THREADS) n = PH_MAX_THREADS;
    floor_task *tasks = (floor_task *)calloc(n, sizeof *tasks);
    if (!tasks) return PH_ENOMEM;
    for (size_t k = 0; k < n; k++) { /* slices on 4 KiB boundaries, as hash_pages splits pages */
        size_t pages = (len + 4095) / 4096, from = pages * k / n * 4096, to = pages * (k + 1) / n * 4096;
        tasks[k].p = p + (from < len ? from : len);
        tasks[k].len = (to < len ? to : len) - (from < len ? from : len);
        tasks[k].width = width;
        tasks[k].ahead = (size_t)prefetch;
    }
    int rc = ph_run_parallel(fold_range, tasks, sizeof *tasks, (int)n);
    *fold = 0;
    for (size_t k = 0; k < n; k++) *fold ^= tasks[k].fold;
    free(tasks);
    return rc;
}
