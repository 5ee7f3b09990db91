"""Options and helpers shared by the reading commands (tcpdump-like inputs)."""

from __future__ import annotations

import argparse
import sys

from ulnet.batch import DEFAULT_BATCH
from ulnet.counters import as_dict, MEANINGS, INDEX


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return v


def batch_size(text: str) -> int:
    v = positive_int(text)
    if v > 1 << 20:
        raise argparse.ArgumentTypeError(f"batch size at most {1 << 20}: {text}")
    return v


def add_input_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="capture files (pcap, pcapng, ERF, optionally gzip-compressed); - is standard input")
    p.add_argument("-r", dest="read", action="append", default=[], metavar="FILE",
                   help="read this capture file (like tcpdump -r); may repeat")
    p.add_argument("-i", dest="interface", metavar="IFACE",
                   help="read a live interface (AF_PACKET ring; root or CAP_NET_RAW)")
    p.add_argument("-s", dest="snaplen", type=positive_int, metavar="SNAPLEN",
                   help="live: keep at most SNAPLEN bytes of each packet (default: whole packets)")
    p.add_argument("-p", dest="no_promisc", action="store_true",
                   help="live: do not put the interface in promiscuous mode")
    p.add_argument("-c", dest="count", type=positive_int, metavar="N", help="stop after N packets")
    p.add_argument("--batch-size", type=batch_size, default=DEFAULT_BATCH, metavar="N",
                   help=f"packets per batch (default {DEFAULT_BATCH}); output does not depend on it")


def inputs_of(args, prog: str) -> list[str] | None:
    """The input list, or None after printing one error line."""
    if args.interface:
        if args.read or args.files:
            print(f"ulnet {prog}: error: give either -i IFACE or capture files, not both", file=sys.stderr)
            return None
        return []
    files = list(args.read) + list(args.files)
    if not files:
        print(f"ulnet {prog}: error: no input: give a capture file, -r FILE, or - for standard input",
              file=sys.stderr)
        return None
    return files


def open_live(args, prog: str):
    """The live source for -i (a TPACKET_V3 ring), or None after printing one error line."""
    from ulnet.sources.afpacket import LiveError, RingSource
    try:
        src = RingSource(args.interface, 0, version=3, snaplen=args.snaplen, promisc=not args.no_promisc)
    except LiveError as e:
        print(f"ulnet {prog}: error: {e}", file=sys.stderr)
        return None
    # as tcpdump does: from here on packets wait in the ring, none is missed
    print(f"ulnet {prog}: listening on {args.interface}, link-type EN10MB (Ethernet), "
          f"snapshot length {args.snaplen or 'whole packets'}", file=sys.stderr, flush=True)
    return src


def print_stats(counters, file=sys.stderr) -> None:
    d = as_dict(counters)
    width = max((len(k) for k in d), default=10)
    for k, v in d.items():
        print(f"{k:<{width}}  {v:>12}  {MEANINGS[INDEX[k]]}", file=file)


def report_problems(problems, prog: str) -> None:
    for line in problems:
        print(f"ulnet {prog}: warning: {line}", file=sys.stderr)
