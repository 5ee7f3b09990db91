"""Compile cache: build the kernels ulnet runs, ahead of time and in parallel.

numba compiles a kernel the first time it is called and keeps the machine
code in its cache (``__pycache__`` next to the sources, or under
``NUMBA_CACHE_DIR``); later runs load it in a fraction of a second. The
first run on a machine therefore pays for compiling everything a command
touches: the decoder, the flow table, 150-odd application matchers, the
policy kernels. ``warm()`` does that once, ahead of time, spreading
independent kernels over worker processes (numba compiles one function at a
time per process), and is what ``ulnet warm`` and ``make setup`` run.

Jobs run in phases; a phase's jobs are independent and run side by side,
and a later phase finds the earlier phases' kernels in the cache:

1. the application matchers (split across the workers) and the decoder;
2. the flow table (no inspection) and the matcher dispatcher;
3. each command on a small built-in capture: ``peek`` (also with a BPF
   filter), ``flows`` (with statistics, every format), ``stats``, ``run``
   with a policy using every action. What these compile and nothing earlier did (the inspection
   kernel, the sinks -- among them the CSV / JSON lines record formatter --, the policy) is
   compiled here.

The live commands (``bridge``, ``capture -i``, ``replay``) need interfaces
and are not warmed; their kernels beyond the shared stages are small.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

# ---------------------------------------------------------------------------
# a small capture with something for every stage: TCP with payload (HTTP,
# TLS), UDP (DNS), ICMP, IPv6, a fragment, a VLAN tag, an SSH SYN to reject
# ---------------------------------------------------------------------------


def _csum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, frag: int = 0x4000) -> bytes:
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, frag, 64, proto, 0, src, dst)
    return h[:10] + struct.pack("!H", _csum(h)) + h[12:] + payload


def _eth(l3: bytes, ethertype: int = 0x0800, vlan: int | None = None) -> bytes:
    head = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01"
    if vlan is not None:
        head += struct.pack("!HH", 0x8100, vlan)
    return head + struct.pack("!H", ethertype) + l3


def sample_frames() -> list[bytes]:
    """Ethernet frames touching every stage (also what the live bridge warms
    its policy path with, ulnet.live.policy)."""
    a, b = bytes([192, 0, 2, 1]), bytes([198, 51, 100, 2])
    http = b"GET / HTTP/1.1\r\nHost: example.org\r\nUser-Agent: warm\r\n\r\n"
    sni = b"example.org"
    ext = struct.pack("!HHHBH", 0, len(sni) + 5, len(sni) + 3, 0, len(sni)) + sni
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00" + struct.pack("!H", len(ext)) + ext
    hello = b"\x16\x03\x01" + struct.pack("!H", len(body) + 4) + b"\x01" + struct.pack("!I", len(body))[1:] + body
    dns = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x07example\x03org\x00" + struct.pack("!HH", 1, 1)

    def tcp(sp, dp, flags, data=b""):
        return struct.pack("!HHIIBBHHH", sp, dp, 1, 0, 5 << 4, flags, 65535, 0, 0) + data

    def udp(sp, dp, data):
        return struct.pack("!HHHH", sp, dp, 8 + len(data), 0) + data

    frames = [
        _eth(_ipv4(a, b, 6, tcp(40000, 80, 0x02))),
        _eth(_ipv4(b, a, 6, tcp(80, 40000, 0x12))),
        _eth(_ipv4(a, b, 6, tcp(40000, 80, 0x18, http))),
        _eth(_ipv4(a, b, 6, tcp(40001, 443, 0x18, hello)), vlan=10),
        _eth(_ipv4(a, b, 17, udp(40002, 53, dns))),
        _eth(_ipv4(a, b, 1, b"\x08\x00\xf7\xff\x00\x01\x00\x00")),
        _eth(_ipv4(a, b, 17, udp(40003, 9999, b"x" * 16), frag=0x2000)),
        _eth(struct.pack("!IHBB16s16s", 0x60000000, 8 + 4, 17, 64, bytes(15) + b"\1", bytes(15) + b"\2")
             + udp(40004, 123, b"\x23" + bytes(3)), ethertype=0x86DD),
        _eth(_ipv4(a, b, 6, tcp(40005, 22, 0x02))),
        _eth(_ipv4(a, b, 6, tcp(40000, 80, 0x11))),
    ]
    return frames


def sample_capture() -> bytes:
    """A pcap (Ethernet) of the sample frames."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    for k, f in enumerate(sample_frames()):
        out.append(struct.pack("<IIII", 1_700_000_000 + k, 0, len(f), len(f)) + f)
    return b"".join(out)


POLICY = """\
table <nets> {{ 192.0.2.0/24 198.51.100.0/24 }}
default pass
match count by app tag seen
match proto udp count by host
block proto icmp
reject proto tcp to port 22
pass app DNS police 1000pps per flow
pass proto tcp to port 80 shape 1Mbit log
pass from <nets> to any port 443 capture "{cap}" count by rule
pass proto udp route {wan}
"""

# ---------------------------------------------------------------------------
# jobs (top-level functions: they run in worker processes)
# ---------------------------------------------------------------------------


def _quiet_main(argv: list[str]) -> None:
    from ulnet.cli.main import main
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        main(argv)


def _with_sample(fn):
    with tempfile.TemporaryDirectory(prefix="ulnet-warm-") as d:
        cap = os.path.join(d, "warm.pcap")
        with open(cap, "wb") as f:
            f.write(sample_capture())
        return fn(d, cap)


def job_matchers(names: list[str]) -> str:
    """Compile these application matchers with the signature the dispatcher calls them with."""
    from numba import types
    from ulnet.inspect.registry import matcher_function
    sig = (types.UniTuple(types.uint64, 4), types.int64, types.int64, types.int64, types.int64)
    for spec in names:
        matcher_function(spec).compile(sig)
    return f"{len(names)} matchers"


def job_decode() -> str:
    def go(d, cap):
        from ulnet.pipeline import Pipeline
        for _ in Pipeline([cap], batch_size=64):
            pass
    _with_sample(go)
    return "sources + decode"


def job_dispatch() -> str:
    from numba import types
    from ulnet.inspect._dispatch import dispatch, load_matchers
    load_matchers()
    dispatch.compile((types.UniTuple(types.uint64, 4), types.int64, types.int64, types.int64, types.int64,
                      types.int64))
    return "dispatcher"


def job_flows_plain() -> str:
    _with_sample(lambda d, cap: _quiet_main(["flows", "--no-inspect", "--statistics", cap, "-o", os.devnull]))
    from ulnet.flow import FlowTable
    FlowTable(16)._settle(force=True)   # (sparse traffic needs it; the sample does not)
    from ulnet.inspect.quic import _frames
    _frames(b"\x01\x06\x00\x01x", 6)    # QUIC Initials' frames (the sample has none)
    return "flow table"


def job_commands(which: str) -> str:
    def go(d, cap):
        if which == "peek":
            _quiet_main(["peek", cap])
            _quiet_main(["peek", cap, "tcp", "port", "80"])         # the BPF interpreter
            _quiet_main(["peek", "--format", "jsonl", cap])
            _quiet_main(["peek", cap, "-w", os.path.join(d, "o.pcapng")])
            _quiet_main(["stats", cap, "--format", "json"])
        elif which == "flows":
            for fmt in ("csv", "jsonl", "parquet"):
                _quiet_main(["flows", cap, "--statistics", "--format", fmt, "-o", os.path.join(d, "f." + fmt)])
            _quiet_main(["flows", cap, "-o", os.devnull])
            from ulnet.inspect.stage import warm_quic
            warm_quic()                 # QUIC Initials' kernel (the sample has none)
        elif which == "run":
            rules = os.path.join(d, "warm.rules")
            with open(rules, "w") as f:
                f.write(POLICY.format(cap=os.path.join(d, "cap.pcap"), wan="wan"))
            _quiet_main(["run", "--rules", rules, "--in", f"lan={cap}", "--out", f"wan={os.path.join(d, 'w.pcap')}",
                         "--out", f"lan={os.path.join(d, 'l.pcap')}", "--stats-json", os.path.join(d, "s.json")])
    _with_sample(go)
    return which


def warm_live_passes(rules: str, names=("wa", "wb")) -> None:
    """Open the two interfaces ``names`` (a veth pair) and warm a Forwarder
    on them without and with the policy ``rules``, as the bridge warms
    itself before its first packet (``job_live`` runs this in its namespace)."""
    from ulnet.flow import FlowTable
    from ulnet.live.loop import BRIDGE_BATCH, Forwarder, open_port
    from ulnet.live.policy import LivePolicy
    names = list(names)
    for path in (None, rules):
        ports = [open_port(n, k) for k, n in enumerate(names)]
        table = FlowTable(1024)
        pol = LivePolicy(path, names, [1, 0], table, BRIDGE_BATCH) if path else None
        fw = Forwarder(ports, [1, 0], BRIDGE_BATCH, table, pol)
        fw.warm()
        fw.close()


def live_warmable() -> bool:
    """Can ``job_live`` build its namespace (root, iproute2)?"""
    import shutil
    return os.geteuid() == 0 and shutil.which("ip") is not None


def job_live(verbose: bool = False) -> str:
    """The bridge's one-call passes, without and with a policy (the packed
    policy pass alone compiles for about a minute): a Forwarder on a veth
    pair in a namespace of its own, removed afterwards, warmed as the
    bridge warms itself before its first packet. Needs root (or
    CAP_NET_ADMIN + CAP_NET_RAW + CAP_SYS_ADMIN) and iproute2; skipped
    otherwise, and then ``ulnet bridge`` compiles them on its first run.
    ``verbose``: append what the warming process printed."""
    import subprocess
    import sys
    if not live_warmable():
        return "live passes skipped (needs root and iproute2)"
    ns = f"ulnet-warm-{os.getpid()}"

    def ip(*a):
        subprocess.run(["ip", *a], check=True, capture_output=True, timeout=30)

    with tempfile.TemporaryDirectory(prefix="ulnet-warm-") as d:
        rules = os.path.join(d, "live.rules")
        with open(rules, "w") as f:
            f.write(POLICY.format(cap=os.path.join(d, "cap.pcap"), wan="wb"))
        try:
            ip("netns", "add", ns)
            ip("-n", ns, "link", "add", "wa", "type", "veth", "peer", "name", "wb")
            ip("-n", ns, "link", "set", "wa", "up")
            ip("-n", ns, "link", "set", "wb", "up")
            code = "import sys; from ulnet.warm import warm_live_passes; warm_live_passes(sys.argv[1])"
            p = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code, rules],
                               capture_output=True, text=True, timeout=1200)
            if p.returncode != 0:
                raise RuntimeError("warming the live passes failed: " + (p.stderr.strip().splitlines() or ["?"])[-1])
        finally:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
    return "live passes" + (("\n" + p.stdout + p.stderr) if verbose else "")


def plan(workers: int) -> list[list[tuple]]:
    """The phases: each a list of (job, args) that may run side by side."""
    from ulnet.inspect.registry import APPS
    names = [a.matcher for a in APPS if a.matcher]
    chunks = [names[k::workers] for k in range(workers)]
    return [
        [(job_decode, ())] + [(job_matchers, (c,)) for c in chunks if c],
        [(job_flows_plain, ()), (job_dispatch, ())],
        [(job_commands, ("flows",)), (job_commands, ("peek",)), (job_commands, ("run",))],
        # after the stages whose kernels the passes inline
        [(job_live, ())],
    ]


KERNELS = (("ulnet.sources._kernels", "pcap_walk"), ("ulnet.decode._kernels", "decode_batch"),
           ("ulnet.flow._kernels", "flow_batch"), ("ulnet.inspect._dispatch", "dispatch"),
           ("ulnet.inspect._kernels", "inspect_batch"), ("ulnet.policy._kernels", "decide_batch"),
           ("ulnet.actions._kernels", "act_batch"), ("ulnet.filter._kernels", "filter_batch"),
           ("ulnet.sinks._format", "format_rows"))


def byte_compile() -> bool:
    """Write the .pyc of every ulnet module whose source is newer (Python reads
    them even under PYTHONDONTWRITEBYTECODE, which only stops it writing
    them); False when the package directory is not writable."""
    import compileall
    from pathlib import Path
    with contextlib.redirect_stdout(io.StringIO()):
        return bool(compileall.compile_dir(str(Path(__file__).resolve().parent), quiet=2))


def cache_is_warm() -> bool:
    """True when each stage's main kernel has a cache entry for the current
    sources (numba keeps an index stamped with the source file's time and
    size; a stale index counts as cold)."""
    import importlib
    try:
        for mod, fn in KERNELS:
            if not getattr(importlib.import_module(mod), fn)._cache._cache_file._load_index():
                return False
        return True
    except Exception:       # a numba without these internals: assume warm, say nothing
        return True


def warm(workers: int | None = None, report=None) -> float:
    """Compile everything; ``report(done, total, what)`` after each job.
    Returns the seconds it took."""
    workers = max(1, workers or os.cpu_count() or 1)
    phases = plan(workers)
    total = sum(len(p) for p in phases)
    done = 0
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        for phase in phases:
            futs = [pool.submit(fn, *args) for fn, args in phase]
            for f in futs:
                what = f.result()
                done += 1
                if report:
                    report(done, total, what)
    return time.perf_counter() - t0
