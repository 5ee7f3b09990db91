"""Web: HTTP, TLS, QUIC, DTLS.

Each matcher sees the first 32 payload bytes of one packet (``w``) and the
payload length ``n`` (see ulnet.inspect.words); what it accepts is in its
docstring. The server name, ALPN and User-Agent are read afterwards by the
extractors in ulnet.inspect._kernels, from the whole payload.
"""

from ulnet.jit import njit

from ulnet.inspect.words import b, be16, be32, head, lit

# request methods: RFC 9110, plus WebDAV (RFC 4918, 3253, 5323) which nDPI
# also counts as HTTP
_GET, _POST, _HEAD, _PUT = lit("GET "), lit("POST "), lit("HEAD "), lit("PUT ")
_DELETE, _OPTIONS, _CONNECT = lit("DELETE "), lit("OPTIONS "), lit("CONNECT ")
_PATCH, _TRACE = lit("PATCH "), lit("TRACE ")
_COPY, _MOVE, _LOCK, _MKCOL = lit("COPY "), lit("MOVE "), lit("LOCK "), lit("MKCOL ")
_UNLOCK, _SEARCH, _REPORT = lit("UNLOCK "), lit("SEARCH "), lit("REPORT ")
_PROPFIND, _PROPPATC = lit("PROPFIND"), lit("PROPPATC")
_HTTP1 = lit("HTTP/1.")
_RTSP, _SIP = lit("rtsp://"), lit("sip:")
_HTTP_URL = lit("http://")


@njit(cache=True, inline="always")
def _method_len(w, n):
    """Length of a known request method plus its space (0: none)."""
    h4 = head(w, 4)
    if h4 == _GET or h4 == _PUT:
        return 4
    h5 = head(w, 5)
    if h5 == _POST or h5 == _HEAD or h5 == _COPY or h5 == _MOVE or h5 == _LOCK:
        return 5
    h6 = head(w, 6)
    if h6 == _PATCH or h6 == _TRACE or h6 == _MKCOL:
        return 6
    h7 = head(w, 7)
    if h7 == _DELETE or h7 == _UNLOCK or h7 == _SEARCH or h7 == _REPORT:
        return 7
    h8 = head(w, 8)
    if h8 == _OPTIONS:
        return 8
    if h8 == _PROPFIND and n > 9 and b(w, 8) == 0x20:
        return 9
    if h8 == _PROPPATC and n > 10 and b(w, 8) == 0x48 and b(w, 9) == 0x20:      # PROPPATCH
        return 10
    return 0


@njit(cache=True, inline="always")
def _at(w, k, m):
    """The m (<= 8) bytes at offset k as an integer (k + m <= 32)."""
    v = 0
    for j in range(m):
        v = (v << 8) | b(w, k + j)
    return v


@njit(cache=True)
def match_http(w, n, sp, dp, d):
    """A request line with a known method whose target is not an RTSP or
    SIP URL (those share the methods), or a status line "HTTP/1.x NNN"."""
    if n < 8:
        return False
    m = _method_len(w, n)
    if m:
        if n >= m + 7 and _at(w, m, 7) == _RTSP:
            return False
        if n >= m + 4 and _at(w, m, 4) == _SIP:
            return False
        return n > m
    if head(w, 7) == _HTTP1 and n >= 12 and b(w, 8) == 0x20:
        c = b(w, 9)
        return 0x31 <= c <= 0x35
    return False


@njit(cache=True)
def match_http_proxy(w, n, sp, dp, d):
    """A request in absolute form, "GET http://host/...": what a client
    sends to a forward proxy (nDPI's HTTP_Proxy). Sits before HTTP."""
    m = _method_len(w, n)
    return m > 0 and m != 8 and n >= m + 8 and _at(w, m, 7) == _HTTP_URL


@njit(cache=True)
def match_http_connect(w, n, sp, dp, d):
    """CONNECT host:port HTTP/1.x (a proxy tunnel request): "CONNECT "
    followed by a host name or address (NATS also starts "CONNECT {")."""
    if n < 12 or head(w, 8) != _CONNECT:
        return False
    c = b(w, 8)
    return (0x30 <= c <= 0x39) or (0x41 <= c <= 0x5A) or (0x61 <= c <= 0x7A) or c == 0x5B


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


@njit(cache=True, inline="always")
def _quic_version_ok(v):
    """IETF QUIC v1, v2 and drafts; Facebook's mvfst; greased versions
    that force negotiation (0x?a?a?a?a); Google's Q04x/Q05x/T05x."""
    return (v == 1 or v == 0x6B3343CF or (v & 0xFFFFFF00) == 0xFF000000
            or v == 0xFACEB001 or v == 0xFACEB002 or v == 0xFACEB00E
            or (v & 0x0F0F0F0F) == 0x0A0A0A0A
            or (v >> 8) == 0x513035 or (v >> 8) == 0x543035 or (v >> 8) == 0x513034)


@njit(cache=True)
def match_quic(w, n, sp, dp, d):
    """A QUIC client Initial, from the client, in a datagram padded to at
    least 1200 bytes (RFC 9000 section 14.1; Google QUIC pads its CHLO to
    about 1350 too):
      - long header: form and fixed bits set, a known version, the Initial
        packet type (0b01 for v2, 0b00 for the rest), a destination
        connection id of 8..20 bytes (a client's first Initial: RFC 9000
        section 7.2), a source id of at most 20; when the header fits in
        the 32 bytes, a token length and packet length that fit the
        datagram. Q046 codes the id lengths in nibbles (0x50: 8 and 0).
      - Google QUIC before Q046: public flags with the version and 8-byte
        connection id bits, no reset or reserved bits, then "Q0" and two
        digits at offset 9.
    Whether it decrypts is the Python QUIC pass's business (ulnet.inspect.
    quic): like nDPI, a well-formed header is QUIC even when it does not."""
    if d != 0 or n < 1200 or n > 65527:
        return False
    f = b(w, 0)
    if (f & 0x80) == 0:
        # gQUIC public header (Q024..Q043)
        if (f & 0x09) != 0x09 or (f & 0xC2) != 0:
            return False
        v = be32(w, 9)
        return (v >> 16) == 0x5130 and 0x30 <= ((v >> 8) & 0xFF) <= 0x34 and 0x30 <= (v & 0xFF) <= 0x39
    v = be32(w, 1)
    if not _quic_version_ok(v):
        return False
    greased = (v & 0x0F0F0F0F) == 0x0A0A0A0A
    if (f & 0x40) == 0 and not greased:
        return False
    ptype = (f >> 4) & 3
    if ptype != (1 if v == 0x6B3343CF else 0):
        return False
    if v == 0x51303436:                     # Q046: nibble-coded id lengths
        return b(w, 5) == 0x50
    dcil = b(w, 5)
    if dcil < 8 or dcil > 20:
        return False
    if 6 + dcil >= 32:
        return True
    scil = b(w, 6 + dcil)
    if scil > 20:
        return False
    p = 7 + dcil + scil                     # token length (varint)
    if p + 8 > 32:
        return True
    t = b(w, p)
    tl = 1 << (t >> 6)
    tv = t & 0x3F
    for k in range(1, tl):
        tv = (tv << 8) | b(w, p + k)
    p += tl + tv
    if p > n:
        return False
    if p + 8 > 32:
        return True
    t = b(w, p)
    ll = 1 << (t >> 6)
    lv = t & 0x3F
    for k in range(1, ll):
        lv = (lv << 8) | b(w, p + k)
    return lv >= 20 and p + ll + lv <= n


@njit(cache=True)
def match_dtls(w, n, sp, dp, d):
    """A DTLS record header (RFC 6347 4.1): content type 20-23, version 1.0
    (fe ff), 1.2 (fe fd), 1.3 (fe fc) or Cisco's pre-standard 1.0 (01 00,
    AnyConnect), a record that fits the datagram. Handshake records in
    epoch 0 must hold a ClientHello, HelloVerifyRequest or ServerHello;
    records of other types (change cipher spec, alert, application data:
    a capture that starts mid-session) need epoch 1 or more."""
    if n < 13:
        return False
    ct = b(w, 0)
    if ct < 20 or ct > 23:
        return False
    v = be16(w, 1)
    if v != 0xFEFF and v != 0xFEFD and v != 0xFEFC and v != 0x0100:
        return False
    epoch = be16(w, 3)
    rlen = be16(w, 11)
    if rlen == 0 or rlen + 13 > n:
        return False
    if ct == 22 and epoch == 0:
        ht = b(w, 13)
        return n >= 25 and (ht == 1 or ht == 2 or ht == 3)
    return 1 <= epoch <= 0x0100 and be16(w, 5) == 0
