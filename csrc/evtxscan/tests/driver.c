/* Self-check of the record selector, built with sanitizers by tests/evtx/test_evtx_select_asan.py.
 * Usage: driver FILE.evtx...  Every chunk of every file is selected as is, then mutated many
 * times (bytes flipped, sizes, offsets and counts replaced by hostile values) and selected
 * again: the sanitizers catch any read outside the chunk, the checks below any broken promise
 * of evtx_result (kept offsets ascending record starts inside the walk). */
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

int main(int argc, char **argv) {
    static evs_result res;
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
            }
        }
        fclose(fh);
    }
    free(chunk);
    free(copy);
    printf("%lu records selected from, %lu kept; %lu checks, %lu failures\n", selected, kept, checks,
           failures);
    return failures != 0;
}
