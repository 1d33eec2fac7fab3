/* XXH3-128 (seed 0, default secret), written from the published description of the algorithm
 * (xxHash documentation and the reference implementation's comments); checked in the tests
 * against the published vectors and the `xxhash` Python binding.
 *
 * Inputs up to 240 bytes take the short paths; longer inputs the striped accumulator loop,
 * which has a scalar, an SSE2, an AVX2, an AVX-512 and (on Arm64) a NEON body chosen once at
 * start-up, each with a function of its own for exactly 4096 bytes. */
#include "pagehash.h"

#if PH_X86
#include <immintrin.h>
#endif
#if PH_ARM64
#include <arm_neon.h>
#endif
#if defined(_MSC_VER)
#include <intrin.h>
#endif

#define P32_1 0x9E3779B1U
#define P32_2 0x85EBCA77U
#define P32_3 0xC2B2AE3DU
#define P64_1 0x9E3779B185EBCA87ULL
#define P64_2 0xC2B2AE3D27D4EB4FULL
#define P64_3 0x165667B19E3779F9ULL
#define P64_4 0x85EBCA77C2B2AE63ULL
#define P64_5 0x27D4EB2F165667C5ULL
#define PMX_1 0x165667919E3779F9ULL
#define PMX_2 0x9FB21C651E98DF25ULL

#define SECRET_SIZE 192
#define STRIPE_LEN 64
#define STRIPES_PER_BLOCK ((SECRET_SIZE - STRIPE_LEN) / 8)
#define BLOCK_LEN (STRIPE_LEN * STRIPES_PER_BLOCK)
#define LASTACC_START 7
#define MERGEACCS_START 11
#define MIDSIZE_STARTOFFSET 3
#define MIDSIZE_LASTOFFSET 17
#define SECRET_SIZE_MIN 136

/* the default 192-byte secret ("kSecret") */
static const uint8_t ksecret[SECRET_SIZE] = {
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
    0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
    0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
    0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
    0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
    0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
    0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
    0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
    0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
    0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
    0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
    0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
};

typedef struct {
    uint64_t lo, hi;
} u128;

static inline u128 mul64to128(uint64_t a, uint64_t b) {
    u128 r;
#if defined(__SIZEOF_INT128__)
    unsigned __int128 p = (unsigned __int128)a * b;
    r.lo = (uint64_t)p;
    r.hi = (uint64_t)(p >> 64);
#elif defined(_MSC_VER) && defined(_M_X64)
    r.lo = _umul128(a, b, &r.hi);
#else
    uint64_t lo_lo = (a & 0xffffffffu) * (b & 0xffffffffu);
    uint64_t hi_lo = (a >> 32) * (b & 0xffffffffu);
    uint64_t lo_hi = (a & 0xffffffffu) * (b >> 32);
    uint64_t hi_hi = (a >> 32) * (b >> 32);
    uint64_t cross = (lo_lo >> 32) + (hi_lo & 0xffffffffu) + lo_hi;
    r.hi = (hi_lo >> 32) + (cross >> 32) + hi_hi;
    r.lo = (cross << 32) | (lo_lo & 0xffffffffu);
#endif
    return r;
}

static inline uint64_t mul128_fold64(uint64_t a, uint64_t b) {
    u128 p = mul64to128(a, b);
    return p.lo ^ p.hi;
}

static inline uint32_t swap32(uint32_t x) {
    return ((x << 24) & 0xff000000u) | ((x << 8) & 0x00ff0000u) | ((x >> 8) & 0x0000ff00u) |
           ((x >> 24) & 0x000000ffu);
}

static inline uint64_t swap64(uint64_t x) {
    return ((uint64_t)swap32((uint32_t)x) << 32) | swap32((uint32_t)(x >> 32));
}

static inline uint32_t rotl32(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

static inline uint64_t xxh64_avalanche(uint64_t h) {
    h ^= h >> 33;
    h *= P64_2;
    h ^= h >> 29;
    h *= P64_3;
    h ^= h >> 32;
    return h;
}

static inline uint64_t xxh3_avalanche(uint64_t h) {
    h ^= h >> 37;
    h *= PMX_1;
    h ^= h >> 32;
    return h;
}

static u128 len_0(void) {
    u128 h;
    h.lo = xxh64_avalanche(ph_read64(ksecret + 64) ^ ph_read64(ksecret + 72));
    h.hi = xxh64_avalanche(ph_read64(ksecret + 80) ^ ph_read64(ksecret + 88));
    return h;
}

static u128 len_1to3(const uint8_t *p, size_t len) {
    uint32_t c1 = p[0], c2 = p[len >> 1], c3 = p[len - 1];
    uint32_t combl = (c1 << 16) | (c2 << 24) | c3 | ((uint32_t)len << 8);
    uint32_t combh = rotl32(swap32(combl), 13);
    uint64_t flipl = ph_read32(ksecret) ^ ph_read32(ksecret + 4);
    uint64_t fliph = ph_read32(ksecret + 8) ^ ph_read32(ksecret + 12);
    u128 h;
    h.lo = xxh64_avalanche(combl ^ flipl);
    h.hi = xxh64_avalanche(combh ^ fliph);
    return h;
}

static u128 len_4to8(const uint8_t *p, size_t len) {
    uint64_t in64 = ph_read32(p) + ((uint64_t)ph_read32(p + len - 4) << 32);
    uint64_t keyed = in64 ^ (ph_read64(ksecret + 16) ^ ph_read64(ksecret + 24));
    u128 m = mul64to128(keyed, P64_1 + ((uint64_t)len << 2));
    m.hi += m.lo << 1;
    m.lo ^= m.hi >> 3;
    m.lo ^= m.lo >> 35;
    m.lo *= PMX_2;
    m.lo ^= m.lo >> 28;
    m.hi = xxh3_avalanche(m.hi);
    return m;
}

static u128 len_9to16(const uint8_t *p, size_t len) {
    uint64_t flipl = ph_read64(ksecret + 32) ^ ph_read64(ksecret + 40);
    uint64_t fliph = ph_read64(ksecret + 48) ^ ph_read64(ksecret + 56);
    uint64_t in_lo = ph_read64(p), in_hi = ph_read64(p + len - 8);
    u128 m = mul64to128(in_lo ^ in_hi ^ flipl, P64_1);
    m.lo += (uint64_t)(len - 1) << 54;
    in_hi ^= fliph;
    m.hi += in_hi + (uint64_t)(uint32_t)in_hi * (P32_2 - 1);
    m.lo ^= swap64(m.hi);
    u128 h = mul64to128(m.lo, P64_2);
    h.hi += m.hi * P64_2;
    h.lo = xxh3_avalanche(h.lo);
    h.hi = xxh3_avalanche(h.hi);
    return h;
}

static inline uint64_t mix16(const uint8_t *p, const uint8_t *s, uint64_t seed) {
    return mul128_fold64(ph_read64(p) ^ (ph_read64(s) + seed), ph_read64(p + 8) ^ (ph_read64(s + 8) - seed));
}

static inline void mix32(u128 *acc, const uint8_t *a, const uint8_t *b, const uint8_t *s, uint64_t seed) {
    acc->lo += mix16(a, s, seed);
    acc->lo ^= ph_read64(b) + ph_read64(b + 8);
    acc->hi += mix16(b, s + 16, seed);
    acc->hi ^= ph_read64(a) + ph_read64(a + 8);
}

static u128 finish_mid(u128 acc, size_t len) {
    u128 h;
    h.lo = xxh3_avalanche(acc.lo + acc.hi);
    h.hi = 0 - xxh3_avalanche(acc.lo * P64_1 + acc.hi * P64_4 + (uint64_t)len * P64_2);
    return h;
}

static u128 len_17to128(const uint8_t *p, size_t len) {
    u128 acc = {(uint64_t)len * P64_1, 0};
    if (len > 32) {
        if (len > 64) {
            if (len > 96) mix32(&acc, p + 48, p + len - 64, ksecret + 96, 0);
            mix32(&acc, p + 32, p + len - 48, ksecret + 64, 0);
        }
        mix32(&acc, p + 16, p + len - 32, ksecret + 32, 0);
    }
    mix32(&acc, p, p + len - 16, ksecret, 0);
    return finish_mid(acc, len);
}

static u128 len_129to240(const uint8_t *p, size_t len) {
    u128 acc = {(uint64_t)len * P64_1, 0};
    size_t rounds = len / 32, i;
    for (i = 0; i < 4; i++) mix32(&acc, p + 32 * i, p + 32 * i + 16, ksecret + 32 * i, 0);
    acc.lo = xxh3_avalanche(acc.lo);
    acc.hi = xxh3_avalanche(acc.hi);
    for (i = 4; i < rounds; i++)
        mix32(&acc, p + 32 * i, p + 32 * i + 16, ksecret + MIDSIZE_STARTOFFSET + 32 * (i - 4), 0);
    mix32(&acc, p + len - 16, p + len - 32, ksecret + SECRET_SIZE_MIN - MIDSIZE_LASTOFFSET - 16, 0);
    return finish_mid(acc, len);
}

static uint64_t merge_accs(const uint64_t acc[8], const uint8_t *s, uint64_t start) {
    uint64_t r = start;
    for (int i = 0; i < 4; i++)
        r += mul128_fold64(acc[2 * i] ^ ph_read64(s + 16 * i), acc[2 * i + 1] ^ ph_read64(s + 16 * i + 8));
    return xxh3_avalanche(r);
}

/* the canonical (big-endian) digest, high half first, as XXH128_canonicalFromHash writes it */
static inline void put_canonical(u128 h, uint8_t out[16]) {
    for (int i = 0; i < 8; i++) {
        out[i] = (uint8_t)(h.hi >> (56 - 8 * i));
        out[8 + i] = (uint8_t)(h.lo >> (56 - 8 * i));
    }
}

static inline u128 finish_long(const uint64_t acc[8], size_t len) {
    u128 h;
    h.lo = merge_accs(acc, ksecret + MERGEACCS_START, (uint64_t)len * P64_1);
    h.hi = merge_accs(acc, ksecret + SECRET_SIZE - 64 - MERGEACCS_START, ~((uint64_t)len * P64_2));
    return h;
}

/* ---- long inputs: 8 lanes of 64-bit accumulators over 64-byte stripes ---- */

static const uint64_t acc_init[8] = {P32_3, P64_1, P64_2, P64_3, P64_4, P32_2, P64_5, P32_1};

/* Each SIMD body defines ACC_DECL, ACC_LOAD, ACC512(p, s), SCRAMBLE(s), ACC_STORE and
 * ACC_LANES over its own register state; xxh3_body.h then makes two functions of it: long_<sfx>
 * for any length above 240 and page4k_<sfx> for exactly 4096 bytes, the page size nearly
 * every caller hashes. A 4096-byte input is 3 blocks of 16 stripes, then 15 stripes, then the
 * last stripe at offset 4032; with the length fixed every address and secret offset is a
 * constant and the loop control, the block arithmetic and the tail computation go away. */
#if defined(__GNUC__) && !defined(__clang__)
/* GCC -O3 unrolls the 16 stripes of a block completely, hoists every load and spills;
 * unrolling by 4 was ~20 % faster in cache. */
#define XXH3_UNROLL _Pragma("GCC unroll 4")
#else
#define XXH3_UNROLL
#endif
#define XXH3_LONG_LOOP                                                                     \
    size_t nb_blocks = (len - 1) / BLOCK_LEN, n, s;                                        \
    ACC_LOAD;                                                                              \
    for (n = 0; n < nb_blocks; n++) {                                                      \
        const uint8_t *blk = p + n * BLOCK_LEN;                                            \
        XXH3_UNROLL                                                                        \
        for (s = 0; s < STRIPES_PER_BLOCK; s++) {                                          \
            PH_PREFETCH(blk + s * STRIPE_LEN + PH_PREFETCH_AHEAD);                          \
            ACC512(blk + s * STRIPE_LEN, ksecret + s * 8);                                 \
        }                                                                                  \
        SCRAMBLE(ksecret + SECRET_SIZE - STRIPE_LEN);                                      \
    }                                                                                      \
    {                                                                                      \
        size_t nb_stripes = ((len - 1) - BLOCK_LEN * nb_blocks) / STRIPE_LEN;              \
        const uint8_t *blk = p + nb_blocks * BLOCK_LEN;                                    \
        for (s = 0; s < nb_stripes; s++) {                                                 \
            PH_PREFETCH(blk + s * STRIPE_LEN + PH_PREFETCH_AHEAD);                          \
            ACC512(blk + s * STRIPE_LEN, ksecret + s * 8);                                 \
        }                                                                                  \
        ACC512(p + len - STRIPE_LEN, ksecret + SECRET_SIZE - STRIPE_LEN - LASTACC_START);  \
    }                                                                                      \
    ACC_STORE;

#define PAGE4K 4096
#define PAGE4K_BLOCKS ((PAGE4K - 1) / BLOCK_LEN)                                /* 3 */
#define PAGE4K_TAIL_STRIPES (((PAGE4K - 1) - BLOCK_LEN * PAGE4K_BLOCKS) / STRIPE_LEN) /* 15 */
#define XXH3_4K_LOOP                                                                       \
    size_t n, s;                                                                           \
    ACC_LOAD;                                                                              \
    for (n = 0; n < PAGE4K_BLOCKS; n++) {                                                  \
        XXH3_UNROLL                                                                        \
        for (s = 0; s < STRIPES_PER_BLOCK; s++) {                                          \
            PH_PREFETCH(p + n * BLOCK_LEN + s * STRIPE_LEN + PH_PREFETCH_AHEAD);            \
            ACC512(p + n * BLOCK_LEN + s * STRIPE_LEN, ksecret + s * 8);                   \
        }                                                                                  \
        SCRAMBLE(ksecret + SECRET_SIZE - STRIPE_LEN);                                      \
    }                                                                                      \
    XXH3_UNROLL                                                                            \
    for (s = 0; s < PAGE4K_TAIL_STRIPES; s++) {                                            \
        PH_PREFETCH(p + PAGE4K_BLOCKS * BLOCK_LEN + s * STRIPE_LEN + PH_PREFETCH_AHEAD);    \
        ACC512(p + PAGE4K_BLOCKS * BLOCK_LEN + s * STRIPE_LEN, ksecret + s * 8);           \
    }                                                                                      \
    ACC512(p + PAGE4K - STRIPE_LEN, ksecret + SECRET_SIZE - STRIPE_LEN - LASTACC_START);

#define ACC_DECL                                             \
    uint64_t acc[8];                                         \
    int i
#define ACC_LOAD memcpy(acc, acc_init, sizeof acc)
#define ACC512(d, k)                                         \
    for (i = 0; i < 8; i++) {                                \
        uint64_t v = ph_read64((d) + 8 * i);                 \
        uint64_t dk = v ^ ph_read64((k) + 8 * i);            \
        acc[i ^ 1] += v;                                     \
        acc[i] += (uint64_t)(uint32_t)dk * (dk >> 32);       \
    }
#define SCRAMBLE(k)                                          \
    for (i = 0; i < 8; i++) {                                \
        uint64_t a = acc[i];                                 \
        a ^= a >> 47;                                        \
        a ^= ph_read64((k) + 8 * i);                         \
        acc[i] = a * P32_1;                                  \
    }
#define ACC_STORE memcpy(out, acc, sizeof acc)
#define ACC_LANES(l) memcpy(l, acc, sizeof acc)
#define XXH3_SFX scalar
#define XXH3_ATTR /* portable */
#include "xxh3_body.h"

#if PH_X86
/* SSE2 is part of x86-64, so this body's target attribute changes nothing there. */
#define ACC_DECL                                                                    \
    __m128i acc[4];                                                                 \
    const __m128i prime = _mm_set1_epi32((int)P32_1);                               \
    int i
#define ACC_LOAD for (i = 0; i < 4; i++) acc[i] = _mm_loadu_si128((const __m128i *)acc_init + i)
#define ACC512(d, k)                                                                \
    for (i = 0; i < 4; i++) {                                                       \
        __m128i v = _mm_loadu_si128((const __m128i *)(d) + i);                     \
        __m128i dk = _mm_xor_si128(v, _mm_loadu_si128((const __m128i *)(k) + i));  \
        __m128i prod = _mm_mul_epu32(dk, _mm_srli_epi64(dk, 32));                   \
        __m128i sw = _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 3, 2));                 \
        acc[i] = _mm_add_epi64(acc[i], _mm_add_epi64(sw, prod));                    \
    }
#define SCRAMBLE(k)                                                                 \
    for (i = 0; i < 4; i++) {                                                       \
        __m128i a = acc[i];                                                         \
        a = _mm_xor_si128(a, _mm_srli_epi64(a, 47));                                \
        a = _mm_xor_si128(a, _mm_loadu_si128((const __m128i *)(k) + i));            \
        __m128i lo = _mm_mul_epu32(a, prime);                                       \
        __m128i hi = _mm_mul_epu32(_mm_srli_epi64(a, 32), prime);                   \
        acc[i] = _mm_add_epi64(lo, _mm_slli_epi64(hi, 32));                         \
    }
#define ACC_STORE for (i = 0; i < 4; i++) _mm_storeu_si128((__m128i *)out + i, acc[i])
#define ACC_LANES(l)                                                                \
    for (i = 0; i < 4; i++) {                                                       \
        (l)[2 * i] = (uint64_t)_mm_cvtsi128_si64(acc[i]);                           \
        (l)[2 * i + 1] = (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(acc[i], acc[i])); \
    }
#define XXH3_SFX sse2
#define XXH3_ATTR PH_TARGET("sse2")
#include "xxh3_body.h"

/* accumulator lanes to general registers without a store: a wide store read back as 64-bit
 * loads cost ~25 ns a page (the page loop ran at 47 instead of 65 GB/s in L2) */
PH_TARGET("avx2") static inline void lanes256(uint64_t l[4], __m256i v) {
    __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
    l[0] = (uint64_t)_mm_cvtsi128_si64(lo);
    l[1] = (uint64_t)_mm_extract_epi64(lo, 1);
    l[2] = (uint64_t)_mm_cvtsi128_si64(hi);
    l[3] = (uint64_t)_mm_extract_epi64(hi, 1);
}

#define ACC_DECL                                                              \
    __m256i acc0, acc1;                                                       \
    const __m256i prime = _mm256_set1_epi32((int)P32_1)
#define ACC_LOAD                                               \
    acc0 = _mm256_loadu_si256((const __m256i *)acc_init);      \
    acc1 = _mm256_loadu_si256((const __m256i *)acc_init + 1)
#define ACC1(A, d, k)                                                         \
    {                                                                         \
        __m256i v = _mm256_loadu_si256((const __m256i *)(d));                 \
        __m256i dk = _mm256_xor_si256(v, _mm256_loadu_si256((const __m256i *)(k))); \
        __m256i prod = _mm256_mul_epu32(dk, _mm256_srli_epi64(dk, 32));       \
        __m256i sw = _mm256_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 3, 2));        \
        A = _mm256_add_epi64(A, _mm256_add_epi64(sw, prod));                  \
    }
#define ACC512(d, k)                  \
    {                                 \
        ACC1(acc0, (d), (k))          \
        ACC1(acc1, (d) + 32, (k) + 32) \
    }
#define SCR1(A, k)                                                            \
    {                                                                         \
        __m256i a = _mm256_xor_si256(A, _mm256_srli_epi64(A, 47));            \
        a = _mm256_xor_si256(a, _mm256_loadu_si256((const __m256i *)(k)));    \
        __m256i lo = _mm256_mul_epu32(a, prime);                              \
        __m256i hi = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), prime);       \
        A = _mm256_add_epi64(lo, _mm256_slli_epi64(hi, 32));                  \
    }
#define SCRAMBLE(k)       \
    {                     \
        SCR1(acc0, (k))   \
        SCR1(acc1, (k) + 32) \
    }
#define ACC_STORE                                   \
    _mm256_storeu_si256((__m256i *)out, acc0);      \
    _mm256_storeu_si256((__m256i *)out + 1, acc1)
#define ACC_LANES(l)                                \
    {                                               \
        lanes256((l), acc0);                        \
        lanes256((l) + 4, acc1);                    \
    }
#define XXH3_SFX avx2
#define XXH3_ATTR PH_TARGET("avx2")
#include "xxh3_body.h"

#define ACC_DECL                                                                  \
    __m512i acc;                                                                  \
    const __m512i prime = _mm512_set1_epi32((int)P32_1)
#define ACC_LOAD acc = _mm512_loadu_si512((const void *)acc_init)
#define ACC512(d, k)                                                              \
    {                                                                             \
        __m512i v = _mm512_loadu_si512((const void *)(d));                        \
        __m512i dk = _mm512_xor_si512(v, _mm512_loadu_si512((const void *)(k)));  \
        __m512i prod = _mm512_mul_epu32(dk, _mm512_srli_epi64(dk, 32));           \
        __m512i sw = _mm512_shuffle_epi32(v, (_MM_PERM_ENUM)_MM_SHUFFLE(1, 0, 3, 2)); \
        acc = _mm512_add_epi64(acc, _mm512_add_epi64(sw, prod));                  \
    }
#define SCRAMBLE(k)                                                               \
    {                                                                             \
        __m512i a = _mm512_xor_si512(acc, _mm512_srli_epi64(acc, 47));            \
        a = _mm512_xor_si512(a, _mm512_loadu_si512((const void *)(k)));           \
        __m512i lo = _mm512_mul_epu32(a, prime);                                  \
        __m512i hi = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), prime);           \
        acc = _mm512_add_epi64(lo, _mm512_slli_epi64(hi, 32));                    \
    }
#define ACC_STORE _mm512_storeu_si512((void *)out, acc)
#define ACC_LANES(l)                                              \
    {                                                             \
        lanes256((l), _mm512_castsi512_si256(acc));               \
        lanes256((l) + 4, _mm512_extracti64x4_epi64(acc, 1));     \
    }
#define XXH3_SFX avx512
#define XXH3_ATTR PH_TARGET("avx512f")
#include "xxh3_body.h"
#endif

#if PH_ARM64
/* NEON: four 2-lane accumulators; vmull_u32 is the 32x32->64 multiply, vextq swaps lanes. */
#define ACC_DECL                                                                    \
    uint64x2_t acc[4];                                                              \
    const uint32x2_t prime = vdup_n_u32(P32_1);                                     \
    int i
#define ACC_LOAD for (i = 0; i < 4; i++) acc[i] = vld1q_u64(acc_init + 2 * i)
#define ACC512(d, k)                                                                \
    for (i = 0; i < 4; i++) {                                                       \
        uint64x2_t v = vreinterpretq_u64_u8(vld1q_u8((d) + 16 * i));               \
        uint64x2_t dk = veorq_u64(v, vreinterpretq_u64_u8(vld1q_u8((k) + 16 * i))); \
        uint64x2_t prod = vmull_u32(vmovn_u64(dk), vshrn_n_u64(dk, 32));            \
        acc[i] = vaddq_u64(acc[i], vaddq_u64(vextq_u64(v, v, 1), prod));            \
    }
#define SCRAMBLE(k)                                                                 \
    for (i = 0; i < 4; i++) {                                                       \
        uint64x2_t a = veorq_u64(acc[i], vshrq_n_u64(acc[i], 47));                  \
        a = veorq_u64(a, vreinterpretq_u64_u8(vld1q_u8((k) + 16 * i)));             \
        uint64x2_t hi = vshlq_n_u64(vmull_u32(vshrn_n_u64(a, 32), prime), 32);      \
        acc[i] = vmlal_u32(hi, vmovn_u64(a), prime);                                \
    }
#define ACC_STORE for (i = 0; i < 4; i++) vst1q_u64(out + 2 * i, acc[i])
#define ACC_LANES(l)                                                                \
    for (i = 0; i < 4; i++) {                                                       \
        (l)[2 * i] = vgetq_lane_u64(acc[i], 0);                                     \
        (l)[2 * i + 1] = vgetq_lane_u64(acc[i], 1);                                 \
    }
#define XXH3_SFX neon
#define XXH3_ATTR /* baseline on AArch64 */
#include "xxh3_body.h"
#endif

typedef void (*long_fn)(const uint8_t *, size_t, uint64_t[8]);
typedef void (*page4k_fn)(const uint8_t *, uint8_t[16]);
static long_fn g_long = long_scalar;
static page4k_fn g_page4k = page4k_scalar;
static int g_impl = PH_XXH_SCALAR;

int ph_xxh3_set_impl(int impl) {
    const ph_cpu *cpu = ph_cpu_features();
    if (impl == PH_XXH_AUTO)
        impl = cpu->avx512 ? PH_XXH_AVX512
               : cpu->avx2 ? PH_XXH_AVX2
               : cpu->sse2 ? PH_XXH_SSE2
               : cpu->neon ? PH_XXH_NEON
                           : PH_XXH_SCALAR;
    switch (impl) {
    case PH_XXH_SCALAR:
        g_long = long_scalar;
        g_page4k = page4k_scalar;
        break;
#if PH_X86
    case PH_XXH_SSE2:
        if (!cpu->sse2) return -1;
        g_long = long_sse2;
        g_page4k = page4k_sse2;
        break;
    case PH_XXH_AVX2:
        if (!cpu->avx2) return -1;
        g_long = long_avx2;
        g_page4k = page4k_avx2;
        break;
    case PH_XXH_AVX512:
        if (!cpu->avx512) return -1;
        g_long = long_avx512;
        g_page4k = page4k_avx512;
        break;
#endif
#if PH_ARM64
    case PH_XXH_NEON:
        g_long = long_neon;
        g_page4k = page4k_neon;
        break;
#endif
    default: return -1;
    }
    g_impl = impl;
    return 0;
}

int ph_xxh3_get_impl(void) { return g_impl; }

void ph_xxh3_128(const uint8_t *p, size_t len, uint8_t out[16]) {
    u128 h;
    if (len == PAGE4K) {
        g_page4k(p, out);
        return;
    }
    if (len <= 16) {
        if (len > 8) h = len_9to16(p, len);
        else if (len >= 4) h = len_4to8(p, len);
        else if (len) h = len_1to3(p, len);
        else h = len_0();
    } else if (len <= 128) {
        h = len_17to128(p, len);
    } else if (len <= 240) {
        h = len_129to240(p, len);
    } else {
        uint64_t acc[8];
        g_long(p, len, acc);
        h = finish_long(acc, len);
    }
    put_canonical(h, out);
}
