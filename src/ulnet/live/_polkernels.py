"""The bridge's per-port pass with a policy, as one compiled call (private to ulnet.live).

``policy_pass`` runs, for one port of a bridge with a rules file, what
``Forwarder.step`` and ``LivePolicy`` otherwise do in a dozen calls from
Python and as many numpy temporaries per batch: walk the V3 receive ring
into the batch, add the receive counts, decode, then per flow segment (as
``FlowTable.process`` with ``LivePolicy._after_flow``) the flow table,
inspection, the policy stage, the action kernel, settling reserved export
rows and the segment epoch; then, when every row is forwarded to the peer
or dropped, the TX copy and the release. Only the ``send()`` is left to
Python. See ``_kernels.bridge_pass`` for why (each numba call from Python
costs microseconds of argument unboxing, more on a CPU just woken).

Whatever needs Python stops the pass at that point with a code saying
where; the caller continues with the ordinary code from there
(``LivePolicy.resume``), so the result is the same as the general path:
ended flows to hand over (drain), QUIC Initials to decrypt, a reject
answer, a shaped packet, a route to another port, a capture file, a full
TX ring.

Kept in its own module (not ``_kernels``): it pulls in the inspection,
policy and action kernels, which a bridge without a policy never loads.
"""

from __future__ import annotations

import numpy as np
from numba import carray

from ulnet.jit import njit
from ulnet.rawmem import pointer_to

from ulnet.actions._kernels import NEXT_FORWARD, NEXT_REJECT, NEXT_SHAPED, act_batch
from ulnet.counters import C_LIVE_POLICY_DROPPED
from ulnet.flow import _kernels as FK
from ulnet.flow._kernels import flow_batch, settle_reserved
from ulnet.inspect._kernels import inspect_batch
from ulnet.policy._kernels import S_NLOG as PK_S_NLOG
from ulnet.policy._kernels import decide_batch
from ulnet.sources.afpacket import _release_v3
from ulnet.live import _run

from ulnet.live._kernels import (BRIDGE_HEAD, BRIDGE_TAIL, PPASS_DONE, PPASS_EMIT, PPASS_EMPTY, PPASS_FLOWS,  # noqa: F401
                                PPASS_QUIC, PPASS_TX_FULL, copy_to_tx, take_and_decode)

S_NRES = FK.S_NRES


@njit(cache=True)
def policy_pass(ring, unit, nblocks, rst, vnet, port, peek, ifindex,
                off, caplen, wirelen, ts, linktype, portcol, hdr, addr, cap,
                F, K, TF, ST, LT, LNK, IDX, S, FR, META, MFREE, XF, XK, XTF, XST, XMETA,
                idle_ns, active_ns, close_ns, statistics, skip_frags, drain_rows,
                flow_entry, flow_id, flow_dir, flow_pkt,
                inspect, max_dpi, xapp, papp, keep_open, upgrade, ids, sni,
                PB, SAH, SAL, SAC, SAB, DAH, DAL, DAC, DAB, SPC, SPB, DPC, DPB, RT, POOL, HP, MATCHRULE,
                APPCAT, PEER, has_app, use_app, V, MS, RSTAT, CBA, PS, LOGB,
                HCAP, HNAME, HLEN, HHASH, HIX, PIX, PKEY, PC, NHR, HSPEC, HST,
                o_rule, o_act, o_out, o_in, o_police, o_shape, o_cap, cand, mset,
                APEER, HASOUT, RP, RS, PRK, PRT, PFK, PFT, PFO, SRK, SRT, SFK, SFT, SFO, nxt, outp, outts, acounts,
                ncaptures, peer,
                txring, fsize, nframes, tst, mask, tvnet, maxlen,
                rx_stats, tx_stats, counters, res):
    """One port's packets through walk, decode, the flow segments with their
    stages, the TX copy and the release (see the module doc). res[0] =
    packets taken, res[1] = rows decided, res[2] = TX row reached, res[3] =
    rows placed in the TX ring, res[4] = the flow table's epoch (in and
    out), res[5] = start of the QUIC segment. Returns a PPASS_* code."""
    n = take_and_decode(ring, unit, nblocks, rst, vnet, port, peek, ifindex, off, caplen, wirelen, ts, linktype,
                        portcol, hdr, addr, cap, rx_stats, counters)
    res[0] = n
    if n == 0:
        return PPASS_EMPTY
    done = 0
    epoch = res[4]
    while True:                                   # FlowTable.process, LivePolicy._after_flow
        start = done
        done = flow_batch(hdr, addr, ts, wirelen, n, done, F, K, TF, ST, LT, LNK, IDX, S, FR, META, MFREE,
                          XF, XK, XTF, XST, XMETA, idle_ns, active_ns, close_ns, statistics, skip_frags, epoch,
                          flow_entry, flow_id, flow_dir, flow_pkt, counters)
        res[1] = done
        if done > start:
            if inspect:
                nquic = inspect_batch(ring, off, hdr, flow_entry, flow_dir, start, done, F, META, MFREE, S,
                                      max_dpi, counters, xapp, papp, keep_open, upgrade, ids, sni)
                if nquic:
                    res[4] = epoch
                    res[5] = start
                    return PPASS_QUIC
            PS[PK_S_NLOG] = 0
            decide_batch(start, done, hdr, addr, wirelen, portcol, flow_entry, flow_id, flow_dir, papp, F, META,
                         PB, SAH, SAL, SAC, SAB, DAH, DAL, DAC, DAB, SPC, SPB, DPC, DPB, RT, POOL, HP, MATCHRULE,
                         APPCAT, PEER, has_app, use_app, V, MS, RSTAT, CBA, PS, LOGB,
                         HCAP, HNAME, HLEN, HHASH, HIX, PIX, PKEY, PC, NHR, HSPEC, HST,
                         o_rule, o_act, o_out, o_in, o_police, o_shape, o_cap, cand, mset)
            act_batch(start, done, ts, wirelen, portcol, flow_id, flow_entry, o_act, o_out, o_in, o_police,
                      o_shape, APEER, HASOUT, RP, RS, PRK, PRT, PFK, PFT, PFO, SRK, SRT, SFK, SFT, SFO,
                      nxt, outp, outts, acounts)
        if S[S_NRES]:
            settle_reserved(F, K, TF, ST, LNK, IDX, S, META, MFREE, XF, XK, XTF, XST, XMETA, statistics)
        epoch = (epoch + 1) & 0xFFFF
        if FK.drain_due(S, drain_rows, XF.shape[0]):
            res[4] = epoch
            return PPASS_FLOWS
        if done >= n:
            break
    res[4] = epoch
    if ncaptures:
        return PPASS_EMIT
    for i in range(n):                            # LivePolicy.emit, when it is one send to the peer
        a = nxt[i]
        if a == NEXT_FORWARD and outp[i] == peer:
            mask[i] = True
        elif a == NEXT_FORWARD or a == NEXT_REJECT or a == NEXT_SHAPED:
            return PPASS_EMIT
        else:
            mask[i] = False
    if not copy_to_tx(txring, fsize, nframes, tst, ring, off, caplen, mask, n, vnet, tvnet, maxlen, counters, res):
        return PPASS_TX_FULL
    tx_stats[2] += res[3]
    counters[C_LIVE_POLICY_DROPPED] += n - res[3]
    if rst[3]:
        _release_v3(ring, unit, nblocks, rst, peek)
    return PPASS_DONE


# -- the same pass, its arguments packed (ulnet.live._pack) ----------------

PASS_SPEC = BRIDGE_HEAD + (
    ('inspect', 'bool', 0),
    ('max_dpi', 'int', 0),
    ('xapp', 'int64', 1),
    ('papp', 'int64', 1),
    ('keep_open', 'uint8', 1),
    ('upgrade', 'int16', 2),
    ('ids', 'int64', 1),
    ('sni', 'int64', 1),
    ('PB', 'uint64', 2),
    ('SAH', 'uint64', 1),
    ('SAL', 'uint64', 1),
    ('SAC', 'int32', 1),
    ('SAB', 'uint64', 2),
    ('DAH', 'uint64', 1),
    ('DAL', 'uint64', 1),
    ('DAC', 'int32', 1),
    ('DAB', 'uint64', 2),
    ('SPC', 'int32', 1),
    ('SPB', 'uint64', 2),
    ('DPC', 'int32', 1),
    ('DPB', 'uint64', 2),
    ('RT', 'int64', 2),
    ('POOL', 'int64', 1),
    ('HP', 'uint8', 1),
    ('MATCHRULE', 'int64', 1),
    ('APPCAT', 'int64', 1),
    ('PEER', 'int64', 1),
    ('has_app', 'bool', 0),
    ('use_app', 'bool', 0),
    ('V', 'int64', 2),
    ('MS', 'int64', 2),
    ('RSTAT', 'int64', 2),
    ('CBA', 'int64', 3),
    ('PS', 'int64', 1),
    ('LOGB', 'int64', 2),
    ('HCAP', 'int', 0),
    ('HNAME', 'uint8', 2),
    ('HLEN', 'int64', 1),
    ('HHASH', 'uint64', 1),
    ('HIX', 'int64', 1),
    ('PIX', 'int64', 1),
    ('PKEY', 'int64', 1),
    ('PC', 'int64', 2),
    ('NHR', 'int64', 1),
    ('HSPEC', 'int64', 3),
    ('HST', 'int64', 1),
    ('o_rule', 'int64', 1),
    ('o_act', 'int64', 1),
    ('o_out', 'int64', 1),
    ('o_in', 'int64', 1),
    ('o_police', 'int64', 1),
    ('o_shape', 'int64', 1),
    ('o_cap', 'int64', 1),
    ('cand', 'uint64', 1),
    ('mset', 'uint64', 1),
    ('APEER', 'int64', 1),
    ('HASOUT', 'bool', 1),
    ('RP', 'float64', 2),
    ('RS', 'float64', 2),
    ('PRK', 'float64', 1),
    ('PRT', 'int64', 1),
    ('PFK', 'float64', 1),
    ('PFT', 'int64', 1),
    ('PFO', 'int64', 1),
    ('SRK', 'float64', 1),
    ('SRT', 'int64', 1),
    ('SFK', 'float64', 1),
    ('SFT', 'int64', 1),
    ('SFO', 'int64', 1),
    ('nxt', 'int64', 1),
    ('outp', 'int64', 1),
    ('outts', 'int64', 1),
    ('acounts', 'int64', 1),
    ('ncaptures', 'int', 0),
    ('peer', 'int', 0),
) + BRIDGE_TAIL


@njit(cache=True)
def policy_pass_packed(A):
    """policy_pass over the arguments ``_pack.pack(args, PASS_SPEC)`` made ``A`` of."""
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
    inspect = A[88] != 0
    max_dpi = A[89]
    xapp = carray(pointer_to(A[90], np.int64), (A[91],))
    papp = carray(pointer_to(A[92], np.int64), (A[93],))
    keep_open = carray(pointer_to(A[94], np.uint8), (A[95],))
    upgrade = carray(pointer_to(A[96], np.int16), (A[97], A[98],))
    ids = carray(pointer_to(A[99], np.int64), (A[100],))
    sni = carray(pointer_to(A[101], np.int64), (A[102],))
    PB = carray(pointer_to(A[103], np.uint64), (A[104], A[105],))
    SAH = carray(pointer_to(A[106], np.uint64), (A[107],))
    SAL = carray(pointer_to(A[108], np.uint64), (A[109],))
    SAC = carray(pointer_to(A[110], np.int32), (A[111],))
    SAB = carray(pointer_to(A[112], np.uint64), (A[113], A[114],))
    DAH = carray(pointer_to(A[115], np.uint64), (A[116],))
    DAL = carray(pointer_to(A[117], np.uint64), (A[118],))
    DAC = carray(pointer_to(A[119], np.int32), (A[120],))
    DAB = carray(pointer_to(A[121], np.uint64), (A[122], A[123],))
    SPC = carray(pointer_to(A[124], np.int32), (A[125],))
    SPB = carray(pointer_to(A[126], np.uint64), (A[127], A[128],))
    DPC = carray(pointer_to(A[129], np.int32), (A[130],))
    DPB = carray(pointer_to(A[131], np.uint64), (A[132], A[133],))
    RT = carray(pointer_to(A[134], np.int64), (A[135], A[136],))
    POOL = carray(pointer_to(A[137], np.int64), (A[138],))
    HP = carray(pointer_to(A[139], np.uint8), (A[140],))
    MATCHRULE = carray(pointer_to(A[141], np.int64), (A[142],))
    APPCAT = carray(pointer_to(A[143], np.int64), (A[144],))
    PEER = carray(pointer_to(A[145], np.int64), (A[146],))
    has_app = A[147] != 0
    use_app = A[148] != 0
    V = carray(pointer_to(A[149], np.int64), (A[150], A[151],))
    MS = carray(pointer_to(A[152], np.int64), (A[153], A[154],))
    RSTAT = carray(pointer_to(A[155], np.int64), (A[156], A[157],))
    CBA = carray(pointer_to(A[158], np.int64), (A[159], A[160], A[161],))
    PS = carray(pointer_to(A[162], np.int64), (A[163],))
    LOGB = carray(pointer_to(A[164], np.int64), (A[165], A[166],))
    HCAP = A[167]
    HNAME = carray(pointer_to(A[168], np.uint8), (A[169], A[170],))
    HLEN = carray(pointer_to(A[171], np.int64), (A[172],))
    HHASH = carray(pointer_to(A[173], np.uint64), (A[174],))
    HIX = carray(pointer_to(A[175], np.int64), (A[176],))
    PIX = carray(pointer_to(A[177], np.int64), (A[178],))
    PKEY = carray(pointer_to(A[179], np.int64), (A[180],))
    PC = carray(pointer_to(A[181], np.int64), (A[182], A[183],))
    NHR = carray(pointer_to(A[184], np.int64), (A[185],))
    HSPEC = carray(pointer_to(A[186], np.int64), (A[187], A[188], A[189],))
    HST = carray(pointer_to(A[190], np.int64), (A[191],))
    o_rule = carray(pointer_to(A[192], np.int64), (A[193],))
    o_act = carray(pointer_to(A[194], np.int64), (A[195],))
    o_out = carray(pointer_to(A[196], np.int64), (A[197],))
    o_in = carray(pointer_to(A[198], np.int64), (A[199],))
    o_police = carray(pointer_to(A[200], np.int64), (A[201],))
    o_shape = carray(pointer_to(A[202], np.int64), (A[203],))
    o_cap = carray(pointer_to(A[204], np.int64), (A[205],))
    cand = carray(pointer_to(A[206], np.uint64), (A[207],))
    mset = carray(pointer_to(A[208], np.uint64), (A[209],))
    APEER = carray(pointer_to(A[210], np.int64), (A[211],))
    HASOUT = carray(pointer_to(A[212], np.bool_), (A[213],))
    RP = carray(pointer_to(A[214], np.float64), (A[215], A[216],))
    RS = carray(pointer_to(A[217], np.float64), (A[218], A[219],))
    PRK = carray(pointer_to(A[220], np.float64), (A[221],))
    PRT = carray(pointer_to(A[222], np.int64), (A[223],))
    PFK = carray(pointer_to(A[224], np.float64), (A[225],))
    PFT = carray(pointer_to(A[226], np.int64), (A[227],))
    PFO = carray(pointer_to(A[228], np.int64), (A[229],))
    SRK = carray(pointer_to(A[230], np.float64), (A[231],))
    SRT = carray(pointer_to(A[232], np.int64), (A[233],))
    SFK = carray(pointer_to(A[234], np.float64), (A[235],))
    SFT = carray(pointer_to(A[236], np.int64), (A[237],))
    SFO = carray(pointer_to(A[238], np.int64), (A[239],))
    nxt = carray(pointer_to(A[240], np.int64), (A[241],))
    outp = carray(pointer_to(A[242], np.int64), (A[243],))
    outts = carray(pointer_to(A[244], np.int64), (A[245],))
    acounts = carray(pointer_to(A[246], np.int64), (A[247],))
    ncaptures = A[248]
    peer = A[249]
    txring = carray(pointer_to(A[250], np.uint8), (A[251],))
    fsize = A[252]
    nframes = A[253]
    tst = carray(pointer_to(A[254], np.int64), (A[255],))
    mask = carray(pointer_to(A[256], np.bool_), (A[257],))
    tvnet = A[258] != 0
    maxlen = A[259]
    rx_stats = carray(pointer_to(A[260], np.int64), (A[261],))
    tx_stats = carray(pointer_to(A[262], np.int64), (A[263],))
    counters = carray(pointer_to(A[264], np.int64), (A[265],))
    res = carray(pointer_to(A[266], np.int64), (A[267],))
    return policy_pass(ring, unit, nblocks, rst, vnet, port, peek, ifindex, off, caplen, wirelen, ts, linktype,
                       portcol, hdr, addr, cap, F, K, TF, ST, LT, LNK, IDX, S, FR, META, MFREE, XF, XK, XTF, XST,
                       XMETA, idle_ns, active_ns, close_ns, statistics, skip_frags, drain_rows, flow_entry,
                       flow_id, flow_dir, flow_pkt, inspect, max_dpi, xapp, papp, keep_open, upgrade, ids, sni, PB,
                       SAH, SAL, SAC, SAB, DAH, DAL, DAC, DAB, SPC, SPB, DPC, DPB, RT, POOL, HP, MATCHRULE, APPCAT,
                       PEER, has_app, use_app, V, MS, RSTAT, CBA, PS, LOGB, HCAP, HNAME, HLEN, HHASH, HIX, PIX,
                       PKEY, PC, NHR, HSPEC, HST, o_rule, o_act, o_out, o_in, o_police, o_shape, o_cap, cand, mset,
                       APEER, HASOUT, RP, RS, PRK, PRT, PFK, PFT, PFO, SRK, SRT, SFK, SFT, SFO, nxt, outp, outts,
                       acounts, ncaptures, peer, txring, fsize, nframes, tst, mask, tvnet, maxlen, rx_stats,
                       tx_stats, counters, res)


@njit(cache=True)
def policy_loop(AP, res, txst, pfd, nwake, io, max_ns, busy_ns, idle_ms):
    """``_run.bridge_loop`` with each port's policy_pass_packed: the same
    arguments and LOOP_* codes; io[IO_EPOCH] carries the flow table's
    segment epoch in and out (the pass reads and bumps it in res[4])."""
    start = _run.begin(io)
    while True:
        before = io[_run.IO_PACKETS]
        for k in range(AP.shape[0]):
            res[4] = io[_run.IO_EPOCH]
            code = policy_pass_packed(AP[k])
            if code != PPASS_EMPTY:
                io[_run.IO_EPOCH] = res[4]
                r = _run.after_pass(code, k, res, txst, io)
                if r >= 0:
                    return r
        r = _run.after_round(io[_run.IO_PACKETS] - before, start, pfd, AP.shape[0], nwake, io,
                             max_ns, busy_ns, idle_ms)
        if r >= 0:
            return r
