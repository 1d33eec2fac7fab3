/* The Binary XML reading both walkers of a chunk share (select.c: which records to keep;
 * decode.c: the fields of kept records): little-endian reads, a bounds-checked cursor, name
 * references and the token grammar. Every read is checked against the chunk: the input is
 * evidence, possibly damaged or hostile. */
#ifndef EVTXSCAN_BINXML_H
#define EVTXSCAN_BINXML_H

#include <stdint.h>
#include <string.h>

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

typedef struct cursor {
    const uint8_t *c;
    uint32_t pos, end;
    int bad;
} cursor;

static inline int need(cursor *k, uint32_t n) {
    if (k->bad || n > k->end - k->pos) {
        k->bad = 1;
        return 0;
    }
    return 1;
}

static inline uint8_t u8(cursor *k) { return need(k, 1) ? k->c[k->pos++] : 0; }
static inline uint16_t u16(cursor *k) {
    if (!need(k, 2)) return 0;
    uint16_t v = rd16(k->c + k->pos);
    k->pos += 2;
    return v;
}
static inline uint32_t u32(cursor *k) {
    if (!need(k, 4)) return 0;
    uint32_t v = rd32(k->c + k->pos);
    k->pos += 4;
    return v;
}
static inline void skip(cursor *k, uint32_t n) {
    if (need(k, n)) k->pos += n;
}

/* A name reference: the name is stored here (inline) when its offset is the cursor's. Returns
 * the chunk offset of the name structure (next u32, hash u16, chars u16, UTF-16, NUL). */
static inline uint32_t name_ref(cursor *k, uint32_t chunk_len) {
    uint32_t off = u32(k);
    if (k->bad) return 0;
    if (off == k->pos) {
        skip(k, 8);
        if (k->bad) return 0;
        uint16_t chars = rd16(k->c + off + 6);
        skip(k, 2u * chars + 2u);
    }
    if ((uint64_t)off + 8 > chunk_len || (uint64_t)off + 8 + 2u * rd16(k->c + off + 6) > chunk_len) {
        k->bad = 1;
        return 0;
    }
    return off;
}


static inline int name_is(const uint8_t *chunk, uint32_t off, const char *ascii) {
    size_t n = strlen(ascii);
    if (rd16(chunk + off + 6) != n) return 0;
    const uint8_t *s = chunk + off + 8;
    for (size_t i = 0; i < n; i++)
        if (s[2 * i] != (uint8_t)ascii[i] || s[2 * i + 1]) return 0;
    return 1;
}

static inline int64_t utf16_number(const uint8_t *s, uint32_t chars) {
    int64_t v = 0;
    if (!chars) return -1;
    for (uint32_t i = 0; i < chars; i++) {
        if (s[2 * i + 1] || s[2 * i] < '0' || s[2 * i] > '9' || v > 100000000) return -1;
        v = v * 10 + (s[2 * i] - '0');
    }
    return v;
}

/* One Binary XML token, read by `next_token`; both walkers below (a template's, an embedded
 * value's) take the grammar from there. */
typedef struct token {
    uint8_t kind;          /* the token byte without its "has more" flag (0x40) */
    uint32_t name;         /* element, attribute, entity or PI-target name: its chunk offset */
    uint32_t text, chars;  /* value: its UTF-16 text */
    int index;             /* substitution index */
    uint32_t def;          /* template instance: definition offset (its values follow) */
} token;

/* 0, or -1 for a token that is malformed or that no walker here reads (a value that is not a
 * string, an unknown token byte). */
static inline int next_token(cursor *k, uint32_t len, token *t) {
    uint8_t tok = u8(k);
    t->name = t->text = t->chars = t->def = 0;
    t->index = 0;
    t->kind = (tok == 0x41 || tok == 0x45 || tok == 0x46) ? (uint8_t)(tok & 0x3f) : tok;
    switch (t->kind) {
    case 0x00: case 0x02: case 0x03: case 0x04: break;
    case 0x0f: skip(k, 3); break; /* fragment header */
    case 0x01:
        skip(k, 2 + 4); /* dependency id, data size */
        t->name = name_ref(k, len);
        if (tok == 0x41) skip(k, 4); /* attribute list size */
        break;
    case 0x06: /* attribute */
    case 0x09: /* entity reference */
    case 0x0a: /* PI target */
        t->name = name_ref(k, len);
        break;
    case 0x05:
        if (u8(k) != 0x01) return -1; /* value text is always a UTF-16 string */
        t->chars = u16(k);
        t->text = k->pos;
        skip(k, 2u * t->chars);
        break;
    case 0x0d: case 0x0e: t->index = u16(k); skip(k, 1); break;
    case 0x07: case 0x0b: skip(k, 2u * u16(k)); break; /* CDATA, PI data */
    case 0x08: skip(k, 2); break; /* character reference */
    case 0x0c:
        skip(k, 1 + 4); /* unknown byte, template id */
        t->def = u32(k);
        if (!k->bad && t->def == k->pos && need(k, 24)) /* defined here: step over it */
            skip(k, 24 + rd32(k->c + t->def + 20));
        break;
    default: return -1;
    }
    return k->bad ? -1 : 0;
}

#endif
