"""The frames of a decrypted QUIC Initial, as a compiled kernel.

``crypto_frames(plain, crypto_type, out)`` walks the frames of a decrypted
Initial payload (RFC 9000 section 12.4, 19) and lists its CRYPTO frames
(``crypto_type``: 0x06, or 0x08 in Google's Q050/T05x) as rows of ``out``:
(offset in the handshake stream, start in ``plain``, length). PADDING and
PING are skipped, ACK and ACK_ECN read over; the walk stops at the first
other frame type (what follows cannot be framed without knowing it).
Returns the number of rows, or -1 when a frame runs past the end of
``plain``, an ACK claims more ranges than there are bytes, or there are
more CRYPTO frames than ``out`` has rows. Browsers split a ClientHello
into a dozen or more CRYPTO frames mixed with PING and PADDING; this walk
was a Python loop over variable-length integers (ulnet.inspect.quic calls
it once per Initial).
"""

from __future__ import annotations

import numpy as np

from ulnet.jit import njit


@njit(cache=True, inline="always")
def _varint(b, p, n):
    """(value, next p) of the variable-length integer at p; next p = -1 when
    it runs past n."""
    if p >= n:
        return 0, -1
    first = np.int64(b[p])
    ln = 1 << (first >> 6)
    if p + ln > n:
        return 0, -1
    v = first & 0x3F
    for k in range(1, ln):
        v = (v << 8) | np.int64(b[p + k])
    return v, p + ln


@njit(cache=True)
def crypto_frames(plain, crypto_type, out):
    n = plain.shape[0]
    p = 0
    k = 0
    while p < n:
        ft = plain[p]
        if ft == 0x00:                          # PADDING
            p += 1
        elif ft == 0x01:                        # PING
            p += 1
        elif ft == crypto_type:                 # CRYPTO: offset, length, data
            off, p = _varint(plain, p + 1, n)
            if p < 0:
                return -1
            ln, p = _varint(plain, p, n)
            if p < 0 or p + ln > n or k == out.shape[0]:
                return -1
            out[k, 0] = off
            out[k, 1] = p
            out[k, 2] = ln
            k += 1
            p += ln
        elif ft == 0x02 or ft == 0x03:          # ACK (ECN): largest, delay, count, first range, ranges
            p += 1
            cnt = 0
            for f in range(4):
                v, p = _varint(plain, p, n)
                if p < 0:
                    return -1
                if f == 2:
                    cnt = v
            if cnt > n:
                return -1
            for _ in range(2 * cnt + (3 if ft == 0x03 else 0)):
                v, p = _varint(plain, p, n)
                if p < 0:
                    return -1
        else:
            break
    return k
