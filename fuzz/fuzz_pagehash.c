/* libFuzzer harness for the page-hashing core (csrc/pagehash), built with
 * -fsanitize=fuzzer,address,undefined by `make fuzz`.
 *
 * Input layout: byte 0 picks the page size (16 << (b & 7)), the algorithm (bit 3), whether a
 * mask is used (bit 4) and the thread count (bits 5-6: 1..4); the rest is split in two equal
 * buffers A and B (the mask, when used, is derived from A's first bytes). Checks, beyond the
 * sanitizers: every SIMD implementation agrees with the scalar one, the FLAG_ZERO flag matches
 * a byte scan, and compare_pages (ranges come as start, end pairs: nranges counts both) reports exactly the pages and byte ranges a plain loop finds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../csrc/pagehash/pagehash.h"

static void die(const char *what) {
    fprintf(stderr, "fuzz_pagehash: %s\n", what);
    abort();
}

static int masked(const uint8_t *mask, size_t i) { return mask && ((mask[i / 8] >> (i % 8)) & 1); }

static void check_hash(const uint8_t *buf, size_t len, size_t ps, const uint8_t *mask, int algo,
                       int threads) {
    size_t n = (len + ps - 1) / ps, ds = ph_digest_size(algo);
    uint8_t *d0 = malloc(n * ds + 1), *d1 = malloc(n * ds + 1), *f0 = malloc(n + 1), *f1 = malloc(n + 1);
    if (!d0 || !d1 || !f0 || !f1) die("out of memory");
    ph_hash_req req = {buf, len, ps, mask, algo, 1};
    if (algo == PH_ALGO_SHA256) ph_sha256_set_impl(PH_SHA_PORTABLE);
    else ph_xxh3_set_impl(PH_XXH_SCALAR);
    if (ph_hash_pages(&req, d0, f0) != PH_OK) die("hash_pages failed");
    if (algo == PH_ALGO_SHA256) ph_sha256_set_impl(PH_SHA_AUTO);
    else ph_xxh3_set_impl(PH_XXH_AUTO);
    req.threads = threads;
    if (ph_hash_pages(&req, d1, f1) != PH_OK) die("hash_pages failed");
    if (memcmp(d0, d1, n * ds)) die("SIMD digest differs from the scalar one");
    if (memcmp(f0, f1, n)) die("flags differ between implementations");
    for (size_t p = 0; p < n; p++) {
        int zero = 1, any_mask = 0;
        for (size_t i = p * ps; i < len && i < (p + 1) * ps; i++) {
            if (masked(mask, i)) any_mask = 1;
            else if (buf[i]) zero = 0;
        }
        if (((f0[p] & PH_FLAG_ZERO) != 0) != zero) die("FLAG_ZERO wrong");
        if (((f0[p] & PH_FLAG_MASKED) != 0) != any_mask) die("FLAG_MASKED wrong");
    }
    free(d0), free(d1), free(f0), free(f1);
}

static void check_compare(const uint8_t *a, const uint8_t *b, size_t len, size_t ps,
                          const uint8_t *mask, int threads) {
    for (int impl = PH_CMP_SCALAR; impl <= PH_CMP_AVX2; impl++) {
        if (ph_compare_set_impl(impl)) continue;
        ph_diff d = {0};
        if (ph_compare_pages(a, b, len, ps, mask, threads, &d) != PH_OK) die("compare failed");
        size_t np = 0, nr = 0, i = 0;
        while (i < len) {  /* reference: byte ranges that differ, merged */
            if (a[i] != b[i] && !masked(mask, i)) {
                size_t start = i;
                while (i < len && a[i] != b[i] && !masked(mask, i)) i++;
                if (2 * nr >= d.nranges || d.ranges[2 * nr] != start || d.ranges[2 * nr + 1] != i)
                    die("compare ranges differ from the reference");
                nr++;
            } else {
                i++;
            }
        }
        if (2 * nr != d.nranges) die("compare reports extra ranges");
        for (size_t p = 0; p * ps < len; p++) {
            int diff = 0;
            for (size_t k = p * ps; k < len && k < (p + 1) * ps; k++)
                if (a[k] != b[k] && !masked(mask, k)) diff = 1;
            if (diff) {
                if (np >= d.npages || d.pages[np] != p) die("compare pages differ from the reference");
                np++;
            }
        }
        if (np != d.npages) die("compare reports extra pages");
        ph_diff_free(&d);
    }
    ph_compare_set_impl(PH_CMP_AUTO);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    if (!ready) ph_init(), ready = 1;
    if (size < 1) return 0;
    uint8_t ctl = data[0];
    size_t ps = (size_t)16 << (ctl & 7);
    int algo = (ctl & 8) ? PH_ALGO_SHA256 : PH_ALGO_XXH128;
    int threads = 1 + ((ctl >> 5) & 3);
    size_t len = (size - 1) / 2;
    const uint8_t *a = data + 1, *b = data + 1 + len;
    /* exact-size heap copies so ASan sees any read past the end */
    uint8_t *ca = malloc(len + 1), *cb = malloc(len + 1), *mask = NULL;
    if (!ca || !cb) die("out of memory");
    memcpy(ca, a, len), memcpy(cb, b, len);
    if (ctl & 16) {
        size_t mlen = (len + 7) / 8;
        mask = malloc(mlen + 1);
        if (!mask) die("out of memory");
        for (size_t i = 0; i < mlen; i++) mask[i] = i < len ? (uint8_t)(a[i] & a[len - 1 - i]) : 0;
    }
    if (len) {
        check_hash(ca, len, ps, mask, algo, threads);
        check_compare(ca, cb, len, ps, mask, threads);
    }
    free(ca), free(cb), free(mask);
    return 0;
}
