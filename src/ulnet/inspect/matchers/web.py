"""Web: HTTP, TLS, QUIC, DTLS."""

from numba import njit

from ulnet.inspect.words import b, be16, be32, head, lit

_GET, _POST, _HEAD, _PUT = lit("GET "), lit("POST "), lit("HEAD "), lit("PUT ")
_DELETE, _OPTIONS, _CONNECT = lit("DELETE "), lit("OPTIONS "), lit("CONNECT ")
_PATCH, _TRACE = lit("PATCH "), lit("TRACE ")
_HTTP1 = lit("HTTP/1.")


@njit(cache=True)
def match_http(w, n, sp, dp, d):
    """A request line with a known method, or a status line "HTTP/1.x NNN"."""
    if n < 8:
        return False
    h4 = head(w, 4)
    h5 = head(w, 5)
    if h4 == _GET or h4 == _PUT or h5 == _POST or h5 == _HEAD or h5 == _TRACE:
        return True
    if head(w, 6) == _PATCH or head(w, 7) == _DELETE or head(w, 8) == _OPTIONS:
        return True
    if head(w, 7) == _HTTP1 and n >= 12 and b(w, 8) == 0x20:
        c = b(w, 9)
        return 0x31 <= c <= 0x35
    return False


@njit(cache=True)
def match_http_connect(w, n, sp, dp, d):
    """CONNECT host:port HTTP/1.x (a proxy tunnel request)."""
    return n >= 12 and head(w, 8) == _CONNECT


@njit(cache=True)
def match_tls(w, n, sp, dp, d):
    """TLS record: handshake (22), version 3.0-3.4, length consistent, a
    ClientHello (1) or ServerHello (2) inside."""
    if n < 9 or b(w, 0) != 0x16 or b(w, 1) != 3 or b(w, 2) > 4:
        return False
    rlen = be16(w, 3)
    if rlen < 4 or rlen > 18432:
        return False
    ht = b(w, 5)
    if ht != 1 and ht != 2:
        return False
    hlen = (b(w, 6) << 16) | be16(w, 7)
    return hlen >= 34 and b(w, 9) == 3 if n >= 10 else hlen >= 34


@njit(cache=True)
def match_quic(w, n, sp, dp, d):
    """QUIC long-header Initial from the client: header form and fixed bits
    set, a known version (1, 2, drafts 0xff0000xx, Google's Q0xx/T0xx), a
    connection id length <= 20, and a datagram padded to >= 1200 bytes as
    RFC 9000 requires of client Initials."""
    if d != 0 or n < 1200 or n > 1500 + 100:
        return False
    f = b(w, 0)
    if (f & 0xC0) != 0xC0:
        return False
    v = be32(w, 1)
    ok = (v == 1 or v == 0x6B3343CF or (v & 0xFFFFFF00) == 0xFF000000
          or (v >> 8) == 0x513035 or (v >> 8) == 0x543035 or (v >> 8) == 0x513034)
    if not ok:
        return False
    return b(w, 5) <= 20


@njit(cache=True)
def match_dtls(w, n, sp, dp, d):
    """DTLS record: handshake (22), version 1.0 (fe ff) / 1.2 (fe fd) / 1.3
    (fe fc), epoch 0, a ClientHello/HelloVerifyRequest/ServerHello."""
    if n < 25 or b(w, 0) != 0x16 or b(w, 1) != 0xFE:
        return False
    v = b(w, 2)
    if v != 0xFF and v != 0xFD and v != 0xFC:
        return False
    if be16(w, 3) != 0:
        return False
    rlen = be16(w, 11)
    ht = b(w, 13)
    return rlen + 13 <= n + 13 and (ht == 1 or ht == 2 or ht == 3)
