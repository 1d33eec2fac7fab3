/* Record selection inside one EVTX chunk: which records can matter for update compliance.
 *
 * The record parser (the Rust `evtx` package) spends ~2 us rendering each record; in real
 * System/Security logs about 6 % of records are update, boot or hotpatch events. This walks a
 * chunk's records the way the parser walks them and reads, for each, only the provider name and
 * event ID (through the record's template, analysed once per chunk) plus a case-insensitive
 * "hotpatch" search, so the parser is handed only the records worth rendering.
 *
 * The test is a superset by construction: a record whose template or values it cannot read is
 * kept, and the exact test runs again on the parser's output. Pure C, no Python: the binding is
 * module.c, the self-check driver tests/driver.c. Reference: the EVTX and Binary XML formats as
 * documented by libevtx (Joachim Metz, "Windows XML Event Log (EVTX) format") and [MS-EVEN6].
 */
#ifndef EVTXSCAN_H
#define EVTXSCAN_H

#include <stddef.h>
#include <stdint.h>

#define EVS_CHUNK_SIZE 0x10000u
#define EVS_CHUNK_HEADER 0x200u
#define EVS_RECORD_HEADER 24u
#define EVS_MAX_RECORDS (EVS_CHUNK_SIZE / 28u + 1u)

/* One provider rule: every event of the provider (n_ids == 0) or only the listed IDs. */
typedef struct evs_rule {
    const char *name; /* ASCII, compared case-sensitively, as the parser's JSON is */
    size_t name_len;
    const uint32_t *ids;
    size_t n_ids;
} evs_rule;

typedef struct evs_result {
    uint32_t records;  /* records the parser would walk */
    uint32_t end;      /* chunk offset where that walk stops */
    uint32_t kept;     /* entries of keep[] */
    int mentions;      /* a kept record (or its template) mentions hotpatch */
    uint32_t keep[EVS_MAX_RECORDS]; /* chunk offsets of the kept records, ascending */
} evs_result;

/* 0: walked; out filled. -1: the walk met something the parser may read differently (bad record
 * magic or size, short chunk): the caller must give the parser the whole chunk. */
int evs_select(const uint8_t *chunk, size_t len, const evs_rule *rules, size_t n_rules,
               evs_result *out);

#endif
