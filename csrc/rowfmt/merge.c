/* merge_write: the timeline's sorted sources merged and written in one C call.
 *
 * SpillSorter's sources (the parent's sorted rows, its spilled runs, the runs workers wrote)
 * are each sorted; rows are (key, ..., CSV line, ..., JSON line, ...). heapq.merge over them
 * cost the serial end of a 317 MB fleet run ~1.2 s of 2.4: a Python generator step per row,
 * and heapreplace comparing [row, order, iterator] lists (an equality pass over the rows, then
 * the order). Here a binary heap holds one row per source and compares the keys; rows whose
 * keys are equal compare whole, then by source, so the order is heapq.merge's on every input
 * (the Python path in outputs.py stays the reference; tests compare both).
 *
 * The lines are copied as UTF-8 into two buffers handed to the writers as bytes every
 * `flush` bytes: no joined str per batch and no text layer encoding it again. A line that is
 * not valid text (a lone surrogate) raises, as the text file's strict UTF-8 encoder did. */
#include "rowfmt.h"

typedef struct {
    PyObject *row; /* owned */
    Py_ssize_t src;
} head;

/* a < b: 1 yes, 0 no, -1 error set. */
static int head_less(const head *a, const head *b) {
    PyObject *ka = PyTuple_GET_ITEM(a->row, 0), *kb = PyTuple_GET_ITEM(b->row, 0);
    int lt = PyObject_RichCompareBool(ka, kb, Py_LT);
    if (lt != 0) return lt;
    int gt = PyObject_RichCompareBool(kb, ka, Py_LT);
    if (gt != 0) return gt < 0 ? -1 : 0;
    /* equal keys (sources should never share one): whole rows, then the source's order */
    if (a->row != b->row) {
        lt = PyObject_RichCompareBool(a->row, b->row, Py_LT);
        if (lt != 0) return lt;
        gt = PyObject_RichCompareBool(b->row, a->row, Py_LT);
        if (gt != 0) return gt < 0 ? -1 : 0;
    }
    return a->src < b->src;
}

static int sift_down(head *h, Py_ssize_t n, Py_ssize_t i) {
    for (;;) {
        Py_ssize_t l = 2 * i + 1, best = i;
        if (l >= n) return 0;
        int c = head_less(&h[l], &h[best]);
        if (c < 0) return -1;
        if (c) best = l;
        if (l + 1 < n) {
            c = head_less(&h[l + 1], &h[best]);
            if (c < 0) return -1;
            if (c) best = l + 1;
        }
        if (best == i) return 0;
        head t = h[i];
        h[i] = h[best];
        h[best] = t;
        i = best;
    }
}

/* The next row of iterator `it` checked for shape: 1 got one, 0 exhausted, -1 error set. */
static int next_row(PyObject *it, Py_ssize_t need, PyObject **row) {
    *row = PyIter_Next(it);
    if (!*row) return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_Check(*row) || PyTuple_GET_SIZE(*row) < need) {
        PyErr_SetString(PyExc_TypeError, "merge_write: a row is not a tuple of key and lines");
        Py_CLEAR(*row);
        return -1;
    }
    return 1;
}

static int put_line(rf_buf *b, PyObject *s) {
    if (!PyUnicode_Check(s)) {
        PyErr_SetString(PyExc_TypeError, "merge_write: a line is not a str");
        return -1;
    }
    if (PyUnicode_IS_ASCII(s)) return rf_put(b, (const char *)PyUnicode_DATA(s),
                                             (size_t)PyUnicode_GET_LENGTH(s));
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(s, &n); /* strict: a lone surrogate raises */
    return p ? rf_put(b, p, (size_t)n) : -1;
}

static int hand_over(rf_buf *b, PyObject *write) {
    if (b->len == 0) return 0;
    PyObject *data = PyBytes_FromStringAndSize(b->p, (Py_ssize_t)b->len);
    if (!data) return -1;
    PyObject *r = PyObject_CallOneArg(write, data);
    Py_DECREF(data);
    if (!r) return -1;
    Py_DECREF(r);
    b->len = 0;
    return 0;
}

/* merge_write(sources, csv_write, json_write, csv_at, json_at, flush) -> rows written */
PyObject *rf_merge_write(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "merge_write takes 6 arguments");
        return NULL;
    }
    PyObject *csv_write = args[1], *json_write = args[2];
    Py_ssize_t csv_at = PyLong_AsSsize_t(args[3]), json_at = PyLong_AsSsize_t(args[4]);
    Py_ssize_t flush = PyLong_AsSsize_t(args[5]);
    if (PyErr_Occurred()) return NULL;
    if (csv_at < 1 || json_at < 1 || flush < 1) {
        PyErr_SetString(PyExc_ValueError, "merge_write: line positions follow the key (>= 1)");
        return NULL;
    }
    Py_ssize_t need = (csv_at > json_at ? csv_at : json_at) + 1;
    PyObject *seq = PySequence_Tuple(args[0]);
    if (!seq) return NULL;
    Py_ssize_t k = PyTuple_GET_SIZE(seq), n = 0, rows = 0;
    PyObject **its = PyMem_Calloc((size_t)(k ? k : 1), sizeof(PyObject *));
    head *h = PyMem_Calloc((size_t)(k ? k : 1), sizeof(head));
    rf_buf csv = {0}, json = {0};
    PyObject *result = NULL;
    if (!its || !h) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < k; i++) {
        its[i] = PyObject_GetIter(PyTuple_GET_ITEM(seq, i));
        if (!its[i]) goto done;
    }
    for (Py_ssize_t i = 0; i < k; i++) { /* the first row of each, in source order */
        PyObject *row;
        int got = next_row(its[i], need, &row);
        if (got < 0) goto done;
        if (got) h[n++] = (head){row, i};
    }
    for (Py_ssize_t i = n / 2 - 1; i >= 0; i--)
        if (sift_down(h, n, i) < 0) goto done;
    while (n > 0) {
        PyObject *row = h[0].row;
        if (put_line(&csv, PyTuple_GET_ITEM(row, csv_at)) < 0 ||
            put_line(&json, PyTuple_GET_ITEM(row, json_at)) < 0)
            goto done;
        rows++;
        PyObject *next;
        int got = next_row(its[h[0].src], need, &next);
        if (got < 0) goto done;
        Py_DECREF(row);
        if (got) {
            h[0].row = next;
        } else {
            h[0] = h[--n];
            h[n].row = NULL;
        }
        if (n > 1 && sift_down(h, n, 0) < 0) goto done;
        if ((Py_ssize_t)csv.len >= flush || (Py_ssize_t)json.len >= flush) {
            if (hand_over(&csv, csv_write) < 0 || hand_over(&json, json_write) < 0) goto done;
        }
    }
    if (hand_over(&csv, csv_write) < 0 || hand_over(&json, json_write) < 0) goto done;
    result = PyLong_FromSsize_t(rows);
done:
    if (h)
        for (Py_ssize_t i = 0; i < n; i++) Py_XDECREF(h[i].row);
    if (its)
        for (Py_ssize_t i = 0; i < k; i++) Py_XDECREF(its[i]);
    PyMem_Free(h);
    PyMem_Free(its);
    rf_free(&csv);
    rf_free(&json);
    Py_DECREF(seq);
    return result;
}
