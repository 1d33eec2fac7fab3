/* SHA-256 compression with the x86 SHA extensions (SHA-NI), written from the instruction
 * definitions in Intel's SDM: SHA256RNDS2 does two rounds on the state held as ABEF / CDGH,
 * SHA256MSG1 / SHA256MSG2 do the sigma0 / sigma1 parts of the message schedule.
 *
 * SHA256RNDS2 has a latency of several cycles but issues more often than that, so one message
 * leaves the unit idle; the two-message variant runs two independent pages side by side. */
#include "pagehash.h"

#if PH_X86
#include <immintrin.h>

#define SHA_TARGET PH_TARGET("sha,sse4.1,ssse3")

/* Four rounds (group g) on the message words W of that group. */
#define QROUND(g, W, abef, cdgh)                                                             \
    {                                                                                        \
        __m128i m = _mm_add_epi32(W, _mm_loadu_si128((const __m128i *)(ph_sha256_k + 4 * (g)))); \
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, m);                                         \
        m = _mm_shuffle_epi32(m, 0x0E);                                                      \
        abef = _mm_sha256rnds2_epu32(abef, cdgh, m);                                         \
    }

/* The next group's words from the four previous groups (W0 oldest), written over W0. */
#define SCHEDULE(W0, W1, W2, W3)                                \
    W0 = _mm_sha256msg1_epu32(W0, W1);                          \
    W0 = _mm_add_epi32(W0, _mm_alignr_epi8(W3, W2, 4));         \
    W0 = _mm_sha256msg2_epu32(W0, W3);

#define LOAD_BE(p, i) _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p) + (i)), bswap)

/* lanes (low to high) a,b,c,d / e,f,g,h  <->  f,e,b,a / h,g,d,c as the instructions want */
SHA_TARGET static inline void unpack(const uint32_t st[8], __m128i *abef, __m128i *cdgh) {
    __m128i badc = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)st), 0xB1);
    __m128i efgh = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(st + 4)), 0x1B);
    *abef = _mm_alignr_epi8(badc, efgh, 8);
    *cdgh = _mm_blend_epi16(efgh, badc, 0xF0);
}

SHA_TARGET static inline void pack(uint32_t st[8], __m128i abef, __m128i cdgh) {
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)st, _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128((__m128i *)(st + 4), _mm_alignr_epi8(dchg, feba, 8));
}

SHA_TARGET
void ph_sha256_blocks_shani(uint32_t state[8], const uint8_t *data, size_t nblocks) {
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i abef, cdgh;
    unpack(state, &abef, &cdgh);
    for (; nblocks; nblocks--, data += 64) {
        __m128i abef0 = abef, cdgh0 = cdgh;
        __m128i w0 = LOAD_BE(data, 0), w1 = LOAD_BE(data, 1), w2 = LOAD_BE(data, 2), w3 = LOAD_BE(data, 3);
#define STEP(g, A, B, C, D) SCHEDULE(A, B, C, D) QROUND(g, A, abef, cdgh)
        QROUND(0, w0, abef, cdgh) QROUND(1, w1, abef, cdgh) QROUND(2, w2, abef, cdgh) QROUND(3, w3, abef, cdgh)
        STEP(4, w0, w1, w2, w3) STEP(5, w1, w2, w3, w0) STEP(6, w2, w3, w0, w1) STEP(7, w3, w0, w1, w2)
        STEP(8, w0, w1, w2, w3) STEP(9, w1, w2, w3, w0) STEP(10, w2, w3, w0, w1) STEP(11, w3, w0, w1, w2)
        STEP(12, w0, w1, w2, w3) STEP(13, w1, w2, w3, w0) STEP(14, w2, w3, w0, w1) STEP(15, w3, w0, w1, w2)
#undef STEP
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
    }
    pack(state, abef, cdgh);
}

/* Two messages of the same block count at once (a and b), interleaved round by round. */
SHA_TARGET
void ph_sha256_blocks2_shani(uint32_t sa[8], uint32_t sb[8], const uint8_t *a, const uint8_t *b,
                             size_t nblocks) {
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i abef_a, cdgh_a, abef_b, cdgh_b;
    unpack(sa, &abef_a, &cdgh_a);
    unpack(sb, &abef_b, &cdgh_b);
    for (; nblocks; nblocks--, a += 64, b += 64) {
        __m128i abef_a0 = abef_a, cdgh_a0 = cdgh_a, abef_b0 = abef_b, cdgh_b0 = cdgh_b;
        __m128i a0 = LOAD_BE(a, 0), a1 = LOAD_BE(a, 1), a2 = LOAD_BE(a, 2), a3 = LOAD_BE(a, 3);
        __m128i b0 = LOAD_BE(b, 0), b1 = LOAD_BE(b, 1), b2 = LOAD_BE(b, 2), b3 = LOAD_BE(b, 3);
#define Q2(g, i) QROUND(g, a##i, abef_a, cdgh_a) QROUND(g, b##i, abef_b, cdgh_b)
#define STEP2(g, i, j, k, l)                \
    SCHEDULE(a##i, a##j, a##k, a##l)        \
    SCHEDULE(b##i, b##j, b##k, b##l)        \
    Q2(g, i)
        Q2(0, 0) Q2(1, 1) Q2(2, 2) Q2(3, 3)
        STEP2(4, 0, 1, 2, 3) STEP2(5, 1, 2, 3, 0) STEP2(6, 2, 3, 0, 1) STEP2(7, 3, 0, 1, 2)
        STEP2(8, 0, 1, 2, 3) STEP2(9, 1, 2, 3, 0) STEP2(10, 2, 3, 0, 1) STEP2(11, 3, 0, 1, 2)
        STEP2(12, 0, 1, 2, 3) STEP2(13, 1, 2, 3, 0) STEP2(14, 2, 3, 0, 1) STEP2(15, 3, 0, 1, 2)
#undef STEP2
#undef Q2
        abef_a = _mm_add_epi32(abef_a, abef_a0);
        cdgh_a = _mm_add_epi32(cdgh_a, cdgh_a0);
        abef_b = _mm_add_epi32(abef_b, abef_b0);
        cdgh_b = _mm_add_epi32(cdgh_b, cdgh_b0);
    }
    pack(sa, abef_a, cdgh_a);
    pack(sb, abef_b, cdgh_b);
}
#endif
