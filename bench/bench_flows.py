#!/usr/bin/env python3
"""Benchmark: `ulnet flows` against ndpiReader, NFStream, a dpkt flow meter and tcpdump.

    .venv/bin/python bench/bench_flows.py [--packets 2000000] [--out bench/out]

1. Uses the benchmark capture of bench_decode.py (built once with
   ../shared/bench/make_corpus.py, cached in --out) and runs, each as its
   own process pinned to one core (``taskset -c CPU``) under
   ``/usr/bin/time -v``, interleaved --repeat times (median kept):
     * ``ulnet flows X --format csv -o /dev/null``
     * ``ndpiReader -i X -q -n 1``  (nDPI's reader: flows + DPI)
     * ``tcpdump -r X -w /dev/null`` (libpcap read only)
   then once each: NFStream (``NFStreamer(source=X, n_meters=1,
   n_dissections=0|20, statistical_analysis=False)`` iterated) and a dpkt
   dictionary flow meter. Rates are whole-process (end to end).
2. Memory per tracked flow: ``FlowTable(max_flows=N).memory_bytes() / N``
   and the measured RSS growth with 10 M live flows.
3. 10 M concurrent flows: writes (once, cached) a synthetic capture of
   --many-flows distinct UDP 5-tuples (one packet each, a reply for every
   --reply-every-th) within the idle timeout, and runs
   ``ulnet flows X --max-flows 10500000 --format csv -o /dev/null`` on it.
4. Where ulnet's time goes: the same steps as ``ulnet flows``, each timed
   (bench/_worker.py flows), on both captures.
Prints one Markdown table, the targets (met/missed) and the time split, and
writes them to OUT/flows.md; raw figures to OUT/flows.json.

ulnet is run from a snapshot of src/ulnet at git HEAD (OUT/src-REV, with
its own NUMBA_CACHE_DIR) so edits in progress in the work tree do not change
the code mid-run; --worktree snapshots the work tree instead.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _common import (  # bench/ is on sys.path when this script runs
    HERE, ROOT, MAKE_CORPUS, CORPUS_DIR,
    log, build_corpus, warm_page_cache, Runner, med,
    fmt_rate, fmt_mb, fmt_secs, versions, machine, git_state,
)

# targets from the issue ("Flow tracking", speed and memory)
T_NDPI = 5.0              # ulnet flows >= 5x ndpiReader
T_TCPDUMP = 1.0           # ulnet flows >= tcpdump -r X -w /dev/null
T_BYTES_PER_FLOW = 200    # FlowTable.memory_bytes() / max_flows
T_RSS_10M = 4 << 30       # peak RSS with 10 M concurrent flows
T_RATE_10M = 0.5          # packets/s on the 10 M flow capture >= half the normal capture's

MANY_FLOWS_VERSION = "1"  # bump when write_many_flows changes (cache key)


# ---------------------------------------------------------------------------
# the code under test: a snapshot of src/ulnet
# ---------------------------------------------------------------------------
def snapshot(out: Path, worktree: bool, want: str = "HEAD") -> tuple[Path, str]:
    """Copy src/ulnet (commit `want`, or the work tree) to OUT/src-*/src;
    return the directory for PYTHONPATH and a description."""
    def short(r):
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", r],
                              capture_output=True, text=True, check=True).stdout.strip()
    head = short("HEAD")
    if not worktree:
        rev = short(want)
        dst = out / f"src-{rev}"
        if not (dst / "src" / "ulnet" / "__init__.py").exists():
            tmp = out / f"src-{rev}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            arch = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src/ulnet"],
                                  capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(tmp)], input=arch, check=True)
            tmp.rename(dst)
        if rev == head:
            dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
                                   capture_output=True, text=True).stdout.strip()
            return dst / "src", f"{rev} (git HEAD{'; uncommitted changes in src/ not measured' if dirty else ''})"
        return dst / "src", f"{rev} (`--rev {want}`; HEAD is {head})"
    rev = head
    dst = out / "src-worktree"
    h = hashlib.sha256()
    for p in sorted((ROOT / "src" / "ulnet").rglob("*.py")):
        h.update(str(p.relative_to(ROOT)).encode() + b"\0" + p.read_bytes())
    tag = h.hexdigest()[:12]
    stamp = dst / "stamp"
    if not (stamp.exists() and stamp.read_text() == tag):
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(ROOT / "src" / "ulnet", dst / "src" / "ulnet",
                        ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
        stamp.write_text(tag)
    return dst / "src", f"{rev} + work tree src/ (sha256 of the .py files {tag})"


# ---------------------------------------------------------------------------
# the many-flows capture
# ---------------------------------------------------------------------------
FRAME = 60      # Ethernet + IPv4 + UDP + 18 bytes payload (the Ethernet minimum without FCS)
REC = 16 + FRAME


def write_many_flows(path: Path, nflows: int, reply_every: int, span_s: float = 100.0,
                     start: int = 1_700_000_000, chunk: int = 1 << 20) -> dict:
    """Classic pcap (LE, microseconds, Ethernet) of nflows distinct UDP
    5-tuples: packet k (k < nflows) opens flow k (10.0.0.0 + k:1024 + k % 60000
    -> 198.18.0.0 + k % 131072:9000 + k % 7); then flow k gets one reply for
    every k % reply_every == 0 (0: none), in flow order. Timestamps evenly
    spread over span_s seconds (< the 120 s idle timeout): every flow is
    still live at the last packet. Cached: rebuilt when the parameters or
    this function's version change."""
    stamp = path.with_suffix(".pcap.stamp")
    key = f"v{MANY_FLOWS_VERSION} flows={nflows} reply_every={reply_every} span={span_s} start={start}"
    nrep = 0 if reply_every <= 0 else (nflows + reply_every - 1) // reply_every
    total = nflows + nrep
    info = {"flows": nflows, "packets": total, "replies": nrep, "span_s": span_s}
    if path.exists() and stamp.exists() and stamp.read_text().strip() == key \
            and path.stat().st_size == 24 + total * REC:
        log(f"many-flows capture cached: {path}")
        return info
    if nflows > 1 << 24:
        raise ValueError("at most 2**24 flows (sources are 10.0.0.0/8)")
    log(f"writing {path}: {nflows} flows, {total} packets ({24 + total * REC:,} bytes) ...")
    t0 = time.perf_counter()
    tmp = path.with_suffix(".tmp")
    step_us = span_s * 1e6 / total
    with open(tmp, "wb") as f:
        f.write(np.array([0xA1B2C3D4], "<u4").tobytes()
                + np.array([2, 4], "<u2").tobytes() + np.array([0, 0, 65535, 1], "<u4").tobytes())
        for i0 in range(0, total, chunk):
            i = np.arange(i0, min(total, i0 + chunk), dtype=np.int64)
            m = len(i)
            reply = i >= nflows
            k = np.where(reply, (i - nflows) * max(reply_every, 1), i)
            cli = (0x0A000000 + k).astype(np.uint32)
            srv = (0xC6120000 + k % 131072).astype(np.uint32)
            cport = (1024 + k % 60000).astype(np.uint32)
            sport_ = (9000 + k % 7).astype(np.uint32)
            src = np.where(reply, srv, cli)
            dst = np.where(reply, cli, srv)
            sp = np.where(reply, sport_, cport)
            dp = np.where(reply, cport, sport_)
            ts = start * 1_000_000 + (i * step_us).astype(np.int64)
            r = np.zeros((m, REC), dtype=np.uint8)
            hdr = r[:, :16].view("<u4")
            hdr[:, 0] = ts // 1_000_000
            hdr[:, 1] = ts % 1_000_000
            hdr[:, 2] = FRAME
            hdr[:, 3] = FRAME
            e = 16
            r[:, e:e + 6] = (2, 0, 0, 0, 0, 2)
            r[:, e + 6:e + 12] = (2, 0, 0, 0, 0, 1)
            r[:, e + 12:e + 14] = (0x08, 0x00)
            ip = e + 14
            ipid = (k & 0xFFFF).astype(np.uint32)
            r[:, ip:ip + 4] = (0x45, 0, 0, 46)
            r[:, ip + 4] = ipid >> 8
            r[:, ip + 5] = ipid & 0xFF
            r[:, ip + 6:ip + 10] = (0x40, 0, 64, 17)
            cs = (0x4500 + 46 + ipid + 0x4000 + 0x4011 + (src >> 16) + (src & 0xFFFF)
                  + (dst >> 16) + (dst & 0xFFFF)).astype(np.uint32)
            cs = (cs & 0xFFFF) + (cs >> 16)
            cs = (cs & 0xFFFF) + (cs >> 16)
            cs = ~cs & 0xFFFF
            r[:, ip + 10] = cs >> 8
            r[:, ip + 11] = cs & 0xFF
            for b in range(4):
                r[:, ip + 12 + b] = (src >> (24 - 8 * b)) & 0xFF
                r[:, ip + 16 + b] = (dst >> (24 - 8 * b)) & 0xFF
            u = ip + 20
            r[:, u] = sp >> 8
            r[:, u + 1] = sp & 0xFF
            r[:, u + 2] = dp >> 8
            r[:, u + 3] = dp & 0xFF
            r[:, u + 4:u + 6] = (0, 26)
            f.write(r.tobytes())
    tmp.rename(path)
    stamp.write_text(key + "\n")
    log(f"written in {time.perf_counter() - t0:.1f} s")
    return info


# ---------------------------------------------------------------------------
def ndpi_counts(text: str) -> dict:
    d = {}
    for key, pat in (("flows", r"Unique flows:\s+(\d+)"), ("ip_packets", r"IP packets:\s+(\d+)"),
                     ("processing_ms", r"Packet Processing Time:\s+(\d+) msec"),
                     ("throughput", r"nDPI throughput:\s+([\d.]+ [KM]?) pps")):
        m = re.search(pat, text)
        if m:
            d[key] = m.group(1) if key == "throughput" else int(m.group(1))
    return d


def ns(x: float, n: int) -> str:
    return f"{x * 1e9 / n:.0f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=2_000_000, help="packets in the benchmark capture (default 2000000)")
    ap.add_argument("--out", type=Path, default=HERE / "out", help="cache and results directory (default bench/out)")
    ap.add_argument("--repeat", type=int, default=5,
                    help="interleaved runs of ulnet, ndpiReader and tcpdump; median kept (default 5)")
    ap.add_argument("--cpu", type=int, default=0, help="core to pin every run to (taskset -c; default 0)")
    ap.add_argument("--many-flows", type=int, default=10_000_000, help="flows in the synthetic capture (default 10000000)")
    ap.add_argument("--reply-every", type=int, default=4,
                    help="one reply packet for every Nth flow of the synthetic capture (default 4; 0 none)")
    ap.add_argument("--max-flows", type=int, default=10_500_000,
                    help="ulnet --max-flows on the synthetic capture (default 10500000)")
    ap.add_argument("--repeat-many", type=int, default=1, help="runs on the synthetic capture (default 1)")
    ap.add_argument("--dpkt-packets", type=int, default=0, help="dpkt flow meter packets (default 0: all)")
    ap.add_argument("--no-nfstream-dpi", action="store_true", help="skip NFStream with nDPI dissection")
    ap.add_argument("--no-profile", action="store_true", help="skip the time split")
    ap.add_argument("--rev", default="HEAD", help="git commit of src/ulnet to measure (default HEAD)")
    ap.add_argument("--worktree", action="store_true", help="measure src/ as it is in the work tree, not a commit")
    ap.add_argument("--sample", type=float, default=0.05, help="RSS sampling period of the parent, s (default 0.05)")
    ap.add_argument("--make-corpus", type=Path, default=MAKE_CORPUS)
    ap.add_argument("--corpus-dir", type=Path, default=CORPUS_DIR)
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    a = ap.parse_args(argv)

    out: Path = a.out
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    mach0 = machine()
    cap = build_corpus(out, a.packets, a.make_corpus, a.corpus_dir)

    # the many-flows capture: scale down when the disk is short
    nflows = a.many_flows
    need = lambda nf: 24 + (nf + (nf // a.reply_every if a.reply_every > 0 else 0) + 1) * REC  # noqa: E731
    free = shutil.disk_usage(out).free
    scaled = None
    many_path = out / f"flows-{nflows}-r{a.reply_every}.pcap"
    if not many_path.exists() and need(nflows) * 2 > free:
        while nflows > 100_000 and need(nflows) * 2 > free:
            nflows //= 2
        scaled = f"disk short ({free / 1e9:.1f} GB free): scaled down to {nflows} flows"
        log(scaled)
        many_path = out / f"flows-{nflows}-r{a.reply_every}.pcap"
    many = write_many_flows(many_path, nflows, a.reply_every)

    py_path, code_desc = snapshot(out, a.worktree, a.rev)
    env = {"PYTHONPATH": str(py_path), "NUMBA_CACHE_DIR": str(out / "numba-cache")}
    ulnet_bin = str(Path(sys.executable).parent / "ulnet")
    R = Runner(a.cpu)
    S = a.sample
    res: dict = {"args": {k: str(v) for k, v in vars(a).items()}, "capture": str(cap),
                 "capture_bytes": cap.stat().st_size, "many": many, "many_capture": str(many_path),
                 "code": code_desc}

    def ulnet_cmd(x: Path, *extra: str) -> list[str]:
        return [ulnet_bin, "flows", str(x), *extra, "--format", "csv", "-o", "/dev/null"]

    ndpi_bin = shutil.which("ndpiReader")
    ndpi_cmd = [ndpi_bin, "-i", str(cap), "-q", "-n", "1"] if ndpi_bin else None
    if not ndpi_bin:
        log("ndpiReader missing (apt-get install -y libndpi-bin): its row is skipped")
    try:
        importlib.import_module("nfstream")
        have_nfs = True
    except Exception as e:  # pragma: no cover - report what runs
        have_nfs = False
        res["nfstream_error"] = repr(e)
        log(f"NFStream cannot be imported ({e!r}): its rows are skipped")

    # --- 0. warm-up: compile into the snapshot's numba cache, check it runs;
    # byte-compile the snapshot as an install (or `ulnet warm`) does, so no
    # run compiles Python modules from source (PYTHONDONTWRITEBYTECODE)
    warm_page_cache(cap)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(py_path / "ulnet")],
                   check=False, stdout=subprocess.DEVNULL)
    log(f"ulnet under test: {code_desc}; warm-up on the capture (fills the numba cache) ...")
    t0 = time.perf_counter()
    try:
        R.run(ulnet_cmd(cap), env=env)
    except RuntimeError as e:
        log(f"ulnet does not run at {code_desc}; pick a commit that does with --rev (or --worktree):\n"
            + "\n".join(str(e).splitlines()[:12]))
        return 2
    log(f"warm-up {time.perf_counter() - t0:.1f} s")

    # --- 1. interleaved: ulnet, ndpiReader, tcpdump
    ul, nd, td = [], [], []
    for k in range(a.repeat):
        log(f"round {k + 1}/{a.repeat}: ulnet flows, ndpiReader, tcpdump ...")
        ul.append(R.run(ulnet_cmd(cap), env=env, sample=S))
        if ndpi_cmd:
            nd.append(R.run(ndpi_cmd, sample=S))
        td.append(R.run(["tcpdump", "-r", str(cap), "-w", "/dev/null"], sample=S))
    res["ulnet"], res["ndpi"], res["tcpdump"] = ul, nd, td
    nd_counts = {}
    if ndpi_cmd:
        log("ndpiReader once more without -q (flow count only, not timed) ...")
        nd_counts = ndpi_counts(R.run([ndpi_bin, "-i", str(cap), "-n", "1"])["stdout"])
        res["ndpi_counts"] = nd_counts

    # --- 2. once each: NFStream, dpkt
    nfs = []
    if have_nfs:
        for d in ([0] if a.no_nfstream_dpi else [0, 20]):
            log(f"NFStream n_dissections={d} ...")
            try:
                nfs.append(R.worker("nfstream", cap, "--dissections", str(d), sample=S))
            except RuntimeError as e:
                res.setdefault("nfstream_error", str(e)[-2000:])
                log(f"NFStream failed: {str(e)[-500:]}")
                break
    res["nfstream"] = nfs
    log("dpkt flow meter ...")
    dp = R.worker("dpkt-flows", cap, "--limit", str(a.dpkt_packets), sample=S)
    res["dpkt"] = dp
    log(f"dpkt: {dp['packets']} packets in {dp['wall']:.1f} s")

    # --- 3. many flows: alternate with the normal capture
    warm_page_cache(many_path)
    mf, ul2 = [], []
    for k in range(a.repeat_many):
        log(f"many flows {k + 1}/{a.repeat_many}: ulnet on the normal capture, then on {many_path.name} ...")
        ul2.append(R.run(ulnet_cmd(cap), env=env, sample=S))
        mf.append(R.run(ulnet_cmd(many_path, "--max-flows", str(a.max_flows)), env=env, sample=S))
    res["many_runs"], res["ulnet_beside_many"] = mf, ul2

    # --- 4. where the time goes (and memory per flow from the many-flows run)
    prof = {}
    log("time split: normal capture ...")
    prof["normal"] = R.worker("flows", cap, env=env)
    # (the ">= 65536-row chunks" what-if is how the flow table hands rows over since 2026-11-26)
    log("time split + RSS growth: many-flows capture ...")
    prof["many"] = R.worker("flows", many_path, "--max-flows", str(a.max_flows), env=env)
    res["profile"] = prof

    # ------------------------------------------------------------------ report
    N = a.packets
    all_ul = ul + ul2
    ul_t = [r["wall"] for r in ul]
    ul_rate = N / med(ul_t)
    ul_rate_all = N / med([r["wall"] for r in all_ul])
    td_rate = N / med([r["wall"] for r in td])
    nd_rate = N / med([r["wall"] for r in nd]) if nd else None

    def rss(rs):
        v = [r["maxrss_kb"] for r in rs if r.get("maxrss_kb")]
        return med(v) if v else None

    def split(rs):
        an = max(r.get("sampled_peak_anon_kb", 0) for r in rs)
        fi = max(r.get("sampled_peak_file_kb", 0) for r in rs)
        return f"{fmt_mb(an)} / {fmt_mb(fi)}"

    def ratio(rate):
        return f"{ul_rate / rate:.2f}x" if rate else "-"

    flows_ul = prof["normal"]["flows"]
    def cpu(rs):
        return f"{med([r['cpu_s'] for r in rs]):.2f}"

    rows = [
        ("`ulnet flows X --format csv -o /dev/null`", N, f"{flows_ul:,}", fmt_secs(ul_t), cpu(ul), ul_rate,
         "1.00x", fmt_mb(rss(ul)), split(ul)),
    ]
    if nd:
        rows.append(("`ndpiReader -i X -q -n 1` (nDPI %s: flows + DPI)" % versions_ndpi(ndpi_bin), N,
                     f"{nd_counts.get('flows', 0):,}" if nd_counts else "-",
                     fmt_secs([r["wall"] for r in nd]), cpu(nd), nd_rate, ratio(nd_rate), fmt_mb(rss(nd)), split(nd)))
    for r in nfs:
        rate = N / r["wall"]
        what = "no DPI" if r["dissections"] == 0 else f"nDPI dissection, {r['dissections']} packets"
        rows.append((f"NFStream {r['version']} (`n_meters=1, n_dissections={r['dissections']}`; {what})", N,
                     f"{r['flows']:,}", fmt_secs([r["wall"]]), cpu([r]), rate, ratio(rate), fmt_mb(r["maxrss_kb"]),
                     split([r])))
    dp_rate = dp["packets"] / dp["wall"]
    rows.append(("dpkt dict flow meter (5-tuple -> packets/bytes per direction; CSV at the end)", dp["packets"],
                 f"{dp['flows']:,}", fmt_secs([dp["wall"]]), cpu([dp]), dp_rate, ratio(dp_rate), fmt_mb(dp["maxrss_kb"]),
                 split([dp])))
    rows.append(("`tcpdump -r X -w /dev/null` (libpcap read only)", N, "-", fmt_secs([r["wall"] for r in td]),
                 cpu(td), td_rate, ratio(td_rate), fmt_mb(rss(td)), split(td)))
    n_many = many["packets"]
    mf_t = [r["wall"] for r in mf]
    mf_rate = n_many / med(mf_t)
    rows.append((f"`ulnet flows Y --max-flows {a.max_flows} --format csv -o /dev/null` "
                 f"(Y = {many['flows']:,} concurrent UDP flows)", n_many, f"{prof['many']['flows']:,}",
                 fmt_secs(mf_t), cpu(mf), mf_rate, ratio(mf_rate), fmt_mb(rss(mf)), split(mf)))

    L = []
    L.append(f"## ulnet flows: {N:,} packets ({cap.stat().st_size / 1e6:.0f} MB, `{cap.name}`)\n")
    L.append(f"Every run is one process (tree) pinned to one core (`taskset -c {a.cpu}`), timed by the parent "
             f"from start to exit (end to end: interpreter, imports, output); peak RSS from `/usr/bin/time -v`; "
             f"anon / file = peaks of RssAnon and RssFile summed over the process tree, sampled every "
             f"{S * 1000:.0f} ms (file = mapped capture pages, page cache). \"ulnet / tool\" = ulnet's "
             f"packets/s (median of its {len(ul)} interleaved runs) over the tool's, same run. CPU s = user + "
             f"system seconds of the process tree (`time -v`; median), a check on the wall clock when the "
             f"shared core is busy. "
             f"X = `{cap.name}`, Y = `{many_path.name}`.\n")
    L.append("| tool | packets | flows | seconds | CPU s | packets/s | ulnet / tool | peak RSS | anon / file |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, npk, fl, secs, cs, rate, rt, mem, sp in rows:
        L.append(f"| {name} | {npk:,} | {fl} | {secs} | {cs} | {fmt_rate(rate)} | {rt} | {mem} | {sp} |")

    # memory per flow
    pn, pm = prof["normal"], prof["many"]
    bpf_default = pn["memory_bytes"] / pn["max_flows"]
    bpf_many = pm["memory_bytes"] / pm["max_flows"]
    anon0 = pm["rss_before_table_kb"]["RssAnon"]
    anon_t = pm["rss_after_table_kb"]["RssAnon"]
    anon_f = pm["rss_before_flush_kb"]["RssAnon"]
    live = pm["live_at_flush"]
    meta_pf = pm["meta_bytes"] / pm["max_flows"]
    growth = (anon_f - anon0) * 1024 / max(live, 1)
    # targets
    ul_cpu = med([r["cpu_s"] for r in ul])
    ok_nd = nd_rate is not None and ul_rate / nd_rate >= T_NDPI
    ok_td = ul_rate / td_rate >= T_TCPDUMP
    ok_bpf = bpf_default <= T_BYTES_PER_FLOW and bpf_many <= T_BYTES_PER_FLOW
    mf_rss = max(r["maxrss_kb"] or 0 for r in mf) * 1024
    ok_rss = mf_rss <= T_RSS_10M
    ul_rate_beside = N / med([r["wall"] for r in ul2])
    ok_rate = mf_rate >= T_RATE_10M * ul_rate_all

    def st(ok):
        return "met" if ok else "**MISSED**"

    L.append("\n### Targets\n")
    L.append("| target | measured | status |")
    L.append("|---|---|---|")
    if nd_rate:
        L.append(f"| ulnet flows >= {T_NDPI:g}x ndpiReader (end to end) | {ul_rate / nd_rate:.2f}x "
                 f"({fmt_rate(ul_rate)} vs {fmt_rate(nd_rate)} packets/s; by CPU seconds "
                 f"{med([r['cpu_s'] for r in nd]) / ul_cpu:.2f}x) | {st(ok_nd)} |")
    else:
        L.append("| ulnet flows >= 5x ndpiReader | ndpiReader not installed | **MISSED** |")
    L.append(f"| ulnet flows >= tcpdump's read-only rate (end to end) | {ul_rate / td_rate:.2f}x "
             f"({fmt_rate(ul_rate)} vs {fmt_rate(td_rate)} packets/s; by CPU seconds "
             f"{med([r['cpu_s'] for r in td]) / ul_cpu:.2f}x) | {st(ok_td)} |")
    L.append(f"| memory per tracked flow <= {T_BYTES_PER_FLOW} bytes (`FlowTable(max_flows=N).memory_bytes() / N`) "
             f"| {bpf_default:.1f} B (N = {pn['max_flows']:,}), {bpf_many:.1f} B (N = {pm['max_flows']:,}); "
             f"plus the metadata pool `meta_bytes()`: {meta_pf:.0f} B per flow of capacity, reserved (virtual), "
             f"touched only for flows that carry names; "
             f"measured RSS growth {growth:.0f} B per live flow ({live:,} live: RssAnon {fmt_mb(anon0)} before "
             f"the table, {fmt_mb(anon_t)} after allocating it, {fmt_mb(anon_f)} before the final export) "
             f"| {st(ok_bpf)} |")
    L.append(f"| {many['flows']:,} concurrent flows: peak RSS <= 4 GiB | {fmt_mb(mf_rss / 1024)} "
             f"(`time -v`; sampled anon / file {split(mf)}) | {st(ok_rss)} |")
    L.append(f"| {many['flows']:,} concurrent flows: packets/s >= {T_RATE_10M:g}x the normal capture's "
             f"| {mf_rate / ul_rate_all:.2f}x ({fmt_rate(mf_rate)} vs {fmt_rate(ul_rate_all)} packets/s, median of "
             f"all {len(all_ul)} normal-capture runs; {fmt_rate(ul_rate_beside)} in the runs beside it) "
             f"| {st(ok_rate)} |")
    if scaled:
        L.append(f"\nNote: {scaled}.")

    # time split (CPU seconds of the worker process)
    def col(p):
        t, fs = p["t"], p["first"]
        g = t.get
        first = fs.get("fill", 0) + fs.get("decode", 0) + fs.get("flow", 0)
        flow_only = g("flow", 0) - g("inspect", 0)
        csv_w = g("write", 0) - g("arrow", 0) + g("close", 0)
        accounted = (first + g("table", 0) + g("fill", 0) + g("decode", 0) + g("flow", 0) + g("records", 0)
                     + g("concat", 0) + g("write", 0) + g("close", 0) + g("flush", 0))
        rest = p["cpu_at_end"] - p["cpu_at_start"] - p["t_import"] - accounted
        return [
            ("interpreter start (CPU before the worker's first line)", p["cpu_at_start"]),
            ("imports (`import ulnet.cli.main`: numba, numpy, ...)", p["t_import"]),
            ("first calls: kernels loaded from the numba cache (fill, decode, flow + inspect)", first),
            ("FlowTable allocation", g("table", 0)),
            ("read: source walker (`CaptureReader.fill`)", g("fill", 0)),
            ("decode kernel", g("decode", 0)),
            ("flow kernel (`FlowTable.process` minus the inspection it calls back)", flow_only),
            ("inspection stage (`Inspector.process`)", g("inspect", 0)),
            ("records: `records.to_columns` (+ concatenation in the what-if)", g("records", 0) + g("concat", 0)),
            ("Arrow arrays: `sinks.flows.to_record_batch`", g("arrow", 0)),
            ("CSV write (`FlowWriter.write` minus Arrow arrays, + close)", csv_w),
            ("end of input: `flush_entries` kernel (the flush; its records, Arrow and CSV are in those rows)", g("flush_all", 0)),
            ("the rest (CLI set-up, per-batch Python)", rest),
            ("exit (process CPU from `time -v` - CPU at the worker's end)", p["cpu_s"] - p["cpu_at_end"]),
        ]

    L.append("\n### Where ulnet's time goes\n")
    L.append("`python bench/_worker.py flows CAPTURE` runs `ulnet flows CAPTURE --format csv -o /dev/null` "
             "in-process through the CLI's `main()`, with the functions it calls wrapped by timers. Figures are "
             "CPU seconds of the process (`time.process_time`; the core is shared, so wall time would count "
             "waits for it); per packet = seconds / packets of that capture; records / Arrow / CSV include the "
             "end-of-input export. One run each, same pinning.\n")
    cols = [("normal capture", prof["normal"])]
    if "coalesced" in prof:
        cols.append(("same, ended flows handed over in >= 65536-row chunks (what-if)", prof["coalesced"]))
    cols.append((f"{many['flows']:,} flows", prof["many"]))
    L.append("| step | " + " | ".join(f"{name}: CPU s | ns/packet" for name, _ in cols) + " |")
    L.append("|---|" + "---:|---:|" * len(cols))
    tabs = [col(p) for _, p in cols]
    for i, (label, _) in enumerate(tabs[0]):
        cells = []
        for items, (_, p) in zip(tabs, cols):
            v = items[i][1]
            cells.append(f"{v:.3f} | {ns(v, p['packets'])}")
        L.append(f"| {label} | " + " | ".join(cells) + " |")
    L.append("| **whole process, CPU (`time -v` user + system)** | " + " | ".join(
        f"**{p['cpu_s']:.3f}** | **{ns(p['cpu_s'], p['packets'])}**" for _, p in cols) + " |")
    L.append("| whole process, wall clock (parent) | " + " | ".join(
        f"{p['wall']:.3f} | {ns(p['wall'], p['packets'])}" for _, p in cols) + " |")
    L.append("| record chunks written; `flush_entries` kernel calls | " + " | ".join(
        f"{p['chunks']:,} | {p['calls'].get('flush_all', 0):,}" for _, p in cols) + " |")
    L.append("| flows; records + Arrow + CSV per flow (ns) | " + " | ".join(
        f"{p['flows']:,} | {(p['t'].get('records', 0) + p['t'].get('concat', 0) + p['t'].get('write', 0)) * 1e9 / max(p['flows'], 1):.0f}"
        for _, p in cols) + " |")

    mach1 = machine()
    L.append("\n### Run\n")
    pyx = os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT)) else sys.executable
    L.append(f"- command: `{' '.join([pyx, 'bench/bench_flows.py', *(argv if argv is not None else sys.argv[1:])])}`")
    L.append(f"- ulnet measured: {code_desc}, run from `{os.path.relpath(py_path, ROOT)}` "
             f"(PYTHONPATH; NUMBA_CACHE_DIR=`{os.path.relpath(out / 'numba-cache', ROOT)}`); work tree: {git_state()}")
    L.append(f"- machine: {mach0['cpu']}, {mach0['cores']} cores, load average "
             f"{mach0['loadavg'][0]:.2f} at start, {mach1['loadavg'][0]:.2f} at end (shared machine)")
    v = versions(("numba", "numpy", "pyarrow", "dpkt", "nfstream"))
    v["ndpiReader"] = versions_ndpi(ndpi_bin) if ndpi_bin else "-"
    L.append("- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    L.append(f"- flows: ulnet {flows_ul:,} (counters {prof['normal']['counts']}); ndpiReader {nd_counts}; "
             f"NFStream {', '.join(str(r['flows']) for r in nfs) or '-'}; dpkt meter {dp['flows']:,} "
             f"(no timeouts, no fragment handling, bytes = captured length)")
    L.append("- NFStream / dpkt loop time (after imports): "
             + ", ".join(f"NFStream d={r['dissections']} {r['t_loop']:.1f} s" for r in nfs)
             + f", dpkt {dp['t_loop']:.1f} s")
    L.append(f"- synthetic capture Y: {many['flows']:,} flows, {many['packets']:,} packets "
             f"({many_path.stat().st_size / 1e6:.0f} MB), UDP 10.0.0.0/8 -> 198.18.0.0/15, a reply for every "
             f"{a.reply_every}th flow, all within {many['span_s']:g} s (< the 120 s idle timeout)")
    L.append(f"- total benchmark time {time.perf_counter() - t_all:.0f} s")
    L.append(f"- commands (each prefixed by `{' '.join(R.prefix())}`):")
    L.append(f"  - ulnet: `{ul[0]['cmd']}` (env PYTHONPATH, NUMBA_CACHE_DIR as above)")
    if nd:
        L.append(f"  - ndpiReader: `{nd[0]['cmd']}`")
    for r in nfs:
        L.append(f"  - NFStream: `{r['cmd']}`")
    L.append(f"  - dpkt: `{dp['cmd']}`")
    L.append(f"  - tcpdump: `{td[0]['cmd']}`")
    L.append(f"  - many flows: `{mf[0]['cmd']}`")
    text = "\n".join(L) + "\n"
    print(text)
    (out / "flows.md").write_text(text)
    res["summary"] = {"ulnet_pps": ul_rate, "ndpi_pps": nd_rate, "tcpdump_pps": td_rate, "dpkt_pps": dp_rate,
                      "nfstream_pps": [N / r["wall"] for r in nfs], "many_pps": mf_rate,
                      "bytes_per_flow": [bpf_default, bpf_many], "rss_growth_per_flow": growth,
                      "many_peak_rss": mf_rss, "versions": v, "machine": [mach0, mach1]}
    (out / "flows.json").write_text(json.dumps(res, indent=1, default=str))
    log(f"wrote {out / 'flows.md'} and {out / 'flows.json'}")
    if a.check and not (ok_nd and ok_td and ok_bpf and ok_rss and ok_rate):
        return 1
    return 0


def versions_ndpi(ndpi_bin) -> str:
    try:
        p = subprocess.run([ndpi_bin, "-h"], capture_output=True, text=True, timeout=10)
        m = re.search(r"nDPI \(?([\d.]+)", p.stdout + p.stderr)
        return m.group(1) if m else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


if __name__ == "__main__":
    sys.exit(main())
