/* The fields of a kept record read straight from its Binary XML (see evtxscan.h, evs_decode).
 *
 * On a log where most records are update events the Rust parser renders nearly every record as
 * JSON and Python decodes it again; this reads the same fields (provider, event ID, record ID,
 * channel, computer, the named EventData values) from the record's template and substitution
 * values. It reads one shape only, the one nearly every event has: a template instance whose
 * template is Event > System + EventData > Data Name="..." elements, each value a literal or a
 * single substitution of a scalar type. Anything else (UserData, unnamed or nested data, arrays,
 * embedded BinXML, references, a value that does not fit its type) makes it answer "not this
 * shape", and the caller gives the chunk to the parser as before. */
#include "evtxscan.h"
#include "binxml.h"


enum {
    E_EVENT, E_SYSTEM, E_PROVIDER, E_EVENTID, E_RECID, E_CHANNEL, E_COMPUTER, E_SYS_OTHER,
    E_EVENTDATA, E_DATA, E_BINARY, E_USERDATA, E_UD_WRAP, E_UD_LEAF
};
enum { A_IGNORE, A_PNAME, A_PSOURCE, A_DNAME };

typedef struct slot {
    uint8_t kind; /* EVS_NONE, EVS_TEXT (literal in the template), EVS_VALUE (substitution) */
    uint16_t index;
    uint32_t off, size;
} slot;

typedef struct plan {
    uint32_t def;
    int root; /* E_EVENT: a record's template; E_EVENTDATA: one in an embedded payload */
    int ok;
    slot provider, source, event_id, record_id, channel, computer;
    slot payload; /* a substitution directly in Event: the EventData as embedded BinXML */
    int unnamed;  /* the Data elements have no Name (classic events): positional values */
    uint32_t n_data;
    slot name[EVS_MAX_FIELDS]; /* literal UTF-16 text of each Data's Name attribute */
    slot data[EVS_MAX_FIELDS];
} plan;

struct evs_decoder {
    uint32_t n;
    plan plans[EVS_MAX_PLANS];
    plan spare;
    uint32_t value_at[EVS_MAX_VALUES]; /* chunk offset of each substitution value */
    uint32_t payload_at[EVS_MAX_VALUES]; /* and of each value of an embedded instance */
};

size_t evs_decoder_size(void) { return sizeof(evs_decoder); }
void evs_decoder_reset(evs_decoder *d) { d->n = 0; }

static int same_text(const uint8_t *chunk, const slot *a, const slot *b) {
    return a->size == b->size && !memcmp(chunk + a->off, chunk + b->off, a->size);
}

static int utf16_is(const uint8_t *chunk, const slot *s, const char *ascii) {
    size_t n = strlen(ascii);
    if (s->size != 2 * n) return 0;
    for (size_t i = 0; i < n; i++)
        if (chunk[s->off + 2 * i] != (uint8_t)ascii[i] || chunk[s->off + 2 * i + 1]) return 0;
    return 1;
}

/* One value (a literal or a substitution) into a slot that must not have one yet. */
static int set_slot(slot *s, const token *tk) {
    if (s->kind != EVS_NONE) return -1;
    if (tk->kind == 0x05) {
        s->kind = EVS_TEXT;
        s->off = tk->text;
        s->size = 2u * tk->chars;
    } else {
        s->kind = EVS_VALUE;
        s->index = (uint16_t)tk->index;
    }
    return 0;
}

static int data_block(const uint8_t *chunk, uint32_t name) {
    return name_is(chunk, name, "EventData")  ? E_EVENTDATA
           : name_is(chunk, name, "UserData") ? E_USERDATA
                                              : -1;
}

/* The kind of an element from its parent's. A payload's root (root != E_EVENT) is its
 * EventData or UserData element. UserData holds one element of the provider's own, and that
 * the values, one element each (the JSON reading flattens them to their names). */
static int child_kind(const uint8_t *chunk, uint32_t name, int parent, int depth, int root) {
    if (depth == 0)
        return root == E_EVENT ? (name_is(chunk, name, "Event") ? E_EVENT : -1)
                               : data_block(chunk, name);
    switch (parent) {
    case E_EVENT:
        return name_is(chunk, name, "System") ? E_SYSTEM : data_block(chunk, name);
    case E_USERDATA: return E_UD_WRAP;
    case E_UD_WRAP: return E_UD_LEAF;
    case E_SYSTEM:
        return name_is(chunk, name, "Provider")        ? E_PROVIDER
               : name_is(chunk, name, "EventID")       ? E_EVENTID
               : name_is(chunk, name, "EventRecordID") ? E_RECID
               : name_is(chunk, name, "Channel")       ? E_CHANNEL
               : name_is(chunk, name, "Computer")      ? E_COMPUTER
                                                       : E_SYS_OTHER;
    case E_SYS_OTHER: return E_SYS_OTHER;
    case E_EVENTDATA:
        return name_is(chunk, name, "Data") ? E_DATA : name_is(chunk, name, "Binary") ? E_BINARY : -1;
    default: return -1; /* an element inside a field we read: nested data */
    }
}

/* Walk a template definition into a plan; p->ok = 0 for any other shape. */
static void make_plan(const uint8_t *chunk, uint32_t len, plan *p) {
    uint32_t def = p->def;
    int root = p->root, named = 0, blocks = 0, wraps = 0;
    memset(p, 0, sizeof *p);
    p->def = def;
    p->root = root;
    if ((uint64_t)p->def + 24 > len) return;
    uint32_t size = rd32(chunk + p->def + 24 - 4);
    if ((uint64_t)p->def + 24 + size > len) return;
    cursor k = {chunk, p->def + 24, p->def + 24 + size, 0};
    int stack[16];
    int depth = 0, attr = A_IGNORE, in_attr = 0, seen_event = 0;
    token tk;
    slot *target;
    while (k.pos < k.end) {
        if (next_token(&k, len, &tk) < 0) return;
        int top = depth ? stack[depth - 1] : -1;
        switch (tk.kind) {
        case 0x00:
            /* Data all named (a JSON object of them) or all unnamed (a "Data" list) */
            p->ok = depth == 0 && seen_event && !(named && p->unnamed) &&
                    blocks + (p->payload.kind != EVS_NONE) <= 1;
            return;
        case 0x0f:
            break;
        case 0x01: {
            if (depth >= 16 || (depth == 0 && seen_event)) return;
            int kind = child_kind(chunk, tk.name, top, depth, root);
            if (kind < 0) return;
            if (kind == E_EVENTDATA || kind == E_USERDATA) blocks++; /* one block of values */
            if (kind == E_UD_WRAP && wraps++) return; /* and one wrapper in UserData */
            if (kind == E_DATA || kind == E_UD_LEAF) {
                if (p->n_data >= EVS_MAX_FIELDS) return;
                p->n_data++;
            }
            if (kind == E_UD_LEAF) { /* the element's name is the value's */
                const uint8_t *n = chunk + tk.name;
                p->name[p->n_data - 1].kind = EVS_TEXT;
                p->name[p->n_data - 1].off = tk.name + 8;
                p->name[p->n_data - 1].size = 2u * (uint32_t)(n[6] | n[7] << 8);
            }
            seen_event = 1;
            stack[depth++] = kind;
            in_attr = 0;
            break;
        }
        case 0x06:
            in_attr = 1;
            attr = A_IGNORE;
            if (top == E_PROVIDER) {
                if (name_is(chunk, tk.name, "Name")) attr = A_PNAME;
                else if (name_is(chunk, tk.name, "EventSourceName")) attr = A_PSOURCE;
            } else if (top == E_DATA) {
                if (!name_is(chunk, tk.name, "Name")) return; /* other attributes: the parser */
                attr = A_DNAME;
            } else if (top == E_CHANNEL || top == E_COMPUTER || top == E_RECID ||
                       top == E_UD_LEAF) {
                return; /* the JSON would be an object, not the text */
            }
            break;
        case 0x02:
            in_attr = 0;
            break;
        case 0x03:
        case 0x04:
            if (!depth) return;
            if (top == E_DATA || top == E_UD_LEAF) {
                const slot *n = &p->name[p->n_data - 1];
                if (n->kind != EVS_TEXT) p->unnamed = 1;
                else if (utf16_is(chunk, n, "#text") || utf16_is(chunk, n, "#attributes") ||
                         utf16_is(chunk, n, "Binary"))
                    return; /* a key the JSON reading treats otherwise */
                else named = 1;
            }
            depth--;
            in_attr = 0;
            break;
        case 0x05:
        case 0x0d:
        case 0x0e:
            if (!depth) return;
            target = NULL;
            if (in_attr) {
                if (attr == A_PNAME) target = &p->provider;
                else if (attr == A_PSOURCE) target = &p->source;
                else if (attr == A_DNAME) {
                    if (tk.kind != 0x05) return; /* a name that is a substitution */
                    target = &p->name[p->n_data - 1];
                }
            } else {
                switch (top) {
                case E_EVENTID: target = &p->event_id; break;
                case E_RECID: target = &p->record_id; break;
                case E_CHANNEL: target = &p->channel; break;
                case E_COMPUTER: target = &p->computer; break;
                case E_DATA: case E_UD_LEAF: target = &p->data[p->n_data - 1]; break;
                case E_EVENT:
                    if (tk.kind == 0x05) return;
                    target = &p->payload;
                    break;
                case E_SYS_OTHER: case E_PROVIDER: case E_BINARY: break;
                default: return; /* text directly in Event, System or EventData */
                }
            }
            if (target && set_slot(target, &tk) < 0) return;
            break;
        default: /* CDATA, references, PI, a nested template instance: the parser */
            return;
        }
    }
}

static plan *plan_at(evs_decoder *d, uint32_t def, int root, const uint8_t *chunk, uint32_t len) {
    for (uint32_t i = 0; i < d->n; i++)
        if (d->plans[i].def == def && d->plans[i].root == root) return &d->plans[i];
    plan *p = d->n < EVS_MAX_PLANS ? &d->plans[d->n++] : &d->spare;
    p->def = def;
    p->root = root;
    make_plan(chunk, len, p);
    if (p->ok && !p->unnamed) /* a Data name twice: the JSON object would keep one of them */
        for (uint32_t i = 0; i < p->n_data && p->ok; i++)
            for (uint32_t j = 0; j < i; j++)
                if (same_text(chunk, &p->name[i], &p->name[j])) {
                    p->ok = 0;
                    break;
                }
    return p;
}

/* ---- values ------------------------------------------------------------------------------ */

static int leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }
static int month_days(int64_t y, int m) {
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : days[m - 1];
}

int evs_filetime_civil(uint64_t ft, evs_civil *c) {
    uint64_t us = ft / 10, secs = us / 1000000u;
    int64_t days = (int64_t)(secs / 86400u);
    uint32_t rest = (uint32_t)(secs % 86400u);
    /* days to a civil date by H. Hinnant's civil_from_days, whose day 0 is 0000-03-01:
     * 1601-01-01 is its day 584694 (134774 days before 1970-01-01, which is its day 719468) */
    int64_t z = days + 584694;
    int64_t era = z / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    if (m <= 2) y++;
    if (y > 9999) return -1;
    c->year = (int)y;
    c->month = m;
    c->day = d;
    c->hour = (int)(rest / 3600);
    c->minute = (int)(rest / 60 % 60);
    c->second = (int)(rest % 60);
    c->micro = (int)(us % 1000000u);
    return 0;
}

static int systime_civil(const uint8_t *v, evs_civil *c) {
    c->year = rd16(v);
    c->month = rd16(v + 2);
    c->day = rd16(v + 6);
    c->hour = rd16(v + 8);
    c->minute = rd16(v + 10);
    c->second = rd16(v + 12);
    int ms = rd16(v + 14);
    if (c->year < 1 || c->year > 9999 || c->month < 1 || c->month > 12 || c->day < 1 ||
        c->day > month_days(c->year, c->month) || c->hour > 23 || c->minute > 59 ||
        c->second > 59 || ms > 999)
        return -1;
    c->micro = ms * 1000;
    return 0;
}

/* Does a substitution value fit its type, for the types read here? */
static int value_fits(uint8_t type, const uint8_t *v, uint32_t size) {
    evs_civil c;
    switch (type) {
    case 0x00: return 1; /* no value; Windows writes some with a size (2), which the parser skips */
    case 0x01: return size % 2 == 0;
    case 0x03: case 0x04: return size == 1;
    case 0x05: case 0x06: return size == 2;
    case 0x07: case 0x08: case 0x0d: case 0x14: return size == 4;
    case 0x09: case 0x0a: case 0x15: return size == 8;
    case 0x0e: return 1;
    case 0x0f: return size == 16;
    case 0x11: return size == 8 && evs_filetime_civil(rd64(v), &c) == 0;
    case 0x12: return size == 16 && systime_civil(v, &c) == 0;
    case 0x13: /* a SID; one with an authority past 32 bits the parser writes in hex */
        return size >= 8 && size == 8u + 4u * v[1] && !v[2] && !v[3];
    case 0x81: /* strings, each ending in a NUL unit (what every parser version splits alike) */
        return size % 2 == 0 && (size == 0 || (v[size - 2] == 0 && v[size - 1] == 0));
    default: return 0; /* ANSI, reals, size_t, BinXML, handles, arrays: the parser */
    }
}

/* Decimal digits of v at *out; returns the end. */
static char *put_dec(char *out, unsigned long long v) {
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) *out++ = tmp[--n];
    return out;
}

static char *put_sdec(char *out, long long v) {
    if (v < 0) {
        *out++ = '-';
        return put_dec(out, 0ull - (unsigned long long)v);
    }
    return put_dec(out, (unsigned long long)v);
}

static char *put_hex(char *out, uint64_t v, int digits, const char *alphabet) {
    for (int i = digits - 1; i >= 0; i--) out[digits - 1 - i] = alphabet[(v >> (4 * i)) & 15];
    return out + digits;
}

/* "0x" and lower-case hex without leading zeros */
static char *put_hex0x(char *out, uint64_t v) {
    int digits = 1;
    while (digits < 16 && (v >> (4 * digits))) digits++;
    *out++ = '0';
    *out++ = 'x';
    return put_hex(out, v, digits, "0123456789abcdef");
}

static char *put2(char *out, int v) {
    *out++ = (char)('0' + v / 10 % 10);
    *out++ = (char)('0' + v % 10);
    return out;
}

int evs_value_text(const uint8_t *v, uint32_t size, uint8_t type, char *out, size_t cap) {
    static const char UPPER[] = "0123456789ABCDEF";
    evs_civil c;
    char *e = out;
    if (cap < EVS_VALUE_TEXT_MAX) return -1;
    switch (type) {
    case 0x03: e = put_sdec(e, (int8_t)v[0]); break;
    case 0x04: e = put_dec(e, v[0]); break;
    case 0x05: e = put_sdec(e, (int16_t)rd16(v)); break;
    case 0x06: e = put_dec(e, rd16(v)); break;
    case 0x07: e = put_sdec(e, (int32_t)rd32(v)); break;
    case 0x08: e = put_dec(e, rd32(v)); break;
    case 0x09: e = put_sdec(e, (long long)(int64_t)rd64(v)); break;
    case 0x0a: e = put_dec(e, rd64(v)); break;
    case 0x0d:
        memcpy(e, rd32(v) ? "true" : "false", rd32(v) ? 4 : 5);
        e += rd32(v) ? 4 : 5;
        break;
    case 0x14: e = put_hex0x(e, rd32(v)); break;
    case 0x15: e = put_hex0x(e, rd64(v)); break;
    case 0x0f: /* 00112233-4455-6677-8899-AABBCCDDEEFF, the first three groups little-endian */
        e = put_hex(e, rd32(v), 8, UPPER);
        *e++ = '-';
        e = put_hex(e, rd16(v + 4), 4, UPPER);
        *e++ = '-';
        e = put_hex(e, rd16(v + 6), 4, UPPER);
        *e++ = '-';
        for (int i = 8; i < 16; i++) {
            if (i == 10) *e++ = '-';
            e = put_hex(e, v[i], 2, UPPER);
        }
        break;
    case 0x11:
    case 0x12: /* 2017-07-12T17:16:05.499259Z */
        if ((type == 0x11 ? evs_filetime_civil(rd64(v), &c) : systime_civil(v, &c)) < 0) return -1;
        e = put2(put2(e, c.year / 100), c.year % 100);
        *e++ = '-';
        e = put2(e, c.month);
        *e++ = '-';
        e = put2(e, c.day);
        *e++ = 'T';
        e = put2(e, c.hour);
        *e++ = ':';
        e = put2(e, c.minute);
        *e++ = ':';
        e = put2(e, c.second);
        *e++ = '.';
        e = put2(put2(put2(e, c.micro / 10000), c.micro / 100 % 100), c.micro % 100);
        *e++ = 'Z';
        break;
    case 0x13: { /* S-1-5-21-...: revision, 48-bit authority (big-endian), sub-authorities */
        uint64_t auth = 0;
        for (int i = 2; i < 8; i++) auth = auth << 8 | v[i];
        if (auth >> 32 || size < 8u + 4u * v[1]) return -1; /* value_fits() said no */
        *e++ = 'S';
        *e++ = '-';
        e = put_dec(e, v[0]);
        *e++ = '-';
        e = put_dec(e, auth);
        for (uint32_t i = 0; i < v[1]; i++) {
            *e++ = '-';
            e = put_dec(e, rd32(v + 8 + 4 * i));
        }
        break;
    }
    default: return -1;
    }
    *e = 0;
    return (int)(e - out);
}

/* ---- records ----------------------------------------------------------------------------- */

/* The values of a template instance at `pos`, inside [pos, end): their count, descriptors and
 * offsets, each checked against its type; 0x21 (embedded BinXML) only where `binxml_ok`. The
 * position just past them in *after. */
typedef struct values {
    uint32_t count;
    const uint8_t *desc;
    uint32_t *at;
} values;

static int read_values(const uint8_t *chunk, uint32_t pos, uint32_t end, uint32_t *at,
                       values *v, uint32_t *after) {
    cursor k = {chunk, pos, end, 0};
    v->count = u32(&k);
    if (k.bad || v->count > EVS_MAX_VALUES || !need(&k, 4 * v->count)) return -1;
    v->desc = chunk + k.pos;
    v->at = at;
    pos = k.pos + 4 * v->count;
    for (uint32_t i = 0; i < v->count; i++) {
        uint32_t size = rd16(v->desc + 4 * i);
        uint8_t type = v->desc[4 * i + 2];
        if ((uint64_t)pos + size > end) return -1;
        if (type != 0x21 && !value_fits(type, chunk + pos, size)) return -1;
        at[i] = pos;
        pos += size;
    }
    *after = pos;
    return 0;
}

/* Where a slot's value is; -1 for an index past the values, or embedded BinXML anywhere
 * but the payload (`binxml`). */
static int resolve_as(const slot *s, const values *v, evs_ref *r, int binxml) {
    r->kind = s->kind;
    r->type = 0x01;
    r->off = s->off;
    r->size = s->size;
    if (s->kind != EVS_VALUE) return 0;
    if (s->index >= v->count) return -1;
    r->type = v->desc[4 * s->index + 2];
    r->off = v->at[s->index];
    r->size = rd16(v->desc + 4 * s->index);
    if ((r->type == 0x21) != binxml && r->type != 0x00 && r->size != 0) return -1;
    if (r->type == 0x00 || r->size == 0) r->kind = EVS_NONE; /* an empty optional value */
    return 0;
}

static int resolve(const slot *s, const values *v, evs_ref *r) { return resolve_as(s, v, r, 0); }

/* A template instance token (0x0c) at `pos`: its plan and values, which must end where the
 * BinXML does (an end-of-stream token, then `end`). */
static plan *instance(evs_decoder *d, const uint8_t *chunk, uint32_t pos, uint32_t end, int root,
                      uint32_t *at, values *v) {
    if ((uint64_t)pos + 10 > end || chunk[pos] != 0x0c) return NULL;
    uint32_t here = pos + 10, def = rd32(chunk + pos + 6), vals = here;
    if (def == here) { /* defined here: the values follow the definition */
        if ((uint64_t)def + 24 > end) return NULL;
        uint64_t after = (uint64_t)def + 24 + rd32(chunk + def + 20);
        if (after > end) return NULL;
        vals = (uint32_t)after;
    }
    plan *p = plan_at(d, def, root, chunk, EVS_CHUNK_SIZE);
    uint32_t after;
    if (!p->ok || read_values(chunk, vals, end, at, v, &after) < 0) return NULL;
    if (after >= end || chunk[after] != 0x00) return NULL; /* more than the one instance */
    for (uint32_t i = 0; i < v->count; i++) /* embedded BinXML only as the EventData payload */
        if (v->desc[4 * i + 2] == 0x21 &&
            !(root == E_EVENT && p->payload.kind == EVS_VALUE && p->payload.index == i))
            return NULL;
    return p;
}

int evs_decode(evs_decoder *d, const uint8_t *chunk, size_t len_, uint32_t at, evs_record *out) {
    if (len_ < EVS_CHUNK_SIZE) return -1;
    uint32_t end = rd32(chunk + 0x30);
    if (end > EVS_CHUNK_SIZE) end = EVS_CHUNK_SIZE;
    if (at < EVS_CHUNK_HEADER || at > end || end - at < EVS_RECORD_HEADER + 4) return -1;
    if (memcmp(chunk + at, "**\0\0", 4)) return -1;
    uint32_t size = rd32(chunk + at + 4);
    if (size < EVS_RECORD_HEADER + 14 + 4 + 1 || size > end - at) return -1;
    out->header_id = rd64(chunk + at + 8);
    out->filetime = rd64(chunk + at + 16);
    const uint32_t body = at + EVS_RECORD_HEADER, rec_end = at + size - 4;
    if (chunk[body] != 0x0f) return -1; /* fragment header, then the template instance */
    values v, pv;
    plan *p = instance(d, chunk, body + 4, rec_end, E_EVENT, d->value_at, &v);
    if (!p) return -1;
    if (resolve(&p->provider, &v, &out->provider) < 0 ||
        resolve(&p->source, &v, &out->source) < 0 ||
        resolve(&p->event_id, &v, &out->event_id) < 0 ||
        resolve(&p->record_id, &v, &out->record_id) < 0 ||
        resolve(&p->channel, &v, &out->channel) < 0 ||
        resolve(&p->computer, &v, &out->computer) < 0)
        return -1;
    const plan *dp = p;
    const values *dv = &v;
    if (p->payload.kind == EVS_VALUE) {
        evs_ref pay;
        if (resolve_as(&p->payload, &v, &pay, 1) < 0) return -1;
        if (pay.kind == EVS_NONE) { /* no EventData at all */
            out->n_data = 0;
            out->unnamed = 0;
            return 0;
        }
        if (pay.type != 0x21 || pay.size < 5) return -1;
        /* a fragment header first, or (as Windows writes it) the template instance at once */
        uint32_t from = chunk[pay.off] == 0x0f ? pay.off + 4 : pay.off;
        dp = instance(d, chunk, from, pay.off + pay.size, E_EVENTDATA, d->payload_at, &pv);
        if (!dp) return -1;
        dv = &pv;
    }
    out->n_data = dp->n_data;
    out->unnamed = dp->unnamed;
    for (uint32_t i = 0; i < dp->n_data; i++) {
        out->name[i].kind = dp->name[i].kind;
        out->name[i].type = 0x01;
        out->name[i].off = dp->name[i].off;
        out->name[i].size = dp->name[i].size;
        if (resolve(&dp->data[i], dv, &out->data[i]) < 0) return -1;
    }
    return 0;
}
