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

from ulnet.jit import njit

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
