"""ulnet stats -- traffic per application and per category (ndpiReader's summary).

SYNOPSIS
    ulnet stats [-r] FILE... [--format text|json] [--plot OUT.png] [--top N] [--bin S]
                [--idle-timeout S] [--active-timeout S] [--max-flows N] [--max-dpi N] [-c N]
                [-F FILE | EXPRESSION]

    EXPRESSION (the words after the files, or -F FILE) is a tcpdump filter
    compiled by libpcap: only the packets it accepts are counted
    (docs/filter.md).

DESCRIPTION
    Reads the capture files in order as one stream, tracks flows and
    inspects them as ``ulnet flows`` does, and prints what ndpiReader's
    summary gives: for each application and each category, the flows, the
    packets and the bytes (on the wire, both directions), largest first,
    with totals and how the applications were decided (payload, IP
    protocol, port, not at all). Per-application figures come from the flow
    records, so they add up to what ``ulnet flows`` reports.

    --plot OUT.png draws traffic by application over time: a stacked area
    of the bit rate of the --top N applications (default 8) and the rest,
    in time bins of --bin S seconds (default: chosen so the capture spans
    at most 512 bins; a given width doubles as needed to stay within 16384
    bins). Each packet counts for the application its flow
    had once that packet was inspected, with the port guess for flows not
    (yet) decided: the few packets before a flow's decision count as
    Unknown or as the port guess, while the tables count whole flows.

    --format json writes one JSON object: inputs, packets_read, packets,
    bytes, flows, first_seen_ms, last_seen_ms, confidence (flows per
    confidence), applications and categories (lists of {name, category,
    flows, packets, bytes}, largest first), and timeline ({start_ms,
    bin_ms, bytes: {application: [bytes per bin]}}).

    SIGINT or SIGTERM stops reading: the flows open then are ended as at
    the end of input, the summary covers every packet read so far, a line
    on standard error says so, and the exit status is 130.

    Everything is computed per batch with numpy (the flow stage's flow
    entry and the inspector's application per packet, binned with
    np.add.at; flow records aggregated with np.bincount): no Python per
    packet or per flow.
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np

from ulnet.batch.columns import H_DPORT, H_PROTO, H_SPORT
from ulnet.batch import FLOW_BATCH
from ulnet.cli.common import add_input_arguments, filter_error, inputs_of, report_problems
from ulnet.filter import FilterError
from ulnet.cli.flows import _dpi, _max_flows, _seconds
from ulnet.cli.progress import progress_bar
from ulnet.cli.signals import Terminated, held, stop_signals
from ulnet.flow import DEFAULT_ACTIVE, DEFAULT_IDLE, DEFAULT_MAX_FLOWS, FlowTable
from ulnet.flow import _kernels as FK
from ulnet.flow.records import CONFIDENCE_NAMES, app_ids
from ulnet.inspect import DEFAULT_MAX_DPI, Inspector
from ulnet.inspect import ports as _ports
from ulnet.inspect.registry import CATEGORIES, NAMES
from ulnet.pipeline import Pipeline
from ulnet.sources import CaptureError


MAX_BINS = 512
HARD_MAX_BINS = 1 << 14      # even with --bin: a capture spanning years must not take all memory


def add_arguments(p):
    add_input_arguments(p, FLOW_BATCH)
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    p.add_argument("--plot", metavar="OUT.png", help="draw traffic by application over time into this PNG file")
    p.add_argument("--top", type=int, default=8, metavar="N",
                   help="applications drawn one by one in the plot, the rest as 'other' (default 8)")
    p.add_argument("--bin", type=_seconds, metavar="S", help="time bin of the timeline in seconds (default: auto)")
    p.add_argument("--idle-timeout", type=_seconds, default=DEFAULT_IDLE, metavar="S",
                   help=f"end a flow after S seconds without packets (default {DEFAULT_IDLE:g})")
    p.add_argument("--active-timeout", type=_seconds, default=DEFAULT_ACTIVE, metavar="S",
                   help=f"end a flow S seconds after its first packet (default {DEFAULT_ACTIVE:g})")
    p.add_argument("--max-flows", type=_max_flows, default=DEFAULT_MAX_FLOWS, metavar="N",
                   help=f"flow table capacity (default {DEFAULT_MAX_FLOWS})")
    p.add_argument("--max-dpi", type=_dpi, default=DEFAULT_MAX_DPI, metavar="N",
                   help=f"payload packets inspected per direction (default {DEFAULT_MAX_DPI})")


# ---- accumulators -------------------------------------------------------------------

class Totals:
    """Flows, packets and bytes per application id, from ended flows."""

    def __init__(self):
        n = len(NAMES)
        self.flows = np.zeros(n, dtype=np.int64)
        self.packets = np.zeros(n, dtype=np.int64)
        self.bytes = np.zeros(n, dtype=np.int64)
        self.confidence = np.zeros(len(CONFIDENCE_NAMES), dtype=np.int64)
        self.first_ns: int | None = None
        self.last_ns: int | None = None

    def add(self, chunk) -> None:
        F = chunk.F
        if not len(F):
            return
        app, conf = app_ids(chunk)
        n = len(NAMES)
        self.flows += np.bincount(app, minlength=n)
        self.packets += np.bincount(app, weights=F[:, FK.F_PK0] + F[:, FK.F_PK1], minlength=n).astype(np.int64)
        self.bytes += np.bincount(app, weights=F[:, FK.F_BY0] + F[:, FK.F_BY1], minlength=n).astype(np.int64)
        self.confidence += np.bincount(conf, minlength=len(CONFIDENCE_NAMES))
        lo, hi = int(F[:, FK.F_FIRST].min()), int(F[:, FK.F_LAST].max())
        self.first_ns = lo if self.first_ns is None else min(self.first_ns, lo)
        self.last_ns = hi if self.last_ns is None else max(self.last_ns, hi)


class Timeline:
    """Bytes per (application, time bin) from packets, batch by batch. The
    bin width doubles (merging pairs of bins) whenever the capture would
    span more than MAX_BINS (HARD_MAX_BINS when a width was given)."""

    def __init__(self, bin_ns: int | None = None):
        self.fixed = bin_ns is not None
        self.width = bin_ns or 1_000_000_000
        self.t0: int | None = None
        self.bytes = np.zeros((len(NAMES), 0), dtype=np.int64)

    def _coarsen(self):
        b = self.bytes
        if b.shape[1] % 2:
            b = np.concatenate([b, np.zeros((b.shape[0], 1), dtype=b.dtype)], axis=1)
        self.bytes = b[:, 0::2] + b[:, 1::2]
        self.width *= 2

    def add(self, ts: np.ndarray, app: np.ndarray, wirelen: np.ndarray) -> None:
        if not len(ts):
            return
        lo, hi = int(ts.min()), int(ts.max())
        if self.t0 is None:
            self.t0 = lo - lo % self.width
        if lo < self.t0:                                  # out of order: room before the start
            limit = HARD_MAX_BINS if self.fixed else MAX_BINS
            while (self.t0 - lo) // self.width + self.bytes.shape[1] >= limit:
                self._coarsen()
            k = -(-(self.t0 - lo) // self.width)
            self.bytes = np.concatenate([np.zeros((self.bytes.shape[0], k), dtype=np.int64), self.bytes], axis=1)
            self.t0 -= k * self.width
        limit = HARD_MAX_BINS if self.fixed else MAX_BINS
        while (hi - self.t0) // self.width >= limit:
            self._coarsen()
        need = (hi - self.t0) // self.width + 1
        if need > self.bytes.shape[1]:
            grow = max(need, 2 * self.bytes.shape[1], 16) - self.bytes.shape[1]
            self.bytes = np.concatenate([self.bytes, np.zeros((self.bytes.shape[0], grow), dtype=np.int64)], axis=1)
        np.add.at(self.bytes, (app, (ts - self.t0) // self.width), wirelen.astype(np.int64))

    def used(self) -> np.ndarray:
        cols = np.flatnonzero(self.bytes.any(axis=0))
        return self.bytes[:, :cols[-1] + 1] if len(cols) else self.bytes[:, :0]


def packet_apps(batch, insp: Inspector) -> tuple[np.ndarray, np.ndarray]:
    """(mask of packets in a flow, application per packet): the flow's
    application after the packet, or the port guess while undecided (from
    the client's side: a reply's destination port is the client's)."""
    n = batch.n
    inflow = batch.flow_entry[:n] >= 0
    app = insp.app[:n].copy()
    undecided = inflow & (app == 0)
    if undecided.any():
        h = batch.hdr[:n]
        rev = batch.flow_dir[:n] == 1
        sp, dp = h[:, H_SPORT], h[:, H_DPORT]
        sport, dport = np.where(rev, dp, sp), np.where(rev, sp, dp)
        has = (sport >= 0) & (dport >= 0)
        g = _ports.guess(h[:, H_PROTO][undecided], np.where(has, sport, 0)[undecided],
                         np.where(has, dport, 0)[undecided])
        app[undecided] = g
    return inflow, app


# ---- the run ------------------------------------------------------------------------------

def collect(inputs, args):
    """Run the pipeline; returns (Totals, Timeline, Pipeline, interrupted).
    Ctrl-C stops reading: the flows open then are ended as at end of input,
    so the summary covers every packet read up to that point."""
    table = FlowTable(args.max_flows, args.idle_timeout, args.active_timeout)
    insp = Inspector(args.max_dpi)
    pipe = Pipeline(inputs, batch_size=args.batch_size, count=args.count, flows=table, inspector=insp,
                    filter=args.filter)
    pipe.open_all()
    totals = Totals()
    tl = Timeline(int(args.bin * 1e9) if args.bin else None)
    interrupted = False
    with progress_bar(inputs) as update:
        try:
            for b in pipe:
                with held():        # a signal waits until the batch and its ended flows are counted
                    inflow, app = packet_apps(b, insp)
                    n = b.n
                    tl.add(b.ts[:n][inflow], app[inflow], b.wirelen[:n][inflow])
                    for chunk in pipe.take_ended():
                        totals.add(chunk)
                update(pipe.progress())
        except (KeyboardInterrupt, Terminated):
            interrupted = True
        try:
            with held():            # a second signal waits for the flows still open, then is moot
                for chunk in pipe.finish_flows():
                    totals.add(chunk)
        except (KeyboardInterrupt, Terminated):
            interrupted = True
    return totals, tl, pipe, interrupted


def summary(inputs, totals: Totals, tl: Timeline, packets_read: int) -> dict:
    order = np.argsort(-totals.bytes, kind="stable")
    apps = [{"name": NAMES[i], "category": CATEGORIES[i], "flows": int(totals.flows[i]),
             "packets": int(totals.packets[i]), "bytes": int(totals.bytes[i])}
            for i in order.tolist() if totals.flows[i]]
    cats: dict[str, list[int]] = {}
    for a in apps:
        c = cats.setdefault(a["category"], [0, 0, 0])
        c[0] += a["flows"]
        c[1] += a["packets"]
        c[2] += a["bytes"]
    categories = [{"name": k, "flows": v[0], "packets": v[1], "bytes": v[2]}
                  for k, v in sorted(cats.items(), key=lambda kv: (-kv[1][2], kv[0]))]
    used = tl.used()
    timeline = {"start_ms": (tl.t0 // 1_000_000) if tl.t0 is not None else None, "bin_ms": tl.width / 1e6,
                "bytes": {NAMES[i]: used[i].tolist() for i in np.flatnonzero(used.any(axis=1)).tolist()}}
    return {
        "inputs": list(inputs),
        "packets_read": int(packets_read),
        "packets": int(totals.packets.sum()),
        "bytes": int(totals.bytes.sum()),
        "flows": int(totals.flows.sum()),
        "first_seen_ms": totals.first_ns // 1_000_000 if totals.first_ns is not None else None,
        "last_seen_ms": totals.last_ns // 1_000_000 if totals.last_ns is not None else None,
        "confidence": {name: int(v) for name, v in zip(CONFIDENCE_NAMES, totals.confidence.tolist())},
        "applications": apps,
        "categories": categories,
        "timeline": timeline,
    }


def _size(n: float, unit: str = "B") -> str:
    for prefix in ("", "k", "M", "G", "T"):
        if abs(n) < 1000 or prefix == "T":
            return f"{n:.0f} {prefix}{unit}" if prefix == "" else f"{n:.1f} {prefix}{unit}"
        n /= 1000
    return f"{n:.1f} P{unit}"


def print_text(s: dict, out=None) -> None:
    from rich.console import Console
    from rich.table import Table
    console = Console(file=out or sys.stdout, width=None if (out or sys.stdout).isatty() else 110)
    dur = ((s["last_seen_ms"] - s["first_seen_ms"]) / 1000) if s["flows"] else 0.0
    conf = ", ".join(f"{k} {v}" for k, v in s["confidence"].items() if v)
    console.print(f"[bold]{', '.join(s['inputs'])}[/bold]", highlight=False)
    console.print(f"{s['packets_read']} packets read; {s['flows']} flows, {s['packets']} packets, "
                  f"{_size(s['bytes'])} over {dur:.1f} s; flows decided by {conf or 'nothing'}", highlight=False)
    total = max(s["bytes"], 1)
    for title, rows, with_cat in (("applications", s["applications"], True), ("categories", s["categories"], False)):
        t = Table(title=title, title_justify="left")
        t.add_column("application" if with_cat else "category")
        if with_cat:
            t.add_column("category")
        for col in ("flows", "packets", "bytes", "% bytes"):
            t.add_column(col, justify="right")
        for r in rows:
            cells = [r["name"]] + ([r["category"]] if with_cat else [])
            cells += [str(r["flows"]), str(r["packets"]), str(r["bytes"]), f"{100 * r['bytes'] / total:.1f}"]
            t.add_row(*cells)
        console.print(t)


def plot(s: dict, path: str, top: int) -> None:
    """A stacked area of the bit rate per application over time."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
    from datetime import datetime, timezone

    tl = s["timeline"]
    series = {k: np.asarray(v, dtype=np.float64) for k, v in tl["bytes"].items()}
    ranked = sorted(series, key=lambda k: -series[k].sum())
    shown = ranked[:max(top, 1)]
    rest = ranked[len(shown):]
    nb = max((len(v) for v in series.values()), default=0)
    bin_s = tl["bin_ms"] / 1000
    layers, labels = [], []
    for k in shown:
        v = np.zeros(nb)
        v[:len(series[k])] = series[k]
        layers.append(v * 8 / bin_s)
        labels.append(k)
    if rest:
        v = np.zeros(nb)
        for k in rest:
            v[:len(series[k])] += series[k]
        layers.append(v * 8 / bin_s)
        labels.append(f"other ({len(rest)})")
    fig, ax = plt.subplots(figsize=(12, 5.5), dpi=100)
    if nb:
        start = (tl["start_ms"] or 0) / 1000
        times = [datetime.fromtimestamp(start + (k + 0.5) * bin_s, tz=timezone.utc) for k in range(nb)]
        colors = plt.get_cmap("tab10" if len(layers) <= 10 else "tab20").colors
        ax.stackplot(times, *layers, labels=labels, colors=colors[:len(layers)], step="mid", linewidth=0)
        loc = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(loc)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
        ax.set_xlim(times[0], times[-1]) if nb > 1 else None
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title="application")
    else:
        ax.text(0.5, 0.5, "no IP packets", ha="center", va="center", transform=ax.transAxes)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _size(v, "bit/s")))
    ax.set_ylabel("traffic (bit/s)")
    ax.set_xlabel(f"time (UTC), bins of {_bin_text(bin_s)}")
    names = ", ".join(s["inputs"])
    if len(names) > 80:
        names = names[:77] + "..."
    ax.set_title(f"{names}: {s['flows']} flows, {_size(s['bytes'])}", loc="left")
    ax.grid(True, alpha=0.3)
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _bin_text(sec: float) -> str:
    if sec >= 1 and math.isclose(sec, round(sec)):
        return f"{int(round(sec))} s"
    return f"{sec * 1000:g} ms" if sec < 1 else f"{sec:g} s"


def run(args) -> int:
    if args.interface:
        print("ulnet stats: error: reads capture files (use ulnet flows -i for a live interface)", file=sys.stderr)
        return 2
    inputs = inputs_of(args, "stats")
    if inputs is None:
        return 2
    if args.top < 1:
        print("ulnet stats: error: --top must be at least 1", file=sys.stderr)
        return 2
    try:
        with stop_signals():
            totals, tl, pipe, interrupted = collect(inputs, args)
    except FilterError as e:
        return filter_error(e, "stats")
    except (CaptureError, ValueError, OSError) as e:
        print(f"ulnet stats: error: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Terminated):
        return 130          # before the first packet, or a signal held in the final flush
    s = summary(inputs, totals, tl, pipe.seen)
    if args.plot:
        try:
            plot(s, args.plot, args.top)
        except ImportError:
            print("ulnet stats: error: --plot needs matplotlib (pip install 'ulnet[plot]')", file=sys.stderr)
            return 2
        except OSError as e:
            print(f"ulnet stats: error: {args.plot}: {e}", file=sys.stderr)
            return 2
    if args.format == "json":
        json.dump(s, sys.stdout)
        sys.stdout.write("\n")
    else:
        print_text(s)
    report_problems(pipe.problems, "stats")
    if interrupted:
        print(f"ulnet stats: interrupted after {pipe.seen} packets: the summary covers those", file=sys.stderr)
        return 130
    return 1 if pipe.failed else 0
