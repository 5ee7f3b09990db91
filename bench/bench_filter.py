"""Benchmark: tcpdump filter expressions, ulnet against tcpdump on one capture.

    .venv/bin/python bench/bench_filter.py [CAPTURE] [--runs N] [--expr 'tcp port 80']

For each expression: ``ulnet peek CAPTURE -w /dev/null EXPR`` against
``tcpdump -r CAPTURE -w /dev/null EXPR`` (wall time, median of N runs, the
file in the page cache), as a ratio, also with ulnet's start-up time (the
same command on samples/sample.pcap: Python, numba's cached kernels,
libpcap) taken off; and in process, the filter kernel
alone (libpcap's program run over every batch) in ns per packet. Writes
bench/out/filter.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
EXPRS = ["tcp port 80", "udp and port 53", "tcp[tcpflags] & tcp-syn != 0"]


def _capture_default() -> Path:
    for d in (ROOT / "bench" / "out", ROOT.parent / "main" / "bench" / "out"):
        p = d / "corpus-2000000.pcap"
        if p.exists():
            return p
    raise SystemExit("no bench/out/corpus-2000000.pcap: build it with bench/bench_decode.py")


def _wall(argv: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def _in_process(path: Path, expr: str) -> dict:
    import numpy as np
    from ulnet.batch import PacketBatch
    from ulnet.filter import Filter
    from ulnet.sources import open_capture
    f = Filter(expr)
    f.program(1)
    b = PacketBatch(4096)
    r = open_capture(str(path))
    n_all = kept = 0
    t_read = t_filter = 0.0
    while True:
        t0 = time.perf_counter()
        n = r.fill(b)
        t1 = time.perf_counter()
        if not n:
            break
        kept += int(np.count_nonzero(f.mask(b, n)))
        t_filter += time.perf_counter() - t1
        t_read += t1 - t0
        n_all += n
    r.close()
    return {"packets": n_all, "kept": kept, "filter_ns_per_packet": t_filter / n_all * 1e9,
            "read_ns_per_packet": t_read / n_all * 1e9}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture", nargs="?", type=Path)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--expr", action="append")
    a = ap.parse_args()
    cap = a.capture or _capture_default()
    tcpdump = shutil.which("tcpdump")
    if not tcpdump:
        raise SystemExit("tcpdump missing")
    subprocess.run(["cat", str(cap)], stdout=subprocess.DEVNULL, check=True)     # page cache
    ulnet = [sys.executable, "-m", "ulnet.cli.main"]
    tiny = ROOT / "samples" / "sample.pcap"
    startup = statistics.median(_wall(ulnet + ["peek", str(tiny), "-w", "/dev/null", "tcp"]) for _ in range(a.runs))
    rows = []
    for expr in a.expr or EXPRS:
        u = [_wall(ulnet + ["peek", str(cap), "-w", "/dev/null", expr]) for _ in range(a.runs)]
        t = [_wall([tcpdump, "-r", str(cap), "-w", "/dev/null", expr]) for _ in range(a.runs)]
        ip = _in_process(cap, expr)
        row = {"expr": expr, "ulnet_s": statistics.median(u), "tcpdump_s": statistics.median(t), **ip}
        row["ratio"] = row["ulnet_s"] / row["tcpdump_s"]
        row["ulnet_startup_s"] = startup
        row["ratio_without_startup"] = max(row["ulnet_s"] - startup, 0.0) / row["tcpdump_s"]
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "filter.json").write_text(json.dumps({"capture": str(cap), "runs": a.runs, "rows": rows}, indent=1) + "\n")
    print(f"capture: {cap.name}, median of {a.runs} runs; ulnet start-up {startup:.2f} s\n")
    print("| expression | kept / packets | ulnet peek -w s | tcpdump -w s | ratio | ratio without ulnet's start-up "
          "| filter kernel ns/pkt | read ns/pkt |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| `{r['expr']}` | {r['kept']} / {r['packets']} | {r['ulnet_s']:.2f} | {r['tcpdump_s']:.2f} | "
              f"{r['ratio']:.2f} | {r['ratio_without_startup']:.2f} | {r['filter_ns_per_packet']:.1f} | "
              f"{r['read_ns_per_packet']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
