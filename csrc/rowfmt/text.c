/* The text of one cell: CSV quoting, JSON string escapes, integers, UTF-8. See rowfmt.h. */
#include "rowfmt.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int rf_grow(rf_buf *b, size_t extra) {
    if (extra > SIZE_MAX - b->len) {
        PyErr_NoMemory();
        return -1;
    }
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void rf_free(rf_buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

PyObject *rf_str(const rf_buf *b, size_t start) {
    size_t n = b->len - start;
    if (n > (size_t)PY_SSIZE_T_MAX) return PyErr_NoMemory();
    if (b->wide)
        return PyUnicode_DecodeUTF8(b->p + start, (Py_ssize_t)n,
                                    b->surrogate ? "surrogatepass" : NULL);
    PyObject *s = PyUnicode_New((Py_ssize_t)n, 127);
    if (s && n) memcpy(PyUnicode_1BYTE_DATA(s), b->p + start, n);
    return s;
}

/* Eight ASCII bytes at a time (bytes < 0x80: the tests below are exact, no false hits). */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

static inline uint64_t load8(const unsigned char *p) {
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

/* Some byte of w equals c (w holds ASCII). */
static inline uint64_t has_byte(uint64_t w, unsigned char c) {
    uint64_t x = w ^ (ONES * c);
    return (x - ONES) & ~x & HIGHS;
}

/* Some byte of w is below n (n <= 0x80, w holds ASCII). */
static inline uint64_t has_below(uint64_t w, unsigned char n) {
    return (w - ONES * n) & ~w & HIGHS;
}

/* One code point as UTF-8, lone surrogates included (their 3-byte form). */
static inline void put_utf8(rf_buf *b, Py_UCS4 c) {
    char *o = b->p + b->len;
    if (c < 0x80) {
        o[0] = (char)c;
        b->len += 1;
    } else if (c < 0x800) {
        o[0] = (char)(0xC0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3F));
        b->len += 2;
    } else if (c < 0x10000) {
        if (c >= 0xD800 && c <= 0xDFFF) b->surrogate = 1;
        o[0] = (char)(0xE0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        b->len += 3;
    } else {
        o[0] = (char)(0xF0 | (c >> 18));
        o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
        o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[3] = (char)(0x80 | (c & 0x3F));
        b->len += 4;
    }
}

/* Room for n code points written `per` bytes each at most (plus a little). */
static int reserve_chars(rf_buf *b, Py_ssize_t n, size_t per) {
    if ((size_t)n > (SIZE_MAX - 16) / per) {
        PyErr_NoMemory();
        return -1;
    }
    return rf_reserve(b, (size_t)n * per + 16);
}

int rf_text(rf_buf *b, PyObject *s) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    if (PyUnicode_IS_ASCII(s)) return rf_put(b, (const char *)PyUnicode_1BYTE_DATA(s), (size_t)n);
    if (reserve_chars(b, n, 4) < 0) return -1;
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    for (Py_ssize_t i = 0; i < n; i++) put_utf8(b, PyUnicode_READ(kind, data, i));
    b->wide = 1;
    return 0;
}

/* What a character means to a CSV cell (outputs._quoted / _guarded_cell). */
enum { C_QUOTE = 1, C_DQUOTE = 2, C_BREAK = 4 };
static const unsigned char CSV_CLASS[128] = {
    ['"'] = C_QUOTE | C_DQUOTE, [','] = C_QUOTE, ['\n'] = C_QUOTE | C_BREAK, ['\r'] = C_BREAK,
};

/* A str cell as _plain_cell writes it, or as _guarded_cell does when the guard would leave it
 * unchanged (0 when it would change it: a formula start, a CR or LF). A plain cell is quoted on
 * a quote, comma or LF (not CR: outputs._quoted does not). */
int rf_csv_str(rf_buf *b, PyObject *s, int guarded) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    if (n == 0) return 1;
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    if (guarded) {
        Py_UCS4 c = PyUnicode_READ(kind, data, 0);
        if (c == '=' || c == '+' || c == '-' || c == '@' || c == '\t' || c == '\r') return 0;
    }
    unsigned flags = 0;
    int ascii = PyUnicode_IS_ASCII(s);
    if (ascii) {
        const unsigned char *p = data;
        Py_ssize_t i = 0;
        for (; i + 8 <= n; i += 8) { /* most cells have none of the four: skip them by words */
            uint64_t w = load8(p + i);
            if (has_byte(w, '"') | has_byte(w, ',') | has_byte(w, '\n') | has_byte(w, '\r'))
                for (int k = 0; k < 8; k++) flags |= CSV_CLASS[p[i + k]];
        }
        for (; i < n; i++) flags |= CSV_CLASS[p[i]];
    } else {
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if (c < 0x80) flags |= CSV_CLASS[c];
        }
    }
    if (guarded && (flags & C_BREAK)) return 0;
    if (reserve_chars(b, n, 4) < 0) return -1; /* quotes doubled: 2 bytes of 4 */
    if (flags & C_QUOTE) b->p[b->len++] = '"';
    if (ascii && !(flags & C_DQUOTE)) {
        memcpy(b->p + b->len, data, (size_t)n);
        b->len += (size_t)n;
    } else {
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if (c == '"') b->p[b->len++] = '"';
            put_utf8(b, c);
        }
        if (!ascii) b->wide = 1;
    }
    if (flags & C_QUOTE) b->p[b->len++] = '"';
    return 1;
}

/* orjson's string escapes: the two-character forms for \b \t \n \f \r " and \\, \u00xx
 * (lowercase hex) for the other controls; DEL, '/' and non-ASCII are written as they are. */
static const char JSON_ESC[128] = {
    1, 1, 1, 1, 1, 1, 1, 1, 'b', 't', 'n', 1, 'f', 'r', 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ['"'] = '"', ['\\'] = '\\',
};

static inline void put_escape(rf_buf *b, unsigned c) {
    static const char hex[] = "0123456789abcdef";
    char *o = b->p + b->len;
    o[0] = '\\';
    if (JSON_ESC[c] != 1) {
        o[1] = JSON_ESC[c];
        b->len += 2;
        return;
    }
    o[1] = 'u';
    o[2] = '0';
    o[3] = '0';
    o[4] = hex[c >> 4];
    o[5] = hex[c & 15];
    b->len += 6;
}

/* A str as orjson writes it; 0 on a lone surrogate (orjson refuses it: the Python function
 * raises its error). */
int rf_json_str(rf_buf *b, PyObject *s) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    if (reserve_chars(b, n, 6) < 0) return -1;
    b->p[b->len++] = '"';
    if (PyUnicode_IS_ASCII(s)) {
        const unsigned char *p = PyUnicode_1BYTE_DATA(s);
        Py_ssize_t run = 0; /* start of the characters not yet copied */
        for (Py_ssize_t i = 0; i < n; i++) {
            if (i + 8 <= n) { /* eight at a time while none needs an escape */
                uint64_t w = load8(p + i);
                if (!(has_below(w, 0x20) | has_byte(w, '"') | has_byte(w, '\\'))) {
                    i += 7;
                    continue;
                }
            }
            if (!JSON_ESC[p[i]]) continue;
            memcpy(b->p + b->len, p + run, (size_t)(i - run));
            b->len += (size_t)(i - run);
            put_escape(b, p[i]);
            run = i + 1;
        }
        memcpy(b->p + b->len, p + run, (size_t)(n - run));
        b->len += (size_t)(n - run);
    } else {
        int kind = PyUnicode_KIND(s);
        const void *data = PyUnicode_DATA(s);
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if (c < 0x80 && JSON_ESC[c]) {
                put_escape(b, c);
            } else {
                if (c >= 0xD800 && c <= 0xDFFF) return 0;
                put_utf8(b, c);
            }
        }
        b->wide = 1;
    }
    b->p[b->len++] = '"';
    return 1;
}

/* An exact int in decimal: 0 when it does not fit 64 bits (signed; or unsigned when
 * `unsigned_too`, orjson's range). */
int rf_int(rf_buf *b, PyObject *v, int unsigned_too) {
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    unsigned long long u;
    int negative = 0;
    if (overflow) {
        if (overflow < 0 || !unsigned_too) return 0;
        u = PyLong_AsUnsignedLongLong(v);
        if (u == (unsigned long long)-1 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return -1;
            PyErr_Clear();
            return 0;
        }
    } else if (x == -1 && PyErr_Occurred()) {
        return -1;
    } else if (x < 0) {
        negative = 1;
        u = 0ULL - (unsigned long long)x; /* well defined for LLONG_MIN too */
    } else {
        u = (unsigned long long)x;
    }
    char tmp[24];
    char *end = tmp + sizeof tmp, *o = end;
    do {
        *--o = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (negative) *--o = '-';
    return rf_put(b, o, (size_t)(end - o)) < 0 ? -1 : 1;
}
