/* Plain decimal text -> double, exactly as Python's float() reads it, shared by the optional C
 * extensions (book/_levels.c, replay/_colscan.c).
 *
 * The plain form: ASCII digits with at most one inner '.', at most 15 significant digits and 22
 * decimals. It is converted as mantissa / 10^k; both are exact doubles and one IEEE division
 * rounds correctly (Clinger's fast path), so the result is the one float() gives. Any other form
 * returns 0 and the caller takes its slow path.
 */
#ifndef SHRIVEN_FAST_DECIMAL_H
#define SHRIVEN_FAST_DECIMAL_H

#include <Python.h>

static const double POW10[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* 1 and *out set when the text is a plain decimal the fast path converts exactly, else 0. */
static int
fast_decimal(const char *s, Py_ssize_t n, double *out)
{
    unsigned long long mant = 0;
    int digits = 0, frac = -1;
    Py_ssize_t i;
    if (n == 0 || n > 40)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') {
            if (mant == 0 && c == '0') {
                /* leading zeros are not significant */
            }
            else if (++digits > 15) {
                return 0;
            }
            mant = mant * 10 + (unsigned long long)(c - '0');
            if (frac >= 0)
                frac++;
        }
        else if (c == '.' && frac < 0 && i > 0 && i < n - 1) {
            frac = 0;
        }
        else {
            return 0;
        }
    }
    if (frac > 22)
        return 0;
    *out = frac > 0 ? (double)mant / POW10[frac] : (double)mant;
    return 1;
}

#endif
