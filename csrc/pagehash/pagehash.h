/* Internal interface of the page-hashing core, shared by the C files and the C test driver.
 * Nothing here depends on Python, so the core can be built and sanitised on its own. */
#ifndef PAGEHASH_H
#define PAGEHASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#define PH_X86 1
#else
#define PH_X86 0
#endif
/* Advanced SIMD is part of every AArch64 CPU; the NEON body assumes little-endian lanes. */
#if (defined(__aarch64__) || defined(_M_ARM64)) && !defined(__ARM_BIG_ENDIAN)
#define PH_ARM64 1
#else
#define PH_ARM64 0
#endif

/* GCC/Clang compile the SIMD paths with per-function target attributes (no -march), so one
 * binary runs everywhere and picks a path at run time. MSVC exposes every intrinsic anyway. */
#if defined(_MSC_VER) && !defined(__clang__)
#define PH_TARGET(x)
#else
#define PH_TARGET(x) __attribute__((target(x)))
#endif

/* Hardware prefetchers follow a stream only within one 4 KiB page, so a loop over many pages
 * stalls on the first lines of every page; the XXH3 loop asks for the line PH_PREFETCH_AHEAD
 * bytes on while it works on this one. (From DRAM, one thread: XXH3 per page 0.77-0.84x ->
 * 0.99-1.13x the one-call binding with 4096 on the machine of the sessions before; on the
 * AVX-512 Xeon of 2026-12-08 (17.8 GB/s read floor), 2 GiB, best of 5: 4096 0.92x, 2048
 * 0.98-0.99x, 2560 1.01x, 3072 1.00x, 1024 0.88x: 3072 is within a percent of the best
 * there, and within the 1-4 KiB that did about equally well on the earlier machine. The
 * compare loop prefetches too (compare.c, CMP_AHEAD). A prefetch never faults, so
 * asking past the end of a buffer or a mapping is harmless. */
#define PH_PREFETCH_AHEAD 3072
#if defined(__GNUC__) || defined(__clang__)
#define PH_PREFETCH(a) __builtin_prefetch((const void *)(a), 0, 3)
#elif defined(_MSC_VER) && PH_X86
#include <xmmintrin.h>
#define PH_PREFETCH(a) _mm_prefetch((const char *)(a), _MM_HINT_T0)
#else
#define PH_PREFETCH(a) ((void)0)
#endif

enum { PH_ALGO_XXH128 = 0, PH_ALGO_SHA256 = 1 };
enum { PH_FLAG_ZERO = 1, PH_FLAG_MASKED = 2 };
enum { PH_OK = 0, PH_ENOMEM = -1 };

/* Implementation choices, exposed so tests can run every path the CPU supports. */
enum { PH_XXH_SCALAR = 0, PH_XXH_SSE2 = 1, PH_XXH_AVX2 = 2, PH_XXH_AVX512 = 3, PH_XXH_NEON = 4, PH_XXH_AUTO = -1 };
enum { PH_SHA_PORTABLE = 0, PH_SHA_SHANI = 1, PH_SHA_AUTO = -1 };
enum { PH_CMP_SCALAR = 0, PH_CMP_SSE2 = 1, PH_CMP_AVX2 = 2, PH_CMP_AVX512 = 3, PH_CMP_AUTO = -1 };

/* little-endian loads; memcpy keeps them legal at any alignment */
static inline uint64_t ph_read64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint32_t ph_read32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

/* cpu.c */
typedef struct {
    int sse2, ssse3, sse41, avx2, avx512, avx512bw, sha, neon;
} ph_cpu;
const ph_cpu *ph_cpu_features(void);

/* xxh3.c: XXH3-128 with seed 0 and the default secret; out is the canonical (big-endian)
 * digest, high half first, as XXH128_canonicalFromHash writes it. */
void ph_xxh3_128(const uint8_t *p, size_t len, uint8_t out[16]);
int ph_xxh3_set_impl(int impl); /* 0 ok, -1 not available on this CPU */
int ph_xxh3_get_impl(void);

/* sha256.c / sha256_shani.c */
extern const uint32_t ph_sha256_k[64]; /* round constants, FIPS 180-4 4.2.2 */
typedef void (*ph_sha256_blocks_fn)(uint32_t state[8], const uint8_t *data, size_t nblocks);
void ph_sha256_blocks_portable(uint32_t state[8], const uint8_t *data, size_t nblocks);
void ph_sha256_blocks_shani(uint32_t state[8], const uint8_t *data, size_t nblocks);
void ph_sha256_blocks2_shani(uint32_t sa[8], uint32_t sb[8], const uint8_t *a, const uint8_t *b,
                             size_t nblocks);
void ph_sha256(const uint8_t *p, size_t len, uint8_t out[32]);
/* two messages of the same length at p and p + stride, interleaved where the CPU allows */
void ph_sha256_x2(const uint8_t *p, size_t stride, size_t len, uint8_t out[64]);
int ph_sha256_set_impl(int impl);
int ph_sha256_get_impl(void);

/* pages.c */
typedef struct {
    const uint8_t *buf;
    size_t len;
    size_t page_size;     /* power of two */
    const uint8_t *mask;  /* bitmap of ceil(len/8) bytes, bit i = byte i (LSB first), or NULL */
    int algo;
    int threads;
} ph_hash_req;

size_t ph_digest_size(int algo);
/* digests: n_pages * digest size bytes; flags: n_pages bytes */
int ph_hash_pages(const ph_hash_req *req, uint8_t *digests, uint8_t *flags);

/* compare.c */
typedef struct {
    size_t *pages;
    size_t npages, cap_pages;
    size_t *ranges; /* pairs start, end (exclusive) */
    size_t nranges, cap_ranges;
} ph_diff;

int ph_compare_pages(const uint8_t *a, const uint8_t *b, size_t len, size_t page_size,
                     const uint8_t *mask, int threads, ph_diff *out);
void ph_diff_free(ph_diff *d);
int ph_compare_set_impl(int impl);
int ph_compare_get_impl(void);

/* more threads than this only cost stacks; callers clamp to it */
#define PH_MAX_THREADS 256

/* atomically *p += v, returning the old value (the chunk counter threads claim work from) */
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static inline size_t ph_fetch_add(size_t *p, size_t v) {
#if defined(_WIN64)
    return (size_t)_InterlockedExchangeAdd64((volatile __int64 *)p, (__int64)v);
#else
    return (size_t)_InterlockedExchangeAdd((volatile long *)p, (long)v);
#endif
}
#else
static inline size_t ph_fetch_add(size_t *p, size_t v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
#endif

/* threads.c: run fn(base + i * stride) for i in [0, n) on n threads (the caller is one). */
typedef void (*ph_task_fn)(void *arg);
int ph_run_parallel(ph_task_fn fn, void *base, size_t stride, int n);

/* floor.c: load every byte once with `width`-byte loads (8, 16, 32, 64; 0 = the widest the CPU
 * has; PH_IMPL_UNAVAILABLE if it lacks that one), on `threads` threads; *fold is the XOR of it
 * all, so nothing is skipped */
int ph_read_floor(const uint8_t *p, size_t len, int threads, int width, int prefetch, uint64_t *fold);

/* once at start-up: pick the fastest implementation of each primitive */
void ph_init(void);

/* impl.c: implementations by name ("xxh128" / "sha256" / "compare"; "auto" picks the fastest) */
enum { PH_IMPL_UNKNOWN_KIND = -10, PH_IMPL_UNKNOWN_NAME = -11, PH_IMPL_UNAVAILABLE = -12 };
#define PH_IMPL_ENV "HPF_PAGEHASH_IMPL"
const char *ph_impl_name(const char *kind); /* the one in use, NULL for an unknown kind */
const char *const *ph_impl_names(const char *kind, int *count); /* every one this build knows */
int ph_set_impl_by_name(const char *kind, const char *name);
/* spec: comma-separated "kind=name" items, or bare names applied to every kind that has them
 * ("sse2" = xxh128 and compare on SSE2); on failure err says why in one line */
int ph_apply_impl_spec(const char *spec, char *err, size_t errlen);

/* spread the 8 bits of b to the 8 bytes of a word: bit i set -> byte i = 0xff */
static inline uint64_t ph_expand_bits(unsigned b) {
    uint64_t x = b & 0xffu;
    x = (x | (x << 28)) & 0x0000000F0000000FULL;
    x = (x | (x << 14)) & 0x0003000300030003ULL;
    x = (x | (x << 7)) & 0x0101010101010101ULL;
    return x * 0xffu;
}

#endif
