/* Writing msgpack as msgpack-python's Packer(use_bin_type=True) writes it, into a growable
 * buffer: shared by shriven.book._levels (a diff's level arrays) and shriven._kitetick (a held
 * Kite tick's wire form), whose outputs are checked byte for byte against msgpack-python. */
#ifndef SHRIVEN_MSGPACK_WRITE_H
#define SHRIVEN_MSGPACK_WRITE_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

/* A growable buffer. It may start in the caller's stack space (BUF_INIT): a diff's levels fit
 * there, and the heap buffers a call otherwise took cost about as much as reading its levels.
 * ``stack`` is that space (data until it outgrows it, never freed), or NULL for a buffer that is
 * on the heap from the start ({NULL, 0, 0}). */
typedef struct {
    char *data;
    Py_ssize_t len, cap;
    char *stack;
} Buf;

#define BUF_STACK 2048
#define BUF_INIT(space) {(space), 0, (Py_ssize_t)sizeof(space), (space)}

/* Room for ``extra`` more bytes; -1 with MemoryError set. Free with buf_free. */
static int
buf_grow(Buf *b, Py_ssize_t extra)
{
    if (b->len + extra <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    char *data;
    if (b->stack != NULL && b->data == b->stack) {
        data = PyMem_Malloc((size_t)cap);
        if (data != NULL && b->len)
            memcpy(data, b->data, (size_t)b->len);
    }
    else {
        data = PyMem_Realloc(b->data, (size_t)cap);
    }
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static void
buf_free(Buf *b)
{
    if (b->data != b->stack)
        PyMem_Free(b->data);
}

/* The writers below assume the room is there (at most 9 bytes each). */

static void
put_array_header(Buf *b, Py_ssize_t n)
{
    unsigned char *o = (unsigned char *)b->data + b->len;
    if (n < 16) {
        o[0] = (unsigned char)(0x90 | n);
        b->len += 1;
    }
    else if (n < 65536) {
        o[0] = 0xdc;
        o[1] = (unsigned char)(n >> 8);
        o[2] = (unsigned char)n;
        b->len += 3;
    }
    else {
        o[0] = 0xdd;
        o[1] = (unsigned char)(n >> 24);
        o[2] = (unsigned char)(n >> 16);
        o[3] = (unsigned char)(n >> 8);
        o[4] = (unsigned char)n;
        b->len += 5;
    }
}

/* An integer in its shortest form */
static inline void
put_uint(Buf *b, uint64_t v)
{
    unsigned char *o = (unsigned char *)b->data + b->len;
    if (v < 128) {
        o[0] = (unsigned char)v;
        b->len += 1;
    }
    else if (v < 256) {
        o[0] = 0xcc;
        o[1] = (unsigned char)v;
        b->len += 2;
    }
    else if (v < 65536) {
        o[0] = 0xcd;
        o[1] = (unsigned char)(v >> 8);
        o[2] = (unsigned char)v;
        b->len += 3;
    }
    else if (v < 4294967296ULL) {
        o[0] = 0xce;
        for (int k = 0; k < 4; k++)
            o[1 + k] = (unsigned char)(v >> (24 - 8 * k));
        b->len += 5;
    }
    else {
        o[0] = 0xcf;
        for (int k = 0; k < 8; k++)
            o[1 + k] = (unsigned char)(v >> (56 - 8 * k));
        b->len += 9;
    }
}

static inline void
put_int(Buf *b, int64_t v)
{
    if (v >= 0) {
        put_uint(b, (uint64_t)v);
        return;
    }
    unsigned char *o = (unsigned char *)b->data + b->len;
    uint64_t u = (uint64_t)v;
    if (v >= -32) {
        o[0] = (unsigned char)(u & 0xff);
        b->len += 1;
    }
    else if (v >= -128) {
        o[0] = 0xd0;
        o[1] = (unsigned char)(u & 0xff);
        b->len += 2;
    }
    else if (v >= -32768) {
        o[0] = 0xd1;
        o[1] = (unsigned char)((u >> 8) & 0xff);
        o[2] = (unsigned char)(u & 0xff);
        b->len += 3;
    }
    else if (v >= -2147483648LL) {
        o[0] = 0xd2;
        for (int k = 0; k < 4; k++)
            o[1 + k] = (unsigned char)((u >> (24 - 8 * k)) & 0xff);
        b->len += 5;
    }
    else {
        o[0] = 0xd3;
        for (int k = 0; k < 8; k++)
            o[1 + k] = (unsigned char)((u >> (56 - 8 * k)) & 0xff);
        b->len += 9;
    }
}

#endif
