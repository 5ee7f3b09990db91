"""Run a bridge in one process or in N worker processes joined by PACKET_FANOUT.

Theory of operation. With N workers, the parent opens every receive ring
itself, port by port and worker by worker, each port's N sockets joining one
fanout group of type ``PACKET_FANOUT_HASH`` (the kernel's symmetric flow
hash). A socket's place in its group is the order it joined, so worker k
is member k of every group, and a flow's two directions -- which hash alike
and arrive on different ports -- meet in the same worker, with its flow
table. Then it forks; worker k keeps its own rings, opens its transmit
rings and runs a ``Forwarder``. Counters live in one shared anonymous map
(a row per worker) that the parent adds up for the view; nothing is sent
between processes per packet. SIGINT/SIGTERM stop everything (the parent
passes them on); SIGHUP is passed to every worker, which reloads its
policy stage.
"""

from __future__ import annotations

import mmap
import os
import signal
import sys
import time
from collections.abc import Callable

import numpy as np

from ulnet.counters import N_COUNTERS
from ulnet.live.loop import BRIDGE_BLOCK, BRIDGE_BLOCKS, Forwarder, Port, open_port
from ulnet.live.reports import Reports
from ulnet.sources.afpacket import FANOUT_HASH, LiveError, RingSource


# per-rule packets, bytes, flows kept in shared memory for this many rules
# (the default included); a larger policy reports its first ones
MAX_RULE_ROWS = 4097


class Shared:
    """Counters, per-port numbers, flow counts and per-rule counts of every
    worker, in shared memory."""

    def __init__(self, workers: int, nports: int):
        self.n, self.p = workers, nports
        size = 8 * workers * (N_COUNTERS + 4 * nports + 3 + 3 * MAX_RULE_ROWS)
        self.mm = mmap.mmap(-1, size, mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        a = np.frombuffer(self.mm, dtype=np.int64)
        k = workers * N_COUNTERS
        self.counters = a[:k].reshape(workers, N_COUNTERS)
        self.ports = a[k:k + workers * nports * 4].reshape(workers, nports, 4)
        k += workers * nports * 4
        self.flows = a[k:k + workers]
        self.ready = a[k + workers:k + 2 * workers]
        self.nrules = a[k + 2 * workers:k + 3 * workers]
        k += 3 * workers
        self.rules = a[k:k + workers * MAX_RULE_ROWS * 3].reshape(workers, MAX_RULE_ROWS, 3)

    def totals(self):
        return self.counters.sum(axis=0), self.ports.sum(axis=0), int(self.flows.sum()), self.flows.copy()

    def rule_totals(self) -> np.ndarray:
        """int64 [rules + 1, 3]: packets, bytes, flows per rule of the
        policy in force (since its last load), summed over the workers."""
        n = min(int(self.nrules.max()), MAX_RULE_ROWS)
        return self.rules[:, :n].sum(axis=0)


class _Flags:
    stop = False
    hup = False


def _install(flags: _Flags):
    def on_stop(signum, frame):
        flags.stop = True

    def on_hup(signum, frame):
        flags.hup = True
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    return old


def _restore(old):
    for s, h in old.items():
        signal.signal(s, h)


def _worker_loop(fw: Forwarder, flags: _Flags, k: int, shared: Shared, tick: Callable[[], None] | None,
                 tick_s: float, log, busy_poll: float = 0.0) -> None:
    def on_tick():
        fw.add_kernel_stats()
        for j, p in enumerate(fw.ports):
            shared.ports[k, j] = p.stats
        if fw.flows is not None:
            shared.flows[k] = fw.flows.active_flows
        stage = getattr(fw.policy, "stage", None)
        if stage is not None:
            rs = stage.rule_stats()
            m = min(len(rs), MAX_RULE_ROWS)
            shared.rules[k, :m] = rs[:m]
            shared.rules[k, m:] = 0
            shared.nrules[k] = len(rs)
        if flags.hup:
            flags.hup = False
            reload = getattr(fw.policy, "reload", None)
            if reload is None:
                log("SIGHUP: no rules loaded, nothing to reload")
            else:
                try:
                    reload()
                    log("SIGHUP: rules reloaded")
                except Exception as e:          # a broken file keeps the old policy
                    log(f"SIGHUP: reload failed, keeping the old rules: {e}")
        if tick is not None:
            tick()
    fw.run(lambda: flags.stop, tick=on_tick, tick_s=tick_s, busy_poll=busy_poll)
    on_tick()


def run_bridge(specs: list[str], peer: list[int], *, workers: int = 1, batch_size: int = 256,
               make_flows: Callable[[], object] | None = None,
               make_policy: Callable[[], object] | None = None,
               view=None, interval: float = 1.0, qdisc_bypass: bool = False,
               ring_version: int = 3, peek: bool = True, log=None,
               rule_totals: list | None = None,
               rule_splits: list | None = None,
               busy_poll: float = 0.0) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """Forward between the ports named by ``specs`` until SIGINT/SIGTERM;
    returns the final (counters, per-port numbers, active flows, flows per worker).
    ``rule_totals``, a list, gets the per-rule counts appended (see
    ``Shared.rule_totals``); ``rule_splits`` the count by app / count by
    host rows of the policy, all workers added up (``ulnet.policy.splits``;
    each worker sends its own through a pipe when it stops). ``busy_poll``:
    seconds a worker keeps looking at its rings after the last packet
    before it sleeps (Forwarder.run).
    Raises LiveError before forwarding starts when a port cannot be opened."""
    log = log or (lambda m: print(f"ulnet bridge: {m}", file=sys.stderr, flush=True))
    shared = Shared(workers, len(specs))
    from ulnet.live.view import Snapshot
    snap = Snapshot(specs)

    def show():
        if view is not None:
            view.show(snap.take(*shared.totals()))

    flags = _Flags()
    old = _install(flags)
    parts: list = []                        # each worker's splits (LivePolicy.splits)
    try:
        if workers == 1:
            ports: list[Port] = []
            try:
                for j, s in enumerate(specs):
                    ports.append(open_port(s, j, qdisc_bypass=qdisc_bypass, ring_version=ring_version, peek=peek))
            except BaseException:
                for p in ports:
                    p.close()
                raise
            table = make_flows() if make_flows else None
            fw = Forwarder(ports, peer, batch_size, table, make_policy(table, batch_size) if make_policy else None,
                           counters=shared.counters[0])
            try:
                fw.warm()
                log(f"forwarding {' <-> '.join(specs)}")
                _worker_loop(fw, flags, 0, shared, show, interval, log, busy_poll)
                if hasattr(fw.policy, "splits"):
                    parts.append(fw.policy.splits())
            finally:
                fw.close()
        else:
            if any(s.startswith("tap:") for s in specs):
                raise LiveError("--workers above 1 needs interfaces on both sides (a TAP has one queue)")
            rx = _open_fanout(specs, workers, ring_version, peek)
            reports = Reports(workers)
            pids = []
            for k in range(workers):
                pid = os.fork()
                if pid == 0:                                   # worker k
                    code = 0
                    try:
                        signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent decides when to stop
                        report_fd = reports.child(k)
                        for kk in range(workers):
                            if kk != k:
                                for r in rx[kk]:
                                    r.close()
                        ports = []
                        for j, s in enumerate(specs):
                            from ulnet.sinks.txring import TxRing
                            ports.append(Port(s, rx[k][j], TxRing(s, vnet_hdr=True, qdisc_bypass=qdisc_bypass)))
                        table = make_flows() if make_flows else None
                        fw = Forwarder(ports, peer, batch_size, table,
                                       make_policy(table, batch_size) if make_policy else None,
                                       counters=shared.counters[k])
                        fw.warm()
                        shared.ready[k] = 1
                        _worker_loop(fw, flags, k, shared, None, interval, log, busy_poll)
                        Reports.send(report_fd, fw.policy.splits() if hasattr(fw.policy, "splits") else {})
                        fw.close()
                    except LiveError as e:
                        log(f"worker {k}: {e}")
                        code = 1
                    except BaseException as e:               # noqa: BLE001 - report and leave the child
                        log(f"worker {k}: {type(e).__name__}: {e}")
                        code = 1
                    finally:
                        os._exit(code)
                pids.append(pid)
            reports.parent()
            for row in rx:
                for r in row:
                    r.close()
            failed = False
            alive = set(pids)
            deadline = time.monotonic() + 300
            while not shared.ready.all() and not flags.stop and time.monotonic() < deadline:
                time.sleep(0.05)            # workers compile or load their kernels
                for pid in list(alive):
                    done, status = os.waitpid(pid, os.WNOHANG)
                    if done:
                        alive.discard(pid)
                        failed = True
                        flags.stop = True
            if not failed:
                log(f"forwarding {' <-> '.join(specs)} with {workers} workers")
            next_t = time.monotonic() + interval
            while alive and not flags.stop:
                reports.drain(min(0.1, max(0.0, next_t - time.monotonic())))   # also the sleep
                for pid in list(alive):
                    done, status = os.waitpid(pid, os.WNOHANG)
                    if done:
                        alive.discard(pid)
                        failed |= os.waitstatus_to_exitcode(status) != 0
                        flags.stop = True
                if flags.hup:
                    flags.hup = False
                    for pid in alive:
                        os.kill(pid, signal.SIGHUP)
                if time.monotonic() >= next_t:
                    next_t += interval
                    show()
            for pid in alive:
                os.kill(pid, signal.SIGTERM)
            reports.wait_closed(60)             # before waitpid: a worker may be writing its report
            parts = reports.take()
            for pid in alive:
                _, status = os.waitpid(pid, 0)
                failed |= os.waitstatus_to_exitcode(status) != 0
            if failed:
                raise LiveError("a worker failed (see above)")
        show()
        if rule_totals is not None:
            rule_totals.append(shared.rule_totals())
        if rule_splits is not None:
            from ulnet.policy.splits import merge
            rule_splits.append(merge(parts))
        return shared.totals()
    finally:
        _restore(old)


def _open_fanout(specs: list[str], workers: int, version: int = 3, peek: bool = True) -> list[list[RingSource]]:
    """rx[k][j]: worker k's ring on port j, member k of port j's fanout group."""
    rx: list[list[RingSource]] = [[] for _ in range(workers)]
    try:
        for j, s in enumerate(specs):
            base = (os.getpid() * 31 + j * 7919) & 0xFFFF
            for attempt in range(16):
                group = (base + attempt * 104729) & 0xFFFF
                try:
                    first = RingSource(s, j, version=version, retire_ms=1, block_size=BRIDGE_BLOCK, blocks=BRIDGE_BLOCKS, vnet_hdr=True, ignore_outgoing=True, promisc=True,
                                       fanout=(group, FANOUT_HASH), peek=peek)
                    break
                except LiveError as e:
                    if "fanout" not in str(e) or attempt == 15:
                        raise
            rx[0].append(first)
            for k in range(1, workers):
                rx[k].append(RingSource(s, j, version=version, retire_ms=1, block_size=BRIDGE_BLOCK, blocks=BRIDGE_BLOCKS, vnet_hdr=True, ignore_outgoing=True, promisc=True,
                                        fanout=(group, FANOUT_HASH), peek=peek))
    except BaseException:
        for row in rx:
            for r in row:
                r.close()
        raise
    return rx
