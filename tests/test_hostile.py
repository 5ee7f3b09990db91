"""Bad input: the decoder and the capture readers against hostile bytes.

1. Decoder reads: random frames and mutated real frames go through the
   decode kernel laid at the very END of their own buffer, in a subprocess
   that makes any read outside the frame an error:
     - ``python``: NUMBA_DISABLE_JIT=1 (the kernel's slow twin) over a
       guarded array that raises on any index outside [off, off + caplen);
     - ``boundscheck``: the compiled kernel with NUMBA_BOUNDSCHECK=1 (and a
       private cache): a read past the end of the buffer raises IndexError.
   The inner tests (``test_inner_*``) only exist in that subprocess.
2. Capture files cut at every byte (sample.pcap, a pcapng made from it,
   their gzip forms, and the gzip stream itself cut): no crash, no hang,
   every packet before the cut, the cut counted.
3. Corrupt headers: pcapng block lengths (too small, trailer mismatch,
   huge), snap lengths 0 and 262144, caplen > wirelen, caplen above the
   maximum, damaged gzip: exit status, message with the byte offset, counter.
"""

from __future__ import annotations

import gzip
import os
import re
import signal
import struct
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest

from _captures import (
    ERF_TYPE_ETH, Rec, erf_record, ether, ipv4_udp, ng_block, ng_epb, ng_idb, ng_shb, pcap_bytes,
    pcap_record_offsets, read_capture,
)
from conftest import NDPI_PCAPS, ROOT, SAMPLE, run_ulnet
from ulnet.sources import CaptureError

MODE = os.environ.get("ULNET_HOSTILE_MODE")     # set only in the decoder subprocesses
T0 = 1_700_000_000 * 10**9
E4 = ether(ipv4_udp("192.0.2.1", "198.51.100.2", 1111, 53), 0x0800)


@contextmanager
def deadline(seconds: int):
    """Fail (instead of hanging) when the body runs longer than ``seconds``."""
    def fire(*_):
        raise TimeoutError(f"no result after {seconds} s: a hang?")
    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# =============================================================================
# 1. decoder reads stay inside the frame
# =============================================================================

INNER_TESTS = 5     # test_inner_* below: the subprocess must run them all


@pytest.mark.parametrize("mode", ["python", "boundscheck"])
def test_decoder_never_reads_outside_the_frame(mode, tmp_path):
    env = dict(os.environ, ULNET_HOSTILE_MODE=mode, PYTHONHASHSEED="0")
    if mode == "python":
        env["NUMBA_DISABLE_JIT"] = "1"
    else:
        env["NUMBA_BOUNDSCHECK"] = "1"
        env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba-cache")   # never reuse unchecked machine code
    p = subprocess.run([sys.executable, "-m", "pytest", __file__, "-k", "test_inner_", "-x",
                        "-p", "no:cacheprovider", "--no-header", "-rN"],
                       cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=1200)
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-2000:]
    assert re.search(rf"\b{INNER_TESTS} passed\b", p.stdout), p.stdout[-2000:]


if MODE:
    from hypothesis import HealthCheck, given, settings, strategies as st

    from ulnet.batch import PacketBatch
    from ulnet.batch.columns import HDR_NAMES
    from ulnet.counters import new_counters
    from ulnet.decode import decode

    EXAMPLES = 1500 if MODE == "python" else 6000
    FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    LINKTYPES = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276]
    PAD = 7     # bytes before the frame: reading them is an under-read

    class Guarded(np.ndarray):
        """uint8 array that raises IndexError on any read outside [lo, hi)."""

        def __getitem__(self, k):
            lo, hi = self.lo, self.hi
            if isinstance(k, slice):
                start = 0 if k.start is None else k.start
                stop = len(self) if k.stop is None else k.stop
                if start < lo or stop > hi:
                    raise IndexError(f"slice {start}:{stop} outside the frame [{lo}, {hi})")
            elif isinstance(k, (int, np.integer)):
                if not lo <= k < hi:
                    raise IndexError(f"read at {int(k)} outside the frame [{lo}, {hi})")
            else:
                raise IndexError(f"unexpected index {k!r}")
            return np.ndarray.__getitem__(self, k)

    _batch = PacketBatch(1)
    _counters = new_counters()
    _COL = {name: i for i, name in enumerate(HDR_NAMES)}

    def decode_frame(frame: bytes, lt: int) -> np.ndarray:
        """Decode one frame laid at the very end of its own buffer; returns its row."""
        n = len(frame)
        raw = np.full(PAD + n, 0xA5, dtype=np.uint8)
        raw[PAD:] = np.frombuffer(frame, dtype=np.uint8)
        if MODE == "python":
            buf = raw.view(Guarded)
            buf.lo, buf.hi = PAD, PAD + n
        else:
            buf = raw
        b = _batch
        b.buf = buf
        b.off[0] = PAD
        b.caplen[0] = n
        b.wirelen[0] = n
        b.linktype[0] = lt
        b.n = 1
        decode(b, _counters)
        row = b.hdr[0].copy()
        # what the decoder hands on must also stay inside the frame
        for name in ("outer_l3_off", "l3_off", "l4_off", "payload_off"):
            v = row[_COL[name]]
            assert v == -1 or 0 <= v <= n, (name, v, n)
        if row[_COL["payload_off"]] >= 0:
            assert row[_COL["payload_off"]] + row[_COL["payload_len"]] <= n
        assert row[_COL["payload_len"]] >= 0
        return row

    def _seed_frames() -> list[tuple[bytes, int]]:
        """Real frames with many layers: corpus captures and crafted tunnels."""
        names = {"gre.pcapng", "gtp_extension_headers.pcapng", "teredo.pcap", "6in4tunnel.pcap",
                 "4in4tunnel.pcap", "dns_fragmented.pcap", "http_ipv6.pcap", "http2.pcapng",
                 "openwire.pcapng", "kerberos_fuzz.pcapng", "ah.pcapng", "capwap_data.pcapng",
                 "dns.pcap", "android.pcap", "bjnp.pcap", "nats.pcap", "gtp_prime.pcapng",
                 "fuzz-2006-06-26-2594.pcap", "fuzz-2020-02-16-11740.pcap", "iphone.pcap"}
        seeds = []
        for path in [SAMPLE] + [p for p in NDPI_PCAPS if p.name in names]:
            got = read_capture(path, batch_size=64)
            seen = set()
            for f, lt in zip(got.frames, got.linktype):
                key = (lt, f[:14], len(f) // 64)
                if key not in seen and len(seen) < 25:
                    seen.add(key)
                    seeds.append((f, lt))
        from scapy.all import (AH, GRE, ICMP, IP, PPP, SCTP, TCP, UDP, Dot1AD, Dot1Q, Ether, ICMPv6EchoRequest,
                               IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                               IPv6ExtHdrRouting, PPPoE, Raw)
        from scapy.contrib.gtp import GTP_U_Header, GTPPDUSessionContainer
        from scapy.contrib.mpls import MPLS
        from scapy.layers.l2 import GRE_PPTP
        from scapy.layers.vxlan import VXLAN

        def eth():
            return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        a, b = "192.0.2.1", "198.51.100.2"
        crafted = [
            eth() / MPLS(label=16, s=0) / MPLS(label=17, s=1) / IP(src=a, dst=b) / UDP(sport=1, dport=2) / Raw(b"x" * 8),
            eth() / IP(src=a, dst=b) / UDP(sport=5555, dport=4789) / VXLAN(vni=42) / eth() / Dot1Q(vlan=5)
            / IP(src=a, dst=b) / TCP(),
            eth() / IP(src=a, dst=b) / SCTP(sport=7, dport=9) / Raw(b"abcd"),
            eth() / PPPoE(sessionid=3) / PPP(proto=0x21) / IP(src=a, dst=b) / UDP() / Raw(b"q"),
            eth() / IPv6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting() / IPv6ExtHdrDestOpt() / AH(nh=44)
            / IPv6ExtHdrFragment(m=1) / UDP() / Raw(b"zz"),
            eth() / IP(src=a, dst=b) / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=1, E=1, next_ex=0x85)
            / GTPPDUSessionContainer(type=1, QFI=5) / IP(src=a, dst=b) / TCP(),
            eth() / IP(src=a, dst=b) / GRE_PPTP(seqnum_present=1, sequence_number=1) / PPP(proto=0x21)
            / IP(src=a, dst=b) / ICMP(),
            eth() / Dot1AD(vlan=1) / Dot1Q(vlan=2) / IPv6() / ICMPv6EchoRequest(),
            eth() / IP(src=a, dst=b) / GRE(proto=0x6558) / eth() / IP(src=a, dst=b) / UDP(),
            eth() / IP(src=a, dst=b) / GRE(chksum_present=1, key_present=1, seqnum_present=1) / IPv6() / TCP(),
            eth() / IP(src=a, dst=b, frag=100, flags=1) / Raw(b"f" * 20),
        ]
        seeds += [(bytes(f), 1) for f in crafted]
        seeds += [(bytes(f)[14:], 101) for f in crafted]
        return seeds

    SEEDS = _seed_frames()

    def test_inner_the_detector_detects():
        """The guard of this mode really turns an out-of-frame read into an error."""
        if MODE == "python":
            raw = np.zeros(PAD + 4, dtype=np.uint8).view(Guarded)
            raw.lo, raw.hi = PAD, PAD + 4
            raw[PAD + 3]
            with pytest.raises(IndexError):
                raw[PAD + 4]
            with pytest.raises(IndexError):
                raw[PAD - 1]
        else:
            from numba import njit

            @njit
            def read(a, i):
                return a[i]
            a = np.zeros(4, dtype=np.uint8)
            read(a, 3)
            with pytest.raises(IndexError):
                read(a, 4)
        # and through the decoder: an Ethernet + IPv4 header whose last byte
        # (the end of the destination address) lies just outside the buffer
        frame = E4[:34]
        decode_frame(frame, 1)
        raw = np.zeros(PAD + 33, dtype=np.uint8)
        raw[PAD:] = np.frombuffer(frame[:33], dtype=np.uint8)
        if MODE == "python":
            raw = raw.view(Guarded)
            raw.lo, raw.hi = PAD, PAD + 33
        b = _batch
        b.buf, b.off[0], b.caplen[0], b.linktype[0], b.n = raw, PAD, 34, 1, 1
        with pytest.raises(IndexError):
            decode(b, _counters)

    def test_inner_every_seed_cut_at_every_length():
        assert len(SEEDS) > 200
        for frame, lt in SEEDS:
            for k in range(len(frame) + 1):
                decode_frame(frame[:k], lt)

    @FUZZ
    @given(lt=st.one_of(st.sampled_from(LINKTYPES), st.integers(0, 0xFFFF)), frame=st.binary(max_size=200))
    def test_inner_random_frames(lt, frame):
        decode_frame(frame, lt)

    @st.composite
    def mutated(draw):
        frame, lt = draw(st.sampled_from(SEEDS))
        b = bytearray(frame)
        for _ in range(draw(st.integers(0, 8))):
            if not b:
                break
            i = draw(st.integers(0, min(len(b), 120) - 1))        # headers live up front
            b[i] = draw(st.one_of(st.integers(0, 255), st.sampled_from([0, 1, 0x0F, 0x40, 0x45, 0x60, 0x80, 0xFF])))
        how = draw(st.sampled_from(["keep", "cut", "cut+junk", "junk"]))
        if how.startswith("cut"):
            b = b[:draw(st.integers(0, len(b)))]
        if how.endswith("junk"):
            b += draw(st.binary(max_size=64))
        return bytes(b), lt

    @FUZZ
    @given(case=mutated())
    def test_inner_mutated_real_frames(case):
        decode_frame(*case)

    @FUZZ
    @given(frame=st.binary(min_size=1, max_size=120), lt=st.sampled_from(LINKTYPES),
           seed=st.integers(0, 10**6))
    def test_inner_real_header_random_rest(frame, lt, seed):
        """A real frame's first bytes (its headers) followed by random bytes."""
        f, flt = SEEDS[seed % len(SEEDS)]
        cut = seed % (min(len(f), 80) + 1)
        decode_frame(f[:cut] + frame, flt if seed % 5 else lt)


# =============================================================================
# 2. cut at every byte
# =============================================================================


def _cut_everywhere(tmp_path, data: bytes, name: str, full_rows, boundaries, packet_ends, header_len):
    """Read ``data`` cut at every length, from a mapped file and as a gzip
    stream; check what is delivered and what is counted. ``boundaries``: the
    offsets where a cut falls between records; ``packet_ends``: where each
    packet's record ends; below ``header_len`` the file cannot be opened."""
    plain = tmp_path / name
    gz = tmp_path / (name + ".gz")
    with deadline(300):
        for cut in range(len(data) + 1):
            plain.write_bytes(data[:cut])
            gz.write_bytes(gzip.compress(data[:cut], 1))
            for path in (plain, gz):
                if cut < header_len:
                    with pytest.raises(CaptureError) as e:
                        read_capture(path)
                    assert str(path) in str(e.value) and "\n" not in str(e.value)
                    continue
                got = read_capture(path, batch_size=8)
                complete = sum(1 for b in packet_ends if b <= cut)
                assert got.rows() == full_rows[:complete], (path, cut)
                at_boundary = cut in boundaries
                assert got.count("source.truncated") == (0 if at_boundary else 1), (path, cut)
                assert len(got.problems) == (0 if at_boundary else 1), (path, cut, got.problems)
                assert not got.failed
                if not at_boundary:
                    assert re.search(r"byte offset \d+", got.problems[0])


def test_sample_pcap_cut_at_every_byte(tmp_path):
    data = SAMPLE.read_bytes()
    full = read_capture(SAMPLE).rows()
    assert len(full) == 30
    offs = pcap_record_offsets(data)
    _cut_everywhere(tmp_path, data, "s.pcap", full, offs, offs[1:], 24)


def test_sample_pcapng_cut_at_every_byte(tmp_path):
    ng = tmp_path / "sample.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(SAMPLE), str(ng)], check=True, capture_output=True)
    data = ng.read_bytes()
    full = read_capture(ng).rows()
    assert [r[:3] for r in full] == [r[:3] for r in read_capture(SAMPLE).rows()]
    ends, epb_ends, p = [], [], 0
    while p < len(data):
        btype, blen = struct.unpack_from("<II", data, p)
        p += blen
        ends.append(p)
        if btype == 6:
            epb_ends.append(p)
    assert len(epb_ends) == 30 and ends[-1] == len(data)
    # the file is recognised from 12 bytes on (magic, length, byte-order magic)
    _cut_everywhere(tmp_path, data, "s.pcapng", full, ends, epb_ends, 12)


def test_gzip_stream_cut_at_every_byte(tmp_path):
    """The compressed bytes themselves cut short: packets before the cut, the
    cut counted as a truncation (exit 0 in the CLI), never an exception."""
    data = gzip.compress(SAMPLE.read_bytes(), 9)
    full = read_capture(SAMPLE).rows()
    path = tmp_path / "s.pcap.gz"
    last = -1
    with deadline(300):
        for cut in range(len(data) + 1):
            path.write_bytes(data[:cut])
            try:
                got = read_capture(path, batch_size=8)
            except CaptureError as e:
                # only while not even the file header came out of the stream
                # (about 140 of 1090 bytes: deflate's first block header)
                assert str(path) in str(e) and last == -1 and cut < len(data) // 4, (cut, e)
                continue
            n = len(got.frames)
            assert got.rows() == full[:n] and n >= last, cut
            last = n
            assert not got.failed, (cut, got.problems)
            assert n > 0 or cut < len(data) // 2, cut
            if cut < len(data):
                assert got.count("source.truncated") == 1 and len(got.problems) == 1, (cut, got.problems)
    assert last == 30


def test_gzip_cut_short_in_the_cli(tmp_path):
    data = gzip.compress(SAMPLE.read_bytes())
    f = tmp_path / "cut.pcap.gz"
    f.write_bytes(data[:len(data) // 2])
    p = run_ulnet("peek", "--stats", f)
    assert p.returncode == 0
    n = p.stdout.count(b"\n")
    assert 0 < n < 30
    assert p.stdout == run_ulnet("peek", "-c", n, SAMPLE).stdout
    err = p.stderr.decode()
    assert len([x for x in err.splitlines() if "warning" in x]) == 1 and "truncated" in err
    assert re.search(r"^source\.truncated +1 ", err, re.M)


@pytest.mark.parametrize("damage", ["crc", "deflate"])
def test_gzip_corrupt_stops_with_exit_1(tmp_path, damage):
    data = bytearray(gzip.compress(SAMPLE.read_bytes()))
    if damage == "crc":
        data[-6] ^= 0x55                 # CRC32 of the trailer: found after the last packet
    else:
        data[len(data) // 2] ^= 0xFF     # the deflate data itself
    f = tmp_path / "bad.pcap.gz"
    f.write_bytes(bytes(data))
    p = run_ulnet("peek", "--stats", f)
    err = p.stderr.decode()
    assert p.returncode == 1, err
    assert re.search(rf"{re.escape(str(f))}: byte offset \d+: (read failed|corrupt)", err)
    assert re.search(r"^source\.bad_record +1 ", err, re.M)
    if damage == "crc":
        assert p.stdout.count(b"\n") == 30       # every packet came out before the check failed


# =============================================================================
# 3. corrupt headers
# =============================================================================


def _stats(p) -> dict[str, int]:
    return {m[0]: int(m[1]) for m in re.findall(r"^(\S+) +(\d+) ", p.stderr.decode(), re.M)}


def _peek(tmp_path, data: bytes, name: str, stdin=False):
    f = tmp_path / name
    f.write_bytes(data)
    p = run_ulnet("peek", "--stats", "-", stdin=data) if stdin else run_ulnet("peek", "--stats", f)
    return p, ("<stdin>" if stdin else str(f))


E = "<"
GOOD_NG = ng_shb(E) + ng_idb(E, 1) + ng_epb(E, 0, 1, E4) + ng_epb(E, 0, 2, E4)
AT = len(GOOD_NG)               # where the corrupt block starts

CORRUPT_PCAPNG = {
    "length-too-small": struct.pack("<II", 6, 8) + b"\0" * 16,
    "length-not-matching-trailer": ng_block(E, 6, struct.pack("<IIIII", 0, 0, 3, 60, 60) + bytes(60), trailer=64),
    "length-huge": struct.pack("<II", 6, 0xFFFFFFF0) + bytes(64),
    "epb-caplen-past-block": ng_epb(E, 0, 3, E4, caplen=5000),
    "idb-too-short": ng_block(E, 1, b"\x01\x00"),
    "second-shb-bad-bom": ng_block(E, 0x0A0D0D0A, struct.pack("<IHHq", 0x11223344, 1, 0, -1)),
}


@pytest.mark.parametrize("stdin", [False, True], ids=["file", "stdin"])
@pytest.mark.parametrize("case", list(CORRUPT_PCAPNG))
def test_corrupt_pcapng_block(tmp_path, case, stdin):
    data = GOOD_NG + CORRUPT_PCAPNG[case] + ng_epb(E, 0, 4, E4)
    with deadline(120):
        p, name = _peek(tmp_path, data, "bad.pcapng", stdin)
    assert p.returncode == 1, p.stderr
    assert p.stdout.count(b"\n") == 2                            # the packets before it
    err = [x for x in p.stderr.decode().splitlines() if "warning" in x]
    assert len(err) == 1 and f"{name}: byte offset {AT}: corrupt pcapng record" in err[0], err
    assert _stats(p)["source.bad_record"] == 1


def test_pcapng_block_length_past_end_of_file_is_a_truncation(tmp_path):
    data = GOOD_NG + struct.pack("<II", 6, 10_000_000) + bytes(100)
    for stdin in (False, True):
        p, name = _peek(tmp_path, data, "long.pcapng", stdin)
        assert p.returncode == 0 and p.stdout.count(b"\n") == 2
        assert f"{name}: byte offset {AT}: capture ends inside a record" in p.stderr.decode()
        assert _stats(p)["source.truncated"] == 1


@pytest.mark.parametrize("snaplen", [0, 65535, 262144, 0xFFFFFFFF])
def test_pcap_snaplen_in_header(tmp_path, snaplen):
    big = ether(bytes(200_000), 0x0800)
    p, _ = _peek(tmp_path, pcap_bytes([Rec(E4, T0), Rec(big, T0 + 1)], snaplen=snaplen), "snap.pcap")
    assert p.returncode == 0 and p.stdout.count(b"\n") == 2
    assert _stats(p)["source.packets"] == 2 and _stats(p)["source.bytes"] == len(E4) + len(big)


def test_caplen_above_wirelen_is_counted(tmp_path):
    recs = [Rec(E4, T0, wirelen=10), Rec(E4, T0 + 1), Rec(E4, T0 + 2, wirelen=0)]
    p, _ = _peek(tmp_path, pcap_bytes(recs), "cl.pcap")
    assert p.returncode == 0 and p.stdout.count(b"\n") == 3
    assert _stats(p)["source.caplen_gt_wirelen"] == 2
    got = read_capture(tmp_path / "cl.pcap")
    assert got.wirelen == [len(E4)] * 3                 # raised to the captured length


@pytest.mark.parametrize("snaplen,caplen", [(0, 262145), (65535, 262145), (262144, 0x7FFFFFFF),
                                            (0xFFFFFFFF, (16 << 20) + 1), (262144, 0xFFFFFFFF)])
@pytest.mark.parametrize("stdin", [False, True], ids=["file", "stdin"])
def test_caplen_above_the_maximum(tmp_path, snaplen, caplen, stdin):
    data = pcap_bytes([Rec(E4, T0), Rec(E4, T0 + 1), Rec(E4, T0 + 2, caplen=caplen), Rec(E4, T0 + 3)],
                      snaplen=snaplen)
    at = pcap_record_offsets(data)[2]
    with deadline(120):
        p, name = _peek(tmp_path, data, "huge.pcap", stdin)
    assert p.returncode == 1
    assert p.stdout.count(b"\n") == 2
    assert f"{name}: byte offset {at}: corrupt pcap record header" in p.stderr.decode()
    assert _stats(p)["source.bad_record"] == 1


def test_erf_record_length_too_small(tmp_path):
    good = erf_record(ERF_TYPE_ETH, T0, E4)
    bad = bytearray(erf_record(ERF_TYPE_ETH, T0 + 1, E4))
    bad[10:12] = struct.pack(">H", 8)
    p, name = _peek(tmp_path, good + bytes(bad), "bad.erf")
    assert p.returncode == 1 and p.stdout.count(b"\n") == 1
    assert f"{name}: byte offset {len(good)}: corrupt erf record" in p.stderr.decode()
    assert _stats(p)["source.bad_record"] == 1
