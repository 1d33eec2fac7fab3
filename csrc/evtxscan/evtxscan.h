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
    int native;        /* every kept record is either selected by a rule (yes[i]) or kept only
                          because the parser's walk stops there: evs_decode may read the chunk */
    uint8_t yes[EVS_MAX_RECORDS]; /* keep[i] was selected by a rule (its provider and ID) */
    uint32_t keep[EVS_MAX_RECORDS]; /* chunk offsets of the kept records, ascending */
} evs_result;

/* 0: walked; out filled. -1: the walk met something the parser may read differently (bad record
 * magic or size, short chunk): the caller must give the parser the whole chunk. */
int evs_select(const uint8_t *chunk, size_t len, const evs_rule *rules, size_t n_rules,
               evs_result *out);

/* ---- decoding kept records (decode.c) ----------------------------------------------------- */

#define EVS_MAX_FIELDS 128 /* named EventData values of one record */
#define EVS_MAX_PLANS 64   /* templates remembered per chunk */
#define EVS_MAX_VALUES 4096

enum { EVS_NONE, EVS_TEXT, EVS_VALUE };

/* Where a field's value is: nothing (absent or an empty value), UTF-16 text in the template
 * (EVS_TEXT, type 0x01), or a substitution value of `type` (EVS_VALUE); off/size in the chunk. */
typedef struct evs_ref {
    uint8_t kind, type;
    uint32_t off, size;
} evs_ref;

typedef struct evs_record {
    uint64_t header_id, filetime; /* from the record header */
    evs_ref provider, source;     /* System/Provider @Name, @EventSourceName */
    evs_ref event_id, record_id, channel, computer;
    uint32_t n_data;
    int unnamed;                  /* the Data elements have no Name: positional values */
    evs_ref name[EVS_MAX_FIELDS]; /* EventData/Data @Name, in template order (text) */
    evs_ref data[EVS_MAX_FIELDS];
} evs_record;

typedef struct evs_civil {
    int year, month, day, hour, minute, second, micro;
} evs_civil;

typedef struct evs_decoder evs_decoder; /* the templates of one chunk, read once */
size_t evs_decoder_size(void);
void evs_decoder_reset(evs_decoder *d); /* before the first record of each chunk */

/* 0: the record at chunk offset `at` has the common shape and `out` says where its fields are;
 * -1: any other shape, or a value that does not fit its type (the parser reads it). Every
 * value of the record is checked, the ones not read too: the parser would fail on them. */
int evs_decode(evs_decoder *d, const uint8_t *chunk, size_t len, uint32_t at, evs_record *out);

/* Text of a substitution value of a non-string, non-binary type as the parser's JSON renders
 * it (numbers as JSON numbers, read back as their decimal text): its length, or -1. At most
 * EVS_VALUE_TEXT_MAX bytes with the NUL (the longest: a SID of 255 sub-authorities). */
#define EVS_VALUE_TEXT_MAX 2848
int evs_value_text(const uint8_t *v, uint32_t size, uint8_t type, char *out, size_t cap);

/* A FILETIME as a civil UTC time truncated to microseconds; -1 past the year 9999. */
int evs_filetime_civil(uint64_t ft, evs_civil *c);

#endif
