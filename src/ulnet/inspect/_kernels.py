"""Inspection kernels (private; see ulnet.inspect).

inspect_batch: for every packet of a flow whose application is still open,
up to ``max_dpi`` payload packets per direction, run the generated
dispatcher over the first 32 payload bytes; record the direction's
application and the merged one in the flow's F_APP column. The packet that
decides is flagged in ``xapp`` for the extractors; so are the following
packets of a flow whose metadata stays open after the decision (DNS until
a response with records, HTTP until a Host header: ``keep_open``).

extract_batch: for flagged packets, read the server name (TLS SNI, HTTP
Host, DNS query, DHCP host name), the HTTP User-Agent, the TLS ALPN and the
DNS query type into the flow's metadata slot, and close the flow's
metadata once it is complete. Every read is bounded by the payload
(tests/test_inspect.py runs them under NUMBA_BOUNDSCHECK=1 on random and
truncated payloads).

Flow state lives in F[e, F_APP] (fields A_* in ulnet.flow._kernels): the
application per direction and merged, the confidence, payload packets
inspected per direction (4 bits each), and two "done" bits, one per
direction: set when that direction will not be inspected any more.
"""

from __future__ import annotations

import numpy as np
from ulnet.jit import njit

from ulnet.batch.columns import H_PROTO, H_PAYLOAD, H_PAYLOAD_LEN, H_SPORT, H_DPORT
from ulnet.counters import C_INSPECT_DECIDED, C_INSPECT_PACKETS, C_INSPECT_META_FULL
from ulnet.flow._kernels import (
    F_APP, A_APP0_SHIFT, A_APP1_SHIFT, A_APP_SHIFT, A_CONF_SHIFT, A_DPI_SHIFT, A_DONE_SHIFT, A_META_SHIFT,
    APP_MASK, META_W, M_NAME, M_NAME_MAX, M_UA, M_UA_MAX, M_ALPN, M_ALPN_MAX, M_QTYPE, S_MFREE_TOP,
)
from ulnet.inspect._dispatch import dispatch, proto_app
from ulnet.inspect.quic_frames import crypto_frames
from ulnet.inspect.words import load_words

CONF_NONE, CONF_PORT, CONF_PAYLOAD, CONF_PROTOCOL = 0, 1, 2, 3
DONE_BOTH = 3
M64 = np.int64(-1)


@njit(cache=True, inline="always")
def _field(a, shift, mask):
    return (a >> shift) & mask


@njit(cache=True, inline="always")
def _set(a, shift, mask, v):
    return (a & ~(np.int64(mask) << shift)) | ((np.int64(v) & mask) << shift)


# ---- metadata ---------------------------------------------------------------
#
# Text conventions (nDPI's, see docs/inspect.md): names are lower-cased;
# bytes outside printable ASCII become '?'; a name longer than its field
# keeps its last bytes (the registered domain is at the end); DNS names
# also turn printable characters outside [a-z0-9_-] into '_'. User agents
# and ALPN keep their first bytes.

@njit(cache=True)
def _slot(F, e, META, MFREE, S, counters):
    """The flow's metadata slot, taken from the pool on first use (-1: pool empty)."""
    ms = (F[e, F_APP] >> A_META_SHIFT) - 1
    if ms >= 0:
        return ms
    top = S[S_MFREE_TOP]
    if top == 0:
        counters[C_INSPECT_META_FULL] += 1
        return -1
    top -= 1
    S[S_MFREE_TOP] = top
    ms = np.int64(MFREE[top])
    F[e, F_APP] = (F[e, F_APP] & ((np.int64(1) << A_META_SHIFT) - 1)) | ((ms + 1) << A_META_SHIFT)
    return ms


@njit(cache=True)
def _put(META, ms, field, cap, buf, p, m, lower, tail=False):
    """Store m bytes at buf[p] as a text field: at most cap of them (the
    last ones when ``tail``), '?' for bytes outside printable ASCII."""
    k0 = m - cap if (tail and m > cap) else 0
    m = min(m - k0, cap)
    META[ms, field] = m
    for k in range(m):
        c = buf[p + k0 + k]
        if c < 0x20 or c > 0x7E:
            c = 0x3F
        elif lower and 0x41 <= c <= 0x5A:
            c += 32
        META[ms, field + 1 + k] = c


@njit(cache=True, inline="always")
def _close(F, e):
    """Metadata complete: the flow is not inspected any more."""
    F[e, F_APP] |= np.int64(DONE_BOTH) << A_DONE_SHIFT


@njit(cache=True)
def _be16(buf, p):
    return (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])


@njit(cache=True)
def tls_client_hello(buf, p, end, out):
    """Parse a ClientHello handshake message at p (type byte first), bounded
    by end. out[0..3] = SNI offset, SNI length, ALPN offset, ALPN length
    (-1 / 0 when absent). Returns False when the message is not a
    ClientHello or is malformed before the extensions; extensions are read
    as far as they fit (a ClientHello cut short still yields an SNI that
    came before the cut)."""
    out[0] = -1
    out[1] = 0
    out[2] = -1
    out[3] = 0
    if end - p < 4 + 2 + 32 + 1 or buf[p] != 1:
        return False
    hend = min(end, p + 4 + ((np.int64(buf[p + 1]) << 16) | _be16(buf, p + 2)))
    q = p + 4 + 2 + 32
    if q >= hend:
        return False
    q += 1 + np.int64(buf[q])                      # session id
    if q + 2 > hend:
        return False
    q += 2 + _be16(buf, q)                         # cipher suites
    if q + 1 > hend:
        return False
    q += 1 + np.int64(buf[q])                      # compression methods
    if q + 2 > hend:
        return False
    xend = min(hend, q + 2 + _be16(buf, q))
    q += 2
    while q + 4 <= xend:
        et = _be16(buf, q)
        el = _be16(buf, q + 2)
        body = q + 4
        if body + el > xend:
            break
        if et == 0 and el >= 5:                    # server_name: list len, type 0, name len, name
            if buf[body + 2] == 0:
                nl = _be16(buf, body + 3)
                if body + 5 + nl <= body + el:
                    out[0] = body + 5
                    out[1] = nl
        elif et == 16 and el >= 3:                 # ALPN: list len, first protocol
            pl = np.int64(buf[body + 2])
            if body + 3 + pl <= body + el:
                out[2] = body + 3
                out[3] = pl
        q = body + el
    return True


@njit(cache=True)
def _http_header(buf, p, end, name_len, name_lc):
    """Find a header line "Name:" (name_lc: lower case) in the header block
    starting at p: on any line, the first included (a request or status line
    never matches a header name), up to the blank line that ends the block.
    Returns (value offset, value length) or (-1, 0); the value ends at CR,
    LF or NUL, without its surrounding blanks."""
    s = p
    while s < end:
        if buf[s] == 13 or buf[s] == 10:           # blank line: end of the headers
            return -1, 0
        if s + name_len + 1 <= end:
            ok = True
            for k in range(name_len):
                c = buf[s + k]
                if 0x41 <= c <= 0x5A:
                    c += 32
                if c != name_lc[k]:
                    ok = False
                    break
            if ok and buf[s + name_len] == 0x3A:    # ':'
                v = s + name_len + 1
                while v < end and (buf[v] == 0x20 or buf[v] == 9):
                    v += 1
                ve = v
                while ve < end and buf[ve] != 13 and buf[ve] != 10 and buf[ve] != 0:
                    ve += 1
                while ve > v and (buf[ve - 1] == 0x20 or buf[ve - 1] == 9):
                    ve -= 1
                return v, ve - v
        while s < end and buf[s] != 10:            # next line
            s += 1
        s += 1
    return -1, 0


_HOST = np.frombuffer(b"host", dtype=np.uint8)
_UA = np.frombuffer(b"user-agent", dtype=np.uint8)


@njit(cache=True)
def _dns_name_end(buf, q, end):
    """Walk an uncompressed name at q: (offset after it, its dotted length),
    or (-1, 0) when it is compressed, cut short or has more than 127 labels."""
    m = 0
    steps = 0
    while q < end and steps < 128:
        steps += 1
        lab = np.int64(buf[q])
        if lab == 0:
            return q + 1, m
        if lab > 63 or q + 1 + lab >= end:
            return -1, 0
        if m:
            m += 1
        m += lab
        q += 1 + lab
    return -1, 0


@njit(cache=True)
def _dns_name_put(buf, q, total, META, ms):
    """Copy the name at q (dotted length ``total``, already walked) into the
    slot: its last M_NAME_MAX characters, lower-cased, [a-z0-9_-] kept,
    other printable bytes as '_', others as '?' (nDPI's convention)."""
    skip = total - M_NAME_MAX if total > M_NAME_MAX else 0
    j = 0          # position in the dotted name
    m = 0          # characters written
    first = True
    while True:
        lab = np.int64(buf[q])
        if lab == 0:
            break
        if not first:
            if j >= skip:
                META[ms, M_NAME + 1 + m] = 0x2E
                m += 1
            j += 1
        first = False
        for k in range(lab):
            if j >= skip:
                c = buf[q + 1 + k]
                if 0x41 <= c <= 0x5A:
                    c += 32
                elif not ((0x61 <= c <= 0x7A) or (0x30 <= c <= 0x39) or c == 0x2D or c == 0x5F):
                    c = 0x5F if 0x20 <= c <= 0x7E else 0x3F
                META[ms, M_NAME + 1 + m] = c
                m += 1
            j += 1
        q += 1 + lab
    META[ms, M_NAME] = m


@njit(cache=True)
def _dns(buf, q, end, F, e, META, MFREE, S, counters):
    """A DNS message at q: its first name (the question's; an inverse
    query's answer owner) replaces the flow's name, so the last message
    read wins (nDPI: the response's question when there is one); its query
    type is kept. A response closes the flow's metadata unless it is an
    error without records (a resolver may still answer the query again)."""
    if end - q < 12:
        return
    flags = _be16(buf, q + 2)
    qd = _be16(buf, q + 4)
    an = _be16(buf, q + 6)
    ns = _be16(buf, q + 8)
    ar = _be16(buf, q + 10)
    if qd == 0 and an == 0:
        return
    t, total = _dns_name_end(buf, q + 12, end)
    if t >= 0 and total > 0:
        ms = _slot(F, e, META, MFREE, S, counters)
        if ms >= 0:
            _dns_name_put(buf, q + 12, total, META, ms)
            if qd > 0 and t + 2 <= end:
                META[ms, M_QTYPE] = buf[t]
                META[ms, M_QTYPE + 1] = buf[t + 1]
    if (flags & 0x8000) and (an + ns + ar > 0 or (flags & 0xF) == 0):
        _close(F, e)


@njit(cache=True)
def _http(buf, p, end, F, e, META, MFREE, S, counters):
    """HTTP headers in this packet: the Host (without its port) closes the
    flow's metadata; the first User-Agent seen is kept."""
    hv, hl = _http_header(buf, p, end, 4, _HOST)
    uv, ul = _http_header(buf, p, end, 10, _UA)
    if hv < 0 and ul <= 0:
        return
    ms = _slot(F, e, META, MFREE, S, counters)
    if ms < 0:
        return
    if hv >= 0:
        k = 0
        if hl > 0 and buf[hv] == 0x5B:                 # [v6 literal]:port
            while k < hl and buf[hv + k] != 0x5D:
                k += 1
            k = min(k + 1, hl)
        else:
            while k < hl and buf[hv + k] != 0x3A:
                k += 1
        if k > 0:
            _put(META, ms, M_NAME, M_NAME_MAX, buf, hv, k, True, True)
        _close(F, e)
    if ul > 0 and META[ms, M_UA] == 0:
        _put(META, ms, M_UA, M_UA_MAX, buf, uv, ul, False)


@njit(cache=True)
def _dhcp(buf, p, end, F, e, META, MFREE, S, counters):
    """DHCP option 12 (host name), after the BOOTP header and magic cookie."""
    q = p + 240
    while q + 2 <= end:
        opt = buf[q]
        if opt == 255:
            break
        if opt == 0:
            q += 1
            continue
        ol = np.int64(buf[q + 1])
        if q + 2 + ol > end:
            break
        if opt == 12 and ol > 0:
            ms = _slot(F, e, META, MFREE, S, counters)
            if ms >= 0:
                _put(META, ms, M_NAME, M_NAME_MAX, buf, q + 2, ol, False, True)
            _close(F, e)
            break
        q += 2 + ol


@njit(cache=True)
def hello_meta(buf, p, end, F, e, META, MFREE, S, counters, sni):
    """The SNI and ALPN of the ClientHello at buf[p:end] into the flow's
    metadata (the TLS extractor, and the QUIC pass in one call)."""
    if tls_client_hello(buf, p, end, sni) and (sni[1] > 0 or sni[3] > 0):
        ms = _slot(F, e, META, MFREE, S, counters)
        if ms >= 0:
            if sni[1] > 0:
                _put(META, ms, M_NAME, M_NAME_MAX, buf, sni[0], sni[1], True, True)
            if sni[3] > 0:
                _put(META, ms, M_ALPN, M_ALPN_MAX, buf, sni[2], sni[3], False)


@njit(cache=True, inline="always")
def _le(buf, p, n):
    """Little-endian unsigned integer of n bytes at p."""
    v = np.int64(0)
    for k in range(n - 1, -1, -1):
        v = (v << 8) | np.int64(buf[p + k])
    return v


@njit(cache=True)
def chlo_meta(buf, p, end, F, e, META, MFREE, S, counters):
    """The SNI and UAID (user agent) tags of a Google QUIC CHLO at
    buf[p:end] into the flow's metadata. A CHLO: "CHLO", the tag count (u16
    little-endian), 2 bytes, (tag, end offset u32 LE) pairs, then the values;
    the walk stops at the first inconsistent entry; a tag seen twice keeps
    its last value; empty values are not written."""
    n = end - p
    if n < 8 or buf[p] != 0x43 or buf[p + 1] != 0x48 or buf[p + 2] != 0x4C or buf[p + 3] != 0x4F:
        return
    cnt = _le(buf, p + 4, 2)
    base = 8 + 8 * cnt
    prev = 0
    s0 = s1 = u0 = u1 = 0
    for k in range(cnt):
        q = 8 + 8 * k
        if q + 8 > n:
            break
        stop = _le(buf, p + q + 4, 4)
        if stop < prev or base + stop > n:
            break
        t = p + q
        if buf[t] == 0x53 and buf[t + 1] == 0x4E and buf[t + 2] == 0x49 and buf[t + 3] == 0:        # "SNI\0"
            s0, s1 = base + prev, base + stop
        elif buf[t] == 0x55 and buf[t + 1] == 0x41 and buf[t + 2] == 0x49 and buf[t + 3] == 0x44:   # "UAID"
            u0, u1 = base + prev, base + stop
        prev = stop
    if s1 == s0 and u1 == u0:
        return
    ms = _slot(F, e, META, MFREE, S, counters)
    if ms < 0:
        return
    if s1 > s0:
        _put(META, ms, M_NAME, M_NAME_MAX, buf, p + s0, s1 - s0, True, True)
    if u1 > u0:
        _put(META, ms, M_UA, M_UA_MAX, buf, p + u0, u1 - u0, False)


@njit(cache=True)
def quic_hello(plain, crypto_type, chlo, rows, prev_buf, prev_have, buf, have, F, e, META, MFREE, S, counters,
               sni):
    """The CRYPTO frames of one decrypted QUIC Initial (``plain``) added to
    the flow's handshake stream, and the ClientHello read from it (its SNI
    and ALPN into the flow's metadata), in one call: what was a frame walk,
    a Python join of the pieces and a second kernel call per Initial.
    ``chlo``: the stream is a Google QUIC CHLO instead (Q050: chlo_meta),
    read from this one Initial (status 1).

    ``buf``/``have``: scratch stream bytes and "byte known" marks (``have``
    all zero on entry, left so when the hello is whole); ``prev_buf``/
    ``prev_have``: the flow's stream from earlier Initials (empty arrays for
    none). A byte keeps the first value that arrived for it; pieces past
    ``len(buf)`` are dropped (a hello that long never completes). Returns
    (status, end): status -1 when the frames do not parse (``have`` untouched),
    0 when the hello is not whole yet (the caller keeps buf[:end] and
    have[:end] and clears have[:end]), 1 when it is (end 0). The hello is
    read from the contiguous start either way (a hello cut short still
    yields a name that came before the cut)."""
    k = crypto_frames(plain, crypto_type, rows)
    if k < 0:
        return -1, 0
    cap = buf.shape[0]
    end = prev_buf.shape[0]
    for i in range(end):
        buf[i] = prev_buf[i]
        have[i] = prev_have[i]
    for r in range(k):
        off, start, ln = rows[r, 0], rows[r, 1], rows[r, 2]
        if off >= cap:
            continue
        ln = min(ln, cap - off)
        for j in range(ln):
            if not have[off + j]:
                buf[off + j] = plain[start + j]
                have[off + j] = 1
        end = max(end, off + ln)
    c = 0
    while c < end and have[c]:
        c += 1
    if chlo:
        chlo_meta(buf, 0, c, F, e, META, MFREE, S, counters)
        whole = True
    else:
        hello_meta(buf, 0, c, F, e, META, MFREE, S, counters, sni)
        whole = c >= 4 and c >= 4 + ((np.int64(buf[1]) << 16) | (np.int64(buf[2]) << 8) | np.int64(buf[3]))
    if not whole:
        return 0, end
    for i in range(end):
        have[i] = 0
    return 1, 0


# positions in the ``ids`` array: the application ids the extractors serve
I_TLS, I_HTTP, I_DNS, I_MDNS, I_LLMNR, I_DHCP, I_QUIC, I_HTTP_PROXY = 0, 1, 2, 3, 4, 5, 6, 7
N_IDS = 8


@njit(cache=True)
def _extract(r, buf, p, end, tcp, F, e, META, MFREE, S, counters, ids, sni):
    """Read the metadata of one payload the flow's application ``r`` says
    how to read."""
    if r == ids[I_TLS]:
        if end - p > 5 and buf[p] == 0x16:
            hello_meta(buf, p + 5, end, F, e, META, MFREE, S, counters, sni)
    elif r == ids[I_HTTP] or r == ids[I_HTTP_PROXY]:
        _http(buf, p, end, F, e, META, MFREE, S, counters)
    elif r == ids[I_DNS] or r == ids[I_MDNS] or r == ids[I_LLMNR]:
        _dns(buf, p + 2 if tcp else p, end, F, e, META, MFREE, S, counters)
    elif r == ids[I_DHCP]:
        _dhcp(buf, p, end, F, e, META, MFREE, S, counters)


@njit(cache=True)
def inspect_batch(buf, off, hdr, fentry, fdir, i0, i1, F, META, MFREE, S, max_dpi, counters,
                  xapp, papp, keep_open, upgrade, ids, sni):
    """Inspect packets i0..i1 (see the module docstring).

    keep_open[app]: the directions (bit 0 client, bit 1 server) whose
    packets still go to the extractors after ``app`` is decided (DNS both,
    until a response with records; HTTP both, until a Host header; QUIC
    the client, until the Python pass has the whole ClientHello); bit 2:
    those packets also go through the matchers again, and when one says
    ``r``, ``upgrade[app, r]`` (if not 0) becomes the flow's application
    (SMTP then a TLS ClientHello: SMTPS, read as TLS). xapp[i]:
    the application packet i was read as (0: not read). papp[i]: the flow's
    application after packet i (what peek prints). Returns how many packets
    were read as QUIC (the Python pass's work; 0: nothing to do)."""
    nquic = 0
    for i in range(i0, i1):
        xapp[i] = 0
        papp[i] = 0
        e = fentry[i]
        if e < 0:
            continue
        a = F[e, F_APP]
        app = _field(a, A_APP_SHIFT, APP_MASK)
        papp[i] = app
        done = _field(a, A_DONE_SHIFT, 3)
        if done == DONE_BOTH:
            continue
        proto = hdr[i, H_PROTO]
        if proto != 6 and proto != 17:
            pa = proto_app(proto)
            if pa:
                a = _set(a, A_APP_SHIFT, APP_MASK, pa)
                a = _set(a, A_CONF_SHIFT, 3, CONF_PROTOCOL)
                counters[C_INSPECT_DECIDED] += 1
            F[e, F_APP] = _set(a, A_DONE_SHIFT, 3, DONE_BOTH)
            papp[i] = pa
            continue
        plen = hdr[i, H_PAYLOAD_LEN]
        if plen <= 0 or hdr[i, H_PAYLOAD] < 0:
            continue
        d = fdir[i]
        if (done >> d) & 1:
            continue
        dpi = _field(a, A_DPI_SHIFT, 0xFF)
        cnt = (dpi >> (4 * d)) & 0xF
        if cnt >= max_dpi and app == 0:
            F[e, F_APP] = _set(a, A_DONE_SHIFT, 3, done | (1 << d))
            continue
        if cnt < 15:
            dpi = (dpi & ~(0xF << (4 * d))) | ((cnt + 1) << (4 * d))
        a = _set(a, A_DPI_SHIFT, 0xFF, dpi)
        p = off[i] + hdr[i, H_PAYLOAD]
        r = app
        if app == 0:
            w = load_words(buf, p, plen)
            r = dispatch(w, plen, hdr[i, H_SPORT], hdr[i, H_DPORT], d, proto)
            counters[C_INSPECT_PACKETS] += 1
            if r:
                a = _set(a, A_APP0_SHIFT if d == 0 else A_APP1_SHIFT, APP_MASK, r)
                a = _set(a, A_APP_SHIFT, APP_MASK, r)
                a = _set(a, A_CONF_SHIFT, 3, CONF_PAYLOAD)
                counters[C_INSPECT_DECIDED] += 1
                app = r
                done = DONE_BOTH & ~np.int64(keep_open[r])
        elif keep_open[app] & 4:
            w = load_words(buf, p, plen)
            r2 = dispatch(w, plen, hdr[i, H_SPORT], hdr[i, H_DPORT], d, proto)
            counters[C_INSPECT_PACKETS] += 1
            u = upgrade[app, r2] if r2 else 0
            if u:
                a = _set(a, A_APP0_SHIFT if d == 0 else A_APP1_SHIFT, APP_MASK, u)
                a = _set(a, A_APP_SHIFT, APP_MASK, u)
                app = u
                r = r2                                   # read the packet as what it is (TLS)
                done = DONE_BOTH & ~np.int64(keep_open[u])
        if cnt + 1 >= max_dpi:
            done |= 1 << d
        if ((dpi & 0xF) >= max_dpi) and ((dpi >> 4) >= max_dpi):
            done = DONE_BOTH
        F[e, F_APP] = _set(a, A_DONE_SHIFT, 3, done)
        papp[i] = app
        if r:
            xapp[i] = r
            if r == ids[I_QUIC]:
                nquic += 1
            else:
                _extract(r, buf, p, p + plen, proto == 6, F, e, META, MFREE, S, counters, ids, sni)
    return nquic
