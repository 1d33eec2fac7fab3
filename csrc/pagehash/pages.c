/* Per-page hashing: threads claim chunks of pages, zero masked bytes in a scratch copy of each
 * page that has any, flag all-zero and masked pages, and hash every page as its own message
 * (whole unmasked SHA-256 pages two at a time). */
#include <stdlib.h>

#include "pagehash.h"

/* Below this many bytes per thread, starting a thread costs more than it saves. */
#define MIN_BYTES_PER_THREAD ((size_t)1 << 20)

/* Threads claim chunks of about this many bytes from a shared counter instead of owning a
 * fixed slice: on a shared machine a thread that loses its core holds back only the chunk it
 * is on, not half of the call. Every page still has its own output slot, so the results do not
 * depend on which thread took which chunk. */
#define CHUNK_BYTES ((size_t)256 << 10)

typedef struct {
    const ph_hash_req *req;
    size_t npages, chunk; /* pages in all, pages a claim takes */
    size_t *next;         /* shared: first page not yet claimed */
    size_t first, last;   /* page indices [first, last) of the current claim */
    uint8_t *digests, *flags;
    int err;
} hash_task;

size_t ph_digest_size(int algo) { return algo == PH_ALGO_SHA256 ? 32 : 16; }

/* any mask bit set for bytes [start, start + len); start is a multiple of 8 */
static int any_masked(const uint8_t *mask, size_t start, size_t len) {
    const uint8_t *m = mask + start / 8;
    size_t whole = len / 8, i;
    for (i = 0; i < whole; i++)
        if (m[i]) return 1;
    if (len % 8) return (m[whole] & ((1u << (len % 8)) - 1)) != 0;
    return 0;
}

/* copy of the page with masked bytes zeroed */
static void masked_copy(uint8_t *dst, const uint8_t *src, const uint8_t *mask, size_t start, size_t len) {
    const uint8_t *m = mask + start / 8;
    size_t whole = len / 8, i;
    for (i = 0; i < whole; i++) {
        uint64_t w;
        memcpy(&w, src + 8 * i, 8);
        w &= ~ph_expand_bits(m[i]); /* byte i of w is byte i in memory: little-endian only */
        memcpy(dst + 8 * i, &w, 8);
    }
    for (i = whole * 8; i < len; i++) dst[i] = ((m[i / 8] >> (i % 8)) & 1) ? 0 : src[i];
}

static int all_zero(const uint8_t *p, size_t len) {
    size_t i = 0;
    /* the first word usually answers; then whole 64-byte runs */
    for (; i + 64 <= len; i += 64) {
        uint64_t acc = 0;
        for (int k = 0; k < 8; k++) acc |= ph_read64(p + i + 8 * k);
        if (acc) return 0;
    }
    for (; i < len; i++)
        if (p[i]) return 0;
    return 1;
}

static void hash_one(int algo, const uint8_t *p, size_t len, uint8_t *out) {
    if (algo == PH_ALGO_SHA256) ph_sha256(p, len, out);
    else ph_xxh3_128(p, len, out);
}

static size_t page_len(const ph_hash_req *r, size_t i) {
    size_t start = i * r->page_size;
    return r->len - start < r->page_size ? r->len - start : r->page_size;
}

static int is_masked(const ph_hash_req *r, size_t i) {
    return r->mask && any_masked(r->mask, i * r->page_size, page_len(r, i));
}

/* page i on its own, masked bytes zeroed in a scratch copy first */
static int hash_single(hash_task *t, size_t i, uint8_t **scratch) {
    const ph_hash_req *r = t->req;
    const uint8_t *p = r->buf + i * r->page_size;
    size_t len = page_len(r, i);
    uint8_t flags = 0;
    if (is_masked(r, i)) {
        if (!*scratch && !(*scratch = (uint8_t *)malloc(r->len < r->page_size ? r->len : r->page_size)))
            return PH_ENOMEM;
        masked_copy(*scratch, p, r->mask, i * r->page_size, len);
        p = *scratch;
        flags |= PH_FLAG_MASKED;
    }
    hash_one(r->algo, p, len, t->digests + i * ph_digest_size(r->algo));
    if (all_zero(p, len)) flags |= PH_FLAG_ZERO;
    t->flags[i] = flags;
    return PH_OK;
}

static void hash_claim(hash_task *t, uint8_t **scratch_p) {
    const ph_hash_req *r = t->req;
    size_t ps = r->page_size, i = t->first;
    while (i < t->last && !t->err) {
        /* SHA-256 is bound by instruction latency, not memory: two whole unmasked pages run
         * side by side. (XXH3 is bound by memory and gains nothing from it.) */
        if (r->algo == PH_ALGO_SHA256 && i + 1 < t->last && page_len(r, i + 1) == ps &&
            !is_masked(r, i) && !is_masked(r, i + 1)) {
            const uint8_t *p = r->buf + i * ps;
            ph_sha256_x2(p, ps, ps, t->digests + i * 32);
            t->flags[i] = all_zero(p, ps) ? PH_FLAG_ZERO : 0;
            t->flags[i + 1] = all_zero(p + ps, ps) ? PH_FLAG_ZERO : 0;
            i += 2;
        } else {
            t->err = hash_single(t, i, scratch_p);
            i++;
        }
    }
}

static void hash_range(void *arg) {
    hash_task *t = (hash_task *)arg;
    uint8_t *scratch = NULL;
    while (!t->err) {
        size_t first = ph_fetch_add(t->next, t->chunk);
        if (first >= t->npages) break;
        t->first = first;
        t->last = t->npages - first < t->chunk ? t->npages : first + t->chunk;
        hash_claim(t, &scratch);
    }
    free(scratch);
}

int ph_hash_pages(const ph_hash_req *req, uint8_t *digests, uint8_t *flags) {
    size_t npages = (req->len + req->page_size - 1) / req->page_size;
    size_t n = req->threads < 1 ? 1 : (size_t)req->threads;
    size_t by_size = req->len / MIN_BYTES_PER_THREAD + 1;
    if (n > by_size) n = by_size;
    if (n > PH_MAX_THREADS) n = PH_MAX_THREADS;
    if (n > npages) n = npages ? npages : 1;
    size_t chunk = CHUNK_BYTES / req->page_size, next = 0;
    if (chunk < 2) chunk = 2; /* SHA-256 pairs whole pages within a claim */
    hash_task *tasks = (hash_task *)calloc(n, sizeof *tasks);
    if (!tasks) return PH_ENOMEM;
    for (size_t k = 0; k < n; k++) {
        tasks[k].req = req;
        tasks[k].npages = npages;
        tasks[k].chunk = chunk;
        tasks[k].next = &next;
        tasks[k].digests = digests;
        tasks[k].flags = flags;
    }
    int rc = ph_run_parallel(hash_range, tasks, sizeof *tasks, (int)n);
    for (size_t k = 0; k < n && rc == PH_OK; k++) rc = tasks[k].err;
    free(tasks);
    return rc;
}
