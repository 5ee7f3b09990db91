"""actions -- do what the policy decided: forward, route, balance, drop, reject,
police, shape, capture, count, log.

NAME
    ulnet.actions -- the actions stage and the port outputs

SYNOPSIS
    acts = Actions(compiled, ports, outputs, capacity, nanosecond=True)
    acts.act(batch, i0, i1, stage)      # per segment, after the policy stage
    acts.emit(batch, first_seq)         # per batch: answers, outputs, captures
    acts.close()                        # end: the shaping queues drain, files close

DESCRIPTION
    ``act`` runs the compiled kernel over the policy's verdict columns and
    fills ``nxt`` (the arc each packet takes, NEXT_* in _kernels), ``outp``
    (output port) and ``outts`` (the time it leaves: its own time, or later
    when a shaper holds it). Police and shape keep one token bucket per rule
    or per flow (per-flow rows indexed by flow entry, reset when the entry
    holds a new flow), all on the packet clock: no clock is read.

    ``emit`` writes each port's packets with one write per batch: packets
    that leave when they came are written straight from the batch (no
    copy); shaped packets wait in the port's queue until the packet clock
    passes their departure time and are merged in by time; answers to
    rejected packets (built in one compiled pass) go to the output of the
    port the rejected packet came in on. ``capture`` files get every packet
    of the flows of their rules, as it arrived.

CAVEATS
    Shaped and rejected packets are copied and merged through a Python
    queue (one object per such packet); plain forwarding is not.
"""

from __future__ import annotations

import heapq

import numpy as np

from ulnet.actions import _kernels as K
from ulnet.batch import PacketBatch
from ulnet.sinks.pcap import PcapWriter
from ulnet.sinks.pcapng import PcapngWriter

REJECT_ROOM = 1400        # bytes per answer in the answers array


def open_writer(path: str, nanosecond: bool):
    if path.lower().endswith(".pcapng"):
        return PcapngWriter(path)
    return PcapWriter(path, None, nanosecond=nanosecond)


def frames_batch(items) -> PacketBatch:
    """A batch owning its bytes, from (ts, bytes, wirelen, linktype, port) items."""
    n = len(items)
    b = PacketBatch(max(n, 1))
    data = b"".join(x[1] for x in items)
    b.buf = np.frombuffer(data, dtype=np.uint8) if data else np.zeros(0, dtype=np.uint8)
    o = 0
    for k, (ts, fr, wl, lt, pt) in enumerate(items):
        b.off[k] = o
        b.caplen[k] = len(fr)
        b.wirelen[k] = max(wl, len(fr))
        b.ts[k] = ts
        b.linktype[k] = lt
        b.port[k] = pt
        o += len(fr)
    b.n = n
    return b


class PortOutput:
    """The output of one port: a capture writer and the queue of shaped packets."""

    def __init__(self, name: str, path: str, nanosecond: bool):
        self.name = name
        self.path = path
        self.w = open_writer(path, nanosecond)
        self.queue: list = []         # heap of (departure, seq, frame bytes, wirelen, linktype, port)
        self.packets = 0
        self.bytes = 0

    def write(self, b: PacketBatch, mask, extra, horizon: int, seq0: int) -> None:
        """Write rows of ``b`` where ``mask``, merged by time with ``extra``
        items and the queued packets due by ``horizon``."""
        due = []
        while self.queue and self.queue[0][0] <= horizon:
            due.append(heapq.heappop(self.queue))
        if not due and not extra:
            self.packets += self.w.write_batch(b, mask=mask)
            return
        rows = np.flatnonzero(mask[: b.n])
        items = [(int(b.ts[i]), seq0 + i, b.frame(i), int(b.wirelen[i]), int(b.linktype[i]), int(b.port[i]))
                 for i in rows.tolist()]
        items += due + list(extra)
        items.sort(key=lambda x: (x[0], x[1]))
        self.packets += self.w.write_batch(frames_batch([(t, fr, wl, lt, pt) for t, _, fr, wl, lt, pt in items]))

    def drain(self) -> None:
        items = sorted(self.queue)
        self.queue = []
        if items:
            self.packets += self.w.write_batch(frames_batch([(t, fr, wl, lt, pt) for t, _, fr, wl, lt, pt in items]))

    def close(self) -> None:
        self.drain()
        self.w.close()


class Actions:
    def __init__(self, compiled, ports: list[str], outputs: dict[str, str], peer, capacity: int,
                 flow_capacity: int, nanosecond: bool = True):
        self.c = compiled
        self.ports = ports
        self.PEER = np.asarray(peer, dtype=np.int64)
        self.HASOUT = np.array([p in outputs for p in ports], dtype=np.bool_)
        self.outputs: dict[int, PortOutput] = {}
        self.nano = nanosecond
        try:
            for k, p in enumerate(ports):
                if p in outputs:
                    self.outputs[k] = PortOutput(p, outputs[p], nanosecond)
            self.captures = [open_writer(path, nanosecond) for path in compiled.captures]
        except OSError:
            self.close()
            raise
        R = len(compiled.rules) - 1
        self.RP, self.RS = compiled.RP, compiled.RS
        self.PRK = np.zeros(R + 1)
        self.PRT = np.full(R + 1, K.NOT_STARTED, dtype=np.int64)
        self.SRK = np.zeros(R + 1)
        self.SRT = np.full(R + 1, K.NOT_STARTED, dtype=np.int64)
        per_flow = any((r.police is not None and r.police.per_flow) or (r.shape is not None and r.shape.per_flow)
                       for r in compiled.rules)
        fc = flow_capacity if per_flow else 1
        self.PFK = np.zeros(fc)
        self.PFT = np.full(fc, K.NOT_STARTED, dtype=np.int64)
        self.PFO = np.full(fc, -1, dtype=np.int64)
        self.SFK = np.zeros(fc)
        self.SFT = np.full(fc, K.NOT_STARTED, dtype=np.int64)
        self.SFO = np.full(fc, -1, dtype=np.int64)
        self.nxt = np.zeros(capacity, dtype=np.int64)
        self.outp = np.zeros(capacity, dtype=np.int64)
        self.outts = np.zeros(capacity, dtype=np.int64)
        self.counts = np.zeros(len(K.NEXT_NAMES), dtype=np.int64)
        self.rcounts = np.zeros(3, dtype=np.int64)
        self.rbuf = np.zeros(capacity * REJECT_ROOM, dtype=np.uint8)
        self.roff = np.zeros(capacity, dtype=np.int64)
        self.rlen = np.zeros(capacity, dtype=np.int64)
        self.rport = np.zeros(capacity, dtype=np.int64)
        self.rrow = np.zeros(capacity, dtype=np.int64)
        self.no_output_answers = 0

    def act(self, b: PacketBatch, i0: int, i1: int, stage) -> None:
        if i1 <= i0:
            return
        K.act_batch(i0, i1, b.ts, b.wirelen, b.port, b.flow_id, b.flow_entry, stage.act, stage.out, stage.inp,
                    stage.police, stage.shape, self.PEER, self.HASOUT, self.RP, self.RS,
                    self.PRK, self.PRT, self.PFK, self.PFT, self.PFO, self.SRK, self.SRT, self.SFK, self.SFT, self.SFO,
                    self.nxt, self.outp, self.outts, self.counts)

    def emit(self, b: PacketBatch, seq0: int, capture_bits) -> None:
        """Write the batch's packets where they go (see the module doc)."""
        n = b.n
        if not n:
            return
        nxt = self.nxt[:n]
        outp = self.outp[:n]
        extra: dict[int, list] = {}
        if (nxt == K.NEXT_REJECT).any():
            k = K.build_rejects(b.buf, b.off, b.caplen, b.linktype, b.hdr, self.nxt, b.port, 0, n, self.rbuf,
                                self.roff, self.rlen, self.rport, self.rrow, self.rcounts)
            for j in range(k):
                p = int(self.rport[j])
                if p not in self.outputs:
                    self.no_output_answers += 1
                    continue
                row = int(self.rrow[j])
                o = int(self.roff[j])
                fr = bytes(self.rbuf[o:o + int(self.rlen[j])])
                extra.setdefault(p, []).append((int(b.ts[row]), seq0 + row, fr, len(fr), int(b.linktype[row]), p))
        shaped = np.flatnonzero(nxt == K.NEXT_SHAPED)
        for i in shaped.tolist():
            q = self.outputs[int(outp[i])].queue
            heapq.heappush(q, (int(self.outts[i]), seq0 + i, b.frame(i), int(b.wirelen[i]), int(b.linktype[i]),
                               int(b.port[i])))
        horizon = int(b.ts[:n].max())
        fwd = nxt == K.NEXT_FORWARD
        for p, out in self.outputs.items():
            out.write(b, fwd & (outp == p), extra.get(p, ()), horizon, seq0)
        if self.captures:
            cb = capture_bits[:n]
            for k, w in enumerate(self.captures):
                m = (cb >> k) & 1
                if m.any():
                    w.write_batch(b, mask=m.astype(np.bool_))

    def close(self) -> None:
        for out in getattr(self, "outputs", {}).values():
            out.close()
        for w in getattr(self, "captures", []):
            w.close()
