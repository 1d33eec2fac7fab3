/* Output rows rendered in C: the timeline's events and timeline lines as CSV and JSON text.
 *
 * hpforensics/evtx/outputs.py (CsvRows, JsonRows) is the reference: its Python functions
 * define every byte. This renders the cells that are plain (exact str, int, None; bool in JSON)
 * and hands any other row to the Python function it was given, so every rule that is ours (the
 * formula guard, how lists and floats are written) stays in one place, in Python.
 *
 * Text is built as UTF-8 in a growable buffer owned by one call (no state shared between
 * calls or threads) and returned as str: ASCII lines are copied straight into a new str,
 * others decoded. Lone surrogates (legal in a Python str) are written as their 3-byte forms
 * and decoded with "surrogatepass", so they come back as the same code points. */
#ifndef ROWFMT_H
#define ROWFMT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <string.h>

typedef struct rf_buf {
    char *p;
    size_t len, cap;
    int wide;      /* a byte >= 0x80 was written: the text must be decoded as UTF-8 */
    int surrogate; /* a lone surrogate was written: decode with surrogatepass */
} rf_buf;

/* Room for `extra` more bytes; -1 with MemoryError set. */
int rf_grow(rf_buf *b, size_t extra);
static inline int rf_reserve(rf_buf *b, size_t extra) {
    return b->cap - b->len >= extra ? 0 : rf_grow(b, extra);
}
void rf_free(rf_buf *b);
/* The bytes [start, b->len) as a str (b's flags say how to decode them). */
PyObject *rf_str(const rf_buf *b, size_t start);

/* Cell writers: 1 written, 0 not ours (the row goes to the Python function; what was written
 * is dropped by the caller), -1 error set. */
int rf_csv_str(rf_buf *b, PyObject *s, int guarded);
int rf_json_str(rf_buf *b, PyObject *s);
int rf_int(rf_buf *b, PyObject *v, int unsigned_too);

/* Any str as UTF-8 (lone surrogates in their 3-byte form): a line from the Python function. */
int rf_text(rf_buf *b, PyObject *s);

static inline int rf_put(rf_buf *b, const char *p, size_t n) {
    if (n == 0) return 0; /* b->p may still be NULL */
    if (rf_reserve(b, n) < 0) return -1;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static inline int rf_putc(rf_buf *b, char c) {
    if (b->len == b->cap && rf_reserve(b, 1) < 0) return -1;
    b->p[b->len++] = c;
    return 0;
}

/* The renderers of module.c, for events.c. rf_kind: RF_CSV or RF_JSON when `o` is a CsvFormat
 * or a JsonFormat (its width in *width), else 0. rf_row: one row of `o`'s width in cells into b,
 * by C or, for a row that is not ours, by o's Python renderer (given the cells as a list); 0
 * written, -1 error set. */
enum { RF_CSV = 1, RF_JSON = 2 };
int rf_kind(PyObject *o, Py_ssize_t *width);
int rf_row(PyObject *o, PyObject **cell, rf_buf *b);

/* events.c: adds the EventLines type to the module. */
int rf_add_event_lines(PyObject *m);

#endif
