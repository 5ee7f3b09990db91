#!/usr/bin/env python3
"""bench_policy -- what a big policy costs `ulnet run` (issue 5).

    .venv/bin/python bench/bench_policy.py [--capture X] [--packets N] [--repeat 3]

Builds (once, in bench/out/policy/) a policy of 1,000 rules and a table of
100,000 prefixes, then runs `ulnet run` over the benchmark capture with
  * no policy: an empty rules file (every flow takes the implicit default pass),
  * the big policy,
each in its own process (pinned to one core when taskset exists), output to
/dev/null, `--repeat` rounds interleaved, medians kept. Reported per run:
setup (parse + check + compile, and the open of the inputs), the packet
loop (read, decode, flow, policy, actions, write) and the whole process.
Throughput = packets / packet-loop seconds; the issue asks the big policy to
keep >= 50% of the no-policy throughput. Results: bench/out/policy.json and
policy.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
DEFAULT_CAPTURE = OUT / "corpus-2000000.pcap"


def make_policy(d: Path, rules: int = 1000, prefixes: int = 100_000, seed: int = 5) -> tuple[Path, Path]:
    d.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    table = d / "prefixes.txt"
    if not table.exists():
        lines = []
        for _ in range(prefixes):
            if rng.random() < 0.9:
                n = rng.choice([16, 20, 22, 24, 24, 24, 28, 32])
                a = rng.getrandbits(32) & (0xFFFFFFFF << (32 - n))
                lines.append(f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}/{n}")
            else:
                n = rng.choice([32, 48, 56, 64])
                a = (0x2000 << 112 | rng.getrandbits(112)) & (((1 << 128) - 1) << (128 - n))
                import ipaddress
                lines.append(f"{ipaddress.IPv6Address(a)}/{n}")
        table.write_text("\n".join(lines) + "\n")
    pol = d / "big.rules"
    ports = [22, 23, 25, 53, 80, 110, 123, 135, 139, 143, 161, 389, 443, 445, 465, 587, 993, 995, 1433, 1723,
             3306, 3389, 5060, 5222, 5432, 5900, 6379, 8080, 8443, 9200]
    body = ['table <big> file "prefixes.txt"', "web = { 80 443 8080 8443 }", "default pass",
            "block from <big>", "block to <big>"]
    while len(body) - 3 < rules:
        w = [rng.choice(["pass", "block", "block", "reject", "pass", "match"])]
        if rng.random() < 0.6:
            w.append("proto " + rng.choice(["tcp", "udp", "{ tcp udp }", "icmp"]))
        if rng.random() < 0.7:
            a = rng.getrandbits(32) & 0xFFFFFF00
            w.append(f"from {a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.0/24")
        if rng.random() < 0.7:
            a = rng.getrandbits(32) & 0xFFFFF000
            to = f"to {a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.0/20"
            if rng.random() < 0.6 and "icmp" not in " ".join(w):
                to += " port " + rng.choice([str(rng.choice(ports)), f"{rng.randint(1024, 30000)}-{rng.randint(30001, 65535)}",
                                             "$web", "{ 22 23 3389 }"])
            w.append(to)
        if w[0] == "match":
            w.append(rng.choice(["count", "tag t1"]))
        if len(w) == 1:
            continue
        body.append(" ".join(w))
    pol.write_text("\n".join(body) + "\n")
    empty = d / "empty.rules"
    empty.write_text("# no policy: every flow takes the implicit default pass\n")
    return pol, empty


def worker(args) -> None:
    t0 = time.perf_counter()
    from ulnet.policy import load_policy, detector_names
    from ulnet.policy.enforce import Enforcer
    t1 = time.perf_counter()
    checked = load_policy(args.rules, ports=["lan", "wan"])
    t2 = time.perf_counter()
    run = Enforcer(checked, {"lan": args.capture}, {"wan": "/dev/null"}, batch_size=4096,
                   app_names=detector_names()[0])
    t3 = time.perf_counter()
    run.run()
    t4 = time.perf_counter()
    st = run.stats()
    print(json.dumps({"imports": t1 - t0, "check": t2 - t1, "compile_open": t3 - t2, "loop": t4 - t3,
                      "packets": run.seen, "decisions": st["policy"]["decisions"],
                      "forward": st["actions"]["forward"], "compiled": run.compiled.stats}))


def one(rules: Path, capture: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--rules", str(rules), "--capture", capture]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0"] + cmd
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=rules.parent)
    wall = time.perf_counter() - t
    if p.returncode:
        raise SystemExit(p.stderr)
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r["process"] = wall
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--capture", default=str(DEFAULT_CAPTURE))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--rules")
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    args.capture = str(Path(args.capture).resolve())
    if not Path(args.capture).exists():
        raise SystemExit(f"{args.capture}: missing (python bench/bench_decode.py builds the benchmark capture)")
    pol, empty = make_policy(OUT / "policy")
    one(pol, args.capture)         # fill numba's cache
    runs = {"none": [], "big": []}
    for _ in range(args.repeat):
        runs["none"].append(one(empty, args.capture))
        runs["big"].append(one(pol, args.capture))
    med = {k: {f: statistics.median(r[f] for r in v) for f in ("check", "compile_open", "loop", "process")}
           for k, v in runs.items()}
    pk = runs["none"][0]["packets"]
    rate = {k: pk / med[k]["loop"] for k in med}
    res = {"capture": args.capture, "packets": pk, "rules": 1000, "prefixes": 100_000, "median_s": med,
           "pps": rate, "kept": rate["big"] / rate["none"],
           "decisions": runs["big"][0]["decisions"], "forward_big": runs["big"][0]["forward"],
           "forward_none": runs["none"][0]["forward"], "compiled": runs["big"][0]["compiled"], "runs": runs}
    (OUT / "policy.json").write_text(json.dumps(res, indent=1))
    md = [f"capture {args.capture}: {pk} packets, {res['decisions']} flows decided; median of {args.repeat}",
          "", "| policy | check s | compile+open s | packet loop s | process s | Mpps (loop) |", "|---|---|---|---|---|---|"]
    for k in ("none", "big"):
        m = med[k]
        md.append(f"| {k} | {m['check']:.2f} | {m['compile_open']:.2f} | {m['loop']:.2f} | {m['process']:.2f} | "
                  f"{rate[k] / 1e6:.3f} |")
    md.append("")
    md.append(f"big policy keeps {100 * res['kept']:.1f}% of the no-policy throughput (packet loop); "
              f"whole process: {100 * med['none']['process'] / med['big']['process']:.1f}%")
    (OUT / "policy.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
