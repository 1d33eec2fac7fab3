/* The common shape of a record the Rust parser renders as JSON, read in C.
 *
 * readers.raw_from_json() turns the decoded JSON of each kept record into a RawRecord; on a
 * dense update log that Python walk (dict look-ups, type tests, one comprehension over the
 * EventData) costs more than the parser's own rendering. `record_fields(obj)` does the same walk
 * for the shape nearly every record has (System fields of plain types, EventData of named
 * values that are strings, integers, booleans or null, no UserData) and returns None for
 * anything else, which the Python walk then reads as before: what it returns is, by
 * construction, what the Python walk gives for that shape (tests/evtx/test_evtx_record_fields.py
 * compares both on every record of the real logs and of the sample fleet). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* d[key] with Python's `d.get(key)` meaning (NULL: absent; a borrowed reference). */
static PyObject *get(PyObject *d, const char *key) { return PyDict_GetItemString(d, key); }

/* `value or ""` for a str field: 1 = *out set (new reference), 0 = not the common shape. */
static int text_or_empty(PyObject *value, PyObject **out) {
    if (value == NULL || value == Py_None) {
        *out = PyUnicode_FromStringAndSize("", 0);
        return *out != NULL ? 1 : -1;
    }
    if (!PyUnicode_CheckExact(value)) return 0;
    *out = Py_NewRef(value); /* "" stays "" */
    return 1;
}

/* `int(value or 0)` for an exact int or null / absent: 1 = *out set, 0 = not the shape. */
static int int_or_zero(PyObject *value, long long *out) {
    if (value == NULL || value == Py_None) {
        *out = 0;
        return 1;
    }
    if (!PyLong_CheckExact(value)) return 0;
    int overflow = 0;
    *out = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow || (*out == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* text_value() of one EventData value: str as is, int as str(), bool as true/false, null as "";
 * NULL with no error set: not the common shape. */
static PyObject *leaf_text(PyObject *v) {
    if (PyUnicode_CheckExact(v)) return Py_NewRef(v);
    if (v == Py_None) return PyUnicode_FromStringAndSize("", 0);
    if (v == Py_True) return PyUnicode_FromString("true");
    if (v == Py_False) return PyUnicode_FromString("false");
    if (PyLong_CheckExact(v)) return PyObject_Str(v);
    return NULL;
}

/* The flat EventData as {name: text} (without #attributes and Binary), or NULL (no error set)
 * when it holds a #text, a nested value or a value of another type. */
static PyObject *flat_data(PyObject *data) {
    PyObject *out = PyDict_New();
    if (!out) return NULL;
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(data, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) goto other;
        if (PyUnicode_CompareWithASCIIString(key, "#text") == 0) goto other;
        if (PyDict_Check(value) || PyList_Check(value)) goto other;
        if (PyUnicode_CompareWithASCIIString(key, "#attributes") == 0 ||
            PyUnicode_CompareWithASCIIString(key, "Binary") == 0)
            continue;
        PyObject *text = leaf_text(value);
        if (!text) {
            if (PyErr_Occurred()) goto fail;
            goto other;
        }
        int rc = PyDict_SetItem(out, key, text);
        Py_DECREF(text);
        if (rc < 0) goto fail;
    }
    return out;
other:
    Py_DECREF(out);
    return NULL;
fail:
    Py_DECREF(out);
    return NULL;
}

/* record_fields(decoded) -> None | (provider, event_id, record_id, channel, computer, data) */
PyObject *evs_record_fields(PyObject *self, PyObject *obj) {
    (void)self;
    if (!PyDict_CheckExact(obj)) Py_RETURN_NONE;
    PyObject *event = get(obj, "Event");
    if (!event || !PyDict_CheckExact(event)) Py_RETURN_NONE;
    PyObject *system = get(event, "System");
    if (!system || !PyDict_CheckExact(system)) Py_RETURN_NONE;
    PyObject *user = get(event, "UserData");
    if (user && PyObject_IsTrue(user) != 0) Py_RETURN_NONE; /* flattened in Python */

    /* Provider: {"#attributes": {"Name": ..} or {"EventSourceName": ..}} */
    PyObject *provider = get(system, "Provider");
    if (!provider || !PyDict_CheckExact(provider)) Py_RETURN_NONE;
    PyObject *attrs = get(provider, "#attributes");
    if (!attrs || !PyDict_CheckExact(attrs)) Py_RETURN_NONE;
    PyObject *name = get(attrs, "Name");
    if (!name || (PyUnicode_CheckExact(name) && PyUnicode_GET_LENGTH(name) == 0))
        name = get(attrs, "EventSourceName"); /* `Name or EventSourceName or ""` */
    if (name && !PyUnicode_CheckExact(name)) Py_RETURN_NONE;

    PyObject *eid = get(system, "EventID");
    if (eid && PyDict_CheckExact(eid)) eid = get(eid, "#text");
    long long event_id, record_id;
    if (!int_or_zero(eid, &event_id) || !int_or_zero(get(system, "EventRecordID"), &record_id))
        Py_RETURN_NONE;

    PyObject *data_in = get(event, "EventData");
    PyObject *data = NULL;
    if (data_in && data_in != Py_None) {
        if (!PyDict_CheckExact(data_in)) {
            if (PyObject_IsTrue(data_in) != 0) Py_RETURN_NONE; /* a list, text: Python's walk */
        } else if (PyDict_GET_SIZE(data_in) > 0) {
            data = flat_data(data_in);
            if (!data) {
                if (PyErr_Occurred()) return NULL;
                Py_RETURN_NONE;
            }
        }
    }
    if (!data && !(data = PyDict_New())) return NULL;

    PyObject *prov = NULL, *channel = NULL, *computer = NULL;
    int ok = text_or_empty(name, &prov);
    if (ok == 1) ok = text_or_empty(get(system, "Channel"), &channel);
    if (ok == 1) ok = text_or_empty(get(system, "Computer"), &computer);
    PyObject *out = NULL;
    if (ok == 1)
        out = Py_BuildValue("(OLLOOO)", prov, event_id, record_id, channel, computer, data);
    else if (ok == 0)
        out = Py_NewRef(Py_None);
    Py_XDECREF(prov);
    Py_XDECREF(channel);
    Py_XDECREF(computer);
    Py_DECREF(data);
    return out;
}
