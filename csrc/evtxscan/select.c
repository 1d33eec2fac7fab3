/* Record selection inside one EVTX chunk (see evtxscan.h). Every read is bounds-checked against
 * the chunk: the input is evidence, possibly damaged or hostile. */
#include "evtxscan.h"
#include "binxml.h"

#include <string.h>


/* ---- "hotpatch" anywhere, any case, UTF-16LE or 8-bit ------------------------------------ */

/* b | 0x20 equals a lowercase letter exactly for that letter in either case, and equals 0x20
 * for NUL (or a space): folding that way makes one needle per encoding find every spelling. */
static const uint8_t NEEDLE8[] = "hotpatch";
static const uint8_t NEEDLE16[] = "h o t p a t c h";

typedef struct hits {
    uint32_t n;
    uint32_t at[64]; /* start offsets; more than this in one chunk: `overflow` */
    int overflow;
} hits;

static int folded_match(const uint8_t *p, const uint8_t *needle, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((uint8_t)(p[i] | 0x20) != needle[i]) return 0;
    return 1;
}

static void find_mentions(const uint8_t *chunk, uint32_t from, uint32_t to, hits *h) {
    h->n = 0;
    h->overflow = 0;
    /* Every spelling starts with 'h' or 'H'; memchr finds both candidates fast. */
    for (int pass = 0; pass < 2; pass++) {
        const uint8_t c = pass ? 'H' : 'h';
        uint32_t at = from;
        while (at < to) {
            const uint8_t *p = memchr(chunk + at, c, to - at);
            if (!p) break;
            at = (uint32_t)(p - chunk);
            size_t left = to - at;
            if ((left >= sizeof NEEDLE16 - 1 && folded_match(p, NEEDLE16, sizeof NEEDLE16 - 1)) ||
                (left >= sizeof NEEDLE8 - 1 && folded_match(p, NEEDLE8, sizeof NEEDLE8 - 1))) {
                if (h->n < sizeof h->at / sizeof h->at[0]) h->at[h->n++] = at;
                else h->overflow = 1;
            }
            at++;
        }
    }
}

static int mentioned_in(const hits *h, uint32_t from, uint32_t to) {
    if (h->overflow) return 1; /* too many to list: assume every record may mention it */
    for (uint32_t i = 0; i < h->n; i++)
        if (h->at[i] >= from && h->at[i] < to) return 1;
    return 0;
}

/* ---- templates: where the provider name and the event ID come from ------------------------ */

enum { EL_OTHER, EL_PROVIDER, EL_EVENTID };

typedef struct tmpl {
    uint32_t def;        /* chunk offset of the template definition */
    int known;           /* 0: could not be read; records using it are kept */
    int mentions;
    int prov_sub, id_sub; /* substitution index, or -1 */
    uint32_t prov_lit, prov_lit_chars; /* literal UTF-16 name in the chunk, if prov_sub < 0 */
    int64_t id_lit;      /* literal ID, or -1 */
} tmpl;

#define MAX_TEMPLATES 128

/* Names are stored once per chunk and referenced by offset, so a name a fragment uses may lie
 * outside the fragment's bytes: its own bytes are checked for a mention. */
static int name_mentions(const uint8_t *chunk, uint32_t off, const hits *h) {
    return mentioned_in(h, off, off + 8 + 2u * rd16(chunk + off + 6));
}

/* Walk a template's BinXML: remember where System/Provider@Name and System/EventID get their
 * values. Anything unexpected leaves known = 0. */
static void analyse(const uint8_t *chunk, uint32_t len, const hits *h, tmpl *t) {
    t->known = 0;
    t->prov_sub = t->id_sub = -1;
    t->prov_lit = t->prov_lit_chars = 0;
    t->id_lit = -1;
    t->mentions = 0;
    if ((uint64_t)t->def + 24 > len) return;
    uint32_t size = rd32(chunk + t->def + 20);
    if ((uint64_t)t->def + 24 + size > len) return;
    cursor k = {chunk, t->def + 24, t->def + 24 + size, 0};
    t->mentions = mentioned_in(h, k.pos, k.end);

    int stack[64];
    int depth = 0, attr_name = 0, in_attr = 0, have_prov = 0, have_id = 0;
    token tk;
    while (k.pos < k.end) {
        if (next_token(&k, len, &tk) < 0) return;
        switch (tk.kind) {
        case 0x00:
            t->known = 1;
            return;
        case 0x01:
            if (depth >= 64) return;
            t->mentions |= name_mentions(chunk, tk.name, h);
            stack[depth++] = name_is(chunk, tk.name, "Provider") ? EL_PROVIDER
                             : name_is(chunk, tk.name, "EventID") ? EL_EVENTID : EL_OTHER;
            in_attr = 0;
            break;
        case 0x02:
            in_attr = 0;
            break;
        case 0x03:
        case 0x04:
            if (depth) depth--;
            in_attr = 0;
            break;
        case 0x06:
            t->mentions |= name_mentions(chunk, tk.name, h);
            in_attr = 1;
            attr_name = name_is(chunk, tk.name, "Name");
            break;
        case 0x09:
        case 0x0a:
            t->mentions |= name_mentions(chunk, tk.name, h);
            break;
        case 0x05:
        case 0x0d:
        case 0x0e:
            if (!depth) break;
            if (in_attr && attr_name && stack[depth - 1] == EL_PROVIDER && !have_prov) {
                have_prov = 1;
                if (tk.kind == 0x05) {
                    t->prov_lit = tk.text;
                    t->prov_lit_chars = tk.chars;
                } else {
                    t->prov_sub = tk.index;
                }
            } else if (!in_attr && stack[depth - 1] == EL_EVENTID && !have_id) {
                have_id = 1;
                if (tk.kind == 0x05) t->id_lit = utf16_number(chunk + tk.text, tk.chars);
                else t->id_sub = tk.index;
            }
            break;
        case 0x0c: /* a nested template instance: do not guess */
            return;
        default: /* fragment header, CDATA, references, PI data: nothing to remember */
            break;
        }
    }
}

static tmpl *template_at(tmpl *cache, uint32_t *n, tmpl *spare, uint32_t def, const uint8_t *chunk,
                         uint32_t len, const hits *h) {
    for (uint32_t i = 0; i < *n; i++)
        if (cache[i].def == def) return &cache[i];
    tmpl *t = *n < MAX_TEMPLATES ? &cache[(*n)++] : spare;
    t->def = def;
    analyse(chunk, len, h, t);
    return t;
}

/* Do the names an embedded BinXML value uses (substitution type 0x21: some events carry their
 * EventData/UserData that way, usually as a nested template instance) mention hotpatch?
 * Answers 1 also when the value cannot be walked: the caller then keeps the record. */
typedef struct walk_ctx {
    const uint8_t *chunk;
    uint32_t len;
    const hits *h;
    tmpl *cache, *spare;
    uint32_t *n_cache;
} walk_ctx;

static int values_mention(walk_ctx *c, uint32_t values, uint32_t *end, int depth);

static int fragment_mentions(walk_ctx *c, uint32_t from, uint32_t to, int depth) {
    cursor k = {c->chunk, from, to, 0};
    token tk;
    uint32_t after;
    if (depth > 4) return 1;
    while (k.pos < k.end) {
        if (next_token(&k, c->len, &tk) < 0) return 1;
        switch (tk.kind) {
        case 0x00:
            return 0;
        case 0x01: case 0x06: case 0x09: case 0x0a:
            if (name_mentions(c->chunk, tk.name, c->h)) return 1;
            break;
        case 0x0c: { /* a nested template instance: its template, then its values */
            tmpl *t = template_at(c->cache, c->n_cache, c->spare, tk.def, c->chunk, c->len, c->h);
            if (!t->known || t->mentions) return 1;
            if (values_mention(c, k.pos, &after, depth + 1) || after > k.end) return 1;
            k.pos = after;
            break;
        }
        default:
            break;
        }
    }
    return 0; /* ran to its end without an end-of-stream token */
}

/* The values of a template instance at `values`: any embedded BinXML among them that mentions
 * hotpatch? `end` receives the offset just past the values. */
static int values_mention(walk_ctx *c, uint32_t values, uint32_t *end, int depth) {
    cursor k = {c->chunk, values, c->len, 0};
    uint32_t count = u32(&k);
    if (k.bad || count > 4096 || !need(&k, 4 * count)) return 1;
    const uint8_t *desc = c->chunk + k.pos;
    uint32_t at = k.pos + 4 * count;
    for (uint32_t i = 0; i < count; i++) {
        uint16_t size = rd16(desc + 4 * i);
        if ((uint64_t)at + size > c->len) return 1;
        if (desc[4 * i + 2] == 0x21 && fragment_mentions(c, at, at + size, depth)) return 1;
        at += size;
    }
    *end = at;
    return 0;
}

/* ---- values ------------------------------------------------------------------------------ */

/* Compare a provider value (UTF-16LE or 8-bit, trailing NULs ignored) with a rule name. */
static int same_name(const uint8_t *v, uint32_t size, int wide, const evs_rule *r) {
    uint32_t n = wide ? size / 2 : size;
    while (n && (wide ? (v[2 * n - 2] | v[2 * n - 1]) == 0 : v[n - 1] == 0)) n--;
    if (n != r->name_len) return 0;
    for (uint32_t i = 0; i < n; i++) {
        if (wide ? (v[2 * i] != (uint8_t)r->name[i] || v[2 * i + 1]) : v[i] != (uint8_t)r->name[i])
            return 0;
    }
    return 1;
}

/* Integer substitution types the parser renders as a decimal event ID. */
static int64_t int_value(const uint8_t *v, uint32_t size, uint8_t type) {
    switch (type) {
    case 0x04: return size >= 1 ? (int64_t)v[0] : -1;
    case 0x06: return size >= 2 ? (int64_t)rd16(v) : -1;
    case 0x08: return size >= 4 ? (int64_t)rd32(v) : -1;
    case 0x0a: return size >= 8 && rd64(v) < ((uint64_t)1 << 62) ? (int64_t)rd64(v) : -1;
    default: return -1;
    }
}

enum { KEEP_NO, KEEP_YES, KEEP_UNSURE };

/* Does a rule select this record? Unreadable values answer KEEP_UNSURE. */
static int by_provider(const uint8_t *chunk, uint32_t len, const tmpl *t, uint32_t values,
                       const evs_rule *rules, size_t n_rules) {
    cursor k = {chunk, values, len, 0};
    uint32_t count = u32(&k);
    if (k.bad || count > 4096 || !need(&k, 4 * count)) return KEEP_UNSURE;
    const uint8_t *desc = chunk + k.pos;
    uint32_t at = k.pos + 4 * count;
    const uint8_t *pv = NULL, *iv = NULL;
    uint32_t psize = 0, isize = 0;
    uint8_t ptype = 0, itype = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint16_t size = rd16(desc + 4 * i);
        if ((uint64_t)at + size > len) return KEEP_UNSURE;
        if ((int)i == t->prov_sub) pv = chunk + at, psize = size, ptype = desc[4 * i + 2];
        if ((int)i == t->id_sub) iv = chunk + at, isize = size, itype = desc[4 * i + 2];
        at += size;
    }
    const evs_rule *rule = NULL;
    for (size_t r = 0; r < n_rules && !rule; r++) {
        if (t->prov_sub >= 0) {
            if (!pv || (ptype != 0x01 && ptype != 0x02)) return KEEP_UNSURE;
            if (same_name(pv, psize, ptype == 0x01, &rules[r])) rule = &rules[r];
        } else if (t->prov_lit_chars) {
            if (same_name(chunk + t->prov_lit, 2 * t->prov_lit_chars, 1, &rules[r])) rule = &rules[r];
        } else {
            return KEEP_UNSURE; /* no provider name in the template */
        }
    }
    if (!rule) return KEEP_NO;
    if (!rule->n_ids) return KEEP_YES;
    int64_t id = t->id_sub >= 0 ? (iv ? int_value(iv, isize, itype) : -1) : t->id_lit;
    if (id < 0) return KEEP_UNSURE;
    for (size_t i = 0; i < rule->n_ids; i++)
        if (rule->ids[i] == (uint64_t)id) return KEEP_YES;
    return KEEP_NO;
}

/* ---- the walk ---------------------------------------------------------------------------- */

int evs_select(const uint8_t *chunk, size_t len_, const evs_rule *rules, size_t n_rules,
               evs_result *out) {
    static const uint8_t MAGIC[4] = {0x2a, 0x2a, 0, 0};
    out->records = out->kept = 0;
    out->mentions = 0;
    out->native = 1;
    out->end = EVS_CHUNK_HEADER;
    if (len_ < EVS_CHUNK_SIZE) return -1;
    const uint32_t len = EVS_CHUNK_SIZE;
    uint32_t end = rd32(chunk + 0x30); /* free-space offset */
    if (end > len) end = len;
    const uint64_t last_id = rd64(chunk + 0x20);

    hits h;
    find_mentions(chunk, EVS_CHUNK_HEADER, end, &h);
    tmpl cache[MAX_TEMPLATES], spare;
    uint32_t n_cache = 0;

    uint32_t at = EVS_CHUNK_HEADER;
    while (at < end) {
        if (end - at < 4) break; /* the parser treats this as the end of the chunk */
        if (!memcmp(chunk + at, "\0\0\0\0", 4)) break; /* slack */
        if (memcmp(chunk + at, MAGIC, 4)) return -1;
        if (end - at < EVS_RECORD_HEADER) break;
        uint32_t size = rd32(chunk + at + 4);
        if (size < EVS_RECORD_HEADER + 4 || size > end - at) return -1;
        uint64_t id = rd64(chunk + at + 8);
        out->records++;

        int keep = KEEP_UNSURE, mention = 0;
        const uint8_t *b = chunk + at + EVS_RECORD_HEADER;
        uint32_t blen = size - EVS_RECORD_HEADER - 4;
        /* fragment header, then a template instance: 0x0c, u8, u32 id, u32 definition offset */
        if (blen >= 14 && b[0] == 0x0f && b[4] == 0x0c) {
            uint32_t here = at + EVS_RECORD_HEADER + 14, def = rd32(b + 10), values = here;
            if (def == here) { /* defined inline: the values follow the definition */
                uint64_t after = (uint64_t)def + 24;
                after = after <= len ? after + rd32(chunk + def + 20) : len;
                values = after < len ? (uint32_t)after : len;
            }
            tmpl *t = template_at(cache, &n_cache, &spare, def, chunk, len, &h);
            if (t->known && values < len) {
                keep = by_provider(chunk, len, t, values, rules, n_rules);
                walk_ctx c = {chunk, len, &h, cache, &spare, &n_cache};
                uint32_t after;
                /* embedded fragments matter only in a chunk that mentions hotpatch at all */
                mention = t->mentions || (keep == KEEP_NO && (h.n || h.overflow) &&
                                          values_mention(&c, values, &after, 0));
            }
        }
        if (mentioned_in(&h, at, at + size)) mention = 1;
        /* The parser stops after the chunk's last record id even with records behind it; only
         * reading that record makes it stop there, so it is kept when anything follows. */
        int stop_here = id == last_id && at + size < end;
        if (keep != KEEP_NO || mention || stop_here) {
            if (keep != KEEP_YES && (keep != KEEP_NO || mention)) out->native = 0;
            out->yes[out->kept] = keep == KEEP_YES;
            out->keep[out->kept++] = at;
            out->mentions |= mention;
        }
        at += size;
        if (id == last_id) break; /* the parser stops after the chunk's last record id */
    }
    out->end = at;
    return 0;
}
