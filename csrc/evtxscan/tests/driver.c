/* Self-check of the record selector and decoder, built with sanitizers by
 * tests/evtx/test_evtx_record_select.py. Usage: driver FILE.evtx...  Every chunk of every file
 * is selected as is, then mutated many times (bytes flipped, sizes, offsets and counts replaced
 * by hostile values) and selected again; every record start of each, and every kept offset, is
 * decoded and each value it finds rendered: the sanitizers catch any read outside the chunk,
 * the checks below any broken promise of evs_result (kept offsets ascending record starts
 * inside the walk) or of evs_record (every field inside the chunk). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../evtxscan.h"

static unsigned long checks, failures;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void check(int ok, const char *what, const char *file, long chunk) {
    checks++;
    if (!ok) {
        failures++;
        printf("FAIL %s: %s chunk %ld\n", what, file, chunk);
    }
}

static const uint32_t IDS[] = {12, 13, 41, 1074, 6005, 6006, 6008};
static const evs_rule RULES[] = {
    {"Microsoft-Windows-WindowsUpdateClient", 37, NULL, 0},
    {"Microsoft-Windows-Kernel-General", 32, IDS, 2},
    {"EventLog", 8, IDS + 4, 3},
    {"User32", 6, IDS + 3, 1},
};

static void verify(const uint8_t *chunk, const evs_result *r, int rc, const char *file, long i) {
    if (rc < 0) return;
    check(r->end <= EVS_CHUNK_SIZE && r->end >= EVS_CHUNK_HEADER, "end in chunk", file, i);
    check(r->kept <= r->records && r->records <= EVS_MAX_RECORDS, "counts", file, i);
    for (uint32_t k = 0; k < r->kept; k++) {
        check(r->keep[k] >= EVS_CHUNK_HEADER && r->keep[k] < r->end, "kept inside", file, i);
        check(!memcmp(chunk + r->keep[k], "\x2a\x2a\0\0", 4), "kept is a record", file, i);
        if (k) check(r->keep[k] > r->keep[k - 1], "kept ascending", file, i);
    }
}

static unsigned long decoded;

static void check_ref(const uint8_t *chunk, const evs_ref *r, const char *file, long i) {
    static char text[EVS_VALUE_TEXT_MAX];
    if (r->kind == EVS_NONE) return;
    check((uint64_t)r->off + r->size <= EVS_CHUNK_SIZE, "field inside the chunk", file, i);
    if (r->kind == EVS_VALUE && r->type != 0x01 && r->type != 0x0e && r->type != 0x81)
        check(evs_value_text(chunk + r->off, r->size, r->type, text, sizeof text) >= 0,
              "a checked value renders", file, i);
}

/* Decode the record at every offset given, and every field of what it reads. */
static void decode_all(evs_decoder *d, const uint8_t *chunk, const uint32_t *at, uint32_t n,
                       const char *file, long i) {
    static evs_record rec;
    evs_decoder_reset(d);
    for (uint32_t k = 0; k < n; k++) {
        if (evs_decode(d, chunk, EVS_CHUNK_SIZE, at[k], &rec) < 0) continue;
        decoded++;
        const evs_ref *refs[] = {&rec.provider, &rec.source, &rec.event_id, &rec.record_id,
                                 &rec.channel, &rec.computer};
        for (int f = 0; f < 6; f++) check_ref(chunk, refs[f], file, i);
        check(rec.n_data <= EVS_MAX_FIELDS, "field count", file, i);
        for (uint32_t f = 0; f < rec.n_data && f < EVS_MAX_FIELDS; f++) {
            check_ref(chunk, &rec.name[f], file, i);
            check_ref(chunk, &rec.data[f], file, i);
        }
    }
}

/* Record starts as the parser walks them (size by size), bad ones included: decode() must
 * take any offset. */
static uint32_t starts(const uint8_t *chunk, uint32_t *at) {
    uint32_t n = 0;
    for (uint32_t pos = EVS_CHUNK_HEADER; pos + 24 <= EVS_CHUNK_SIZE && n < EVS_MAX_RECORDS;) {
        at[n++] = pos;
        uint32_t size = chunk[pos + 4] | chunk[pos + 5] << 8 | (uint32_t)chunk[pos + 6] << 16 |
                        (uint32_t)chunk[pos + 7] << 24;
        if (size < 24 || size > EVS_CHUNK_SIZE - pos) break;
        pos += size;
    }
    return n;
}

int main(int argc, char **argv) {
    static evs_result res;
    static uint32_t at_[EVS_MAX_RECORDS];
    evs_decoder *dec = malloc(evs_decoder_size());
    uint8_t *chunk = malloc(EVS_CHUNK_SIZE), *copy = malloc(EVS_CHUNK_SIZE);
    unsigned long selected = 0, kept = 0;
    for (int a = 1; a < argc; a++) {
        FILE *fh = fopen(argv[a], "rb");
        if (!fh) {
            printf("FAIL cannot open %s\n", argv[a]);
            return 1;
        }
        for (long i = 0;; i++) {
            if (fseek(fh, 0x1000 + i * (long)EVS_CHUNK_SIZE, SEEK_SET)) break;
            if (fread(chunk, 1, EVS_CHUNK_SIZE, fh) != EVS_CHUNK_SIZE) break;
            if (memcmp(chunk, "ElfChnk", 8)) continue;
            int rc = evs_select(chunk, EVS_CHUNK_SIZE, RULES, 4, &res);
            verify(chunk, &res, rc, argv[a], i);
            decode_all(dec, chunk, at_, starts(chunk, at_), argv[a], i);
            selected += res.records;
            kept += res.kept;
            check(evs_select(chunk, EVS_CHUNK_SIZE - 1, RULES, 4, &res) == -1, "short", argv[a], i);
            for (int m = 0; m < 300; m++) {
                memcpy(copy, chunk, EVS_CHUNK_SIZE);
                int edits = 1 + (int)(next() % 8);
                for (int e = 0; e < edits; e++) {
                    uint32_t at = EVS_CHUNK_HEADER + (uint32_t)(next() % (EVS_CHUNK_SIZE - EVS_CHUNK_HEADER - 4));
                    uint32_t v = (uint32_t)next();
                    switch (next() % 4) {
                    case 0: copy[at] ^= (uint8_t)(1u << (v % 8)); break;
                    case 1: memcpy(copy + at, &v, 4); break;                 /* hostile u32 */
                    case 2: v %= EVS_CHUNK_SIZE + 64; memcpy(copy + at, &v, 4); break; /* near-valid offset */
                    default: v = 0xffff; memcpy(copy + at, &v, 2); break;    /* huge count */
                    }
                }
                rc = evs_select(copy, EVS_CHUNK_SIZE, RULES, 4, &res);
                verify(copy, &res, rc, argv[a], i);
                if (rc == 0) decode_all(dec, copy, res.keep, res.kept, argv[a], i);
                decode_all(dec, copy, at_, starts(copy, at_), argv[a], i);
            }
        }
        fclose(fh);
    }
    free(chunk);
    free(copy);
    free(dec);
    printf("%lu records selected from, %lu kept, %lu decoded; %lu checks, %lu failures\n",
           selected, kept, decoded, checks, failures);
    return failures != 0;
}
