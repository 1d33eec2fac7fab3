/* EventLines: the four output lines of each timeline event in one call per input.
 *
 *   EventLines(event_type, fields, event_csv, event_json, timeline_csv, timeline_json,
 *              descriptions, fallback)
 *   .render(events, index) -> (events CSV text, events JSONL text, timeline rows)
 *
 * hpforensics/timeline/rows.py is the reference: `event_lines_py(events, index)` (event_values,
 * timeline_values, the four renderers, the sort key) defines every byte, and
 * `fallback(event, index) -> (events CSV line, events JSON line, timeline row)` is it for one
 * event. This reads each event's slots in place (the dataclass's member offsets, found once
 * from `fields`, the names in EVENT_COLUMNS order), writes its time as rows.iso does and its
 * timeline message as timeline_values does, and renders the rows with the four renderers given
 * (CsvFormat / JsonFormat of rows.EVENT_CSV ...; a row they do not take goes to their Python
 * renderer, as in their own lines()). An event that is not a plain one (another type, an unset
 * slot, a time that is not a UTC datetime, a field of another type than the reference's
 * arithmetic assumes here) goes to `fallback`. A timeline row is
 * ((iso, device, str(record_id), index), CSV line, JSON line). */
#include "rowfmt.h"

#include <datetime.h>
#include <structmember.h>
#include <stdint.h>

enum { EVENT_WIDTH = 20, TIMELINE_WIDTH = 16 };

/* The event fields read here by name (their positions in `fields` are found at construction). */
enum { F_DEVICE, F_TIME, F_CHANNEL, F_PROVIDER, F_EVENT_ID, F_RECORD_ID, F_SOURCE, F_CATEGORY,
       F_KB, F_TITLE, F_ERROR_CODE, F_RESULT, F_OS_BUILD, F_UPDATE_CLASS, F_RELEASE_MONTH,
       F_DETAIL, F_NAMED };
static const char *const NAMED[F_NAMED] = {
    "device", "time", "channel", "provider", "event_id", "record_id", "source", "category", "kb",
    "title", "error_code", "result", "os_build", "update_class", "release_month", "detail"};

typedef struct {
    PyObject_HEAD
    PyObject *event_type, *event_csv, *event_json, *timeline_csv, *timeline_json;
    PyObject *descriptions, *fallback;
    /* "Event Recorded", "", "failure", "None", and the message's separators */
    PyObject *no_description, *empty, *failure, *none_text, *colon, *space, *open, *close, *error;
    Py_ssize_t offset[EVENT_WIDTH]; /* of each field's slot in an event */
    int at[F_NAMED];                /* each named field's position in the row */
} EventLines;

/* -- one event ------------------------------------------------------------------------------- */

/* rows.iso of a UTC datetime: YYYY-MM-DDTHH:MM:SS.ffffffZ (always ASCII). */
static PyObject *iso_text(PyObject *t) {
    char s[32];
    int n = snprintf(s, sizeof s, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", PyDateTime_GET_YEAR(t),
                     PyDateTime_GET_MONTH(t), PyDateTime_GET_DAY(t),
                     PyDateTime_DATE_GET_HOUR(t), PyDateTime_DATE_GET_MINUTE(t),
                     PyDateTime_DATE_GET_SECOND(t), PyDateTime_DATE_GET_MICROSECOND(t));
    return PyUnicode_FromStringAndSize(s, n);
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian, as datetime counts them). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* int(t.timestamp() * 1_000_000) for a UTC datetime: timestamp() is the microseconds since the
 * epoch divided by 10**6, one correctly rounded division while they fit a double exactly (as
 * CPython's int true division does them), then one multiplication and a truncation. 0 (not
 * ours) past 2**53 microseconds (the year 2255). */
static int stamp_of(PyObject *t, long long *out) {
    int64_t days = days_from_civil(PyDateTime_GET_YEAR(t), (unsigned)PyDateTime_GET_MONTH(t),
                                   (unsigned)PyDateTime_GET_DAY(t));
    int64_t secs = days * 86400 + PyDateTime_DATE_GET_HOUR(t) * 3600 +
                   PyDateTime_DATE_GET_MINUTE(t) * 60 + PyDateTime_DATE_GET_SECOND(t);
    int64_t us = secs * 1000000 + PyDateTime_DATE_GET_MICROSECOND(t);
    if (us > (INT64_C(1) << 53) || us < -(INT64_C(1) << 53)) return 0;
    double seconds = (double)us / 1e6;
    *out = (long long)(seconds * 1e6);
    return 1;
}

/* The code point of UTF-8 (as rf_text writes it, lone surrogates included) starting at p. */
static Py_UCS4 utf8_at(const unsigned char *p, size_t *len) {
    if (p[0] < 0x80) return *len = 1, p[0];
    if (p[0] < 0xE0) return *len = 2, ((Py_UCS4)(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
    if (p[0] < 0xF0)
        return *len = 3, ((Py_UCS4)(p[0] & 0x0F) << 12) | ((Py_UCS4)(p[1] & 0x3F) << 6) |
                         (p[2] & 0x3F);
    return *len = 4, ((Py_UCS4)(p[0] & 0x07) << 18) | ((Py_UCS4)(p[1] & 0x3F) << 12) |
                     ((Py_UCS4)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
}

/* timeline_values's message from its parts, `.replace("  ", " ").strip()` done on the UTF-8
 * (a space byte is never inside a multi-byte sequence, so the byte-wise replacement is the
 * code-point one). `b` is scratch; the message is returned as a new str. */
static PyObject *message_of(rf_buf *b, PyObject *const *part, int n) {
    b->len = 0, b->wide = b->surrogate = 0;
    for (int i = 0; i < n; i++)
        if (rf_text(b, part[i]) < 0) return NULL;
    unsigned char *p = (unsigned char *)b->p;
    size_t w = 0;
    for (size_t r = 0; r < b->len; r++) { /* non-overlapping, left to right, as str.replace */
        p[w++] = p[r];
        if (p[r] == ' ' && r + 1 < b->len && p[r + 1] == ' ') r++;
    }
    size_t start = 0, end = w, step; /* then what str.strip removes (str.isspace) */
    while (start < end && Py_UNICODE_ISSPACE(utf8_at(p + start, &step))) start += step;
    while (end > start) {
        size_t last = end - 1;
        while (last > start && (p[last] & 0xC0) == 0x80) last--;
        if (!Py_UNICODE_ISSPACE(utf8_at(p + last, &step))) break;
        end = last;
    }
    b->len = end;
    return rf_str(b, start);
}

/* The outputs of an event whose fields are `cell` (held here: the Python renderer of a cell
 * that is not plain runs code that could change the event). As one_event. */
static int event_rows(EventLines *self, PyObject **cell, PyObject *index, rf_buf *ev_csv,
                      rf_buf *ev_json, rf_buf *scratch, PyObject **row) {
    PyObject *f[F_NAMED];
    for (int k = 0; k < F_NAMED; k++) f[k] = cell[self->at[k]];
    static const int TEXT[] = {F_DEVICE, F_CATEGORY, F_KB, F_TITLE, F_ERROR_CODE, F_RESULT,
                               F_OS_BUILD, F_UPDATE_CLASS, F_DETAIL};
    for (size_t k = 0; k < sizeof TEXT / sizeof *TEXT; k++)
        if (!PyUnicode_CheckExact(f[TEXT[k]])) return 0;
    if (!PyLong_CheckExact(f[F_RECORD_ID])) return 0;
    PyObject *month = f[F_RELEASE_MONTH];
    int has_class = PyUnicode_GET_LENGTH(f[F_UPDATE_CLASS]) > 0;
    if (has_class && month != Py_None && !PyUnicode_CheckExact(month)) return 0;

    PyObject *t = f[F_TIME], *iso, *stamp;
    if (t == Py_None) {
        iso = Py_NewRef(self->empty), stamp = Py_NewRef(self->empty);
    } else {
        long long us;
        if (!PyDateTime_CheckExact(t) || PyDateTime_DATE_GET_TZINFO(t) != PyDateTime_TimeZone_UTC ||
            !stamp_of(t, &us))
            return 0;
        iso = iso_text(t);
        stamp = iso ? PyLong_FromLongLong(us) : NULL;
        if (!stamp) {
            Py_XDECREF(iso);
            return -1;
        }
    }
    PyObject *desc = PyDict_GetItemWithError(self->descriptions, f[F_CATEGORY]);
    if (!desc && PyErr_Occurred()) goto fail;
    if (!desc) desc = self->no_description;
    if (!PyUnicode_CheckExact(desc)) goto not_ours;

    /* f"{device}: {desc} {what}{cls}{tail}{detail}" */
    PyObject *what = PyUnicode_GET_LENGTH(f[F_KB])      ? f[F_KB]
                     : PyUnicode_GET_LENGTH(f[F_TITLE]) ? f[F_TITLE]
                                                        : f[F_OS_BUILD];
    PyObject *part[14];
    int n = 0;
    part[n++] = f[F_DEVICE], part[n++] = self->colon, part[n++] = desc, part[n++] = self->space;
    part[n++] = what;
    if (has_class) {
        part[n++] = self->open, part[n++] = f[F_UPDATE_CLASS], part[n++] = self->space;
        part[n++] = month == Py_None ? self->none_text : month;
        part[n++] = self->close;
    }
    if (PyUnicode_GET_LENGTH(f[F_ERROR_CODE]) &&
        PyUnicode_Compare(f[F_RESULT], self->failure) == 0)
        part[n++] = self->error, part[n++] = f[F_ERROR_CODE];
    if (PyUnicode_GET_LENGTH(f[F_DETAIL])) part[n++] = self->colon, part[n++] = f[F_DETAIL];
    PyObject *message = message_of(scratch, part, n);
    if (!message) goto fail;

    PyObject *detail = PyUnicode_GET_LENGTH(f[F_DETAIL]) ? f[F_DETAIL] : f[F_TITLE];
    PyObject *tl[TIMELINE_WIDTH] = {
        message, iso, desc, stamp, f[F_DEVICE], f[F_CATEGORY], f[F_KB], f[F_UPDATE_CLASS],
        f[F_RELEASE_MONTH], f[F_PROVIDER], f[F_EVENT_ID], f[F_RECORD_ID], f[F_CHANNEL],
        f[F_ERROR_CODE], f[F_SOURCE], detail};
    cell[self->at[F_TIME]] = iso;
    size_t csv_at = ev_csv->len, json_at = ev_json->len;
    PyObject *tl_csv = NULL, *tl_json = NULL, *rid = NULL, *key = NULL;
    /* in the reference's order, so that a row two renderers refuse raises the same error */
    scratch->len = 0, scratch->wide = scratch->surrogate = 0;
    if (rf_row(self->timeline_csv, tl, scratch) < 0 || !(tl_csv = rf_str(scratch, 0)))
        goto rows_fail;
    scratch->len = 0, scratch->wide = scratch->surrogate = 0;
    if (rf_row(self->timeline_json, tl, scratch) < 0 || !(tl_json = rf_str(scratch, 0)))
        goto rows_fail;
    if (rf_row(self->event_csv, cell, ev_csv) < 0 || rf_row(self->event_json, cell, ev_json) < 0)
        goto rows_fail;
    rid = PyObject_Str(f[F_RECORD_ID]);
    key = rid ? PyTuple_Pack(4, iso, f[F_DEVICE], rid, index) : NULL;
    *row = key ? PyTuple_Pack(3, key, tl_csv, tl_json) : NULL;
    if (!*row) goto rows_fail;
    Py_DECREF(key), Py_DECREF(rid), Py_DECREF(tl_csv), Py_DECREF(tl_json);
    Py_DECREF(message), Py_DECREF(iso), Py_DECREF(stamp);
    return 1;
rows_fail:
    ev_csv->len = csv_at, ev_json->len = json_at;
    Py_XDECREF(key), Py_XDECREF(rid), Py_XDECREF(tl_csv), Py_XDECREF(tl_json);
    Py_DECREF(message);
    goto fail;
fail:
    Py_DECREF(iso), Py_DECREF(stamp);
    return -1;
not_ours:
    Py_DECREF(iso), Py_DECREF(stamp);
    return 0;
}

/* The event's three outputs into ev_csv / ev_json (appended) and *row (new); 1 done, 0 not a
 * plain event (nothing written), -1 error set. */
static int one_event(EventLines *self, PyObject *ev, PyObject *index, rf_buf *ev_csv,
                     rf_buf *ev_json, rf_buf *scratch, PyObject **row) {
    if (Py_TYPE(ev) != (PyTypeObject *)self->event_type) return 0;
    PyObject *cell[EVENT_WIDTH];
    for (int i = 0; i < EVENT_WIDTH; i++)
        if (!(cell[i] = *(PyObject **)((char *)ev + self->offset[i])))
            return 0; /* an unset slot: the reference raises its AttributeError */
    for (int i = 0; i < EVENT_WIDTH; i++) Py_INCREF(cell[i]);
    PyObject *held[EVENT_WIDTH]; /* event_rows puts the time's text in cell */
    memcpy(held, cell, sizeof held);
    int rc = event_rows(self, cell, index, ev_csv, ev_json, scratch, row);
    for (int i = 0; i < EVENT_WIDTH; i++) Py_DECREF(held[i]);
    return rc;
}

/* -- the type -------------------------------------------------------------------------------- */

static PyObject *render(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {
    EventLines *self = (EventLines *)op;
    if (nargs != 2) return PyErr_Format(PyExc_TypeError, "render(events, index)");
    PyObject *seq = PySequence_Tuple(args[0]); /* the fallback cannot change it under us */
    if (!seq) return NULL;
    PyObject *index = args[1];
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    PyObject *rows = PyList_New(n), *csv_text = NULL, *json_text = NULL, *out = NULL;
    rf_buf ev_csv = {NULL, 0, 0, 0, 0}, ev_json = {NULL, 0, 0, 0, 0}, scratch = {NULL, 0, 0, 0, 0};
    if (!rows) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *ev = PyTuple_GET_ITEM(seq, i), *row = NULL;
        int rc = one_event(self, ev, index, &ev_csv, &ev_json, &scratch, &row);
        if (rc < 0) goto done;
        if (rc == 0) { /* the reference writes this one */
            PyObject *got = PyObject_CallFunctionObjArgs(self->fallback, ev, index, NULL);
            if (!got) goto done;
            if (!PyTuple_CheckExact(got) || PyTuple_GET_SIZE(got) != 3 ||
                !PyUnicode_Check(PyTuple_GET_ITEM(got, 0)) ||
                !PyUnicode_Check(PyTuple_GET_ITEM(got, 1))) {
                Py_DECREF(got);
                PyErr_SetString(PyExc_TypeError, "fallback must return (str, str, row)");
                goto done;
            }
            if (rf_text(&ev_csv, PyTuple_GET_ITEM(got, 0)) < 0 ||
                rf_text(&ev_json, PyTuple_GET_ITEM(got, 1)) < 0) {
                Py_DECREF(got);
                goto done;
            }
            row = Py_NewRef(PyTuple_GET_ITEM(got, 2));
            Py_DECREF(got);
        }
        PyList_SET_ITEM(rows, i, row);
    }
    csv_text = rf_str(&ev_csv, 0);
    json_text = csv_text ? rf_str(&ev_json, 0) : NULL;
    if (json_text) out = PyTuple_Pack(3, csv_text, json_text, rows);
done:
    rf_free(&ev_csv), rf_free(&ev_json), rf_free(&scratch);
    Py_XDECREF(csv_text), Py_XDECREF(json_text), Py_XDECREF(rows);
    Py_DECREF(seq);
    return out;
}

#define EL_OBJECTS(X)                                                                          \
    X(event_type) X(event_csv) X(event_json) X(timeline_csv) X(timeline_json) X(descriptions)  \
    X(fallback) X(no_description) X(empty) X(failure) X(none_text) X(colon) X(space) X(open) \
    X(close) X(error)

static int el_traverse(PyObject *op, visitproc visit, void *arg) {
    EventLines *self = (EventLines *)op;
    Py_VISIT(Py_TYPE(op));
#define VISIT(name) Py_VISIT(self->name);
    EL_OBJECTS(VISIT)
#undef VISIT
    return 0;
}

static int el_clear(PyObject *op) {
    EventLines *self = (EventLines *)op;
#define CLEAR(name) Py_CLEAR(self->name);
    EL_OBJECTS(CLEAR)
#undef CLEAR
    return 0;
}

static void el_dealloc(PyObject *op) {
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    el_clear(op);
    type->tp_free(op);
    Py_DECREF(type);
}

/* The slot offset of `name` in `type`: a dataclass(slots=True) field is a member descriptor of
 * an object slot. -1 with an error set otherwise. */
static Py_ssize_t slot_offset(PyObject *type, PyObject *name) {
    PyObject *d = PyObject_GetAttr(type, name);
    if (!d) return -1;
    Py_ssize_t off = -1;
    if (Py_IS_TYPE(d, &PyMemberDescr_Type) &&
        ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX &&
        PyType_IsSubtype(PyDescr_TYPE(d), (PyTypeObject *)type))
        off = ((PyMemberDescrObject *)d)->d_member->offset;
    else
        PyErr_Format(PyExc_TypeError, "%R is not a slot of an object", name);
    Py_DECREF(d);
    return off;
}

static int want_format(PyObject *o, int kind, Py_ssize_t width, const char *what) {
    Py_ssize_t got;
    if (rf_kind(o, &got) == kind && got == width) return 0;
    PyErr_Format(PyExc_TypeError, "%s must be a %s of width %zd", what,
                 kind == RF_CSV ? "CsvFormat" : "JsonFormat", width);
    return -1;
}

static PyObject *el_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *event_type, *fields, *formats[4], *descriptions, *fallback;
    static char *kwlist[] = {"event_type", "fields", "event_csv", "event_json", "timeline_csv",
                             "timeline_json", "descriptions", "fallback", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!OOOOOO!O:EventLines", kwlist, &PyType_Type,
                                     &event_type, &fields, &formats[0], &formats[1], &formats[2],
                                     &formats[3], &PyDict_Type, &descriptions, &fallback))
        return NULL;
    if (want_format(formats[0], RF_CSV, EVENT_WIDTH, "event_csv") < 0 ||
        want_format(formats[1], RF_JSON, EVENT_WIDTH, "event_json") < 0 ||
        want_format(formats[2], RF_CSV, TIMELINE_WIDTH, "timeline_csv") < 0 ||
        want_format(formats[3], RF_JSON, TIMELINE_WIDTH, "timeline_json") < 0)
        return NULL;
    if (!PyCallable_Check(fallback)) return PyErr_Format(PyExc_TypeError, "fallback: callable");
    PyObject *seq = PySequence_Fast(fields, "fields must be a sequence of names");
    if (!seq) return NULL;
    if (PySequence_Fast_GET_SIZE(seq) != EVENT_WIDTH) {
        Py_DECREF(seq);
        return PyErr_Format(PyExc_ValueError, "fields: %d names wanted", EVENT_WIDTH);
    }
    EventLines *self = (EventLines *)type->tp_alloc(type, 0);
    if (!self) goto fail;
    for (int k = 0; k < F_NAMED; k++) self->at[k] = -1;
    for (int i = 0; i < EVENT_WIDTH; i++) {
        PyObject *name = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyUnicode_Check(name)) {
            PyErr_SetString(PyExc_TypeError, "fields must be str");
            goto fail;
        }
        if ((self->offset[i] = slot_offset(event_type, name)) < 0) goto fail;
        for (int k = 0; k < F_NAMED; k++)
            if (PyUnicode_CompareWithASCIIString(name, NAMED[k]) == 0) self->at[k] = i;
    }
    for (int k = 0; k < F_NAMED; k++)
        if (self->at[k] < 0) {
            PyErr_Format(PyExc_ValueError, "fields lack %s", NAMED[k]);
            goto fail;
        }
    self->event_type = Py_NewRef(event_type);
    self->event_csv = Py_NewRef(formats[0]), self->event_json = Py_NewRef(formats[1]);
    self->timeline_csv = Py_NewRef(formats[2]), self->timeline_json = Py_NewRef(formats[3]);
    /* a copy: the descriptions it reads cannot change under it */
    self->fallback = Py_NewRef(fallback);
    if (!(self->descriptions = PyDict_Copy(descriptions))) goto fail;
    if (!(self->no_description = PyUnicode_FromString("Event Recorded")) ||
        !(self->empty = PyUnicode_FromString("")) ||
        !(self->failure = PyUnicode_FromString("failure")) ||
        !(self->none_text = PyUnicode_FromString("None")) ||
        !(self->colon = PyUnicode_FromString(": ")) || !(self->space = PyUnicode_FromString(" ")) ||
        !(self->open = PyUnicode_FromString(" [")) || !(self->close = PyUnicode_FromString("]")) ||
        !(self->error = PyUnicode_FromString(" error ")))
        goto fail;
    Py_DECREF(seq);
    return (PyObject *)self;
fail:
    Py_DECREF(seq);
    Py_XDECREF(self);
    return NULL;
}

static PyMethodDef el_methods[] = {
    {"render", (PyCFunction)(void (*)(void))render, METH_FASTCALL,
     "render(events, index) -> (events CSV text, events JSONL text, timeline rows)."},
    {NULL, NULL, 0, NULL},
};

int rf_add_event_lines(PyObject *m) {
    PyDateTime_IMPORT;
    if (!PyDateTimeAPI) return -1;
    PyType_Slot slots[] = {
        {Py_tp_doc, NULL},
        {Py_tp_new, (void *)el_new},
        {Py_tp_dealloc, (void *)el_dealloc},
        {Py_tp_traverse, (void *)el_traverse},
        {Py_tp_clear, (void *)el_clear},
        {Py_tp_methods, el_methods},
        {0, NULL},
    };
    slots[0].pfunc = (void *)"EventLines(event_type, fields, event_csv, event_json, timeline_csv, "
                             "timeline_json, descriptions, fallback): an input's event lines.";
    PyType_Spec spec = {"hpforensics._rowfmt.EventLines", (int)sizeof(EventLines), 0,
                        Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, slots};
    PyObject *t = PyType_FromModuleAndSpec(m, &spec, NULL);
    if (!t) return -1;
    int rc = PyModule_AddObjectRef(m, "EventLines", t);
    Py_DECREF(t);
    return rc;
}
