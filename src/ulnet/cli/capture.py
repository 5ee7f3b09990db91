"""ulnet capture -- write what a live interface receives to capture files (tcpdump -w).

SYNOPSIS
    ulnet capture -i IFACE -w FILE [-C MB | -G SECONDS] [-W N] [-c N] [-s SNAPLEN] [-p]
                  [--write-format pcap|pcapng] [-B KIB] [--stats-interval S] [--stats]
                  [-F FILE | EXPRESSION]

DESCRIPTION
    Reads IFACE through a TPACKET_V3 ring (blocks of packets, no per-packet
    system call) and writes the packets as they are in the ring, one write
    per batch, to FILE: pcap (nanosecond timestamps, link type Ethernet) or
    pcapng when FILE ends in .pcapng or --write-format says so. VLAN tags the
    kernel stripped are put back into the frames, as tcpdump shows them.

    -C MB starts a new file when the current one holds MB million bytes
    (checked after each batch); the files are FILE, FILE1, FILE2, ... as with
    tcpdump. -G SECONDS starts a new file every SECONDS of packet time (the
    ring timestamps, not the wall clock): a FILE with strftime escapes
    (%Y%m%d-%H%M%S) is named from the time the file starts, else FILE,
    FILE1, ... -W N keeps at most N files, reusing the oldest name (a ring
    buffer of files, as tcpdump -W).

    -s SNAPLEN keeps the first SNAPLEN bytes of each packet (a kernel
    filter, as libpcap does); -p leaves promiscuous mode off; -B sets the
    ring size in KiB (default 32768: 64 blocks of 512 KiB; smaller rings get
    smaller blocks, down to 128 KiB, and at least 2 of them).

    EXPRESSION (the trailing words, or -F FILE) is a tcpdump filter compiled
    by libpcap for a live socket on IFACE (``vlan`` reads the tag the
    kernel stripped) and attached to the socket: the kernel drops what it
    rejects before the ring, so those packets are neither captured nor
    counted as received (docs/filter.md). ``ulnet capture -i eth0 -w
    x.pcap icmp or arp``.

    SIGINT/SIGTERM (or -c N packets) end the capture: the file is
    complete, and a summary (packets captured, dropped by the kernel)
    goes to standard error.

EXIT STATUS
    0 done; 1 a write failed; 2 a usage error, an interface that cannot be
    read (missing, no privileges: root or CAP_NET_RAW) or a file that
    cannot be created.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

import numpy as np

from ulnet.batch import PacketBatch
from ulnet.cli.common import (add_buffer_argument, add_filter_file_argument, batch_size, filter_of, open_ring,
                              positive_int, print_stats)
from ulnet.counters import C_LIVE_KERNEL_DROPS, C_LIVE_FREEZE, C_SRC_PACKETS, new_counters
from ulnet.sinks.pcap import DEFAULT_SNAPLEN, PcapWriter
from ulnet.sinks.pcapng import PcapngWriter



def _mb(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of megabytes: {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be above 0: {text}")
    return v


def add_arguments(p):
    p.add_argument("-i", dest="interface", metavar="IFACE", required=True, help="interface to capture on")
    p.add_argument("-w", dest="write", metavar="FILE", required=True, help="capture file (- is standard output)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-C", dest="file_size", type=_mb, metavar="MB", help="new file every MB million bytes")
    g.add_argument("-G", dest="rotate_seconds", type=positive_int, metavar="SECONDS",
                   help="new file every SECONDS of packet time")
    p.add_argument("-W", dest="file_count", type=positive_int, metavar="N", help="keep at most N files (with -C or -G)")
    p.add_argument("-c", dest="count", type=positive_int, metavar="N", help="stop after N packets")
    p.add_argument("-s", dest="snaplen", type=positive_int, metavar="SNAPLEN", help="bytes kept of each packet")
    p.add_argument("-p", dest="no_promisc", action="store_true", help="no promiscuous mode")
    add_buffer_argument(p)
    p.add_argument("--write-format", choices=("pcap", "pcapng"), help="default: pcapng if FILE ends in .pcapng")
    p.add_argument("--batch-size", type=batch_size, default=4096, metavar="N", help="packets per batch")
    p.add_argument("--stats-interval", type=float, metavar="S", help="print one JSON line of numbers every S seconds")
    p.add_argument("--stats", action="store_true", help="print the counters to standard error at the end")
    add_filter_file_argument(p)
    p.add_argument("expression", nargs="*", metavar="EXPRESSION",
                   help="tcpdump filter expression, run by the kernel (docs/filter.md)")


class _Stop(Exception):
    pass


class _Files:
    """The rotation: names, the writer of the current file, when to move on."""

    def __init__(self, args):
        self.args = args
        self.fmt = args.write_format or ("pcapng" if args.write.lower().endswith(".pcapng") else "pcap")
        self.k = 0
        self.w = None
        self.start_ns = None
        self.names: list[str] = []

    def name(self, t_ns: int | None) -> str:
        base = self.args.write
        if "%" in base and self.args.rotate_seconds and t_ns is not None:
            return time.strftime(base, time.gmtime(t_ns / 1e9))
        n = self.k % self.args.file_count if self.args.file_count else self.k
        return base if n == 0 else f"{base}{n}"

    def open(self, t_ns: int | None):
        path = self.name(t_ns)
        if self.fmt == "pcapng":
            self.w = PcapngWriter(path, snaplen=self.args.snaplen or 0)
        else:
            self.w = PcapWriter(path, 1, nanosecond=True, snaplen=self.args.snaplen or DEFAULT_SNAPLEN)
        self.names.append(path)
        self.start_ns = t_ns
        return self.w

    def rotate(self, t_ns: int | None):
        self.w.close()
        self.k += 1
        return self.open(t_ns)


def run(args) -> int:
    prog = "ulnet capture"
    if args.file_count and not (args.file_size or args.rotate_seconds):
        print(f"{prog}: error: -W needs -C or -G", file=sys.stderr)
        return 2
    if args.write == "-" and (args.file_size or args.rotate_seconds):
        print(f"{prog}: error: rotation needs a file name, not standard output", file=sys.stderr)
        return 2
    flt = filter_of(args.expression, args.filter_file, "capture", args.snaplen)
    if flt is False:
        return 2
    src = open_ring(args, flt, "capture")
    if src is None:
        return 2
    files = _Files(args)
    try:
        files.open(None)
    except OSError as e:
        src.close()
        print(f"{prog}: error: {args.write}: cannot create: {e.strerror}", file=sys.stderr)
        return 2
    counters = new_counters()
    src.counters = counters
    batch = PacketBatch(args.batch_size)
    # load (or compile) the ring walker, its release and the writer's kernels
    # now, not when the first packets arrive: that took long enough (0.2-0.4 s
    # on a busy machine) for a small ring to fill
    src.warm(batch)
    batch.n = 0
    files.w.write_batch(batch)              # no rows: writes nothing
    print(f"{prog}: listening on {args.interface}, link-type EN10MB (Ethernet), "
          f"snapshot length {args.snaplen or 'whole packets'}", file=sys.stderr, flush=True)
    from ulnet.live.view import make_view
    view = make_view(f"ulnet capture {args.interface}", args.stats_interval)
    from ulnet.live.view import Snapshot
    snap = Snapshot([args.interface])
    ports = np.zeros((1, 4), dtype=np.int64)

    def stop(signum, frame):
        raise _Stop()
    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    written = 0
    period = (args.rotate_seconds or 0) * 1_000_000_000
    next_view = time.monotonic() + (args.stats_interval or 1.0)
    try:
        while args.count is None or written < args.count:
            n = src.fill(batch)
            if n:
                if args.count is not None:
                    n = min(n, args.count - written)
                batch.n = n
                w = files.w
                if period:
                    ts = batch.ts[:n]
                    if files.start_ns is None:
                        files.start_ns = int(ts[0])
                        if "%" in args.write:   # name the first file from its first packet's time
                            w.close()
                            os.remove(files.names.pop())
                            w = files.open(int(ts[0]))
                    i = 0
                    while i < n:
                        edge = files.start_ns + period
                        cut = int(np.searchsorted(ts, edge, side="left")) if int(ts[-1]) >= edge else n
                        cut = max(cut, i)
                        if cut > i:
                            mask = np.zeros(n, dtype=np.bool_)
                            mask[i:cut] = True
                            w.write_batch(batch, mask)
                        if cut < n:      # the next file starts with the period of packet ``cut``
                            w = files.rotate(files.start_ns + period * ((int(ts[cut]) - files.start_ns) // period))
                        i = cut
                else:
                    w.write_batch(batch)
                    if args.file_size and w.bytes >= args.file_size * 1e6:
                        files.rotate(None)
                written += n
                ports[0, 0] += n
                src.release()
            else:
                src.wait(100)
            if view is not None and time.monotonic() >= next_view:
                next_view = time.monotonic() + (args.stats_interval or 1.0)
                src.add_kernel_stats(counters)
                view.show(snap.take(counters, ports, 0))
    except _Stop:
        pass
    except OSError as e:
        print(f"{prog}: error: {files.names[-1]}: write failed: {e.strerror}", file=sys.stderr)
        status = 1
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        src.add_kernel_stats(counters)
        try:
            files.w.close()
        except OSError:
            pass
        src.close()
        if view is not None:
            view.close()
    drops = int(counters[C_LIVE_KERNEL_DROPS] + counters[C_LIVE_FREEZE])
    print(f"{written} packets captured, {int(counters[C_SRC_PACKETS])} received, {drops} dropped by kernel",
          file=sys.stderr)
    if args.stats:
        print_stats(counters)
    return status
