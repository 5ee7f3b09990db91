"""One measurement, run as its own process by bench_decode.py (private).

    python bench/_worker.py MODE CAPTURE [options]

MODE
    ulnet     the Pipeline read+decode loop; times import, time to first
              batch and the whole loop; samples the process memory
              (/proc/self/status) every --mem-every x 4096 packets (the
              same points whatever the batch size).
    compile   import + open + first fill + first decode of a (tiny) capture,
              each step timed: on an empty NUMBA_CACHE_DIR this is the JIT
              compile, on a filled one the cache load.
    dpkt      dpkt.pcap.Reader + dpkt.ethernet.Ethernet + isinstance checks
              for IP/IP6/TCP/UDP + read the ports.
    scapy     scapy PcapReader, reading IP/IPv6/TCP/UDP fields.
    profile   where ulnet's time goes, per batch size: source walker (fill),
              decode kernel, and the per-batch Python overhead of the
              Pipeline loop (loop time minus the two kernels).

Flow modes (bench_flows.py):
    flows       ``ulnet flows CAPTURE --format csv -o /dev/null`` run in-process
                through the CLI's main(), with the functions it calls wrapped
                by timers (CPU time of the process, time.process_time): source walker (fill), decode, FlowTable.process
                (flow kernel, with the inspection stage it calls back timed
                apart), records.to_columns, sinks.flows.to_record_batch
                (Arrow arrays), FlowWriter.write (Arrow CSV), FlowTable.flush
                and its flush_all kernel calls. First calls (kernels loaded
                from the numba cache) kept apart. Samples RssAnon/RssFile and
                the live flow count every --mem-every batches and just before
                the flush. --coalesce R: what-if, ended flows handed to the
                writer in chunks of at least R rows.
    dpkt-flows  a dictionary flow meter on dpkt: canonical 5-tuple -> [first,
                last, packets and bytes per direction]; records written with
                the csv module to /dev/null at the end.
    nfstream    NFStreamer(source=CAPTURE, n_meters=1, ...) iterated to the
                end (--dissections N: nDPI dissection packets, 0 = none).

Prints one line ``RESULT {json}`` on stdout. The timed region starts after
the imports (reported apart) and ends after the last packet.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

T_START = time.perf_counter()
T_START_CPU = time.process_time()     # interpreter start + site imports


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
    next_mem = a.mem_every * 4096
    for b in p:
        if first is None:
            first = time.perf_counter()
        n += b.n
        nb += 1
        if a.mem_every and n >= next_mem:     # every mem_every x 4096 packets, whatever the batch size
            next_mem = n + a.mem_every * 4096
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


# ----------------------------------------------------------------------------
def run_flows(a) -> None:
    """`ulnet flows CAPTURE --format csv -o OUT [extra]` run in-process through
    the CLI's own main(), with the stages it calls wrapped by timers (module
    attributes and methods, looked up at call time): whatever the pipeline
    does internally, the split follows it."""
    import collections
    # CPU time of this process, not wall time: the machine is shared, and a
    # pinned process waiting for its core would otherwise count the wait
    pc = time.process_time
    w0 = time.perf_counter()
    t0 = pc()
    import ulnet.cli.main as M
    import ulnet.cli.flows as CF
    import ulnet.pipeline as P
    import ulnet.sinks.flows as SF
    import ulnet.flow._kernels as FK
    from ulnet.counters import as_dict
    t_import = pc() - t0

    T = collections.defaultdict(float)
    N = collections.defaultdict(int)
    first = {}
    state = {"table": None, "pipe": None, "flush_at": None, "peak_anon": 0, "peak_file": 0, "peak_live": 0,
             "pending": [], "pending_rows": 0}

    def timed(key, fn, keep_first=False):
        def w(*args, **kw):
            x = pc()
            r = fn(*args, **kw)
            dt = pc() - x
            if keep_first and key not in first:
                first[key] = dt
            else:
                T[key] += dt
            N[key] += 1
            return r
        return w

    def sample():
        st = _status()
        state["peak_anon"] = max(state["peak_anon"], st["RssAnon"])
        state["peak_file"] = max(state["peak_file"], st["RssFile"])
        if state["table"] is not None:
            state["peak_live"] = max(state["peak_live"], state["table"].active_flows)
        return st

    # reading: wrap fill on every reader the pipeline opens
    orig_open = P.open_capture

    def open_capture(*args, **kw):
        r = orig_open(*args, **kw)
        r.fill = timed("fill", r.fill, keep_first=True)
        return r
    P.open_capture = open_capture
    P.decode = timed("decode", P.decode, keep_first=True)

    FT = CF.FlowTable
    orig_init = FT.__init__

    def ft_init(self, *args, **kw):
        state["rss_before_table"] = sample()
        x = pc()
        orig_init(self, *args, **kw)
        T["table"] += pc() - x
        state["table"] = self
        state["rss_after_table"] = sample()
    FT.__init__ = ft_init
    orig_process = timed("flow", FT.process, keep_first=True)

    def ft_process(self, *args, **kw):
        r = orig_process(self, *args, **kw)
        if a.mem_every and N["flow"] % a.mem_every == 0:
            sample()
        return r
    FT.process = ft_process
    orig_flush = timed("flush", FT.flush)

    def ft_flush(self, *args, **kw):
        if state["flush_at"] is None:
            state["rss_before_flush"] = sample()
            state["live_at_flush"] = self.active_flows
            state["flush_at"] = dict(T)
        return orig_flush(self, *args, **kw)
    FT.flush = ft_flush
    FK.flush_entries = timed("flush_all", FK.flush_entries)   # the end-of-input export kernel (called per chunk)
    insp_cls = getattr(CF, "Inspector", None)
    if insp_cls is not None:
        insp_cls.process = timed("inspect", insp_cls.process, keep_first=True)
    CF.to_columns = timed("records", CF.to_columns)
    SF.to_record_batch = timed("arrow", SF.to_record_batch)
    SF.FlowWriter.write = timed("write", SF.FlowWriter.write)
    SF.FlowWriter.close = timed("close", SF.FlowWriter.close)

    if a.coalesce:
        # what-if: hand the ended flows to the writer in chunks of >= a.coalesce rows
        import dataclasses
        import numpy as np

        def concat(chs):
            x = pc()
            kw = {}
            for fd in dataclasses.fields(chs[0]):
                v = [getattr(ch, fd.name) for ch in chs]
                kw[fd.name] = None if v[0] is None else np.concatenate(v)
            c = type(chs[0])(**kw)
            T["concat"] += pc() - x
            return c

        orig_take = P.Pipeline.take_ended

        def take_ended(self):
            got = orig_take(self)
            state["pending"].extend(got)
            state["pending_rows"] += sum(len(c) for c in got)
            if state["pending_rows"] < a.coalesce:
                return []
            out, state["pending"], state["pending_rows"] = [concat(state["pending"])], [], 0
            return out
        P.Pipeline.take_ended = take_ended
        orig_finish = P.Pipeline.finish_flows

        def finish_flows(self):
            got = state["pending"] + list(orig_finish(self))
            state["pending"], state["pending_rows"] = [], 0
            out, cur, rows = [], [], 0
            for c in got:
                cur.append(c)
                rows += len(c)
                if rows >= a.coalesce:
                    out.append(concat(cur))
                    cur, rows = [], 0
            if cur:
                out.append(concat(cur))
            return out
        P.Pipeline.finish_flows = finish_flows

    orig_pipe_init = P.Pipeline.__init__

    def pipe_init(self, *args, **kw):
        orig_pipe_init(self, *args, **kw)
        state["pipe"] = self
    P.Pipeline.__init__ = pipe_init

    argv = ["flows", a.capture, "--format", "csv", "-o", a.output]
    if a.max_flows:
        argv += ["--max-flows", str(a.max_flows)]
    if a.extra:
        argv += a.extra.split()
    t0 = pc()
    w1 = time.perf_counter()
    rc = M.main(argv)
    t_run = pc() - t0
    wall_run = time.perf_counter() - w1
    sample()
    if rc:
        raise SystemExit(f"ulnet flows exited {rc}")
    table, pipe = state["table"], state["pipe"]
    fa = state["flush_at"] or dict(T)
    after = {k: T[k] - fa.get(k, 0.0) for k in ("records", "arrow", "write")}
    flows = int(as_dict(pipe.counters).get("flow.created", 0))
    mem = table.memory_bytes()
    meta = table.meta_bytes() if hasattr(table, "meta_bytes") else 0
    emit({
        "mode": "flows", "argv": argv, "packets": int(pipe.seen), "flows": flows,
        "batches": N["decode"],
        "chunks": N["records"], "coalesce": a.coalesce, "inspect": insp_cls is not None and "inspect" in N,
        "max_flows": table.capacity, "memory_bytes": mem, "meta_bytes": meta,
        "clock": "process_time", "cpu_at_start": T_START_CPU, "cpu_at_end": time.process_time(),
        "wall_import": w1 - w0, "wall_run": wall_run,
        "t_import": t_import, "t_run": t_run, "t": dict(T), "calls": dict(N), "first": first,
        "t_flush_records": after["records"], "t_flush_arrow": after["arrow"], "t_flush_write": after["write"],
        "rss_before_table_kb": state.get("rss_before_table"), "rss_after_table_kb": state.get("rss_after_table"),
        "rss_before_flush_kb": state.get("rss_before_flush"), "live_at_flush": state.get("live_at_flush"),
        "peak_rss_anon_kb": state["peak_anon"], "peak_rss_file_kb": state["peak_file"],
        "peak_live_flows": state["peak_live"],
        "counts": {k: int(v) for k, v in as_dict(pipe.counters).items()
                   if k.startswith(("flow.", "source.packets", "inspect."))},
        "t_process": time.perf_counter() - T_START,
    })


def run_dpkt_flows(a) -> None:
    import csv
    import socket
    import dpkt
    Ethernet, IP, IP6, TCP, UDP = (dpkt.ethernet.Ethernet, dpkt.ip.IP, dpkt.ip6.IP6,
                                   dpkt.tcp.TCP, dpkt.udp.UDP)
    flows = {}
    n = nerr = 0
    limit = a.limit or -1
    t0 = time.perf_counter()
    with open(a.capture, "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            if n == limit:
                break
            n += 1
            try:
                ip = Ethernet(buf).data
            except dpkt.Error:
                nerr += 1
                continue
            if not isinstance(ip, (IP, IP6)):
                continue
            l4 = ip.data
            if isinstance(l4, (TCP, UDP)):
                sp, dp = l4.sport, l4.dport
            else:
                sp = dp = 0
            proto = ip.p if isinstance(ip, IP) else ip.nxt
            a1, a2 = (ip.src, sp), (ip.dst, dp)
            if a1 <= a2:
                key, d = (proto, a1, a2), 0
            else:
                key, d = (proto, a2, a1), 1
            fl = flows.get(key)
            size = len(buf)
            if fl is None:
                # first, last, src side (0: a1 is first in key), pk0, by0, pk1, by1
                flows[key] = [ts, ts, d, 1, size, 0, 0]
            else:
                fl[1] = ts
                if d == fl[2]:
                    fl[3] += 1
                    fl[4] += size
                else:
                    fl[5] += 1
                    fl[6] += size
    t_meter = time.perf_counter() - t0
    with open(a.output, "w", newline="") as g:
        w = csv.writer(g)
        w.writerow(["src_ip", "src_port", "dst_ip", "dst_port", "protocol", "first", "last",
                    "src2dst_packets", "src2dst_bytes", "dst2src_packets", "dst2src_bytes"])
        for (proto, e1, e2), fl in flows.items():
            s, dd = (e1, e2) if fl[2] == 0 else (e2, e1)
            fam = socket.AF_INET if len(s[0]) == 4 else socket.AF_INET6
            w.writerow([socket.inet_ntop(fam, s[0]), s[1], socket.inet_ntop(fam, dd[0]), dd[1], proto,
                        fl[0], fl[1], fl[3], fl[4], fl[5], fl[6]])
    t = time.perf_counter() - t0
    emit({"mode": "dpkt-flows", "packets": n, "flows": len(flows), "t_loop": t, "t_meter": t_meter,
          "errors": nerr, "t_process": time.perf_counter() - T_START})


def run_nfstream(a) -> None:
    t0 = time.perf_counter()
    from nfstream import NFStreamer
    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    s = NFStreamer(source=a.capture, n_meters=1, n_dissections=a.dissections,
                   statistical_analysis=False, splt_analysis=0)
    nf = npk = 0
    for f in s:
        nf += 1
        npk += f.bidirectional_packets
    t = time.perf_counter() - t0
    import nfstream
    emit({"mode": "nfstream", "flows": nf, "packets_in_flows": npk, "t_loop": t, "t_import": t_import,
          "dissections": a.dissections, "version": getattr(nfstream, "__version__", "?"),
          "t_process": time.perf_counter() - T_START})


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["ulnet", "compile", "dpkt", "scapy", "profile", "flows", "dpkt-flows",
                                     "nfstream"])
    ap.add_argument("capture")
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--limit", type=int, default=0, help="stop after this many packets (0: all)")
    ap.add_argument("--mem-every", type=int, default=16, help="sample memory every N batches (0: never); read+decode: every N x 4096 packets")
    ap.add_argument("--sizes", default="1024,4096,16384", help="profile: batch sizes")
    ap.add_argument("--repeat", type=int, default=5, help="profile: runs per batch size (best kept)")
    ap.add_argument("--max-flows", type=int, default=0, help="flows: table capacity (0: ulnet's default)")
    ap.add_argument("-o", dest="output", default="/dev/null", help="flows, dpkt-flows: record output")
    ap.add_argument("--extra", default="", help="flows: more `ulnet flows` options, one string")
    ap.add_argument("--coalesce", type=int, default=0,
                    help="flows: convert ended flows in chunks of at least this many rows (0: as the CLI)")
    ap.add_argument("--dissections", type=int, default=0, help="nfstream: n_dissections (default 0)")
    a = ap.parse_args(argv)
    {"ulnet": run_ulnet, "compile": run_compile, "dpkt": run_dpkt, "scapy": run_scapy,
     "profile": run_profile, "flows": run_flows, "dpkt-flows": run_dpkt_flows,
     "nfstream": run_nfstream}[a.mode](a)


if __name__ == "__main__":
    main()
