"""ulnet replay -- send the packets of capture files out of an interface (tcpreplay).

SYNOPSIS
    ulnet replay FILE... -o IFACE [--speed X | --pps N | --topspeed] [--loop N] [-c N]
                 [--qdisc-bypass] [--stats]

DESCRIPTION
    Reads the capture files (pcap, pcapng, ERF, gzip) as one stream and
    sends every frame out of IFACE through a PACKET_TX_RING: the frames of
    a batch are copied into ring slots by a compiled kernel and one send()
    hands them to the kernel.

    Timing follows the capture by default (--speed 1); --speed X plays X
    times faster; --pps N sends N packets per second; --topspeed sends as
    fast as the ring drains. Pacing is per group of due packets: every
    packet whose time has come goes out in one send(), then ulnet sleeps
    until the next one is due (no system call per packet at high rates).
    --loop N plays the input N times.

    Only Ethernet captures can be sent. A frame longer than the interface's
    MTU plus its Ethernet header is skipped and counted. At the end ulnet
    waits until the kernel has sent every queued slot, then prints a
    summary to standard error.

EXIT STATUS
    0 done; 1 a capture could not be read to its end; 2 a usage error, a
    file that cannot be read, an interface that cannot be used (missing, no
    privileges: root or CAP_NET_RAW).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

import numpy as np

from ulnet.batch import PacketBatch
from ulnet.cli.common import positive_int, print_stats, report_problems
from ulnet.counters import C_LIVE_TX_PACKETS, C_LIVE_TX_BYTES, C_LIVE_TX_TOO_BIG, C_LIVE_TX_RING_FULL, new_counters
from ulnet.sinks.txring import TxRing
from ulnet.sources import CaptureError, open_capture
from ulnet.sources.afpacket import LiveError



def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < v < 1e9:
        raise argparse.ArgumentTypeError(f"must be above 0: {text}")
    return v


def add_arguments(p):
    p.add_argument("files", nargs="+", metavar="FILE", help="capture files")
    p.add_argument("-o", dest="interface", required=True, metavar="IFACE", help="interface to send on")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--speed", type=_positive_float, default=1.0, metavar="X", help="play X times faster (default 1)")
    g.add_argument("--pps", type=_positive_float, metavar="N", help="send N packets per second")
    g.add_argument("--topspeed", action="store_true", help="send as fast as possible")
    p.add_argument("--loop", type=positive_int, default=1, metavar="N", help="play the input N times")
    p.add_argument("-c", dest="count", type=positive_int, metavar="N", help="stop after N packets")
    p.add_argument("--qdisc-bypass", action="store_true", help="PACKET_QDISC_BYPASS on the TX ring")
    p.add_argument("--batch-size", type=positive_int, default=1024, metavar="N", help="packets per batch")
    p.add_argument("--stats", action="store_true", help="print the counters to standard error at the end")


class _Stop(Exception):
    pass


def run(args) -> int:
    prog = "ulnet replay"
    for path in args.files:                      # a bad file fails before anything is sent
        try:
            r = open_capture(path)
        except CaptureError as e:
            print(f"{prog}: error: {e}", file=sys.stderr)
            return 2
        lt = getattr(r, "linktype", 1)
        r.close()
        if lt != 1:
            print(f"{prog}: error: {path}: link type {lt}: only Ethernet captures can be sent", file=sys.stderr)
            return 2
    try:
        tx = TxRing(args.interface, qdisc_bypass=args.qdisc_bypass, wait_ms=1000)
    except LiveError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    counters = new_counters()
    batch = PacketBatch(args.batch_size)
    mask = np.zeros(args.batch_size, dtype=np.bool_)
    problems: list[str] = []
    failed = False
    sent_rows = 0
    t_start = time.monotonic()
    clock0 = None            # (monotonic start, first packet ts) of the current pass

    def stop(signum, frame):
        raise _Stop()
    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for _ in range(args.loop):
            clock0 = None
            for path in args.files:
                r = open_capture(path)
                r.counters = counters
                try:
                    while args.count is None or sent_rows < args.count:
                        n = r.fill(batch)
                        if not n:
                            break
                        if args.count is not None:
                            n = min(n, args.count - sent_rows)
                        batch.n = n
                        if args.topspeed:
                            tx.send_batch(batch, counters)
                        else:
                            now = time.monotonic()
                            if clock0 is None:
                                clock0 = (now, int(batch.ts[0]), sent_rows)
                            if args.pps:
                                due = clock0[0] + (np.arange(sent_rows, sent_rows + n) - clock0[2]) / args.pps
                            else:
                                due = clock0[0] + (batch.ts[:n] - clock0[1]) / 1e9 / args.speed
                            i = 0
                            while i < n:
                                now = time.monotonic()
                                k = int(np.searchsorted(due, now, side="right"))
                                if k <= i:
                                    time.sleep(min(due[i] - now, 1.0))
                                    continue
                                mask[:n] = False
                                mask[i:k] = True
                                tx.send_batch(batch, counters, mask)
                                i = k
                        sent_rows += n
                finally:
                    problems.extend(r.problems)
                    failed |= r.failed
                    batch.n = 0
                    batch.buf = batch.buf[:0]
                    r.close()
    except _Stop:
        pass
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        left = tx.drain(counters)
        tx.close()
    dt = max(time.monotonic() - t_start, 1e-9)
    pk, by = int(counters[C_LIVE_TX_PACKETS]), int(counters[C_LIVE_TX_BYTES])
    print(f"sent {pk} packets ({by} bytes) in {dt:.3f} s: {pk / dt:.0f} packets/s, {8 * by / dt / 1e6:.2f} Mbit/s; "
          f"skipped {int(counters[C_LIVE_TX_TOO_BIG])} too big for the MTU, "
          f"{int(counters[C_LIVE_TX_RING_FULL])} ring full; {left} unsent at exit", file=sys.stderr)
    report_problems(problems, "replay")
    if args.stats:
        print_stats(counters)
    return 1 if failed else 0
