/* Kite ticks in C: binary ticker messages -> KiteTick records, a full tick's fields read from its
 * packet only when something asks, and its WAL wire form written straight from the packet.
 *
 * Optional: shriven.feeds.kite.protocol.py_parse_message and shriven.events.py_encode_batch are
 * the pure-Python references (and the fallbacks when this module is not built);
 * tests/feeds/kite/test_kitetick_accel.py checks both give the same records and the same bytes.
 *
 * Why: a full tick is 184 bytes on the wire and was about 60 Python objects once parsed (21 ints,
 * 12 tuples, 30 level ints), which cost 10.8 us of the 30 us a tick the recorder spent
 * (benchmarks/ingest_stages.py), and the WAL encoder then walked them all again. The recorder
 * itself reads only the token and the mode of most ticks: the books read the last full tick of
 * each instrument per batch, the WAL needs only the bytes.
 *
 * A *held* tick: a KiteTick whose ``bids`` slot holds the packet (an exact bytes of 184) and whose
 * ``asks`` slot is empty; recv_ns, seq, instrument_token and mode are set, every other slot is
 * empty. install() replaces the class's slot descriptors by LazySlot descriptors: reading or
 * setting any field of a held tick first decodes the packet into every slot (after which it is a
 * plain KiteTick), so equality, repr, pickling, dataclasses.replace and asdict see the same
 * record the pure-Python parser builds.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#include "msgpack_write.h"

#define FULL_LEN 184
#define NFIELDS 22
/* KiteTick's fields, in declaration order (install() is handed the names and checks them) */
enum {
    F_RECV_NS, F_SEQ, F_TOKEN, F_MODE, F_LAST_PRICE, F_LTQ, F_ATP, F_VOLUME, F_BUY_QTY,
    F_SELL_QTY, F_OPEN, F_HIGH, F_LOW, F_CLOSE, F_LTT, F_OI, F_OI_HIGH, F_OI_LOW, F_TS, F_BIDS,
    F_ASKS, F_CHANGE
};

static PyTypeObject *tick_type = NULL; /* KiteTick, once installed */
static Py_ssize_t offsets[NFIELDS];
static PyObject *field_names = NULL;   /* tuple of the 22 names */
static PyObject *mode_ltp, *mode_quote, *mode_full;
static PyObject *small_zero;

#define SLOT(obj, i) (*(PyObject **)((char *)(obj) + offsets[i]))

static inline uint32_t
be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint16_t
be16(const unsigned char *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static inline int
is_held(PyObject *obj)
{
    PyObject *b = SLOT(obj, F_BIDS);
    return SLOT(obj, F_ASKS) == NULL && b != NULL && PyBytes_CheckExact(b) &&
           PyBytes_GET_SIZE(b) == FULL_LEN;
}

/* (price, quantity, orders) levels of one side: wire entries are qty, price, orders, 2 pad */
static PyObject *
side_tuple(const unsigned char *p)
{
    PyObject *side = PyTuple_New(5);
    if (side == NULL)
        return NULL;
    for (int i = 0; i < 5; i++, p += 12) {
        PyObject *lvl = PyTuple_New(3);
        if (lvl == NULL)
            goto fail;
        PyTuple_SET_ITEM(side, i, lvl);
        PyObject *v;
        if ((v = PyLong_FromUnsignedLong(be32(p + 4))) == NULL)
            goto fail;
        PyTuple_SET_ITEM(lvl, 0, v);
        if ((v = PyLong_FromUnsignedLong(be32(p))) == NULL)
            goto fail;
        PyTuple_SET_ITEM(lvl, 1, v);
        if ((v = PyLong_FromLong(be16(p + 8))) == NULL)
            goto fail;
        PyTuple_SET_ITEM(lvl, 2, v);
    }
    return side;
fail:
    Py_DECREF(side); /* a tuple's unset items are NULL, which its dealloc skips */
    return NULL;
}

/* Decode a held tick's packet into its slots; -1 with an exception (slots unchanged). */
static int
unhold(PyObject *obj)
{
    PyObject *packet = Py_NewRef(SLOT(obj, F_BIDS)); /* kept alive while p is read */
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(packet);
    PyObject *vals[15];
    PyObject *bids, *asks;
    int i;
    for (i = 0; i < 15; i++) {
        vals[i] = PyLong_FromUnsignedLong(be32(p + 4 + 4 * i));
        if (vals[i] == NULL)
            goto fail;
    }
    bids = side_tuple(p + 64);
    if (bids == NULL)
        goto fail;
    asks = side_tuple(p + 124);
    if (asks == NULL) {
        Py_DECREF(bids);
        goto fail;
    }
    if (!is_held(obj)) { /* decoded meanwhile (a finalizer run by a collection above) */
        Py_DECREF(bids);
        Py_DECREF(asks);
        i = 15;
        goto fail_ok;
    }
    for (int k = 0; k < 15; k++)
        Py_XSETREF(SLOT(obj, F_LAST_PRICE + k), vals[k]);
    SLOT(obj, F_BIDS) = bids;
    SLOT(obj, F_ASKS) = asks;
    Py_INCREF(small_zero);
    Py_XSETREF(SLOT(obj, F_CHANGE), small_zero);
    Py_DECREF(packet); /* the slot's reference */
    Py_DECREF(packet);
    return 0;
fail_ok:
    while (--i >= 0)
        Py_DECREF(vals[i]);
    Py_DECREF(packet);
    return 0;
fail:
    while (--i >= 0)
        Py_DECREF(vals[i]);
    Py_DECREF(packet);
    return -1;
}

/* ------------------------------------------------------------------ the slot descriptor */

typedef struct {
    PyObject_HEAD
    int index;
} LazySlot;

static PyObject *
lazy_get(PyObject *self, PyObject *obj, PyObject *type)
{
    if (obj == NULL || obj == Py_None) {
        Py_INCREF(self);
        return self;
    }
    if (!PyObject_TypeCheck(obj, tick_type)) {
        PyErr_SetString(PyExc_TypeError, "descriptor for KiteTick applied to another type");
        return NULL;
    }
    int i = ((LazySlot *)self)->index;
    PyObject *v = SLOT(obj, i);
    if (v != NULL && i != F_BIDS) /* a held tick's set scalars are final */
        return Py_NewRef(v);
    if (is_held(obj)) {
        if (unhold(obj) < 0)
            return NULL;
        v = SLOT(obj, i);
    }
    if (v == NULL) {
        PyErr_Format(PyExc_AttributeError, "'KiteTick' object has no attribute '%U'",
                     PyTuple_GET_ITEM(field_names, i));
        return NULL;
    }
    return Py_NewRef(v);
}

static int
lazy_set(PyObject *self, PyObject *obj, PyObject *value)
{
    if (!PyObject_TypeCheck(obj, tick_type)) {
        PyErr_SetString(PyExc_TypeError, "descriptor for KiteTick applied to another type");
        return -1;
    }
    int i = ((LazySlot *)self)->index;
    if (is_held(obj) && unhold(obj) < 0) /* the other fields must not be lost */
        return -1;
    PyObject *old = SLOT(obj, i);
    if (value != NULL && PyObject_IS_GC(value) && !PyObject_GC_IsTracked(obj))
        PyObject_GC_Track(obj);
    if (value == NULL && old == NULL) {
        PyErr_Format(PyExc_AttributeError, "'KiteTick' object has no attribute '%U'",
                     PyTuple_GET_ITEM(field_names, i));
        return -1;
    }
    SLOT(obj, i) = Py_XNewRef(value);
    Py_XDECREF(old);
    return 0;
}

static PyObject *
lazy_repr(PyObject *self)
{
    return PyUnicode_FromFormat("<lazy slot %R of KiteTick>",
                                PyTuple_GET_ITEM(field_names, ((LazySlot *)self)->index));
}

static PyTypeObject LazySlotType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "shriven._kitetick.LazySlot",
    .tp_basicsize = sizeof(LazySlot),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A KiteTick field read from its packet on first use.",
    .tp_descr_get = lazy_get,
    .tp_descr_set = lazy_set,
    .tp_repr = lazy_repr,
};

/* install(cls, names, modes): take over cls's slot descriptors (see the top of this file). */
static PyObject *
kt_install(PyObject *module, PyObject *args)
{
    PyObject *cls, *names, *modes;
    if (!PyArg_ParseTuple(args, "O!O!O!", &PyType_Type, &cls, &PyTuple_Type, &names,
                          &PyTuple_Type, &modes))
        return NULL;
    if (tick_type != NULL) {
        if ((PyObject *)tick_type == cls)
            Py_RETURN_NONE;
        PyErr_SetString(PyExc_RuntimeError, "another class is already installed");
        return NULL;
    }
    if (PyTuple_GET_SIZE(names) != NFIELDS || PyTuple_GET_SIZE(modes) != 3) {
        PyErr_SetString(PyExc_ValueError, "expected 22 field names and 3 modes");
        return NULL;
    }
    PyObject *dict = ((PyTypeObject *)cls)->tp_dict;
    for (int i = 0; i < NFIELDS; i++) {
        PyObject *d = PyDict_GetItemWithError(dict, PyTuple_GET_ITEM(names, i));
        if (d == NULL || Py_TYPE(d) != &PyMemberDescr_Type) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError, "%R is not a slot of the class",
                             PyTuple_GET_ITEM(names, i));
            return NULL;
        }
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type != T_OBJECT_EX || (m->flags & READONLY)) {
            PyErr_Format(PyExc_TypeError, "%R is not a plain slot", PyTuple_GET_ITEM(names, i));
            return NULL;
        }
        offsets[i] = m->offset;
    }
    for (int i = 0; i < NFIELDS; i++) {
        LazySlot *d = PyObject_New(LazySlot, &LazySlotType);
        if (d == NULL)
            return NULL;
        d->index = i;
        int rc = PyObject_SetAttr(cls, PyTuple_GET_ITEM(names, i), (PyObject *)d);
        Py_DECREF(d);
        if (rc < 0)
            return NULL;
    }
    tick_type = (PyTypeObject *)Py_NewRef(cls);
    field_names = Py_NewRef(names);
    mode_ltp = Py_NewRef(PyTuple_GET_ITEM(modes, 0));
    mode_quote = Py_NewRef(PyTuple_GET_ITEM(modes, 1));
    mode_full = Py_NewRef(PyTuple_GET_ITEM(modes, 2));
    Py_RETURN_NONE;
}

static PyObject *
kt_packet(PyObject *module, PyObject *obj)
{
    if (tick_type != NULL && Py_IS_TYPE(obj, tick_type) && is_held(obj))
        return Py_NewRef(SLOT(obj, F_BIDS));
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ parsing */

static PyObject *
new_tick(PyObject *recv_ns, long long seq, uint32_t token, PyObject *mode)
{
    PyObject *t = tick_type->tp_alloc(tick_type, 0);
    if (t == NULL)
        return NULL;
    SLOT(t, F_RECV_NS) = Py_NewRef(recv_ns);
    if ((SLOT(t, F_SEQ) = PyLong_FromLongLong(seq)) == NULL ||
        (SLOT(t, F_TOKEN) = PyLong_FromUnsignedLong(token)) == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    SLOT(t, F_MODE) = Py_NewRef(mode);
    /* Its slots hold ints, a str and bytes (tuples of ints once decoded): it can be in no
     * reference cycle, so the cyclic GC need not scan it. With thousands of ticks queued, those
     * scans were half the parse (benchmarks/ingest_stages.py). lazy_set tracks it again if a
     * field is set to a container. */
    PyObject_GC_UnTrack(t);
    return t;
}

/* Fill slots from..F_CHANGE of an eagerly parsed tick: words[k] goes to slot F_LAST_PRICE + k,
 * missing ones are 0, depth is empty, change as given. */
static int
fill(PyObject *t, const uint32_t *words, int nwords, long change)
{
    for (int k = 0; k < 15; k++) {
        PyObject *v = k < nwords ? PyLong_FromUnsignedLong(words[k]) : Py_NewRef(small_zero);
        if (v == NULL)
            return -1;
        SLOT(t, F_LAST_PRICE + k) = v;
    }
    PyObject *empty = PyTuple_New(0);
    if (empty == NULL)
        return -1;
    SLOT(t, F_BIDS) = Py_NewRef(empty);
    SLOT(t, F_ASKS) = empty;
    return (SLOT(t, F_CHANGE) = PyLong_FromLong(change)) == NULL ? -1 : 0;
}

static PyObject *
parse_packet(const unsigned char *p, Py_ssize_t length, PyObject *recv_ns, long long seq)
{
    uint32_t w[15];
    PyObject *t;
    if (length == FULL_LEN) {
        t = new_tick(recv_ns, seq, be32(p), mode_full);
        if (t != NULL && (SLOT(t, F_BIDS) = PyBytes_FromStringAndSize((const char *)p,
                                                                     FULL_LEN)) == NULL)
            Py_CLEAR(t);
        return t;
    }
    if (length == 8) {
        t = new_tick(recv_ns, seq, be32(p), mode_ltp);
        w[0] = be32(p + 4);
        if (t != NULL && fill(t, w, 1, 0) < 0)
            Py_CLEAR(t);
        return t;
    }
    if (length == 44) {
        t = new_tick(recv_ns, seq, be32(p), mode_quote);
        for (int k = 0; k < 10; k++)
            w[k] = be32(p + 4 + 4 * k);
        if (t != NULL && fill(t, w, 10, 0) < 0)
            Py_CLEAR(t);
        return t;
    }
    /* 28 / 32: token, ltp, high, low, open, close, change (signed)[, exchange timestamp] */
    t = new_tick(recv_ns, seq, be32(p), length == 32 ? mode_full : mode_quote);
    if (t == NULL)
        return NULL;
    memset(w, 0, sizeof w); /* record order: ltp, 5 zeros, open, high, low, close, ... */
    w[0] = be32(p + 4);
    w[6] = be32(p + 16);  /* open */
    w[7] = be32(p + 8);   /* high */
    w[8] = be32(p + 12);  /* low */
    w[9] = be32(p + 20);  /* close */
    if (length == 32)
        w[14] = be32(p + 28); /* exchange timestamp */
    if (fill(t, w, 15, (long)(int32_t)be32(p + 24)) < 0)
        Py_CLEAR(t);
    return t;
}

static int
add_problem(PyObject **problems, const char *kind, PyObject *what)
{
    if (what == NULL)
        return -1;
    if (*problems == NULL && (*problems = PyList_New(0)) == NULL) {
        Py_DECREF(what);
        return -1;
    }
    PyObject *item = Py_BuildValue("(sN)", kind, what);
    if (item == NULL)
        return -1;
    int rc = PyList_Append(*problems, item);
    Py_DECREF(item);
    return rc;
}

/* parse_message(data, recv_ns, seq) -> (ticks, last seq, [(kind, problem), ...] or None) */
static PyObject *
kt_parse_message(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "parse_message(data, recv_ns, seq)");
        return NULL;
    }
    if (tick_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "install() KiteTick first");
        return NULL;
    }
    Py_buffer buf;
    if (PyObject_GetBuffer(args[0], &buf, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *recv_ns = args[1];
    long long n = PyLong_AsLongLong(args[2]);
    PyObject *ticks = NULL, *problems = NULL, *result = NULL;
    if (n == -1 && PyErr_Occurred())
        goto done;
    const unsigned char *data = buf.buf;
    Py_ssize_t size = buf.len;
    if (size < 2) {
        ticks = PyList_New(0);
        goto out;
    }
    unsigned count = be16(data);
    ticks = PyList_New(0);
    if (ticks == NULL)
        goto done;
    Py_ssize_t off = 2;
    unsigned i;
    for (i = 0; i < count; i++) {
        if (off + 2 > size) {
            if (add_problem(&problems, "kite_truncated",
                            PyUnicode_FromFormat("packet count %u overruns the message", count)))
                goto done;
            break;
        }
        Py_ssize_t length = be16(data + off);
        off += 2;
        Py_ssize_t end = off + length;
        if (end > size) {
            if (add_problem(&problems, "kite_truncated",
                            PyUnicode_FromFormat("packet of %zd bytes at offset %zd overruns the "
                                                 "message of %zd", length, off, size)))
                goto done;
            break;
        }
        if (length == 8 || length == 28 || length == 32 || length == 44 || length == FULL_LEN) {
            PyObject *t = parse_packet(data + off, length, recv_ns, ++n);
            if (t == NULL)
                goto done;
            int rc = PyList_Append(ticks, t);
            Py_DECREF(t);
            if (rc < 0)
                goto done;
        }
        else if (add_problem(&problems, "kite_packet_length",
                             PyUnicode_FromFormat("unexpected packet length %zd", length)))
            goto done;
        off = end;
    }
    if (i == count && off != size &&
        add_problem(&problems, "kite_trailing_bytes",
                    PyUnicode_FromFormat("%zd bytes after %u packets", size - off, count)))
        goto done;
out:
    if (ticks != NULL)
        result = Py_BuildValue("(OLO)", ticks, n, problems ? problems : Py_None);
done:
    Py_XDECREF(ticks);
    Py_XDECREF(problems);
    PyBuffer_Release(&buf);
    return result;
}

/* ------------------------------------------------------------------ the WAL wire form */

/* A held tick's wire array, [1, 1, recv_ns, seq, token, 2, 15 words, bids, asks, 0]; 1 when its
 * recv_ns or seq is not an int64 (the caller encodes it the slow way, which says why). */
static int
put_held(Buf *b, PyObject *t)
{
    /* Decoded since the caller checked (by the run encoder's Python code or another thread)?
     * Then the encoder writes it. Asked again after the conversions, which may run __index__. */
    if (!is_held(t))
        return 1;
    PyObject *ns_obj = Py_NewRef(SLOT(t, F_RECV_NS)), *seq_obj = Py_NewRef(SLOT(t, F_SEQ));
    int overflow, overflow2;
    long long recv_ns = PyLong_AsLongLongAndOverflow(ns_obj, &overflow);
    if (overflow || (recv_ns == -1 && PyErr_Occurred()))
        overflow = 1;
    long long seq = overflow ? 0 : PyLong_AsLongLongAndOverflow(seq_obj, &overflow2);
    if (!overflow && (overflow2 || (seq == -1 && PyErr_Occurred())))
        overflow = 1;
    Py_DECREF(ns_obj);
    Py_DECREF(seq_obj);
    if (overflow || !is_held(t)) { /* no Python code runs from here on */
        PyErr_Clear();
        return 1;
    }
    /* 3 + 2 + 9 + 9 + 16 * 5 + 2 * (1 + 15 * 5) + 1 */
    if (buf_grow(b, 260) < 0)
        return -1;
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(SLOT(t, F_BIDS));
    unsigned char *o = (unsigned char *)b->data + b->len;
    o[0] = 0xdc; /* array of 24 */
    o[1] = 0;
    o[2] = 24;
    o[3] = 1; /* KiteTick.TYPE */
    o[4] = 1; /* WIRE_VERSION */
    b->len += 5;
    put_int(b, recv_ns);
    put_int(b, seq);
    put_uint(b, be32(p));
    b->data[b->len++] = 2; /* mode "full" */
    for (int k = 0; k < 15; k++)
        put_uint(b, be32(p + 4 + 4 * k));
    for (int s = 0; s < 2; s++) {
        const unsigned char *d = p + 64 + 60 * s;
        b->data[b->len++] = (char)0x9f; /* 15 ints: price, quantity, orders of 5 levels */
        for (int k = 0; k < 5; k++, d += 12) {
            put_uint(b, be32(d + 4));
            put_uint(b, be32(d));
            put_uint(b, be16(d + 8));
        }
    }
    b->data[b->len++] = 0; /* change */
    return 0;
}

/* Skip the array header msgpack-python wrote at the start of an encoded batch. */
static Py_ssize_t
header_size(const unsigned char *p, Py_ssize_t n)
{
    if (n >= 1 && (p[0] & 0xf0) == 0x90)
        return 1;
    if (n >= 3 && p[0] == 0xdc)
        return 3;
    if (n >= 5 && p[0] == 0xdd)
        return 5;
    return -1;
}

static int
put_run(Buf *b, PyObject *records, Py_ssize_t lo, Py_ssize_t hi, PyObject *encode)
{
    PyObject *run = PyList_GetSlice(records, lo, hi);
    if (run == NULL)
        return -1;
    PyObject *out = PyObject_CallOneArg(encode, run);
    Py_DECREF(run);
    if (out == NULL)
        return -1;
    if (!PyBytes_Check(out)) {
        Py_DECREF(out);
        PyErr_SetString(PyExc_TypeError, "the batch encoder must return bytes");
        return -1;
    }
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(out);
    Py_ssize_t n = PyBytes_GET_SIZE(out);
    Py_ssize_t h = header_size(p, n);
    if (h < 0) {
        Py_DECREF(out);
        PyErr_SetString(PyExc_ValueError, "the batch encoder did not write a msgpack array");
        return -1;
    }
    int rc = buf_grow(b, n - h);
    if (rc == 0) {
        memcpy(b->data + b->len, p + h, n - h);
        b->len += n - h;
    }
    Py_DECREF(out);
    return rc;
}

/* pack_batch(records, encode) -> bytes: encode(records) (a msgpack array of their wire forms),
 * with every held tick written here from its packet; runs of other records go to encode. */
static PyObject *
kt_pack_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "pack_batch(records, encode)");
        return NULL;
    }
    PyObject *records = args[0], *encode = args[1];
    if (!PyList_CheckExact(records))
        return PyObject_CallOneArg(encode, records);
    Py_ssize_t n = PyList_GET_SIZE(records);
    Py_ssize_t i;
    for (i = 0; i < n; i++) {
        PyObject *r = PyList_GET_ITEM(records, i);
        if (tick_type != NULL && Py_IS_TYPE(r, tick_type) && is_held(r))
            break;
    }
    if (i == n) /* no held tick: nothing to do here */
        return PyObject_CallOneArg(encode, records);
    /* encode is Python code, which may change the caller's list or (the GIL passing to another
     * thread) decode a tick: work on our own references, and put_held checks again */
    records = PyList_GetSlice(records, 0, n);
    if (records == NULL)
        return NULL;
    Buf b = {NULL, 0, 0, NULL};
    if (buf_grow(&b, 5 + n * 200) < 0)
        goto fail;
    put_array_header(&b, n);
    Py_ssize_t run = 0; /* first record not yet written */
    for (i = 0; i < n; i++) {
        PyObject *r = PyList_GET_ITEM(records, i);
        if (!(Py_IS_TYPE(r, tick_type) && is_held(r)))
            continue;
        if (run < i && put_run(&b, records, run, i, encode) < 0)
            goto fail;
        int rc = put_held(&b, r);
        if (rc < 0)
            goto fail;
        run = rc == 0 ? i + 1 : i;
    }
    if (run < n && put_run(&b, records, run, n, encode) < 0)
        goto fail;
    PyObject *out = PyBytes_FromStringAndSize(b.data, b.len);
    PyMem_Free(b.data);
    Py_DECREF(records);
    return out;
fail:
    PyMem_Free(b.data);
    Py_DECREF(records);
    return NULL;
}

/* kite_sides(tick, divisor) -> ([(price, qty), ...] bids, asks) of a held tick's depth, the
 * levels with a price and a quantity, in rupees (wire price / divisor) and as floats; None for a
 * tick not held (the caller reads its fields). */
static PyObject *
side_pairs(const unsigned char *d, double div)
{
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (int k = 0; k < 5; k++, d += 12) {
        uint32_t qty = be32(d), price = be32(d + 4);
        if (!qty || !price)
            continue;
        PyObject *pair = PyTuple_New(2), *v;
        if (pair == NULL)
            goto fail;
        if ((v = PyFloat_FromDouble((double)price / div)) == NULL) {
            Py_DECREF(pair);
            goto fail;
        }
        PyTuple_SET_ITEM(pair, 0, v);
        if ((v = PyFloat_FromDouble((double)qty)) == NULL) {
            Py_DECREF(pair);
            goto fail;
        }
        PyTuple_SET_ITEM(pair, 1, v);
        int rc = PyList_Append(out, pair);
        Py_DECREF(pair);
        if (rc < 0)
            goto fail;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyObject *
kt_kite_sides(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "kite_sides(tick, divisor)");
        return NULL;
    }
    PyObject *t = args[0];
    if (tick_type == NULL || !Py_IS_TYPE(t, tick_type) || !is_held(t))
        Py_RETURN_NONE;
    long div = PyLong_AsLong(args[1]);
    if (div == -1 && PyErr_Occurred())
        return NULL;
    if (div <= 0 || div > (1L << 52)) {
        PyErr_SetString(PyExc_ValueError, "divisor must be a positive int");
        return NULL;
    }
    if (!is_held(t)) /* decoded by the divisor's __index__ */
        Py_RETURN_NONE;
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(SLOT(t, F_BIDS));
    PyObject *bids = side_pairs(p + 64, (double)div);
    if (bids == NULL)
        return NULL;
    PyObject *asks = side_pairs(p + 124, (double)div);
    if (asks == NULL) {
        Py_DECREF(bids);
        return NULL;
    }
    return Py_BuildValue("(NN)", bids, asks);
}

/* split_batch(records, latest) -> (recv_ns of the last KiteTick or None, the records left): the
 * recorder's pass over a batch's Kite ticks, shriven.pipeline.recorder.py_split_batch in C.
 * Every full tick goes into latest by token, in order; what is left to check one by one is every
 * record but the held ticks. */
static PyObject *
kt_split_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "split_batch(records: list, latest: dict)");
        return NULL;
    }
    PyObject *records = args[0], *latest = args[1];
    Py_ssize_t n = PyList_GET_SIZE(records);
    PyObject *rest = PyList_New(0);
    if (rest == NULL)
        return NULL;
    PyObject *last = NULL;
    /* a mode that is not the str "full" compares in Python, which may change the list */
    for (Py_ssize_t i = 0; i < n && i < PyList_GET_SIZE(records); i++) {
        PyObject *r = PyList_GET_ITEM(records, i);
        if (tick_type == NULL || !Py_IS_TYPE(r, tick_type)) {
            if (PyList_Append(rest, r) < 0)
                goto fail;
            continue;
        }
        int held = is_held(r);
        PyObject *recv_ns = SLOT(r, F_RECV_NS), *mode = SLOT(r, F_MODE);
        PyObject *token = SLOT(r, F_TOKEN);
        if (recv_ns == NULL || mode == NULL || token == NULL) { /* deleted: the check says */
            if (PyList_Append(rest, r) < 0)
                goto fail;
            continue;
        }
        Py_XSETREF(last, Py_NewRef(recv_ns));
        int full = mode == mode_full, rc = 0;
        if (!full) {
            Py_INCREF(r);
            Py_INCREF(token);
            Py_INCREF(mode);
            full = PyObject_RichCompareBool(mode, mode_full, Py_EQ);
            rc = full < 0 || (full && PyDict_SetItem(latest, token, r) < 0) ||
                 (!held && PyList_Append(rest, r) < 0);
            Py_DECREF(mode);
            Py_DECREF(token);
            Py_DECREF(r);
        }
        else {
            rc = PyDict_SetItem(latest, token, r) < 0 || (!held && PyList_Append(rest, r) < 0);
        }
        if (rc)
            goto fail;
    }
    PyObject *out = Py_BuildValue("(ON)", last ? last : Py_None, rest);
    Py_XDECREF(last);
    return out;
fail:
    Py_XDECREF(last);
    Py_DECREF(rest);
    return NULL;
}

static PyMethodDef kt_methods[] = {
    {"install", kt_install, METH_VARARGS,
     "install(KiteTick, field names, modes): its fields become readable from a held packet"},
    {"packet", kt_packet, METH_O, "packet(record) -> the packet a held tick holds, else None"},
    {"parse_message", (PyCFunction)(void (*)(void))kt_parse_message, METH_FASTCALL,
     "parse_message(data, recv_ns, seq) -> (ticks, last seq, problems or None)"},
    {"pack_batch", (PyCFunction)(void (*)(void))kt_pack_batch, METH_FASTCALL,
     "pack_batch(records, encode) -> encode(records), held ticks written from their packets"},
    {"kite_sides", (PyCFunction)(void (*)(void))kt_kite_sides, METH_FASTCALL,
     "kite_sides(tick, divisor) -> (bid pairs, ask pairs) of a held tick's depth, or None"},
    {"split_batch", (PyCFunction)(void (*)(void))kt_split_batch, METH_FASTCALL,
     "split_batch(records, latest) -> (last KiteTick's recv_ns or None, records left to check)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef kt_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "shriven._kitetick",
    .m_doc = "Kite ticks held as their packets (see shriven.events.kite_packet).",
    .m_size = -1,
    .m_methods = kt_methods,
};

PyMODINIT_FUNC
PyInit__kitetick(void)
{
    if (PyType_Ready(&LazySlotType) < 0)
        return NULL;
    small_zero = PyLong_FromLong(0);
    if (small_zero == NULL)
        return NULL;
    return PyModule_Create(&kt_module);
}
