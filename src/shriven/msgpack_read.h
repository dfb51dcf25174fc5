/* Reading msgpack bytes in place, shared by the optional C extensions (replay/_colscan.c,
 * _records.c): each reader checks that its value is whole and of the expected msgpack type and
 * returns -1 otherwise, leaving the caller to take its pure-Python path.
 */
#ifndef SHRIVEN_MSGPACK_READ_H
#define SHRIVEN_MSGPACK_READ_H

#include <Python.h>
#include <stdint.h>

typedef struct {
    const unsigned char *p, *end;
} Rd;

static int
need(Rd *r, size_t n)
{
    return (size_t)(r->end - r->p) >= n;
}

static uint64_t
be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* An array header: its length, or -1. */
static Py_ssize_t
rd_array(Rd *r)
{
    if (!need(r, 1))
        return -1;
    unsigned char c = *r->p;
    if ((c & 0xf0) == 0x90) {
        r->p++;
        return c & 0x0f;
    }
    if (c == 0xdc && need(r, 3)) {
        r->p += 3;
        return (Py_ssize_t)be(r->p - 2, 2);
    }
    if (c == 0xdd && need(r, 5)) {
        r->p += 5;
        return (Py_ssize_t)be(r->p - 4, 4);
    }
    return -1;
}

/* An integer (not a bool, not a float): 0 and *out, or -1. uint64 above int64 is refused. */
static int
rd_int(Rd *r, int64_t *out)
{
    if (!need(r, 1))
        return -1;
    unsigned char c = *r->p;
    if (c <= 0x7f) {
        *out = c;
        r->p++;
        return 0;
    }
    if (c >= 0xe0) {
        *out = (int8_t)c;
        r->p++;
        return 0;
    }
    int n;
    int sign;
    switch (c) {
    case 0xcc: n = 1; sign = 0; break;
    case 0xcd: n = 2; sign = 0; break;
    case 0xce: n = 4; sign = 0; break;
    case 0xcf: n = 8; sign = 0; break;
    case 0xd0: n = 1; sign = 1; break;
    case 0xd1: n = 2; sign = 1; break;
    case 0xd2: n = 4; sign = 1; break;
    case 0xd3: n = 8; sign = 1; break;
    default: return -1;
    }
    if (!need(r, 1 + (size_t)n))
        return -1;
    uint64_t v = be(r->p + 1, n);
    r->p += 1 + n;
    if (sign) {
        if (n == 1) *out = (int8_t)v;
        else if (n == 2) *out = (int16_t)v;
        else if (n == 4) *out = (int32_t)v;
        else *out = (int64_t)v;
    }
    else {
        if (v > (uint64_t)INT64_MAX)
            return -1;
        *out = (int64_t)v;
    }
    return 0;
}

/* A str: 0 with its bytes, or -1 (bin, nil and the rest are not strings). */
static int
rd_str(Rd *r, const char **s, Py_ssize_t *n)
{
    if (!need(r, 1))
        return -1;
    unsigned char c = *r->p;
    size_t len, hl;
    if ((c & 0xe0) == 0xa0) {
        len = c & 0x1f;
        hl = 1;
    }
    else if (c == 0xd9 && need(r, 2)) {
        len = r->p[1];
        hl = 2;
    }
    else if (c == 0xda && need(r, 3)) {
        len = be(r->p + 1, 2);
        hl = 3;
    }
    else if (c == 0xdb && need(r, 5)) {
        len = be(r->p + 1, 4);
        hl = 5;
    }
    else {
        return -1;
    }
    if (!need(r, hl + len))
        return -1;
    *s = (const char *)r->p + hl;
    *n = (Py_ssize_t)len;
    r->p += hl + len;
    return 0;
}

/* Pass over one value of any type; -1 when it is not whole. */
static int
rd_skip(Rd *r, int depth)
{
    if (!need(r, 1) || depth > 64)
        return -1;
    unsigned char c = *r->p;
    size_t skip = 0, items = 0;
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
        r->p++;
        return 0;
    }
    if ((c & 0xe0) == 0xa0) {
        skip = 1 + (c & 0x1f);
    }
    else if ((c & 0xf0) == 0x90) {
        r->p++;
        items = c & 0x0f;
        goto many;
    }
    else if ((c & 0xf0) == 0x80) {
        r->p++;
        items = 2 * (size_t)(c & 0x0f);
        goto many;
    }
    else {
        switch (c) {
        case 0xcc: case 0xd0: skip = 2; break;
        case 0xcd: case 0xd1: skip = 3; break;
        case 0xce: case 0xd2: case 0xca: skip = 5; break;
        case 0xcf: case 0xd3: case 0xcb: skip = 9; break;
        case 0xd4: skip = 3; break;
        case 0xd5: skip = 4; break;
        case 0xd6: skip = 6; break;
        case 0xd7: skip = 10; break;
        case 0xd8: skip = 18; break;
        case 0xc4: case 0xd9:
            if (!need(r, 2)) return -1;
            skip = 2 + r->p[1];
            break;
        case 0xc5: case 0xda:
            if (!need(r, 3)) return -1;
            skip = 3 + be(r->p + 1, 2);
            break;
        case 0xc6: case 0xdb:
            if (!need(r, 5)) return -1;
            skip = 5 + be(r->p + 1, 4);
            break;
        case 0xc7:
            if (!need(r, 2)) return -1;
            skip = 3 + r->p[1];
            break;
        case 0xc8:
            if (!need(r, 3)) return -1;
            skip = 4 + be(r->p + 1, 2);
            break;
        case 0xc9:
            if (!need(r, 5)) return -1;
            skip = 6 + be(r->p + 1, 4);
            break;
        case 0xdc:
            if (!need(r, 3)) return -1;
            items = be(r->p + 1, 2);
            r->p += 3;
            goto many;
        case 0xdd:
            if (!need(r, 5)) return -1;
            items = be(r->p + 1, 4);
            r->p += 5;
            goto many;
        case 0xde:
            if (!need(r, 3)) return -1;
            items = 2 * be(r->p + 1, 2);
            r->p += 3;
            goto many;
        case 0xdf:
            if (!need(r, 5)) return -1;
            items = 2 * be(r->p + 1, 4);
            r->p += 5;
            goto many;
        default:
            return -1;
        }
    }
    if (!need(r, skip))
        return -1;
    r->p += skip;
    return 0;
many:
    for (size_t i = 0; i < items; i++)
        if (rd_skip(r, depth + 1) < 0)
            return -1;
    return 0;
}

#endif
