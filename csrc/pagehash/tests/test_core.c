/* Self-checking driver for the page-hashing core, built without Python so it can run under
 * AddressSanitizer/UBSan (`make asan`, tests/pagehash/test_pagehash_asan.py):
 *   - published SHA-256 (FIPS 180-4) and XXH3-128 vectors, for every implementation the CPU has;
 *   - every implementation agrees with the portable one on all lengths 0..5000;
 *   - hash_pages == per-page single calls (masked bytes zeroed), flags right, any thread count;
 *   - compare_pages == a byte-by-byte loop on random buffers with planted differences.
 * Every buffer is malloc'ed at its exact length so an overread is caught. */
#include <stdio.h>
#include <stdlib.h>

#include "../pagehash.h"

static int failures, checks;

#define CHECK(cond, ...)                         \
    do {                                         \
        checks++;                                \
        if (!(cond)) {                           \
            failures++;                          \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);        \
            fputc('\n', stderr);                 \
        }                                        \
    } while (0)

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static uint8_t *exact_copy(const uint8_t *src, size_t len) {
    uint8_t *p = (uint8_t *)malloc(len ? len : 1);
    if (len) memcpy(p, src, len);
    return p;
}

static void hex(const uint8_t *d, size_t n, char *out) {
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

/* ---- published vectors ---- */

static void sha256_vectors(void) {
    static const struct {
        const char *msg;
        const char *hex;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    char got[65];
    uint8_t d[32];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        size_t n = strlen(v[i].msg);
        uint8_t *m = exact_copy((const uint8_t *)v[i].msg, n);
        ph_sha256(m, n, d);
        hex(d, 32, got);
        CHECK(!strcmp(got, v[i].hex), "sha256 impl %d vector %zu: %s", ph_sha256_get_impl(), i, got);
        free(m);
    }
    /* one million 'a' */
    uint8_t *m = (uint8_t *)malloc(1000000);
    memset(m, 'a', 1000000);
    ph_sha256(m, 1000000, d);
    hex(d, 32, got);
    CHECK(!strcmp(got, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
          "sha256 million a: %s", got);
    free(m);
}

/* xxHash's sanity buffer: byteGen = PRIME32, byte = byteGen >> 56, byteGen *= PRIME64 */
static void xxh3_vectors(void) {
    static const struct {
        size_t len;
        uint64_t lo, hi;
    } v[] = {
        {0, 0x6001C324468D497FULL, 0x99AA06D3014798D8ULL},
        {1, 0xC44BDFF4074EECDBULL, 0xA6CD5E9392000F6AULL},
        {6, 0x3E7039BDDA43CFC6ULL, 0x082AFE0B8162D12AULL},
        {12, 0x061A192713F69AD9ULL, 0x6E3EFD8FC7802B18ULL},
        {24, 0x1E7044D28B1B901DULL, 0x0CE966E4678D3761ULL},
        {48, 0xF942219AED80F67BULL, 0xA002AC4E5478227EULL},
        {81, 0x5E8BAFB9F95FB803ULL, 0x4952F58181AB0042ULL},
        {222, 0xF1AEBD597CEC6B3AULL, 0x337E09641B948717ULL},
        {403, 0xCDEB804D65C6DEA4ULL, 0x1B6DE21E332DD73DULL},
        {512, 0x617E49599013CB6BULL, 0x18D2D110DCC9BCA1ULL},
        {2048, 0xDD59E2C3A5F038E0ULL, 0xF736557FD47073A5ULL},
        {2240, 0x6E73A90539CF2948ULL, 0xCCB134FBFA7CE49DULL},
        {2367, 0xCB37AEB9E5D361EDULL, 0xE89C0F6FF369B427ULL},
    };
    uint8_t buf[2367];
    uint64_t gen = 2654435761U;
    for (size_t i = 0; i < sizeof buf; i++) {
        buf[i] = (uint8_t)(gen >> 56);
        gen *= 11400714785074694797ULL;
    }
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint8_t *m = exact_copy(buf, v[i].len), d[16];
        ph_xxh3_128(m, v[i].len, d);
        uint64_t hi = 0, lo = 0;
        for (int k = 0; k < 8; k++) {
            hi = hi << 8 | d[k];
            lo = lo << 8 | d[8 + k];
        }
        CHECK(hi == v[i].hi && lo == v[i].lo, "xxh3 impl %d len %zu: %016llx%016llx", ph_xxh3_get_impl(),
              v[i].len, (unsigned long long)hi, (unsigned long long)lo);
        free(m);
    }
}

/* every implementation against the portable one, on every length up to 5000 */
static void cross_check(const uint8_t *data, int algo, int impl, int (*set)(int), int base) {
    uint8_t want[32], got[32];
    size_t ds = ph_digest_size(algo);
    for (size_t len = 0; len <= 5000; len += (len < 1100 ? 1 : 37)) {
        uint8_t *m = exact_copy(data, len);
        set(base);
        if (algo == PH_ALGO_SHA256) ph_sha256(m, len, want);
        else ph_xxh3_128(m, len, want);
        set(impl);
        if (algo == PH_ALGO_SHA256) ph_sha256(m, len, got);
        else ph_xxh3_128(m, len, got);
        CHECK(!memcmp(want, got, ds), "algo %d impl %d differs from portable at len %zu", algo, impl, len);
        free(m);
    }
}

/* ---- pages ---- */

static int bit(const uint8_t *mask, size_t i) { return mask && (mask[i / 8] >> (i % 8)) & 1; }

static uint8_t *random_mask(size_t n) {
    uint8_t *m = (uint8_t *)calloc((n + 7) / 8 + 1, 1);
    for (size_t pos = 0; pos < n;) {
        size_t gap = rnd() % 9000, run = rnd() % 300;
        for (size_t i = pos + gap; i < pos + gap + run && i < n; i++) m[i / 8] |= (uint8_t)(1u << (i % 8));
        pos += gap + run;
    }
    return m;
}

static void check_pages(const uint8_t *buf, size_t n, size_t ps, const uint8_t *mask, int algo) {
    size_t npages = (n + ps - 1) / ps, ds = ph_digest_size(algo);
    uint8_t *d1 = (uint8_t *)malloc(npages * ds + 1), *f1 = (uint8_t *)malloc(npages + 1);
    uint8_t *d2 = (uint8_t *)malloc(npages * ds + 1), *f2 = (uint8_t *)malloc(npages + 1);
    ph_hash_req req = {buf, n, ps, mask, algo, 1};
    CHECK(ph_hash_pages(&req, d1, f1) == PH_OK, "hash_pages failed");
    for (size_t i = 0; i < npages; i++) {
        size_t len = n - i * ps < ps ? n - i * ps : ps;
        uint8_t *page = exact_copy(buf + i * ps, len), want[32], flags = 0, nz = 0;
        for (size_t j = 0; j < len; j++) {
            if (bit(mask, i * ps + j)) {
                page[j] = 0;
                flags |= PH_FLAG_MASKED;
            }
            nz |= page[j];
        }
        if (!nz) flags |= PH_FLAG_ZERO;
        if (algo == PH_ALGO_SHA256) ph_sha256(page, len, want);
        else ph_xxh3_128(page, len, want);
        CHECK(!memcmp(want, d1 + i * ds, ds), "page %zu (ps %zu algo %d) digest", i, ps, algo);
        CHECK(flags == f1[i], "page %zu flags %d want %d", i, f1[i], flags);
        free(page);
    }
    for (int t = 2; t <= 5; t += 3) {
        req.threads = t;
        CHECK(ph_hash_pages(&req, d2, f2) == PH_OK, "hash_pages failed");
        CHECK(!memcmp(d1, d2, npages * ds) && !memcmp(f1, f2, npages), "threads %d differ", t);
    }
    free(d1), free(f1), free(d2), free(f2);
}

static void check_compare(const uint8_t *a, size_t n, size_t ps, const uint8_t *mask) {
    uint8_t *b = exact_copy(a, n);
    for (int k = 0; k < 40 && n; k++) {
        size_t at = rnd() % n, run = 1 + rnd() % 200;
        for (size_t i = at; i < at + run && i < n; i++) b[i] ^= (uint8_t)(1 + rnd() % 255);
    }
    /* expected, byte by byte */
    size_t cap = n + 2, *r = (size_t *)malloc(cap * sizeof *r), *pg = (size_t *)malloc(cap * sizeof *pg);
    size_t nr = 0, np = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] == b[i] || bit(mask, i)) continue;
        if (nr && r[nr - 1] == i) r[nr - 1] = i + 1;
        else r[nr++] = i, r[nr++] = i + 1;
        if (!np || pg[np - 1] != i / ps) pg[np++] = i / ps;
    }
    for (int t = 1; t <= 4; t++) {
        ph_diff got;
        CHECK(ph_compare_pages(a, b, n, ps, mask, t, &got) == PH_OK, "compare failed");
        CHECK(got.nranges == nr && (!nr || !memcmp(got.ranges, r, nr * sizeof *r)), "ranges differ (n %zu ps %zu t %d: %zu vs %zu)",
              n, ps, t, got.nranges / 2, nr / 2);
        CHECK(got.npages == np && (!np || !memcmp(got.pages, pg, np * sizeof *pg)), "pages differ (n %zu ps %zu t %d)", n, ps, t);
        ph_diff_free(&got);
    }
    free(r), free(pg), free(b);
}

/* HPF_PAGEHASH_IMPL specs, parsed from exact-length copies so a read past the end is caught */
static void impl_specs(void) {
    static const struct {
        const char *spec;
        int rc;
    } v[] = {
        {"", PH_OK}, {",,", PH_OK}, {"xxh128=scalar", PH_OK}, {"scalar,sha256=portable", PH_OK},
        {"auto", PH_OK}, {"xxh128=", PH_IMPL_UNKNOWN_NAME}, {"=scalar", PH_IMPL_UNKNOWN_KIND},
        {"xxh128=scalarx", PH_IMPL_UNKNOWN_NAME}, {"xxh12=scalar", PH_IMPL_UNKNOWN_KIND},
        {"nope", PH_IMPL_UNKNOWN_NAME}, {"compare=scalar,xxh128=avx9", PH_IMPL_UNKNOWN_NAME},
    };
    char err[160];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        size_t n = strlen(v[i].spec);
        char *spec = (char *)exact_copy((const uint8_t *)v[i].spec, n + 1);
        err[0] = 0;
        int rc = ph_apply_impl_spec(spec, err, sizeof err);
        CHECK(rc == v[i].rc, "spec '%s': rc %d want %d (%s)", v[i].spec, rc, v[i].rc, err);
        CHECK((rc == PH_OK) == (err[0] == 0), "spec '%s': error text '%s'", v[i].spec, err);
        free(spec);
    }
    ph_apply_impl_spec("xxh128=scalar,compare=scalar", err, sizeof err);
    CHECK(ph_xxh3_get_impl() == PH_XXH_SCALAR && ph_compare_get_impl() == PH_CMP_SCALAR, "spec not applied");
    CHECK(!strcmp(ph_impl_name("xxh128"), "scalar") && !ph_impl_name("xx"), "impl names");
    ph_init();
}

/* the read floor folds every byte whatever the path, length or thread count */
static void read_floor(const uint8_t *data, size_t big) {
    size_t lens[] = {0, 1, 7, 8, 255, 256, 4095, 4096, 4097, 3 * 4096 + 100, big};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        size_t n = lens[k], i;
        uint8_t *m = exact_copy(data, n);
        uint64_t want = 0, got;
        for (i = 0; i + 8 <= n; i += 8) want ^= ph_read64(m + i);
        for (; i < n; i++) want ^= m[i];
        for (int t = 1; t <= 3; t++) {
            for (int w = 0; w <= 64; w = w ? 2 * w : 8) {
                for (int ahead = 0; ahead <= 4096; ahead += 4096) {
                    int rc = ph_read_floor(m, n, t, w, ahead, &got);
                    if (rc == PH_IMPL_UNAVAILABLE) continue;
                    CHECK(rc == PH_OK && got == want, "read floor len %zu threads %d width %d ahead %d",
                          n, t, w, ahead);
                }
            }
        }
        free(m);
    }
}

int main(void) {
    const ph_cpu *cpu;
    ph_init();
    cpu = ph_cpu_features();
    printf("cpu: sse2=%d avx2=%d avx512=%d avx512bw=%d sha=%d neon=%d\n", cpu->sse2, cpu->avx2,
           cpu->avx512, cpu->avx512bw, cpu->sha, cpu->neon);
    impl_specs();

    size_t big = (9u << 20) + 4321; /* several threads' worth, odd tail */
    uint8_t *data = (uint8_t *)malloc(big);
    for (size_t i = 0; i < big; i++) data[i] = (uint8_t)(rnd() >> 56);
    memset(data + 8192, 0, 3 * 4096); /* zero pages */
    read_floor(data, big);

    for (int impl = PH_SHA_PORTABLE; impl <= PH_SHA_SHANI; impl++) {
        if (ph_sha256_set_impl(impl)) continue;
        sha256_vectors();
        cross_check(data, PH_ALGO_SHA256, impl, ph_sha256_set_impl, PH_SHA_PORTABLE);
    }
    ph_sha256_set_impl(PH_SHA_AUTO);
    for (int impl = PH_XXH_SCALAR; impl <= PH_XXH_NEON; impl++) {
        if (ph_xxh3_set_impl(impl)) continue;
        xxh3_vectors();
        cross_check(data, PH_ALGO_XXH128, impl, ph_xxh3_set_impl, PH_XXH_SCALAR);
    }
    ph_xxh3_set_impl(PH_XXH_AUTO);

    uint8_t *mask = random_mask(big);
    size_t sizes[] = {big, 4096 * 3 + 17, 100, 0};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        uint8_t *buf = exact_copy(data, sizes[s]);
        size_t pss[] = {16, 4096, 65536};
        for (size_t k = 0; k < 3; k++) {
            if (sizes[s] == big && pss[k] == 16) continue; /* 600k pages: too slow under ASan */
            for (int algo = 0; algo < 2; algo++) {
                check_pages(buf, sizes[s], pss[k], NULL, algo);
                check_pages(buf, sizes[s], pss[k], mask, algo);
            }
            for (int impl = PH_CMP_SCALAR; impl <= PH_CMP_AVX512; impl++) {
                if (ph_compare_set_impl(impl)) continue;
                check_compare(buf, sizes[s], pss[k], NULL);
                check_compare(buf, sizes[s], pss[k], mask);
            }
            ph_compare_set_impl(PH_CMP_AUTO);
        }
        free(buf);
    }
    free(mask);
    free(data);
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
