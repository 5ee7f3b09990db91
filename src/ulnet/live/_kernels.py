"""The bridge's per-port pass as one compiled call (private to ulnet.live).

``bridge_pass`` runs, for one port of a bridge without a policy, what
``Forwarder.step`` otherwise does in six calls from Python: walk the V3
receive ring into the batch, add the receive counts, decode, track flows
(the first segment), copy the frames into the peer's TX ring and give the
walked blocks back. Only the ``send()`` is left to Python. Each numba call
from Python costs microseconds (argument unboxing, more so on a CPU just
woken from sleep), and a lone ping pays them twice per round trip
(docs/live.md, "Latency"): one call instead of six is the saving.

Whenever a case needs Python (the flow table must hand a segment over,
settle reserved rows or drain ended flows; the TX ring is full), the pass
stops at that point and says so; the caller continues with the ordinary
code from there, so the result is the same as the six calls.
"""

from __future__ import annotations

import numpy as np
from numba import carray

from ulnet.jit import njit
from ulnet.rawmem import pointer_to

from ulnet.counters import C_LIVE_TX_BYTES, C_LIVE_TX_PACKETS, C_LIVE_TX_TOO_BIG
from ulnet.decode._kernels import decode_batch
from ulnet.flow import _kernels as FK
from ulnet.flow._kernels import flow_batch
from ulnet.sinks.txring import _tx_fill
from ulnet.sources.afpacket import _fill_v3, _release_v3

# bridge_pass return codes
PASS_EMPTY = 0       # no packet
PASS_DONE = 1        # forwarded and released: the caller sends and bumps the flow epoch
PASS_FLOWS = 2       # decoded; the flow table returned res[1] < n or needs Python: continue from there
PASS_TX_FULL = 3     # flows done; TX ring full at row res[2] (res[3] rows placed): continue sending

# _polkernels.policy_pass return codes (here: the loop needs them without loading that module)
PPASS_EMPTY = 0      # no packet
PPASS_DONE = 1       # decided, forwarded and released: the caller sends
PPASS_EMIT = 2       # rows 0..n decided: the caller emits (LivePolicy.emit) and releases
PPASS_TX_FULL = 3    # decided; TX ring full at row res[2] (res[3] rows placed): continue sending, release
PPASS_FLOWS = 4      # rows 0..res[1] decided, their segment closed (settled, epoch bumped), ended flows
                     # to hand over: the caller drains, goes on from res[1], emits, releases
PPASS_QUIC = 5       # segment res[5]..res[1]: flow and inspect_batch ran, QUIC Initials to read in
                     # Python: the caller finishes that segment, goes on, emits, releases

S_NRES = FK.S_NRES


@njit(cache=True)
def take_and_decode(ring, unit, nblocks, rst, vnet, port, peek, ifindex, off, caplen, wirelen, ts, linktype,
                    portcol, hdr, addr, cap, rx_stats, counters):
    """The start of both one-call passes: fill the batch from the ring (as
    RingSource.fill), add the receive counts, decode; returns the packets
    taken."""
    n = _fill_v3(ring, unit, nblocks, rst, vnet, port, off, caplen, wirelen, ts, linktype, portcol,
                 0, cap, counters, peek, ifindex)
    if n == 0:
        return 0
    rx_stats[0] += n
    nb = 0
    for i in range(n):
        nb += wirelen[i]
    rx_stats[1] += nb
    decode_batch(ring, off, caplen, wirelen, linktype, n, hdr, addr, counters)
    return n


@njit(cache=True)
def copy_to_tx(txring, fsize, nframes, tst, ring, off, caplen, mask, n, vnet, tvnet, maxlen, counters, res):
    """The end of both one-call passes: copy rows 0..n-1 (where ``mask``)
    into the peer's TX ring. res[2] = the row reached, res[3] = rows placed;
    False when the ring filled up before row n."""
    before = counters[C_LIVE_TX_PACKETS]
    i = _tx_fill(txring, fsize, nframes, tst, ring, off, caplen, mask, 0, n, vnet, tvnet, maxlen,
                 counters, C_LIVE_TX_PACKETS, C_LIVE_TX_BYTES, C_LIVE_TX_TOO_BIG)
    res[2] = i
    res[3] = counters[C_LIVE_TX_PACKETS] - before
    return i >= n


@njit(cache=True)
def bridge_pass(ring, unit, nblocks, rst, vnet, port, peek, ifindex,
                off, caplen, wirelen, ts, linktype, portcol, hdr, addr, cap,
                F, K, TF, ST, LT, LNK, IDX, S, FR, META, MFREE, XF, XK, XTF, XST, XMETA,
                idle_ns, active_ns, close_ns, statistics, skip_frags, drain_rows,
                flow_entry, flow_id, flow_dir, flow_pkt,
                txring, fsize, nframes, tst, mask, tvnet, maxlen,
                rx_stats, tx_stats, counters, res):
    """One port's packets through walk, decode, flow, TX copy and release.
    res[0] = packets taken, res[1] = flow rows done, res[2] = TX row reached,
    res[3] = rows placed in the TX ring. Returns a PASS_* code."""
    n = take_and_decode(ring, unit, nblocks, rst, vnet, port, peek, ifindex, off, caplen, wirelen, ts, linktype,
                        portcol, hdr, addr, cap, rx_stats, counters)
    res[0] = n
    if n == 0:
        return PASS_EMPTY
    done = flow_batch(hdr, addr, ts, wirelen, n, 0, F, K, TF, ST, LT, LNK, IDX, S, FR, META, MFREE,
                      XF, XK, XTF, XST, XMETA, idle_ns, active_ns, close_ns, statistics, skip_frags, -1,
                      flow_entry, flow_id, flow_dir, flow_pkt, counters)
    res[1] = done
    if done < n or S[S_NRES] or FK.drain_due(S, drain_rows, XF.shape[0]):
        return PASS_FLOWS
    if not copy_to_tx(txring, fsize, nframes, tst, ring, off, caplen, mask, n, vnet, tvnet, maxlen, counters, res):
        return PASS_TX_FULL
    tx_stats[2] += res[3]
    if rst[3]:
        _release_v3(ring, unit, nblocks, rst, peek)
    return PASS_DONE


# -- bridge_pass, its arguments packed (ulnet.live._pack) --------------------
# the parameters both passes share: before and after policy_pass's own
BRIDGE_HEAD = (
    ('ring', 'uint8', 1),
    ('unit', 'int', 0),
    ('nblocks', 'int', 0),
    ('rst', 'int64', 1),
    ('vnet', 'bool', 0),
    ('port', 'int', 0),
    ('peek', 'bool', 0),
    ('ifindex', 'int', 0),
    ('off', 'int64', 1),
    ('caplen', 'uint32', 1),
    ('wirelen', 'uint32', 1),
    ('ts', 'int64', 1),
    ('linktype', 'uint16', 1),
    ('portcol', 'uint16', 1),
    ('hdr', 'int64', 2),
    ('addr', 'uint64', 2),
    ('cap', 'int', 0),
    ('F', 'int64', 2),
    ('K', 'uint64', 2),
    ('TF', 'uint32', 2),
    ('ST', 'float64', 2),
    ('LT', 'int64', 2),
    ('LNK', 'int32', 2),
    ('IDX', 'int32', 1),
    ('S', 'int64', 1),
    ('FR', 'int64', 2),
    ('META', 'uint8', 2),
    ('MFREE', 'int32', 1),
    ('XF', 'int64', 2),
    ('XK', 'uint64', 2),
    ('XTF', 'uint32', 2),
    ('XST', 'float64', 2),
    ('XMETA', 'uint8', 2),
    ('idle_ns', 'int', 0),
    ('active_ns', 'int', 0),
    ('close_ns', 'int', 0),
    ('statistics', 'bool', 0),
    ('skip_frags', 'bool', 0),
    ('drain_rows', 'int', 0),
    ('flow_entry', 'int64', 1),
    ('flow_id', 'int64', 1),
    ('flow_dir', 'int64', 1),
    ('flow_pkt', 'int64', 1),
)
BRIDGE_TAIL = (
    ('txring', 'uint8', 1),
    ('fsize', 'int', 0),
    ('nframes', 'int', 0),
    ('tst', 'int64', 1),
    ('mask', 'bool', 1),
    ('tvnet', 'bool', 0),
    ('maxlen', 'int', 0),
    ('rx_stats', 'int64', 1),
    ('tx_stats', 'int64', 1),
    ('counters', 'int64', 1),
    ('res', 'int64', 1),
)
BRIDGE_SPEC = BRIDGE_HEAD + BRIDGE_TAIL


@njit(cache=True)
def bridge_pass_packed(A):
    """bridge_pass over the arguments ``_pack.pack(args, BRIDGE_SPEC)`` made ``A`` of."""
    ring = carray(pointer_to(A[0], np.uint8), (A[1],))
    unit = A[2]
    nblocks = A[3]
    rst = carray(pointer_to(A[4], np.int64), (A[5],))
    vnet = A[6] != 0
    port = A[7]
    peek = A[8] != 0
    ifindex = A[9]
    off = carray(pointer_to(A[10], np.int64), (A[11],))
    caplen = carray(pointer_to(A[12], np.uint32), (A[13],))
    wirelen = carray(pointer_to(A[14], np.uint32), (A[15],))
    ts = carray(pointer_to(A[16], np.int64), (A[17],))
    linktype = carray(pointer_to(A[18], np.uint16), (A[19],))
    portcol = carray(pointer_to(A[20], np.uint16), (A[21],))
    hdr = carray(pointer_to(A[22], np.int64), (A[23], A[24],))
    addr = carray(pointer_to(A[25], np.uint64), (A[26], A[27],))
    cap = A[28]
    F = carray(pointer_to(A[29], np.int64), (A[30], A[31],))
    K = carray(pointer_to(A[32], np.uint64), (A[33], A[34],))
    TF = carray(pointer_to(A[35], np.uint32), (A[36], A[37],))
    ST = carray(pointer_to(A[38], np.float64), (A[39], A[40],))
    LT = carray(pointer_to(A[41], np.int64), (A[42], A[43],))
    LNK = carray(pointer_to(A[44], np.int32), (A[45], A[46],))
    IDX = carray(pointer_to(A[47], np.int32), (A[48],))
    S = carray(pointer_to(A[49], np.int64), (A[50],))
    FR = carray(pointer_to(A[51], np.int64), (A[52], A[53],))
    META = carray(pointer_to(A[54], np.uint8), (A[55], A[56],))
    MFREE = carray(pointer_to(A[57], np.int32), (A[58],))
    XF = carray(pointer_to(A[59], np.int64), (A[60], A[61],))
    XK = carray(pointer_to(A[62], np.uint64), (A[63], A[64],))
    XTF = carray(pointer_to(A[65], np.uint32), (A[66], A[67],))
    XST = carray(pointer_to(A[68], np.float64), (A[69], A[70],))
    XMETA = carray(pointer_to(A[71], np.uint8), (A[72], A[73],))
    idle_ns = A[74]
    active_ns = A[75]
    close_ns = A[76]
    statistics = A[77] != 0
    skip_frags = A[78] != 0
    drain_rows = A[79]
    flow_entry = carray(pointer_to(A[80], np.int64), (A[81],))
    flow_id = carray(pointer_to(A[82], np.int64), (A[83],))
    flow_dir = carray(pointer_to(A[84], np.int64), (A[85],))
    flow_pkt = carray(pointer_to(A[86], np.int64), (A[87],))
    txring = carray(pointer_to(A[88], np.uint8), (A[89],))
    fsize = A[90]
    nframes = A[91]
    tst = carray(pointer_to(A[92], np.int64), (A[93],))
    mask = carray(pointer_to(A[94], np.bool_), (A[95],))
    tvnet = A[96] != 0
    maxlen = A[97]
    rx_stats = carray(pointer_to(A[98], np.int64), (A[99],))
    tx_stats = carray(pointer_to(A[100], np.int64), (A[101],))
    counters = carray(pointer_to(A[102], np.int64), (A[103],))
    res = carray(pointer_to(A[104], np.int64), (A[105],))
    return bridge_pass(ring, unit, nblocks, rst, vnet, port, peek, ifindex, off, caplen, wirelen, ts, linktype,
                       portcol, hdr, addr, cap, F, K, TF, ST, LT, LNK, IDX, S, FR, META, MFREE, XF, XK, XTF,
                       XST, XMETA, idle_ns, active_ns, close_ns, statistics, skip_frags, drain_rows, flow_entry,
                       flow_id, flow_dir, flow_pkt, txring, fsize, nframes, tst, mask, tvnet, maxlen, rx_stats,
                       tx_stats, counters, res)
