"""Compiled record walkers for capture files (private; see ulnet.sources).

Each walker reads records from ``buf[pos:end]`` (a window of the file: the
whole mapped file, or a refilled chunk of a stream) and fills the source
columns of a batch from row ``n0`` up to ``nmax``. It never reads past
``end`` and never copies packet bytes: ``off`` points into ``buf``.

Status written to ``out[1]`` (new position in ``out[0]``):
    ST_FULL      the batch is full
    ST_MORE      the record at ``pos`` is not complete in the window
                 (at end of input: a truncated record)
    ST_BAD       the record at ``pos`` is corrupt (length out of range):
                 the input cannot be resynchronised
    ST_END       pos == end: every complete record was read
"""

from __future__ import annotations

import numpy as np
from ulnet.jit import helper, njit

from ulnet.prefetch import stream_ahead

from ulnet.counters import (
    C_SRC_PACKETS, C_SRC_BYTES, C_SRC_CAPLEN_GT_WIRELEN, C_SRC_PCAPNG_SKIPPED_BLOCK,
    C_SRC_PCAPNG_BAD_IFACE, C_SRC_PCAPNG_TOO_MANY_IFACES, C_SRC_ERF_UNSUPPORTED, C_SRC_ERF_LOSS,
)

ST_FULL, ST_MORE, ST_BAD, ST_END = 0, 1, 2, 3

# Largest record ulnet accepts (bytes of one captured frame). libpcap's own
# limit is 262144; jumbo/GSO captures from Linux go up to 64 KiB + headers,
# and some writers use bigger snap lengths, so allow up to 16 MiB.
MAX_CAPLEN = 16 << 20

# pcapng state slots
PS_BIG_ENDIAN, PS_N_IF, PS_SECTIONS, PS_LAST_TS = 0, 1, 2, 3
PS_SIZE = 4
MAX_IF = 1024

BLK_SHB = 0x0A0D0D0A
BLK_IDB = 1
BLK_PB = 2
BLK_SPB = 3
BLK_EPB = 6
BOM = 0x1A2B3C4D


@helper
def _u16(buf, p, big):
    if big:
        return (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])
    return np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8)


@helper
def _u32(buf, p, big):
    if big:
        return ((np.int64(buf[p]) << 24) | (np.int64(buf[p + 1]) << 16)
                | (np.int64(buf[p + 2]) << 8) | np.int64(buf[p + 3]))
    return (np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8)
            | (np.int64(buf[p + 2]) << 16) | (np.int64(buf[p + 3]) << 24))


@helper
def _emit(i, o, cl, wl, t, lt, portval, off, caplen, wirelen, ts, linktype, port, counters):
    if wl < cl:
        counters[C_SRC_CAPLEN_GT_WIRELEN] += 1
        wl = cl
    off[i] = o
    caplen[i] = cl
    wirelen[i] = wl
    ts[i] = t
    linktype[i] = lt
    port[i] = portval
    counters[C_SRC_PACKETS] += 1
    counters[C_SRC_BYTES] += cl


@njit(cache=True)
def pcap_walk(buf, pos, end, big, nano, rec_hdr, swap, lt, portval, maxcap,
              off, caplen, wirelen, ts, linktype, port, n0, nmax, counters, out):
    """Classic pcap records (rec_hdr is 16, or 24 for the Kuznetsov variant).
    swap: 0 lengths in 2.4 order; 1 always swapped (files of version 2.0 to
    2.2 write orig_len before incl_len); 2 swapped where incl_len > orig_len
    (version 2.3, either order) -- libpcap's and wiretap's rule."""
    n = n0
    status = ST_FULL
    mult = 1 if nano else 1000
    pf = pos
    while n < nmax:
        pf = stream_ahead(buf, pf, pos, end)
        if pos == end:
            status = ST_END
            break
        if pos + rec_hdr > end:
            status = ST_MORE
            break
        sec = _u32(buf, pos, big)
        frac = _u32(buf, pos + 4, big)
        cl = _u32(buf, pos + 8, big)
        wl = _u32(buf, pos + 12, big)
        if swap == 1 or (swap == 2 and cl > wl):
            cl, wl = wl, cl
        if cl > maxcap:
            status = ST_BAD
            break
        if pos + rec_hdr + cl > end:
            status = ST_MORE
            break
        _emit(n, pos + rec_hdr, cl, wl, sec * 1000000000 + frac * mult, lt, portval,
              off, caplen, wirelen, ts, linktype, port, counters)
        n += 1
        pos += rec_hdr + cl
    out[0] = pos
    out[1] = status
    return n - n0


@helper
def _pcapng_ts(hi, lo, kind, exp, offset_ns):
    v = (np.uint64(hi) << np.uint64(32)) | np.uint64(lo)
    if kind == 0:
        if exp <= 9:
            mul = np.uint64(1)
            for _ in range(9 - exp):
                mul *= np.uint64(10)
            return np.int64(v * mul) + offset_ns
        div = np.uint64(1)
        for _ in range(exp - 9):
            div *= np.uint64(10)
        return np.int64(v // div) + offset_ns
    sh = np.uint64(exp)
    secs = v >> sh
    frac = v - (secs << sh)
    if exp <= 32:
        return np.int64(secs) * 1000000000 + np.int64((frac * np.uint64(1000000000)) >> sh) + offset_ns
    return np.int64(secs) * 1000000000 + np.int64(float(frac) / float(np.uint64(1) << sh) * 1e9) + offset_ns


@njit(cache=True)
def pcapng_walk(buf, pos, end, state, if_lt, if_kind, if_exp, if_offns, if_snap, portval, maxcap,
                off, caplen, wirelen, ts, linktype, port, n0, nmax, counters, out):
    """pcapng blocks: SHB (either byte order), IDB, EPB, SPB, obsolete PB;
    every other block is skipped and counted."""
    n = n0
    status = ST_FULL
    last_ts = state[PS_LAST_TS]
    pf = pos
    while n < nmax:
        pf = stream_ahead(buf, pf, pos, end)
        if pos == end:
            status = ST_END
            break
        if pos + 12 > end:
            status = ST_MORE
            break
        btype_le = _u32(buf, pos, False)
        if btype_le == BLK_SHB:
            bom = _u32(buf, pos + 8, False)
            if bom == BOM:
                state[PS_BIG_ENDIAN] = 0
            elif _u32(buf, pos + 8, True) == BOM:
                state[PS_BIG_ENDIAN] = 1
            else:
                status = ST_BAD
                break
        elif state[PS_SECTIONS] == 0:
            status = ST_BAD  # data before the first section header
            break
        big = state[PS_BIG_ENDIAN] == 1
        btype = _u32(buf, pos, big)
        blen = _u32(buf, pos + 4, big)
        if blen < 12 or blen > maxcap + 4096:
            status = ST_BAD
            break
        # Some old writers put the unpadded length here; the block is padded
        # to 4 bytes all the same (libpeak's test.pcapng does this).
        blen = (blen + 3) & ~3
        if pos + blen > end:
            status = ST_MORE
            break
        trail = _u32(buf, pos + blen - 4, big)
        if trail != blen and ((trail + 3) & ~3) != blen:
            status = ST_BAD
            break
        body = pos + 8
        bend = pos + blen - 4
        if btype == BLK_SHB:
            state[PS_SECTIONS] += 1
            state[PS_N_IF] = 0
        elif btype == BLK_IDB:
            k = state[PS_N_IF]
            state[PS_N_IF] = k + 1
            if k >= MAX_IF:
                counters[C_SRC_PCAPNG_TOO_MANY_IFACES] += 1
            elif body + 8 > bend:
                status = ST_BAD
                break
            else:
                if_lt[k] = _u16(buf, body, big)
                if_snap[k] = _u32(buf, body + 4, big)
                if_kind[k] = 0
                if_exp[k] = 6
                if_offns[k] = 0
                q = body + 8
                while q + 4 <= bend:
                    code = _u16(buf, q, big)
                    olen = _u16(buf, q + 2, big)
                    if code == 0 or q + 4 + olen > bend:
                        break
                    if code == 9 and olen >= 1:
                        r = np.int64(buf[q + 4])
                        if r & 0x80:
                            if_kind[k] = 1
                            if_exp[k] = min(r & 0x7F, 63)
                        else:
                            if_kind[k] = 0
                            if_exp[k] = min(r, 19)
                    elif code == 14 and olen >= 8:
                        lo = _u32(buf, q + 4, big)
                        hi = _u32(buf, q + 8, big)
                        if big:
                            lo, hi = hi, lo
                        if_offns[k] = ((hi << 32) | lo) * 1000000000
                    q += 4 + ((olen + 3) & ~3)
        elif btype == BLK_EPB or btype == BLK_PB:
            if body + 20 > bend:
                status = ST_BAD
                break
            if btype == BLK_EPB:
                iface = _u32(buf, body, big)
            else:
                iface = _u16(buf, body, big)
            hi = _u32(buf, body + 4, big)
            lo = _u32(buf, body + 8, big)
            cl = _u32(buf, body + 12, big)
            wl = _u32(buf, body + 16, big)
            if body + 20 + cl > bend:
                status = ST_BAD
                break
            if iface >= state[PS_N_IF] or iface >= MAX_IF:
                counters[C_SRC_PCAPNG_BAD_IFACE] += 1
            else:
                last_ts = _pcapng_ts(hi, lo, if_kind[iface], if_exp[iface], if_offns[iface])
                _emit(n, body + 20, cl, wl, last_ts, if_lt[iface], portval,
                      off, caplen, wirelen, ts, linktype, port, counters)
                n += 1
        elif btype == BLK_SPB:
            if body + 4 > bend:
                status = ST_BAD
                break
            if state[PS_N_IF] == 0:
                counters[C_SRC_PCAPNG_BAD_IFACE] += 1
            else:
                wl = _u32(buf, body, big)
                cl = min(wl, bend - body - 4)
                if if_snap[0] > 0:
                    cl = min(cl, if_snap[0])
                _emit(n, body + 4, cl, wl, last_ts, if_lt[0], portval,
                      off, caplen, wirelen, ts, linktype, port, counters)
                n += 1
        else:
            counters[C_SRC_PCAPNG_SKIPPED_BLOCK] += 1
        pos += blen
    state[PS_LAST_TS] = last_ts
    out[0] = pos
    out[1] = status
    return n - n0


# ERF record types ulnet reads, and the link type each maps to.
ERF_ETH = 2
ERF_IPV4 = 22
ERF_IPV6 = 23


@njit(cache=True)
def erf_walk(buf, pos, end, portval, maxcap,
             off, caplen, wirelen, ts, linktype, port, n0, nmax, counters, out):
    """Endace ERF records: Ethernet, IPv4 and IPv6 types; others skipped."""
    n = n0
    status = ST_FULL
    pf = pos
    while n < nmax:
        pf = stream_ahead(buf, pf, pos, end)
        if pos == end:
            status = ST_END
            break
        if pos + 16 > end:
            status = ST_MORE
            break
        rtype = np.int64(buf[pos + 8])
        rlen = _u16(buf, pos + 10, True)
        lctr = _u16(buf, pos + 12, True)
        wl = _u16(buf, pos + 14, True)
        if rlen < 16 or rlen > maxcap + 64:
            status = ST_BAD
            break
        if pos + rlen > end:
            status = ST_MORE
            break
        lo = _u32(buf, pos, False)
        hi = _u32(buf, pos + 4, False)
        t = hi * 1000000000 + ((lo * 1000000000 + 0x80000000) >> 32)
        counters[C_SRC_ERF_LOSS] += lctr
        q = pos + 16
        ext = rtype
        while (ext & 0x80) and q + 8 <= pos + rlen:
            ext = np.int64(buf[q])
            q += 8
        base = rtype & 0x7F
        lt = -1
        if base == ERF_ETH:
            q += 2
            lt = 1
        elif base == ERF_IPV4:
            lt = 228
        elif base == ERF_IPV6:
            lt = 229
        if lt < 0 or q > pos + rlen:
            counters[C_SRC_ERF_UNSUPPORTED] += 1
        else:
            cl = min(pos + rlen - q, wl)
            _emit(n, q, cl, wl, t, lt, portval, off, caplen, wirelen, ts, linktype, port, counters)
            n += 1
        pos += rlen
    out[0] = pos
    out[1] = status
    return n - n0
