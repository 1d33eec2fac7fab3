/* EventLines: the events' output lines and the timeline's, in C.
 *
 *   EventLines(event_type, fields, event_csv, event_json, timeline_csv, timeline_json,
 *              descriptions, fallback, timeline_fallback)
 *   .render(events) -> (events CSV text, events JSONL text)        an input's, as it is read
 *   .order(events, derived_keys) -> [positions] | None             the timeline's order
 *   .timeline(items, csv_write, json_write, flush) -> n            the timeline, in order
 *
 * hpforensics/timeline/rows.py is the reference: `event_text_py`, `timeline_order_py` and
 * `timeline_lines_py` (event_values, timeline_values, the four renderers) define every byte
 * and the order, and the two fallbacks are them for one event. This reads each event's slots in place (the
 * dataclass's member offsets, found once from `fields`, the names in EVENT_COLUMNS order),
 * writes its time as rows.iso does and its timeline message as timeline_values does, and
 * renders the rows with the four renderers given (CsvFormat / JsonFormat of rows.EVENT_CSV
 * ...; a row they do not take goes to their Python renderer, as in their own lines()). An event
 * that is not a plain one (another type, an unset slot, a time that is not a UTC datetime, a
 * field of another type than the reference's arithmetic assumes here) goes to the fallback.
 *
 * The timeline is rendered at the end of a run, from the events the run holds anyway (their
 * lines are not kept or spilled to disk meanwhile): `timeline` writes the lines of the items
 * in the order given, an item an event or a (CSV line, JSON line) pair of str (the derived
 * rows), as UTF-8 bytes handed to the writers every `flush` bytes. A line that is not valid
 * text (a lone surrogate) raises, as a strict UTF-8 text file does. */
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
    PyObject *descriptions, *fallback, *timeline_fallback;
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

static int64_t micros(int64_t days, int h, int mi, int s, int us) {
    return ((days * 86400 + h * 3600 + mi * 60 + s) * 1000000) + us;
}

/* The microseconds since the epoch of a datetime's fields (its zone not applied). */
static int64_t datetime_micros(PyObject *t) {
    return micros(days_from_civil(PyDateTime_GET_YEAR(t), (unsigned)PyDateTime_GET_MONTH(t),
                                  (unsigned)PyDateTime_GET_DAY(t)),
                  PyDateTime_DATE_GET_HOUR(t), PyDateTime_DATE_GET_MINUTE(t),
                  PyDateTime_DATE_GET_SECOND(t), PyDateTime_DATE_GET_MICROSECOND(t));
}

/* int(t.timestamp() * 1_000_000) for a UTC datetime: timestamp() is the microseconds since the
 * epoch divided by 10**6, one correctly rounded division while they fit a double exactly (as
 * CPython's int true division does them), then one multiplication and a truncation. 0 (not
 * ours) past 2**53 microseconds (the year 2255). */
static int stamp_of(PyObject *t, long long *out) {
    int64_t us = datetime_micros(t);
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

/* The event's slots, in EVENT_COLUMNS order, as new references in cell: 1, or 0 when it is
 * not an exact event with every slot set (the reference raises its AttributeError then). */
static int event_cells(EventLines *self, PyObject *ev, PyObject **cell) {
    if (Py_TYPE(ev) != (PyTypeObject *)self->event_type) return 0;
    for (int i = 0; i < EVENT_WIDTH; i++)
        if (!(cell[i] = *(PyObject **)((char *)ev + self->offset[i]))) return 0;
    for (int i = 0; i < EVENT_WIDTH; i++) Py_INCREF(cell[i]);
    return 1;
}

static void drop_cells(PyObject **cell) {
    for (int i = 0; i < EVENT_WIDTH; i++) Py_DECREF(cell[i]);
}

/* rows.iso of the event's time into *iso (new): 1, 0 when it is neither None nor a UTC
 * datetime (the reference converts other zones), -1 error set. */
static int time_text(EventLines *self, PyObject *t, PyObject **iso) {
    if (t == Py_None) return *iso = Py_NewRef(self->empty), 1;
    if (!PyDateTime_CheckExact(t) || PyDateTime_DATE_GET_TZINFO(t) != PyDateTime_TimeZone_UTC)
        return 0;
    return (*iso = iso_text(t)) ? 1 : -1;
}

/* The event's timeline CSV and JSON lines appended to tl_csv / tl_json, from its fields `f`
 * and its time's text: 1 done, 0 not a plain event (nothing written), -1 error set (nothing
 * kept). As timeline_lines_py. */
static int timeline_into(EventLines *self, PyObject **f, PyObject *iso, rf_buf *tl_csv,
                         rf_buf *tl_json, rf_buf *scratch) {
    static const int TEXT[] = {F_DEVICE, F_CATEGORY, F_KB, F_TITLE, F_ERROR_CODE, F_RESULT,
                               F_OS_BUILD, F_UPDATE_CLASS, F_DETAIL};
    for (size_t k = 0; k < sizeof TEXT / sizeof *TEXT; k++)
        if (!PyUnicode_CheckExact(f[TEXT[k]])) return 0;
    if (!PyLong_CheckExact(f[F_RECORD_ID])) return 0;
    PyObject *month = f[F_RELEASE_MONTH];
    int has_class = PyUnicode_GET_LENGTH(f[F_UPDATE_CLASS]) > 0;
    if (has_class && month != Py_None && !PyUnicode_CheckExact(month)) return 0;
    PyObject *t = f[F_TIME], *stamp;
    if (t == Py_None) {
        stamp = Py_NewRef(self->empty);
    } else {
        long long us;
        if (!stamp_of(t, &us)) return 0;
        if (!(stamp = PyLong_FromLongLong(us))) return -1;
    }
    PyObject *desc = PyDict_GetItemWithError(self->descriptions, f[F_CATEGORY]);
    if (!desc && PyErr_Occurred()) goto fail;
    if (!desc) desc = self->no_description;
    if (!PyUnicode_CheckExact(desc)) {
        Py_DECREF(stamp);
        return 0;
    }
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
    size_t csv_at = tl_csv->len, json_at = tl_json->len;
    int rc = rf_row(self->timeline_csv, tl, tl_csv) < 0 ||
                     rf_row(self->timeline_json, tl, tl_json) < 0
                 ? -1
                 : 1;
    if (rc < 0) tl_csv->len = csv_at, tl_json->len = json_at;
    Py_DECREF(message);
    Py_DECREF(stamp);
    return rc;
fail:
    Py_DECREF(stamp);
    return -1;
}

/* One event's events CSV and JSON lines appended to ev_csv / ev_json: 1 done, 0 not a plain
 * event (nothing written), -1 error set. */
static int event_into(EventLines *self, PyObject *ev, rf_buf *ev_csv, rf_buf *ev_json) {
    PyObject *cell[EVENT_WIDTH], *iso;
    if (!event_cells(self, ev, cell)) return 0;
    int rc = time_text(self, cell[self->at[F_TIME]], &iso);
    if (rc == 1) {
        PyObject *t = cell[self->at[F_TIME]];
        cell[self->at[F_TIME]] = iso;
        size_t csv_at = ev_csv->len, json_at = ev_json->len;
        if (rf_row(self->event_csv, cell, ev_csv) < 0 ||
            rf_row(self->event_json, cell, ev_json) < 0) {
            ev_csv->len = csv_at, ev_json->len = json_at;
            rc = -1;
        }
        cell[self->at[F_TIME]] = t;
        Py_DECREF(iso);
    }
    drop_cells(cell);
    return rc;
}

/* A (str, str) pair from a fallback, or NULL with TypeError set. */
static PyObject *two_lines(PyObject *got, const char *who) {
    if (got && (!PyTuple_CheckExact(got) || PyTuple_GET_SIZE(got) != 2 ||
                !PyUnicode_Check(PyTuple_GET_ITEM(got, 0)) ||
                !PyUnicode_Check(PyTuple_GET_ITEM(got, 1)))) {
        Py_DECREF(got);
        PyErr_Format(PyExc_TypeError, "%s must return (str, str)", who);
        return NULL;
    }
    return got;
}

/* -- the type -------------------------------------------------------------------------------- */

/* render(events) -> (events CSV text, events JSONL text) */
static PyObject *render(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {
    EventLines *self = (EventLines *)op;
    if (nargs != 1) return PyErr_Format(PyExc_TypeError, "render(events)");
    PyObject *seq = PySequence_Tuple(args[0]); /* the fallback cannot change it under us */
    if (!seq) return NULL;
    PyObject *csv_text = NULL, *json_text = NULL, *out = NULL;
    rf_buf ev_csv = {NULL, 0, 0, 0, 0}, ev_json = {NULL, 0, 0, 0, 0};
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(seq); i++) {
        PyObject *ev = PyTuple_GET_ITEM(seq, i);
        int rc = event_into(self, ev, &ev_csv, &ev_json);
        if (rc < 0) goto done;
        if (rc == 0) { /* the reference writes this one */
            PyObject *got = two_lines(PyObject_CallOneArg(self->fallback, ev), "fallback");
            if (!got) goto done;
            rc = rf_text(&ev_csv, PyTuple_GET_ITEM(got, 0)) < 0 ||
                 rf_text(&ev_json, PyTuple_GET_ITEM(got, 1)) < 0;
            Py_DECREF(got);
            if (rc) goto done;
        }
    }
    csv_text = rf_str(&ev_csv, 0);
    json_text = csv_text ? rf_str(&ev_json, 0) : NULL;
    if (json_text) out = PyTuple_Pack(2, csv_text, json_text);
done:
    rf_free(&ev_csv), rf_free(&ev_json);
    Py_XDECREF(csv_text), Py_XDECREF(json_text);
    Py_DECREF(seq);
    return out;
}

/* The timeline's order. Its key is (time's text, device, record ID as text), as
 * timeline_key_py gives it, ties kept in the order given. Here the time is compared as
 * microseconds, as its text sorts (fixed width, years 1-9999; None, whose text is "", first),
 * the device as str compares, the record ID's decimal text bytewise (ASCII: as str compares),
 * and the position last, which makes the sort stable. */
typedef struct {
    int64_t t;
    PyObject *device; /* borrowed: the caller's events and keys hold them, and no Python code
                         runs while the array lives */
    char rid[24];
    unsigned char rid_len;
    Py_ssize_t at;
} order_key;

static int cmp_order(const void *pa, const void *pb) {
    const order_key *a = (const order_key *)pa, *b = (const order_key *)pb;
    if (a->t != b->t) return a->t < b->t ? -1 : 1;
    if (a->device != b->device) {
        int c = PyUnicode_Compare(a->device, b->device); /* exact str: cannot fail */
        if (c) return c;
    }
    size_t n = a->rid_len < b->rid_len ? a->rid_len : b->rid_len;
    int c = memcmp(a->rid, b->rid, n);
    if (c) return c;
    if (a->rid_len != b->rid_len) return a->rid_len < b->rid_len ? -1 : 1;
    return a->at < b->at ? -1 : a->at > b->at;
}

#define NO_TIME INT64_MIN

/* An event's key: 1, or 0 when it is not a plain event with a device of exact str and an int
 * record ID of at most 64 bits. */
static int event_key(EventLines *self, PyObject *ev, order_key *k) {
    if (Py_TYPE(ev) != (PyTypeObject *)self->event_type) return 0;
    PyObject *t = *(PyObject **)((char *)ev + self->offset[self->at[F_TIME]]);
    PyObject *device = *(PyObject **)((char *)ev + self->offset[self->at[F_DEVICE]]);
    PyObject *rid = *(PyObject **)((char *)ev + self->offset[self->at[F_RECORD_ID]]);
    if (!t || !device || !rid || !PyUnicode_CheckExact(device) || !PyLong_CheckExact(rid))
        return 0;
    if (t == Py_None) {
        k->t = NO_TIME;
    } else if (PyDateTime_CheckExact(t) &&
               PyDateTime_DATE_GET_TZINFO(t) == PyDateTime_TimeZone_UTC) {
        k->t = datetime_micros(t);
    } else {
        return 0;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(rid, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    k->rid_len = (unsigned char)snprintf(k->rid, sizeof k->rid, "%lld", v);
    k->device = device;
    return 1;
}

static int days_in_month(int y, int m) {
    static const int DAYS[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return DAYS[m - 1] + (m == 2 && leap);
}

/* Two ASCII digits at p, or -1. */
static int digits2(const char *p) {
    return p[0] >= '0' && p[0] <= '9' && p[1] >= '0' && p[1] <= '9'
               ? (p[0] - '0') * 10 + (p[1] - '0') : -1;
}

/* A derived row's key (time's text, device, record ID's text): 1, or 0 when its text is not
 * rows.iso's form (YYYY-MM-DDTHH:MM:SS.ffffffZ, or "") or it is not three str. */
static int derived_key(PyObject *key, order_key *k) {
    if (!PyTuple_CheckExact(key) || PyTuple_GET_SIZE(key) != 3) return 0;
    PyObject *iso = PyTuple_GET_ITEM(key, 0), *device = PyTuple_GET_ITEM(key, 1),
             *rid = PyTuple_GET_ITEM(key, 2);
    if (!PyUnicode_CheckExact(iso) || !PyUnicode_CheckExact(device) ||
        !PyUnicode_CheckExact(rid) || !PyUnicode_IS_ASCII(iso) || !PyUnicode_IS_ASCII(rid) ||
        PyUnicode_GET_LENGTH(rid) >= (Py_ssize_t)sizeof k->rid)
        return 0;
    const char *p = (const char *)PyUnicode_DATA(iso);
    if (PyUnicode_GET_LENGTH(iso) == 0) {
        k->t = NO_TIME;
    } else {
        if (PyUnicode_GET_LENGTH(iso) != 27 || p[4] != '-' || p[7] != '-' || p[10] != 'T' ||
            p[13] != ':' || p[16] != ':' || p[19] != '.' || p[26] != 'Z')
            return 0;
        int y1 = digits2(p), y2 = digits2(p + 2), mo = digits2(p + 5), d = digits2(p + 8),
            h = digits2(p + 11), mi = digits2(p + 14), s = digits2(p + 17),
            u1 = digits2(p + 20), u2 = digits2(p + 22), u3 = digits2(p + 24);
        if ((y1 | y2 | mo | d | h | mi | s | u1 | u2 | u3) < 0 || mo < 1 || mo > 12 || d < 1 ||
            d > days_in_month(y1 * 100 + y2, mo) || h > 23 || mi > 59 || s > 59)
            return 0; /* not a time (its microseconds would not sort as its text does) */
        k->t = micros(days_from_civil(y1 * 100 + y2, (unsigned)mo, (unsigned)d), h, mi, s,
                      u1 * 10000 + u2 * 100 + u3);
    }
    k->rid_len = (unsigned char)PyUnicode_GET_LENGTH(rid);
    memcpy(k->rid, PyUnicode_DATA(rid), k->rid_len);
    k->device = device;
    return 1;
}

/* order(events, derived_keys) -> [positions] | None: the timeline's items (the events, then
 * the derived rows) as positions in that concatenation, in the timeline's order; None when an
 * event or a key is not one this takes (the caller sorts by timeline_key_py then). */
static PyObject *order(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {
    EventLines *self = (EventLines *)op;
    if (nargs != 2) return PyErr_Format(PyExc_TypeError, "order(events, derived_keys)");
    PyObject *events = PySequence_Tuple(args[0]), *derived = NULL, *out = NULL;
    if (!events || !(derived = PySequence_Tuple(args[1]))) goto done;
    Py_ssize_t n = PyTuple_GET_SIZE(events), m = PyTuple_GET_SIZE(derived), i;
    order_key *keys = PyMem_Malloc((size_t)(n + m ? n + m : 1) * sizeof *keys);
    if (!keys) {
        PyErr_NoMemory();
        goto done;
    }
    int ours = 1;
    for (i = 0; ours && i < n + m; i++) {
        keys[i].at = i;
        ours = i < n ? event_key(self, PyTuple_GET_ITEM(events, i), &keys[i])
                     : derived_key(PyTuple_GET_ITEM(derived, i - n), &keys[i]);
    }
    if (ours) {
        qsort(keys, (size_t)(n + m), sizeof *keys, cmp_order);
        out = PyList_New(n + m);
        for (i = 0; out && i < n + m; i++) {
            PyObject *at = PyLong_FromSsize_t(keys[i].at);
            if (!at) Py_CLEAR(out);
            else PyList_SET_ITEM(out, i, at);
        }
    } else {
        out = Py_NewRef(Py_None);
    }
    PyMem_Free(keys);
done:
    Py_XDECREF(events);
    Py_XDECREF(derived);
    return out;
}

/* A line from Python, as UTF-8: strict, so a lone surrogate raises as a UTF-8 text file does. */
static int put_line(rf_buf *b, PyObject *s) {
    if (PyUnicode_IS_ASCII(s))
        return rf_put(b, (const char *)PyUnicode_DATA(s), (size_t)PyUnicode_GET_LENGTH(s));
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(s, &n);
    return p ? rf_put(b, p, (size_t)n) : -1;
}

/* A line rendered here from `at` on holds a lone surrogate (written in its 3-byte form): raise
 * what the strict encoder raises for it, and drop the line. */
static int refuse_surrogate(rf_buf *b, size_t at) {
    PyObject *line = rf_str(b, at);
    if (line && PyUnicode_AsUTF8AndSize(line, NULL))
        PyErr_SetString(PyExc_ValueError, "timeline: a line holds a lone surrogate");
    Py_XDECREF(line);
    b->len = at;
    return -1;
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

/* One timeline item's lines into csv / json: an event (rendered here, or by the fallback) or
 * a (CSV line, JSON line) pair of str. 0 or -1 with an error set. */
static int timeline_item(EventLines *self, PyObject *item, rf_buf *csv, rf_buf *json,
                         rf_buf *scratch) {
    if (PyTuple_CheckExact(item)) {
        if (PyTuple_GET_SIZE(item) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(item, 0)) ||
            !PyUnicode_Check(PyTuple_GET_ITEM(item, 1))) {
            PyErr_SetString(PyExc_TypeError, "timeline: an item is not an event or two lines");
            return -1;
        }
        return put_line(csv, PyTuple_GET_ITEM(item, 0)) < 0 ||
               put_line(json, PyTuple_GET_ITEM(item, 1)) < 0 ? -1 : 0;
    }
    PyObject *cell[EVENT_WIDTH], *f[F_NAMED], *iso;
    int rc = 0;
    if (event_cells(self, item, cell)) {
        rc = time_text(self, cell[self->at[F_TIME]], &iso);
        if (rc == 1) {
            for (int k = 0; k < F_NAMED; k++) f[k] = cell[self->at[k]];
            size_t csv_at = csv->len, json_at = json->len;
            csv->surrogate = json->surrogate = 0;
            rc = timeline_into(self, f, iso, csv, json, scratch);
            if (rc == 1 && csv->surrogate) {
                json->len = json_at;
                rc = refuse_surrogate(csv, csv_at);
            } else if (rc == 1 && json->surrogate) {
                csv->len = csv_at;
                rc = refuse_surrogate(json, json_at);
            }
            Py_DECREF(iso);
        }
        drop_cells(cell);
    }
    if (rc != 0) return rc < 0 ? -1 : 0;
    PyObject *got = two_lines(PyObject_CallOneArg(self->timeline_fallback, item),
                              "timeline_fallback");
    if (!got) return -1;
    rc = put_line(csv, PyTuple_GET_ITEM(got, 0)) < 0 ||
         put_line(json, PyTuple_GET_ITEM(got, 1)) < 0;
    Py_DECREF(got);
    return rc ? -1 : 0;
}

/* timeline(items, csv_write, json_write, flush) -> items written */
static PyObject *timeline(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {
    EventLines *self = (EventLines *)op;
    if (nargs != 4) return PyErr_Format(PyExc_TypeError,
                                        "timeline(items, csv_write, json_write, flush)");
    Py_ssize_t flush = PyLong_AsSsize_t(args[3]);
    if (flush == -1 && PyErr_Occurred()) return NULL;
    if (flush < 1) return PyErr_Format(PyExc_ValueError, "timeline: flush must be >= 1");
    PyObject *seq = PySequence_Tuple(args[0]);
    if (!seq) return NULL;
    rf_buf csv = {NULL, 0, 0, 0, 0}, json = {NULL, 0, 0, 0, 0}, scratch = {NULL, 0, 0, 0, 0};
    PyObject *result = NULL;
    Py_ssize_t i, n = PyTuple_GET_SIZE(seq);
    for (i = 0; i < n; i++) {
        if (timeline_item(self, PyTuple_GET_ITEM(seq, i), &csv, &json, &scratch) < 0) goto done;
        if ((Py_ssize_t)csv.len >= flush || (Py_ssize_t)json.len >= flush) {
            if (hand_over(&csv, args[1]) < 0 || hand_over(&json, args[2]) < 0) goto done;
        }
    }
    if (hand_over(&csv, args[1]) < 0 || hand_over(&json, args[2]) < 0) goto done;
    result = PyLong_FromSsize_t(n);
done:
    rf_free(&csv), rf_free(&json), rf_free(&scratch);
    Py_DECREF(seq);
    return result;
}

#define EL_OBJECTS(X)                                                                          \
    X(event_type) X(event_csv) X(event_json) X(timeline_csv) X(timeline_json) X(descriptions)  \
    X(fallback) X(timeline_fallback) X(no_description) X(empty) X(failure)                   \
    X(none_text) X(colon) X(space) X(open) X(close) X(error)

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
    PyObject *event_type, *fields, *formats[4], *descriptions, *fallback, *timeline_fallback;
    static char *kwlist[] = {"event_type", "fields", "event_csv", "event_json", "timeline_csv",
                             "timeline_json", "descriptions", "fallback", "timeline_fallback",
                             NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!OOOOOO!OO:EventLines", kwlist, &PyType_Type,
                                     &event_type, &fields, &formats[0], &formats[1], &formats[2],
                                     &formats[3], &PyDict_Type, &descriptions, &fallback,
                                     &timeline_fallback))
        return NULL;
    if (want_format(formats[0], RF_CSV, EVENT_WIDTH, "event_csv") < 0 ||
        want_format(formats[1], RF_JSON, EVENT_WIDTH, "event_json") < 0 ||
        want_format(formats[2], RF_CSV, TIMELINE_WIDTH, "timeline_csv") < 0 ||
        want_format(formats[3], RF_JSON, TIMELINE_WIDTH, "timeline_json") < 0)
        return NULL;
    if (!PyCallable_Check(fallback) || !PyCallable_Check(timeline_fallback))
        return PyErr_Format(PyExc_TypeError, "the fallbacks must be callable");
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
    self->timeline_fallback = Py_NewRef(timeline_fallback);
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
     "render(events) -> (events CSV text, events JSONL text)."},
    {"order", (PyCFunction)(void (*)(void))order, METH_FASTCALL,
     "order(events, derived_keys) -> [positions] | None: the timeline's order (see events.c)."},
    {"timeline", (PyCFunction)(void (*)(void))timeline, METH_FASTCALL,
     "timeline(items, csv_write, json_write, flush) -> items: their timeline lines as UTF-8, "
     "handed to the writers every `flush` bytes."},
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
                             "timeline_json, descriptions, fallback, timeline_fallback): "
                             "the events' and the timeline's lines.";
    PyType_Spec spec = {"hpforensics._rowfmt.EventLines", (int)sizeof(EventLines), 0,
                        Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, slots};
    PyObject *t = PyType_FromModuleAndSpec(m, &spec, NULL);
    if (!t) return -1;
    int rc = PyModule_AddObjectRef(m, "EventLines", t);
    Py_DECREF(t);
    return rc;
}
