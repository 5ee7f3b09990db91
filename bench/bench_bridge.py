"""Bridge benchmark: the Linux bridge vs ulnet bridge (1 and 2 workers) vs a
plain Python recv/send forwarder, on the same namespaces and veths, in turn.

    sudo .venv/bin/python bench/bench_bridge.py [--quick] [--offloads on,off]

Topology (made here, removed at exit): h1 (10.199.0.1) -- a [br] b -- h2
(10.199.0.2); the forwarder under test runs in namespace br. For each
forwarder and each offload setting (TSO/GSO/GRO/checksum on every veth, on
or off -- both sides of a comparison always share the setting):

  * 64-byte UDP frames/s: trafgen in h1 offers frames to h2 (64 source
    ports); forwarded = frames counted by h2's interface. First at full
    speed (saturation), then at fractions of that rate: the highest offered
    rate with under 0.1 % loss is the "no loss" rate.
  * iperf3 TCP, one stream, Gbit/s.
  * ping RTT p50 / p99 (1000 pings, 2 ms apart), and the difference to the
    Linux bridge.

ulnet bridge also runs with a policy (inspection, a table, count by app:
RULES below), with --ring v2 (TPACKET_V2 frames) and with --ring v3-retire
(V3 blocks read only once retired, up to 1 ms per traversal: the default
before blocks were read while the kernel fills them). --kinds picks rows;
--only picks measurements (ping,tcp,pps); --base-src DIR with kinds named
KIND-base (ulnet-1-base) runs ulnet from another checkout in the same run
(a before/after on one topology and one machine load). Kinds ending in
-lowlat run ulnet with --cpu-latency 0 (a PM QoS request: idle CPUs poll
instead of halting; since 2026-11-26 also what ulnet bridge does by
default as root, so ulnet-1 and ulnet-1-lowlat run the same); kinds ending
in -sleep run it with --cpu-latency off (no request: the default before).
linux-lowlat is the Linux bridge while this script holds the same request
(the plain linux row holds none).
Kinds ending in -busy run ulnet with --busy-poll 5000; -busyN (ulnet-1-busy300,
ulnet-1-rules-busy300) with --busy-poll N.

Writes bench/out/bridge.json and bench/out/bridge.md (README-ready table).
The machine is shared: numbers move by +-10 % between runs; compare the
ratios measured in one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from netns import Topo, bridge_topology  # noqa: E402

OUT = ROOT / "bench" / "out"

PY_FORWARDER = r"""
# one packet per system call: recv one frame, send it out of the other side
import select, socket, signal, sys
SOL_PACKET, PACKET_VNET_HDR, PACKET_IGNORE_OUTGOING = 263, 15, 23
socks = []
for name in sys.argv[1:3]:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)           # keep GSO frames whole
    s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    s.bind((name, 3))
    s.setblocking(False)
    socks.append(s)
mreq = lambda i: __import__("struct").pack("iHH8s", i, 1, 0, b"")
for s, name in zip(socks, sys.argv[1:3]):
    s.setsockopt(SOL_PACKET, 1, mreq(socket.if_nametoindex(name)))
stop = [False]
signal.signal(signal.SIGTERM, lambda *a: stop.__setitem__(0, True))
buf = bytearray(70000)
mv = memoryview(buf)
peer = {socks[0].fileno(): socks[1], socks[1].fileno(): socks[0]}
byfd = {s.fileno(): s for s in socks}
p = select.poll()
for s in socks:
    p.register(s, select.POLLIN)
print("forwarding", file=sys.stderr, flush=True)
while not stop[0]:
    for fd, _ in p.poll(100):
        s, o = byfd[fd], peer[fd]
        for _ in range(64):
            try:
                n = s.recv_into(buf)
            except BlockingIOError:
                break
            try:
                o.send(mv[:n])
            except OSError:
                pass
"""


# a policy that passes the benchmark's traffic after the whole pipeline has
# looked at it: inspection (count by app), a table lookup, the decision kernel
BUSY_POLL_US = 5000     # --busy-poll of the -busy kinds: longer than the 2 ms between pings
RULES = """table <bad> { 192.0.2.0/24 198.51.100.0/24 2001:db8::/32 }
default pass
block from <bad>
block to <bad>
match app any count by app
"""


def stop_group(p: subprocess.Popen) -> None:
    """SIGINT, then SIGKILL, to the process group of a process we started in its own session."""
    for sig in (signal.SIGINT, signal.SIGKILL):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def ethtool_all(t, nss, on):
    h1, br, h2 = nss
    for ns, ifs in ((h1, ("eth0",)), (br, ("a", "b")), (h2, ("eth0",))):
        for i in ifs:
            t.offloads(ns, i, on)


BASE_SRC = None     # --base-src: where the "-base" kinds take ulnet from (an A/B in one run)


QOS = contextlib.ExitStack()   # the bench's own CPU latency request (kind linux-lowlat), closed by stop_forwarder


def start_forwarder(t, br, kind):
    if kind == "linux-lowlat":
        # the Linux bridge while the same request as --cpu-latency 0 is held:
        # the reference for the -lowlat kinds (it speeds the end hosts' wake-ups too)
        from ulnet.live.pmqos import cpu_latency
        QOS.enter_context(cpu_latency(0))
        kind = "linux"
    if kind == "linux":
        t.run(br, "ip", "link", "add", "br0", "type", "bridge")
        t.run(br, "ip", "link", "set", "dev", "a", "master", "br0")
        t.run(br, "ip", "link", "set", "dev", "b", "master", "br0")
        t.run(br, "ip", "link", "set", "dev", "br0", "up")
        return None
    if kind == "python":
        p = t.popen(br, sys.executable, "-c", PY_FORWARDER, "a", "b")
    else:
        rules = Path(f"/tmp/ulnet-bench-{t.tag}.rules")
        rules.write_text(RULES)
        args = {"ulnet-1": [], "ulnet-2": ["--workers", "2"], "ulnet-1-v2": ["--ring", "v2"],
                "ulnet-1-retire": ["--ring", "v3-retire"],
                "ulnet-1-noflow": ["--no-flows"], "ulnet-1-rules": ["--rules", str(rules)],
                "ulnet-2-rules": ["--workers", "2", "--rules", str(rules)],
                "ulnet-1-busy": ["--busy-poll", str(BUSY_POLL_US)],
                "ulnet-1-lowlat": ["--cpu-latency", "0"],
                "ulnet-1-rules-lowlat": ["--rules", str(rules), "--cpu-latency", "0"],
                "ulnet-1-sleep": ["--cpu-latency", "off"],
                "ulnet-1-rules-sleep": ["--rules", str(rules), "--cpu-latency", "off"],
                "ulnet-1-rules-busy": ["--rules", str(rules), "--busy-poll", str(BUSY_POLL_US)]}
        base = kind.removesuffix("-base")
        m = re.fullmatch(r"(ulnet-1(?:-rules)?)-busy(\d+)", base)
        if m:       # ulnet-1-busy200: --busy-poll 200 (any number of microseconds)
            args = args[m.group(1)] + ["--busy-poll", m.group(2)]
        else:
            args = args[base]
        if kind.endswith("-base"):
            env = dict(os.environ, PYTHONPATH=str(BASE_SRC))
            p = t.popen(br, sys.executable, "-m", "ulnet.cli.main", "bridge", "a", "b", *args, env=env)
        else:
            p = t.ulnet(br, "bridge", "a", "b", *args)
    t.wait_output(p, "forwarding", timeout=400)
    return p


def stop_forwarder(t, br, kind, p):
    QOS.close()
    if kind in ("linux", "linux-lowlat"):
        t.run(br, "ip", "link", "del", "br0")
        return ""
    out, err = t.stop(p)
    Path(f"/tmp/ulnet-bench-{t.tag}.rules").unlink(missing_ok=True)
    return err


def rx_packets(t, ns, ifname="eth0") -> int:
    return int(t.run(ns, "cat", f"/sys/class/net/{ifname}/statistics/rx_packets").stdout)


def trafgen_conf(path: Path, dst_mac: str) -> None:
    path.write_text(
        "{ eth(da=%s, sa=02:00:00:00:00:01, type=0x0800), "
        "ipv4(saddr=10.199.0.1, daddr=10.199.0.2, proto=17, ttl=64), "
        "udp(sp=dinc(10000, 10063, 1), dp=9), fill(0x41, 18) }\n" % dst_mac)


def udp_rate(t, h1, h2, conf: Path, seconds: float, rate_pps: int | None) -> tuple[float, float]:
    """(offered pps, forwarded pps), sampled over ``seconds`` while trafgen runs."""
    args = ["trafgen", "--dev", "eth0", "--conf", str(conf), "--cpus", "1", "-q", "-C"]
    if rate_pps:
        args += ["-b", f"{int(rate_pps)}pps"]
    tx = lambda: int(t.run(h1, "cat", "/sys/class/net/eth0/statistics/tx_packets").stdout)   # noqa: E731
    # trafgen forks its sender: its own session, stopped as a group (only what we started)
    p = t.popen(h1, *args, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.7)
        t0, tx0, rx0 = time.monotonic(), tx(), rx_packets(t, h2)
        time.sleep(seconds)
        t1, tx1, rx1 = time.monotonic(), tx(), rx_packets(t, h2)
    finally:
        stop_group(p)
    time.sleep(0.3)
    dt = t1 - t0
    return (tx1 - tx0) / dt, (rx1 - rx0) / dt


def small_packets(t, nss, seconds: float) -> dict:
    h1, br, h2 = nss
    mac = t.run(h2, "cat", "/sys/class/net/eth0/address").stdout.strip()
    conf = Path(f"/tmp/ulnet-bench-{t.tag}.trafgen")
    trafgen_conf(conf, mac)
    try:
        offered, fwd = udp_rate(t, h1, h2, conf, seconds, None)
        res = {"saturation_offered_pps": round(offered), "saturation_forwarded_pps": round(fwd)}
        best = 0
        for frac in (1.0, 0.75, 0.5, 0.35, 0.25, 0.15, 0.1, 0.05):
            rate = max(1000, int(fwd * frac))
            off, got = udp_rate(t, h1, h2, conf, seconds, rate)
            loss = 1 - got / off if off else 1.0
            if loss < 0.001:
                best = round(got)
                break
        res["no_loss_pps"] = best
        return res
    finally:
        conf.unlink(missing_ok=True)


def tcp_gbit(t, nss, seconds: float) -> float:
    h1, br, h2 = nss
    srv = t.popen(h2, "iperf3", "-s", "-1", "-B", "10.199.0.2")
    time.sleep(0.4)
    r = t.run(h1, "iperf3", "-c", "10.199.0.2", "-t", seconds, "-J", timeout=seconds + 30, check=False)
    t.stop(srv, timeout=5)
    try:
        return round(json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9, 2)
    except (ValueError, KeyError):
        return 0.0


def rtt(t, nss, count: int) -> dict:
    h1, br, h2 = nss
    r = t.run(h1, "ping", "-c", count, "-i", "0.002", "-W", "1", "-n", "10.199.0.2",
              timeout=count * 0.01 + 30, check=False)
    vals = sorted(float(x) for x in re.findall(r"time=([\d.]+) ms", r.stdout))
    if not vals:
        return {"p50_us": None, "p99_us": None, "received": 0}
    q = lambda f: round(1000 * vals[min(len(vals) - 1, int(f * len(vals)))], 1)   # noqa: E731
    return {"p50_us": q(0.50), "p99_us": q(0.99), "received": len(vals)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter runs (2 s per rate, 300 pings)")
    ap.add_argument("--offloads", default="on,off")
    ap.add_argument("--kinds", default="linux,ulnet-1,ulnet-2,ulnet-1-rules,ulnet-2-rules,python,ulnet-1-v2,ulnet-1-retire")
    ap.add_argument("--only", default="ping,tcp,pps",
                    help="measurements to run, of ping,tcp,pps (default all)")
    ap.add_argument("--base-src", metavar="DIR",
                    help="another checkout's src/: kinds named KIND-base (ulnet-1-base, ...) run "
                         "ulnet from there, for a before/after in one run")
    args = ap.parse_args()
    global BASE_SRC
    BASE_SRC = args.base_src
    only = set(args.only.split(","))
    if any(k.endswith("-base") for k in args.kinds.split(",")) and not BASE_SRC:
        print("bench_bridge: -base kinds need --base-src", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("bench_bridge: needs root (network namespaces)", file=sys.stderr)
        return 2
    secs = 2.0 if args.quick else 3.0
    pings = 300 if args.quick else 1000
    results = []
    for off in args.offloads.split(","):
        on = off == "on"
        for kind in args.kinds.split(","):
            with Topo() as t:
                nss = bridge_topology(t, offloads=on, ipv6=False)
                p = start_forwarder(t, nss[1], kind)
                try:
                    t.run(nss[0], "ping", "-c", "3", "-i", "0.2", "-W", "1", "10.199.0.2", check=False)
                    row = {"forwarder": kind, "offloads": off}
                    if "ping" in only:
                        row.update(rtt(t, nss, pings))
                    if "tcp" in only:
                        row["tcp_gbit"] = tcp_gbit(t, nss, secs + 2)
                    if "pps" in only:
                        row.update(small_packets(t, nss, secs))
                finally:
                    err = stop_forwarder(t, nss[1], kind, p)
                row["forwarder_errors"] = err[-300:] if err and "error" in err.lower() else ""
            print(json.dumps(row), flush=True)
            results.append(row)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bridge.json").write_text(json.dumps(results, indent=1) + "\n")
    md = table(results)
    (OUT / "bridge.md").write_text(md)
    print(md)
    return 0


def table(results) -> str:
    names = {"linux": "Linux bridge", "ulnet-1": "ulnet bridge, 1 worker", "ulnet-2": "ulnet bridge, 2 workers",
             "python": "Python recv/send, 1 pkt/syscall", "ulnet-1-v2": "ulnet bridge, 1 worker, TPACKET_V2 frames",
             "ulnet-1-retire": "ulnet bridge, 1 worker, V3 read once retired (--ring v3-retire)",
             "ulnet-1-noflow": "ulnet bridge, 1 worker, decode only",
             "ulnet-1-rules": "ulnet bridge, 1 worker, inspection + policy", "ulnet-2-rules": "ulnet bridge, 2 workers, inspection + policy",
             "ulnet-1-busy": f"ulnet bridge, 1 worker, --busy-poll {BUSY_POLL_US}",
             "linux-lowlat": "Linux bridge, CPU latency request 0 held", "ulnet-1-lowlat": "ulnet bridge, 1 worker, --cpu-latency 0",
             "ulnet-1-rules-lowlat": "ulnet bridge, 1 worker, inspection + policy, --cpu-latency 0",
             "ulnet-1-sleep": "ulnet bridge, 1 worker, --cpu-latency off",
             "ulnet-1-rules-sleep": "ulnet bridge, 1 worker, inspection + policy, --cpu-latency off",
             "ulnet-1-rules-busy": f"ulnet bridge, 1 worker, inspection + policy, --busy-poll {BUSY_POLL_US}"}
    names.update({k + "-base": v + " (--base-src)" for k, v in list(names.items()) if k != "linux"})
    lines = ["| offloads | forwarder | 64 B no-loss pps | (x Linux) | 64 B saturation pps | iperf3 TCP Gbit/s | (x Linux) "
             "| ping p50 us | p99 us | added p50 us |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for off in dict.fromkeys(r["offloads"] for r in results):
        plain = next((r for r in results if r["offloads"] == off and r["forwarder"] == "linux"), None)
        lowlat = next((r for r in results if r["offloads"] == off and r["forwarder"] == "linux-lowlat"), plain)
        for r in results:
            if r["offloads"] != off:
                continue
            # -lowlat kinds against the Linux bridge under the same CPU latency request
            base = lowlat if r["forwarder"].endswith("-lowlat") else plain
            def ratio(k):
                if base is None or not base.get(k) or r.get(k) is None:
                    return "-"
                return f"{r[k] / base[k]:.2f}"
            added = "-" if base is None or r.get("p50_us") is None or base.get("p50_us") is None else \
                f"{r['p50_us'] - base['p50_us']:+.0f}"
            lines.append(f"| {off} | {names.get(r['forwarder'], r['forwarder'])} | {r.get('no_loss_pps', '-')} | "
                         f"{ratio('no_loss_pps')} | {r.get('saturation_forwarded_pps', '-')} | {r.get('tcp_gbit', '-')} | "
                         f"{ratio('tcp_gbit')} | {r.get('p50_us', '-')} | {r.get('p99_us', '-')} | {added} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
