"""ulnet run -- enforce a rules file offline, on capture files.

SYNOPSIS
    ulnet run --rules RULES --in NAME=FILE [--in NAME=FILE ...] --out NAME=FILE [--out NAME=FILE ...]
              [--stats-json FILE] [--log FILE] [--batch-size N] [-q] [-F FILE | EXPRESSION]

    EXPRESSION (trailing words, or -F FILE): a tcpdump filter compiled by
    libpcap; only the packets it accepts reach the rules (docs/filter.md).

DESCRIPTION
    Each --in binds a port NAME to a capture file its packets come in from;
    each --out binds a port NAME to the capture file (pcap, or pcapng when
    FILE ends in .pcapng) written with the packets that leave by it. Inputs
    are merged by timestamp. The policy (docs/rules.md) decides each flow;
    pass sends a packet to the other side (with two ports, the other one;
    with a single output, that output), route/balance to the named port,
    block drops it, reject drops it and writes a TCP RST or ICMP unreachable
    towards its sender into the output of the port it came in on, police
    drops above its rate, shape delays (output timestamps are the shaper's
    departure times on the packet clock), capture writes the flow's packets
    to its file, count and log report.

    The rules are checked before any file is opened for writing or any
    packet read: an error in them, a port they name that is not bound, an
    input that cannot be opened or an output that cannot be created stops
    the run with a message and nothing is applied.

    At the end, a table of rules with packets, bytes and flows goes to
    standard error (-q: not), then for each rule with ``count by app`` its
    packets and bytes per application, for each rule with ``count by
    host`` its busiest server names (at most 10; FILE has them all), and with
    --stats-json to FILE as JSON (rules, action arcs, policy counters,
    packets per output, count_by_app, count_by_host).
    --log FILE writes the log lines of rules with ``log`` (default:
    standard error).

EXIT STATUS
    0 done, 1 the rules have errors or an input could not be read to its end,
    2 a usage error or a file that cannot be opened.
"""

from __future__ import annotations

import json
import sys

from ulnet.addr import to_text
from ulnet.batch import ENFORCE_BATCH
from ulnet.batch.columns import H_IP_VERSION, H_PROTO, H_SPORT, H_DPORT
from ulnet.cli.common import (add_filter_file_argument, batch_size, filter_error, filter_of, policy_errors,
                              print_rule_table, print_splits)
from ulnet.filter import FilterError
from ulnet.policy import detector_names
from ulnet.policy.check import check
from ulnet.policy.errors import PolicyError
from ulnet.policy.parse import parse
from ulnet.sources import CaptureError



def _binding(text: str):
    name, eq, path = text.partition("=")
    if not eq or not name or not path:
        raise ValueError(text)
    return name, path


def add_arguments(p):
    p.add_argument("--rules", required=True, metavar="RULES", help="rules file (docs/rules.md)")
    p.add_argument("--in", dest="inputs", action="append", default=[], metavar="NAME=FILE",
                   help="bind port NAME to an input capture (repeat)")
    p.add_argument("--out", dest="outputs", action="append", default=[], metavar="NAME=FILE",
                   help="bind port NAME to an output capture (repeat)")
    p.add_argument("--stats-json", metavar="FILE", help="write per-rule packets, bytes, flows and counters as JSON")
    p.add_argument("--log", metavar="FILE", help="where log lines go (default: standard error)")
    p.add_argument("--batch-size", type=batch_size, default=ENFORCE_BATCH, metavar="N",
                   help=f"packets per batch (default {ENFORCE_BATCH}); output does not depend on it")
    p.add_argument("-q", dest="quiet", action="store_true", help="no rule table at the end")
    add_filter_file_argument(p)
    p.add_argument("expression", nargs="*", metavar="EXPRESSION",
                   help="tcpdump filter expression: only the packets it accepts reach the rules (docs/filter.md)")


def _bindings(items, what):
    out = {}
    for text in items:
        try:
            name, path = _binding(text)
        except ValueError:
            raise SystemExit(f"ulnet run: error: --{what} {text}: expected NAME=FILE") from None
        if name in out:
            raise SystemExit(f"ulnet run: error: --{what} {name} given twice")
        out[name] = path
    return out


def _log_line(fh):
    def log(run, b, row, rule, kind, tags):
        r = run.compiled.rules[rule]
        h = b.hdr[row]
        ver = int(h[H_IP_VERSION])
        a = b.addr[row]
        src = to_text(int(a[0]), int(a[1]), ver)
        dst = to_text(int(a[2]), int(a[3]), ver)
        sp, dp = int(h[H_SPORT]), int(h[H_DPORT])
        if sp >= 0:
            src, dst = (f"[{src}]" if ver == 6 else src) + f":{sp}", (f"[{dst}]" if ver == 6 else dst) + f":{dp}"
        t = int(b.ts[row])
        tagnames = [n for k, n in enumerate(run.compiled.tags) if (tags >> k) & 1]
        when = "decided" if kind == 0 else "decided again (application known)"
        print(f"{t // 1_000_000_000}.{t % 1_000_000_000:09d} flow {int(b.flow_id[row])} proto {int(h[H_PROTO])} "
              f"{src} -> {dst} in on {run.ports[int(b.port[row])]}: {when} by line {r.line} ({r.text})"
              + (f" tags {','.join(tagnames)}" if tagnames else ""), file=fh)
    return log


def run(args) -> int:
    inputs = _bindings(args.inputs, "in")
    outputs = _bindings(args.outputs, "out")
    if not inputs:
        print("ulnet run: error: no input: give --in NAME=FILE", file=sys.stderr)
        return 2
    if not outputs:
        print("ulnet run: error: no output: give --out NAME=FILE", file=sys.stderr)
        return 2
    try:
        with open(args.rules, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        print(f"ulnet run: error: {args.rules}: cannot read: {getattr(e, 'strerror', None) or e}", file=sys.stderr)
        return 2
    apps, cats = detector_names()          # application ids must be the detector's own
    ports = list(dict.fromkeys(list(inputs) + list(outputs)))
    try:
        checked = check(parse(text, args.rules), text, args.rules, apps, cats, ports)
    except PolicyError as e:
        return policy_errors(e, "ulnet run", args.rules)
    for d in checked.diagnostics:
        print(d.render(), file=sys.stderr)
    appcat = None
    if apps and cats:
        try:
            from ulnet.inspect import registry
            appcat = [cats.index(c) if c in cats else 0 for c in registry.CATEGORIES]
        except (ImportError, AttributeError):
            appcat = None
    flt = filter_of(args.expression, args.filter_file, "run")
    if flt is False:
        return 2
    logfh = sys.stderr
    from ulnet.policy.enforce import Enforcer
    try:
        if args.log:
            logfh = open(args.log, "w")
        run_ = Enforcer(checked, inputs, outputs, batch_size=args.batch_size, app_names=apps,
                        app_categories=appcat, log=_log_line(logfh) if any(r.log for r in checked.rules) else None,
                        filter=flt)
    except CaptureError as e:
        print(f"ulnet run: error: {e}", file=sys.stderr)
        return 2
    except FilterError as e:
        return filter_error(e, "run")
    except OSError as e:
        print(f"ulnet run: error: {e.filename}: cannot create: {e.strerror}", file=sys.stderr)
        return 2
    for k, p in enumerate(run_.ports):
        if p in inputs and run_.peer[k] < 0:
            print(f"ulnet run: warning: port {p} has no other side ({len(run_.ports)} ports): its passed flows "
                  f"without route or balance are dropped (drop.no_output)", file=sys.stderr)
    run_.run()
    if logfh is not sys.stderr:
        logfh.close()
    for line in run_.problems:
        print(f"ulnet run: warning: {line}", file=sys.stderr)
    st = run_.stats()
    if not args.quiet:
        print_rule_table(st["rules"])
        print_splits(st["rules"], st, more=" (--stats-json has them all)")
        arcs = ", ".join(f"{k} {v}" for k, v in st["actions"].items() if v)
        print(f"packets {st['packets']}: {arcs}", file=sys.stderr)
    if args.stats_json:
        with open(args.stats_json, "w") as f:
            json.dump(st, f, indent=1)
            f.write("\n")
    return 1 if run_.failed else 0
