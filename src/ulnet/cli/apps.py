"""ulnet apps -- the applications inspection can report.

SYNOPSIS
    ulnet apps [--format text|json]

DESCRIPTION
    Lists the detector registry (ulnet.inspect.registry) in the order its
    matchers run: the application name (nDPI's spelling), its category
    (nDPI's category name), how it is recognised (``tcp``, ``udp`` or
    ``both``: a payload matcher on that transport; ``ip N``: the IP
    protocol number; a row can have both, as IPSec: ``udp ip 50 ip 51``)
    and the ports tried as a last resort for flows no
    matcher decided (confidence ``port``).

    --format json writes one JSON array of objects with the keys ``id``,
    ``name``, ``category``, ``transport``, ``matcher`` (true when a payload
    matcher exists), ``ip`` (IP protocol numbers that decide it) and
    ``ports``. The text format is a table on a terminal
    and tab-separated columns otherwise.
"""

from __future__ import annotations

import json
import sys

from ulnet.inspect.registry import APPS



def add_arguments(p):
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")


def rows() -> list[dict]:
    out = []
    for i, a in enumerate(APPS, start=1):
        out.append({
            "id": i,
            "name": a.name,
            "category": a.category,
            "transport": f"ip {a.transport}" if isinstance(a.transport, int) else a.transport,
            "ip": [a.transport] if isinstance(a.transport, int) else list(a.ip),
            "matcher": a.matcher is not None,
            "ports": list(a.ports),
        })
    return out


def run(args) -> int:
    data = rows()
    if args.format == "json":
        json.dump(data, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table
        t = Table(title=f"{len(data)} applications", title_justify="left")
        for col, just in (("application", "left"), ("category", "left"), ("by", "left"), ("last-resort ports", "left")):
            t.add_column(col, justify=just)
        for r in data:
            by = r["transport"] if r["matcher"] or r["transport"].startswith("ip") else "port"
            by += "".join(f" ip {p}" for p in r["ip"] if not r["transport"].startswith("ip"))
            t.add_row(r["name"], r["category"], by, " ".join(map(str, r["ports"])))
        Console().print(t)
        return 0
    for r in data:
        by = r["transport"] + "".join(f" ip {p}" for p in r["ip"] if not r["transport"].startswith("ip"))
        sys.stdout.write(f"{r['name']}\t{r['category']}\t{by}\t{' '.join(map(str, r['ports']))}\n")
    return 0
