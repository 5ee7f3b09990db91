"""The forwarding loop: ports, one batch per port per step, poll when idle.

What lives here: ``Port`` (a source and a sink under one name), ``open_port``
(an interface or ``tap:NAME``), and ``Forwarder`` (the per-batch data path
of the bridge). What must not: workers and signals (``ulnet.live.workers``),
printing (``ulnet.live.view``).

Theory of operation. ``step()`` visits every port once: ``fill`` views the
ready frames of its receive ring as a batch (no copy), the stages run over
the batch (decode, flow, then the policy hook), the sink of the peer port
copies the selected frames into its TX ring and flushes with one ``send()``,
and only then are the receive frames given back. Engine time is the packet
timestamps; the only clock reading is one per step for the caller's ticks.

Without a policy, on interface rings, each port's step is one compiled
call (``_kernels.bridge_pass``) and ``run`` itself is one compiled call
(``_run.bridge_loop``: passes, flushes, wake-up sockets, ``poll()``) that
comes back to Python only for what needs it (see there).
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ulnet.batch import PacketBatch
from ulnet.counters import C_LIVE_POLICY_DROPPED, new_counters
from ulnet.actions._kernels import NEXT_SHAPED
from ulnet.decode import decode
from ulnet.flow import FlowTable
from ulnet.live._pack import pack
from ulnet.live._kernels import (BRIDGE_SPEC, PASS_DONE, PASS_FLOWS, PPASS_EMIT, PPASS_TX_FULL, bridge_pass,
                                 bridge_pass_packed)


BRIDGE_BATCH = 256
# V3 geometry for the bridge: a block retires after 1 ms, so the ring holds
# blocks x 1 ms of light traffic; many small blocks (each still holds a whole
# 64 KiB GSO frame) let a descheduled worker fall 0.5 s behind without loss.
BRIDGE_BLOCK = 128 << 10
BRIDGE_BLOCKS = 512
RUN_SLICE_S = 0.05     # the compiled loop comes back to Python at least this often (stop flag, ticks)


@dataclass
class Port:
    name: str
    rx: object                     # RingSource or TapPort: fill/release/wait/fileno/add_kernel_stats/close
    tx: object                     # TxRing or TapPort: send_batch/close
    vnet: bool = True              # frames from rx carry a virtio-net header before ``off``
    stats: np.ndarray = field(default_factory=lambda: np.zeros(4, dtype=np.int64))  # rx pkts, rx bytes, tx pkts, tx bytes

    def close(self) -> None:
        self.rx.close()
        if self.tx is not self.rx:
            self.tx.close()


def open_port(spec: str, index: int, *, rx_fanout=None, qdisc_bypass: bool = False,
              ring_version: int = 3, rx_frames: int | None = None, tx_frames: int | None = None,
              peek: bool = True) -> Port:
    """``NAME`` (an interface: RX ring + TX ring, promiscuous, virtio-net
    headers, own output ignored) or ``tap:NAME`` (a TAP device). ``peek``
    (V3): take packets from the block the kernel is filling, woken per
    packet, instead of waiting up to 1 ms for the block to retire."""
    from ulnet.sinks.txring import TxRing
    from ulnet.sources.afpacket import RingSource
    from ulnet.sources.tap import TapPort
    if spec.startswith("tap:"):
        t = TapPort(spec[4:], index)
        return Port(spec[4:], t, t, True)
    rx = RingSource(spec, index, version=ring_version, vnet_hdr=True, ignore_outgoing=True, promisc=True,
                    fanout=rx_fanout, frames=rx_frames, retire_ms=1, block_size=BRIDGE_BLOCK, blocks=BRIDGE_BLOCKS,
                    peek=peek)
    try:
        tx = TxRing(spec, vnet_hdr=True, qdisc_bypass=qdisc_bypass, frames=tx_frames)
    except BaseException:
        rx.close()
        raise
    return Port(spec, rx, tx, True)


class _PortPass(NamedTuple):
    """One port's one-call pass, built once (``Forwarder._fused_args``)."""
    port: Port
    out: Port                      # the port it forwards to
    kernel: Callable               # the pass: packed (one array) or not
    call: tuple                    # what ``kernel`` is called with
    packed: np.ndarray | None      # the packed arguments (what the compiled loop takes), or None
    args: tuple                    # the unpacked arguments: they keep the arrays alive


class Forwarder:
    """Moves batches between ports; see the module documentation."""

    def __init__(self, ports: list[Port], peer: list[int], batch_size: int = BRIDGE_BATCH,
                 flows=None, policy=None, counters: np.ndarray | None = None):
        if len(peer) != len(ports):
            raise ValueError("one peer per port")
        self.ports = ports
        self.peer = peer
        self.batch = PacketBatch(batch_size)
        self.counters = new_counters() if counters is None else counters
        for p in ports:
            p.rx.counters = self.counters
        self.flows = flows
        self.policy = policy
        self.ended = 0                 # flows that ended (records are not kept by the bridge)
        # what to sleep on: the ports' receive sockets, then the wake-up
        # sockets of peeking rings (the compiled loop takes the same list)
        self._wakers = [p.rx for p in ports
                        if hasattr(p.rx, "wake_fileno") and p.rx.wake_fileno() is not None]
        self._pollfds = [(p.rx.fileno(), select.POLLIN | select.POLLERR) for p in ports] + \
                        [(r.wake_fileno(), select.POLLIN) for r in self._wakers]
        self._poll = select.poll()
        for fd, events in self._pollfds:
            self._poll.register(fd, events)
        self._res = np.zeros(8, dtype=np.int64)
        self._io = None                # the compiled loop's io array (``_slice``), made on first use
        self._fast = self._fused_args()

    def _fused_args(self):
        """Per port, the arguments of the one-call pass (``_kernels.bridge_pass``),
        built once: every array they name lives as long as the ports. None
        when a stage or a port needs the general path (a policy, no flow
        table, a TAP, a V2 ring)."""
        from ulnet.sinks.txring import ETH_HLEN_MAX, TxRing
        from ulnet.sources.afpacket import RingSource
        fl, b = self.flows, self.batch
        pol = self.policy
        if pol is not None:
            # with a policy: the rule-language stage as LivePolicy runs it
            # (its flow table), when it can say what the pass needs
            if not hasattr(pol, "pass_args") or fl is not pol.table:
                return None
            self._pgen = pol.generation
        if fl is None or not isinstance(fl, FlowTable):
            return None
        if not all(type(p.rx) is RingSource and p.rx.version == 3 and type(p.tx) is TxRing for p in self.ports):
            return None
        mask = np.ones(b.capacity, dtype=np.bool_)
        self._mask = mask
        pargs = pol.pass_args(b) if pol is not None else ()
        fast = []
        for k, p in enumerate(self.ports):
            r, out = p.rx, self.ports[self.peer[k]]
            t = out.tx
            args = (r.ring, r.unit, r.count, r.st, r.vnet, r.port, r.peek, r.ifindex,
                    b.off, b.caplen, b.wirelen, b.ts, b.linktype, b.port, b.hdr, b.addr, b.capacity,
                    fl.F, fl.K, fl.TF, fl.ST, fl.LT, fl.LNK, fl.IDX, fl.S, fl.FR, fl.META, fl.MFREE,
                    fl.XF, fl.XK, fl.XTF, fl.XST, fl.XMETA,
                    fl.idle_ns, fl.active_ns, fl.close_ns, fl.statistics, fl.skip_frags, fl.drain_rows,
                    b.flow_entry, b.flow_id, b.flow_dir, b.flow_pkt) + pargs
            if pol is not None:
                args += (self.peer[k],)
            args += (t.ring, t.fsize, t.nframes, t.st, mask, t.vnet, t.mtu + ETH_HLEN_MAX,
                     p.stats, out.stats, self.counters, self._res)
            if pol is not None:
                # (imported here: a bridge without a policy does not load the
                # inspection and policy kernels)
                from ulnet.live import _polkernels
                spec, plain, packed_kernel = _polkernels.PASS_SPEC, _polkernels.policy_pass, \
                    _polkernels.policy_pass_packed
            else:
                spec, plain, packed_kernel = BRIDGE_SPEC, bridge_pass, bridge_pass_packed
            packed = pack(args, spec)          # one argument to unbox, not 54 or 129
            if packed is None:
                fast.append(_PortPass(p, out, plain, args, None, args))
            else:
                fast.append(_PortPass(p, out, packed_kernel, (packed,), packed, args))
        return fast

    def _sync_rules(self) -> None:
        """After a reload the rules' arrays are new: the passes' arguments too."""
        if self.policy is not None and self._fast is not None and self.policy.generation != self._pgen:
            self._fast = self._fused_args()

    def _loop_args(self):
        """The compiled event loop and its arguments (``_run.bridge_loop``;
        with a policy ``_polkernels.policy_loop``): None unless every port
        runs its packed one-call pass. The last item is the ``_fast`` they
        were made from (a reload makes a new one)."""
        fast = self._fast
        if fast is None or any(f.packed is None for f in fast):
            return None
        if self.policy is None:
            from ulnet.live._run import bridge_loop as fn
        else:
            from ulnet.live._polkernels import policy_loop as fn
        txst = np.array([f.out.tx.st.ctypes.data for f in fast], dtype=np.int64)
        pfd = np.array([v for fd, ev in self._pollfds for v in (fd, ev)], dtype=np.int32)
        return fn, np.stack([f.packed for f in fast]), txst, pfd, len(self._wakers), fast

    def warm(self) -> None:
        """Compile (or load) every kernel of the data path before the first
        packet, so the first packets do not wait for the compiler."""
        b, c = self.batch, self.counters
        b.n = 0
        decode(b, c)
        if self.policy is not None:
            if hasattr(self.policy, "warm"):
                self.policy.warm()
            self.policy.process(b, c)
        elif self.flows is not None:
            self.flows.process(b, c)
        for p in self.ports:
            p.tx.send_batch(b, c, None, src_vnet=p.vnet)
        self.step()                    # compiles the ring walkers (forwarding whatever is there)
        loop = self._loop_args()
        if loop is not None:           # and the compiled event loop: one round
            self._slice(loop, 0.0, 0, 0.0)

    def step(self) -> int:
        """One pass over every port; returns the packets forwarded or dropped."""
        self._sync_rules()
        if self._fast is not None:
            return self._step_passes()
        b, c = self.batch, self.counters
        total = 0
        for k, p in enumerate(self.ports):
            n = p.rx.fill(b)
            if not n:
                continue
            b.n = n
            decode(b, c)
            p.stats[0] += n
            p.stats[1] += int(b.wirelen[:n].sum())
            if self.policy is not None:          # the rule-language stage decides and sends
                for chunk in self.policy.process(b, c):
                    self.ended += len(chunk)
                sent = self.policy.emit(b, c, self.ports, p.vnet)
                c[C_LIVE_POLICY_DROPPED] += n - sent - int(np.count_nonzero(
                    self.policy.acts.nxt[:n] == NEXT_SHAPED))
                p.rx.release()
                total += n
                continue
            if self.flows is not None:
                for chunk in self.flows.process(b, c):
                    self.ended += len(chunk)
            out = self.ports[self.peer[k]]
            sent = out.tx.send_batch(b, c, None, src_vnet=p.vnet)
            out.stats[2] += sent
            p.rx.release()
            total += n
        if self.policy is not None and self.policy.queue:
            self.policy.release_due(self.ports, c)
        return total

    def _step_passes(self) -> int:
        """``step`` with each port in one compiled call (``_kernels.bridge_pass``;
        with a policy ``_polkernels.policy_pass``); whatever needs Python
        continues with the general path's code from where the pass stopped."""
        total = 0
        res, fl, pol = self._res, self.flows, self.policy
        for f in self._fast:
            if pol is not None:
                res[4] = fl.epoch
            code = f.kernel(*f.call)
            if not code:
                continue
            total += int(res[0])
            if pol is not None:
                fl.epoch = int(res[4])
            if code == PASS_DONE:                   # (PPASS_DONE is the same code)
                if pol is None:
                    fl.next_epoch()
                f.out.tx._flush(self.counters)
            else:
                self._finish(f, code)
        if pol is not None and pol.queue:
            pol.release_due(self.ports, self.counters)
        return total

    def _finish(self, f: _PortPass, code: int) -> None:
        """The rest of a port's step after its pass stopped with ``code``
        (neither EMPTY nor DONE), from where it stopped."""
        if self.policy is None:
            self._finish_fused(f.port, f.out, code)
        else:
            self._finish_policy(f.port, f.out, code)

    def _finish_fused(self, p: Port, out: Port, code: int) -> None:
        """The rest of port ``p``'s step after its one-call pass stopped with
        ``code`` (neither EMPTY nor DONE), from where it stopped."""
        res, b, c = self._res, self.batch, self.counters
        b.n = int(res[0])
        b.buf = p.rx.ring
        if code == PASS_FLOWS:
            for chunk in self.flows.process(b, c, first=int(res[1])):
                self.ended += len(chunk)
            sent = out.tx.send_batch(b, c, None, src_vnet=p.vnet)
        else:                                   # PASS_TX_FULL
            self.flows.next_epoch()
            sent = int(res[3]) + out.tx.send_batch(b, c, None, src_vnet=p.vnet, start=int(res[2]))
        out.stats[2] += sent
        p.rx.release()

    def _finish_policy(self, p: Port, out: Port, code: int) -> None:
        """The rest of port ``p``'s step after its policy pass stopped with
        ``code`` (neither EMPTY nor DONE), from where it stopped."""
        res, b, c, pol = self._res, self.batch, self.counters, self.policy
        n = b.n = int(res[0])
        b.buf = p.rx.ring
        if code == PPASS_TX_FULL:
            sent = int(res[3])
            got = out.tx.send_batch(b, c, self._mask, src_vnet=p.vnet, start=int(res[2]))
            out.stats[2] += sent + got
            c[C_LIVE_POLICY_DROPPED] += n - sent - got
            p.rx.release()
            return
        if code != PPASS_EMIT:
            for chunk in pol.resume(code, b, c, int(res[1]), int(res[5])):
                self.ended += len(chunk)
        sent = pol.emit(b, c, self.ports, p.vnet)
        c[C_LIVE_POLICY_DROPPED] += n - sent - int(np.count_nonzero(pol.acts.nxt[:n] == NEXT_SHAPED))
        p.rx.release()

    def wait(self, timeout_ms: int) -> None:
        """Sleep in poll() until a port has packets (or the timeout passes).
        A socket error (interface went down) is cleared by the port."""
        try:
            ev = self._poll.poll(timeout_ms)
        except InterruptedError:
            return
        for fd, e in ev:
            if e & select.POLLERR:
                for p in self.ports:
                    if p.rx.fileno() == fd and hasattr(p.rx, "wait"):
                        p.rx.wait(0)

    def run(self, stop: Callable[[], bool], idle_ms: int = 100, tick: Callable[[], None] | None = None,
            tick_s: float = 1.0, busy_poll: float = 0.0) -> None:
        """Forward until ``stop()`` is true; ``tick()`` about every ``tick_s``.
        ``busy_poll``: for this many seconds after the last packet, look at
        the rings again at once instead of sleeping (a core kept busy while
        traffic flows, for a lower latency: no wake-up per packet). Runs as
        the compiled loop (``_slice``) whenever it can: not while shaped
        packets wait in the policy's queue."""
        next_tick = time.monotonic() + tick_s
        pc = time.perf_counter
        last = -1e18
        loop = self._loop_args()
        pol = self.policy
        while not stop():
            self._sync_rules()
            if loop is not None and loop[-1] is not self._fast:
                loop = self._loop_args()
            if loop is not None and not (pol is not None and pol.queue):
                self._slice(loop, min(tick_s, RUN_SLICE_S), idle_ms, busy_poll)
            elif self.step():
                if busy_poll:
                    last = pc()
            elif busy_poll and pc() - last < busy_poll:
                pass
            else:
                # peeking rings: empty the wake-up queues, look once more (a
                # packet that arrives after this look finds the queue empty and
                # wakes the poll), then sleep
                for r in self._wakers:
                    r.drain_wake()
                if not self._wakers or not self.step():
                    self.wait(idle_ms if pol is None else pol.next_due_ms(idle_ms))
            if tick is not None:
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + tick_s
                    tick()

    def _slice(self, loop, slice_s: float, idle_ms: int, busy_poll: float) -> None:
        """Run the compiled loop (``_run.bridge_loop`` or
        ``_polkernels.policy_loop``) until it returns, at the latest after
        ``slice_s``, and do what it returned for (see ``ulnet.live._run``)."""
        from ulnet.live import _run as R
        fn, AP, txst, pfd, nwake, fast = loop
        if self._io is None:
            self._io = np.zeros(R.IO_SIZE, dtype=np.int64)
        io = self._io
        io[:R.IO_EPOCH] = 0
        fl = self.flows
        if self.policy is not None:
            io[R.IO_EPOCH] = fl.epoch
        why = fn(AP, self._res, txst, pfd, nwake, io, int(slice_s * 1e9), int(busy_poll * 1e9), idle_ms)
        if self.policy is not None:
            fl.epoch = int(io[R.IO_EPOCH])
        else:                                        # passes DONE: one flow epoch each
            fl.next_epoch(int(io[R.IO_DONE]))
        k = int(io[R.IO_PORT])
        if why == R.LOOP_PASS:
            self._finish(fast[k], int(io[R.IO_CODE]))
        elif why == R.LOOP_POLLERR:
            self.ports[k].rx.wait(0)                 # clears the socket error
        elif why == R.LOOP_SEND:
            fast[k].out.tx._flush(self.counters)

    def add_kernel_stats(self) -> None:
        for p in self.ports:
            p.rx.add_kernel_stats(self.counters)

    def close(self) -> None:
        self._fast = None                  # its tuples view the rings
        if self.policy is not None and hasattr(self.policy, "close"):
            self.policy.close()
        for p in self.ports:
            p.close()
