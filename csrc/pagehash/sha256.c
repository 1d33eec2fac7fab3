/* SHA-256 (FIPS 180-4): portable compression function, padding, and the choice between it and
 * the SHA-NI compression in sha256_shani.c. */
#include "pagehash.h"

const uint32_t ph_sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define CH(x, y, z) (((x) & (y)) ^ (~(x) & (z)))
#define MAJ(x, y, z) (((x) & (y)) ^ ((x) & (z)) ^ ((y) & (z)))
#define BSIG0(x) (ROTR(x, 2) ^ ROTR(x, 13) ^ ROTR(x, 22))
#define BSIG1(x) (ROTR(x, 6) ^ ROTR(x, 11) ^ ROTR(x, 25))
#define SSIG0(x) (ROTR(x, 7) ^ ROTR(x, 18) ^ ((x) >> 3))
#define SSIG1(x) (ROTR(x, 17) ^ ROTR(x, 19) ^ ((x) >> 10))

static inline uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

void ph_sha256_blocks_portable(uint32_t state[8], const uint8_t *data, size_t nblocks) {
    uint32_t w[64];
    for (; nblocks; nblocks--, data += 64) {
        int t;
        for (t = 0; t < 16; t++) w[t] = be32(data + 4 * t);
        for (t = 16; t < 64; t++) w[t] = SSIG1(w[t - 2]) + w[t - 7] + SSIG0(w[t - 15]) + w[t - 16];
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
        for (t = 0; t < 64; t++) {
            uint32_t t1 = h + BSIG1(e) + CH(e, f, g) + ph_sha256_k[t] + w[t];
            uint32_t t2 = BSIG0(a) + MAJ(a, b, c);
            h = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
        state[4] += e;
        state[5] += f;
        state[6] += g;
        state[7] += h;
    }
}

static ph_sha256_blocks_fn g_blocks = ph_sha256_blocks_portable;
static int g_impl = PH_SHA_PORTABLE;

int ph_sha256_set_impl(int impl) {
    const ph_cpu *cpu = ph_cpu_features();
    if (impl == PH_SHA_AUTO) impl = cpu->sha ? PH_SHA_SHANI : PH_SHA_PORTABLE;
    if (impl == PH_SHA_PORTABLE) {
        g_blocks = ph_sha256_blocks_portable;
#if PH_X86
    } else if (impl == PH_SHA_SHANI && cpu->sha) {
        g_blocks = ph_sha256_blocks_shani;
#endif
    } else {
        return -1;
    }
    g_impl = impl;
    return 0;
}

int ph_sha256_get_impl(void) { return g_impl; }

/* the padding block(s) of a message: its last len % 64 bytes, 0x80, zeros, bit length */
static size_t pad(const uint8_t *p, size_t len, uint8_t tail[128]) {
    size_t rest = len % 64, ntail = rest < 56 ? 1 : 2;
    uint64_t bits = (uint64_t)len * 8;
    memset(tail, 0, 128);
    if (rest) memcpy(tail, p + len - rest, rest);
    tail[rest] = 0x80;
    for (int i = 0; i < 8; i++) tail[ntail * 64 - 1 - i] = (uint8_t)(bits >> (8 * i));
    return ntail;
}

static void put_digest(const uint32_t st[8], uint8_t out[32]) {
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(st[i] >> 24);
        out[4 * i + 1] = (uint8_t)(st[i] >> 16);
        out[4 * i + 2] = (uint8_t)(st[i] >> 8);
        out[4 * i + 3] = (uint8_t)st[i];
    }
}

/* One message: whole blocks straight from the input, then one or two padding blocks. */
void ph_sha256(const uint8_t *p, size_t len, uint8_t out[32]) {
    uint32_t st[8];
    uint8_t tail[128];
    memcpy(st, H0, sizeof st);
    if (len / 64) g_blocks(st, p, len / 64);
    g_blocks(st, tail, pad(p, len, tail));
    put_digest(st, out);
}

/* Two messages of the same length at p and p + stride (two pages): interleaved with SHA-NI. */
void ph_sha256_x2(const uint8_t *p, size_t stride, size_t len, uint8_t out[64]) {
#if PH_X86
    if (g_impl == PH_SHA_SHANI) {
        uint32_t sa[8], sb[8];
        uint8_t ta[128], tb[128];
        memcpy(sa, H0, sizeof sa);
        memcpy(sb, H0, sizeof sb);
        if (len / 64) ph_sha256_blocks2_shani(sa, sb, p, p + stride, len / 64);
        size_t ntail = pad(p, len, ta);
        pad(p + stride, len, tb);
        ph_sha256_blocks2_shani(sa, sb, ta, tb, ntail);
        put_digest(sa, out);
        put_digest(sb, out + 32);
        return;
    }
#endif
    ph_sha256(p, len, out);
    ph_sha256(p + stride, len, out + 32);
}
