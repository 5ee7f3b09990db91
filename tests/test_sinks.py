"""Capture writers (ulnet.sinks.pcap, ulnet.sinks.pcapng) and ``peek -w``.

1. Round trip: every capture of the corpus is read, written with both
   writers, read back: the packets (bytes, caplen, wirelen, ts, link type)
   must be the same. Captures the reader refuses are listed below with the
   reason, and the test checks they are still refused.
2. Outside oracles: tshark and tcpdump read what we wrote exactly as they
   read the original.
3. The writers' own options: mask, microsecond files, snap length, link
   type checks, standard output, and the ``peek -w`` command line.
"""

from __future__ import annotations

import gzip
import subprocess
import sys

import numpy as np
import pytest

from _captures import Rec, ipv4_udp, ng_epb, ng_idb, ng_shb, pcap_bytes, read_capture
from conftest import LIBPEAK, NDPI_PCAPS, SAMPLE, run_ulnet
from ulnet.sinks.pcap import LinkTypeError, PcapWriter
from ulnet.sinks.pcapng import PcapngWriter
from ulnet.sources import CaptureError

# libpeak's folder also holds peek's expected text output: not captures.
LIBPEAK_CAPTURES = sorted(p for p in LIBPEAK.iterdir() if not p.name.startswith("expected-peek-"))
CORPUS = NDPI_PCAPS + LIBPEAK_CAPTURES

# Captures the reader refuses at open, and why (checked: if the reader learns
# one, this test fails and the entry must go).
REJECTED_AT_OPEN: dict[str, str] = {}
# Captures whose reading stops at a corrupt record (the packets before it
# round-trip like any other).
STOPS_AT_CORRUPT_RECORD: dict[str, str] = {}


def _written_by(writer, src, batch_size=256, mask_of=None):
    """Read ``src`` and hand each batch to ``writer``; returns what was read."""
    def each(b):
        writer.write_batch(b, None if mask_of is None else mask_of(b))
    got = read_capture(src, batch_size=batch_size, each_batch=each)
    writer.close()
    return got


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_corpus_round_trip(path, tmp_path):
    if path.name in REJECTED_AT_OPEN:
        with pytest.raises(CaptureError, match=REJECTED_AT_OPEN[path.name]):
            read_capture(path)
        return
    ng = tmp_path / "out.pcapng"
    orig = _written_by(PcapngWriter(str(ng)), path)
    assert orig.failed == (path.name in STOPS_AT_CORRUPT_RECORD), orig.problems
    if orig.failed:
        assert STOPS_AT_CORRUPT_RECORD[path.name] in orig.problems[0]
    back = read_capture(ng)
    assert not back.problems
    assert back.rows() == orig.rows()

    lts = set(orig.linktype)
    if len(lts) > 1:   # pcap cannot hold it: the writer must say so
        w = PcapWriter(str(tmp_path / "out.pcap"), orig.linktype[0], nanosecond=True)
        with pytest.raises(LinkTypeError):
            _written_by(w, path)
        return
    lt = lts.pop() if lts else 1
    pc = tmp_path / "out.pcap"
    _written_by(PcapWriter(str(pc), lt, nanosecond=True), path)
    back = read_capture(pc)
    assert not back.problems
    assert back.rows() == orig.rows()

    # microsecond pcap: same packets, times truncated to the microsecond
    us = tmp_path / "out_us.pcap"
    _written_by(PcapWriter(str(us), lt), path)
    back = read_capture(us)
    assert back.ts == [t // 1000 * 1000 for t in orig.ts]
    assert back.frames == orig.frames and back.wirelen == orig.wirelen


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_mask_writes_only_selected_rows(kind, tmp_path):
    out = tmp_path / f"odd.{kind}"
    w = PcapWriter(str(out), 1, nanosecond=True) if kind == "pcap" else PcapngWriter(str(out))
    # every packet whose index within its batch is odd (batches of 7)
    orig = _written_by(w, SAMPLE, batch_size=7, mask_of=lambda b: (np.arange(b.n) % 2).astype(bool))
    want = [row for k, row in enumerate(orig.rows()) if (k % 7) % 2]
    assert w.packets == len(want) == 13   # 30 packets in batches of 7: 3+3+3+3+1
    assert read_capture(out).rows() == want


def test_mask_shorter_than_batch_is_refused(tmp_path):
    w = PcapngWriter(str(tmp_path / "x.pcapng"))
    with pytest.raises(ValueError, match="mask"):
        _written_by(w, SAMPLE, mask_of=lambda b: np.ones(b.n - 1, dtype=bool))


def test_pcap_snaplen_cuts_long_packets(tmp_path):
    out = tmp_path / "cut.pcap"
    w = PcapWriter(str(out), 1, snaplen=64)
    orig = _written_by(w, SAMPLE)
    back = read_capture(out)
    assert back.frames == [f[:64] for f in orig.frames]
    assert back.wirelen == orig.wirelen
    assert w.cut == sum(len(f) > 64 for f in orig.frames) > 0


def test_pcapng_snaplen_cuts_long_packets(tmp_path):
    out = tmp_path / "cut.pcapng"
    w = PcapngWriter(str(out), snaplen=64)
    orig = _written_by(w, SAMPLE)
    assert read_capture(out).frames == [f[:64] for f in orig.frames]
    assert w.cut > 0


def test_pcap_refuses_a_second_link_type(tmp_path):
    src = tmp_path / "raw.pcap"
    src.write_bytes(pcap_bytes([Rec(ipv4_udp("192.0.2.1", "192.0.2.2", 1, 2), 10**9)], linktype=101))
    w = PcapWriter(str(tmp_path / "out.pcap"), 1)
    with pytest.raises(LinkTypeError) as e:
        _written_by(w, src)
    assert (e.value.row, e.value.linktype, e.value.file_linktype) == (0, 101, 1)
    assert w.packets == 0


def _two_linktypes(tmp_path):
    """One Ethernet pcap and one raw-IPv4 pcapng input."""
    a = tmp_path / "eth.pcap"
    a.write_bytes(SAMPLE.read_bytes())
    b = tmp_path / "raw4.pcapng"
    b.write_bytes(ng_shb("<") + ng_idb("<", 228, tsresol=9)
                  + ng_epb("<", 0, 1_700_000_100_123_456_789, ipv4_udp("192.0.2.7", "192.0.2.8", 7, 8)))
    return a, b


def test_pcapng_one_interface_per_port_and_linktype(tmp_path):
    a, b = _two_linktypes(tmp_path)
    out = tmp_path / "mixed.pcapng"
    w = PcapngWriter(str(out))
    want = []
    for port, src in enumerate((a, b)):
        def each(batch, port=port):
            batch.port[:batch.n] = port
            w.write_batch(batch)
        want += read_capture(src, each_batch=each).rows()
    w.close()
    assert w.interfaces == [(0, 1), (1, 228)]
    assert read_capture(out).rows() == want
    p = subprocess.run(["capinfos", "-M", str(out)], capture_output=True, text=True)
    assert "Number of interfaces in file: 2" in p.stdout
    assert p.stdout.count("Time precision = nanoseconds (9)") == 2


def test_writer_to_stdout():
    code = ("import sys; sys.path.insert(0, 'tests'); from _captures import read_capture; "
            "from ulnet.sinks.pcapng import PcapngWriter; w = PcapngWriter('-'); "
            f"read_capture({str(SAMPLE)!r}, each_batch=w.write_batch); w.close(); print('', file=sys.stderr)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=str(SAMPLE.parent.parent))
    assert p.returncode == 0, p.stderr
    t = subprocess.run(["tshark", "-r", "-", "-T", "fields", "-e", "frame.len"], input=p.stdout, capture_output=True)
    assert t.stdout.decode().split() == [str(x) for x in read_capture(SAMPLE).wirelen]


def test_empty_batch_and_no_packets(tmp_path):
    out = tmp_path / "none.pcap"
    w = PcapWriter(str(out), None)
    w.close()
    assert read_capture(out).frames == []
    assert out.read_bytes()[20:24] == b"\x01\0\0\0"   # no packet seen: Ethernet


def test_linktype_from_first_packet(tmp_path):
    src = tmp_path / "raw.pcap"
    src.write_bytes(pcap_bytes([Rec(ipv4_udp("192.0.2.1", "192.0.2.2", 1, 2), 10**9)], linktype=101))
    out = tmp_path / "out.pcap"
    orig = _written_by(PcapWriter(str(out), None), src)
    assert read_capture(out).rows() == orig.rows()


# ---- outside oracles ----------------------------------------------------------

TSHARK_FIELDS = ["-T", "fields", "-e", "frame.len", "-e", "frame.cap_len", "-e", "frame.time_epoch",
                 "-e", "frame.protocols"]


def _by_name(name):
    return next(p for p in CORPUS if p.name == name)


# (capture, why it is here)
ORACLE_FILES = [
    ("test_be.pcap", "big-endian pcap"),
    ("sites.pcapng", "pcapng with 22 interfaces"),
    ("http2.pcapng", "pcapng, Linux cooked (113)"),
    ("openwire.pcapng", "pcapng, BSD null (0)"),
    ("kerberos_fuzz.pcapng", "pcapng, raw IPv4 (228)"),
    ("test.pcapng", "pcapng with if_tsresol 9 and obsolete packet blocks"),
    ("teredo.pcap", "pcap with tunnels"),
]

# libpcap refuses libpeak's test.pcapng ("block ... has a length of 110 that is
# not a multiple of 4"); tshark and ulnet read it.
TCPDUMP_CANNOT_READ = {"test.pcapng"}


def _tshark(path):
    p = subprocess.run(["tshark", "-n", "-r", str(path)] + TSHARK_FIELDS, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


def _tcpdump(path):
    p = subprocess.run(["tcpdump", "-r", str(path), "-nn", "-tt"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.mark.parametrize("name,why", ORACLE_FILES, ids=[n for n, _ in ORACLE_FILES])
def test_tshark_and_tcpdump_read_what_we_write(name, why, tmp_path):
    src = _by_name(name)
    pc, ng = tmp_path / "out.pcap", tmp_path / "out.pcapng"
    orig = read_capture(src)
    _written_by(PcapWriter(str(pc), orig.linktype[0], nanosecond=True), src)
    _written_by(PcapngWriter(str(ng)), src)
    want = _tshark(src)
    assert want.count("\n") == len(orig.frames)
    assert _tshark(pc) == want
    assert _tshark(ng) == want
    if name in TCPDUMP_CANNOT_READ:
        # the original is out: what we wrote reads the same in both formats
        assert _tcpdump(pc) == _tcpdump(ng) != ""
    else:
        assert _tcpdump(pc) == _tcpdump(src)


def test_tshark_reads_mixed_linktypes_we_write(tmp_path):
    """Ethernet, Linux cooked and raw IPv4 in one pcapng: one IDB each."""
    sll = _by_name("http2.pcapng")
    a, b = _two_linktypes(tmp_path)
    merged = tmp_path / "merged.pcapng"
    subprocess.run(["mergecap", "-w", str(merged), str(a), str(sll), str(b)], check=True)
    out = tmp_path / "out.pcapng"
    orig = _written_by(PcapngWriter(str(out)), merged)
    assert set(orig.linktype) == {1, 113, 228}
    assert _tshark(out) == _tshark(merged)
    with pytest.raises(LinkTypeError):
        _written_by(PcapWriter(str(tmp_path / "out.pcap"), 1), merged)


# ---- peek -w ------------------------------------------------------------------


def test_peek_w_pcap_like_tcpdump(tmp_path):
    src = _by_name("test.pcap")
    out = tmp_path / "out.pcap"
    p = run_ulnet("peek", src, "-w", out, "--stats")
    assert p.returncode == 0, p.stderr
    assert p.stdout == b""                          # packets go to the file, not the screen
    assert b"source.packets" in p.stderr
    assert out.read_bytes() == src.read_bytes()     # microsecond pcap in, the same file out
    assert _tcpdump(out) == _tcpdump(src)


def test_peek_w_format_from_extension_and_option(tmp_path):
    src = _by_name("test.pcap")
    run_ulnet("peek", src, "-w", tmp_path / "a.pcapng", check=True)
    run_ulnet("peek", src, "-w", tmp_path / "b.cap", "--write-format", "pcapng", check=True)
    run_ulnet("peek", src, "-w", tmp_path / "c.pcapng", "--write-format", "pcap", check=True)
    assert (tmp_path / "a.pcapng").read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    assert (tmp_path / "b.cap").read_bytes() == (tmp_path / "a.pcapng").read_bytes()
    assert (tmp_path / "c.pcapng").read_bytes()[:4] == b"\xd4\xc3\xb2\xa1"
    assert read_capture(tmp_path / "a.pcapng").rows() == read_capture(src).rows()


def test_peek_w_count_and_stdout(tmp_path):
    src = _by_name("test.pcapng")   # nanosecond input: nanosecond pcap output
    p = run_ulnet("peek", src, "-c", 5, "-w", "-", check=True)
    assert p.stdout[:4] == b"\x4d\x3c\xb2\xa1"
    f = tmp_path / "x.pcap"
    f.write_bytes(p.stdout)
    assert read_capture(f).rows() == read_capture(src).rows()[:5]


def test_peek_w_gzip_stdin_in(tmp_path):
    src = _by_name("teredo.pcap")
    p = run_ulnet("peek", "-", "-w", "-", stdin=gzip.compress(src.read_bytes()), check=True)
    assert p.stdout == src.read_bytes()


def test_peek_w_pcap_refuses_mixed_link_types(tmp_path):
    a, b = _two_linktypes(tmp_path)
    out = tmp_path / "out.pcap"
    p = run_ulnet("peek", a, b, "-w", out)
    assert p.returncode == 1
    err = p.stderr.decode().splitlines()
    assert len(err) == 1
    assert str(out) in err[0] and "packet 31 has link type 228" in err[0] and "pcapng" in err[0]
    assert not out.exists()
    # two pcap inputs with different link types: refused before reading
    c = tmp_path / "raw.pcap"
    c.write_bytes(pcap_bytes([Rec(ipv4_udp("192.0.2.1", "192.0.2.2", 1, 2), 10**9)], linktype=101))
    p = run_ulnet("peek", a, c, "-w", out)
    assert p.returncode == 2 and b"link types 1, 101" in p.stderr and not out.exists()
    # pcapng takes both
    run_ulnet("peek", a, b, "-w", tmp_path / "out.pcapng", check=True)
    got = read_capture(tmp_path / "out.pcapng")
    assert got.rows() == read_capture(a).rows() + read_capture(b).rows()


def test_peek_w_cannot_create(tmp_path):
    p = run_ulnet("peek", SAMPLE, "-w", tmp_path / "no" / "such" / "dir.pcap")
    assert p.returncode == 2
    assert p.stderr.decode().count("\n") == 1 and b"cannot create" in p.stderr
