/* A WAL frame's msgpack batch read straight into record objects: the slotted record classes of
 * shriven.events are allocated and their slots filled here, without the wire tuples the
 * pure-Python decoders read first (msgpack.unpackb, then a constructor call per record).
 *
 * Optional: shriven.events' decoders (decode_wires of unpack_batch) are the reference, used
 * when this module is not built, and tests/test_records_c.py checks that both give equal
 * records with fields of the same types, on random records and damaged payloads.
 *
 * setup(layouts, modes) is called once by shriven.events: per record type its class, the
 * member descriptors of its fields in declaration order (the slots this module fills) and a
 * kind per field; modes are the Kite mode names by code.
 *
 * decode_batch(payload) returns the list of records, or None when the payload is not plainly
 * records this module reads (not one msgpack array, an unknown type or layout version, too few
 * fields, a field of another msgpack type than the plain one, a string that is not UTF-8, a
 * uint64 above int64): the caller then takes the reference path, which decodes what it can and
 * raises the record decoder's error for the rest.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#include "msgpack_read.h"

#define MAX_TYPE 13
#define MAX_FIELDS 24

/* field kinds (setup's letters) */
enum {
    F_INT = 'i',     /* msgpack int -> int */
    F_STR = 's',     /* msgpack str -> str */
    F_BOOL = 'b',    /* msgpack bool -> bool */
    F_MODE = 'm',    /* Kite mode code -> its name */
    F_KITE = 'k',    /* flat int array of 3n -> tuple of n (price, qty, orders) */
    F_PAIRS = 'p',   /* array of [str, str] -> tuple of (str, str) */
    F_FLOATS = 'f',  /* array of [float64, float64] -> tuple of (float, float) */
    F_OPT_INT = 'o', /* an int that may be missing (added after layout 1): 0 then */
};

typedef struct {
    PyTypeObject *cls;
    int nfields;
    int required; /* fields after [type, version] that must be there */
    Py_ssize_t offset[MAX_FIELDS];
    char kind[MAX_FIELDS];
} Layout;

static Layout layouts[MAX_TYPE + 1];
static PyObject *modes[3];
static PyObject *zero;

/* ------------------------------------------------------------ values */

static PyObject *
val_int(Rd *r)
{
    int64_t v;
    if (rd_int(r, &v) < 0)
        return NULL;
    return PyLong_FromLongLong(v);
}

static PyObject *
val_str(Rd *r)
{
    const char *s;
    Py_ssize_t n;
    if (rd_str(r, &s, &n) < 0)
        return NULL;
    PyObject *out = PyUnicode_DecodeUTF8(s, n, "strict");
    if (out == NULL)
        PyErr_Clear(); /* msgpack's error, from the reference path */
    return out;
}

static PyObject *
val_bool(Rd *r)
{
    if (!need(r, 1))
        return NULL;
    unsigned char c = *r->p;
    if (c != 0xc2 && c != 0xc3)
        return NULL;
    r->p++;
    return Py_NewRef(c == 0xc3 ? Py_True : Py_False);
}

static int
rd_double(Rd *r, double *out)
{
    if (!need(r, 9) || *r->p != 0xcb)
        return -1;
    uint64_t bits = be(r->p + 1, 8);
    memcpy(out, &bits, 8);
    r->p += 9;
    return 0;
}

static PyObject *
val_kite_levels(Rd *r)
{
    Py_ssize_t n = rd_array(r);
    if (n < 0 || n % 3 != 0 || (size_t)n > (size_t)(r->end - r->p))
        return NULL;
    PyObject *out = PyTuple_New(n / 3);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n / 3; i++) {
        PyObject *lvl = PyTuple_New(3);
        if (lvl == NULL)
            goto fail;
        PyTuple_SET_ITEM(out, i, lvl);
        for (int j = 0; j < 3; j++) {
            PyObject *v = val_int(r);
            if (v == NULL)
                goto fail;
            PyTuple_SET_ITEM(lvl, j, v);
        }
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyObject *
val_pairs(Rd *r, int floats)
{
    Py_ssize_t n = rd_array(r);
    if (n < 0 || (size_t)n > (size_t)(r->end - r->p))
        return NULL;
    PyObject *out = PyTuple_New(n);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (rd_array(r) != 2)
            goto fail;
        PyObject *lvl = PyTuple_New(2);
        if (lvl == NULL)
            goto fail;
        PyTuple_SET_ITEM(out, i, lvl);
        for (int j = 0; j < 2; j++) {
            PyObject *v;
            if (floats) {
                double d;
                v = rd_double(r, &d) < 0 ? NULL : PyFloat_FromDouble(d);
            }
            else {
                v = val_str(r);
            }
            if (v == NULL)
                goto fail;
            PyTuple_SET_ITEM(lvl, j, v);
        }
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

/* ------------------------------------------------------------ records */

/* One record, or NULL: with an exception set on a memory error, without one when the caller
 * should take the reference path. */
static PyObject *
read_record(Rd *r)
{
    Py_ssize_t n = rd_array(r);
    int64_t type, version;
    if (n < 2 || rd_int(r, &type) < 0 || type < 1 || type > MAX_TYPE)
        return NULL;
    const Layout *lay = &layouts[type];
    /* Fields after the known ones (a later layout's) are left to the reference, which ignores
     * them once msgpack has read them whole. */
    if (lay->cls == NULL || rd_int(r, &version) < 0 || version != 1 || n - 2 < lay->required ||
        n - 2 > lay->nfields)
        return NULL;
    PyObject *obj = lay->cls->tp_alloc(lay->cls, 0);
    if (obj == NULL)
        return NULL;
    int i;
    for (i = 0; i < lay->nfields; i++) {
        PyObject *v;
        if (i >= n - 2) {
            v = Py_NewRef(zero); /* only an optional field can be missing: required says so */
        }
        else {
            switch (lay->kind[i]) {
            case F_INT:
            case F_OPT_INT:
                v = val_int(r);
                break;
            case F_STR:
                v = val_str(r);
                break;
            case F_BOOL:
                v = val_bool(r);
                break;
            case F_MODE: {
                int64_t code;
                v = rd_int(r, &code) < 0 || code < 0 || code > 2 ? NULL : Py_NewRef(modes[code]);
                break;
            }
            case F_KITE:
                v = val_kite_levels(r);
                break;
            case F_PAIRS:
                v = val_pairs(r, 0);
                break;
            default:
                v = val_pairs(r, 1);
                break;
            }
        }
        if (v == NULL)
            goto fail;
        *(PyObject **)((char *)obj + lay->offset[i]) = v;
    }
    return obj;
fail:
    Py_DECREF(obj); /* the class's dealloc clears the slots set so far */
    return NULL;
}

static PyObject *
decode_batch(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Rd r = {(const unsigned char *)view.buf, (const unsigned char *)view.buf + view.len};
    PyObject *out = NULL;
    Py_ssize_t n = rd_array(&r);
    if (n < 0 || (size_t)n > (size_t)(r.end - r.p))
        goto plain_no;
    out = PyList_New(n);
    if (out == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *rec = read_record(&r);
        if (rec == NULL) {
            if (PyErr_Occurred())
                Py_CLEAR(out);
            else
                goto plain_no;
            goto done;
        }
        PyList_SET_ITEM(out, i, rec);
    }
    if (r.p != r.end) /* bytes after the array: msgpack's ExtraData, from the reference */
        goto plain_no;
    goto done;
plain_no:
    Py_CLEAR(out);
    out = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&view);
    return out;
}

/* ------------------------------------------------------------ setup */

static PyObject *
setup(PyObject *self, PyObject *args)
{
    PyObject *table, *names;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &table, &PyTuple_Type, &names))
        return NULL;
    if (PyTuple_GET_SIZE(names) != 3) {
        PyErr_SetString(PyExc_ValueError, "setup: three Kite mode names");
        return NULL;
    }
    for (int i = 0; i < 3; i++)
        Py_XSETREF(modes[i], Py_NewRef(PyTuple_GET_ITEM(names, i)));
    for (Py_ssize_t t = 0; t < PyList_GET_SIZE(table); t++) {
        PyObject *cls, *descrs;
        const char *kinds;
        int code, required;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(table, t), "iO!O!si", &code, &PyType_Type, &cls,
                              &PyTuple_Type, &descrs, &kinds, &required))
            return NULL;
        Py_ssize_t nf = PyTuple_GET_SIZE(descrs);
        if (code < 1 || code > MAX_TYPE || nf > MAX_FIELDS || (Py_ssize_t)strlen(kinds) != nf) {
            PyErr_SetString(PyExc_ValueError, "setup: a layout out of range");
            return NULL;
        }
        Layout *lay = &layouts[code];
        for (Py_ssize_t i = 0; i < nf; i++) {
            PyObject *d = PyTuple_GET_ITEM(descrs, i);
            if (!PyObject_TypeCheck(d, &PyMemberDescr_Type)) {
                PyErr_SetString(PyExc_TypeError, "setup: a field that is not a slot");
                return NULL;
            }
            PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
            if (m->type != T_OBJECT_EX || ((PyDescrObject *)d)->d_type != (PyTypeObject *)cls) {
                PyErr_SetString(PyExc_TypeError, "setup: a slot of another kind or class");
                return NULL;
            }
            lay->offset[i] = m->offset;
            lay->kind[i] = kinds[i];
        }
        Py_XSETREF(lay->cls, (PyTypeObject *)Py_NewRef(cls));
        lay->nfields = (int)nf;
        lay->required = required;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"decode_batch", decode_batch, METH_O,
     "decode_batch(payload) -> list of records, or None: take the reference path."},
    {"setup", setup, METH_VARARGS, "setup(layouts, kite_modes): the record classes' slots."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_records", "A WAL frame's records built in C.", -1, methods,
};

PyMODINIT_FUNC
PyInit__records(void)
{
    zero = PyLong_FromLong(0);
    if (zero == NULL)
        return NULL;
    return PyModule_Create(&module);
}
