/* Python binding of decode.c: `decode(chunk, offsets, record_type)` makes the records the
 * readers would make of the parser's JSON (readers.raw_from_json), or None when any of them
 * has another shape; the chunk then goes to the parser. What it returns for a record equals
 * what raw_from_json gives on the parser's rendering of it: tests/evtx/test_evtx_native.py
 * compares both on every record of the real logs and of the sample fleet. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>

#include <stdlib.h>

#include "evtxscan.h"

static PyObject *g_string_tag; /* "<string>" */
static PyObject *g_positional[EVS_MAX_FIELDS]; /* "Data1", "Data2", ...: made once */

int evs_native_init(void) {
    PyDateTime_IMPORT;
    if (!PyDateTimeAPI) return -1;
    g_string_tag = PyUnicode_InternFromString("<string>");
    for (int i = 0; i < EVS_MAX_FIELDS && g_string_tag; i++)
        if (!(g_positional[i] = PyUnicode_FromFormat("Data%d", i + 1))) return -1;
    return g_string_tag ? 0 : -1;
}

static PyObject *positional(uint32_t i) {
    return i < EVS_MAX_FIELDS ? Py_NewRef(g_positional[i]) : PyUnicode_FromFormat("Data%u", i + 1);
}

/* UTF-16LE up to the first NUL unit, as the parser reads a string value; NULL with no error
 * set when it is not valid UTF-16 (the parser would substitute or fail: its business). Text
 * without surrogates is copied straight into a str of the narrowest kind (the codec's general
 * path cost more than the rest of a record). */
static PyObject *utf16(const uint8_t *p, uint32_t size) {
    uint32_t units = size / 2;
    unsigned max = 0;
    for (uint32_t i = 0; i < units; i++) {
        unsigned u = p[2 * i] | (unsigned)p[2 * i + 1] << 8;
        if (!u) {
            units = i;
            break;
        }
        max |= u;
        if (u >= 0xd800 && u <= 0xdfff) max = 0x10000; /* a surrogate: the codec decides */
    }
    if (max < 0x10000) {
        PyObject *s = PyUnicode_New(units, max < 0x80 ? 0x7f : max < 0x100 ? 0xff : 0xffff);
        if (!s) return NULL;
        if (max < 0x100) {
            Py_UCS1 *d = PyUnicode_1BYTE_DATA(s);
            for (uint32_t i = 0; i < units; i++) d[i] = p[2 * i];
        } else {
            Py_UCS2 *d = PyUnicode_2BYTE_DATA(s);
            for (uint32_t i = 0; i < units; i++) d[i] = (Py_UCS2)(p[2 * i] | p[2 * i + 1] << 8);
        }
        return s;
    }
    int order = -1; /* little-endian, no BOM handling */
    PyObject *s = PyUnicode_DecodeUTF16((const char *)p, 2 * (Py_ssize_t)units, "strict", &order);
    if (!s && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) PyErr_Clear();
    return s;
}

/* A field's text: "" for nothing, a string as is, any other value as the JSON renders it. */
static PyObject *text_of(const uint8_t *chunk, const evs_ref *r, int strings_only) {
    if (r->kind == EVS_NONE) return PyUnicode_FromStringAndSize("", 0);
    const uint8_t *v = chunk + r->off;
    if (r->type == 0x01) return utf16(v, r->size);
    if (strings_only) return NULL;
    if (r->type == 0x0e) { /* binary: upper-case hex */
        static const char HEX[] = "0123456789ABCDEF";
        PyObject *s = PyUnicode_New(2 * (Py_ssize_t)r->size, 0x7f);
        if (!s) return NULL;
        Py_UCS1 *d = PyUnicode_1BYTE_DATA(s);
        for (uint32_t i = 0; i < r->size; i++) {
            d[2 * i] = (Py_UCS1)HEX[v[i] >> 4];
            d[2 * i + 1] = (Py_UCS1)HEX[v[i] & 15];
        }
        return s;
    }
    char buf[EVS_VALUE_TEXT_MAX];
    int n = evs_value_text(v, r->size, r->type, buf, sizeof buf);
    return n < 0 ? NULL : PyUnicode_FromStringAndSize(buf, n);
}

/* The same provider, channel and computer come in record after record: one str each. */
typedef struct memo {
    const uint8_t *at;
    uint32_t size;
    PyObject *text;
} memo;

static PyObject *memo_text(memo *m, const uint8_t *chunk, const evs_ref *r) {
    const uint8_t *v = chunk + r->off;
    if (r->kind != EVS_NONE && r->type == 0x01 && m->text && m->size == r->size &&
        (m->at == v || !memcmp(m->at, v, r->size)))
        return Py_NewRef(m->text);
    PyObject *t = text_of(chunk, r, 1);
    if (t && r->kind != EVS_NONE) {
        Py_XSETREF(m->text, Py_NewRef(t));
        m->at = v;
        m->size = r->size;
    }
    return t;
}

/* Data names are the template's text, the same offsets in every record of a chunk that uses the
 * template: one str each per call (made, and hashed as a dict key, once, not per record). */
#define NAME_SLOTS 64

typedef struct names {
    uint32_t off[NAME_SLOTS], size[NAME_SLOTS];
    PyObject *text[NAME_SLOTS];
} names;

static PyObject *name_text(names *c, const uint8_t *chunk, const evs_ref *r) {
    uint32_t h = (r->off * 2654435761u) >> 26; /* 6 bits */
    if (c->text[h] && c->off[h] == r->off && c->size[h] == r->size) return Py_NewRef(c->text[h]);
    PyObject *t = text_of(chunk, r, 1);
    if (t && r->kind == EVS_TEXT) {
        Py_XSETREF(c->text[h], Py_NewRef(t));
        c->off[h] = r->off;
        c->size[h] = r->size;
    }
    return t;
}

/* `int(value or 0)` of the JSON: a number value, or literal text of decimal digits. 0: done. */
static int number_of(const uint8_t *chunk, const evs_ref *r, unsigned long long *out) {
    const uint8_t *v = chunk + r->off;
    *out = 0;
    if (r->kind == EVS_NONE) return 0;
    if (r->type == 0x01) { /* template text */
        uint32_t n = r->size / 2;
        if (!n || n > 19) return -1;
        for (uint32_t i = 0; i < n; i++) {
            if (v[2 * i + 1] || v[2 * i] < '0' || v[2 * i] > '9') return -1;
            *out = *out * 10 + (unsigned)(v[2 * i] - '0');
        }
        return 0;
    }
    switch (r->type) { /* signed types only where they hold no negative number */
    case 0x03: if ((int8_t)v[0] < 0) return -1; /* fall through */
    case 0x04: *out = v[0]; return 0;
    case 0x05: if ((int16_t)(v[0] | v[1] << 8) < 0) return -1; /* fall through */
    case 0x06: *out = (unsigned)(v[0] | v[1] << 8); return 0;
    case 0x07: if (v[3] & 0x80) return -1; /* fall through */
    case 0x08: *out = (uint32_t)v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 24;
        return 0;
    case 0x09: if (v[7] & 0x80) return -1; /* fall through */
    case 0x0a:
        for (int i = 7; i >= 0; i--) *out = *out << 8 | v[i];
        return 0;
    default: return -1;
    }
}

static PyObject *record_object(const uint8_t *chunk, const evs_record *rec, PyObject *type,
                               memo memos[3], names *nc) {
    PyObject *args[7] = {NULL};
    PyObject *out = NULL;
    unsigned long long eid, rid;
    evs_civil c;
    if (number_of(chunk, &rec->event_id, &eid) < 0 || number_of(chunk, &rec->record_id, &rid) < 0)
        return NULL;
    if (evs_filetime_civil(rec->filetime, &c) < 0 || c.year < 1) return NULL;
    /* `Name or EventSourceName or ""` */
    args[0] = memo_text(&memos[0], chunk, &rec->provider);
    if (args[0] && PyUnicode_GET_LENGTH(args[0]) == 0) {
        Py_DECREF(args[0]);
        args[0] = text_of(chunk, &rec->source, 1);
    }
    if (!args[0]) goto done;
    if (!(args[1] = PyLong_FromUnsignedLongLong(eid))) goto done;
    if (!(args[2] = PyLong_FromUnsignedLongLong(rid))) goto done;
    args[3] = PyDateTimeAPI->DateTime_FromDateAndTime(c.year, c.month, c.day, c.hour, c.minute,
                                                      c.second, c.micro, PyDateTime_TimeZone_UTC,
                                                      PyDateTimeAPI->DateTimeType);
    if (!args[3]) goto done;
    if (!(args[4] = memo_text(&memos[1], chunk, &rec->channel))) goto done;
    if (!(args[5] = memo_text(&memos[2], chunk, &rec->computer))) goto done;
    if (!(args[6] = PyDict_New())) goto done;
    const evs_ref *only = rec->n_data == 1 ? &rec->data[0] : NULL;
    uint32_t items = 0;
    if (rec->unnamed && only && only->kind == EVS_VALUE && only->type == 0x81)
        for (uint32_t i = 0; i + 1 < only->size; i += 2) items += !chunk[only->off + i] && !chunk[only->off + i + 1];
    if (items > 1) {
        /* one unnamed Data holding a string array: the JSON's list, Data1, Data2, ... (an
         * array of one string is a plain text there, read as a single value below) */
        const uint8_t *v = chunk + only->off;
        uint32_t start = 0, item = 0;
        for (uint32_t i = 0; i + 1 < only->size; i += 2) {
            if (v[i] || v[i + 1]) continue;
            PyObject *name = positional(item++);
            PyObject *value = name ? utf16(v + start, i - start) : NULL;
            int rc = value ? PyDict_SetItem(args[6], name, value) : -1;
            Py_XDECREF(name);
            Py_XDECREF(value);
            if (rc < 0) goto done;
            start = i + 2;
        }
        out = PyObject_Vectorcall(type, args, 7, NULL);
        goto done;
    }
    for (uint32_t i = 0; i < rec->n_data; i++) {
        /* unnamed values are Data1, Data2, ... (records.add_positional); the JSON holds a
         * single one as a text, which counts only when it is not empty */
        PyObject *name = rec->unnamed ? positional(i) : name_text(nc, chunk, &rec->name[i]);
        if (!name) goto done;
        PyObject *value = items == 1 ? utf16(chunk + only->off, only->size)
                                     : text_of(chunk, &rec->data[i], 0);
        if (value && rec->unnamed && rec->n_data == 1) {
            /* empty: no value; "<string>": python-evtx's list, which the JSON reading splits */
            int empty = PyUnicode_GET_LENGTH(value) == 0;
            Py_ssize_t found = empty ? -1 : PyUnicode_Find(value, g_string_tag, 0, PY_SSIZE_T_MAX, 1);
            if (empty || found != -1) {
                Py_DECREF(name);
                Py_DECREF(value);
                if (empty) break;
                goto done; /* found >= 0: the JSON way; -2: an error, set */
            }
        }
        int rc = value ? PyDict_SetItem(args[6], name, value) : -1;
        Py_DECREF(name);
        Py_XDECREF(value);
        if (rc < 0) goto done;
    }
    out = PyObject_Vectorcall(type, args, 7, NULL);
done:
    for (int i = 0; i < 7; i++) Py_XDECREF(args[i]);
    return out;
}

/* decode(chunk, offsets, record_type) -> list[record_type] | None */
PyObject *evs_py_decode(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    PyObject *offsets, *type;
    if (!PyArg_ParseTuple(args, "y*O!O:decode", &view, &PyTuple_Type, &offsets, &type)) return NULL;
    evs_decoder *d = malloc(evs_decoder_size());
    evs_record *rec = malloc(sizeof *rec);
    PyObject *out = NULL;
    memo memos[3] = {{NULL, 0, NULL}, {NULL, 0, NULL}, {NULL, 0, NULL}};
    names *nc = calloc(1, sizeof *nc);
    if (!d || !rec || !nc) {
        PyErr_NoMemory();
        goto done;
    }
    evs_decoder_reset(d);
    Py_ssize_t n = PyTuple_GET_SIZE(offsets);
    if (!(out = PyList_New(n))) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned long at = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(offsets, i));
        if (at == (unsigned long)-1 && PyErr_Occurred()) goto fail;
        PyObject *obj = NULL;
        if (at <= 0xffffffffu &&
            evs_decode(d, view.buf, (size_t)view.len, (uint32_t)at, rec) == 0)
            obj = record_object(view.buf, rec, type, memos, nc);
        if (!obj) {
            if (PyErr_Occurred()) goto fail;
            Py_DECREF(out);
            out = Py_NewRef(Py_None); /* another shape: the parser reads this chunk */
            goto done;
        }
        PyList_SET_ITEM(out, i, obj);
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    for (int i = 0; i < 3; i++) Py_XDECREF(memos[i].text);
    for (int i = 0; nc && i < NAME_SLOTS; i++) Py_XDECREF(nc->text[i]);
    free(nc);
    free(d);
    free(rec);
    PyBuffer_Release(&view);
    return out;
}
