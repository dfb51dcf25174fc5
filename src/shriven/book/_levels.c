/* The book's hot path in C: decimal strings -> doubles and one side's level changes.
 *
 * Optional: shriven.book.levels holds the pure-Python reference of every function here, used when
 * this module is not built, and tests/book/test_levels_accel.py checks that both give the same
 * results on any input. A side is a dict {price: quantity} and a list of its prices sorted with
 * the best LAST (bids ascending, asks descending), so inserts and deletes near the top move few
 * pointers.
 *
 * Numbers: a str is read as Python's float() reads it. The common case, ASCII digits with at most
 * one '.', at most 15 significant digits and 22 decimals, is converted as mantissa / 10^k: both are
 * exact doubles and one IEEE division rounds correctly (Clinger's fast path), so the result is
 * the one float() gives. Anything else goes through float() itself. A value that is not a finite,
 * non-negative number makes the whole call fail before anything changes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#define STACK_LEVELS 64

#include "../fast_decimal.h"
#include "../msgpack_write.h"

/* The value of one price or quantity; -1 with an exception set when it is not a finite,
 * non-negative number. */
static int
to_double(PyObject *v, double *out)
{
    double x;
    if (PyFloat_CheckExact(v)) {
        x = PyFloat_AS_DOUBLE(v);
    }
    else {
        if (PyUnicode_CheckExact(v) && PyUnicode_IS_ASCII(v)) {
            if (fast_decimal((const char *)PyUnicode_DATA(v), PyUnicode_GET_LENGTH(v), out))
                return 0;
        }
        PyObject *f = PyObject_CallOneArg((PyObject *)&PyFloat_Type, v); /* float(v) */
        if (f == NULL)
            return -1;
        x = PyFloat_AS_DOUBLE(f);
        Py_DECREF(f);
    }
    if (!(x >= 0.0 && x < INFINITY)) { /* false for NaN too */
        PyErr_Format(PyExc_ValueError, "not a finite, non-negative number: %R", v);
        return -1;
    }
    *out = x;
    return 0;
}

/* Read every (price, quantity) of a sequence into pairs[2 * i], pairs[2 * i + 1]. */
static int
read_levels(PyObject *seq, Py_ssize_t n, double *pairs)
{
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *lvl = items[i];
        PyObject *p, *q;
        if (PyTuple_CheckExact(lvl) && PyTuple_GET_SIZE(lvl) == 2) {
            p = PyTuple_GET_ITEM(lvl, 0);
            q = PyTuple_GET_ITEM(lvl, 1);
        }
        else if (PyList_CheckExact(lvl) && PyList_GET_SIZE(lvl) == 2) {
            p = PyList_GET_ITEM(lvl, 0);
            q = PyList_GET_ITEM(lvl, 1);
        }
        else {
            PyErr_Format(PyExc_ValueError, "a level must be a (price, quantity) pair, not %R",
                         lvl);
            return -1;
        }
        if (to_double(p, &pairs[2 * i]) < 0 || to_double(q, &pairs[2 * i + 1]) < 0)
            return -1;
    }
    return 0;
}

/* Index of the first key not before x in a list sorted best last (ascending, or descending). */
static Py_ssize_t
position(PyObject *keys, double x, int descending)
{
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(keys);
    PyObject **items = ((PyListObject *)keys)->ob_item;
    if (hi && (descending ? PyFloat_AS_DOUBLE(items[hi - 1]) > x
                          : PyFloat_AS_DOUBLE(items[hi - 1]) < x))
        return hi; /* a new best: the commonest insert */
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) >> 1;
        double k = PyFloat_AS_DOUBLE(items[mid]);
        if (descending ? k > x : k < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int
apply_one(PyObject *side, PyObject *keys, double p, double q, int descending)
{
    PyObject *price = PyFloat_FromDouble(p);
    if (price == NULL)
        return -1;
    int rc = 0;
    if (q != 0.0) {
        PyObject *qty = PyFloat_FromDouble(q);
        if (qty == NULL) {
            Py_DECREF(price);
            return -1;
        }
        PyObject *old = PyDict_SetDefault(side, price, qty); /* borrowed */
        if (old == NULL)
            rc = -1;
        else if (old != qty)
            rc = PyDict_SetItem(side, price, qty); /* an update: the commonest change */
        else
            rc = PyList_Insert(keys, position(keys, p, descending), price);
        Py_DECREF(qty);
    }
    else {
        PyObject *old = PyDict_GetItemWithError(side, price);
        if (old != NULL) {
            Py_ssize_t i = position(keys, p, descending);
            rc = PyDict_DelItem(side, price);
            if (rc == 0)
                rc = PyList_SetSlice(keys, i, i + 1, NULL);
        }
        else if (PyErr_Occurred()) {
            rc = -1;
        } /* else: removing a level the book does not have changes nothing */
    }
    Py_DECREF(price);
    return rc;
}

/* Levels already read by pack_levels: checked again (a cheap test of each double), not parsed. */
static PyObject *
apply_packed(PyObject *side, PyObject *keys, PyObject *packed, int descending)
{
    Py_ssize_t size = PyBytes_GET_SIZE(packed);
    if (size % (2 * (Py_ssize_t)sizeof(double))) {
        PyErr_SetString(PyExc_ValueError, "packed levels must be pairs of doubles");
        return NULL;
    }
    Py_ssize_t n = size / (2 * (Py_ssize_t)sizeof(double));
    const double *pairs = (const double *)PyBytes_AS_STRING(packed);
    for (Py_ssize_t i = 0; i < 2 * n; i++) {
        if (!(pairs[i] >= 0.0 && pairs[i] < INFINITY)) {
            PyErr_SetString(PyExc_ValueError, "not a finite, non-negative number in packed levels");
            return NULL;
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (apply_one(side, keys, pairs[2 * i], pairs[2 * i + 1], descending) < 0)
            return NULL;
    }
    return PyLong_FromSsize_t(n);
}

static PyObject *
levels_apply_side(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "apply_side(side, keys, levels, descending)");
        return NULL;
    }
    PyObject *side = args[0], *keys = args[1];
    int descending = PyObject_IsTrue(args[3]);
    if (!PyDict_CheckExact(side) || !PyList_CheckExact(keys) || descending < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "apply_side needs a dict and a list");
        return NULL;
    }
    if (PyBytes_CheckExact(args[2]))
        return apply_packed(side, keys, args[2], descending);
    PyObject *seq = PySequence_Fast(args[2], "levels must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    double stack[2 * STACK_LEVELS];
    double *pairs = n <= STACK_LEVELS ? stack : PyMem_Malloc(sizeof(double) * 2 * (size_t)n);
    PyObject *result = NULL;
    if (pairs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (read_levels(seq, n, pairs) < 0)
        goto done; /* nothing changed */
    for (Py_ssize_t i = 0; i < n; i++) {
        if (apply_one(side, keys, pairs[2 * i], pairs[2 * i + 1], descending) < 0)
            goto done;
    }
    result = PyLong_FromSsize_t(n);
done:
    if (pairs != stack)
        PyMem_Free(pairs);
    Py_DECREF(seq);
    return result;
}

static PyObject *
levels_pack(PyObject *self, PyObject *levels)
{
    PyObject *seq = PySequence_Fast(levels, "levels must be a sequence");
    if (seq == NULL) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *packed = PyBytes_FromStringAndSize(NULL, 2 * (Py_ssize_t)sizeof(double) * n);
    if (packed == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    if (read_levels(seq, n, (double *)PyBytes_AS_STRING(packed)) < 0) {
        Py_CLEAR(packed);
        /* what float() raises for a value that is not a number; anything else propagates */
        if (PyErr_ExceptionMatches(PyExc_ValueError) || PyErr_ExceptionMatches(PyExc_TypeError) ||
            PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            packed = Py_NewRef(Py_None);
        }
    }
    Py_DECREF(seq);
    return packed;
}

/* ---------------------------------------------------------------- Binance's JSON level arrays */

static int
is_space(char c)
{
    /* what \s matches in a bytes regex (the reference's): JSON's four and \f \v */
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static const char *
skip_space(const char *p, const char *end)
{
    while (p < end && is_space(*p))
        p++;
    return p;
}

/* One quoted "digits(.digits)?" (1..20 digits each side): 1 with *start and *len set to the text
 * between the quotes and *pp moved past it, else 0. */
static int
scan_decimal(const char **pp, const char *end, const char **start, Py_ssize_t *len)
{
    const char *p = *pp;
    if (p >= end || *p != '"')
        return 0;
    const char *s = ++p;
    int n = 0;
    while (p < end && *p >= '0' && *p <= '9' && n <= 20) {
        p++;
        n++;
    }
    if (n < 1 || n > 20)
        return 0;
    if (p < end && *p == '.') {
        p++;
        n = 0;
        while (p < end && *p >= '0' && *p <= '9' && n <= 20) {
            p++;
            n++;
        }
        if (n < 1 || n > 20)
            return 0;
    }
    if (p >= end || *p != '"')
        return 0;
    *start = s;
    *len = p - s;
    *pp = p + 1;
    return 1;
}

/* Called for each [price, quantity] of a level array, with the text of both: 0, or -1 with an
 * exception set to stop the walk. */
typedef int (*level_visit)(void *ctx, const char *ps, Py_ssize_t pn, const char *qs,
                           Py_ssize_t qn);

/* Walk a JSON array of ["decimal", "decimal"] pairs (JSON's white space allowed where JSON allows
 * it, nothing after the array): 1 when the whole text is one (each pair visited in order), 0 when
 * it is not (some pairs may have been visited), -1 when a visit failed. */
static int
walk_levels(const char *p, const char *end, level_visit visit, void *ctx)
{
    if (p >= end || *p != '[')
        return 0;
    p = skip_space(p + 1, end);
    if (p < end && *p == ']') {
        p++;
        return p == end;
    }
    for (;;) {
        const char *ps, *qs;
        Py_ssize_t pn, qn;
        if (p >= end || *p != '[')
            return 0;
        p = skip_space(p + 1, end);
        if (!scan_decimal(&p, end, &ps, &pn))
            return 0;
        p = skip_space(p, end);
        if (p >= end || *p != ',')
            return 0;
        p = skip_space(p + 1, end);
        if (!scan_decimal(&p, end, &qs, &qn))
            return 0;
        p = skip_space(p, end);
        if (p >= end || *p != ']')
            return 0;
        p = skip_space(p + 1, end);
        if (visit(ctx, ps, pn, qs, qn) < 0)
            return -1;
        if (p < end && *p == ',') {
            p = skip_space(p + 1, end);
            continue;
        }
        if (p < end && *p == ']') {
            p++;
            return p == end;
        }
        return 0;
    }
}

static PyObject *
ascii_str(const char *s, Py_ssize_t n)
{
    PyObject *text = PyUnicode_New(n, 127);
    if (text != NULL)
        memcpy(PyUnicode_DATA(text), s, (size_t)n);
    return text;
}

/* json_levels' visit: append the (price, quantity) str pair to a list. */
static int
append_str_pair(void *ctx, const char *ps, Py_ssize_t pn, const char *qs, Py_ssize_t qn)
{
    PyObject *price = ascii_str(ps, pn);
    PyObject *qty = price != NULL ? ascii_str(qs, qn) : NULL;
    PyObject *pair = qty != NULL ? PyTuple_New(2) : NULL;
    if (pair == NULL) {
        Py_XDECREF(price);
        Py_XDECREF(qty);
        return -1;
    }
    PyTuple_SET_ITEM(pair, 0, price);
    PyTuple_SET_ITEM(pair, 1, qty);
    int rc = PyList_Append((PyObject *)ctx, pair);
    Py_DECREF(pair);
    return rc;
}

static PyObject *
levels_json_levels(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *out = PyList_New(0);
    PyObject *result = NULL;
    if (out != NULL) {
        const char *p = view.buf;
        int rc = walk_levels(p, p + view.len, append_str_pair, out);
        if (rc == 1)
            result = PyList_AsTuple(out);
        else if (rc == 0)
            result = Py_NewRef(Py_None);
        Py_DECREF(out);
    }
    PyBuffer_Release(&view);
    return result;
}

/* ------------------------------------- a diff's level arrays, read once for the WAL and the book */

/* A decimal of the grammar as float() reads it (the fast path, else the parser float() uses). */
static int
decimal_value(const char *s, Py_ssize_t n, double *out)
{
    char text[48];
    if (fast_decimal(s, n, out))
        return 0;
    memcpy(text, s, (size_t)n); /* n <= 41 by the grammar */
    text[n] = '\0';
    double x = PyOS_string_to_double(text, NULL, NULL);
    if (x == -1.0 && PyErr_Occurred())
        return -1;
    *out = x;
    return 0;
}

/* One str the way msgpack's Packer(use_bin_type=True) writes it. */
static void
put_str(Buf *b, const char *s, Py_ssize_t n)
{
    char *o = b->data + b->len;
    if (n < 32) {
        *o++ = (char)(0xa0 | n);
    }
    else {
        *o++ = (char)0xd9;
        *o++ = (char)n;
    }
    memcpy(o, s, (size_t)n);
    b->len = (o - b->data) + n;
}

typedef struct {
    Buf body; /* the msgpack of the pairs, without the array's header */
    Buf *values;
    Py_ssize_t n;
} LevelsOut;

/* json_depth_levels' visit: the pair as msgpack [str, str] and as two doubles. */
static int
put_level(void *ctx, const char *ps, Py_ssize_t pn, const char *qs, Py_ssize_t qn)
{
    LevelsOut *out = ctx;
    if (buf_grow(&out->body, 1 + 2 + pn + 2 + qn) < 0 ||
        buf_grow(out->values, 2 * (Py_ssize_t)sizeof(double)) < 0)
        return -1;
    out->body.data[out->body.len++] = (char)0x92;
    put_str(&out->body, ps, pn);
    put_str(&out->body, qs, qn);
    double *pair = (double *)(out->values->data + out->values->len);
    if (decimal_value(ps, pn, &pair[0]) < 0 || decimal_value(qs, qn, &pair[1]) < 0)
        return -1;
    out->values->len += 2 * (Py_ssize_t)sizeof(double);
    out->n++;
    return 0;
}

/* One JSON level array appended to *wire as a msgpack array of [str, str] arrays, its values
 * appended to *values as doubles. 1 read, 0 not the grammar, -1 error set. */
static int
scan_levels(const char *p, const char *end, Buf *wire, Buf *values)
{
    LevelsOut out = {{NULL, 0, 0}, values, 0};
    int rc = walk_levels(p, end, put_level, &out);
    if (rc == 1) {
        if (buf_grow(wire, 5 + out.body.len) < 0) {
            rc = -1;
        }
        else {
            put_array_header(wire, out.n);
            if (out.body.len)
                memcpy(wire->data + wire->len, out.body.data, (size_t)out.body.len);
            wire->len += out.body.len;
        }
    }
    PyMem_Free(out.body.data);
    return rc;
}

static PyObject *
levels_json_depth_levels(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "json_depth_levels(bids_raw, asks_raw)");
        return NULL;
    }
    Py_buffer b, a;
    if (PyObject_GetBuffer(args[0], &b, PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[1], &a, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&b);
        return NULL;
    }
    Buf wire = {NULL, 0, 0}, bd = {NULL, 0, 0}, ad = {NULL, 0, 0};
    PyObject *result = NULL;
    int rc = scan_levels(b.buf, (const char *)b.buf + b.len, &wire, &bd);
    if (rc == 1)
        rc = scan_levels(a.buf, (const char *)a.buf + a.len, &wire, &ad);
    if (rc == 0)
        result = Py_NewRef(Py_None);
    else if (rc == 1)
        result = Py_BuildValue("(y#y#y#)", wire.data ? wire.data : "", wire.len,
                               bd.data ? bd.data : "", bd.len, ad.data ? ad.data : "", ad.len);
    PyMem_Free(wire.data);
    PyMem_Free(bd.data);
    PyMem_Free(ad.data);
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    return result;
}

static PyMethodDef levels_methods[] = {
    {"json_depth_levels", (PyCFunction)(void (*)(void))levels_json_depth_levels, METH_FASTCALL,
     "json_depth_levels(bids_raw, asks_raw) -> (msgpack of both level arrays, bid doubles, ask "
     "doubles), or None when either is not a JSON array of Binance decimal pairs"},
    {"apply_side", (PyCFunction)(void (*)(void))levels_apply_side, METH_FASTCALL,
     "apply_side(side, keys, levels, descending) -> levels processed (ValueError: none)"},
    {"json_levels", levels_json_levels, METH_O,
     "json_levels(raw) -> the (price, quantity) str pairs of a JSON array of Binance decimal "
     "pairs, or None when it is not one"},
    {"pack_levels", levels_pack, METH_O,
     "pack_levels(levels) -> the levels read as doubles (bytes), or None if one is not a "
     "finite number >= 0"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef levels_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "shriven.book._levels",
    .m_doc = "C versions of shriven.book.levels (the reference they are tested against).",
    .m_size = -1,
    .m_methods = levels_methods,
};

PyMODINIT_FUNC
PyInit__levels(void)
{
    return PyModule_Create(&levels_module);
}
