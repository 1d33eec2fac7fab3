/* Python binding: CsvFormat and JsonFormat, renderers built once per table (see rowfmt.h).
 *
 *   CsvFormat(width, guarded: sequence[int], fallback)
 *   JsonFormat(width, fields: sequence[(key: bytes, index: int)], fallback)
 *
 * both with .lines(rows) -> list[str] (one line per row, "\n" ended) and .text(rows) -> str
 * (the lines joined). `fallback(row) -> str` is the Python renderer of one row: it gets every
 * row that is not a list or tuple of at least `width` cells of the kinds rendered here. JSON
 * `key` is the key as JSON text (orjson.dumps(name)); `index` the row position of its value.
 * A renderer is immutable once made: threads can share it. */
#include "rowfmt.h"

#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

typedef struct fmt fmt;
/* One row's cells (`width` of them) into b: 1 written, 0 for the Python renderer, -1 error
 * set. */
typedef int (*row_fn)(fmt *f, PyObject **cell, rf_buf *b);

/* What both renderers share; each type's own part follows. */
struct fmt {
    PyObject_HEAD
    Py_ssize_t width;
    PyObject *fallback;
    row_fn row;
    void (*free_own)(fmt *f);
};

typedef struct {
    fmt base;
    unsigned char *guarded; /* width flags: the formula guard applies at this position */
} CsvFormat;

typedef struct {
    fmt base;
    Py_ssize_t n;       /* keys, in output order */
    Py_ssize_t *index;  /* n row positions */
    size_t *key_end;    /* n offsets into keys: key i is keys[key_end[i-1] .. key_end[i]) */
    char *keys;         /* "{" or "," then the JSON key and ":", for every key */
    int keys_wide;      /* a key is not ASCII */
} JsonFormat;

/* -- rows ----------------------------------------------------------------------------------- */

/* The row's cells when it is a list or tuple wide enough; NULL when it is not. */
static PyObject **cells_of(PyObject *row, Py_ssize_t width) {
    if (!PyList_CheckExact(row) && !PyTuple_CheckExact(row)) return NULL;
    return PySequence_Fast_GET_SIZE(row) >= width ? PySequence_Fast_ITEMS(row) : NULL;
}

static int csv_row(fmt *base, PyObject **cell, rf_buf *b) {
    CsvFormat *f = (CsvFormat *)base;
    for (Py_ssize_t i = 0; i < base->width; i++) {
        PyObject *v = cell[i];
        int rc = 1;
        if (i && rf_putc(b, ',') < 0) return -1;
        if (PyUnicode_CheckExact(v))
            rc = rf_csv_str(b, v, f->guarded[i]);
        else if (PyLong_CheckExact(v))
            rc = rf_int(b, v, 0);
        else if (v != Py_None)
            rc = 0;
        if (rc <= 0) return rc;
    }
    return rf_putc(b, '\n') < 0 ? -1 : 1;
}

static int json_row(fmt *base, PyObject **cell, rf_buf *b) {
    JsonFormat *f = (JsonFormat *)base;
    if (f->n == 0) return rf_put(b, "{}\n", 3) < 0 ? -1 : 1;
    if (f->keys_wide) b->wide = 1;
    size_t start = 0;
    for (Py_ssize_t i = 0; i < f->n; i++) {
        PyObject *v = cell[f->index[i]];
        int rc = 1;
        if (rf_put(b, f->keys + start, f->key_end[i] - start) < 0) return -1;
        start = f->key_end[i];
        if (PyUnicode_CheckExact(v))
            rc = rf_json_str(b, v);
        else if (PyLong_CheckExact(v))
            rc = rf_int(b, v, 1);
        else if (v == Py_None)
            rc = rf_put(b, "null", 4) < 0 ? -1 : 1;
        else if (PyBool_Check(v))
            rc = (v == Py_True ? rf_put(b, "true", 4) : rf_put(b, "false", 5)) < 0 ? -1 : 1;
        else
            rc = 0;
        if (rc <= 0) return rc;
    }
    return rf_put(b, "}\n", 2) < 0 ? -1 : 1;
}

/* The Python renderer's line for a row, checked to be a str. */
static PyObject *fallback_line(PyObject *fallback, PyObject *row) {
    PyObject *line = PyObject_CallOneArg(fallback, row);
    if (line && !PyUnicode_Check(line)) {
        PyErr_Format(PyExc_TypeError, "row renderer returned %.100s, not str",
                     Py_TYPE(line)->tp_name);
        Py_CLEAR(line);
    }
    return line;
}

/* lines(rows) or text(rows). */
static PyObject *render(fmt *f, PyObject *rows, int joined) {
    /* a tuple: the Python renderer cannot change the sequence under this loop */
    PyObject *seq = PySequence_Tuple(rows);
    if (!seq) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    PyObject **items = ((PyTupleObject *)seq)->ob_item;
    PyObject *out = joined ? NULL : PyList_New(n);
    rf_buf b = {NULL, 0, 0, 0, 0};
    if (!joined && !out) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        size_t start = joined ? b.len : 0;
        if (!joined) b.len = 0, b.wide = b.surrogate = 0;
        PyObject **cell = cells_of(items[i], f->width);
        int rc = cell ? f->row(f, cell, &b) : 0;
        if (rc < 0) goto fail;
        if (rc == 0) { /* not ours: the Python renderer writes this row */
            b.len = start;
            PyObject *line = fallback_line(f->fallback, items[i]);
            if (!line) goto fail;
            if (!joined) {
                PyList_SET_ITEM(out, i, line);
                continue;
            }
            rc = rf_text(&b, line);
            Py_DECREF(line);
            if (rc < 0) goto fail;
        } else if (!joined) {
            PyObject *line = rf_str(&b, 0);
            if (!line) goto fail;
            PyList_SET_ITEM(out, i, line);
        }
    }
    if (joined) out = rf_str(&b, 0);
    rf_free(&b);
    Py_DECREF(seq);
    return out;
fail:
    rf_free(&b);
    Py_XDECREF(out);
    Py_DECREF(seq);
    return NULL;
}

static void fmt_dealloc(PyObject *self);

int rf_kind(PyObject *o, Py_ssize_t *width) {
    if (Py_TYPE(o)->tp_dealloc != fmt_dealloc) return 0;
    *width = ((fmt *)o)->width;
    return ((fmt *)o)->row == csv_row ? RF_CSV : RF_JSON;
}

int rf_row(PyObject *o, PyObject **cell, rf_buf *b) {
    fmt *f = (fmt *)o;
    size_t start = b->len;
    int rc = f->row(f, cell, b);
    if (rc != 0) return rc < 0 ? -1 : 0;
    b->len = start; /* not ours: the Python renderer writes this row, given it as a list */
    PyObject *row = PyList_New(f->width);
    if (!row) return -1;
    for (Py_ssize_t i = 0; i < f->width; i++) PyList_SET_ITEM(row, i, Py_NewRef(cell[i]));
    PyObject *line = fallback_line(f->fallback, row);
    Py_DECREF(row);
    if (!line) return -1;
    rc = rf_text(b, line);
    Py_DECREF(line);
    return rc;
}

static PyObject *fmt_lines(PyObject *self, PyObject *rows) { return render((fmt *)self, rows, 0); }

static PyObject *fmt_text(PyObject *self, PyObject *rows) { return render((fmt *)self, rows, 1); }

static PyMethodDef fmt_methods[] = {
    {"lines", fmt_lines, METH_O, "lines(rows) -> list[str]: one line per row."},
    {"text", fmt_text, METH_O, "text(rows) -> str: the lines of the rows, joined."},
    {NULL, NULL, 0, NULL},
};

/* A new renderer of `type` with the arguments both take; NULL with an error set. */
static fmt *fmt_new(PyTypeObject *type, Py_ssize_t width, PyObject *fallback, row_fn row,
                    void (*free_own)(fmt *)) {
    if (width < 0) return (fmt *)PyErr_Format(PyExc_ValueError, "width must be >= 0");
    if (!PyCallable_Check(fallback))
        return (fmt *)PyErr_Format(PyExc_TypeError, "fallback must be callable");
    fmt *f = (fmt *)type->tp_alloc(type, 0);
    if (!f) return NULL;
    f->width = width;
    f->fallback = Py_NewRef(fallback);
    f->row = row;
    f->free_own = free_own;
    return f;
}

static int fmt_traverse(PyObject *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(((fmt *)self)->fallback);
    return 0;
}

static int fmt_clear(PyObject *self) {
    Py_CLEAR(((fmt *)self)->fallback);
    return 0;
}

static void fmt_dealloc(PyObject *self) {
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    fmt_clear(self);
    if (((fmt *)self)->free_own) ((fmt *)self)->free_own((fmt *)self);
    type->tp_free(self);
    Py_DECREF(type);
}

/* -- CsvFormat ------------------------------------------------------------------------------ */

static void csv_free(fmt *f) { free(((CsvFormat *)f)->guarded); }

static PyObject *csv_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    Py_ssize_t width;
    PyObject *guarded, *fallback;
    static char *kwlist[] = {"width", "guarded", "fallback", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "nOO:CsvFormat", kwlist, &width, &guarded,
                                     &fallback))
        return NULL;
    PyObject *seq = PySequence_Fast(guarded, "guarded must be a sequence of positions");
    if (!seq) return NULL;
    CsvFormat *f = (CsvFormat *)fmt_new(type, width, fallback, csv_row, csv_free);
    if (!f) goto fail;
    f->guarded = calloc((size_t)width + 1, 1);
    if (!f->guarded) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        Py_ssize_t at = PyNumber_AsSsize_t(PySequence_Fast_GET_ITEM(seq, i), PyExc_IndexError);
        if (at == -1 && PyErr_Occurred()) goto fail;
        if (at < 0 || at >= width) {
            PyErr_Format(PyExc_IndexError, "guarded position %zd outside the row", at);
            goto fail;
        }
        f->guarded[at] = 1;
    }
    Py_DECREF(seq);
    return (PyObject *)f;
fail:
    Py_DECREF(seq);
    Py_XDECREF(f);
    return NULL;
}

/* -- JsonFormat ----------------------------------------------------------------------------- */

static void json_free(fmt *base) {
    JsonFormat *f = (JsonFormat *)base;
    free(f->index);
    free(f->key_end);
    free(f->keys);
}

static PyObject *json_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    Py_ssize_t width;
    PyObject *fields, *fallback;
    static char *kwlist[] = {"width", "fields", "fallback", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "nOO:JsonFormat", kwlist, &width, &fields,
                                     &fallback))
        return NULL;
    PyObject *seq = PySequence_Fast(fields, "fields must be a sequence of (key, index) pairs");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    JsonFormat *f = (JsonFormat *)fmt_new(type, width, fallback, json_row, json_free);
    rf_buf keys = {NULL, 0, 0, 0, 0};
    if (!f) goto fail;
    f->n = n;
    f->index = calloc((size_t)n + 1, sizeof *f->index);
    f->key_end = calloc((size_t)n + 1, sizeof *f->key_end);
    if (!f->index || !f->key_end) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *key;
        Py_ssize_t key_len, at;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "y#n:JsonFormat", &key, &key_len,
                              &at))
            goto fail;
        if (at < 0 || at >= width) {
            PyErr_Format(PyExc_IndexError, "field position %zd outside the row", at);
            goto fail;
        }
        if (rf_putc(&keys, i ? ',' : '{') < 0 || rf_put(&keys, key, (size_t)key_len) < 0 ||
            rf_putc(&keys, ':') < 0)
            goto fail;
        for (Py_ssize_t k = 0; k < key_len; k++) f->keys_wide |= (unsigned char)key[k] >= 0x80;
        f->index[i] = at;
        f->key_end[i] = keys.len;
    }
    f->keys = keys.p; /* owned by f from here */
    Py_DECREF(seq);
    return (PyObject *)f;
fail:
    rf_free(&keys);
    Py_DECREF(seq);
    Py_XDECREF(f);
    return NULL;
}

/* -- module --------------------------------------------------------------------------------- */

static int add_type(PyObject *m, const char *name, const char *qualname, const char *doc,
                    newfunc make) {
    /* constant initialisers, the rest set here (older MSVC wants constants in initialisers) */
    PyType_Slot slots[] = {
        {Py_tp_doc, NULL},                    {Py_tp_new, NULL},
        {Py_tp_dealloc, (void *)fmt_dealloc}, {Py_tp_traverse, (void *)fmt_traverse},
        {Py_tp_clear, (void *)fmt_clear},     {Py_tp_methods, fmt_methods},
        {0, NULL},
    };
    slots[0].pfunc = (void *)doc;
    slots[1].pfunc = (void *)make;
    PyType_Spec spec;
    spec.name = qualname;
    spec.basicsize = make == csv_new ? (int)sizeof(CsvFormat) : (int)sizeof(JsonFormat);
    spec.itemsize = 0;
    spec.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC;
    spec.slots = slots;
    PyObject *type = PyType_FromModuleAndSpec(m, &spec, NULL);
    if (!type) return -1;
    int rc = PyModule_AddObjectRef(m, name, type);
    Py_DECREF(type);
    return rc;
}

static int exec_module(PyObject *m) {
    if (rf_add_event_lines(m) < 0) return -1;
    if (add_type(m, "CsvFormat", "hpforensics._rowfmt.CsvFormat",
                 "CsvFormat(width, guarded, fallback): CSV lines of rows of plain cells.",
                 csv_new) < 0)
        return -1;
    return add_type(m, "JsonFormat", "hpforensics._rowfmt.JsonFormat",
                    "JsonFormat(width, fields, fallback): JSON lines of rows of plain cells.",
                    json_new);
}

/* keep_freed_memory() -> bool: glibc's malloc keeps up to 64 MiB of freed memory (and grows
 * its heap 16 MiB at a time) instead of handing it back to the kernel and faulting it in
 * again, and serves blocks below 32 MiB from the heap. A timeline run builds and frees
 * text of every size up to megabytes (rows, joined batches, whole inputs' CSV and JSON): with
 * the defaults half its page faults were memory it had just freed (96,500 -> 46,000 faults
 * and 0.7 -> 0.45 s of system time on 80 MB of fleet logs, peak unchanged). False when
 * nothing was set: the C library is not glibc, or another allocator stands in for its malloc
 * and refuses mallopt (a sanitizer's). Process-wide and for good: callers are the CLI's short
 * runs and the workers they fork. */
static PyObject *keep_freed_memory(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
#if defined(__GLIBC__)
    int ok = mallopt(M_TOP_PAD, 16 << 20) && mallopt(M_TRIM_THRESHOLD, 64 << 20) &&
             mallopt(M_MMAP_THRESHOLD, 32 << 20);
    return PyBool_FromLong(ok);
#else
    Py_RETURN_FALSE;
#endif
}

static PyMethodDef module_methods[] = {
    {"keep_freed_memory", keep_freed_memory, METH_NOARGS,
     "keep_freed_memory() -> bool: glibc malloc keeps freed memory for reuse (see module.c)."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
    {0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rowfmt", "Output rows as CSV and JSON lines in C (see csrc/rowfmt).",
    0, module_methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rowfmt(void) { return PyModuleDef_Init(&module); }
