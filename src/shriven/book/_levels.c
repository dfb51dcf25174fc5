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
#ifdef __SSE2__
#include <emmintrin.h>
#endif

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
    for (Py_ssize_t i = 0; i < n; i++) {
        /* float() of a value may run Python (__float__), which may change the list: its items
         * are fetched afresh and the pair's values held while they are read */
        if (PySequence_Fast_GET_SIZE(seq) != n) {
            PyErr_SetString(PyExc_ValueError, "the levels changed while they were read");
            return -1;
        }
        PyObject *lvl = PySequence_Fast_ITEMS(seq)[i];
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
        Py_INCREF(p);
        Py_INCREF(q);
        int rc = to_double(p, &pairs[2 * i]) < 0 || to_double(q, &pairs[2 * i + 1]) < 0;
        Py_DECREF(p);
        Py_DECREF(q);
        if (rc)
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

/* 1 and *v replaced by its value when the 8 bytes in *v (little-endian) are all ASCII digits, else
 * 0: the first digit is the highest, so pairs, then fours, are joined by multiplies in the word. */
static int
eight_digits(unsigned long long *v)
{
    unsigned long long x = *v;
    if ((x & 0xF0F0F0F0F0F0F0F0ULL) != 0x3030303030303030ULL ||
        ((x + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) != 0x3030303030303030ULL)
        return 0;
    x -= 0x3030303030303030ULL;
    x = x * 10 + (x >> 8); /* each even byte: two digits, 0..99 */
    unsigned long long lo = x & 0x000000FF000000FFULL, hi = (x >> 16) & 0x000000FF000000FFULL;
    /* bytes 0, 4 are digit pairs 1 and 3, bytes 2, 6 pairs 2 and 4 (after the shift: 0, 4) */
    *v = (lo * (100 + (1000000ULL << 32)) + hi * (1 + (10000ULL << 32))) >> 32;
    return 1;
}

/* One quoted "digits(.digits)?" (1..20 digits each side): 1 with *start and *len set to the text
 * between the quotes and *pp moved past it, else 0. *value is the number when at most 15 of its
 * digits are significant (mantissa / 10^decimals, both exact doubles: one correctly rounded
 * division, what float() gives, as in fast_decimal), else NaN for the caller's slow path. Read in
 * the same pass as the scan: a second pass over the text (fast_decimal) was a fifth of a live
 * diff's CPU. */
static int
scan_decimal(const char **pp, const char *end, const char **start, Py_ssize_t *len,
             double *value)
{
    const char *p = *pp;
    if (p >= end || *p != '"')
        return 0;
    const char *s = ++p;
    unsigned long long mant = 0; /* may wrap past 20 digits: then sig > 15 and it is unused */
    unsigned nz = 0;
    int n = 0, sig = 0, frac = 0;
    unsigned d;
    while (p < end && (d = (unsigned char)*p - '0') <= 9 && n <= 20) {
        mant = mant * 10 + d;
        nz |= d;
        sig += nz != 0;
        p++;
        n++;
    }
    if (n < 1 || n > 20)
        return 0;
    if (p < end && *p == '.') {
        p++;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        /* Binance writes 8 decimals: read them 8 at a time once a digit that counts was seen */
        while (nz && end - p >= 8 && frac <= 20) {
            unsigned long long v;
            memcpy(&v, p, 8);
            if (!eight_digits(&v))
                break;
            mant = mant * 100000000ULL + v;
            sig += 8;
            frac += 8;
            p += 8;
        }
#endif
        while (p < end && (d = (unsigned char)*p - '0') <= 9 && frac <= 20) {
            mant = mant * 10 + d;
            nz |= d;
            sig += nz != 0;
            p++;
            frac++;
        }
        if (frac < 1 || frac > 20)
            return 0;
    }
    if (p >= end || *p != '"')
        return 0;
    *start = s;
    *len = p - s;
    *pp = p + 1;
    *value = sig > 15 ? NAN : frac ? (double)mant / POW10[frac] : (double)mant;
    return 1;
}

/* Called for each [price, quantity] of a level array, with the text of both and their values
 * (NaN: not read yet, see scan_decimal): 0, or -1 with an exception set to stop the walk. */
typedef int (*level_visit)(void *ctx, const char *ps, Py_ssize_t pn, const char *qs,
                           Py_ssize_t qn, double pv, double qv);

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
        double pv, qv;
        if (p >= end || *p != '[')
            return 0;
        p = skip_space(p + 1, end);
        if (!scan_decimal(&p, end, &ps, &pn, &pv))
            return 0;
        p = skip_space(p, end);
        if (p >= end || *p != ',')
            return 0;
        p = skip_space(p + 1, end);
        if (!scan_decimal(&p, end, &qs, &qn, &qv))
            return 0;
        p = skip_space(p, end);
        if (p >= end || *p != ']')
            return 0;
        p = skip_space(p + 1, end);
        if (visit(ctx, ps, pn, qs, qn, pv, qv) < 0)
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
append_str_pair(void *ctx, const char *ps, Py_ssize_t pn, const char *qs, Py_ssize_t qn,
                double pv, double qv)
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
put_level(void *ctx, const char *ps, Py_ssize_t pn, const char *qs, Py_ssize_t qn, double pv,
          double qv)
{
    LevelsOut *out = ctx;
    if (buf_grow(&out->body, 1 + 2 + pn + 2 + qn) < 0 ||
        buf_grow(out->values, 2 * (Py_ssize_t)sizeof(double)) < 0)
        return -1;
    out->body.data[out->body.len++] = (char)0x92;
    put_str(&out->body, ps, pn);
    put_str(&out->body, qs, qn);
    double *pair = (double *)(out->values->data + out->values->len);
    pair[0] = pv;
    pair[1] = qv;
    if ((isnan(pv) && decimal_value(ps, pn, &pair[0]) < 0) ||
        (isnan(qv) && decimal_value(qs, qn, &pair[1]) < 0))
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
    char space[BUF_STACK];
    LevelsOut out = {BUF_INIT(space), values, 0};
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
    buf_free(&out.body);
    return rc;
}

static PyObject *
bytes_triple(const Buf *x, const Buf *y, const Buf *z)
{
    PyObject *t = PyTuple_New(3);
    if (t == NULL)
        return NULL;
    const Buf *parts[3] = {x, y, z};
    for (int i = 0; i < 3; i++) {
        PyObject *b = PyBytes_FromStringAndSize(parts[i]->data, parts[i]->len);
        if (b == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, b);
    }
    return t;
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
    char wire_space[2 * BUF_STACK], bd_space[BUF_STACK / 2], ad_space[BUF_STACK / 2];
    Buf wire = BUF_INIT(wire_space), bd = BUF_INIT(bd_space), ad = BUF_INIT(ad_space);
    PyObject *result = NULL;
    int rc = scan_levels(b.buf, (const char *)b.buf + b.len, &wire, &bd);
    if (rc == 1)
        rc = scan_levels(a.buf, (const char *)a.buf + a.len, &wire, &ad);
    if (rc == 0)
        result = Py_NewRef(Py_None);
    else if (rc == 1) /* not Py_BuildValue: reading its format was a tenth of a small diff */
        result = bytes_triple(&wire, &bd, &ad);
    buf_free(&wire);
    buf_free(&bd);
    buf_free(&ad);
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    return result;
}

/* ------------------------------------------------------------------ a book side, all in C
 *
 * Why: the dict-and-list side made two float objects and two dict operations per level change,
 * while order-book (cryptofeed's book) keeps each side in a C tree; and the features' 10 bp band
 * around the mid covers the whole 1,000-level side, so summing it through the dict took ~100 us.
 * Here a side is two parallel C arrays, prices and quantities, sorted with the best LAST (the
 * prices are stored as key = sign * price, sign -1 for asks, so both sides are ascending keys):
 * an update near the best is a short search from that end and one store, an insert or delete a
 * short memmove, and every read (best, top-N, sums over the band) walks contiguous doubles.
 * shriven.book.levels.PySide is the pure-Python reference the property tests compare against.
 */

typedef struct {
    PyObject_HEAD
    double *key; /* sign * price, ascending: the best is the last */
    double *qty;
    Py_ssize_t n, cap;
    double sign; /* 1.0 for bids, -1.0 for asks */
} SideObject;

static PyTypeObject Side_Type;

#define Side_Check(op) PyObject_TypeCheck(op, &Side_Type)

#define NEAR_BEST 64

/* The first index whose key is not below k in [0, n), given that a[n - 1] is not: a branch-free
 * bisection (changes land at random depths, so a search that branched on each compare paid a
 * misprediction at most of its steps). */
static Py_ssize_t
bisect_keys(const double *a, Py_ssize_t n, double k)
{
    const double *base = a;
    while (n > 1) {
        Py_ssize_t half = n >> 1;
        base += half & -(Py_ssize_t)(base[half - 1] < k); /* no jump: gcc made ?: a branch */
        n -= half;
    }
    return base - a;
}

/* The first index whose key is not below k. Most changes are among the best few dozen levels:
 * there the index is counted, the best NEAR_BEST keys compared at once (vector compares, no
 * chain of dependent loads as in a bisection, which cost ~30 ns a change); deeper, bisected. */
static Py_ssize_t
side_position(const SideObject *s, double k)
{
    const double *a = s->key;
    Py_ssize_t n = s->n;
    if (n == 0 || a[n - 1] < k)
        return n; /* a new best, or an empty side */
    if (n <= NEAR_BEST)
        return bisect_keys(a, n, k);
    const double *near = a + n - NEAR_BEST;
    if (!(near[0] < k)) /* deeper than the best NEAR_BEST (or k is NaN: 0, as bisect_left) */
        return bisect_keys(a, n - NEAR_BEST + 1, k);
    Py_ssize_t not_below = 0;
#ifdef __SSE2__ /* every x86-64: gcc left the plain loop scalar, a compare and a jump a key */
    __m128i count = _mm_setzero_si128();
    __m128d kk = _mm_set1_pd(k);
    for (int j = 0; j < NEAR_BEST; j += 2) /* a true compare is all ones: -1 */
        count = _mm_sub_epi64(count, _mm_castpd_si128(_mm_cmpnlt_pd(_mm_loadu_pd(near + j), kk)));
    long long lanes[2];
    _mm_storeu_si128((__m128i *)lanes, count);
    not_below = (Py_ssize_t)(lanes[0] + lanes[1]);
#else
    for (int j = 0; j < NEAR_BEST; j++)
        not_below += !(near[j] < k);
#endif
    return n - not_below;
}

/* Index of the price, or -1. */
static Py_ssize_t
side_find(const SideObject *s, double price)
{
    double k = s->sign * price;
    Py_ssize_t i = side_position(s, k);
    return i < s->n && s->key[i] == k ? i : -1;
}

static int
side_reserve(SideObject *s, Py_ssize_t need)
{
    if (need <= s->cap)
        return 0;
    if (need > PY_SSIZE_T_MAX / (Py_ssize_t)(2 * sizeof(double))) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t cap = s->cap ? s->cap : 16;
    while (cap < need)
        cap *= 2;
    double *key = PyMem_Realloc(s->key, sizeof(double) * (size_t)cap);
    if (key == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    s->key = key;
    double *qty = PyMem_Realloc(s->qty, sizeof(double) * (size_t)cap);
    if (qty == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    s->qty = qty;
    s->cap = cap;
    return 0;
}

/* One change; room for one more level must have been reserved. */
static void
side_set(SideObject *s, double price, double q)
{
    double k = s->sign * price;
    Py_ssize_t n = s->n, i = side_position(s, k);
    double *key = s->key, *qty = s->qty;
    if (i < n && key[i] == k) {
        if (q != 0.0) {
            qty[i] = q; /* an update: the commonest change */
        }
        else {
            memmove(key + i, key + i + 1, sizeof(double) * (size_t)(n - i - 1));
            memmove(qty + i, qty + i + 1, sizeof(double) * (size_t)(n - i - 1));
            s->n = n - 1;
        }
    }
    else if (q != 0.0) {
        memmove(key + i + 1, key + i, sizeof(double) * (size_t)(n - i));
        memmove(qty + i + 1, qty + i, sizeof(double) * (size_t)(n - i));
        key[i] = k;
        qty[i] = q;
        s->n = n + 1;
    } /* else: removing a level the side does not have changes nothing */
}

/* Apply n checked (price, quantity) pairs: nothing can fail once the room is reserved. */
static int
side_set_all(SideObject *s, const double *pairs, Py_ssize_t n)
{
    if (side_reserve(s, s->n + n) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++)
        side_set(s, pairs[2 * i], pairs[2 * i + 1]);
    return 0;
}

static int
check_packed(PyObject *packed, Py_ssize_t *n)
{
    Py_ssize_t size = PyBytes_GET_SIZE(packed);
    if (size % (2 * (Py_ssize_t)sizeof(double))) {
        PyErr_SetString(PyExc_ValueError, "packed levels must be pairs of doubles");
        return -1;
    }
    const double *pairs = (const double *)PyBytes_AS_STRING(packed);
    *n = size / (2 * (Py_ssize_t)sizeof(double));
    for (Py_ssize_t i = 0; i < 2 * *n; i++) {
        if (!(pairs[i] >= 0.0 && pairs[i] < INFINITY)) {
            PyErr_SetString(PyExc_ValueError, "not a finite, non-negative number in packed levels");
            return -1;
        }
    }
    return 0;
}

/* Side.apply(levels): pairs of floats or decimal strs, or pack_levels' bytes. */
static PyObject *
side_apply(SideObject *s, PyObject *levels)
{
    if (PyBytes_CheckExact(levels)) {
        Py_ssize_t n;
        if (check_packed(levels, &n) < 0 ||
            side_set_all(s, (const double *)PyBytes_AS_STRING(levels), n) < 0)
            return NULL;
        return PyLong_FromSsize_t(n);
    }
    PyObject *seq = PySequence_Fast(levels, "levels must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    double stack[2 * STACK_LEVELS];
    double *pairs = n <= STACK_LEVELS ? stack : PyMem_Malloc(sizeof(double) * 2 * (size_t)n);
    PyObject *result = NULL;
    if (pairs == NULL)
        PyErr_NoMemory();
    else if (read_levels(seq, n, pairs) == 0 && side_set_all(s, pairs, n) == 0)
        result = PyLong_FromSsize_t(n);
    if (pairs != stack)
        PyMem_Free(pairs);
    Py_DECREF(seq);
    return result;
}

typedef struct {
    double key, qty;
    Py_ssize_t order;
} Entry;

static int
entry_cmp(const void *x, const void *y)
{
    const Entry *a = x, *b = y;
    if (a->key != b->key)
        return a->key < b->key ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

/* Side.replace(levels): exactly these levels (a later repeat of a price wins; zeros left out). */
static PyObject *
side_replace(SideObject *s, PyObject *levels)
{
    PyObject *seq = PySequence_Fast(levels, "levels must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    double *pairs = PyMem_Malloc(sizeof(double) * 2 * (size_t)(n ? n : 1));
    Entry *e = PyMem_Malloc(sizeof(Entry) * (size_t)(n ? n : 1));
    PyObject *result = NULL;
    if (pairs == NULL || e == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (read_levels(seq, n, pairs) < 0 || side_reserve(s, n) < 0)
        goto done; /* nothing changed */
    for (Py_ssize_t i = 0; i < n; i++) {
        e[i].key = s->sign * pairs[2 * i];
        e[i].qty = pairs[2 * i + 1];
        e[i].order = i;
    }
    qsort(e, (size_t)n, sizeof(Entry), entry_cmp);
    Py_ssize_t m = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i + 1 < n && e[i + 1].key == e[i].key)
            continue; /* a later repeat of this price follows */
        if (e[i].qty != 0.0) {
            s->key[m] = e[i].key;
            s->qty[m] = e[i].qty;
            m++;
        }
    }
    s->n = m;
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(pairs);
    PyMem_Free(e);
    Py_DECREF(seq);
    return result;
}

static PyObject *
side_clear(SideObject *s, PyObject *Py_UNUSED(ignored))
{
    s->n = 0;
    Py_RETURN_NONE;
}

static PyObject *
level_tuple(const SideObject *s, Py_ssize_t i)
{
    PyObject *p = PyFloat_FromDouble(s->sign * s->key[i]);
    PyObject *q = p != NULL ? PyFloat_FromDouble(s->qty[i]) : NULL;
    PyObject *t = q != NULL ? PyTuple_New(2) : NULL;
    if (t == NULL) {
        Py_XDECREF(p);
        Py_XDECREF(q);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, p);
    PyTuple_SET_ITEM(t, 1, q);
    return t;
}

/* The best m levels as a list, best first: what (0) (price, qty) tuples, (1) prices, (2)
 * quantities. */
static PyObject *
side_list(const SideObject *s, Py_ssize_t m, int what)
{
    if (m > s->n)
        m = s->n;
    if (m < 0)
        m = 0;
    PyObject *out = PyList_New(m);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t j = 0; j < m; j++) {
        Py_ssize_t i = s->n - 1 - j;
        PyObject *item = what == 0   ? level_tuple(s, i)
                         : what == 1 ? PyFloat_FromDouble(s->sign * s->key[i])
                                     : PyFloat_FromDouble(s->qty[i]);
        if (item == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, j, item);
    }
    return out;
}

static PyObject *
side_top(SideObject *s, PyObject *arg)
{
    Py_ssize_t m = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    if (m == -1 && PyErr_Occurred())
        return NULL;
    return side_list(s, m, 0);
}

static PyObject *
side_levels(SideObject *s, PyObject *Py_UNUSED(ignored))
{
    return side_list(s, s->n, 0);
}

static PyObject *
side_keys(SideObject *s, PyObject *Py_UNUSED(ignored))
{
    return side_list(s, s->n, 1);
}

static PyObject *
side_values(SideObject *s, PyObject *Py_UNUSED(ignored))
{
    return side_list(s, s->n, 2);
}

/* Side.prices(): every price in the old layout's order, best LAST (bids ascending, asks
 * descending). */
static PyObject *
side_prices(SideObject *s, PyObject *Py_UNUSED(ignored))
{
    PyObject *out = PyList_New(s->n);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < s->n; i++) {
        PyObject *p = PyFloat_FromDouble(s->sign * s->key[i]);
        if (p == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, p);
    }
    return out;
}

static PyObject *
side_best(SideObject *s, PyObject *Py_UNUSED(ignored))
{
    if (s->n == 0)
        Py_RETURN_NONE;
    return level_tuple(s, s->n - 1);
}

static PyObject *
side_best_price(SideObject *s, PyObject *Py_UNUSED(ignored))
{
    if (s->n == 0)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(s->sign * s->key[s->n - 1]);
}

/* The quantities of levels [from, n) added up in ascending price order, one double after the
 * other (what the reference's left-to-right float sum gives, bit for bit). */
static double
side_sum_from(const SideObject *s, Py_ssize_t from)
{
    double total = 0.0;
    if (s->sign > 0) {
        for (Py_ssize_t i = from; i < s->n; i++)
            total += s->qty[i];
    }
    else {
        for (Py_ssize_t i = s->n - 1; i >= from; i--)
            total += s->qty[i];
    }
    return total;
}

/* Side.sum_best(n): the quantity of the best n levels. */
static PyObject *
side_sum_best(SideObject *s, PyObject *arg)
{
    Py_ssize_t m = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    if (m == -1 && PyErr_Occurred())
        return NULL;
    if (m < 0)
        m = 0;
    return PyFloat_FromDouble(side_sum_from(s, m >= s->n ? 0 : s->n - m));
}

/* Side.sum_within(edge): the quantity of the levels priced at the edge or better. */
static PyObject *
side_sum_within(SideObject *s, PyObject *arg)
{
    double edge = PyFloat_AsDouble(arg);
    if (edge == -1.0 && PyErr_Occurred())
        return NULL;
    return PyFloat_FromDouble(side_sum_from(s, side_position(s, s->sign * edge)));
}

/* A key of the mapping as a price: 1, 0 when it cannot be one (no such level), -1 error. */
static int
lookup_price(PyObject *key, double *out)
{
    if (PyFloat_Check(key)) {
        *out = PyFloat_AS_DOUBLE(key);
        return 1;
    }
    if (PyLong_Check(key)) {
        double x = PyLong_AsDouble(key);
        if (x == -1.0 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_OverflowError))
                return -1;
            PyErr_Clear();
            return 0;
        }
        *out = x;
        return 1;
    }
    return 0;
}

static Py_ssize_t
side_index_of(SideObject *s, PyObject *key)
{
    double p;
    int rc = lookup_price(key, &p);
    if (rc <= 0)
        return rc < 0 ? -2 : -1;
    return side_find(s, p);
}

static PyObject *
side_get(SideObject *s, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get(price, default=None)");
        return NULL;
    }
    Py_ssize_t i = side_index_of(s, args[0]);
    if (i == -2)
        return NULL;
    if (i < 0)
        return Py_NewRef(nargs == 2 ? args[1] : Py_None);
    return PyFloat_FromDouble(s->qty[i]);
}

static PyObject *
side_items(SideObject *s, PyObject *Py_UNUSED(ignored))
{
    return side_list(s, s->n, 0);
}

static Py_ssize_t
side_length(SideObject *s)
{
    return s->n;
}

static PyObject *
side_subscript(SideObject *s, PyObject *key)
{
    Py_ssize_t i = side_index_of(s, key);
    if (i == -2)
        return NULL;
    if (i < 0) {
        PyErr_SetObject(PyExc_KeyError, key);
        return NULL;
    }
    return PyFloat_FromDouble(s->qty[i]);
}

static int
side_contains(SideObject *s, PyObject *key)
{
    Py_ssize_t i = side_index_of(s, key);
    return i == -2 ? -1 : i >= 0;
}

static PyObject *
side_iter(SideObject *s)
{
    PyObject *keys = side_list(s, s->n, 1);
    if (keys == NULL)
        return NULL;
    PyObject *it = PyObject_GetIter(keys);
    Py_DECREF(keys);
    return it;
}

/* Equal to another side with the same levels, or to a mapping (a dict) with the same items. */
static PyObject *
side_richcompare(SideObject *s, PyObject *other, int op)
{
    if (op != Py_EQ && op != Py_NE)
        Py_RETURN_NOTIMPLEMENTED;
    int equal;
    if (Side_Check(other)) {
        SideObject *o = (SideObject *)other;
        equal = s->n == o->n;
        for (Py_ssize_t i = 0; equal && i < s->n; i++) {
            Py_ssize_t j = o->sign == s->sign ? i : s->n - 1 - i;
            equal = s->sign * s->key[i] == o->sign * o->key[j] && s->qty[i] == o->qty[j];
        }
    }
    else if (PyDict_Check(other)) {
        equal = PyDict_GET_SIZE(other) == s->n;
        for (Py_ssize_t i = 0; equal && i < s->n; i++) {
            PyObject *p = PyFloat_FromDouble(s->sign * s->key[i]);
            if (p == NULL)
                return NULL;
            PyObject *v = PyDict_GetItemWithError(other, p); /* borrowed */
            Py_DECREF(p);
            if (v == NULL) {
                if (PyErr_Occurred())
                    return NULL;
                equal = 0;
                break;
            }
            Py_INCREF(v);
            PyObject *q = PyFloat_FromDouble(s->qty[i]);
            int rc = q != NULL ? PyObject_RichCompareBool(q, v, Py_EQ) : -1;
            Py_XDECREF(q);
            Py_DECREF(v);
            if (rc < 0)
                return NULL;
            equal = rc;
        }
    }
    else {
        Py_RETURN_NOTIMPLEMENTED;
    }
    return PyBool_FromLong(op == Py_EQ ? equal : !equal);
}

static PyObject *
side_repr(SideObject *s)
{
    PyObject *items = side_list(s, s->n, 0);
    if (items == NULL)
        return NULL;
    PyObject *r = PyUnicode_FromFormat("Side(%s, %R)", s->sign > 0 ? "bids" : "asks", items);
    Py_DECREF(items);
    return r;
}

static PyObject *
side_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"descending", NULL};
    int descending = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|p:Side", kwlist, &descending))
        return NULL;
    SideObject *s = (SideObject *)type->tp_alloc(type, 0);
    if (s == NULL)
        return NULL;
    s->key = s->qty = NULL;
    s->n = s->cap = 0;
    s->sign = descending ? -1.0 : 1.0;
    return (PyObject *)s;
}

static void
side_dealloc(SideObject *s)
{
    PyMem_Free(s->key);
    PyMem_Free(s->qty);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static PyObject *
side_descending(SideObject *s, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(s->sign < 0);
}

static PyGetSetDef side_getset[] = {
    {"descending", (getter)side_descending, NULL, "True for asks (best = lowest price)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef side_methods[] = {
    {"apply", (PyCFunction)side_apply, METH_O,
     "apply(levels) -> levels processed; quantity 0 removes a price (ValueError: none applied)"},
    {"replace", (PyCFunction)side_replace, METH_O,
     "replace(levels): exactly these levels (a later repeat wins, zeros left out)"},
    {"clear", (PyCFunction)side_clear, METH_NOARGS, "remove every level"},
    {"best", (PyCFunction)side_best, METH_NOARGS, "(price, quantity) of the best level, or None"},
    {"best_price", (PyCFunction)side_best_price, METH_NOARGS, "the best price, or None"},
    {"top", (PyCFunction)side_top, METH_O, "top(n) -> the best n (price, quantity), best first"},
    {"levels", (PyCFunction)side_levels, METH_NOARGS, "every (price, quantity), best first"},
    {"prices", (PyCFunction)side_prices, METH_NOARGS, "every price, best LAST"},
    {"sum_best", (PyCFunction)side_sum_best, METH_O,
     "sum_best(n) -> the quantity of the best n levels (added in ascending price order)"},
    {"sum_within", (PyCFunction)side_sum_within, METH_O,
     "sum_within(edge) -> the quantity priced at edge or better (ascending price order)"},
    {"keys", (PyCFunction)side_keys, METH_NOARGS, "every price, best first"},
    {"values", (PyCFunction)side_values, METH_NOARGS, "every quantity, best first"},
    {"items", (PyCFunction)side_items, METH_NOARGS, "every (price, quantity), best first"},
    {"get", (PyCFunction)(void (*)(void))side_get, METH_FASTCALL,
     "get(price, default=None) -> its quantity, or default"},
    {NULL, NULL, 0, NULL},
};

static PyMappingMethods side_as_mapping = {
    .mp_length = (lenfunc)side_length,
    .mp_subscript = (binaryfunc)side_subscript,
};

static PySequenceMethods side_as_sequence = {
    .sq_contains = (objobjproc)side_contains,
};

static PyTypeObject Side_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "shriven.book._levels.Side",
    .tp_basicsize = sizeof(SideObject),
    .tp_dealloc = (destructor)side_dealloc,
    .tp_repr = (reprfunc)side_repr,
    .tp_as_sequence = &side_as_sequence,
    .tp_as_mapping = &side_as_mapping,
    .tp_hash = PyObject_HashNotImplemented,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_MAPPING,
    .tp_doc = "Side(descending=False): one side of a book, a read-only mapping price -> quantity "
              "(iterated best first) with the book's own operations",
    .tp_richcompare = (richcmpfunc)side_richcompare,
    .tp_iter = (getiterfunc)side_iter,
    .tp_methods = side_methods,
    .tp_getset = side_getset,
    .tp_new = side_new,
};

/* touching(bids, asks): both sides have levels and the best bid is at or above the best ask. */
static PyObject *
levels_touching(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !Side_Check(args[0]) || !Side_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "touching(bids: Side, asks: Side)");
        return NULL;
    }
    SideObject *b = (SideObject *)args[0], *a = (SideObject *)args[1];
    if (b->n && a->n && b->sign * b->key[b->n - 1] >= a->sign * a->key[a->n - 1])
        Py_RETURN_TRUE;
    Py_RETURN_FALSE;
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
    {"touching", (PyCFunction)(void (*)(void))levels_touching, METH_FASTCALL,
     "touching(bids, asks) -> True when the best bid is at or above the best ask"},
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
    if (PyType_Ready(&Side_Type) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&levels_module);
    if (m != NULL && PyModule_AddObjectRef(m, "Side", (PyObject *)&Side_Type) < 0)
        Py_CLEAR(m);
    return m;
}
