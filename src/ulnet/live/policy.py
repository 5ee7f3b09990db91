"""The rule-language stage on a live bridge: decide, then send where the verdict says.

What lives here: ``LivePolicy``, the per-batch policy hook of the
``Forwarder`` -- the same PolicyStage and Actions kernels ``ulnet run``
uses offline (docs/rules.md), with the ports bound to interfaces instead of
capture files. What must not: the rule language (``ulnet.policy``), the
action kernels (``ulnet.actions``).

Theory of operation. ``process(batch, counters)`` runs the flow table with
the stages that follow it on each segment (inspection when the rules need
the application, the policy stage, the action kernel). ``emit`` then sends,
per port, the rows whose arc is ``forward`` and whose output is that port
(one ``send()`` per port and batch); answers to ``reject`` (TCP RST, ICMP
unreachable, built in one compiled pass) go back out of the port the
rejected packet came in on; shaped packets are copied (with their
virtio-net header) into a queue and sent when the clock passes their
departure time. The engine's clock is the packet timestamps; while packets
wait in a shaper, the forwarder's poll timeout is cut to the next
departure and the wall clock (one reading per step) releases them.

On interface rings the forwarder runs all of that in one compiled call per
port (``ulnet.live._polkernels``, its policy arguments from
``pass_args``); where that call stops for Python, ``resume`` finishes the
flow segments and ``emit`` sends, as above.

``reload()`` (SIGHUP) parses, checks and compiles the file again; any error
raises and the old policy stays in force. A new policy starts with an empty
verdict cache: every flow is decided again under the new rules.
"""

from __future__ import annotations

import heapq
import time

import numpy as np

from ulnet.actions import Actions
from ulnet.actions import _kernels as AK
from ulnet.batch import PacketBatch
from ulnet.sources.afpacket import VNET_HDR_LEN


class RulesError(Exception):
    """The rules file cannot be used: the message holds every diagnostic."""


def load_rules(path: str, ports: list[str]):
    """Parse and check ``path`` against the port names; returns (checked,
    app names, app categories) or raises RulesError."""
    from ulnet.policy import detector_names
    from ulnet.policy.check import check
    from ulnet.policy.errors import PolicyError
    from ulnet.policy.parse import parse
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise RulesError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    apps, cats = detector_names()
    try:
        checked = check(parse(text, path), text, path, apps, cats, ports)
    except PolicyError as e:
        raise RulesError("\n".join(d.render() for d in e.diagnostics)) from None
    appcat = None
    if apps and cats:
        try:
            from ulnet.inspect import registry
            appcat = [cats.index(c) if c in cats else 0 for c in registry.CATEGORIES]
        except (ImportError, AttributeError):
            appcat = None
    return checked, apps, appcat


def _warm_batch() -> PacketBatch:
    """An ARP frame and ulnet warm's sample frames (TCP with HTTP and TLS,
    UDP DNS, ICMP, IPv6, a fragment, a VLAN tag), as one batch."""
    from ulnet.warm import sample_frames
    frames = [b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01\x08\x06" + bytes(28)] + sample_frames()
    b = PacketBatch(len(frames))
    b.buf = np.frombuffer(bytearray(b"".join(frames)), dtype=np.uint8)   # writable, as a ring is: same kernel types
    o = 0
    for i, fr in enumerate(frames):
        b.off[i], b.caplen[i], b.wirelen[i], b.ts[i], b.linktype[i], b.port[i] = o, len(fr), len(fr), \
            1_700_000_000_000_000_000 + i, 1, 0
        o += len(fr)
    b.n = len(frames)
    return b


class LivePolicy:
    def __init__(self, path: str, ports: list[str], peer: list[int], table, capacity: int):
        self.path = path
        self.ports = ports
        self.peer = peer
        self.table = table
        self.capacity = capacity
        self.queue: list = []                 # (departure ns, seq, out port, bytes incl. vnet header, has vnet)
        self.seq = 0
        self.shaped_sent = 0
        self.rejects_sent = 0
        self._install(*load_rules(path, ports))
        self._one = PacketBatch(64)

    def _install(self, checked, apps, appcat) -> None:
        from ulnet.policy.compile import compile_policy
        from ulnet.policy.stage import PolicyStage
        compiled = compile_policy(checked, self.ports, len(apps) if apps else 0)
        stage = PolicyStage(compiled, self.table, self.peer, self.capacity, appcat)
        acts = Actions(compiled, self.ports, {}, self.peer, self.capacity, self.table.capacity, nanosecond=True)
        acts.HASOUT[:] = True                 # every port is an interface: forwarding never lacks an output
        inspector = None
        if (checked.has_app_rules or any(r.count in ("app", "host") for r in checked.rules)) and apps:
            from ulnet.inspect import Inspector
            inspector = Inspector()
        old = getattr(self, "acts", None)
        self.checked, self.compiled, self.stage, self.acts, self.inspector = checked, compiled, stage, acts, inspector
        self.apps = apps
        self.generation = getattr(self, "generation", 0) + 1     # the one-call pass rebuilds its arguments
        if old is not None:
            old.close()                       # capture files of the old rules

    def warm(self) -> None:
        """Compile (or load) the kernels of the policy path -- inspection
        included -- on a few made-up frames, through a throwaway flow table
        and stage: the first real packets must not wait for the compiler."""
        from ulnet.counters import new_counters
        from ulnet.decode import decode
        from ulnet.flow import FlowTable
        shadow = LivePolicy(self.path, self.ports, self.peer, FlowTable(64), self.capacity)
        b = _warm_batch()
        c = new_counters()
        decode(b, c)
        shadow.process(b, c)
        a = shadow.acts
        AK.build_rejects(b.buf, b.off, b.caplen, b.linktype, b.hdr, a.nxt, b.port, 0, 0, a.rbuf,
                         a.roff, a.rlen, a.rport, a.rrow, a.rcounts)
        shadow.close()

    def reload(self) -> None:
        self._install(*load_rules(self.path, self.ports))

    # -- per batch -----------------------------------------------------------
    def _after_flow(self, b, i0, i1):
        app = None
        if self.inspector is not None:
            self.inspector.process(b, self.table, self._counters, i0, i1)
            app = self.inspector.app
        self.stage.process(b, i0, i1, app)
        self.acts.act(b, i0, i1, self.stage)

    def process(self, b: PacketBatch, counters: np.ndarray) -> list:
        self._counters = counters
        return self.table.process(b, counters, self._after_flow)

    # -- the one-call pass (ulnet.live._polkernels) ----------------------------
    def pass_args(self, b: PacketBatch) -> tuple:
        """The policy's part of ``policy_pass``'s arguments (from ``inspect``
        to ``ncaptures``), for batches of ``b``'s capacity: they name the
        arrays of the rules in force (rebuilt when ``generation`` moves)."""
        from ulnet.inspect import Inspector
        st, a, insp = self.stage, self.acts, self.inspector
        if len(st.rule) < b.capacity:
            raise ValueError("batch larger than the stage was made for")
        use_app = insp is not None
        if insp is None:
            insp = Inspector()                 # arrays of the right types, not run
        if len(insp.xapp) < b.capacity:        # as Inspector.process sizes them (once)
            insp.xapp = np.zeros(b.capacity, dtype=np.int64)
            insp.app = np.zeros(b.capacity, dtype=np.int64)
        papp = insp.app if use_app else st._zero_app
        return ((use_app, insp.max_dpi, insp.xapp, papp, insp._keep_open, insp._upgrade, insp._ids, insp._sni)
                + tuple(st.arrays)
                + (st.APPCAT, st.PEER, st.c.has_app and use_app, use_app, st.V, st.MS, st.RSTAT, st.CBA, st.S,
                   st.LOGB, st.host_cap, st.HNAME, st.HLEN, st.HHASH, st.HIX, st.PIX, st.PKEY, st.PC, st.NHR,
                   st.HSPEC, st.HST, st.rule, st.act, st.out, st.inp, st.police, st.shape, st.capture, st.cand,
                   st.mset)
                + (a.PEER, a.HASOUT, a.RP, a.RS, a.PRK, a.PRT, a.PFK, a.PFT, a.PFO, a.SRK, a.SRT, a.SFK, a.SFT,
                   a.SFO, a.nxt, a.outp, a.outts, a.counts, len(a.captures)))

    def resume(self, code: int, b: PacketBatch, counters: np.ndarray, done: int, seg: int) -> list:
        """Finish the flow segments of a batch ``policy_pass`` stopped in
        (PPASS_FLOWS after the segment ending at ``done``; PPASS_QUIC in the
        segment ``seg``..``done``, after inspect_batch), as ``process`` would
        have; returns the flows that ended."""
        from ulnet.live._kernels import PPASS_QUIC
        t = self.table
        self._counters = counters
        chunks = []
        if code == PPASS_QUIC:
            app = None
            if self.inspector is not None:
                self.inspector._quic_names(b, t, counters, seg, done)
                app = self.inspector.app
            self.stage.process(b, seg, done, app)
            self.acts.act(b, seg, done, self.stage)
        c = t.end_segment(settle=code == PPASS_QUIC)
        if c is not None:
            chunks.append(c)
        if done < b.n:
            chunks += t.process(b, counters, self._after_flow, start=done)
        return chunks

    def emit(self, b: PacketBatch, counters: np.ndarray, ports, src_vnet: bool) -> int:
        """Send the batch's packets where the verdicts say; returns how many
        rows were forwarded now (shaped ones leave later)."""
        n = b.n
        a = self.acts
        nxt, outp = a.nxt[:n], a.outp[:n]
        fwd = nxt == AK.NEXT_FORWARD
        sent = 0
        for k, port in enumerate(ports):
            m = fwd & (outp == k)
            if m.any():
                got = port.tx.send_batch(b, counters, m, src_vnet=src_vnet)
                port.stats[2] += got
                sent += got
        if (nxt == AK.NEXT_REJECT).any():
            cnt = AK.build_rejects(b.buf, b.off, b.caplen, b.linktype, b.hdr, a.nxt, b.port, 0, n, a.rbuf,
                                   a.roff, a.rlen, a.rport, a.rrow, a.rcounts)
            for j in range(cnt):
                o = int(a.roff[j])
                self._send_bytes(ports, int(a.rport[j]), bytes(a.rbuf[o:o + int(a.rlen[j])]), False, counters)
                self.rejects_sent += 1
        shaped = np.flatnonzero(nxt == AK.NEXT_SHAPED)
        for i in shaped.tolist():
            o, cl = int(b.off[i]), int(b.caplen[i])
            lo = o - VNET_HDR_LEN if src_vnet else o
            heapq.heappush(self.queue, (int(a.outts[i]), self.seq, int(outp[i]), bytes(b.buf[lo:o + cl]), src_vnet))
            self.seq += 1
        if self.acts.captures:
            cb = self.stage.capture[:n]
            for k, w in enumerate(self.acts.captures):
                m = ((cb >> k) & 1).astype(np.bool_)
                if m.any():
                    w.write_batch(b, mask=m)
        return sent

    def _send_bytes(self, ports, k: int, data: bytes, vnet: bool, counters) -> None:
        b = self._one
        b.buf = np.frombuffer(bytearray(data), dtype=np.uint8)   # writable: the TX kernel's usual types
        hl = VNET_HDR_LEN if vnet else 0
        b.off[0], b.caplen[0], b.wirelen[0], b.linktype[0], b.port[0] = hl, len(data) - hl, len(data) - hl, 1, k
        b.n = 1
        ports[k].stats[2] += ports[k].tx.send_batch(b, counters, None, src_vnet=vnet)

    def release_due(self, ports, counters, now_ns: int | None = None) -> int:
        """Send the shaped packets whose departure time has come."""
        if not self.queue:
            return 0
        now = time.time_ns() if now_ns is None else now_ns
        k = 0
        while self.queue and self.queue[0][0] <= now:
            _, _, port, data, vnet = heapq.heappop(self.queue)
            self._send_bytes(ports, port, data, vnet, counters)
            k += 1
        self.shaped_sent += k
        return k

    def next_due_ms(self, default: int) -> int:
        if not self.queue:
            return default
        left = (self.queue[0][0] - time.time_ns()) / 1e6
        return max(0, min(default, int(left) + 1))

    def splits(self) -> dict:
        """count by app / count by host rows of the rules in force, since
        they were loaded (``ulnet.policy.splits``)."""
        from ulnet.policy.splits import splits
        return splits(self.stage, self.compiled, self.apps)

    def close(self) -> None:
        self.acts.close()
