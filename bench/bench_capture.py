"""Capture benchmark: `ulnet capture` vs tcpdump vs netsniff-ng, packets/s
written to a file without drops, on the same generated load.

    sudo .venv/bin/python bench/bench_capture.py [--quick] [--rates 25000,50000,...]

Topology (made here with tests/netns.py, removed at exit, failures included):
two namespaces tx and rx joined by one veth (eth0 -- eth0), IPv6 off, no
addresses (nothing but the generated frames crosses it). trafgen in tx sends
64-byte UDP frames (64 source ports, bench_bridge's frame) to rx's MAC at each
offered rate (``--rates``, then unthrottled: "saturation") for ``--seconds``.
On rx's eth0, in turn (the order rotates from rate to rate):

  ulnet       ulnet capture -i eth0 -w FILE -B KIB
  tcpdump     tcpdump -i eth0 -w FILE -B KIB -n -Z root       (libpcap, TPACKET_V3)
  netsniff-ng netsniff-ng --in eth0 --out FILE -S KIBKiB -s -A -Q   (TPACKET_V3)

Every tool gets the same ring size (``--buffer-kib``, default 32768: ulnet's
default). The capturing tool runs on one core (``taskset -c CAP_CPU``), trafgen
on the other (its one fork binds itself to CPU 0: ``-P 1``); the kernel's
receive work (veth -> backlog -> packet socket copy into the ring) runs as a
softirq on the sender's core, so the capturing core does only the tool's work.

For each tool and rate:
  offered   packets that reached rx's eth0 (its rx_packets counter, from just
            before trafgen starts to the tool's stop): what any tool there
            could see. Also trafgen's sent count (tx's tx_packets) and frames
            the veth dropped before the interface (rx_dropped).
  offered pps  rx_packets over the middle of the send (from 0.7 s after start).
  written   records in the file (counted by walking the pcap).
  drops     what the tool reports as dropped by the kernel.
  loss %    1 - written / offered.
  CPU s     user + system of the capturing process (wait4), whole run.

"No-drop rate" of a tool = the highest offered pps with loss < 0.1 %; ulnet's is
also given as a ratio to tcpdump's and netsniff-ng's from the same run.
The tool waits ``--settle`` s after it says it is ready before trafgen starts,
and ``--drain`` s after trafgen stops before SIGINT (libpcap's V3 block
timeout is tcpdump's 1000 ms packet-buffer timeout: a partly filled block is
handed over only then).

Writes bench/out/capture.json and bench/out/capture.md.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from netns import Topo, have  # noqa: E402
from bench_bridge import stop_group, trafgen_conf  # noqa: E402
from bench_flows import snapshot  # noqa: E402

OUT = ROOT / "bench" / "out"
TOOLS = ("ulnet", "tcpdump", "netsniff-ng")


# -- the capturing tools ------------------------------------------------------

ULNET_SRC: dict[str, Path] = {}     # "ulnet" / "ulnet@REV" -> PYTHONPATH (a snapshot of src/ulnet)


def tool_argv(tool: str, iface: str, path: Path, kib: int) -> list[str]:
    if tool.startswith("ulnet"):
        return [sys.executable, "-m", "ulnet.cli.main", "capture", "-i", iface, "-w", str(path), "-B", str(kib)]
    if tool == "tcpdump":
        return ["tcpdump", "-i", iface, "-w", str(path), "-B", str(kib), "-n", "-Z", "root"]
    if tool == "netsniff-ng":
        # -s silent, -A/-Q: leave the machine's socket memory sysctls and IRQ affinities alone
        return ["netsniff-ng", "--in", iface, "--out", str(path), "-S", f"{kib}KiB", "-s", "-A", "-Q"]
    raise ValueError(tool)


READY = {"ulnet": "listening on", "tcpdump": "listening on", "netsniff-ng": "Running"}


def kind(tool: str) -> str:
    return "ulnet" if tool.startswith("ulnet") else tool


def parse_report(tool: str, text: str) -> dict:
    """The tool's own end-of-run figures: packets it says it captured and the
    kernel drops it reports."""
    num = lambda pat: int(m.group(1)) if (m := re.search(pat, text)) else None   # noqa: E731
    if kind(tool) == "ulnet":
        return {"tool_captured": num(r"(\d+) packets captured"), "tool_received": num(r"(\d+) received"),
                "tool_drops": num(r"(\d+) dropped by kernel")}
    if tool == "tcpdump":
        return {"tool_captured": num(r"(\d+) packets? captured"),
                "tool_received": num(r"(\d+) packets? received by filter"),
                "tool_drops": num(r"(\d+) packets? dropped by kernel")}
    # netsniff-ng: "N packets incoming (M unread on exit)", "N packets passed filter",
    # "N packets failed filter (out of space)"
    return {"tool_captured": num(r"(\d+)\s+packets passed filter"),
            "tool_received": num(r"(\d+)\s+packets incoming"),
            "tool_drops": num(r"(\d+)\s+packets failed filter")}


def count_pcap(path: Path) -> int:
    """Records in a pcap file (either byte order, micro- or nanosecond)."""
    size = path.stat().st_size
    if size < 24:
        return 0
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        magic = struct.unpack_from("<I", m, 0)[0]
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            cap = struct.Struct("<I")
        elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
            cap = struct.Struct(">I")
        else:
            raise ValueError(f"{path}: not a pcap file (magic {magic:#x})")
        unpack = cap.unpack_from
        p, n = 24, 0
        while p + 16 <= size:
            p += 16 + unpack(m, p + 8)[0]
            n += 1
        if p > size:        # a record cut short at the end
            n -= 1
        return n


# -- counters, processes --------------------------------------------------------

def counter(t: Topo, ns: str, name: str, iface: str = "eth0") -> int:
    return int(t.run(ns, "cat", f"/sys/class/net/{iface}/statistics/{name}").stdout)


def wait_file(path: Path, needle: str, p: subprocess.Popen, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if needle in path.read_text(errors="replace"):
            return
        if p.poll() is not None:
            raise RuntimeError(f"exited {p.returncode} before it was ready: {path.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"not ready after {timeout:.0f} s: {path.read_text(errors='replace')[-2000:]}")


def reap(p: subprocess.Popen, timeout: float) -> tuple[int, float]:
    """Wait for a process we started (by pid) with wait4: (exit status, CPU s)."""
    end = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            return p.returncode, ru.ru_utime + ru.ru_stime
        if time.monotonic() > end:
            os.kill(p.pid, signal.SIGKILL)
            _, status, ru = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            return p.returncode, ru.ru_utime + ru.ru_stime
        time.sleep(0.02)


# -- one trial --------------------------------------------------------------------

def trial(t: Topo, tx: str, rx: str, conf: Path, tool: str, rate: int | None, a, cpu: int, kib: int) -> dict:
    """One capture by ``tool`` pinned to core ``cpu`` while trafgen offers ``rate``
    packets/s (None: unthrottled; 0: no traffic at all, the idle baseline)."""
    work = OUT / "capture-tmp"
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"{tool.replace('@', '-')}-{t.tag}.pcap"
    log = work / f"{tool.replace('@', '-')}-{t.tag}.log"
    path.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ULNET_SRC.get(tool, ROOT / "src")))
    argv = ["taskset", "-c", str(cpu), *tool_argv(tool, "eth0", path, kib)]
    row = {"tool": tool, "cpu": cpu, "buffer_kib": kib, "target_pps": "saturation" if rate is None else rate}
    with open(log, "w") as lf:
        p = t.popen(rx, *argv, stdout=lf, stderr=subprocess.STDOUT, env=env)
    try:
        wait_file(log, READY[kind(tool)], p, a.ready_timeout)
        time.sleep(a.settle)
        rx0, drop0, tx0 = counter(t, rx, "rx_packets"), counter(t, rx, "rx_dropped"), counter(t, tx, "tx_packets")
        if rate == 0:       # idle: the tool's own cost (start, imports, waiting, exit)
            time.sleep(a.seconds + a.drain)
            ta = tb = time.monotonic()
            ra = rb = 0
        gen = ["trafgen", "--dev", "eth0", "--conf", str(conf), "-P", "1", "-q", "-C"]
        if rate:
            gen += ["-b", f"{int(rate)}pps"]
        if rate != 0:
            # trafgen forks its sender: its own session, stopped as a group (only what we started)
            g = t.popen(tx, *gen, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                time.sleep(0.7)
                ta, ra = time.monotonic(), counter(t, rx, "rx_packets")
                time.sleep(max(0.2, a.seconds - 0.7))
                tb, rb = time.monotonic(), counter(t, rx, "rx_packets")
            finally:
                stop_group(g)
            time.sleep(a.drain)
        rx1, drop1, tx1 = counter(t, rx, "rx_packets"), counter(t, rx, "rx_dropped"), counter(t, tx, "tx_packets")
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
        code, cpu = reap(p, 30)
    report = log.read_text(errors="replace")
    t.procs.remove(p)
    for f in (p.stdout, p.stderr):
        if f:
            f.close()
    written = count_pcap(path) if path.exists() else 0
    offered = rx1 - rx0
    row.update({
        "offered_pps": round((rb - ra) / (tb - ta)) if tb > ta else 0,
        "sent": tx1 - tx0, "offered": offered, "veth_rx_dropped": drop1 - drop0,
        "written": written, "loss_pct": round(100.0 * (offered - written) / offered, 4) if offered else None,
        "cpu_s": round(cpu, 2), "exit": code, "file_mb": round(path.stat().st_size / 1e6, 1) if path.exists() else 0,
    })
    row.update(parse_report(tool, report))
    if code not in (0, 130, -2) or written == 0:
        row["log"] = report[-600:]
    path.unlink(missing_ok=True)
    log.unlink(missing_ok=True)
    return row


def warm_ulnet(t: Topo, tx: str, rx: str, conf: Path, tool: str, timeout: float = 400) -> None:
    """One untimed run, ``ulnet capture -c 500`` on 1000 frames: compiles the
    kernels into the snapshot's numba cache (bounded in time)."""
    path = OUT / "capture-tmp" / f"warm-{t.tag}.pcap"
    path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ULNET_SRC[tool]))
    p = t.popen(rx, *tool_argv(tool, "eth0", path, 2048), "-c", "500", env=env)
    try:
        t.wait_output(p, "listening on", timeout=timeout)
        g = t.popen(tx, "trafgen", "--dev", "eth0", "--conf", str(conf), "-P", "1", "-q", "-C", "-n", "1000",
                    "-b", "1000pps", start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        p.wait(timeout=timeout)
        stop_group(g)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{tool}: the warm-up did not end in {timeout:.0f} s") from None
    finally:
        out, err = t.stop(p)
        path.unlink(missing_ok=True)
    if "500 packets captured" not in err:
        raise RuntimeError(f"{tool}: the warm-up failed: {err[-1000:]}")


SCENARIOS = {"separate": 1, "shared": 0}    # the capturing tool's core; trafgen and the softirq are on 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="25000,50000,100000,200000,400000",
                    help="trafgen -b rates in packets/s, comma-separated (then unthrottled, unless --no-saturation)")
    ap.add_argument("--no-saturation", action="store_true")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--ulnet-rev", metavar="REV",
                    help="also measure ulnet at git REV (a snapshot of its src/ulnet), as the tool ulnet@REV")
    ap.add_argument("--worktree", action="store_true", help="ulnet from the work tree's src/, not git HEAD")
    ap.add_argument("--scenarios", default="separate,shared",
                    help="separate: the tool on core 1, trafgen and the kernel's receive work on core 0; "
                         "shared: all on core 0")
    ap.add_argument("--buffers", default="32768,2048",
                    help="ring sizes in KiB, each tool the same (ulnet -B, tcpdump -B, netsniff-ng -S)")
    ap.add_argument("--seconds", type=float, default=3.0, help="trafgen's time at each rate")
    ap.add_argument("--repeat", type=int, default=1, help="runs of the whole sweep (rows kept apart; the no-drop "
                                                          "rate of a tool is the median over runs)")
    ap.add_argument("--settle", type=float, default=1.0, help="s between the tool being ready and trafgen")
    ap.add_argument("--drain", type=float, default=2.0, help="s between trafgen's end and SIGINT to the tool")
    ap.add_argument("--ready-timeout", type=float, default=120.0)
    ap.add_argument("--quick", action="store_true", help="1.5 s per rate, 25k/100k/400k, 2 MiB rings only")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--render", metavar="JSON", help="only remake the Markdown from a capture.json")
    a = ap.parse_args()
    if a.render:
        d = json.loads(Path(a.render).read_text())
        rows, meta = d["rows"], d["meta"]
        tools = list(dict.fromkeys(r["tool"] for r in rows))
        scen = list(dict.fromkeys(r["scenario"] for r in rows))
        buffers = meta["buffers_kib"]
        summary = {f"{kib}/{sc}": no_drop([r for r in rows if r["scenario"] == sc and r["buffer_kib"] == kib], tools)
                   for kib in buffers for sc in scen}
        d["no_drop"] = summary
        Path(a.render).write_text(json.dumps(d, indent=1) + "\n")
        md = table(rows, summary, tools, scen, buffers, meta)
        Path(a.render).with_suffix(".md").write_text(md)
        print(md)
        return 0
    if os.geteuid() != 0:
        print("bench_capture: needs root (network namespaces)", file=sys.stderr)
        return 2
    tools = [x for x in a.tools.split(",") if x]
    scen = [x for x in a.scenarios.split(",") if x]
    for need in ["trafgen", "taskset"] + [x for x in tools if x != "ulnet"]:
        if not have(need):
            print(f"bench_capture: {need} not found (apt-get install netsniff-ng tcpdump util-linux)", file=sys.stderr)
            return 2
    if (os.cpu_count() or 1) < 2:
        scen = ["shared"]
    if a.quick:
        a.seconds, a.rates, a.buffers = 1.5, "25000,100000,400000", "2048"
    buffers = [int(x) for x in a.buffers.split(",") if x]
    rates: list[int | None] = [int(float(r)) for r in a.rates.split(",") if r]
    if not a.no_saturation:
        rates.append(None)
    out = Path(a.out)
    code = {}
    if "ulnet" in tools:
        ULNET_SRC["ulnet"], code["ulnet"] = snapshot(OUT, a.worktree)
    if a.ulnet_rev:
        name = f"ulnet@{a.ulnet_rev}"
        ULNET_SRC[name], code[name] = snapshot(OUT, False, a.ulnet_rev)
        tools.insert(tools.index("ulnet") + 1 if "ulnet" in tools else 0, name)
    rows, idle = [], {}
    started = time.time()
    with Topo() as t:
        tx, rx = t.ns("cbtx"), t.ns("cbrx")
        for ns in (tx, rx):
            t.run(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        t.veth(tx, "eth0", rx, "eth0")
        mac = t.run(rx, "cat", "/sys/class/net/eth0/address").stdout.strip()
        conf = Path(f"/tmp/ulnet-bench-capture-{t.tag}.trafgen")
        trafgen_conf(conf, mac)
        try:
            for tool in tools:
                if kind(tool) == "ulnet":
                    warm_ulnet(t, tx, rx, conf, tool)
            for tool in tools:          # each tool's own cost with no traffic: start, wait, exit
                r = trial(t, tx, rx, conf, tool, 0, a, SCENARIOS[scen[0]], buffers[0])
                idle[tool] = r["cpu_s"]
                print(json.dumps(r), flush=True)
            k = 0
            for rep in range(a.repeat):
                for kib in buffers:
                    for sc in scen:
                        for rate in rates:
                            order = tools[k % len(tools):] + tools[:k % len(tools)]
                            k += 1
                            for tool in order:
                                row = trial(t, tx, rx, conf, tool, rate, a, SCENARIOS[sc], kib)
                                row["scenario"], row["run"] = sc, rep
                                extra = row["cpu_s"] - idle.get(tool, 0.0)
                                row["cpu_us_per_pkt"] = round(1e6 * extra / row["written"], 3) if row["written"] else None
                                print(json.dumps(row), flush=True)
                                rows.append(row)
        finally:
            conf.unlink(missing_ok=True)
            try:
                (OUT / "capture-tmp").rmdir()
            except OSError:
                pass
    out.mkdir(parents=True, exist_ok=True)
    meta = {"started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started)),
            "ended_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "kernel": os.uname().release,
            "seconds": a.seconds, "buffers_kib": buffers, "repeat": a.repeat, "idle_cpu_s": idle,
            "ulnet_code": code, "versions": versions(tools), "loadavg_end": os.getloadavg(), "argv": sys.argv[1:]}
    summary = {f"{kib}/{sc}": no_drop([r for r in rows if r["scenario"] == sc and r["buffer_kib"] == kib], tools)
               for kib in buffers for sc in scen}
    (out / "capture.json").write_text(json.dumps({"meta": meta, "no_drop": summary, "rows": rows}, indent=1) + "\n")
    md = table(rows, summary, tools, scen, buffers, meta)
    (out / "capture.md").write_text(md)
    print(md)
    return 0


def versions(tools) -> dict:
    v = {}
    for tool, argv in (("tcpdump", ["tcpdump", "--version"]), ("netsniff-ng", ["netsniff-ng", "-v"]),
                       ("trafgen", ["trafgen", "-v"])):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            v[tool] = " / ".join(x.strip() for x in (r.stdout + r.stderr).splitlines()[:2] if x.strip())
        except OSError:
            pass
    return v


LOSS_OK = 0.1    # percent


def no_drop(rows, tools) -> dict:
    """Per tool: the no-drop rate, the highest offered pps with loss < 0.1 %
    there and at every lower offered rate of the sweep (median over runs), the
    lossy trials above it and ulnet's ratios."""
    res = {}
    for tool in tools:
        per_run, lossy = [], []
        for rep in sorted({r["run"] for r in rows}):
            best = 0
            mine = sorted((r for r in rows if r["tool"] == tool and r["run"] == rep), key=lambda r: r["offered_pps"])
            for r in mine:
                if r["loss_pct"] is None or r["loss_pct"] >= LOSS_OK:
                    break
                best = r["offered_pps"]
            per_run.append(best)
            lossy += [(r["offered_pps"], r["loss_pct"]) for r in mine if r["loss_pct"] is None or r["loss_pct"] >= LOSS_OK]
        per_run.sort()
        res[tool] = {"no_drop_pps": per_run[len(per_run) // 2] if per_run else 0, "per_run": per_run,
                     "lossy": sorted(lossy),
                     "max_offered_pps": max((r["offered_pps"] for r in rows if r["tool"] == tool), default=0)}
    u = res.get("ulnet", {}).get("no_drop_pps")
    for tool in tools:
        if tool != "ulnet" and u is not None:
            base = res[tool]["no_drop_pps"]
            res[tool]["ulnet_ratio"] = round(u / base, 2) if base else None
    return res


NAMES = {"separate": "tool on core 1; trafgen + kernel receive on core 0",
         "shared": "tool, trafgen and kernel receive all on core 0"}


def table(rows, summary, tools, scen, buffers, meta) -> str:
    keys = [(kib, sc) for kib in buffers for sc in scen]
    out = ["No-drop rate: the highest offered packets/s with under 0.1 % of the offered packets missing "
           "from the file there and at every lower rate of the sweep; (all) = no loss at any rate offered; "
           "(lost x % at N k): the trials over 0.1 %.", "",
           "| tool | " + " | ".join(f"{kib // 1024} MiB ring, {sc}" for kib, sc in keys) + " | idle CPU s |",
           "|---|" + "---:|" * len(keys) + "---:|"]
    for tool in tools:
        cells = []
        for kib, sc in keys:
            s = summary[f"{kib}/{sc}"][tool]
            c = f"{s['no_drop_pps']:,}" + (" (all)" if s["no_drop_pps"] and s["no_drop_pps"] == s["max_offered_pps"]
                                           else "")
            if s["lossy"]:
                c += " (lost " + ", ".join(f"{x:.2g} % at {p / 1000:.0f}k" for p, x in s["lossy"]
                                           if x is not None) + ")"
            if kind(tool) == "ulnet":
                base = [summary[f"{kib}/{sc}"][x] for x in tools if kind(x) != "ulnet"]
                rat = [f"{s['no_drop_pps'] / b['no_drop_pps']:.2f}" if b["no_drop_pps"] else "-" for b in base]
                if rat:
                    c += " = " + " / ".join(rat) + "x"
            cells.append(c)
        out.append(f"| {tool} | " + " | ".join(cells) + f" | {meta['idle_cpu_s'].get(tool, '-')} |")
    others = [x for x in tools if kind(x) != "ulnet"]
    if others:
        out += ["", f"(ulnet rows: no-drop pps = that over {' / '.join(others)}'s, same run.)"]
    out.append("")
    for kib, sc in keys:
        out += [f"**{kib // 1024} MiB ring, {sc}** ({NAMES[sc]})", "",
                "| trafgen -b | offered pps | tool | offered pkts | written | loss % | kernel drops (tool) "
                "| CPU s | CPU us/pkt |", "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            if r["scenario"] != sc or r["buffer_kib"] != kib:
                continue
            tgt = r["target_pps"] if r["target_pps"] == "saturation" else f"{r['target_pps'] // 1000}k"
            out.append(f"| {tgt}{' #' + str(r['run'] + 1) if meta['repeat'] > 1 else ''} | {r['offered_pps']:,} "
                       f"| {r['tool']} | {r['offered']:,} | {r['written']:,} | {r['loss_pct']} "
                       f"| {r['tool_drops'] if r['tool_drops'] is not None else '-'} | {r['cpu_s']} "
                       f"| {r['cpu_us_per_pkt'] if r['cpu_us_per_pkt'] is not None else '-'} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
