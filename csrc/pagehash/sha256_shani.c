/* SHA-256 compression with the x86 SHA extensions (SHA-NI), written from the instruction
 * definitions in Intel's SDM: SHA256RNDS2 does two rounds on the state held as ABEF / CDGH,
 * SHA256MSG1 / SHA256MSG2 do the sigma0 / sigma1 parts of the message schedule. */
#include "pagehash.h"

#if PH_X86
#include <immintrin.h>

/* Four rounds (group g) on message words W (W[g]). */
#define QROUND(g, W)                                                            \
    {                                                                           \
        __m128i m = _mm_add_epi32(W, _mm_loadu_si128((const __m128i *)(ph_sha256_k + 4 * (g)))); \
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, m);                            \
        m = _mm_shuffle_epi32(m, 0x0E);                                         \
        abef = _mm_sha256rnds2_epu32(abef, cdgh, m);                            \
    }

/* W[g] from the four previous groups: W0..W3 rotate so that W0 is oldest. */
#define SCHEDULE(W0, W1, W2, W3)                                                \
    W0 = _mm_sha256msg1_epu32(W0, W1);                                          \
    W0 = _mm_add_epi32(W0, _mm_alignr_epi8(W3, W2, 4));                         \
    W0 = _mm_sha256msg2_epu32(W0, W3);

PH_TARGET("sha,sse4.1,ssse3")
void ph_sha256_blocks_shani(uint32_t state[8], const uint8_t *data, size_t nblocks) {
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i dcba = _mm_loadu_si128((const __m128i *)state);
    __m128i hgfe = _mm_loadu_si128((const __m128i *)(state + 4));
    /* lanes (low to high) a,b,c,d / e,f,g,h  ->  f,e,b,a / h,g,d,c as the instructions want */
    __m128i badc = _mm_shuffle_epi32(dcba, 0xB1);
    __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    __m128i abef = _mm_alignr_epi8(badc, efgh, 8);
    __m128i cdgh = _mm_blend_epi16(efgh, badc, 0xF0);

    for (; nblocks; nblocks--, data += 64) {
        __m128i abef0 = abef, cdgh0 = cdgh;
        __m128i w0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)data), bswap);
        __m128i w1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16)), bswap);
        __m128i w2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 32)), bswap);
        __m128i w3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 48)), bswap);
        QROUND(0, w0) QROUND(1, w1) QROUND(2, w2) QROUND(3, w3)
        SCHEDULE(w0, w1, w2, w3) QROUND(4, w0)
        SCHEDULE(w1, w2, w3, w0) QROUND(5, w1)
        SCHEDULE(w2, w3, w0, w1) QROUND(6, w2)
        SCHEDULE(w3, w0, w1, w2) QROUND(7, w3)
        SCHEDULE(w0, w1, w2, w3) QROUND(8, w0)
        SCHEDULE(w1, w2, w3, w0) QROUND(9, w1)
        SCHEDULE(w2, w3, w0, w1) QROUND(10, w2)
        SCHEDULE(w3, w0, w1, w2) QROUND(11, w3)
        SCHEDULE(w0, w1, w2, w3) QROUND(12, w0)
        SCHEDULE(w1, w2, w3, w0) QROUND(13, w1)
        SCHEDULE(w2, w3, w0, w1) QROUND(14, w2)
        SCHEDULE(w3, w0, w1, w2) QROUND(15, w3)
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
    }

    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    dcba = _mm_blend_epi16(feba, dchg, 0xF0);
    hgfe = _mm_alignr_epi8(dchg, feba, 8);
    _mm_storeu_si128((__m128i *)state, dcba);
    _mm_storeu_si128((__m128i *)(state + 4), hgfe);
}
#endif
