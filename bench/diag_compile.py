#!/usr/bin/env python3
"""Cold compile with and without ulnet.jit's compile shortcuts, and whether
they change the machine code.

    .venv/bin/python bench/diag_compile.py [--runs N] [--cpu C] [--flows]

Each round runs the job twice, in fresh processes pinned to core C, each
with an empty NUMBA_CACHE_DIR: once as ulnet runs (typing memo, lazy
lifetimes) and once with ULNET_NUMBA_PLAIN=1 (numba's own pipeline), the
order alternating from round to round so both see the machine in the same
state. The job is read + decode of samples/sample.pcap through the Pipeline
(what bench_decode.py's "JIT compile on first run" times), or with --flows
``ulnet flows samples/sample.pcap --statistics -o /dev/null`` (every kernel
that command needs; about 1.5 minutes a run on this machine). Prints the wall
and CPU seconds of each run, then compares the object code of every cache
entry the two configurations wrote in the last round (``ulnet.jit.cached_digests``:
sha256 of each): the shortcuts must leave it byte for byte as numba makes it.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "sample.pcap"
sys.path.insert(0, str(ROOT / "src"))

from ulnet.jit import cached_digests  # noqa: E402


def job(flows: bool) -> list[str]:
    if flows:
        return [sys.executable, "-m", "ulnet.cli.main", "flows", str(SAMPLE), "--statistics", "-o", "/dev/null"]
    return [sys.executable, "-c",
            f"from ulnet.pipeline import Pipeline\nfor b in Pipeline([{str(SAMPLE)!r}]):\n    pass\n"]


def run(cmd: list[str], cpu: int, cache: Path, plain: bool) -> tuple[float, float]:
    """(wall, CPU) seconds of one cold run."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), ULNET_NUMBA_PLAIN="1" if plain else "0",
               PYTHONPATH=str(ROOT / "src"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(["taskset", "-c", str(cpu), *cmd], env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="rounds (default 5)")
    ap.add_argument("--cpu", type=int, default=1, help="core to pin every run to (default 1)")
    ap.add_argument("--flows", action="store_true", help="the job is `ulnet flows --statistics` on the sample")
    a = ap.parse_args()
    cmd = job(a.flows)
    times = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="ulnet-diag-compile-") as tmp:
        for r in range(a.runs):
            for plain in ((False, True) if r % 2 == 0 else (True, False)):
                cache = Path(tmp) / f"r{r}-{'plain' if plain else 'ulnet'}"
                wall, cpu = run(cmd, a.cpu, cache, plain)
                times[plain].append((wall, cpu))
                print(f"round {r + 1}: {'numba plain' if plain else 'ulnet     '}  {wall:6.2f} s wall  {cpu:6.2f} s CPU",
                      flush=True)
        for plain, label in ((True, "numba plain"), (False, "ulnet")):
            w = sorted(x[0] for x in times[plain])
            c = sorted(x[1] for x in times[plain])
            print(f"{label}: wall {w[0]:.2f}-{w[-1]:.2f} s, CPU {c[0]:.2f}-{c[-1]:.2f} s")
        last = a.runs - 1
        got, ref = cached_digests(Path(tmp) / f"r{last}-ulnet"), cached_digests(Path(tmp) / f"r{last}-plain")
        same = sum(1 for k in got if ref.get(k) == got[k])
        print(f"cache entries: {len(got)} with the shortcuts, {len(ref)} without; "
              f"object code identical in {same}")
        return 0 if got and got == ref else 1


if __name__ == "__main__":
    sys.exit(main())
