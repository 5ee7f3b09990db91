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

from ulnet.jit import njit

from ulnet.actions._kernels import NEXT_FORWARD, NEXT_REJECT, NEXT_SHAPED, act_batch
from ulnet.counters import (C_LIVE_GSO_FRAMES, C_LIVE_POLICY_DROPPED, C_LIVE_TX_BYTES, C_LIVE_TX_PACKETS,
                            C_LIVE_TX_TOO_BIG, C_LIVE_VLAN_REINSERTED)
from ulnet.decode._kernels import decode_batch
from ulnet.flow import _kernels as FK
from ulnet.flow._kernels import flow_batch, settle_reserved
from ulnet.inspect._kernels import inspect_batch
from ulnet.policy._kernels import S_NLOG as PK_S_NLOG
from ulnet.policy._kernels import decide_batch
from ulnet.sinks.txring import _tx_fill
from ulnet.sources.afpacket import _release_v3, _walk_v3

from ulnet.live._kernels import (PPASS_DONE, PPASS_EMIT, PPASS_EMPTY, PPASS_FLOWS,  # noqa: F401
                                PPASS_QUIC, PPASS_TX_FULL)

S_NRES = FK.S_NRES
S_NEXP = FK.S_NEXP


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
    n = _walk_v3(ring, unit, nblocks, rst, vnet, port, off, caplen, wirelen, ts, linktype, portcol,
                 0, cap, counters, C_LIVE_VLAN_REINSERTED, C_LIVE_GSO_FRAMES, peek, ifindex)
    res[0] = n
    if n == 0:
        if rst[3]:
            # blocks whose packets were all taken earlier (peek) and that
            # retired since: give them back now (RingSource.fill)
            _release_v3(ring, unit, nblocks, rst, peek)
        return PPASS_EMPTY
    rx_stats[0] += n
    nb = 0
    for i in range(n):
        nb += wirelen[i]
    rx_stats[1] += nb
    decode_batch(ring, off, caplen, wirelen, linktype, n, hdr, addr, counters)
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
        if S[S_NEXP] >= drain_rows or S[S_NEXP] + 2 > XF.shape[0]:
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
    before = counters[C_LIVE_TX_PACKETS]
    i = _tx_fill(txring, fsize, nframes, tst, ring, off, caplen, mask, 0, n, vnet, tvnet, maxlen,
                 counters, C_LIVE_TX_PACKETS, C_LIVE_TX_BYTES, C_LIVE_TX_TOO_BIG)
    sent = counters[C_LIVE_TX_PACKETS] - before
    res[2] = i
    res[3] = sent
    if i < n:
        return PPASS_TX_FULL
    tx_stats[2] += sent
    counters[C_LIVE_POLICY_DROPPED] += n - sent
    if rst[3]:
        _release_v3(ring, unit, nblocks, rst, peek)
    return PPASS_DONE
