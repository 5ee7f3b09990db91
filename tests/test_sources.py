"""Capture file sources (ulnet.sources): every format variant, built byte by
byte with struct (tests/_captures.py), read back and compared field by field.

Also: gzip by path and on standard input, the stream window refill, link
types through to decoded addresses, and what the command line says about
inputs it cannot read (exit 2, one line naming the file and the offset) or
that end inside a record (packets before it, a warning, exit 0).
"""

from __future__ import annotations

import gzip
import io
import os
import re
import subprocess
import sys
import threading
import types

import numpy as np
import pytest

from _captures import (
    ERF_TYPE_ETH, ERF_TYPE_HDLC, ERF_TYPE_IPV4, ERF_TYPE_IPV6, Rec, erf_record, ether, ipv4_udp,
    ipv6_udp, ng_custom, ng_epb, ng_idb, ng_isb, ng_nrb, ng_shb, ng_spb, pcap_bytes, pcap_record_offsets, read_capture,
)
from conftest import SAMPLE, ULNET, run_ulnet
from ulnet.addr import to_text
from ulnet.batch import PacketBatch
from ulnet.counters import new_counters
from ulnet.decode import decode
from ulnet.sources import CaptureError, open_capture
from ulnet.sources.capture import STREAM_WINDOW

T0 = 1_700_000_000 * 10**9           # 2023-11-14 22:13:20 UTC, in ns
U4 = ipv4_udp("192.0.2.1", "198.51.100.2", 1111, 53)
U6 = ipv6_udp("2001:db8::1", "2001:db8:1::2", 2222, 443)
E4 = ether(U4, 0x0800)
E6 = ether(U6, 0x86DD)


def _write(tmp_path, name, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return p


# ---- classic pcap ------------------------------------------------------------


# (the Kuznetsov format has microsecond timestamps only: no nsec variant)
@pytest.mark.parametrize("nano,kuznetsov", [(False, False), (True, False), (False, True)],
                         ids=["usec", "nsec", "usec-kuznetsov"])
@pytest.mark.parametrize("big", [False, True], ids=["le", "be"])
def test_pcap_variants(tmp_path, big, nano, kuznetsov):
    frac = 123_456_789 if nano else 123_456_000
    recs = [Rec(E4, T0 + frac), Rec(E6[:40], T0 + 2 * 10**9 + 7000, wirelen=len(E6)), Rec(E4, T0 + 3 * 10**9)]
    p = _write(tmp_path, "x.pcap", pcap_bytes(recs, big=big, nano=nano, kuznetsov=kuznetsov))
    got = read_capture(p)
    assert got.kind == "pcap" and not got.problems
    assert got.frames == [E4, E6[:40], E4]
    assert got.caplen == [len(E4), 40, len(E4)]
    assert got.wirelen == [len(E4), len(E6), len(E4)]
    assert got.ts == [T0 + frac, T0 + 2 * 10**9 + 7000, T0 + 3 * 10**9]
    assert got.linktype == [1, 1, 1]
    assert got.count("source.packets") == 3


def test_pcap_header_linktype_and_fcs_bits(tmp_path):
    # the upper bits of the link type field carry the FCS length: not a link type
    p = _write(tmp_path, "x.pcap", pcap_bytes([Rec(U4, T0)], linktype=101 | (0x1 << 26) | (4 << 28)))
    assert read_capture(p).linktype == [101]


# ---- pcapng ------------------------------------------------------------------


def _pcapng_mixed(e: str) -> tuple[bytes, list[tuple]]:
    """Four interfaces (Ethernet, raw IP, Linux cooked, raw IPv6) with four
    clocks, blocks to skip in between, an SPB; and the packets expected."""
    sll = b"\x00\x00" + b"\x00\x01" + b"\x00\x06" + b"\x02\x00\x00\x00\x00\x01\x00\x00" + b"\x08\x00" + U4
    secs = 1_700_000_000
    data = b"".join([
        ng_shb(e),
        ng_idb(e, 1),                                   # 0: default resolution 10^-6
        ng_nrb(e),
        ng_idb(e, 101, tsresol=9),                      # 1: 10^-9
        ng_idb(e, 113, tsresol=0x80 | 20),              # 2: 2^-20
        ng_custom(e),
        ng_idb(e, 229, tsresol=6, tsoffset=1000),       # 3: 10^-6, +1000 s
        ng_epb(e, 0, secs * 10**6 + 1, E4),
        ng_epb(e, 1, secs * 10**9 + 123_456_789, U6[:50], wirelen=len(U6)),
        ng_isb(e, 1),
        ng_epb(e, 2, (secs << 20) | (1 << 19), sll),    # + 0.5 s
        ng_epb(e, 2, (secs << 20) | 1, sll),            # + 1/2^20 s = 953.67 ns, floored
        ng_custom(e, copyable=False),
        ng_epb(e, 3, secs * 10**6 + 5, U6),
        ng_spb(e, E6),                                   # interface 0, time of the last packet
    ])
    want = [
        (E4, len(E4), len(E4), secs * 10**9 + 1000, 1),
        (U6[:50], 50, len(U6), secs * 10**9 + 123_456_789, 101),
        (sll, len(sll), len(sll), secs * 10**9 + 500_000_000, 113),
        (sll, len(sll), len(sll), secs * 10**9 + 953, 113),
        (U6, len(U6), len(U6), (secs + 1000) * 10**9 + 5000, 229),
        (E6, len(E6), len(E6), (secs + 1000) * 10**9 + 5000, 1),
    ]
    return data, want


@pytest.mark.parametrize("e", ["<", ">"], ids=["le", "be"])
def test_pcapng_interfaces_resolutions_offsets_and_skipped_blocks(tmp_path, e):
    data, want = _pcapng_mixed(e)
    got = read_capture(_write(tmp_path, "x.pcapng", data))
    assert got.kind == "pcapng" and not got.problems
    assert got.rows() == want
    assert got.count("source.pcapng.skipped_block") == 4       # NRB, ISB, two custom blocks
    assert got.count("source.packets") == 6


@pytest.mark.parametrize("bs", [1, 2, 5])
def test_pcapng_state_survives_batch_boundaries(tmp_path, bs):
    data, want = _pcapng_mixed("<")
    assert read_capture(_write(tmp_path, "x.pcapng", data), batch_size=bs).rows() == want


def test_pcapng_times_agree_with_tshark(tmp_path):
    data, want = _pcapng_mixed("<")
    p = _write(tmp_path, "x.pcapng", data)
    out = subprocess.run(["tshark", "-r", str(p), "-T", "fields", "-e", "frame.interface_id",
                          "-e", "frame.time_epoch", "-e", "frame.len"], capture_output=True, text=True).stdout
    # tshark shows the custom blocks as frames without an interface: not packets
    theirs = [line.split("\t") for line in out.splitlines() if not line.startswith("\t")]
    assert [int(wl) for _, _, wl in theirs] == [w[2] for w in want]
    for (_, t, _), w in zip(theirs[:-1], want):       # the SPB has no time of its own
        sec, frac = t.split(".")
        assert int(sec) * 10**9 + int(frac.ljust(9, "0")[:9]) == w[3]


def test_pcapng_two_sections_of_both_byte_orders(tmp_path):
    """A second section resets the interfaces; each section has its own byte order."""
    data = (ng_shb("<") + ng_idb("<", 1) + ng_epb("<", 0, 10**6, E4)
            + ng_shb(">") + ng_idb(">", 229, tsresol=9) + ng_epb(">", 0, 2 * 10**9 + 1, U6))
    got = read_capture(_write(tmp_path, "x.pcapng", data))
    assert got.rows() == [(E4, len(E4), len(E4), 10**9, 1), (U6, len(U6), len(U6), 2 * 10**9 + 1, 229)]


def test_pcapng_packet_on_unknown_interface_is_skipped_and_counted(tmp_path):
    data = ng_shb("<") + ng_idb("<", 1) + ng_epb("<", 5, 1, E4) + ng_epb("<", 0, 2, E4)
    got = read_capture(_write(tmp_path, "x.pcapng", data))
    assert got.ts == [2000] and got.count("source.pcapng.bad_interface") == 1


# ---- ERF ---------------------------------------------------------------------


def test_erf_types_loss_and_extension_headers(tmp_path):
    data = b"".join([
        erf_record(ERF_TYPE_ETH, T0 + 1, E4, wirelen=len(E4) + 4),      # wire length counts the FCS
        erf_record(ERF_TYPE_IPV4, T0 + 2_000, U4, loss=3),
        erf_record(ERF_TYPE_HDLC, T0 + 3_000, b"\x0f\x00\x08\x00" + U4),  # not read: counted
        erf_record(ERF_TYPE_IPV6, T0 + 4_000_000, U6, ext_headers=2),
    ])
    got = read_capture(_write(tmp_path, "x.erf", data))
    assert got.kind == "erf" and not got.problems
    assert got.rows() == [
        (E4, len(E4), len(E4) + 4, T0 + 1, 1),
        (U4, len(U4), len(U4), T0 + 2_000, 228),
        (U6, len(U6), len(U6), T0 + 4_000_000, 229),
    ]
    assert got.count("source.erf.unsupported_type") == 1
    assert got.count("source.erf.loss") == 3


# ---- gzip, standard input, the stream window ------------------------------------


def test_gzip_by_path_and_on_stdin_gives_the_same_output(tmp_path):
    plain = SAMPLE.read_bytes()
    gz = _write(tmp_path, "sample.pcap.gz", gzip.compress(plain))
    want = run_ulnet("peek", SAMPLE, check=True).stdout
    assert want.count(b"\n") == 30
    assert run_ulnet("peek", gz, check=True).stdout == want
    assert run_ulnet("peek", "-", stdin=gzip.compress(plain), check=True).stdout == want
    assert run_ulnet("peek", "-r", "-", stdin=plain, check=True).stdout == want


def _big_pcap(n=5000, size=1200) -> tuple[bytes, list]:
    rng = np.random.default_rng(7)
    recs = [Rec(ether(bytes(rng.integers(0, 256, size - 14, dtype=np.uint8)), 0x0800), T0 + k * 1000)
            for k in range(n)]
    return pcap_bytes(recs), recs


def test_stream_window_refill_gives_the_same_packets(tmp_path):
    data, recs = _big_pcap()
    assert len(data) > STREAM_WINDOW
    plain = _write(tmp_path, "big.pcap", data)
    gz = _write(tmp_path, "big.pcap.gz", gzip.compress(data, 1))
    a, b = read_capture(plain), read_capture(gz, batch_size=1000)
    assert len(a.frames) == len(recs) == len(b.frames)
    assert a.rows() == b.rows()
    assert not a.problems and not b.problems


def test_stream_window_grows_for_a_record_bigger_than_it(tmp_path):
    big = ether(bytes(range(256)) * ((STREAM_WINDOW + 1000) // 256), 0x0800)
    data = pcap_bytes([Rec(E4, T0), Rec(big, T0 + 1000), Rec(E6, T0 + 2000)], snaplen=16 << 20)
    gz = _write(tmp_path, "huge.pcap.gz", gzip.compress(data, 1))
    got = read_capture(gz)
    assert got.frames == [E4, big, E6] and not got.problems


def test_stdin_stream_large(tmp_path):
    data, recs = _big_pcap(n=4000)
    p = run_ulnet("peek", "--stats", "-", stdin=gzip.compress(data, 1), check=True)
    assert p.stdout.count(b"\n") == 4000
    assert re.search(rb"^source\.packets +4000 ", p.stderr, re.M)


def _aligned_pcap(n=6000) -> bytes:
    """Every record ends on a multiple of 1024 bytes of the file."""
    first = Rec(bytes(1024 - 24 - 16), T0)
    return pcap_bytes([first] + [Rec(bytes([k % 256]) * 1008, T0 + k) for k in range(1, n)])


class _Chunks(io.RawIOBase):
    """A pipe that hands out at most ``size`` bytes per read."""

    def __init__(self, data: bytes, size: int):
        self.data, self.pos, self.size = data, 0, size

    def readable(self):
        return True

    def readinto(self, b):
        k = min(len(b), self.size, len(self.data) - self.pos)
        b[:k] = self.data[self.pos:self.pos + k]
        self.pos += k
        return k


def test_stream_read_ending_on_a_record_boundary_is_not_the_end(monkeypatch):
    """Regression: a stream window that ended exactly after a record was taken
    for the end of the input (``cat x.pcap | ulnet peek -`` printed 4 of 6000
    packets, no warning, exit 0)."""
    data = _aligned_pcap()
    stdin = types.SimpleNamespace(buffer=io.BufferedReader(_Chunks(data, 1024), buffer_size=1024))
    monkeypatch.setattr(sys, "stdin", stdin)
    got = read_capture("-")
    assert len(got.frames) == 6000 and not got.problems


def test_pipe_from_cat(tmp_path):
    f = _write(tmp_path, "aligned.pcap", _aligned_pcap())
    cat = subprocess.Popen(["cat", str(f)], stdout=subprocess.PIPE)
    try:
        p = subprocess.run(ULNET + ["peek", "--stats", "-"], stdin=cat.stdout, capture_output=True, timeout=300)
    finally:
        cat.stdout.close()      # so cat sees a closed pipe if peek stopped reading early
        cat.kill()
        cat.wait()
    assert p.returncode == 0 and p.stdout.count(b"\n") == 6000, p.stderr


def test_fifo_and_process_substitution(tmp_path):
    """Regression: a pipe named by path (``peek <(zcat x.pcap.gz)``, a FIFO)
    was refused as "empty file" (its size is 0); it is read as a stream."""
    want = run_ulnet("peek", SAMPLE, check=True).stdout
    for producer in ("cat", "gzip -c"):
        p = subprocess.run(["bash", "-c", f'"$0" -m ulnet.cli.main peek <({producer} "$1")', sys.executable,
                            str(SAMPLE)], capture_output=True, timeout=300)
        assert p.returncode == 0 and p.stdout == want, (producer, p.stderr)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_bytes, args=(gzip.compress(SAMPLE.read_bytes()),))
    writer.start()
    got = read_capture(fifo)
    writer.join()
    assert got.rows() == read_capture(SAMPLE).rows() and not got.problems


# ---- link types through to addresses ------------------------------------------

SLL = b"\x00\x00\x00\x01\x00\x06\x02\x00\x00\x00\x00\x01\x00\x00"        # pkttype, hatype, halen, addr
SLL2_HEAD = b"\x00\x00\x00\x00\x00\x02\x00\x01\x00\x06\x02\x00\x00\x00\x00\x01\x00\x00"  # res, ifindex, ...

LINK_CASES = [
    # (id, link type, frame, version)
    ("raw101-v4", 101, U4, 4),
    ("raw101-v6", 101, U6, 6),
    ("ipv4-228", 228, U4, 4),
    ("ipv6-229", 229, U6, 6),
    ("sll-113-v4", 113, SLL + b"\x08\x00" + U4, 4),
    ("sll-113-v6", 113, SLL + b"\x86\xdd" + U6, 6),
    ("sll2-276-v4", 276, b"\x08\x00" + SLL2_HEAD + U4, 4),
    ("sll2-276-v6", 276, b"\x86\xdd" + SLL2_HEAD + U6, 6),
    ("null-0-le-v4", 0, b"\x02\x00\x00\x00" + U4, 4),
    ("null-0-be-v4", 0, b"\x00\x00\x00\x02" + U4, 4),
    ("null-0-le-v6-linux", 0, b"\x0a\x00\x00\x00" + U6, 6),
    ("null-0-le-v6-bsd", 0, b"\x18\x00\x00\x00" + U6, 6),
    ("null-0-be-v6-freebsd", 0, b"\x00\x00\x00\x1c" + U6, 6),
    ("null-0-be-v6-macos", 0, b"\x00\x00\x00\x1e" + U6, 6),
    ("loop-108-v4", 108, b"\x00\x00\x00\x02" + U4, 4),
    ("loop-108-v6", 108, b"\x00\x00\x00\x18" + U6, 6),
    ("eth-1-v4", 1, E4, 4),
]


@pytest.mark.parametrize("lt,frame,ver", [c[1:] for c in LINK_CASES], ids=[c[0] for c in LINK_CASES])
def test_link_types_decode_to_the_right_addresses(tmp_path, lt, frame, ver):
    p = _write(tmp_path, "x.pcap", pcap_bytes([Rec(frame, T0)], linktype=lt))
    r = open_capture(str(p))
    b = PacketBatch(4)
    c = new_counters()
    r.counters = c
    b.n = r.fill(b)
    decode(b, c)
    a = b.addr[0].tolist()
    src, dst = to_text(a[0], a[1], ver), to_text(a[2], a[3], ver)
    if ver == 4:
        assert (src, dst, b.col("src_port")[0], b.col("dst_port")[0]) == ("192.0.2.1", "198.51.100.2", 1111, 53)
    else:
        assert (src, dst, b.col("src_port")[0], b.col("dst_port")[0]) == ("2001:db8::1", "2001:db8:1::2", 2222, 443)
    assert b.col("ip_version")[0] == ver and b.col("error")[0] == 0
    r.close()


# ---- what the command line says --------------------------------------------------


def _one_error_line(p, *parts):
    assert p.returncode == 2, p.stderr
    err = p.stderr.decode()
    assert err.count("\n") == 1, err
    for part in parts:
        assert part in err, err
    assert p.stdout == b""


def test_missing_file(tmp_path):
    f = tmp_path / "nope.pcap"
    _one_error_line(run_ulnet("peek", f), str(f), "No such file")


def test_empty_file(tmp_path):
    f = _write(tmp_path, "empty.pcap", b"")
    _one_error_line(run_ulnet("peek", f), str(f), "empty")


def test_empty_stdin():
    _one_error_line(run_ulnet("peek", "-", stdin=b""), "<stdin>")


def test_unknown_magic(tmp_path):
    f = _write(tmp_path, "junk.pcap", b"GIF89a" + bytes(100))
    _one_error_line(run_ulnet("peek", f), str(f), "byte offset 0", "not a capture file")


@pytest.mark.parametrize("minor,swapped", [(0, True), (2, True), (3, True), (3, False), (4, False)])
def test_pcap_length_order_by_version(tmp_path, minor, swapped):
    """pcap 2.0-2.2 wrote orig_len before incl_len; 2.3 files come either
    way (swapped where incl_len > orig_len); 2.4 is the order everyone reads."""
    recs = [Rec(E4[:30], T0, wirelen=len(E4)), Rec(E4, T0 + 10**9)]
    p = _write(tmp_path, "v.pcap", pcap_bytes(recs, minor=minor, swapped=swapped))
    got = read_capture(p)
    assert not got.problems
    assert [(r[1], r[2]) for r in got.rows()] == [(30, len(E4)), (len(E4), len(E4))]


def test_unsupported_link_type(tmp_path):
    f = _write(tmp_path, "user0.pcap", pcap_bytes([Rec(U4, T0)], linktype=147))
    _one_error_line(run_ulnet("peek", f), str(f), "byte offset 20", "link type 147")


def test_bad_pcapng_byte_order_magic(tmp_path):
    f = _write(tmp_path, "bom.pcapng", ng_shb("<")[:8] + b"\x11\x22\x33\x44" + ng_shb("<")[12:])
    _one_error_line(run_ulnet("peek", f), str(f), "byte offset 8")


def test_second_input_bad_fails_before_any_output(tmp_path):
    f = tmp_path / "nope.pcap"
    _one_error_line(run_ulnet("peek", SAMPLE, f), str(f))


@pytest.mark.parametrize("via", ["path", "stdin"])
def test_truncated_last_record(tmp_path, via):
    data = SAMPLE.read_bytes()[:-10]
    f = _write(tmp_path, "cut.pcap", data)
    p = run_ulnet("peek", "--stats", f) if via == "path" else run_ulnet("peek", "--stats", "-", stdin=data)
    assert p.returncode == 0
    assert p.stdout.decode().splitlines() == run_ulnet("peek", SAMPLE).stdout.decode().splitlines()[:29]
    warnings = [line for line in p.stderr.decode().splitlines() if "warning" in line]
    assert len(warnings) == 1
    name = str(f) if via == "path" else "<stdin>"
    last = pcap_record_offsets(SAMPLE.read_bytes())[-2]
    assert name in warnings[0] and f"byte offset {last}:" in warnings[0]
    assert "source.truncated" in p.stderr.decode()


def test_open_capture_raises_capture_error(tmp_path):
    with pytest.raises(CaptureError, match="file too short"):
        open_capture(str(_write(tmp_path, "tiny", b"\xd4\xc3")))
