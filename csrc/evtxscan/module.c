/* Python binding of the EVTX record selector. hpforensics/evtx/select.py is the public face:
 * it compiles the rules once (`rules()`) and calls `select()` per chunk. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdlib.h>

#include "evtxscan.h"

#define MAX_RULES 64
#define MAX_IDS 64

typedef struct rules {
    size_t n;
    evs_rule rule[MAX_RULES];
    char names[MAX_RULES][256];
    uint32_t ids[MAX_RULES][MAX_IDS];
} rules;

static const char *CAPSULE = "hpforensics._evtxscan.rules";

static void rules_free(PyObject *capsule) { free(PyCapsule_GetPointer(capsule, CAPSULE)); }

/* rules(((name: bytes, ids: tuple[int, ...]), ...)) -> capsule; empty ids = every event */
static PyObject *py_rules(PyObject *self, PyObject *arg) {
    (void)self;
    PyObject *seq = PySequence_Fast(arg, "rules must be a sequence of (name, ids) pairs");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > MAX_RULES) {
        Py_DECREF(seq);
        return PyErr_Format(PyExc_ValueError, "at most %d rules", MAX_RULES);
    }
    rules *r = calloc(1, sizeof *r);
    if (!r) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *name;
        Py_ssize_t name_len;
        PyObject *ids;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "y#O:rules", &name, &name_len, &ids))
            goto fail;
        PyObject *idseq = PySequence_Fast(ids, "ids must be a sequence of ints");
        if (!idseq) goto fail;
        Py_ssize_t m = PySequence_Fast_GET_SIZE(idseq);
        if (name_len >= 256 || m > MAX_IDS) {
            Py_DECREF(idseq);
            PyErr_SetString(PyExc_ValueError, "rule name or ID list too long");
            goto fail;
        }
        memcpy(r->names[i], name, (size_t)name_len);
        for (Py_ssize_t j = 0; j < m; j++) {
            unsigned long v = PyLong_AsUnsignedLong(PySequence_Fast_GET_ITEM(idseq, j));
            if (PyErr_Occurred()) {
                Py_DECREF(idseq);
                goto fail;
            }
            r->ids[i][j] = (uint32_t)v;
        }
        Py_DECREF(idseq);
        r->rule[i].name = r->names[i]; /* field by field: no compound literal for older MSVC */
        r->rule[i].name_len = (size_t)name_len;
        r->rule[i].ids = r->ids[i];
        r->rule[i].n_ids = (size_t)m;
    }
    r->n = (size_t)n;
    Py_DECREF(seq);
    PyObject *capsule = PyCapsule_New(r, CAPSULE, rules_free);
    if (!capsule) free(r);
    return capsule;
fail:
    Py_DECREF(seq);
    free(r);
    return NULL;
}

/* select.pick()'s size patches, for the records kept: ((record offset, size), ...) making the
 * parser step from each record it reads (the first of the chunk, then the kept) to the next. */
static PyObject *size_patches(const uint8_t *chunk, const evs_result *res) {
    PyObject *out = PyList_New(0);
    if (!out || !res->kept) return out ? PyList_AsTuple(out) : NULL;
    uint32_t first = res->keep[0] != EVS_CHUNK_HEADER;
    uint32_t n = res->kept + first;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t start = i < first ? EVS_CHUNK_HEADER : res->keep[i - first];
        uint32_t stop = i + 1 < n ? res->keep[i + 1 - first] : res->end;
        const uint8_t *p = chunk + start + 4;
        uint32_t size = p[0] | p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        if (size == stop - start) continue;
        PyObject *pair = Py_BuildValue("(II)", start, stop - start);
        if (!pair || PyList_Append(out, pair) < 0) {
            Py_XDECREF(pair);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(pair);
    }
    PyObject *t = PyList_AsTuple(out);
    Py_DECREF(out);
    return t;
}

/* select(chunk, rules) -> None (walk the whole chunk with the parser) or
 * (records, end, kept_offsets: tuple[int], mentions: bool, native: tuple[int] | None,
 *  parsed: int, patches: tuple[tuple[int, int]]): pick()'s figures, computed here */
static PyObject *py_select(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    PyObject *capsule;
    if (!PyArg_ParseTuple(args, "y*O:select", &view, &capsule)) return NULL;
    rules *r = PyCapsule_GetPointer(capsule, CAPSULE);
    if (!r) {
        PyBuffer_Release(&view);
        return NULL;
    }
    evs_result *res = malloc(sizeof *res);
    if (!res) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = evs_select(view.buf, (size_t)view.len, r->rule, r->n, res);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    PyObject *out = NULL;
    if (rc < 0) {
        out = Py_NewRef(Py_None);
    } else {
        PyObject *kept = PyTuple_New(res->kept);
        if (kept) {
            for (uint32_t i = 0; i < res->kept; i++) {
                PyObject *v = PyLong_FromUnsignedLong(res->keep[i]);
                if (!v) {
                    Py_CLEAR(kept);
                    break;
                }
                PyTuple_SET_ITEM(kept, i, v);
            }
        }
        /* the records a rule selected, when the chunk may be read by decode() */
        PyObject *native = NULL;
        if (kept && res->native) {
            uint32_t n = 0;
            for (uint32_t i = 0; i < res->kept; i++) n += res->yes[i];
            native = PyTuple_New(n);
            for (uint32_t i = 0, j = 0; native && i < res->kept; i++) {
                if (!res->yes[i]) continue;
                PyObject *v = PyLong_FromUnsignedLong(res->keep[i]);
                if (!v) Py_CLEAR(native);
                else PyTuple_SET_ITEM(native, j++, v);
            }
            if (!native) Py_CLEAR(kept);
        }
        PyObject *patches = kept ? size_patches(view.buf, res) : NULL;
        uint32_t parsed = !res->kept ? 0 : res->kept + (res->keep[0] != EVS_CHUNK_HEADER);
        if (!patches) {
            Py_CLEAR(kept);
            Py_CLEAR(native);
        }
        if (kept)
            out = Py_BuildValue("(IINONIN)", res->records, res->end, kept,
                                res->mentions ? Py_True : Py_False,
                                native ? native : Py_NewRef(Py_None), parsed, patches);
    }
    free(res);
    return out;
}

/* fields.c: the common shape of a record's decoded JSON, for readers.raw_from_json() */
PyObject *evs_record_fields(PyObject *self, PyObject *obj);

/* native.c: the fields of kept records read from their Binary XML */
PyObject *evs_py_decode(PyObject *self, PyObject *args);
int evs_native_init(void);

static PyMethodDef methods[] = {
    {"rules", py_rules, METH_O, "Compile provider rules: ((name: bytes, ids: tuple), ...)."},
    {"select", py_select, METH_VARARGS,
     "select(chunk, rules) -> None | (records, end, kept_offsets, mentions, native_offsets, "
     "parsed, patches)"},
    {"decode", evs_py_decode, METH_VARARGS,
     "decode(chunk, offsets, record_type) -> None | list[record_type]"},
    {"record_fields", evs_record_fields, METH_O,
     "record_fields(decoded_json) -> None | (provider, event_id, record_id, channel, computer, "
     "data)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_evtxscan", "EVTX record selection in C (see csrc/evtxscan).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__evtxscan(void) {
    if (evs_native_init() < 0) return NULL;
    return PyModule_Create(&module);
}
