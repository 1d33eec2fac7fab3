/* Python binding of the page-hashing core: argument checks, buffer views, GIL release.
 * hpforensics/pagehash.py is the public face; this module takes already-normalised arguments
 * (algorithm as an int, mask as a bitmap or None, an explicit thread count). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pagehash.h"

static int get_view(PyObject *obj, Py_buffer *view, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) == 0) return 0;
    PyErr_Clear();
    PyErr_Format(PyExc_TypeError, "%s must be a contiguous bytes-like object, not %.100s", what,
                 Py_TYPE(obj)->tp_name);
    return -1;
}

static int check_page_size(Py_ssize_t page_size) {
    if (page_size < 16 || (page_size & (page_size - 1))) {
        PyErr_Format(PyExc_ValueError, "page_size must be a power of two >= 16, got %zd", page_size);
        return -1;
    }
    return 0;
}

static int check_threads(int threads) {
    if (threads < 1) {
        PyErr_Format(PyExc_ValueError, "threads must be >= 1, got %d", threads);
        return -1;
    }
    return 0;
}

/* mask: None or a bitmap of exactly ceil(n/8) bytes */
static int get_mask(PyObject *mask, Py_buffer *view, size_t n) {
    if (mask == Py_None) return 0;
    if (get_view(mask, view, "mask") < 0) return -1;
    if ((size_t)view->len != (n + 7) / 8) {
        PyErr_Format(PyExc_ValueError, "mask bitmap must be %zu bytes for %zu bytes of data, got %zd",
                     (n + 7) / 8, n, view->len);
        PyBuffer_Release(view);
        return -1;
    }
    return 1;
}

static PyObject *raise_rc(int rc) {
    if (rc == PH_ENOMEM) return PyErr_NoMemory();
    PyErr_Format(PyExc_RuntimeError, "page-hash core failed (%d)", rc);
    return NULL;
}

static PyObject *py_hash_pages(PyObject *self, PyObject *args) {
    PyObject *buf, *mask;
    int algo, threads;
    Py_ssize_t page_size;
    Py_buffer view, mview;
    (void)self;
    if (!PyArg_ParseTuple(args, "OinOi:hash_pages", &buf, &algo, &page_size, &mask, &threads)) return NULL;
    if (algo != PH_ALGO_XXH128 && algo != PH_ALGO_SHA256) {
        PyErr_Format(PyExc_ValueError, "unknown algorithm id %d", algo);
        return NULL;
    }
    if (check_page_size(page_size) < 0 || check_threads(threads) < 0) return NULL;
    if (get_view(buf, &view, "buf") < 0) return NULL;
    int has_mask = get_mask(mask, &mview, (size_t)view.len);
    if (has_mask < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    size_t n = (size_t)view.len, ps = (size_t)page_size;
    size_t npages = (n + ps - 1) / ps, ds = ph_digest_size(algo);
    PyObject *digests = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(npages * ds));
    PyObject *flags = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)npages);
    int rc = PH_OK;
    if (digests && flags) {
        ph_hash_req req = {(const uint8_t *)view.buf, n, ps,
                           has_mask ? (const uint8_t *)mview.buf : NULL, algo, threads};
        uint8_t *dout = (uint8_t *)PyBytes_AS_STRING(digests), *fout = (uint8_t *)PyBytes_AS_STRING(flags);
        Py_BEGIN_ALLOW_THREADS
        rc = ph_hash_pages(&req, dout, fout);
        Py_END_ALLOW_THREADS
    }
    if (has_mask) PyBuffer_Release(&mview);
    PyBuffer_Release(&view);
    if (!digests || !flags || rc != PH_OK) {
        Py_XDECREF(digests);
        Py_XDECREF(flags);
        return PyErr_Occurred() ? NULL : raise_rc(rc);
    }
    return Py_BuildValue("(NN)", digests, flags);
}

static PyObject *diff_to_python(const ph_diff *d) {
    PyObject *pages = PyList_New((Py_ssize_t)d->npages);
    PyObject *ranges = PyList_New((Py_ssize_t)(d->nranges / 2));
    if (!pages || !ranges) goto fail;
    for (size_t i = 0; i < d->npages; i++) {
        PyObject *v = PyLong_FromSize_t(d->pages[i]);
        if (!v) goto fail;
        PyList_SET_ITEM(pages, (Py_ssize_t)i, v);
    }
    for (size_t i = 0; i < d->nranges / 2; i++) {
        PyObject *v = Py_BuildValue("(nn)", (Py_ssize_t)d->ranges[2 * i], (Py_ssize_t)d->ranges[2 * i + 1]);
        if (!v) goto fail;
        PyList_SET_ITEM(ranges, (Py_ssize_t)i, v);
    }
    return Py_BuildValue("(NN)", pages, ranges);
fail:
    Py_XDECREF(pages);
    Py_XDECREF(ranges);
    return NULL;
}

static PyObject *py_compare_pages(PyObject *self, PyObject *args) {
    PyObject *a, *b, *mask, *result = NULL;
    int threads;
    Py_ssize_t page_size;
    Py_buffer va, vb, vm;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOnOi:compare_pages", &a, &b, &page_size, &mask, &threads)) return NULL;
    if (check_page_size(page_size) < 0 || check_threads(threads) < 0) return NULL;
    if (get_view(a, &va, "a") < 0) return NULL;
    if (get_view(b, &vb, "b") < 0) {
        PyBuffer_Release(&va);
        return NULL;
    }
    if (va.len != vb.len) {
        PyErr_Format(PyExc_ValueError, "buffers differ in length: %zd and %zd bytes", va.len, vb.len);
        goto out;
    }
    int has_mask = get_mask(mask, &vm, (size_t)va.len);
    if (has_mask < 0) goto out;
    ph_diff d;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = ph_compare_pages((const uint8_t *)va.buf, (const uint8_t *)vb.buf, (size_t)va.len,
                          (size_t)page_size, has_mask ? (const uint8_t *)vm.buf : NULL, threads, &d);
    Py_END_ALLOW_THREADS
    if (has_mask) PyBuffer_Release(&vm);
    if (rc != PH_OK) {
        raise_rc(rc);
        goto out;
    }
    result = diff_to_python(&d);
    ph_diff_free(&d);
out:
    PyBuffer_Release(&va);
    PyBuffer_Release(&vb);
    return result;
}

/* whole-buffer digests, for tests and for callers hashing one region */
static PyObject *digest_of(PyObject *obj, int algo) {
    Py_buffer view;
    uint8_t out[32];
    if (get_view(obj, &view, "data") < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (algo == PH_ALGO_SHA256) ph_sha256((const uint8_t *)view.buf, (size_t)view.len, out);
    else ph_xxh3_128((const uint8_t *)view.buf, (size_t)view.len, out);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return PyBytes_FromStringAndSize((const char *)out, (Py_ssize_t)ph_digest_size(algo));
}

static PyObject *py_xxh3_128(PyObject *self, PyObject *obj) {
    (void)self;
    return digest_of(obj, PH_ALGO_XXH128);
}

static PyObject *py_sha256(PyObject *self, PyObject *obj) {
    (void)self;
    return digest_of(obj, PH_ALGO_SHA256);
}

/* item[0], item[1] as non-negative indices; floats and other non-integers are rejected */
static int get_range(PyObject *item, Py_ssize_t *start, Py_ssize_t *end) {
    Py_ssize_t v[2];
    if (!PySequence_Check(item) || PySequence_Size(item) < 2) return -1;
    for (int k = 0; k < 2; k++) {
        PyObject *o = PySequence_GetItem(item, k);
        PyObject *i = o ? PyNumber_Index(o) : NULL;
        Py_XDECREF(o);
        if (!i) return -1;
        v[k] = PyLong_AsSsize_t(i);
        Py_DECREF(i);
        if (v[k] == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            v[k] = PY_SSIZE_T_MIN; /* too large either way: reported as out of range */
        }
    }
    *start = v[0];
    *end = v[1];
    return 0;
}

static void set_bits(uint8_t *b, size_t s, size_t e) {
    if (s == e) return;
    size_t first = s >> 3, last = (e - 1) >> 3;
    uint8_t lo = (uint8_t)(0xFFu << (s & 7)), hi = (uint8_t)(0xFFu >> (7 - ((e - 1) & 7)));
    if (first == last) {
        b[first] |= lo & hi;
    } else {
        b[first] |= lo;
        memset(b + first + 1, 0xFF, last - first - 1);
        b[last] |= hi;
    }
}

/* ranges_to_bitmap(ranges, n): the Python loop took ~1.5 us a range; relocation masks have
 * 10^5 of them */
static PyObject *py_ranges_to_bitmap(PyObject *self, PyObject *args) {
    PyObject *ranges, *seq, *out;
    Py_ssize_t n, prev = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "On:ranges_to_bitmap", &ranges, &n)) return NULL;
    if (n < 0) {
        PyErr_Format(PyExc_ValueError, "n must be a non-negative int, got %zd", n);
        return NULL;
    }
    if (!(seq = PySequence_Fast(ranges, "mask ranges must be a sequence of (start, end) pairs")))
        return NULL;
    if (!(out = PyBytes_FromStringAndSize(NULL, (n + 7) / 8))) goto fail;
    uint8_t *bits = (uint8_t *)PyBytes_AS_STRING(out);
    memset(bits, 0, (size_t)((n + 7) / 8));
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        Py_ssize_t s, e;
        if (get_range(item, &s, &e) < 0) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "mask ranges must be (start, end) pairs of ints, got %R", item);
            goto fail;
        }
        if (s < 0 || s > e || e > n) {
            PyErr_Format(PyExc_ValueError, "mask range (%zd, %zd) outside 0..%zd", s, e, n);
            goto fail;
        }
        if (s < prev) {
            PyErr_Format(PyExc_ValueError, "mask ranges are not sorted: (%zd, %zd) after start %zd", s, e, prev);
            goto fail;
        }
        prev = s;
        set_bits(bits, (size_t)s, (size_t)e);
    }
    Py_DECREF(seq);
    return out;
fail:
    Py_DECREF(seq);
    Py_XDECREF(out);
    return NULL;
}

/* _read_floor(buf, threads, width=0, prefetch=0) -> int: the benchmark's memory floor (see
 * floor.c); prefetch: bytes ahead of each line to prefetch, 0 for none */
static PyObject *py_read_floor(PyObject *self, PyObject *args) {
    PyObject *buf;
    int threads, rc, width = 0, prefetch = 0;
    uint64_t fold;
    Py_buffer view;
    (void)self;
    if (!PyArg_ParseTuple(args, "Oi|ii:_read_floor", &buf, &threads, &width, &prefetch)) return NULL;
    if (prefetch < 0) {
        PyErr_SetString(PyExc_ValueError, "prefetch distance must be 0 or more");
        return NULL;
    }
    if (check_threads(threads) < 0 || get_view(buf, &view, "buf") < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = ph_read_floor((const uint8_t *)view.buf, (size_t)view.len, threads, width, prefetch, &fold);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (rc == PH_IMPL_UNAVAILABLE) {
        PyErr_Format(PyExc_ValueError, "%d-byte loads are not available here", width);
        return NULL;
    }
    if (rc != PH_OK) return raise_rc(rc);
    return PyLong_FromUnsignedLongLong((unsigned long long)fold);
}

/* _set_impl(kind, name): tests force each code path; not safe while a call is running */
static PyObject *py_set_impl(PyObject *self, PyObject *args) {
    const char *kind, *name;
    (void)self;
    if (!PyArg_ParseTuple(args, "ss:_set_impl", &kind, &name)) return NULL;
    switch (ph_set_impl_by_name(kind, name)) {
    case PH_OK: Py_RETURN_NONE;
    case PH_IMPL_UNKNOWN_KIND: PyErr_Format(PyExc_ValueError, "unknown kind %s", kind); return NULL;
    default:
        PyErr_Format(PyExc_ValueError, "%s implementation %s is not available here", kind, name);
        return NULL;
    }
}

/* _available(kind) -> the implementations of kind this CPU can run, in the order of the table */
static PyObject *py_available(PyObject *self, PyObject *arg) {
    int count;
    (void)self;
    const char *kind = PyUnicode_AsUTF8(arg);
    if (!kind) return NULL;
    const char *const *names = ph_impl_names(kind, &count);
    if (!names) {
        PyErr_Format(PyExc_ValueError, "unknown kind %s", kind);
        return NULL;
    }
    const char *was = ph_impl_name(kind);
    PyObject *out = PyList_New(0);
    for (int i = 0; out && i < count; i++) {
        if (ph_set_impl_by_name(kind, names[i]) != PH_OK) continue;
        PyObject *s = PyUnicode_FromString(names[i]);
        if (!s || PyList_Append(out, s) < 0) Py_CLEAR(out);
        Py_XDECREF(s);
    }
    ph_set_impl_by_name(kind, was); /* probing leaves the choice as it was */
    return out;
}

static PyObject *py_implementations(PyObject *self, PyObject *unused) {
    const ph_cpu *cpu = ph_cpu_features();
    (void)self;
    (void)unused;
    return Py_BuildValue("{s:s,s:s,s:s,s:{s:O,s:O,s:O,s:O,s:O,s:O}}", "xxh128",
                         ph_impl_name("xxh128"), "sha256", ph_impl_name("sha256"),
                         "compare", ph_impl_name("compare"), "cpu",
                         "sse2", cpu->sse2 ? Py_True : Py_False, "avx2", cpu->avx2 ? Py_True : Py_False,
                         "avx512", cpu->avx512 ? Py_True : Py_False,
                         "avx512bw", cpu->avx512bw ? Py_True : Py_False,
                         "sha", cpu->sha ? Py_True : Py_False, "neon", cpu->neon ? Py_True : Py_False);
}

static PyMethodDef methods[] = {
    {"hash_pages", py_hash_pages, METH_VARARGS, "hash_pages(buf, algo_id, page_size, mask_bitmap|None, threads) -> (digests, flags)"},
    {"compare_pages", py_compare_pages, METH_VARARGS, "compare_pages(a, b, page_size, mask_bitmap|None, threads) -> (pages, ranges)"},
    {"ranges_to_bitmap", py_ranges_to_bitmap, METH_VARARGS, "ranges_to_bitmap(ranges, n) -> bitmap bytes"},
    {"xxh3_128", py_xxh3_128, METH_O, "XXH3-128 digest (canonical, 16 bytes) of a buffer"},
    {"sha256", py_sha256, METH_O, "SHA-256 digest of a buffer"},
    {"_read_floor", py_read_floor, METH_VARARGS, "_read_floor(buf, threads, width=0, prefetch=0) -> XOR of every 64-bit word (benchmark floor)"},
    {"_available", py_available, METH_O, "_available(kind) -> implementations of kind this CPU runs"},
    {"_set_impl", py_set_impl, METH_VARARGS, "_set_impl(kind, name): force an implementation (tests)"},
    {"implementations", py_implementations, METH_NOARGS, "the implementation in use for each primitive"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_pagehash",
                                       "C core of hpforensics.pagehash", -1, methods,
                                       NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__pagehash(void) {
    char err[160];
    ph_init();
    if (ph_apply_impl_spec(getenv(PH_IMPL_ENV), err, sizeof err) != PH_OK) {
        PyErr_Format(PyExc_ImportError, "%s=%s: %s", PH_IMPL_ENV, getenv(PH_IMPL_ENV), err);
        return NULL;
    }
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    if (PyModule_AddIntConstant(m, "ALGO_XXH128", PH_ALGO_XXH128) < 0 ||
        PyModule_AddIntConstant(m, "ALGO_SHA256", PH_ALGO_SHA256) < 0 ||
        PyModule_AddIntConstant(m, "FLAG_ZERO", PH_FLAG_ZERO) < 0 ||
        PyModule_AddIntConstant(m, "FLAG_MASKED", PH_FLAG_MASKED) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
