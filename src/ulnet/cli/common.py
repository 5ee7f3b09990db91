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
                   help="live interface (not in this release: live AF_PACKET I/O is pending)")
    p.add_argument("-c", dest="count", type=positive_int, metavar="N", help="stop after N packets")
    p.add_argument("--batch-size", type=batch_size, default=DEFAULT_BATCH, metavar="N",
                   help=f"packets per batch (default {DEFAULT_BATCH}); output does not depend on it")


def inputs_of(args, prog: str) -> list[str] | None:
    """The input list, or None after printing one error line."""
    if args.interface:
        print(f"ulnet {prog}: error: -i {args.interface}: live interfaces are not supported yet "
              f"(capture files only in this release)", file=sys.stderr)
        return None
    files = list(args.read) + list(args.files)
    if not files:
        print(f"ulnet {prog}: error: no input: give a capture file, -r FILE, or - for standard input",
              file=sys.stderr)
        return None
    return files


def print_stats(counters, file=sys.stderr) -> None:
    d = as_dict(counters)
    width = max((len(k) for k in d), default=10)
    for k, v in d.items():
        print(f"{k:<{width}}  {v:>12}  {MEANINGS[INDEX[k]]}", file=file)


def report_problems(problems, prog: str) -> None:
    for line in problems:
        print(f"ulnet {prog}: warning: {line}", file=sys.stderr)
