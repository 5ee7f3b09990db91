"""Options and helpers shared by the reading commands (tcpdump-like inputs).

Inputs and the filter expression share the positional words, as in
tcpdump: with ``-r FILE`` or ``-i IFACE`` every word is the expression;
without them the leading words that name existing files (or ``-``) are the
inputs and the first word that does not starts the expression (the very
first word is always an input, and so is a word ending in .pcap, .pcapng,
.cap, .erf or .gz, so a missing file is reported as such). A
file named like a filter word (``tcp``) in the current directory is read
as an input: write ``-r FILE`` to be unambiguous. ``-F FILE`` reads the
expression from a file (``#`` starts a comment).
"""

from __future__ import annotations

import argparse
import os
import sys

from ulnet.batch import DEFAULT_BATCH
from ulnet.counters import as_dict, MEANINGS, INDEX


def ranged(cast, lo, hi, noun: str, unit: str = "", scale=1):
    """An argparse type: ``cast(text)`` (int or float) between lo and hi,
    multiplied by ``scale``; otherwise one line saying what is wrong."""
    def parse(text: str):
        try:
            v = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {noun}: {text!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo} and {hi}{unit}: {text}")
        return v * scale
    return parse


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


def add_input_arguments(p: argparse.ArgumentParser, batch: int = DEFAULT_BATCH) -> None:
    p.add_argument("files", nargs="*", metavar="FILE... [EXPRESSION]",
                   help="capture files (pcap, pcapng, ERF, optionally gzip-compressed; - is standard input), "
                        "then a tcpdump filter expression (docs/filter.md)")
    p.add_argument("-r", dest="read", action="append", default=[], metavar="FILE",
                   help="read this capture file (like tcpdump -r); may repeat")
    p.add_argument("-i", dest="interface", metavar="IFACE",
                   help="read a live interface (AF_PACKET ring; root or CAP_NET_RAW)")
    p.add_argument("-s", dest="snaplen", type=positive_int, metavar="SNAPLEN",
                   help="live: keep at most SNAPLEN bytes of each packet (default: whole packets)")
    p.add_argument("-p", dest="no_promisc", action="store_true",
                   help="live: do not put the interface in promiscuous mode")
    add_buffer_argument(p)
    p.add_argument("-c", dest="count", type=positive_int, metavar="N", help="stop after N packets")
    p.add_argument("--batch-size", type=batch_size, default=batch, metavar="N",
                   help=f"packets per batch (default {batch}); output does not depend on it")
    add_filter_file_argument(p)


def add_buffer_argument(p: argparse.ArgumentParser) -> None:
    from ulnet.sources.afpacket import OBSERVE_BUFFER_KIB, ring_geometry
    block, blocks = ring_geometry(OBSERVE_BUFFER_KIB)
    p.add_argument("-B", dest="buffer_kib", type=positive_int, default=OBSERVE_BUFFER_KIB, metavar="KIB",
                   help=f"live: receive ring size in KiB (default {OBSERVE_BUFFER_KIB}: {blocks} blocks of "
                        f"{block >> 10} KiB; a smaller ring gets smaller blocks, down to 128 KiB)")


CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".erf", ".gz")


def add_filter_file_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("-F", dest="filter_file", metavar="FILE",
                   help="read the filter expression from FILE (like tcpdump -F)")


def split_words(args) -> tuple[list[str], list[str]]:
    """(input files, filter words) from the positional words (module doc)."""
    words = list(args.files)
    if args.read or args.interface:
        return [], words
    files = []
    while words and (words[0] == "-" or (os.path.exists(words[0]) and not os.path.isdir(words[0]))):
        files.append(words.pop(0))
    if not files and words:
        files.append(words.pop(0))
    # a missing capture file is reported as such, not as a filter syntax error
    while words and words[0].lower().endswith(CAPTURE_SUFFIXES):
        files.append(words.pop(0))
    return files, words


def filter_of(words: list[str], filter_file: str | None, prog: str, snaplen: int | None = None):
    """The Filter of the expression words or -F FILE; None without one;
    False after printing one error line. Not compiled yet: the pipeline
    compiles it for the inputs' link types before reading (FilterError)."""
    from ulnet.filter import Filter
    from ulnet.filter.libpcap import DEFAULT_SNAPLEN
    if filter_file is not None:
        if words:
            print(f"ulnet {prog}: error: filter: give the expression with -F or on the command line, not both "
                  f"(left over: {' '.join(words)})", file=sys.stderr)
            return False
        try:
            with open(filter_file, encoding="utf-8") as f:
                lines = [line.split("#", 1)[0] for line in f]
        except (OSError, UnicodeDecodeError) as e:
            print(f"ulnet {prog}: error: filter: {filter_file}: cannot read: {getattr(e, 'strerror', None) or e}",
                  file=sys.stderr)
            return False
        expr = " ".join(" ".join(lines).split())
    else:
        expr = " ".join(words)
    if not expr.strip():
        return None
    return Filter(expr, snaplen or DEFAULT_SNAPLEN)


def filter_error(e, prog: str) -> int:
    print(f"ulnet {prog}: error: filter: {e}", file=sys.stderr)
    return 2


def inputs_of(args, prog: str) -> list[str] | None:
    """The input list, or None after printing one error line. Sets
    ``args.filter`` (a Filter or None) from the trailing words or -F."""
    files, words = split_words(args)
    flt = filter_of(words, args.filter_file, prog, getattr(args, "snaplen", None) if args.interface else None)
    if flt is False:
        return None
    args.filter = flt
    if args.interface:
        if args.read:
            print(f"ulnet {prog}: error: give either -i IFACE or capture files, not both", file=sys.stderr)
            return None
        return []
    files = list(args.read) + files
    if not files:
        print(f"ulnet {prog}: error: no input: give a capture file, -r FILE, or - for standard input",
              file=sys.stderr)
        return None
    return files


def open_ring(args, flt, prog: str):
    """The receive ring of an observing command on ``args.interface``
    (``observe_ring``: -s, -p, -B) with ``flt`` (a Filter or None)
    compiled for that live socket and attached; None after printing one
    error line."""
    from ulnet.filter import FilterError
    from ulnet.sources.afpacket import LiveError, observe_ring
    bpf = why = None
    if flt is not None:
        try:
            bpf, why = flt.live_program(args.interface)     # the kernel filters
        except FilterError as e:
            filter_error(e, prog)
            return None
    try:
        src = observe_ring(args.interface, snaplen=args.snaplen, promisc=not args.no_promisc,
                           buffer_kib=args.buffer_kib, bpf=bpf)
    except LiveError as e:
        print(f"ulnet {prog}: error: {e}", file=sys.stderr)
        return None
    if why is not None:
        print(f"ulnet {prog}: warning: filter: {args.interface}: libpcap cannot open it ({why}): compiled as for "
              f"a capture file, so vlan matches only tags left in the frame", file=sys.stderr)
    return src


def open_live(args, prog: str):
    """The live source for -i, or None after printing one error line: the
    same ring as ``ulnet capture`` (``open_ring``: -B KiB, at least 64 blocks
    when that leaves them 128 KiB or more, retired after 100 ms at most, so
    a line or record shows up at most that late)."""
    src = open_ring(args, getattr(args, "filter", None), prog)
    if src is None:
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


def print_rule_table(rows) -> None:
    """Per rule: line, packets, bytes, flows, text (dicts with those keys),
    to standard error -- the table ulnet run and ulnet bridge end with."""
    print(f"{'line':>5} {'packets':>10} {'bytes':>12} {'flows':>8}  rule", file=sys.stderr)
    for r in rows:
        print(f"{r['line']:>5} {r['packets']:>10} {r['bytes']:>12} {r['flows']:>8}  {r['text']}", file=sys.stderr)


TOP_HOSTS = 10


def print_splits(rules, splits: dict, more: str = "") -> None:
    """After ``print_rule_table`` (``rules``: its rows, with ``rule``, the
    rule index), to standard error: per rule with ``count by app`` its
    applications, busiest first; per rule with ``count by host`` its
    TOP_HOSTS busiest names (``... N more{more}`` for the rest), then the
    special rows. ``splits`` as ``ulnet.policy.splits`` makes them."""
    from ulnet.policy.stage import HOST_SPECIAL
    lines = {r["rule"]: r for r in rules}

    def row(v, name):
        print(f"      {v['packets']:>10} {v['bytes']:>12} {v.get('flows', ''):>8}  {name}", file=sys.stderr)
    for ri, rows in splits.get("count_by_app", {}).items():
        r = lines[int(ri)]
        print(f"count by app, line {r['line']}: {r['text']}", file=sys.stderr)
        for name in sorted(rows, key=lambda n: -rows[n]["packets"]):
            row(rows[name], name)
    for ri, rows in splits.get("count_by_host", {}).items():
        r = lines[int(ri)]
        names = [h for h in rows if h not in HOST_SPECIAL]
        named = len(names)
        print(f"count by host, line {r['line']} ({named} name{'s' if named != 1 else ''}): {r['text']}",
              file=sys.stderr)
        for h in names[:TOP_HOSTS]:
            row(rows[h], h)
        if named > TOP_HOSTS:
            print(f"      ... {named - TOP_HOSTS} more{more}", file=sys.stderr)
        for h in HOST_SPECIAL:
            if h in rows:
                row(rows[h], h)


def policy_errors(e, prog: str, path: str) -> int:
    """A rule file that does not check (``ulnet.policy.errors.PolicyError``):
    every diagnostic (file:line:col), then one summary line; returns 1."""
    for d in e.diagnostics:
        print(d.render(), file=sys.stderr)
    n = len(e.errors)
    print(f"{prog}: {path}: {n} error{'s' if n != 1 else ''}: nothing applied", file=sys.stderr)
    return 1
