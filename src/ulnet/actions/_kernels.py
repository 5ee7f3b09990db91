"""Action kernels (private; see ulnet.actions for the public functions).

act_batch turns the policy's per-packet verdict columns into where each
packet goes (``nxt`` arcs, output port, output time): pass -> the route /
balance port or the other side; block -> dropped; reject -> dropped and
answered; police -> token bucket, drop above the rate; shape -> FIFO token
bucket on the packet clock, the packet leaves at its departure time, or is
dropped when it would wait longer than the queue allows.

build_rejects lays out the answers (TCP RST, ICMP/ICMPv6 unreachable) to
the rejected packets in one output array.
"""

from __future__ import annotations

import numpy as np
from ulnet.jit import njit

from ulnet.batch.columns import (H_L3, H_L4, H_IP_VERSION, H_PROTO, H_TCP_FLAGS, H_TCP_HLEN, H_PAYLOAD_LEN,
                                 H_ICMP_TYPE, H_TUNNEL, H_MPLS_COUNT, H_VLAN_COUNT, H_FRAG, H_FRAG_OFF, H_IP_LEN,
                                 H_IP_HLEN)
from ulnet.policy.compile import (A_PASS, A_BLOCK, A_REJECT, RATE_PER_NS, RATE_BURST, RATE_QUEUE_NS,
                                  RATE_PER_FLOW, RATE_BYTES)

# next arcs
NEXT_DROP_BLOCK = 0
NEXT_FORWARD = 1
NEXT_REJECT = 2
NEXT_DROP_POLICE = 3
NEXT_DROP_SHAPE = 4
NEXT_DROP_NO_OUTPUT = 5
NEXT_SHAPED = 6           # forwarded, later than it came
NEXT_NAMES = ("drop.block", "forward", "drop.reject", "drop.police", "drop.shape_queue", "drop.no_output",
              "forward.shaped")

# bucket state columns (B*: float64 tokens, T*: int64 time, O*: owner flow id for per-flow rows)
NOT_STARTED = np.iinfo(np.int64).min


@njit(cache=True, inline="always")
def _refill(tok, last, t, per_ns, burst):
    if last == NOT_STARTED:
        return burst
    v = tok + (t - last) * per_ns
    return burst if v > burst else v


@njit(cache=True)
def act_batch(i0, i1, ts, wirelen, port, fid, fentry, o_act, o_out, o_in, o_police, o_shape, PEER, HASOUT,
              RP, RS, PRK, PRT, PFK, PFT, PFO, SRK, SRT, SFK, SFT, SFO, nxt, outp, outts, counts):
    """Where packets i0..i1 go. counts[k] += packets per next arc k."""
    for i in range(i0, i1):
        t = ts[i]
        outts[i] = t
        outp[i] = -1
        a = o_act[i]
        if a == A_BLOCK:
            nxt[i] = NEXT_DROP_BLOCK
            counts[NEXT_DROP_BLOCK] += 1
            continue
        if a == A_REJECT:
            nxt[i] = NEXT_REJECT
            counts[NEXT_REJECT] += 1
            continue
        pin = port[i]
        r = o_out[i]
        if r >= 0:
            dst = o_in[i] if pin == r else r
        else:
            dst = PEER[pin]
        if dst < 0 or not HASOUT[dst]:
            nxt[i] = NEXT_DROP_NO_OUTPUT
            counts[NEXT_DROP_NO_OUTPUT] += 1
            continue
        e = fentry[i]
        # police: a token bucket per rule or per flow; drop above the rate
        p = o_police[i]
        if p >= 0:
            size = np.float64(wirelen[i]) if RP[p, RATE_BYTES] == 1 else 1.0
            per_ns = RP[p, RATE_PER_NS]
            burst = RP[p, RATE_BURST]
            if RP[p, RATE_PER_FLOW] == 1 and e >= 0:
                if PFO[e] != fid[i]:
                    PFO[e] = fid[i]
                    PFT[e] = NOT_STARTED
                tok = _refill(PFK[e], PFT[e], t, per_ns, burst)
                PFT[e] = t
                ok = tok >= size
                PFK[e] = tok - size if ok else tok
            else:
                tok = _refill(PRK[p], PRT[p], t, per_ns, burst)
                PRT[p] = t
                ok = tok >= size
                PRK[p] = tok - size if ok else tok
            if not ok:
                nxt[i] = NEXT_DROP_POLICE
                counts[NEXT_DROP_POLICE] += 1
                continue
        # shape: FIFO token bucket; departure on the packet clock
        s = o_shape[i]
        if s >= 0:
            size = np.float64(wirelen[i]) if RS[s, RATE_BYTES] == 1 else 1.0
            per_ns = RS[s, RATE_PER_NS]
            burst = RS[s, RATE_BURST]
            flow = RS[s, RATE_PER_FLOW] == 1 and e >= 0
            if flow:
                if SFO[e] != fid[i]:
                    SFO[e] = fid[i]
                    SFT[e] = NOT_STARTED
                tok0, last = SFK[e], SFT[e]
            else:
                tok0, last = SRK[s], SRT[s]
            start = t if last == NOT_STARTED or last < t else last
            tok = _refill(tok0, last, start, per_ns, burst)
            need = size if size < burst else burst
            d = start
            if tok < need:
                d = start + np.int64(np.ceil((need - tok) / per_ns))
                tok = _refill(tok, start, d, per_ns, burst)
            if d - t > RS[s, RATE_QUEUE_NS]:
                nxt[i] = NEXT_DROP_SHAPE
                counts[NEXT_DROP_SHAPE] += 1
                continue
            if flow:
                SFK[e] = tok - size
                SFT[e] = d
            else:
                SRK[s] = tok - size
                SRT[s] = d
            outts[i] = d
        outp[i] = dst
        if outts[i] > t:
            nxt[i] = NEXT_SHAPED
            counts[NEXT_SHAPED] += 1
        else:
            nxt[i] = NEXT_FORWARD
            counts[NEXT_FORWARD] += 1


# ---- reject: the answers ---------------------------------------------------------------------

@njit(cache=True, inline="always")
def _be16(b, p):
    return (np.int64(b[p]) << 8) | np.int64(b[p + 1])


@njit(cache=True, inline="always")
def _be32(b, p):
    return (_be16(b, p) << 16) | _be16(b, p + 2)


@njit(cache=True, inline="always")
def _put16(b, p, v):
    b[p] = (v >> 8) & 0xFF
    b[p + 1] = v & 0xFF


@njit(cache=True, inline="always")
def _put32(b, p, v):
    _put16(b, p, (v >> 16) & 0xFFFF)
    _put16(b, p + 2, v & 0xFFFF)


@njit(cache=True)
def _csum(b, p, n, acc):
    for k in range(0, n - 1, 2):
        acc += (np.int64(b[p + k]) << 8) | np.int64(b[p + k + 1])
    if n & 1:
        acc += np.int64(b[p + n - 1]) << 8
    return acc


@njit(cache=True, inline="always")
def _fold(acc):
    while acc >> 16:
        acc = (acc & 0xFFFF) + (acc >> 16)
    return (~acc) & 0xFFFF


ICMP_QUOTE_V6 = 1232     # ICMPv6 error quotes as much as fits in 1280 bytes


@njit(cache=True)
def build_rejects(buf, off, caplen, linktype, hdr, nxt, port, i0, i1, out, roff, rlen, rport, rrow, counts):
    """Answers to the packets with nxt == NEXT_REJECT in i0..i1, laid out in
    ``out`` (grown by the caller: it holds 1400 bytes per packet). Returns how many.
    counts[0] RST, [1] ICMP, [2] not answered (RST, ICMP error, fragment,
    multicast/broadcast, tunnel or a link type ulnet does not answer on)."""
    q = 0
    k = 0
    for i in range(i0, i1):
        if nxt[i] != NEXT_REJECT:
            continue
        lt = linktype[i]
        l3 = hdr[i, H_L3]
        ver = hdr[i, H_IP_VERSION]
        proto = hdr[i, H_PROTO]
        o = off[i]
        ok = l3 >= 0 and ver != 0 and hdr[i, H_TUNNEL] == 0 and hdr[i, H_MPLS_COUNT] == 0
        if lt == 1:
            ok = ok and l3 == 14 + 4 * hdr[i, H_VLAN_COUNT]
        elif lt == 101 or lt == 228 or lt == 229:
            ok = ok and l3 == 0
        else:
            ok = False
        if ok and (hdr[i, H_FRAG] & 1) and hdr[i, H_FRAG_OFF] != 0:
            ok = False
        if ok and proto == 6:
            f = hdr[i, H_TCP_FLAGS]
            ok = f >= 0 and (f & 4) == 0 and hdr[i, H_TCP_HLEN] >= 20 and hdr[i, H_L4] >= 0
        if ok and (proto == 1 or proto == 58):
            ty = hdr[i, H_ICMP_TYPE]
            ok = ty >= 0 and ((proto == 1 and (ty == 0 or ty == 8 or ty == 13 or ty == 15 or ty == 17))
                              or (proto == 58 and ty >= 128))
        if ok:
            if ver == 4:
                d0 = buf[o + l3 + 16]
                ok = not (d0 >= 224 or (d0 == 255 and buf[o + l3 + 19] == 255))
            else:
                ok = buf[o + l3 + 24] != 0xFF
        if not ok:
            counts[2] += 1
            continue
        p = q
        # link header: copied, MACs swapped
        for c in range(l3):
            out[p + c] = buf[o + c]
        if lt == 1:
            for c in range(6):
                out[p + c] = buf[o + 6 + c]
                out[p + 6 + c] = buf[o + c]
        ip = p + l3
        iph = 20 if ver == 4 else 40
        if proto == 6:
            l4 = o + hdr[i, H_L4]
            f = hdr[i, H_TCP_FLAGS]
            th = ip + iph
            for c in range(20):
                out[th + c] = 0
            out[th + 0] = buf[l4 + 2]       # ports swapped
            out[th + 1] = buf[l4 + 3]
            out[th + 2] = buf[l4 + 0]
            out[th + 3] = buf[l4 + 1]
            if f & 16:                       # ACK set: RST with seq = their ack
                _put32(out, th + 4, _be32(buf, l4 + 8))
                out[th + 13] = 4
            else:                            # RST|ACK acknowledging what they sent
                seg = hdr[i, H_PAYLOAD_LEN] + (1 if f & 2 else 0) + (1 if f & 1 else 0)
                _put32(out, th + 8, (_be32(buf, l4 + 4) + seg) & 0xFFFFFFFF)
                out[th + 13] = 0x14
            out[th + 12] = 5 << 4
            l4len = 20
        else:
            # ICMP(v6) destination unreachable quoting the packet
            th = ip + iph
            qlen = hdr[i, H_IP_LEN]
            avail = caplen[i] - l3
            if qlen <= 0 or qlen > avail:
                qlen = avail
            if ver == 4:
                qlen = min(qlen, hdr[i, H_IP_HLEN] + 8)
                out[th] = 3
                out[th + 1] = 3 if proto == 17 else 13      # port unreachable / administratively prohibited
            else:
                qlen = min(qlen, ICMP_QUOTE_V6)
                out[th] = 1
                out[th + 1] = 4 if proto == 17 else 1
            for c in range(2, 8):
                out[th + c] = 0
            for c in range(qlen):
                out[th + 8 + c] = buf[o + l3 + c]
            l4len = 8 + qlen
        # IP header: addresses swapped
        if ver == 4:
            out[ip] = 0x45
            out[ip + 1] = 0
            _put16(out, ip + 2, 20 + l4len)
            _put32(out, ip + 4, 0)
            out[ip + 8] = 64
            out[ip + 9] = 6 if proto == 6 else 1
            _put16(out, ip + 10, 0)
            for c in range(4):
                out[ip + 12 + c] = buf[o + l3 + 16 + c]
                out[ip + 16 + c] = buf[o + l3 + 12 + c]
            _put16(out, ip + 10, _fold(_csum(out, ip, 20, 0)))
            if proto == 6:
                acc = _csum(out, ip + 12, 8, 6 + l4len)
                _put16(out, th + 16, _fold(_csum(out, th, l4len, acc)))
            else:
                _put16(out, th + 2, _fold(_csum(out, th, l4len, 0)))
        else:
            _put32(out, ip, 6 << 28)
            _put16(out, ip + 4, l4len)
            out[ip + 6] = 6 if proto == 6 else 58
            out[ip + 7] = 64
            for c in range(16):
                out[ip + 8 + c] = buf[o + l3 + 24 + c]
                out[ip + 24 + c] = buf[o + l3 + 8 + c]
            acc = _csum(out, ip + 8, 32, l4len + (6 if proto == 6 else 58))
            if proto == 6:
                _put16(out, th + 16, _fold(_csum(out, th, l4len, acc)))
            else:
                _put16(out, th + 2, _fold(_csum(out, th, l4len, acc)))
        n = l3 + iph + l4len
        if lt == 1 and n < 60:
            for c in range(n, 60):
                out[p + c] = 0
            n = 60
        roff[k] = p
        rlen[k] = n
        rport[k] = port[i]
        rrow[k] = i
        counts[0 if proto == 6 else 1] += 1
        q += n
        k += 1
    return k
