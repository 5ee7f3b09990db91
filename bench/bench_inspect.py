#!/usr/bin/env python3
"""Benchmark: `ulnet flows` with inspection against --no-inspect, and ndpiReader.

    .venv/bin/python bench/bench_inspect.py [--packets 2000000] [--out bench/out] [--repeat 3]
                                            [--cpu 1] [--worktree]

1. Uses the benchmark capture of bench_decode.py (built once with
   /work/shared/bench/make_corpus.py from the nDPI corpus, cached in --out:
   its helpers build and reuse it).
2. Runs, each as its own process pinned to one core (``taskset -c CPU``)
   under ``/usr/bin/time -v``, interleaved --repeat times (median kept):
     * ``ulnet flows X --format csv -o /dev/null``              (inspection on)
     * ``ulnet flows X --format csv -o /dev/null --no-inspect``
     * ``ndpiReader -i X -q -n 1`` when installed (flows + nDPI's DPI)
   after one warm-up run of each ulnet variant (numba compile cache filled).
3. Where inspection's time goes, in one process: the pipeline with and
   without the inspector, the inspection kernel (matchers + extractors) and
   the Python QUIC pass (Initial decryption) timed apart.
Target (issue 4): inspection on keeps >= 80% of the packets/s of
--no-inspect. Prints a Markdown table and writes OUT/inspect.md and
OUT/inspect.json.

ulnet runs from a snapshot of src/ulnet at git HEAD (OUT/src-REV, its own
NUMBA_CACHE_DIR) so edits in progress do not change the code mid-run;
--worktree snapshots the work tree's src/ instead.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from bench_decode import MAKE_CORPUS, CORPUS_DIR, build_corpus, warm_page_cache, log  # noqa: E402

T_RATIO = 0.80      # inspection keeps >= 80% of the no-inspection throughput
TIME_BIN = "/usr/bin/time"


def snapshot(out: Path, worktree: bool) -> tuple[Path, str]:
    """src/ulnet at HEAD (or the work tree) copied under OUT; returns the
    directory for PYTHONPATH and a description."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    if not worktree:
        dst = out / f"src-{head}"
        if not (dst / "src" / "ulnet" / "__init__.py").exists():
            tmp = out / f"src-{head}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            arch = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD", "src/ulnet"],
                                  capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(tmp)], input=arch, check=True)
            tmp.rename(dst)
        return dst / "src", f"{head} (git HEAD)"
    h = hashlib.sha256()
    for p in sorted((ROOT / "src" / "ulnet").rglob("*.py")):
        h.update(str(p.relative_to(ROOT)).encode() + b"\0" + p.read_bytes())
    tag = h.hexdigest()[:12]
    dst = out / f"src-worktree-{tag}"
    if not (dst / "src" / "ulnet" / "__init__.py").exists():
        shutil.copytree(ROOT / "src" / "ulnet", dst / "src" / "ulnet",
                        ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    return dst / "src", f"{head} + work tree src/ ({tag})"


def timed(cmd: list[str], env: dict, cpu: int) -> dict:
    """Run pinned to one core under /usr/bin/time -v: wall seconds and peak RSS (kB)."""
    full = ["taskset", "-c", str(cpu), TIME_BIN, "-v"] + cmd
    t0 = time.perf_counter()
    p = subprocess.run(full, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr[-2000:]}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    return {"wall_s": wall, "rss_kb": int(m[1]) if m else None}


SPLIT = r'''
import sys, time, json
import numpy as np
from ulnet.flow import FlowTable
from ulnet.inspect import Inspector
from ulnet.inspect import _kernels as K
from ulnet.pipeline import Pipeline
cap = sys.argv[1]
out = {}
for label, inspect in (("no_inspect", False), ("inspect", True)):
    insp = Inspector() if inspect else None
    spent = {"kernel": 0.0, "quic": 0.0}
    if insp is not None:
        kern, quicp = K.inspect_batch, insp._quic_names
        def k2(*a):
            t = time.perf_counter(); r = kern(*a); spent["kernel"] += time.perf_counter() - t; return r
        def q2(*a):
            t = time.perf_counter(); r = quicp(*a); spent["quic"] += time.perf_counter() - t; return r
        K.inspect_batch = k2
        insp._quic_names = q2
    pipe = Pipeline([cap], flows=FlowTable(), inspector=insp)
    t0 = time.perf_counter()
    n = 0
    for b in pipe:
        n += b.n
        pipe.take_ended()
    pipe.finish_flows()
    total = time.perf_counter() - t0
    if insp is not None:
        K.inspect_batch = kern
    c = pipe.counters
    from ulnet.counters import INDEX
    out[label] = {"packets": n, "seconds": total, "kernel_s": spent["kernel"], "quic_s": spent["quic"],
                  "inspected": int(c[INDEX["inspect.packets"]]), "decided": int(c[INDEX["inspect.decided"]]),
                  "quic_decrypted": int(c[INDEX["inspect.quic.decrypted"]]),
                  "quic_failed": int(c[INDEX["inspect.quic.failed"]])}
print(json.dumps(out))
'''


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cpu", type=int, default=1, help="core to pin every run to")
    ap.add_argument("--worktree", action="store_true", help="measure the work tree's src/ instead of HEAD")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    cap = build_corpus(args.out, args.packets, MAKE_CORPUS, CORPUS_DIR)
    src, desc = snapshot(args.out, args.worktree)
    env = dict(os.environ, PYTHONPATH=str(src), NUMBA_CACHE_DIR=str(src.parent / "numba-cache"))
    py = sys.executable
    ulnet = [py, "-m", "ulnet.cli.main", "flows", str(cap), "--format", "csv", "-o", "/dev/null"]
    variants = {"ulnet flows": ulnet, "ulnet flows --no-inspect": ulnet + ["--no-inspect"]}
    ndpi = shutil.which("ndpiReader")
    if ndpi:
        variants["ndpiReader -n 1"] = [ndpi, "-i", str(cap), "-q", "-n", "1"]
    else:
        log("ndpiReader not installed (apt-get install libndpi-bin): not measured")
    warm_page_cache(cap)
    for name in ("ulnet flows", "ulnet flows --no-inspect"):
        log(f"warm-up: {name}")
        timed(variants[name], env, args.cpu)
    runs: dict[str, list[dict]] = {k: [] for k in variants}
    for r in range(args.repeat):
        for name, cmd in variants.items():
            log(f"run {r + 1}/{args.repeat}: {name}")
            runs[name].append(timed(cmd, env, args.cpu))
    log("time split (in process)")
    p = subprocess.run(["taskset", "-c", str(args.cpu), py, "-c", SPLIT, str(cap)], env=env,
                       capture_output=True, text=True, check=True)
    split = json.loads(p.stdout.strip().splitlines()[-1])
    npk = split["inspect"]["packets"]
    res = {}
    for name, rs in runs.items():
        wall = statistics.median(x["wall_s"] for x in rs)
        res[name] = {"wall_s": wall, "packets_per_s": npk / wall, "rss_kb": max(x["rss_kb"] or 0 for x in rs),
                     "walls": [x["wall_s"] for x in rs]}
    on, off = res["ulnet flows"]["packets_per_s"], res["ulnet flows --no-inspect"]["packets_per_s"]
    ratio = on / off
    lines = [f"# Inspection benchmark ({npk} packets, {cap.name})", "",
             f"code: {desc}; one core (taskset -c {args.cpu}); median of {args.repeat} interleaved runs; "
             f"end to end (process start, compile cache warm, read, decode, flows, CSV to /dev/null)", "",
             "| run | wall (s) | packets/s | peak RSS (MB) | vs --no-inspect |", "|---|---:|---:|---:|---:|"]
    for name, v in res.items():
        lines.append(f"| {name} | {v['wall_s']:.2f} | {v['packets_per_s'] / 1e6:.2f} M | {v['rss_kb'] / 1024:.0f} | "
                     f"{v['packets_per_s'] / off:.2f} |")
    s_on, s_off = split["inspect"], split["no_inspect"]
    lines += ["", f"Target: inspection keeps >= {T_RATIO:.0%} of the --no-inspect rate: "
              f"**{ratio:.2f}** ({'met' if ratio >= T_RATIO else 'MISSED'}).", ""]
    if ndpi:
        lines.append(f"ulnet flows (inspection on) / ndpiReader: **{on / res['ndpiReader -n 1']['packets_per_s']:.1f}x**.")
        lines.append("")
    lines += ["Time split, in one process (pipeline loop only, no process start or CSV):", "",
              f"* pipeline without the inspector: {s_off['seconds']:.2f} s ({npk / s_off['seconds'] / 1e6:.2f} M packets/s)",
              f"* pipeline with it: {s_on['seconds']:.2f} s ({npk / s_on['seconds'] / 1e6:.2f} M packets/s), of which "
              f"the inspection kernel {s_on['kernel_s']:.2f} s ({1e9 * s_on['kernel_s'] / npk:.0f} ns/packet over all "
              f"packets) and the Python QUIC pass {s_on['quic_s']:.2f} s ({s_on['quic_decrypted']} Initials read, "
              f"{s_on['quic_failed']} not)",
              f"* payload packets through the matchers: {s_on['inspected']}; flows decided: {s_on['decided']}"]
    md = "\n".join(lines) + "\n"
    print(md)
    (args.out / "inspect.md").write_text(md)
    (args.out / "inspect.json").write_text(json.dumps({"capture": str(cap), "code": desc, "runs": res,
                                                        "ratio": ratio, "split": split}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
