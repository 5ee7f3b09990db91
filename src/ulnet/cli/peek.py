"""ulnet peek -- one line per packet.

SYNOPSIS
    ulnet peek [-r] FILE... [-c N] [--format text|jsonl] [--stats] [--batch-size N]

DESCRIPTION
    Reads capture files in order and prints one line per packet. The text
    format follows libpeak's peek(1):

      time: Mon 2009-10-05 06:06:07.492060, flow: 0, ip_type: 17, ip_len: 62, src: 10.10.1.4:56166, dst: 10.10.1.1:53, app: dns

    time is UTC with microseconds; ip_type is the IP protocol of the
    innermost header; ip_len its IP length; ports are shown for TCP, UDP and
    SCTP; IPv6 endpoints print as [addr]:port. A frame without IP prints
    ``time: ..., non-ip: ethertype 0x0806, wire_len: 60``; a packet that
    could not be decoded prints its error reason. Pending: ``flow`` and
    ``app`` come with the flow and inspection stages; until then they print
    ``-``.

    --format jsonl writes one JSON object per packet: ts (seconds, float),
    wire_len, cap_len, linktype, ip_version, src_ip, dst_ip, protocol,
    src_port, dst_port, vlan_id, ip_len, tcp_flags, icmp_type, icmp_code,
    frag_offset, more_fragments, tunnel, payload_len, flow_id,
    application_name, error (null or the dotted reason).

    --stats prints every non-zero counter (dotted name, value, meaning) to
    standard error at the end.
"""

from __future__ import annotations

import sys

from ulnet.cli.common import add_input_arguments, inputs_of, print_stats, report_problems
from ulnet.pipeline import Pipeline
from ulnet.sinks.text import format_text, format_jsonl
from ulnet.sources import CaptureError

HELP = "print one line per packet (libpeak's peek)"


def add_arguments(p):
    add_input_arguments(p)
    p.add_argument("--format", choices=("text", "jsonl"), default="text", help="output format")
    p.add_argument("--stats", action="store_true", help="print the counters to standard error at the end")


def run(args) -> int:
    inputs = inputs_of(args, "peek")
    if inputs is None:
        return 2
    fmt = format_jsonl if args.format == "jsonl" else format_text
    pipe = Pipeline(inputs, batch_size=args.batch_size, count=args.count)
    try:
        pipe.open_all()
    except CaptureError as e:
        print(f"ulnet peek: error: {e}", file=sys.stderr)
        return 2
    out = sys.stdout
    for batch in pipe:
        out.write(fmt(batch))
    out.flush()
    report_problems(pipe.problems, "peek")
    if args.stats:
        print_stats(pipe.counters)
    return 1 if pipe.failed else 0
