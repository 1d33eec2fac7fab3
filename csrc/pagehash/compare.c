/* Page comparison in one pass: 64-byte chunks give a 64-bit "differs" word (bit i = byte i,
 * the same order as the mask bitmap), masked bits are cleared, and runs of set bits become
 * merged byte ranges; the pages those ranges touch are the differing pages. */
#include <stdlib.h>

#include "pagehash.h"

#if PH_X86
#include <immintrin.h>
#endif
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static inline unsigned ctz64(uint64_t x) {
    unsigned long i;
    _BitScanForward64(&i, x);
    return (unsigned)i;
}
#else
static inline unsigned ctz64(uint64_t x) { return (unsigned)__builtin_ctzll(x); }
#endif

#define MIN_BYTES_PER_THREAD ((size_t)1 << 22)

/* Find the first 64-byte chunk in [off, end) (end - off a multiple of 64) with unmasked
 * differences; return its offset (end if none) and its differs word in *bits. */
typedef size_t (*scan_fn)(const uint8_t *a, const uint8_t *b, const uint8_t *mask, size_t off,
                          size_t end, uint64_t *bits);

static size_t scan_scalar(const uint8_t *a, const uint8_t *b, const uint8_t *mask, size_t off,
                          size_t end, uint64_t *bits) {
    for (; off < end; off += 64) {
        uint64_t d = 0;
        for (int w = 0; w < 8; w++) {
            uint64_t x = ph_read64(a + off + 8 * w) ^ ph_read64(b + off + 8 * w);
            if (!x) continue;
            for (int k = 0; k < 8; k++)
                if ((x >> (8 * k)) & 0xff) d |= (uint64_t)1 << (8 * w + k);
        }
        if (d && mask) d &= ~ph_read64(mask + off / 8);
        if (d) {
            *bits = d;
            return off;
        }
    }
    return end;
}

#if PH_X86
PH_TARGET("sse2")
static size_t scan_sse2(const uint8_t *a, const uint8_t *b, const uint8_t *mask, size_t off,
                        size_t end, uint64_t *bits) {
    for (; off < end; off += 64) {
        uint64_t eq = 0;
        for (int k = 0; k < 4; k++) {
            __m128i x = _mm_loadu_si128((const __m128i *)(a + off) + k);
            __m128i y = _mm_loadu_si128((const __m128i *)(b + off) + k);
            eq |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, y)) << (16 * k);
        }
        uint64_t d = ~eq;
        if (d && mask) d &= ~ph_read64(mask + off / 8);
        if (d) {
            *bits = d;
            return off;
        }
    }
    return end;
}

/* AVX2 and AVX-512BW look at 256 bytes at a time. The 64-byte scan above pays a compare, a
 * movemask, a mask test and a branch per 64 bytes (5.3-6.9 GB/s a thread). Where the images
 * agree, a group is one OR tree of XORs and one test, with no mask load; only a group that
 * differs is looked at 64 bytes at a time with the mask applied. (Using the mask as the
 * AVX-512 compare's write mask for every group, so that masked-only differences cost
 * nothing, was faster in L3 but lost to SSE2 in 35 of 40 paired runs from DRAM: it reads the
 * whole mask bitmap, an eighth more traffic, where this reads only the words it needs.) */
#define GROUP 256
/* The AVX-512 scan asks for both images' lines this far ahead as it reads a group (see
 * PH_PREFETCH_AHEAD). Two 64 MiB images from DRAM on the AVX-512 Xeon of 2026-12-08, one
 * thread, best of 7, three alternating runs against the build without it: 6.86 / 7.35 / 7.32
 * -> 7.19 / 7.38 / 7.42 GB/s of one image (1024 and 4096 bytes ahead: no better), at the
 * floor of reading both images from DRAM there (6.4-7.1 GB/s an image). The AVX2 scan has
 * none: on the 2-core AVX2 VM of the sessions before, the same prefetch made the compare 5-20 %
 * slower (docs/pagehash.md), and a machine that runs the AVX2 scan is one without AVX-512. */
#define CMP_AHEAD 2048
#define SCAN_GROUPS(group_equal, diff64, ahead)                                              \
    while (off < end) {                                                                      \
        for (int q = 0; (ahead) && q < GROUP; q += 64) {                                     \
            PH_PREFETCH(a + off + q + (ahead));                                              \
            PH_PREFETCH(b + off + q + (ahead));                                              \
        }                                                                                    \
        if (end - off >= GROUP && group_equal(a + off, b + off)) {                           \
            off += GROUP;                                                                    \
            continue;                                                                        \
        }                                                                                    \
        size_t stop = end - off > GROUP ? off + GROUP : end;                                 \
        for (; off < stop; off += 64) {                                                      \
            uint64_t d = diff64(a + off, b + off);                                           \
            if (d && mask) d &= ~ph_read64(mask + off / 8);                                  \
            if (d) {                                                                         \
                *bits = d;                                                                   \
                return off;                                                                  \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    return end;

PH_TARGET("avx2")
static inline int group_equal_avx2(const uint8_t *a, const uint8_t *b) {
    __m256i acc = _mm256_setzero_si256();
    for (int k = 0; k < GROUP / 32; k++)
        acc = _mm256_or_si256(acc, _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)a + k),
                                                    _mm256_loadu_si256((const __m256i *)b + k)));
    return _mm256_testz_si256(acc, acc);
}

PH_TARGET("avx2")
static inline uint64_t diff64_avx2(const uint8_t *a, const uint8_t *b) {
    const __m256i *x = (const __m256i *)a, *y = (const __m256i *)b;
    uint64_t eq = (uint64_t)(unsigned)_mm256_movemask_epi8(
                      _mm256_cmpeq_epi8(_mm256_loadu_si256(x), _mm256_loadu_si256(y))) |
                  (uint64_t)(unsigned)_mm256_movemask_epi8(
                      _mm256_cmpeq_epi8(_mm256_loadu_si256(x + 1), _mm256_loadu_si256(y + 1)))
                      << 32;
    return ~eq;
}

PH_TARGET("avx2")
static size_t scan_avx2(const uint8_t *a, const uint8_t *b, const uint8_t *mask, size_t off,
                        size_t end, uint64_t *bits) {
    SCAN_GROUPS(group_equal_avx2, diff64_avx2, 0)
}

PH_TARGET("avx512f,avx512bw")
static inline int group_equal_avx512(const uint8_t *a, const uint8_t *b) {
    __m512i acc = _mm512_setzero_si512();
    for (int k = 0; k < GROUP / 64; k++)
        acc = _mm512_or_si512(acc, _mm512_xor_si512(_mm512_loadu_si512((const void *)(a + 64 * k)),
                                                    _mm512_loadu_si512((const void *)(b + 64 * k))));
    return _mm512_test_epi64_mask(acc, acc) == 0;
}

PH_TARGET("avx512f,avx512bw")
static inline uint64_t diff64_avx512(const uint8_t *a, const uint8_t *b) {
    return (uint64_t)_mm512_cmpneq_epu8_mask(_mm512_loadu_si512((const void *)a),
                                             _mm512_loadu_si512((const void *)b));
}

PH_TARGET("avx512f,avx512bw")
static size_t scan_avx512(const uint8_t *a, const uint8_t *b, const uint8_t *mask, size_t off,
                          size_t end, uint64_t *bits) {
    SCAN_GROUPS(group_equal_avx512, diff64_avx512, CMP_AHEAD)
}
#endif

static scan_fn g_scan = scan_scalar;
static int g_impl = PH_CMP_SCALAR;

int ph_compare_set_impl(int impl) {
    const ph_cpu *cpu = ph_cpu_features();
    if (impl == PH_CMP_AUTO)
        impl = cpu->avx512bw ? PH_CMP_AVX512 : cpu->avx2 ? PH_CMP_AVX2 : cpu->sse2 ? PH_CMP_SSE2 : PH_CMP_SCALAR;
    switch (impl) {
    case PH_CMP_SCALAR: g_scan = scan_scalar; break;
#if PH_X86
    case PH_CMP_SSE2:
        if (!cpu->sse2) return -1;
        g_scan = scan_sse2;
        break;
    case PH_CMP_AVX2:
        if (!cpu->avx2) return -1;
        g_scan = scan_avx2;
        break;
    case PH_CMP_AVX512:
        if (!cpu->avx512bw) return -1;
        g_scan = scan_avx512;
        break;
#endif
    default: return -1;
    }
    g_impl = impl;
    return 0;
}

int ph_compare_get_impl(void) { return g_impl; }

typedef struct {
    const uint8_t *a, *b, *mask;
    size_t from, to, page_size;
    ph_diff out;
    size_t run_s, run_e; /* open run; run_e == 0 means none */
    int err;
} cmp_task;

static int push(size_t **arr, size_t *n, size_t *cap, size_t v) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        size_t *p = (size_t *)realloc(*arr, nc * sizeof **arr);
        if (!p) return -1;
        *arr = p;
        *cap = nc;
    }
    (*arr)[(*n)++] = v;
    return 0;
}

static void close_run(cmp_task *t) {
    if (!t->run_e || t->err) return;
    size_t p0 = t->run_s / t->page_size, p1 = (t->run_e - 1) / t->page_size, p;
    ph_diff *d = &t->out;
    p = (d->npages && d->pages[d->npages - 1] >= p0) ? d->pages[d->npages - 1] + 1 : p0;
    for (; p <= p1; p++)
        if (push(&d->pages, &d->npages, &d->cap_pages, p)) t->err = PH_ENOMEM;
    if (push(&d->ranges, &d->nranges, &d->cap_ranges, t->run_s) ||
        push(&d->ranges, &d->nranges, &d->cap_ranges, t->run_e))
        t->err = PH_ENOMEM;
    t->run_e = 0;
}

static inline void add_run(cmp_task *t, size_t s, size_t e) {
    if (t->run_e && s == t->run_e) {
        t->run_e = e;
        return;
    }
    close_run(t);
    t->run_s = s;
    t->run_e = e;
}

static void add_bits(cmp_task *t, size_t off, uint64_t bits) {
    while (bits) {
        unsigned s = ctz64(bits);
        uint64_t rest = ~(bits >> s);
        unsigned l = rest ? ctz64(rest) : 64 - s;
        add_run(t, off + s, off + s + l);
        if (s + l >= 64) break;
        bits &= ~(uint64_t)0 << (s + l);
    }
}

static void compare_range(void *arg) {
    cmp_task *t = (cmp_task *)arg;
    size_t chunk_end = t->from + (t->to - t->from) / 64 * 64, off = t->from, i;
    uint64_t bits = 0;
    while (off < chunk_end && !t->err) {
        off = g_scan(t->a, t->b, t->mask, off, chunk_end, &bits);
        if (off < chunk_end) {
            add_bits(t, off, bits);
            off += 64;
        }
    }
    for (i = chunk_end; i < t->to; i++)
        if (t->a[i] != t->b[i] && !(t->mask && ((t->mask[i / 8] >> (i % 8)) & 1))) add_run(t, i, i + 1);
    close_run(t);
}

void ph_diff_free(ph_diff *d) {
    free(d->pages);
    free(d->ranges);
    memset(d, 0, sizeof *d);
}

/* join the task results in order, merging a range or page that straddles a task boundary */
static int join(cmp_task *tasks, size_t n, ph_diff *out) {
    for (size_t k = 0; k < n; k++) {
        ph_diff *d = &tasks[k].out;
        for (size_t i = 0; i < d->npages; i++) {
            if (out->npages && out->pages[out->npages - 1] >= d->pages[i]) continue;
            if (push(&out->pages, &out->npages, &out->cap_pages, d->pages[i])) return PH_ENOMEM;
        }
        for (size_t i = 0; i < d->nranges; i += 2) {
            if (out->nranges && out->ranges[out->nranges - 1] == d->ranges[i]) {
                out->ranges[out->nranges - 1] = d->ranges[i + 1];
                continue;
            }
            if (push(&out->ranges, &out->nranges, &out->cap_ranges, d->ranges[i]) ||
                push(&out->ranges, &out->nranges, &out->cap_ranges, d->ranges[i + 1]))
                return PH_ENOMEM;
        }
    }
    return PH_OK;
}

int ph_compare_pages(const uint8_t *a, const uint8_t *b, size_t len, size_t page_size,
                     const uint8_t *mask, int threads, ph_diff *out) {
    /* task boundaries on multiples of the page size and of the 64-byte chunk */
    size_t unit = page_size > 64 ? page_size : 64;
    size_t nunits = (len + unit - 1) / unit;
    size_t n = threads < 1 ? 1 : (size_t)threads;
    size_t by_size = len / MIN_BYTES_PER_THREAD + 1;
    if (n > by_size) n = by_size;
    if (n > PH_MAX_THREADS) n = PH_MAX_THREADS;
    if (n > nunits) n = nunits ? nunits : 1;
    memset(out, 0, sizeof *out);
    cmp_task *tasks = (cmp_task *)calloc(n, sizeof *tasks);
    if (!tasks) return PH_ENOMEM;
    for (size_t k = 0; k < n; k++) {
        cmp_task *t = &tasks[k];
        t->a = a;
        t->b = b;
        t->mask = mask;
        t->page_size = page_size;
        t->from = nunits * k / n * unit;
        t->to = nunits * (k + 1) / n * unit;
        if (t->to > len) t->to = len;
        if (t->from > len) t->from = len;
    }
    int rc = ph_run_parallel(compare_range, tasks, sizeof *tasks, (int)n);
    for (size_t k = 0; k < n && rc == PH_OK; k++) rc = tasks[k].err;
    if (rc == PH_OK) rc = join(tasks, n, out);
    for (size_t k = 0; k < n; k++) ph_diff_free(&tasks[k].out);
    free(tasks);
    if (rc != PH_OK) ph_diff_free(out);
    return rc;
}
