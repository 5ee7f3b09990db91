"""Payload words: how matchers see the first bytes of a payload.

A matcher gets ``w``, the first 32 payload bytes as a tuple of four
big-endian uint64 words (bytes past the payload are zero), and ``n``, the
payload length. Tuples are values in numba: a call costs no reference
counting, so a hundred matchers in a row stay cheap, and no matcher can read
past the payload (it never sees the buffer).

Helpers (all inline, bounds checked against 32, not against ``n``: a
matcher checks ``n`` itself):
    b(w, k)            byte k
    be16(w, k)         bytes k, k+1 as a big-endian integer (k <= 30)
    be32(w, k)         bytes k..k+3 (k <= 28)
    le16(w, k)         little-endian 16-bit at k
    head(w, m)         the first m bytes (1..8) as an integer
    lit("GET ")        (Python, at import) the integer ``head`` gives for that text
"""

from __future__ import annotations

import numpy as np
from ulnet.jit import njit

WORDS = 4
WBYTES = 8 * WORDS


def lit(text: str | bytes) -> int:
    """Integer value of the first len(text) (<= 8) bytes, big-endian."""
    data = text.encode("latin-1") if isinstance(text, str) else text
    assert 1 <= len(data) <= 8, data
    return int.from_bytes(data, "big")


@njit(cache=True, inline="always")
def b(w, k):
    return np.int64((w[k >> 3] >> np.uint64(56 - 8 * (k & 7))) & np.uint64(0xFF))


@njit(cache=True, inline="always")
def be16(w, k):
    return (b(w, k) << 8) | b(w, k + 1)


@njit(cache=True, inline="always")
def be32(w, k):
    return (b(w, k) << 24) | (b(w, k + 1) << 16) | (b(w, k + 2) << 8) | b(w, k + 3)


@njit(cache=True, inline="always")
def le16(w, k):
    return b(w, k) | (b(w, k + 1) << 8)


@njit(cache=True, inline="always")
def le32(w, k):
    return b(w, k) | (b(w, k + 1) << 8) | (b(w, k + 2) << 16) | (b(w, k + 3) << 24)


@njit(cache=True, inline="always")
def head(w, m):
    if m == 8:
        return np.int64(w[0])
    return np.int64(w[0] >> np.uint64(64 - 8 * m))


@njit(cache=True, inline="always")
def is_print(c):
    return 0x20 <= c < 0x7F


@njit(cache=True)
def load_words(buf, p, n):
    """The payload's first 32 bytes as four big-endian words (zero past n)."""
    w0 = np.uint64(0)
    w1 = np.uint64(0)
    w2 = np.uint64(0)
    w3 = np.uint64(0)
    m = min(n, WBYTES)
    for k in range(m):
        v = np.uint64(buf[p + k]) << np.uint64(56 - 8 * (k & 7))
        j = k >> 3
        if j == 0:
            w0 |= v
        elif j == 1:
            w1 |= v
        elif j == 2:
            w2 |= v
        else:
            w3 |= v
    return (w0, w1, w2, w3)
