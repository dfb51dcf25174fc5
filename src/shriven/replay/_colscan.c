/* A WAL frame's msgpack batch read straight into columns, without a Python object per record.
 *
 * Optional: shriven.replay.colscan holds the pure-Python reference (py_scan_frame), used when this
 * module is not built, and tests/replay/test_colscan.py checks that both give the same columns.
 *
 * scan_frame(payload) walks the batch once and returns
 *   (count, types u8, recv_ns i64, seq i64, kinds u8, keys i32, first_ids i64, last_ids i64,
 *    level_rows i32, level_sides u8, level_prices f64, level_qtys f64, key_names list[str])
 * as bytes objects (numpy.frombuffer views them), or None when a record is not one this scanner
 * reads (not an array, unknown type or layout version, too few fields, a field of the wrong msgpack
 * type): the caller then takes the reference path, which decodes the records and raises the error
 * the record reader gives. The book kinds, keys and level rules are in colscan.py's docstring.
 *
 * Numbers: a decimal string is read only in its plain form (ASCII digits with at most one inner
 * '.', at most 15 significant digits and 22 decimals), as mantissa / 10^k: both exact doubles, so
 * one IEEE division rounds correctly (Clinger's fast path) and the value is the one float() gives.
 * A level in any other form makes its record SLOW: the caller hands that book to the keeper.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { K_NONE = 0, K_KITE = 1, K_DIFF = 2, K_SNAPSHOT = 3, K_GAP = 4, K_SLOW = 5 };

#include "../fast_decimal.h"

/* ------------------------------------------------------------ growable column buffers */

typedef struct {
    char *data;
    size_t len, cap;
} Buf;

static int
buf_reserve(Buf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

#define PUSH(b, T, v)                                  \
    do {                                               \
        if (buf_reserve(&(b), sizeof(T)) < 0)          \
            goto nomem;                                \
        T tmp_ = (v);                                  \
        memcpy((b).data + (b).len, &tmp_, sizeof(T));  \
        (b).len += sizeof(T);                          \
    } while (0)

/* Append without a capacity check: the caller reserved room (rows_reserve, the record columns). */
#define PUT(b, T, v)                                   \
    do {                                               \
        T tmp_ = (v);                                  \
        memcpy((b).data + (b).len, &tmp_, sizeof(T));  \
        (b).len += sizeof(T);                          \
    } while (0)

#include "../msgpack_read.h"

/* ------------------------------------------------------------ per-frame key table */

#define KEY_SLOTS 4096 /* open addressing; a frame holds far fewer distinct books */

typedef struct {
    int used;
    int prefix; /* 0 binance, 1 kite (token), 2 venue:instrument */
    int64_t token;
    const char *a, *b;
    Py_ssize_t na, nb;
    int32_t index;
} Slot;

typedef struct {
    Slot *slots;
    PyObject *names; /* list of str, by index */
    PyObject *index; /* dict str -> index */
} Keys;

static uint64_t
hash_bytes(uint64_t h, const char *s, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

/* The frame-local index of a key, added on first sight; -1 with an exception set on failure,
 * -2 when the table is full or a name is not UTF-8 (the caller takes the reference path). */
static int32_t
key_index(Keys *k, int prefix, int64_t token, const char *a, Py_ssize_t na, const char *b,
          Py_ssize_t nb)
{
    uint64_t h = 14695981039346656037ULL ^ (uint64_t)prefix;
    if (prefix == 1)
        h = (h ^ (uint64_t)token) * 1099511628211ULL;
    else {
        h = hash_bytes(h, a, na);
        h = hash_bytes(h * 31, b, nb);
    }
    for (size_t probe = 0; probe < KEY_SLOTS; probe++) {
        Slot *s = &k->slots[(h + probe) & (KEY_SLOTS - 1)];
        if (!s->used) {
            PyObject *name;
            if (prefix == 1) {
                name = PyUnicode_FromFormat("kite:%lld", (long long)token);
            }
            else {
                PyObject *left = prefix == 0 ? PyUnicode_FromString("binance")
                                             : PyUnicode_DecodeUTF8(a, na, "strict");
                PyObject *right = prefix == 0 ? PyUnicode_DecodeUTF8(a, na, "strict")
                                              : PyUnicode_DecodeUTF8(b, nb, "strict");
                if (left == NULL || right == NULL) {
                    Py_XDECREF(left);
                    Py_XDECREF(right);
                    PyErr_Clear();
                    return -2;
                }
                name = PyUnicode_FromFormat("%U:%U", left, right);
                Py_DECREF(left);
                Py_DECREF(right);
            }
            if (name == NULL)
                return -1;
            /* one index per name, however it was reached ("binance:X" from a diff or a Status) */
            PyObject *known = PyDict_GetItemWithError(k->index, name);
            Py_ssize_t idx;
            if (known != NULL) {
                idx = PyLong_AsSsize_t(known);
            }
            else if (PyErr_Occurred()) {
                Py_DECREF(name);
                return -1;
            }
            else {
                idx = PyList_GET_SIZE(k->names);
                PyObject *num = PyLong_FromSsize_t(idx);
                if (num == NULL || PyDict_SetItem(k->index, name, num) < 0 ||
                    PyList_Append(k->names, name) < 0) {
                    Py_XDECREF(num);
                    Py_DECREF(name);
                    return -1;
                }
                Py_DECREF(num);
            }
            Py_DECREF(name);
            s->used = 1;
            s->prefix = prefix;
            s->token = token;
            s->a = a;
            s->na = na;
            s->b = b;
            s->nb = nb;
            s->index = (int32_t)idx;
            return s->index;
        }
        if (s->prefix != prefix)
            continue;
        if (prefix == 1) {
            if (s->token == token)
                return s->index;
        }
        else if (s->na == na && s->nb == nb && memcmp(s->a, a, na) == 0 &&
                 (nb == 0 || memcmp(s->b, b, nb) == 0)) {
            return s->index;
        }
    }
    return -2;
}

/* ------------------------------------------------------------ the scan */

typedef struct {
    Buf types, recv, seq, kinds, keys, first, last;
    Buf lrow, lside, lprice, lqty;
} Cols;

static void
cols_free(Cols *c)
{
    Buf *all[] = {&c->types, &c->recv, &c->seq, &c->kinds, &c->keys, &c->first,
                  &c->last, &c->lrow, &c->lside, &c->lprice, &c->lqty};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        free(all[i]->data);
}

static int
rows_reserve(Cols *c, size_t n)
{
    if (buf_reserve(&c->lrow, n * sizeof(int32_t)) < 0 || buf_reserve(&c->lside, n) < 0 ||
        buf_reserve(&c->lprice, n * sizeof(double)) < 0 ||
        buf_reserve(&c->lqty, n * sizeof(double)) < 0)
        return -1;
    return 0;
}

/* Forget the level rows after the first `kept`. */
static void
rows_truncate(Cols *c, size_t kept)
{
    c->lrow.len = kept * sizeof(int32_t);
    c->lside.len = kept;
    c->lprice.len = kept * sizeof(double);
    c->lqty.len = kept * sizeof(double);
}

/* Status kinds the keeper acts on. */
static int
is_gap(const char *s, Py_ssize_t n)
{
    return n == 3 && memcmp(s, "gap", 3) == 0;
}

/* Binance [price, quantity] string pairs of one side: 0 and the rows appended (*slow set when a
 * level is not plain), -1 structure error, -3 out of memory. */
static int
binance_side(Rd *r, Cols *c, int32_t row, uint8_t side, int *slow)
{
    Py_ssize_t n = rd_array(r);
    if (n < 0)
        return -1;
    if ((size_t)n > (size_t)(r->end - r->p)) /* a count no payload could hold: damage */
        return -1;
    if (!*slow && rows_reserve(c, (size_t)n) < 0)
        return -3;
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *ps, *qs;
        Py_ssize_t pn, qn;
        double p, q;
        if (rd_array(r) != 2 || rd_str(r, &ps, &pn) < 0 || rd_str(r, &qs, &qn) < 0)
            return -1;
        if (*slow)
            continue;
        if (!fast_decimal(ps, pn, &p) || !fast_decimal(qs, qn, &q)) {
            *slow = 1;
            continue;
        }
        PUT(c->lrow, int32_t, row);
        PUT(c->lside, uint8_t, side);
        PUT(c->lprice, double, p);
        PUT(c->lqty, double, q);
    }
    return 0;
}

/* Kite's flat [price, quantity, orders, ...] ints of one side, levels with a zero price or
 * quantity left out as the keeper leaves them out. */
static int
kite_side(Rd *r, Cols *c, int32_t row, uint8_t side, double divisor, int *slow)
{
    Py_ssize_t n = rd_array(r);
    if (n < 0 || n % 3)
        return -1;
    if ((size_t)n > (size_t)(r->end - r->p))
        return -1;
    if (!*slow && rows_reserve(c, (size_t)n / 3) < 0)
        return -3;
    const int64_t lim = (int64_t)1 << 53;
    for (Py_ssize_t i = 0; i < n; i += 3) {
        int64_t p, q, o;
        if (rd_int(r, &p) < 0 || rd_int(r, &q) < 0 || rd_int(r, &o) < 0)
            return -1; /* floats, bools, strings: the reference says what the keeper does */
        if (*slow || !q || !p)
            continue;
        if (p >= lim || p <= -lim || q >= lim || q <= -lim) {
            *slow = 1;
            continue;
        }
        PUT(c->lrow, int32_t, row);
        PUT(c->lside, uint8_t, side);
        PUT(c->lprice, double, (double)p / divisor);
        PUT(c->lqty, double, (double)q);
    }
    return 0;
}

static double
kite_divisor(int64_t token)
{
    int seg = (int)(token & 0xff);
    if (seg == 3)
        return 1e7;
    if (seg == 6 || seg == 12)
        return 1e4;
    return 100.0;
}

static const int REQUIRED[] = {0, 19, 7, 6, 4, 5, 4, 9, 7, 10, 9, 8, 13, 4};

/* Fields after seq the record decoder checks, by type: s str, i integer, b bool, L Binance
 * string pairs, a anything (events.py's _trade, _status, ... check exactly these). */
static const char *const SPEC[] = {
    "", "", "sassaab", "", "", "ss", "ssss", "ssaaaaaLL", "ssaaaLL", "ssissiiiib",
    "ssissssii", "ssissssi", "ssisssssssssi", "sssi",
};

/* The one book a scan is for (scan_frame's `only`): other books' records get kind NONE, their
 * levels checked as msgpack but not read. */
typedef struct {
    int set;
    const char *venue, *instrument;
    Py_ssize_t nv, ni;
    int kite_token_ok;
    int64_t kite_token;
} Only;

static int
only_parse(PyObject *o, Only *only)
{
    memset(only, 0, sizeof *only);
    if (o == Py_None)
        return 0;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(o, &n);
    if (s == NULL)
        return -1;
    const char *colon = memchr(s, ':', n);
    if (colon == NULL) {
        PyErr_SetString(PyExc_ValueError, "only must be a book key such as binance:BTCUSDT");
        return -1;
    }
    only->set = 1;
    only->venue = s;
    only->nv = colon - s;
    only->instrument = colon + 1;
    only->ni = n - only->nv - 1;
    if (only->ni > 0 && only->ni <= 18) {
        int64_t t = 0;
        Py_ssize_t i;
        for (i = 0; i < only->ni && only->instrument[i] >= '0' && only->instrument[i] <= '9'; i++)
            t = t * 10 + (only->instrument[i] - '0');
        only->kite_token_ok = i == only->ni && (only->ni == 1 || only->instrument[0] != '0');
        only->kite_token = t;
    }
    return 0;
}

static int
only_match(const Only *o, const char *venue, Py_ssize_t nv, const char *instr, Py_ssize_t ni)
{
    return !o->set || (o->nv == nv && o->ni == ni && memcmp(o->venue, venue, nv) == 0 &&
                       memcmp(o->instrument, instr, ni) == 0);
}

static int
only_kite(const Only *o, int64_t token)
{
    return !o->set || (o->nv == 4 && memcmp(o->venue, "kite", 4) == 0 && o->kite_token_ok &&
                       o->kite_token == token);
}

static PyObject *
scan_frame(PyObject *self, PyObject *args)
{
    PyObject *arg, *only_arg = Py_None;
    Only only;
    if (!PyArg_ParseTuple(args, "O|O", &arg, &only_arg) || only_parse(only_arg, &only) < 0)
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Rd r = {(const unsigned char *)view.buf, (const unsigned char *)view.buf + view.len};
    Cols c;
    memset(&c, 0, sizeof c);
    Keys keys = {calloc(KEY_SLOTS, sizeof(Slot)), PyList_New(0), PyDict_New()};
    PyObject *result = NULL;
    int fallback = 0;
    if (keys.slots == NULL || keys.names == NULL || keys.index == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t count = rd_array(&r);
    if (count < 0) {
        fallback = 1;
        goto done;
    }
    /* a record takes at least one byte, so a count past the payload is damage, not a size */
    if ((size_t)count > (size_t)(r.end - r.p)) {
        fallback = 1;
        goto done;
    }
    if (buf_reserve(&c.types, count) < 0 || buf_reserve(&c.recv, count * 8) < 0 ||
        buf_reserve(&c.seq, count * 8) < 0 || buf_reserve(&c.kinds, count) < 0 ||
        buf_reserve(&c.keys, count * 4) < 0 || buf_reserve(&c.first, count * 8) < 0 ||
        buf_reserve(&c.last, count * 8) < 0)
        goto nomem;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t n = rd_array(&r);
        int64_t type, version, recv, seq;
        if (n < 4 || rd_int(&r, &type) < 0 || rd_int(&r, &version) < 0 ||
            rd_int(&r, &recv) < 0 || rd_int(&r, &seq) < 0 || version != 1 || type < 1 ||
            type > 13 || n < 4 + REQUIRED[type]) {
            fallback = 1;
            goto done;
        }
        Py_ssize_t left = n - 4;
        int32_t row = (int32_t)i;
        uint8_t kind = K_NONE;
        int32_t key = -1;
        int64_t first = 0, last = 0;
        int slow = 0;
        const char *s1;
        Py_ssize_t n1;
        int rc = 0;
        if (type == 3 || type == 4) {
            if (rd_str(&r, &s1, &n1) < 0 || rd_int(&r, &first) < 0)
                goto structure;
            left -= 2;
            if (type == 3) {
                int64_t event_time;
                if (rd_int(&r, &last) < 0 || rd_int(&r, &event_time) < 0)
                    goto structure;
                left -= 2;
            }
            else {
                last = first;
            }
            int want = only_match(&only, "binance", 7, s1, n1);
            if (want) {
                key = key_index(&keys, 0, 0, s1, n1, NULL, 0);
                if (key == -1)
                    goto done;
                if (key == -2)
                    goto structure;
            }
            else {
                slow = 1; /* levels checked, not read */
            }
            size_t rows_before = c.lrow.len;
            if ((rc = binance_side(&r, &c, row, 0, &slow)) < 0 ||
                (rc = binance_side(&r, &c, row, 1, &slow)) < 0) {
                if (rc == -3)
                    goto nomem;
                goto structure;
            }
            left -= 2;
            if (!want) {
                kind = K_NONE;
                first = last = 0;
            }
            else if (slow) { /* drop the rows this record added: the keeper reads it */
                rows_truncate(&c, rows_before / sizeof(int32_t));
                kind = K_SLOW;
            }
            else {
                kind = type == 3 ? K_DIFF : K_SNAPSHOT;
            }
        }
        else if (type == 1) {
            int64_t token, mode, v;
            if (rd_int(&r, &token) < 0 || rd_int(&r, &mode) < 0 || mode < 0 || mode > 2)
                goto structure;
            for (int f = 6; f < 21; f++)
                if (rd_int(&r, &v) < 0)
                    goto structure;
            left -= 17;
            if (mode == 2 && (token & 0xff) != 9 && only_kite(&only, token)) {
                key = key_index(&keys, 1, token, NULL, 0, NULL, 0);
                if (key == -1)
                    goto done;
                if (key == -2)
                    goto structure;
                double div = kite_divisor(token);
                size_t rows_before = c.lrow.len;
                if ((rc = kite_side(&r, &c, row, 0, div, &slow)) < 0 ||
                    (rc = kite_side(&r, &c, row, 1, div, &slow)) < 0) {
                    if (rc == -3)
                        goto nomem;
                    goto structure;
                }
                if (slow) {
                    rows_truncate(&c, rows_before / sizeof(int32_t));
                    kind = K_SLOW;
                }
                else {
                    kind = K_KITE;
                }
                first = last = seq;
            }
            else {
                Py_ssize_t a = rd_array(&r);
                if (a < 0 || a % 3)
                    goto structure;
                for (Py_ssize_t j = 0; j < a; j++)
                    if (rd_skip(&r, 0) < 0)
                        goto structure;
                a = rd_array(&r);
                if (a < 0 || a % 3)
                    goto structure;
                for (Py_ssize_t j = 0; j < a; j++)
                    if (rd_skip(&r, 0) < 0)
                        goto structure;
            }
            left -= 2;
        }
        else {
            /* Every other type: its fields checked as the record decoder checks them (SPEC),
             * the strings at wire index 4 and 5 (venue/symbol) or 4 and 6 (Status) kept. */
            const char *spec = SPEC[type];
            const char *st[3] = {NULL, NULL, NULL};
            Py_ssize_t sn[3] = {0, 0, 0};
            for (int f = 0; spec[f]; f++) {
                const char *sv;
                Py_ssize_t svn;
                int64_t iv;
                switch (spec[f]) {
                case 's':
                    if (rd_str(&r, &sv, &svn) < 0)
                        goto structure;
                    if (f < 3) {
                        st[f] = sv;
                        sn[f] = svn;
                    }
                    break;
                case 'i':
                    if (rd_int(&r, &iv) < 0)
                        goto structure;
                    break;
                case 'b':
                    if (!need(&r, 1) || (*r.p != 0xc2 && *r.p != 0xc3))
                        goto structure;
                    r.p++;
                    break;
                case 'L': {
                    int unread = 1; /* rows are not kept for these: the pairs checked only */
                    if ((rc = binance_side(&r, &c, row, 0, &unread)) < 0) {
                        if (rc == -3)
                            goto nomem;
                        goto structure;
                    }
                    break;
                }
                default:
                    if (rd_skip(&r, 0) < 0)
                        goto structure;
                }
                left--;
            }
            int named = type == 6 ? is_gap(st[1], sn[1]) : (type == 7 || type == 8);
            if (named && !only_match(&only, st[0], sn[0], type == 6 ? st[2] : st[1],
                                     type == 6 ? sn[2] : sn[1]))
                named = 0;
            if (named) {
                kind = type == 6 ? K_GAP : K_SLOW;
                key = type == 6 ? key_index(&keys, 2, 0, st[0], sn[0], st[2], sn[2])
                                : key_index(&keys, 2, 0, st[0], sn[0], st[1], sn[1]);
                if (key == -1)
                    goto done;
                if (key == -2)
                    goto structure;
            }
        }
        for (Py_ssize_t j = 0; j < left; j++)
            if (rd_skip(&r, 0) < 0)
                goto structure;
        if (kind == K_SLOW)
            first = last = 0;
        PUT(c.types, uint8_t, (uint8_t)type);
        PUT(c.recv, int64_t, recv);
        PUT(c.seq, int64_t, seq);
        PUT(c.kinds, uint8_t, kind);
        PUT(c.keys, int32_t, key);
        PUT(c.first, int64_t, first);
        PUT(c.last, int64_t, last);
        continue;
    structure:
        fallback = 1;
        goto done;
    }
    if (r.p != r.end) {
        fallback = 1;
        goto done;
    }
    result = Py_BuildValue(
        "(ny#y#y#y#y#y#y#y#y#y#y#O)", count, c.types.data, (Py_ssize_t)c.types.len, c.recv.data,
        (Py_ssize_t)c.recv.len, c.seq.data, (Py_ssize_t)c.seq.len, c.kinds.data,
        (Py_ssize_t)c.kinds.len, c.keys.data, (Py_ssize_t)c.keys.len, c.first.data,
        (Py_ssize_t)c.first.len, c.last.data, (Py_ssize_t)c.last.len, c.lrow.data,
        (Py_ssize_t)c.lrow.len, c.lside.data, (Py_ssize_t)c.lside.len, c.lprice.data,
        (Py_ssize_t)c.lprice.len, c.lqty.data, (Py_ssize_t)c.lqty.len, keys.names);
    goto done;
nomem:
    PyErr_NoMemory();
done:
    cols_free(&c);
    free(keys.slots);
    Py_XDECREF(keys.names);
    Py_XDECREF(keys.index);
    PyBuffer_Release(&view);
    if (result == NULL && fallback && !PyErr_Occurred())
        Py_RETURN_NONE;
    return result;
}


/* ------------------------------------------------------------ top of book along a series */

/* One side: prices sorted with the best LAST (bids ascending, asks descending), quantities
 * beside them. */
typedef struct {
    double *p, *q;
    Py_ssize_t n, cap;
    int descending;
} Side;

/* Index of the first price not before `price` in the side's order. */
static Py_ssize_t
side_pos(const Side *s, double price)
{
    Py_ssize_t lo = 0, hi = s->n;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        int before = s->descending ? s->p[mid] > price : s->p[mid] < price;
        if (before)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int
side_set(Side *s, double price, double qty)
{
    Py_ssize_t i = side_pos(s, price);
    int found = i < s->n && s->p[i] == price;
    if (qty != 0.0) {
        if (found) {
            s->q[i] = qty;
            return 0;
        }
        if (s->n == s->cap) {
            Py_ssize_t cap = s->cap ? 2 * s->cap : 256;
            double *np_ = realloc(s->p, cap * sizeof(double));
            if (np_ == NULL)
                return -1;
            s->p = np_;
            double *nq = realloc(s->q, cap * sizeof(double));
            if (nq == NULL)
                return -1;
            s->q = nq;
            s->cap = cap;
        }
        memmove(s->p + i + 1, s->p + i, (s->n - i) * sizeof(double));
        memmove(s->q + i + 1, s->q + i, (s->n - i) * sizeof(double));
        s->p[i] = price;
        s->q[i] = qty;
        s->n++;
    }
    else if (found) {
        memmove(s->p + i, s->p + i + 1, (s->n - i - 1) * sizeof(double));
        memmove(s->q + i, s->q + i + 1, (s->n - i - 1) * sizeof(double));
        s->n--;
    }
    return 0;
}

static int
get_buf(PyObject *o, Py_buffer *b, Py_ssize_t item)
{
    if (PyObject_GetBuffer(o, b, PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (b->len % item) {
        PyBuffer_Release(b);
        PyErr_SetString(PyExc_ValueError, "column length is not whole items");
        return -1;
    }
    return 0;
}

/* top_series(ops u8, starts i64, counts i64, sides u8, prices f64, qtys f64) -> bytes of
 * 4 doubles per emitted step (best bid price, its quantity, best ask price, its quantity; NaN
 * for an empty side). Step i applies rows starts[i] .. starts[i] + counts[i] - 1; ops bit 0:
 * empty the book first (a snapshot or a Kite tick replaces it), bit 1: emit after the step. */
static PyObject *
top_series(PyObject *self, PyObject *args)
{
    PyObject *o[6];
    if (!PyArg_ParseTuple(args, "OOOOOO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5]))
        return NULL;
    Py_buffer b[6];
    const Py_ssize_t item[6] = {1, 8, 8, 1, 8, 8};
    int got = 0;
    PyObject *result = NULL;
    Side sides[2] = {{NULL, NULL, 0, 0, 0}, {NULL, NULL, 0, 0, 1}};
    double *out = NULL;
    for (; got < 6; got++)
        if (get_buf(o[got], &b[got], item[got]) < 0)
            goto done;
    const uint8_t *ops = b[0].buf;
    const int64_t *starts = b[1].buf, *counts = b[2].buf;
    const uint8_t *side = b[3].buf;
    const double *price = b[4].buf, *qty = b[5].buf;
    Py_ssize_t steps = b[0].len, rows = b[3].len;
    if (b[1].len / 8 != steps || b[2].len / 8 != steps || b[4].len / 8 != rows ||
        b[5].len / 8 != rows) {
        PyErr_SetString(PyExc_ValueError, "columns of different lengths");
        goto done;
    }
    Py_ssize_t emits = 0;
    for (Py_ssize_t i = 0; i < steps; i++)
        emits += (ops[i] & 2) != 0;
    out = malloc((emits ? emits : 1) * 4 * sizeof(double));
    if (out == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < steps; i++) {
        if (ops[i] & 1)
            sides[0].n = sides[1].n = 0;
        int64_t a = starts[i], e = starts[i] + counts[i];
        if (a < 0 || counts[i] < 0 || e > rows) {
            PyErr_SetString(PyExc_ValueError, "a step's rows are outside the columns");
            goto done;
        }
        for (int64_t r = a; r < e; r++)
            if (side_set(&sides[side[r] ? 1 : 0], price[r], qty[r]) < 0) {
                PyErr_NoMemory();
                goto done;
            }
        if (ops[i] & 2) {
            double *row = out + 4 * k++;
            for (int s = 0; s < 2; s++) {
                const Side *sd = &sides[s];
                row[2 * s] = sd->n ? sd->p[sd->n - 1] : Py_NAN;
                row[2 * s + 1] = sd->n ? sd->q[sd->n - 1] : Py_NAN;
            }
        }
    }
    result = PyBytes_FromStringAndSize((const char *)out, (Py_ssize_t)(emits * 4 * sizeof(double)));
done:
    for (int i = 0; i < got; i++)
        PyBuffer_Release(&b[i]);
    for (int s = 0; s < 2; s++) {
        free(sides[s].p);
        free(sides[s].q);
    }
    free(out);
    return result;
}

static PyMethodDef methods[] = {
    {"scan_frame", scan_frame, METH_VARARGS,
     "scan_frame(payload, only=None): a frame payload's records as columns (see "
     "shriven.replay.colscan), or None."},
    {"top_series", top_series, METH_VARARGS,
     "Best bid and ask after each step of level rows (see shriven.replay.topbook)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_colscan", "A WAL frame read into columns in C.", -1, methods,
};

PyMODINIT_FUNC
PyInit__colscan(void)
{
    return PyModule_Create(&module);
}
