"""Helpers shared by the matcher families (scalar code over the 32 payload
bytes ``w``; see ulnet.inspect.words).

    at(w, k, m)          bytes k..k+m-1 (m <= 7, or 8 when byte k < 0x80) as an integer;
                         compare with words.lit("...")
    has(w, n, v, m)      the m-byte value v occurs somewhere in the visible payload
    digit(c) / upper(c) / lower(c) / alpha(c) / alnum(c)
    digits(w, k, m)      bytes k..k+m-1 are ASCII digits
    ber_len(w, k)        a BER length at byte k: (octets used, value) or (0, -1)

Nothing here reads past byte 31: every loop is bounded by 32.
"""

import numpy as np
from ulnet.jit import njit

from ulnet.inspect.words import b

WB = 32


@njit(cache=True)
def at(w, k, m):
    v = np.int64(0)
    for i in range(m):
        v = (v << 8) | b(w, k + i)
    return v


@njit(cache=True)
def has(w, n, v, m):
    top = min(n, WB) - m
    for k in range(top + 1):
        if at(w, k, m) == v:
            return True
    return False


@njit(cache=True, inline="always")
def digit(c):
    return 0x30 <= c <= 0x39


@njit(cache=True, inline="always")
def upper(c):
    return 0x41 <= c <= 0x5A


@njit(cache=True, inline="always")
def lower(c):
    return 0x61 <= c <= 0x7A


@njit(cache=True, inline="always")
def alpha(c):
    return 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A


@njit(cache=True, inline="always")
def alnum(c):
    return 0x30 <= c <= 0x39 or 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A


@njit(cache=True)
def digits(w, k, m):
    for i in range(m):
        if not digit(b(w, k + i)):
            return False
    return True


@njit(cache=True)
def ber_len(w, k):
    """A BER/DER length at byte k (k <= 27): (octets used, length) or (0, -1)."""
    c = b(w, k)
    if c < 0x80:
        return 1, c
    if c == 0x81:
        v = b(w, k + 1)
        return (2, v) if v >= 0x80 else (0, np.int64(-1))
    if c == 0x82:
        return 3, (b(w, k + 1) << 8) | b(w, k + 2)
    if c == 0x83:
        return 4, (b(w, k + 1) << 16) | (b(w, k + 2) << 8) | b(w, k + 3)
    if c == 0x84 and b(w, k + 1) == 0:
        return 5, (b(w, k + 2) << 16) | (b(w, k + 3) << 8) | b(w, k + 4)
    return 0, np.int64(-1)
