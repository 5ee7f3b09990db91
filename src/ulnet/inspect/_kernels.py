"""Inspection kernels (private; see ulnet.inspect).

inspect_batch: for every packet of a flow whose application is still open,
up to ``max_dpi`` payload packets per direction, run the generated
dispatcher over the first 32 payload bytes; record the direction's
application and the merged one in the flow's F_APP column. Packets that
decided an application that carries a name are flagged in ``xapp`` for the
extractors.

extract_batch: for flagged packets, read the server name (TLS SNI, HTTP
Host, DNS query, DHCP host name), the HTTP User-Agent and the TLS ALPN into
the flow's metadata slot. Every read is bounded by the payload.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ulnet.batch.columns import H_PROTO, H_PAYLOAD, H_PAYLOAD_LEN, H_SPORT, H_DPORT
from ulnet.counters import C_INSPECT_DECIDED, C_INSPECT_PACKETS, C_INSPECT_META_FULL
from ulnet.flow._kernels import (
    F_APP, A_APP0_SHIFT, A_APP1_SHIFT, A_APP_SHIFT, A_CONF_SHIFT, A_DPI_SHIFT, A_DONE_SHIFT, A_META_SHIFT,
    APP_MASK, META_W, M_NAME, M_NAME_MAX, M_UA, M_UA_MAX, M_ALPN, M_ALPN_MAX, M_QTYPE, S_MFREE_TOP,
)
from ulnet.inspect._dispatch import dispatch, proto_app
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


@njit(cache=True)
def inspect_batch(buf, off, hdr, fentry, fdir, i0, i1, F, max_dpi, counters, xapp, papp):
    """papp[i]: the flow's application after packet i (what peek prints)."""
    for i in range(i0, i1):
        xapp[i] = 0
        papp[i] = 0
        e = fentry[i]
        if e < 0:
            continue
        a = F[e, F_APP]
        papp[i] = _field(a, A_APP_SHIFT, APP_MASK)
        if _field(a, A_DONE_SHIFT, 3) == DONE_BOTH:
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
        dpi = _field(a, A_DPI_SHIFT, 0xFF)
        cnt = (dpi >> (4 * d)) & 0xF
        if cnt >= max_dpi:
            continue
        w = load_words(buf, off[i] + hdr[i, H_PAYLOAD], plen)
        r = dispatch(w, plen, hdr[i, H_SPORT], hdr[i, H_DPORT], d, proto)
        counters[C_INSPECT_PACKETS] += 1
        dpi = (dpi & ~(0xF << (4 * d))) | ((cnt + 1) << (4 * d))
        a = _set(a, A_DPI_SHIFT, 0xFF, dpi)
        done = _field(a, A_DONE_SHIFT, 3)
        if r:
            a = _set(a, A_APP0_SHIFT if d == 0 else A_APP1_SHIFT, APP_MASK, r)
            if _field(a, A_APP_SHIFT, APP_MASK) == 0:
                a = _set(a, A_APP_SHIFT, APP_MASK, r)
                a = _set(a, A_CONF_SHIFT, 3, CONF_PAYLOAD)
                counters[C_INSPECT_DECIDED] += 1
                done = DONE_BOTH   # decided: the flow is not inspected any more
            xapp[i] = r
        elif cnt + 1 >= max_dpi:
            done |= 1 << d
        if ((dpi & 0xF) >= max_dpi) and ((dpi >> 4) >= max_dpi):
            done = DONE_BOTH
        F[e, F_APP] = _set(a, A_DONE_SHIFT, 3, done)
        papp[i] = _field(a, A_APP_SHIFT, APP_MASK)


# ---- metadata -------------------------------------------------------------------

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
def _put(META, ms, field, cap, buf, p, m, lower):
    m = min(m, cap)
    META[ms, field] = m
    for k in range(m):
        c = buf[p + k]
        if lower and 0x41 <= c <= 0x5A:
            c += 32
        META[ms, field + 1 + k] = c


@njit(cache=True)
def _be16(buf, p):
    return (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])


@njit(cache=True)
def tls_client_hello(buf, p, end, out):
    """Parse a ClientHello handshake message at p (type byte first), bounded
    by end. out[0..3] = SNI offset, SNI length, ALPN offset, ALPN length
    (-1 when absent). Returns False when the message is not a ClientHello or
    is malformed before the extensions."""
    out[0] = -1
    out[1] = 0
    out[2] = -1
    out[3] = 0
    if end - p < 4 + 2 + 32 + 1 or buf[p] != 1:
        return False
    hend = min(end, p + 4 + ((np.int64(buf[p + 1]) << 16) | _be16(buf, p + 2)))
    q = p + 4 + 2 + 32
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
def _http_header(buf, p, end, name0, name_len, name_lc):
    """Find a header line "Name:" (case-insensitive) after the request line;
    returns (value offset, value length) or (-1, 0)."""
    q = p
    while q < end - 1:
        if buf[q] == 13 and buf[q + 1] == 10:
            s = q + 2
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
                    while ve < end and buf[ve] != 13 and buf[ve] != 10:
                        ve += 1
                    return v, ve - v
            q += 2
        else:
            q += 1
    return -1, 0


_HOST = np.frombuffer(b"host", dtype=np.uint8)
_UA = np.frombuffer(b"user-agent", dtype=np.uint8)


@njit(cache=True)
def _dns_name(buf, q, end, META, ms):
    """Copy the first question's name (dotted) into the slot; returns the
    offset after the name, or -1."""
    m = 0
    steps = 0
    while q < end and steps < 128:
        steps += 1
        lab = np.int64(buf[q])
        if lab == 0:
            q += 1
            META[ms, M_NAME] = m
            return q
        if lab > 63 or q + 1 + lab > end:
            return -1
        if m and m < M_NAME_MAX:
            META[ms, M_NAME + 1 + m] = 0x2E
            m += 1
        for k in range(lab):
            if m < M_NAME_MAX:
                c = buf[q + 1 + k]
                if 0x41 <= c <= 0x5A:
                    c += 32
                META[ms, M_NAME + 1 + m] = c
                m += 1
        q += 1 + lab
    return -1


@njit(cache=True)
def extract_batch(buf, off, hdr, fentry, xapp, i0, i1, F, META, MFREE, S, counters,
                  id_tls, id_http, id_dns, id_mdns, id_llmnr, id_dhcp, sni):
    for i in range(i0, i1):
        r = xapp[i]
        if r == 0:
            continue
        e = fentry[i]
        p = off[i] + hdr[i, H_PAYLOAD]
        end = p + hdr[i, H_PAYLOAD_LEN]
        if r == id_tls:
            if end - p > 5 and buf[p] == 0x16 and tls_client_hello(buf, p + 5, end, sni):
                if sni[1] > 0 or sni[3] > 0:
                    ms = _slot(F, e, META, MFREE, S, counters)
                    if ms >= 0:
                        if sni[1] > 0:
                            _put(META, ms, M_NAME, M_NAME_MAX, buf, sni[0], sni[1], True)
                        if sni[3] > 0:
                            _put(META, ms, M_ALPN, M_ALPN_MAX, buf, sni[2], sni[3], False)
        elif r == id_http:
            hv, hl = _http_header(buf, p, end, 0, 4, _HOST)
            uv, ul = _http_header(buf, p, end, 0, 10, _UA)
            if hl > 0 or ul > 0:
                ms = _slot(F, e, META, MFREE, S, counters)
                if ms >= 0:
                    if hl > 0:
                        # the host without a port, as nDPI reports it
                        k = 0
                        while k < hl and buf[hv + k] != 0x3A:
                            k += 1
                        if hl > 0 and buf[hv] == 0x5B:      # [v6]:port
                            k = hl
                        _put(META, ms, M_NAME, M_NAME_MAX, buf, hv, k, True)
                    if ul > 0:
                        _put(META, ms, M_UA, M_UA_MAX, buf, uv, ul, False)
        elif r == id_dns or r == id_mdns or r == id_llmnr:
            q = p
            if hdr[i, H_PROTO] == 6:
                q += 2
            if end - q > 12 and ((np.int64(buf[q + 4]) << 8) | buf[q + 5]) > 0:
                ms = _slot(F, e, META, MFREE, S, counters)
                if ms >= 0:
                    t = _dns_name(buf, q + 12, end, META, ms)
                    if t >= 0 and t + 2 <= end:
                        META[ms, M_QTYPE] = buf[t]
                        META[ms, M_QTYPE + 1] = buf[t + 1]
        elif r == id_dhcp:
            q = p + 240                                   # BOOTP header + magic cookie
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
                        _put(META, ms, M_NAME, M_NAME_MAX, buf, q + 2, ol, False)
                    break
                q += 2 + ol
