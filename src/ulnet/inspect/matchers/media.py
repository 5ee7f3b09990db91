"""Streaming media and HTTP's relatives: RTSP, RTMP, MPEG transport
streams over UDP, the HTTP/2 connection preface."""

from ulnet.jit import njit

from ulnet.inspect.matchers._common import at, digit, upper
from ulnet.inspect.words import b, be32, head, lit

_RTSP10 = lit("RTSP/1.")

_RTSP = lit("rtsp")
_TP_2_0 = lit("TP/2.0")


@njit(cache=True)
def match_rtsp(w, n, sp, dp, d):
    """RTSP: a status line "RTSP/1.x NNN", or a request line: an upper-case
    method (OPTIONS, DESCRIBE, SETUP, PLAY, ...) and an rtsp:// or rtspu://
    URL. Runs before HTTP, whose OPTIONS it would otherwise lose."""
    if n < 16:
        return False
    if head(w, 7) == _RTSP10:
        return b(w, 8) == 0x20 and digit(b(w, 9))
    k = 0
    while k < 14 and (upper(b(w, k)) or b(w, k) == 0x5F):
        k += 1
    if k < 4 or k == 14 or b(w, k) != 0x20:
        return False
    return at(w, k + 1, 4) == _RTSP and (b(w, k + 5) == 0x3A or b(w, k + 5) == 0x75 or b(w, k + 5) == 0x73)


@njit(cache=True)
def match_rtmp(w, n, sp, dp, d):
    """RTMP handshake: C0/S0 version 3 followed by C1/S1, whose time field
    comes first and whose next 4 bytes are zero (a full C0+C1 is 1537 bytes;
    segments of it are >= 1024)."""
    return n >= 1024 and b(w, 0) == 3 and be32(w, 5) == 0


@njit(cache=True)
def match_mpeg_ts(w, n, sp, dp, d):
    """MPEG transport stream over UDP: a whole number of 188-byte packets
    (usually 7, 1316 bytes), sync byte 0x47 first, an adaptation field
    control that is not the reserved value 0."""
    if n < 188 or n % 188 != 0 or b(w, 0) != 0x47:
        return False
    return (b(w, 3) & 0x30) != 0


_PRI = lit("PRI * HT")


@njit(cache=True)
def match_http2(w, n, sp, dp, d):
    """The HTTP/2 client connection preface "PRI * HTTP/2.0\\r\\n\\r\\nSM"."""
    return n >= 24 and head(w, 8) == _PRI and at(w, 8, 6) == _TP_2_0
