"""One measurement, run as its own process by bench_decode.py (private).

    python bench/_worker.py MODE CAPTURE [options]

MODE
    ulnet     the Pipeline read+decode loop; times import, time to first
              batch and the whole loop; samples the process memory
              (/proc/self/status) every --mem-every batches.
    compile   import + open + first fill + first decode of a (tiny) capture,
              each step timed: on an empty NUMBA_CACHE_DIR this is the JIT
              compile, on a filled one the cache load.
    dpkt      dpkt.pcap.Reader + dpkt.ethernet.Ethernet + isinstance checks
              for IP/IP6/TCP/UDP + read the ports.
    scapy     scapy PcapReader, reading IP/IPv6/TCP/UDP fields.
    profile   where ulnet's time goes, per batch size: source walker (fill),
              decode kernel, and the per-batch Python overhead of the
              Pipeline loop (loop time minus the two kernels).

Prints one line ``RESULT {json}`` on stdout. The timed region starts after
the imports (reported apart) and ends after the last packet.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

T_START = time.perf_counter()


def _status() -> dict[str, int]:
    """VmRSS / VmHWM / RssAnon / RssFile of this process, in kB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0])
    return out


def emit(d: dict) -> None:
    d["status_end_kb"] = _status()
    print("RESULT " + json.dumps(d), flush=True)


# ----------------------------------------------------------------------------
def run_ulnet(a) -> None:
    t0 = time.perf_counter()
    from ulnet.pipeline import Pipeline
    from ulnet.counters import C_SRC_PACKETS, C_DEC_IPV4, C_DEC_IPV6, C_DEC_TCP, C_DEC_UDP
    t_import = time.perf_counter() - t0

    peak_anon = peak_file = 0
    t0 = time.perf_counter()
    p = Pipeline([a.capture], batch_size=a.batch_size)
    first = None
    n = nb = 0
    for b in p:
        if first is None:
            first = time.perf_counter()
        n += b.n
        nb += 1
        if a.mem_every and nb % a.mem_every == 0:
            s = _status()
            peak_anon = max(peak_anon, s["RssAnon"])
            peak_file = max(peak_file, s["RssFile"])
    t_end = time.perf_counter()
    s = _status()
    peak_anon = max(peak_anon, s["RssAnon"])
    peak_file = max(peak_file, s["RssFile"])
    c = p.counters
    emit({
        "mode": "ulnet", "packets": n, "batches": nb, "batch_size": a.batch_size,
        "t_import": t_import,
        "t_first_batch": (first - t0) if first is not None else None,
        "t_loop": t_end - t0,
        "t_steady": (t_end - first) if first is not None else None,
        "peak_rss_anon_kb": peak_anon, "peak_rss_file_kb": peak_file,
        "counts": {"source.packets": int(c[C_SRC_PACKETS]), "ipv4": int(c[C_DEC_IPV4]),
                   "ipv6": int(c[C_DEC_IPV6]), "tcp": int(c[C_DEC_TCP]), "udp": int(c[C_DEC_UDP])},
        "t_process": time.perf_counter() - T_START,
    })


def run_compile(a) -> None:
    t0 = time.perf_counter()
    import ulnet.pipeline  # noqa: F401  (what a user imports)
    from ulnet.batch import PacketBatch
    from ulnet.counters import new_counters
    from ulnet.decode import decode
    from ulnet.sources import open_capture
    t1 = time.perf_counter()
    r = open_capture(a.capture)
    c = new_counters()
    r.counters = c
    b = PacketBatch(a.batch_size)
    t2 = time.perf_counter()
    n = r.fill(b)
    t3 = time.perf_counter()
    b.n = n
    decode(b, c)
    t4 = time.perf_counter()
    r.close()
    emit({"mode": "compile", "packets": int(n), "t_import": t1 - t0, "t_open": t2 - t1,
          "t_fill": t3 - t2, "t_decode": t4 - t3, "t_first_batch": t4 - t1,
          "t_process": time.perf_counter() - T_START})


# ----------------------------------------------------------------------------
def run_dpkt(a) -> None:
    import dpkt
    Ethernet, IP, IP6, TCP, UDP = (dpkt.ethernet.Ethernet, dpkt.ip.IP, dpkt.ip6.IP6,
                                   dpkt.tcp.TCP, dpkt.udp.UDP)
    n = nip = ntcp = nudp = nerr = 0
    ports = 0
    limit = a.limit or -1
    t0 = time.perf_counter()
    with open(a.capture, "rb") as f:
        for _ts, buf in dpkt.pcap.Reader(f):
            if n == limit:
                break
            n += 1
            try:
                eth = Ethernet(buf)
            except dpkt.Error:
                nerr += 1
                continue
            ip = eth.data
            if isinstance(ip, (IP, IP6)):
                nip += 1
                l4 = ip.data
                if isinstance(l4, TCP):
                    ntcp += 1
                    ports ^= l4.sport ^ l4.dport
                elif isinstance(l4, UDP):
                    nudp += 1
                    ports ^= l4.sport ^ l4.dport
    t = time.perf_counter() - t0
    emit({"mode": "dpkt", "packets": n, "t_loop": t,
          "counts": {"ip": nip, "tcp": ntcp, "udp": nudp, "errors": nerr}, "checksum": ports,
          "t_process": time.perf_counter() - T_START})


def run_scapy(a) -> None:
    import logging
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    from scapy.utils import PcapReader
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    n = nip = ntcp = nudp = 0
    acc = 0
    limit = a.limit or -1
    t0 = time.perf_counter()
    with PcapReader(a.capture) as rd:
        for pkt in rd:
            if n == limit:
                break
            n += 1
            if IP in pkt:
                ip = pkt[IP]
                nip += 1
                _ = (ip.src, ip.dst, ip.proto, ip.ttl)
            elif IPv6 in pkt:
                ip = pkt[IPv6]
                nip += 1
                _ = (ip.src, ip.dst, ip.nh, ip.hlim)
            if TCP in pkt:
                t = pkt[TCP]
                ntcp += 1
                acc ^= t.sport ^ t.dport ^ int(t.flags)
            elif UDP in pkt:
                u = pkt[UDP]
                nudp += 1
                acc ^= u.sport ^ u.dport
    t = time.perf_counter() - t0
    emit({"mode": "scapy", "packets": n, "t_loop": t,
          "counts": {"ip": nip, "tcp": ntcp, "udp": nudp}, "checksum": acc,
          "t_process": time.perf_counter() - T_START})


# ----------------------------------------------------------------------------
def run_profile(a) -> None:
    from ulnet.pipeline import Pipeline
    from ulnet.batch import PacketBatch
    from ulnet.counters import new_counters
    from ulnet.decode import decode
    from ulnet.sources import open_capture
    pc = time.perf_counter

    def split(bs: int) -> dict:
        r = open_capture(a.capture)
        c = new_counters()
        r.counters = c
        b = PacketBatch(bs)
        tf = td = 0.0
        n = nb = 0
        t0 = pc()
        while True:
            x = pc()
            k = r.fill(b)
            y = pc()
            tf += y - x
            if not k:
                break
            b.n = k
            decode(b, c)
            td += pc() - y
            n += k
            nb += 1
        tt = pc() - t0
        r.close()
        return {"packets": n, "batches": nb, "fill": tf, "decode": td, "manual_loop": tt}

    def pipe(bs: int) -> float:
        p = Pipeline([a.capture], batch_size=bs)
        t0 = pc()
        for _ in p:
            pass
        return pc() - t0

    sizes = [int(s) for s in a.sizes.split(",")]
    # one short pass to load every kernel from the cache before timing
    split(sizes[0])
    rows = []
    for bs in sizes:
        runs = []
        for _ in range(a.repeat):
            s = split(bs)
            s["other"] = s["manual_loop"] - s["fill"] - s["decode"]
            s["pipeline"] = pipe(bs)
            runs.append(s)
        # the machine is shared and noise only adds time: the split comes from
        # the fastest fill+decode run, the Pipeline figure is its own best
        best = min(runs, key=lambda r: r["manual_loop"])
        row = {k: best[k] for k in ("fill", "decode", "other", "manual_loop")}
        row["pipeline"] = min(r["pipeline"] for r in runs)
        row.update(batch_size=bs, packets=best["packets"], batches=best["batches"], runs=runs)
        rows.append(row)
    emit({"mode": "profile", "rows": rows})


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["ulnet", "compile", "dpkt", "scapy", "profile"])
    ap.add_argument("capture")
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--limit", type=int, default=0, help="stop after this many packets (0: all)")
    ap.add_argument("--mem-every", type=int, default=16, help="sample memory every N batches (0: never)")
    ap.add_argument("--sizes", default="1024,4096,16384", help="profile: batch sizes")
    ap.add_argument("--repeat", type=int, default=5, help="profile: runs per batch size (best kept)")
    a = ap.parse_args(argv)
    {"ulnet": run_ulnet, "compile": run_compile, "dpkt": run_dpkt, "scapy": run_scapy,
     "profile": run_profile}[a.mode](a)


if __name__ == "__main__":
    main()
