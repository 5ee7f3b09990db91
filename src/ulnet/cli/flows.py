"""ulnet flows -- flow records with NFStream's field names.

SYNOPSIS
    ulnet flows [-r] FILE... [--format csv|jsonl|parquet] [-o OUT] [--idle-timeout S]
                [--active-timeout S] [--close-timeout S] [--max-flows N] [--statistics] [-c N]
                [-F FILE | EXPRESSION]
    ulnet flows -i IFACE [...] [EXPRESSION]

    EXPRESSION (the words after the files, or -F FILE) is a tcpdump filter
    compiled by libpcap: flows are built from the packets it accepts only
    (docs/filter.md). ``ulnet flows -r x.pcap 'udp and port 53'``.

DESCRIPTION
    Reads the capture files in order as one continuous stream, tracks
    bidirectional flows (see docs/flow.md) and writes one record per flow as
    it ends: CSV (header line, default), JSON lines, or Parquet (needs -o).
    Standard output unless -o is given. Every flow is written exactly once:
    at its expiry, at the end of input, or at SIGINT/SIGTERM (the open flows
    are exported with expiration_id -1 before exit).

    Fields: id, expiration_id, src_ip, src_port, dst_ip, dst_port, protocol,
    ip_version, vlan_id, bidirectional_first_seen_ms,
    bidirectional_last_seen_ms, bidirectional_duration_ms,
    bidirectional_packets, bidirectional_bytes, src2dst_packets,
    src2dst_bytes, dst2src_packets, dst2src_bytes, application_name,
    application_category_name, requested_server_name, tcp_state, and per
    direction the TCP flag counters {src2dst,dst2src}_{fin,syn,rst,psh,ack,
    urg,ece,cwr}_packets. With --statistics also min/mean/stddev/max of packet
    size (ps) and inter-arrival time (piat_ms) per direction and both ways
    (stddev is the sample standard deviation).

    expiration_id: -1 end of input or shutdown, 0 idle timeout, 1 active
    timeout (NFStream's values), 2 TCP end (RST or FIN both ways, then the
    close timeout or a new SYN), 3 evicted because the table was full.

    -i IFACE reads a live interface through the same TPACKET_V3 ring as
    ``ulnet capture`` (-B KiB; blocks retired after 100 ms at most): a
    record is written when its flow ends, on the packet clock.

    A progress bar is drawn on standard error when it is a terminal.
"""

from __future__ import annotations

import argparse
import signal
import sys

from ulnet.batch import FLOW_BATCH
from ulnet.cli.common import (add_input_arguments, filter_error, inputs_of, open_live, print_stats, ranged,
                              report_problems)
from ulnet.filter import FilterError
from ulnet.cli.progress import progress_bar
from ulnet.cli.signals import Terminated, held, stop_signals
from ulnet.flow import FlowTable, DEFAULT_IDLE, DEFAULT_ACTIVE, DEFAULT_CLOSE, DEFAULT_MAX_FLOWS
from ulnet.flow.records import fields, to_columns
from ulnet.inspect import Inspector, DEFAULT_MAX_DPI
from ulnet.pipeline import Pipeline
from ulnet.sinks.flows import FlowWriter, FORMATS
from ulnet.sources import CaptureError



def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (0 < v <= 10 * 365 * 86400):
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 10 years: {text}")
    return v


_max_flows = ranged(int, 1, 1 << 28, "an integer")
_dpi = ranged(int, 1, 15, "an integer")


def add_arguments(p):
    add_input_arguments(p, FLOW_BATCH)
    p.add_argument("--format", choices=FORMATS, default="csv", help="record format (default csv)")
    p.add_argument("-o", dest="output", metavar="OUT", help="output file (default: standard output)")
    p.add_argument("--idle-timeout", type=_seconds, default=DEFAULT_IDLE, metavar="S",
                   help=f"end a flow after S seconds without packets (default {DEFAULT_IDLE:g})")
    p.add_argument("--active-timeout", type=_seconds, default=DEFAULT_ACTIVE, metavar="S",
                   help=f"end a flow S seconds after its first packet (default {DEFAULT_ACTIVE:g})")
    p.add_argument("--close-timeout", type=_seconds, default=DEFAULT_CLOSE, metavar="S",
                   help=f"end a closed TCP flow after S seconds without packets (default {DEFAULT_CLOSE:g})")
    p.add_argument("--max-flows", type=_max_flows, default=DEFAULT_MAX_FLOWS, metavar="N",
                   help=f"flow table capacity; when full the least recently seen flow is exported "
                        f"(default {DEFAULT_MAX_FLOWS})")
    p.add_argument("--statistics", action="store_true",
                   help="add packet size and inter-arrival statistics per direction")
    p.add_argument("--max-dpi", type=_dpi, default=DEFAULT_MAX_DPI, metavar="N",
                   help=f"payload packets inspected per direction (default {DEFAULT_MAX_DPI})")
    p.add_argument("--no-inspect", action="store_true", help="no application inspection (faster)")
    p.add_argument("--stats", action="store_true", help="print the counters to standard error at the end")


def run(args) -> int:
    inputs = inputs_of(args, "flows")
    if inputs is None:
        return 2
    live = open_live(args, "flows") if args.interface else None
    if args.interface and live is None:
        return 2
    table = FlowTable(args.max_flows, args.idle_timeout, args.active_timeout, args.close_timeout,
                      statistics=args.statistics)
    if live is not None:
        table.drain_rows = 1        # live: a record appears when its flow ends
    insp = None if args.no_inspect else Inspector(args.max_dpi)
    pipe = Pipeline(inputs, batch_size=args.batch_size, count=args.count, flows=table, inspector=insp, live=live,
                    filter=args.filter)
    with stop_signals():
        return _records(args, pipe, live, inputs)


def _records(args, pipe: Pipeline, live, inputs) -> int:
    try:
        pipe.open_all()
        writer = FlowWriter(args.output, args.format, fields(args.statistics))
    except FilterError as e:
        return filter_error(e, "flows")
    except (CaptureError, ValueError, OSError) as e:
        print(f"ulnet flows: error: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Terminated):
        return 130      # stopped before the first packet: no flow to export
    status = 0
    with progress_bar(inputs, enabled=False if live is not None else None) as update:
        try:
            for _ in pipe:
                with held():
                    # a signal waits until the chunks taken are written:
                    # it cannot cut a record or lose the chunks behind it
                    for chunk in pipe.take_ended():
                        writer.write(to_columns(chunk))
                        if live is not None:
                            writer._fh.flush()     # live: a record appears when its flow ends
                update(pipe.progress())
        except (KeyboardInterrupt, Terminated):
            status = 130
        finally:
            try:
                with held():       # the last records: a second signal waits for them
                    signal.signal(signal.SIGTERM, signal.SIG_IGN)
                    for chunk in pipe.finish_flows():
                        writer.write(to_columns(chunk))
                    writer.close()
            except Terminated:             # came before SIGTERM was ignored: the records are out
                status = 130
    report_problems(pipe.problems, "flows")
    if args.stats:
        print_stats(pipe.counters)
    if status:
        return status
    return 1 if pipe.failed else 0
