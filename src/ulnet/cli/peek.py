"""ulnet peek -- one line per packet.

SYNOPSIS
    ulnet peek [-r] FILE... [-c N] [--format text|jsonl] [--stats] [--batch-size N] [-F FILE | EXPRESSION]
    ulnet peek [-r] FILE... -w OUT [--write-format pcap|pcapng] [-c N] [--stats] [EXPRESSION]
    ulnet peek -i IFACE [-s SNAPLEN] [-p] [-B KIB] [-c N] [--format text|jsonl] [EXPRESSION]

DESCRIPTION
    Reads capture files in order and prints one line per packet. The text
    format follows libpeak's peek(1):

      time: Mon 2009-10-05 06:06:07.492060, flow: 0, ip_type: 17, ip_len: 62, src: 10.10.1.4:56166, dst: 10.10.1.1:53, app: dns

    time is UTC with microseconds; ip_type is the IP protocol of the
    innermost header; ip_len its IP length; ports are shown for TCP, UDP and
    SCTP; IPv6 endpoints print as [addr]:port. A frame without IP prints
    ``time: ..., non-ip: ethertype 0x0806, wire_len: 60``; a packet that
    could not be decoded prints its error reason. ``flow`` is the flow id
    (in order of first packet, as ``ulnet flows`` numbers them, with its
    default timeouts); ``app`` is the flow's application as known after that
    packet (nDPI's name in lower case, ``unknown`` until decided).

    --format jsonl writes one JSON object per packet: ts (seconds, float),
    wire_len, cap_len, linktype, ip_version, src_ip, dst_ip, protocol,
    src_port, dst_port, vlan_id, ip_len, tcp_flags, icmp_type, icmp_code,
    frag_offset, more_fragments, tunnel, payload_len, flow_id,
    application_name, error (null or the dotted reason).

    EXPRESSION (the words after the files, or -F FILE) is a tcpdump filter
    compiled by libpcap: only the packets it accepts are printed or written
    and -c counts those (docs/filter.md). ``ulnet peek x.pcap tcp port 80``,
    ``ulnet peek -r x.pcap 'udp and port 53'``.

    -i IFACE reads a live interface through the same TPACKET_V3 ring as
    ``ulnet capture`` (-B KiB, default 32768: 64 blocks of 512 KiB): a block
    reaches ulnet when it is full or 100 ms after its first packet, so on a
    quiet link a line appears up to 100 ms after its packet (docs/live.md).
    -s SNAPLEN and -p as tcpdump; the expression runs in the kernel.

    --stats prints every non-zero counter (dotted name, value, meaning) to
    standard error at the end.

    -w OUT writes the packets to the capture file OUT instead of printing
    them, as ``tcpdump -r X -w OUT`` does (``-`` is standard output); -c,
    --stats and the warnings work as without it. The format is pcapng when
    OUT ends in ``.pcapng``, pcap otherwise, or as --write-format says.
    pcap output has one link type: that of the inputs when they are all
    pcap files, else that of the first packet; a packet of another link type
    stops the run with an error (exit 1, the partial file removed) -- write
    pcapng, which gives each (input, link type) its own interface. pcap
    output is microsecond when every input is a microsecond pcap file and
    nanosecond otherwise, so no timestamp is rounded; its snap length is the
    inputs' when they are all pcap files, else 262144 (a longer packet is
    cut to it, with a warning). So ``peek X.pcap -w Y.pcap`` copies a
    well-formed microsecond pcap file byte for byte. pcapng output is always
    nanosecond, without a snap length. See docs/sinks.md.
"""

from __future__ import annotations

import os
import sys

from ulnet.cli.common import add_input_arguments, filter_error, inputs_of, open_live, print_stats, report_problems
from ulnet.filter import FilterError
from ulnet.flow import FlowTable
from ulnet.inspect import Inspector
from ulnet.inspect.registry import NAMES as APP_NAMES

APP_TEXT = tuple(n.lower() for n in APP_NAMES)     # libpeak prints lower case: dns, smtp, unknown
from ulnet.pipeline import Pipeline
from ulnet.sinks.pcap import DEFAULT_SNAPLEN, LinkTypeError, PcapWriter
from ulnet.sinks.pcapng import PcapngWriter
from ulnet.sinks.text import format_text, format_jsonl
from ulnet.sources import CaptureError



def add_arguments(p):
    add_input_arguments(p)
    p.add_argument("--format", choices=("text", "jsonl"), default="text", help="output format")
    p.add_argument("--stats", action="store_true", help="print the counters to standard error at the end")
    p.add_argument("-w", dest="write", metavar="OUT",
                   help="write the packets to capture file OUT (- is standard output) instead of printing them")
    p.add_argument("--write-format", choices=("pcap", "pcapng"),
                   help="format of -w OUT (default: pcapng if OUT ends in .pcapng, else pcap)")


def run(args) -> int:
    inputs = inputs_of(args, "peek")
    if inputs is None:
        return 2
    live = open_live(args, "peek") if args.interface else None
    if args.interface and live is None:
        return 2
    fmt = format_jsonl if args.format == "jsonl" else format_text
    # printing shows each packet's flow id: run the flow stage (not needed for -w)
    table = None if args.write else FlowTable()
    insp = None if args.write else Inspector()
    pipe = Pipeline(inputs, batch_size=args.batch_size, count=args.count, flows=table, inspector=insp, live=live,
                    filter=args.filter)
    try:
        pipe.open_all()
    except CaptureError as e:
        print(f"ulnet peek: error: {e}", file=sys.stderr)
        return 2
    except FilterError as e:
        return filter_error(e, "peek")
    if args.write:
        status = _write(pipe, args)
        if status:
            return status
    else:
        out = sys.stdout
        for batch in pipe:
            pipe.take_ended()          # flow records are not printed here (ulnet flows)
            names = APP_TEXT if fmt is format_text else APP_NAMES
            apps = [names[a] for a in insp.app[:batch.n].tolist()]
            out.write(fmt(batch, flow_ids=batch.flow_id[:batch.n].tolist(), apps=apps))
            if live is not None:
                out.flush()            # live: lines appear as packets arrive
        out.flush()
    report_problems(pipe.problems, "peek")
    if args.stats:
        print_stats(pipe.counters)
    return 1 if pipe.failed else 0


def _open_writer(pipe, path: str, fmt: str):
    """The capture writer for -w (see the module documentation)."""
    if fmt == "pcapng":
        return PcapngWriter(path)
    if not pipe.readers:               # live interface: Ethernet, nanosecond timestamps
        return PcapWriter(path, 1, nanosecond=True, snaplen=DEFAULT_SNAPLEN)
    pcaps = [r for r in pipe.readers if r.kind == "pcap"]
    nano = len(pcaps) < len(pipe.readers) or any(r.nano for r in pcaps)
    snaps = [r.snaplen for r in pcaps]
    snaplen = max(snaps) if snaps and len(pcaps) == len(pipe.readers) and min(snaps) > 0 else DEFAULT_SNAPLEN
    lts = {r.linktype for r in pcaps}
    if len(lts) > 1:
        raise LinkTypeError(f"{path}: the inputs have link types {', '.join(map(str, sorted(lts)))}: "
                            f"a pcap file holds one link type (write pcapng)", -1, -1, -1)
    linktype = lts.pop() if len(pcaps) == len(pipe.readers) else None
    return PcapWriter(path, linktype, nanosecond=nano, snaplen=snaplen)


def _write(pipe, args) -> int:
    """Run the pipeline into a capture file; non-zero on a fatal error."""
    path = args.write
    fmt = args.write_format or ("pcapng" if path.lower().endswith(".pcapng") else "pcap")
    try:
        w = _open_writer(pipe, path, fmt)
    except LinkTypeError as e:
        print(f"ulnet peek: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"ulnet peek: error: {path}: cannot create: {e.strerror}", file=sys.stderr)
        return 2
    first = 0     # number (from 0) of the batch's first packet in the whole input
    try:
        for batch in pipe:
            first = pipe.seen - batch.n
            w.write_batch(batch)
    except LinkTypeError as e:
        print(f"ulnet peek: error: {path}: packet {first + e.row + 1} has link type {e.linktype}, the pcap output "
              f"has link type {e.file_linktype}: a pcap file holds one link type; write pcapng "
              f"(--write-format pcapng or OUT.pcapng)", file=sys.stderr)
        w.close()
        if path != "-":
            os.remove(path)
        return 1
    except OSError as e:
        print(f"ulnet peek: error: {path}: write failed: {e.strerror}", file=sys.stderr)
        return 1
    w.close()
    if w.cut:
        print(f"ulnet peek: warning: {path}: {w.cut} packets longer than the snap length {w.snaplen} "
              f"were cut to it", file=sys.stderr)
    return 0
