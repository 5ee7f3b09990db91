#!/usr/bin/env python3
"""Build the tshark oracle golden files for the per-packet decoder.

For every capture in the corpus, run tshark (one pass, no reassembly, no name
resolution) and store one gzip'd TSV per capture in tests/golden/tshark/:

    tests/golden/tshark/<capture file name>.tsv.gz

Header line = field names, then one line per packet.  Multiple occurrences of
a field in one packet (tunnels, QinQ, ICMP error quotes) are joined with ','
in protocol-tree order (outermost first).  See tests/golden/tshark/README.md.

Usage:  python tests/oracle/make_tshark_golden.py [--jobs 2] [--tshark PATH]

Standard library only.  Output is deterministic (gzip mtime=0, no file name in
the gzip header, fixed level), so regenerating with the same tshark version
gives byte-identical files.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import gzip
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "tests" / "golden" / "tshark"
CORPUS = (Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus").resolve()   # ../shared beside the repo
INPUT_GLOBS = [
    (CORPUS / "ndpi" / "pcap", ["*"]),
    (CORPUS / "libpeak", ["*.pcap", "*.pcapng", "*.erf"]),
]

# Field names as spelled by the installed tshark (4.0.x); checked with
# `tshark -G fields`.  The IPv6 fragment header fields are
# ipv6.fraghdr.offset / ipv6.fraghdr.more in this version (there is no
# ipv6.fragment.offset / ipv6.fragment.more).
FIELDS = [
    "frame.number",
    "frame.len",
    "frame.cap_len",
    "frame.time_epoch",
    "vlan.id",
    "ip.src",
    "ip.dst",
    "ip.len",
    "ip.proto",
    "ip.flags.mf",
    "ip.frag_offset",
    "ipv6.src",
    "ipv6.dst",
    "ipv6.plen",
    "ipv6.nxt",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.flags",
    "tcp.hdr_len",
    "udp.srcport",
    "udp.dstport",
    "sctp.srcport",
    "sctp.dstport",
    "icmp.type",
    "icmp.code",
    "icmpv6.type",
    "icmpv6.code",
    "ipv6.fraghdr.offset",
    "ipv6.fraghdr.more",
    "frame.encap_type",
    "frame.protocols",
]

# Everything that reassembles or otherwise makes one packet's dissection depend
# on other packets is switched off.  Checksums are not verified by default in
# this version (ip/tcp/udp check_checksum FALSE, sctp.checksum None); they are
# pinned here anyway so a changed default cannot alter the output.
PREFS = [
    "ip.defragment:FALSE",
    "ipv6.defragment:FALSE",
    "tcp.desegment_tcp_streams:FALSE",
    "tcp.reassemble_out_of_order:FALSE",
    "tcp.analyze_sequence_numbers:FALSE",
    "sctp.reassembly:FALSE",
    "ip.check_checksum:FALSE",
    "tcp.check_checksum:FALSE",
    "udp.check_checksum:FALSE",
]

# Noise tshark prints on stderr that is not about the capture.
IGNORED_STDERR = ("Running as user",)


def tshark_cmd(tshark: str, capture: Path) -> list[str]:
    cmd = [tshark, "-n", "-r", str(capture)]
    for p in PREFS:
        cmd += ["-o", p]
    cmd += ["-T", "fields", "-E", "separator=/t", "-E", "occurrence=a",
            "-E", "aggregator=,", "-E", "quote=n"]
    for f in FIELDS:
        cmd += ["-e", f]
    return cmd


def list_captures() -> list[Path]:
    caps: dict[str, Path] = {}
    for d, globs in INPUT_GLOBS:
        for g in globs:
            for p in sorted(d.glob(g)):
                if not p.is_file():
                    continue
                if p.name in caps and caps[p.name] != p:
                    sys.exit(f"capture name collision: {caps[p.name]} vs {p}")
                caps[p.name] = p
    return [caps[k] for k in sorted(caps)]


def gzip_bytes(data: bytes) -> bytes:
    bio = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=bio, compresslevel=9,
                       mtime=0) as gz:
        gz.write(data)
    return bio.getvalue()


def write_if_changed(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def run_one(tshark: str, capture: Path, env: dict[str, str]) -> tuple[str, int, str]:
    proc = subprocess.run(tshark_cmd(tshark, capture), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out = proc.stdout.replace(b"\r\n", b"\n")
    lines = [ln for ln in out.split(b"\n") if ln]
    ncol = len(FIELDS)
    bad = [ln for ln in lines if ln.count(b"\t") != ncol - 1]
    body = b"".join(ln + b"\n" for ln in lines)
    header = ("\t".join(FIELDS) + "\n").encode()
    write_if_changed(OUT_DIR / f"{capture.name}.tsv.gz", gzip_bytes(header + body))

    msgs = [ln.strip() for ln in proc.stderr.decode("utf-8", "replace").splitlines()]
    msgs = [m.replace(str(capture), capture.name) for m in msgs
            if m and not m.startswith(IGNORED_STDERR)]
    if proc.returncode != 0:
        msgs.append(f"[tshark exit status {proc.returncode}]")
    if bad:
        msgs.append(f"[{len(bad)} output line(s) with wrong column count]")
    return capture.name, len(lines), " | ".join(msgs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=2, help="parallel tshark runs (max 2)")
    ap.add_argument("--tshark", default="tshark")
    args = ap.parse_args()
    jobs = max(1, min(args.jobs, 2))

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    captures = list_captures()
    if not captures:
        sys.exit("no captures found under " + str(CORPUS))

    with tempfile.TemporaryDirectory() as cfgdir:
        # Empty personal config dir + C locale: no user prefs leak in.
        env = dict(os.environ, WIRESHARK_CONFIG_DIR=cfgdir, LC_ALL="C", TZ="UTC")
        version = subprocess.run([args.tshark, "--version"], capture_output=True,
                                 text=True, env=env, check=True).stdout.splitlines()[0]
        results = []
        with cf.ThreadPoolExecutor(max_workers=jobs) as ex:
            futs = [ex.submit(run_one, args.tshark, c, env) for c in captures]
            for i, fut in enumerate(cf.as_completed(futs), 1):
                results.append(fut.result())
                if i % 50 == 0 or i == len(futs):
                    print(f"{i}/{len(futs)} captures", file=sys.stderr)

    results.sort()
    # Remove golden files of captures that are no longer in the corpus.
    wanted = {f"{c.name}.tsv.gz" for c in captures}
    for p in OUT_DIR.glob("*.tsv.gz"):
        if p.name not in wanted:
            p.unlink()

    write_if_changed(OUT_DIR / "VERSION", (version + "\n").encode())
    errors = "".join(f"{name}: {msg}\n" for name, _, msg in results if msg)
    write_if_changed(OUT_DIR / "ERRORS.txt", errors.encode())

    total = sum(n for _, n, _ in results)
    size = sum(p.stat().st_size for p in OUT_DIR.iterdir() if p.is_file())
    print(f"{version}\ncaptures: {len(results)}  packets: {total}  "
          f"errors: {sum(1 for r in results if r[2])}  size: {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
