"""flow -- track bidirectional flows over batches; export each flow once.

NAME
    ulnet.flow -- the flow table stage

SYNOPSIS
    table = FlowTable(max_flows=1_000_000, idle_timeout=120, active_timeout=1800)
    for batch in pipeline:
        for chunk in table.process(batch, counters):   # FlowChunk: flows that ended
            ...
    for chunk in table.flush(): ...                    # end of input: the rest

DESCRIPTION
    Key: (VLAN id, IP protocol, both endpoints in canonical order) from the
    innermost IP header; ports for TCP, UDP and SCTP, none for ICMP and other
    protocols (as nDPI and NFStream). The source of a flow is the endpoint
    that sent its first packet. Flow ids count from 0 in order of first
    packet. Non-first IP fragments are counted on the flow of their datagram
    when its first fragment was seen (a small map keyed by addresses, IP id
    and protocol), else on a port-less flow (``flow.fragment_orphan``).
    ``fragments='first'`` counts only first fragments, as ndpiReader does
    (the rest are counted in ``flow.fragment_skipped``). With QinQ the inner
    (customer) VLAN id is the key's VLAN, as in nDPI and NFStream.

    The table is fixed-capacity numpy arrays (see ``_kernels``), with an
    open-addressing index seeded from ``os.urandom`` per process, so crafted
    collisions cannot be aimed at it. Memory: at most 200 bytes per flow of
    capacity (80 entry columns, 32 endpoints, 64 TCP flag counters, 8 expiry
    and free-list links, 4-8 index at load <= 0.5), plus 208 with
    ``statistics``, plus a metadata slot (320 bytes) only for flows whose
    inspection found a server name, user agent or ALPN. Freed entries are
    reused before entries never used, so the pages touched follow the flows
    live at once.

    Expiry runs on the packet clock, before each packet: idle timeout (no
    packet for ``idle_timeout`` s), active timeout (flow older than
    ``active_timeout`` s when its next packet arrives), TCP end (RST, or FIN
    both ways, then ``close_timeout`` s without packets, or a new SYN on the
    same 5-tuple), eviction (the table is full: the least recently seen flow
    makes room), end of input. ``expiration_id``: -1 end of input, 0 idle,
    1 active (NFStream's values), 2 TCP end, 3 evicted.

CAVEATS
    Per-flow application fields arrive with the inspection stage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ulnet.batch import PacketBatch
from ulnet.flow import _kernels as K

DEFAULT_MAX_FLOWS = 1 << 20
DEFAULT_IDLE = 120.0
DEFAULT_ACTIVE = 1800.0
DEFAULT_CLOSE = 10.0
EXPORT_ROWS = 1 << 16
# a metadata row is empty when these bytes are 0: each text field's length, the DNS query type
_META_BLANK = np.array([K.M_NAME, K.M_UA, K.M_ALPN, K.M_QTYPE, K.M_QTYPE + 1])

END_NAMES = {K.END_INPUT: "end", K.END_IDLE: "idle", K.END_ACTIVE: "active", K.END_TCP: "tcp_end",
             K.END_EVICT: "evicted"}
TCP_STATE_NAMES = ("none", "new", "established", "closing", "closed", "reset")


@dataclass
class FlowChunk:
    """Ended flows, as arrays (copies: they outlive the table's export area)."""
    F: np.ndarray
    K: np.ndarray
    TF: np.ndarray
    ST: np.ndarray | None
    META: np.ndarray

    def __len__(self):
        return len(self.F)


class FlowTable:
    def __init__(self, max_flows: int = DEFAULT_MAX_FLOWS, idle_timeout: float = DEFAULT_IDLE,
                 active_timeout: float = DEFAULT_ACTIVE, close_timeout: float = DEFAULT_CLOSE,
                 statistics: bool = False, seed: int | None = None, fragments: str = "datagram",
                 meta_slots: int | None = None):
        if max_flows < 1:
            raise ValueError("max_flows must be at least 1")
        for name, v in (("idle_timeout", idle_timeout), ("active_timeout", active_timeout),
                        ("close_timeout", close_timeout)):
            if not v > 0:
                raise ValueError(f"{name} must be above 0")
        if fragments not in ("datagram", "first"):
            raise ValueError("fragments must be 'datagram' (count non-first fragments on their flow) "
                             "or 'first' (count only first fragments, as ndpiReader)")
        self.skip_frags = fragments == "first"
        cap = int(max_flows)
        self.capacity = cap
        self.statistics = statistics
        self.idle_ns = int(idle_timeout * 1e9)
        self.active_ns = int(active_timeout * 1e9)
        self.close_ns = int(close_timeout * 1e9)
        slots = 1
        while slots < 2 * cap:
            slots <<= 1
        self.F = np.zeros((cap, K.NF), dtype=np.int64)
        self.K = np.zeros((cap, 4), dtype=np.uint64)
        self.TF = np.zeros((cap, 16), dtype=np.uint32)
        self.ST = np.zeros((cap if statistics else 1, K.NS), dtype=np.float64)
        self.LT = np.zeros((cap if statistics else 1, 2), dtype=np.int64)
        self.LNK = np.empty((cap, 2), dtype=np.int32)
        self.IDX = np.zeros(slots, dtype=np.int32)
        self.S = np.zeros(K.S_SIZE, dtype=np.int64)
        self._reset_lists()
        # metadata pool (server names, user agents): slots taken by the
        # inspection stage, given back at export; pages are touched only when used
        mslots = min(cap, K.META_MAX_SLOTS, meta_slots if meta_slots is not None else cap)
        self.META = np.zeros((mslots, K.META_W), dtype=np.uint8)
        self.MFREE = np.arange(mslots - 1, -1, -1, dtype=np.int32)
        self.S[K.S_MFREE_TOP] = mslots
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "little") & 0x7FFFFFFFFFFFFFFF
        self.S[K.S_SEED] = seed
        self.epoch = 1
        self.FR = np.zeros((K.FRAG_SLOTS, 6), dtype=np.int64)
        self.FR[:, 1] = -1
        xr = min(EXPORT_ROWS, cap + 2)
        # hand ended flows over once this many have built up (1 = as soon as
        # they end: live capture sets it so records appear promptly)
        self.drain_rows = max(1, xr // 2)
        self.XF = np.zeros((xr, K.NF), dtype=np.int64)
        self.XK = np.zeros((xr, 4), dtype=np.uint64)
        self.XTF = np.zeros((xr, 16), dtype=np.uint32)
        self.XST = np.zeros((xr if statistics else 1, K.NS), dtype=np.float64)
        self.XMETA = np.zeros((xr, K.META_W), dtype=np.uint8)
        self._no_meta = np.zeros(K.META_W, dtype=np.uint8)

    def _reset_lists(self) -> None:
        """No entry in use: empty expiry lists, the entries used so far on
        the free chain (entry 0 first); the rest, never used, are taken from
        S_HWM up and their rows are not touched here."""
        hwm = int(self.S[K.S_HWM])      # (it stays: entries below it are not zero any more)
        self.LNK[:hwm, 0] = -1
        self.LNK[:hwm, 1] = np.arange(1, hwm + 1, dtype=np.int32)
        if hwm:
            self.LNK[hwm - 1, 1] = -1
        self.S[[K.S_LIVE_HEAD, K.S_LIVE_TAIL, K.S_CLOSED_HEAD, K.S_CLOSED_TAIL]] = -1
        self.S[K.S_FREE_HEAD] = 0 if hwm else -1
        self.S[K.S_FREE_TAIL] = hwm - 1       # -1: none
        self.S[K.S_NLIVE] = 0

    @property
    def active_flows(self) -> int:
        return int(self.S[K.S_NLIVE])

    def memory_bytes(self) -> int:
        """Bytes held by the table proper (entries, endpoints, index, lists, stats)."""
        return sum(a.nbytes for a in (self.F, self.K, self.TF, self.ST, self.LT, self.LNK, self.IDX))

    def meta_bytes(self) -> int:
        """Bytes reserved for the metadata pool (virtual: pages are touched only
        for flows that carry a server name or user agent)."""
        return self.META.nbytes + self.MFREE.nbytes

    def take(self) -> FlowChunk | None:
        """Ended flows not handed over yet (a live loop calls it when idle)."""
        return self._drain()

    def _drain(self) -> FlowChunk | None:
        x = int(self.S[K.S_NEXP])
        if not x:
            return None
        XF = self.XF[:x].copy()
        slots = XF[:, K.F_APP] >> K.A_META_SHIFT
        if np.any(slots):
            meta = self.XMETA[:x].copy()
            # rows of flows without a slot hold what an earlier chunk left
            # there (the export kernel writes only rows with names)
            meta[np.flatnonzero(slots == 0)[:, None], _META_BLANK] = 0
        else:       # no names in this chunk: one zero row seen x times, not x copied rows
            meta = np.broadcast_to(self._no_meta, (x, K.META_W))
        chunk = FlowChunk(XF, self.XK[:x].copy(), self.XTF[:x].copy(),
                          self.XST[:x].copy() if self.statistics else None, meta)
        self.S[K.S_NEXP] = 0
        return chunk

    def process(self, batch: PacketBatch, counters: np.ndarray, after=None,
                first: int | None = None, start: int = 0) -> list[FlowChunk]:
        """Track the batch's packets; returns the flows that ended meanwhile,
        in the order they ended. Fills the batch's flow columns.

        ``after(batch, i0, i1)``, when given, runs the next stage over packets
        i0..i1 before any flow they touched can be exported (the table hands
        the batch over in segments; see _kernels.flow_batch).

        ``first``: the kernel has already run the first segment (with epoch
        -1, no ``after``) and returned ``first``; go on from there (the
        bridge's fused pass, ulnet.live._kernels).

        ``start``: rows before it are done, ``after`` included, and their
        last segment closed (the bridge's pass with a policy,
        ulnet.live._polkernels)."""
        b = batch
        done = start
        chunks = []
        while True:
            start = done
            if first is not None:
                done, first = first, None
            else:
                done = K.flow_batch(b.hdr, b.addr, b.ts, b.wirelen, b.n, done,
                                    self.F, self.K, self.TF, self.ST, self.LT, self.LNK, self.IDX, self.S, self.FR,
                                    self.META, self.MFREE, self.XF, self.XK, self.XTF, self.XST, self.XMETA,
                                    self.idle_ns, self.active_ns, self.close_ns, self.statistics, self.skip_frags,
                                    self.epoch if after is not None else -1,
                                    b.flow_entry, b.flow_id, b.flow_dir, b.flow_pkt, counters)
            if after is not None and done > start:
                after(b, start, done)
            c = self.end_segment()
            if c is not None:
                chunks.append(c)
            if done >= b.n:
                return chunks

    def next_epoch(self, n: int = 1) -> None:
        """Start a new segment epoch (16 bits, as the kernel stores it); ``n``:
        that many segments were closed."""
        self.epoch = (self.epoch + n) & 0xFFFF

    def end_segment(self, settle: bool = True) -> FlowChunk | None:
        """Close a segment once the next stage has seen it: settle the export
        rows reserved in it, bump the epoch (``settle=False``: the bridge's
        one-call pass did both), and hand over the ended flows when enough
        have built up (big chunks keep record writing vectorised: a chunk of
        5 flows costs as much as one of 50,000)."""
        if settle:
            self._settle()
            self.next_epoch()
        if K.drain_due(self.S, self.drain_rows, len(self.XF)):
            return self._drain()
        return None

    def _settle(self, force: bool = False) -> None:
        """Fill the export rows of flows that timed out while their payload in
        the segment was not inspected yet (after the inspection ran); no
        kernel call when there are none (``force``: call it all the same, to
        compile or load it: ulnet.warm)."""
        if self.S[K.S_NRES] or force:
            K.settle_reserved(self.F, self.K, self.TF, self.ST, self.LNK, self.IDX, self.S, self.META,
                              self.MFREE, self.XF, self.XK, self.XTF, self.XST, self.XMETA, self.statistics)

    def flush(self, reason: int = K.END_INPUT):
        """Export every flow still in the table, oldest id first: yields
        chunks one at a time (flows already ended come first), so a caller
        writes them as they come and memory stays bounded. The table is
        empty afterwards (and must not be fed while the flush runs)."""
        # a segment that never closed (its inspection raised, e.g. on
        # SIGINT/SIGTERM): fill the rows reserved in it now, and free their
        # entries, so that they are exported once, as themselves
        self._settle()
        nlive = int(self.S[K.S_NLIVE])
        ids, ents = np.empty(nlive, np.int64), np.empty(nlive, np.int64)
        cnt, in_order = K.live_entries(self.F, self.S, ids, ents)
        ents = ents[:cnt] if in_order else ents[:cnt][np.argsort(ids[:cnt])]
        k = 0
        while True:
            k = K.flush_entries(self.F, self.K, self.TF, self.ST, self.S, self.META, self.MFREE,
                                self.XF, self.XK, self.XTF, self.XST, self.XMETA, self.statistics,
                                reason, ents, k)
            if k >= len(ents):
                # every entry is out: an empty index and lists, without
                # taking each flow out of them one by one
                self.IDX[:] = 0
                self._reset_lists()
            c = self._drain()
            if c is not None:
                yield c
            if k >= len(ents):
                return
