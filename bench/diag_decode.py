#!/usr/bin/env python3
"""Why ulnet's read+decode costs what it costs: small, checkable probes.

    .venv/bin/python bench/diag_decode.py [CAPTURE] [--llvm]

1. decode kernel on a batch that sits in the CPU cache (4096 copies of one
   Ethernet/IPv4/TCP frame, then the same frame 4096 times): pure compute
   cost per packet, next to a flat reference kernel that fills the same
   columns for that frame, and the same reference with its per-packet body
   moved into a separate @njit function taking the arrays (the shape of
   ``decode_batch`` -> ``_decode_one``). The gap between "flat" and
   "per-packet call" is numba's reference counting (NRT_incref/NRT_decref,
   atomic) of every array argument on every call.
2. source walker (``pcap_walk``) on cache-hot records vs on CAPTURE (default:
   the cached benchmark capture): the walk chases record lengths through
   the mapped file, so its cost on a real file is memory latency.
3. with --llvm: compiles decode_batch in an empty NUMBA_CACHE_DIR (slow)
   and counts NRT_incref / NRT_decref call sites per function in its LLVM IR.

Nothing here edits ulnet; it only calls its kernels.
"""

from __future__ import annotations

import argparse
import glob
import mmap
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from numba import njit

HERE = Path(__file__).resolve().parent


# ---- reference kernels: the Ethernet/IPv4/TCP columns, nothing else --------
def _body(ret: str) -> str:
    return f"""
    if end - p < 14: {ret}
    et = (np.int64(buf[p + 12]) << 8) | buf[p + 13]
    hdr[i, 1] = et
    if et != 0x800: {ret}
    q = p + 14
    if end - q < 20: {ret}
    ihl = np.int64(buf[q] & 15) * 4
    tot = (np.int64(buf[q + 2]) << 8) | buf[q + 3]
    counters[0] += 1
    hdr[i, 10] = q - p; hdr[i, 11] = 4; hdr[i, 12] = tot; hdr[i, 13] = ihl
    proto = np.int64(buf[q + 9]); hdr[i, 14] = proto; hdr[i, 15] = buf[q + 8]
    addr[i, 1] = np.uint64(0xFFFF00000000) | np.uint64((np.int64(buf[q + 12]) << 24) | (np.int64(buf[q + 13]) << 16) | (np.int64(buf[q + 14]) << 8) | buf[q + 15])
    addr[i, 3] = np.uint64(0xFFFF00000000) | np.uint64((np.int64(buf[q + 16]) << 24) | (np.int64(buf[q + 17]) << 16) | (np.int64(buf[q + 18]) << 8) | buf[q + 19])
    ipend = min(end, q + tot)
    q += ihl
    if proto == 6 and ipend - q >= 20:
        counters[1] += 1
        hdr[i, 19] = q - p
        hdr[i, 20] = (np.int64(buf[q]) << 8) | buf[q + 1]
        hdr[i, 21] = (np.int64(buf[q + 2]) << 8) | buf[q + 3]
        th = np.int64(buf[q + 12] >> 4) * 4
        hdr[i, 22] = ((np.int64(buf[q + 12]) & 1) << 8) | buf[q + 13]
        hdr[i, 23] = th
        hdr[i, 26] = q + th - p
        hdr[i, 27] = max(0, ipend - q - th)
"""


def _indent(s: str, n: int) -> str:
    return "\n".join((" " * n + line) if line.strip() else line for line in s.splitlines())


_SRC = f"""
@njit
def ref_one(buf, p, end, hdr, addr, i, counters):
    for c in range(hdr.shape[1]):
        hdr[i, c] = -1
    for k in range(4):
        addr[i, k] = 0
{_indent(_body("return"), 0)}

@njit
def ref_call(buf, off, caplen, linktype, n, hdr, addr, counters):
    for i in range(n):
        p = off[i]
        ref_one(buf, p, p + np.int64(caplen[i]), hdr, addr, i, counters)

@njit
def ref_flat(buf, off, caplen, linktype, n, hdr, addr, counters):
    for i in range(n):
        p = off[i]
        end = p + np.int64(caplen[i])
        for c in range(hdr.shape[1]):
            hdr[i, c] = -1
        for k in range(4):
            addr[i, k] = 0
        while True:
{_indent(_body("break"), 8)}
            break
"""
exec(compile(_SRC, "<reference kernels>", "exec"))


def _frame() -> bytes:
    import dpkt
    tcp = dpkt.tcp.TCP(sport=40000, dport=443, flags=0x18, data=b"x" * 100)
    ip = dpkt.ip.IP(src=b"\x0a\0\0\1", dst=b"\x0a\0\0\2", p=6, ttl=64, data=tcp)
    ip.len = len(bytes(ip))
    return bytes(dpkt.ethernet.Ethernet(src=b"\0" * 6, dst=b"\1" * 6, type=0x0800, data=ip))


def _ns(fn, args, reps, n) -> float:
    fn(*args)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            fn(*args)
        best = min(best, time.perf_counter() - t)
    return best * 1e9 / (reps * n)


def probe_decode(bs: int = 4096) -> None:
    from ulnet.batch import PacketBatch
    from ulnet.counters import new_counters
    from ulnet.decode import decode
    eth = _frame()
    L = len(eth)
    b = PacketBatch(bs)
    c = new_counters()
    buf = np.tile(np.frombuffer(eth, np.uint8), bs).copy()
    b.caplen[:] = L
    b.linktype[:] = 1
    reps = max(1, 1_000_000 // bs)
    print(f"1. decode, cache-hot batch of {bs} Ethernet/IPv4/TCP frames ({L} bytes), ns/packet (best of 3):")
    for label, offs in (("distinct copies", np.arange(bs) * L), ("one frame", np.zeros(bs, np.int64))):
        b.off[:] = offs
        b.buf, b.n = buf, bs
        d = _ns(decode, (b, c), reps, bs)       # the public stage: one Python call per batch
        args = (buf, b.off, b.caplen, b.linktype, bs, b.hdr, b.addr, c)
        f = _ns(ref_flat, args, reps, bs)
        k = _ns(ref_call, args, reps, bs)
        print(f"   {label:16s} ulnet decode {d:6.1f} | reference flat loop {f:6.1f} | "
              f"reference, body in a per-packet @njit call {k:6.1f}")


def probe_walk(capture: str | None, bs: int = 4096) -> None:
    from ulnet.batch import PacketBatch
    from ulnet.counters import new_counters
    from ulnet.sources import _kernels as K
    eth = _frame()
    L = len(eth)
    b = PacketBatch(bs)
    c = new_counters()
    out = np.zeros(2, np.int64)
    rec = np.frombuffer(np.array([0, 0, L, L], "<u4").tobytes() + eth, np.uint8)
    pbuf = np.tile(rec, bs).copy()

    def walk(buf, pos, end):
        return K.pcap_walk(buf, pos, end, False, False, 16, 0, 1, 0, K.MAX_CAPLEN, b.off, b.caplen, b.wirelen,
                           b.ts, b.linktype, b.port, 0, bs, c, out)

    hot = _ns(walk, (pbuf, 0, len(pbuf)), max(1, 1_000_000 // bs), bs)
    print(f"2. pcap_walk, ns/packet: cache-hot records {hot:.1f}", end="")
    if capture:
        with open(capture, "rb") as fh:
            m = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        buf = np.frombuffer(m, np.uint8)
        best = float("inf")
        for _ in range(3):
            pos, n = 24, 0
            t = time.perf_counter()
            while True:
                got = walk(buf, pos, len(buf))
                if not got:
                    break
                n += got
                pos = int(out[0])
            best = min(best, time.perf_counter() - t)
        print(f" | {Path(capture).name} (mapped, in page cache) {best * 1e9 / n:.1f} over {n} packets")
        del buf
    else:
        print()


def probe_llvm() -> None:
    code = r"""
import re, numpy as np
from ulnet.decode import decode
from ulnet.decode._kernels import decode_batch
from ulnet.batch import PacketBatch
from ulnet.counters import new_counters
b = PacketBatch(4); c = new_counters()
b.buf = np.zeros(64, np.uint8); b.n = 0
decode(b, c)
ll = decode_batch.inspect_llvm(decode_batch.signatures[0])
for f in ll.split("\ndefine ")[1:]:
    m = re.match(r'[^@]*@"?([\w.$]+)', f)
    body = f.split("\n}\n")[0]
    name = re.sub(r"B\d.*", "", m.group(1))
    if "NRT_" in name or "cpython" in name or name.startswith("cfunc"):
        continue
    print(f"   {name[-48:]:48s} NRT_incref sites {body.count('@NRT_incref'):4d}  NRT_decref sites {body.count('@NRT_decref'):4d}")
"""
    with tempfile.TemporaryDirectory(prefix="ulnet-diag-") as d:
        print("3. decode_batch LLVM IR (compiled in an empty cache):")
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=dict(os.environ, NUMBA_CACHE_DIR=d), check=True)
        print(f"   (compile {time.perf_counter() - t:.1f} s)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("capture", nargs="?", help="capture for the walker probe (default: bench/out/corpus-*.pcap)")
    ap.add_argument("--llvm", action="store_true", help="also count NRT calls in the decode kernel's IR")
    a = ap.parse_args(argv)
    cap = a.capture
    if cap is None:
        found = sorted(glob.glob(str(HERE / "out" / "corpus-*[0-9].pcap")), key=os.path.getsize)
        cap = found[-1] if found else None
    probe_decode()
    probe_walk(cap)
    if a.llvm:
        probe_llvm()


if __name__ == "__main__":
    main()
