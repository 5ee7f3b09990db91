"""Live reading commands on a veth pair in namespaces of their own (root only):
peek -i, flows -i, capture -i (read back by tshark), replay -o (counted on
the far side)."""

from __future__ import annotations

import json
import struct
import subprocess
import time

import pytest

from netns import ROOT, Topo, have, is_root

pytestmark = pytest.mark.skipif(not is_root(), reason="live tests need root (network namespaces)")

A, B = "10.196.0.1", "10.196.0.2"


@pytest.fixture
def pair():
    """Two namespaces joined by one veth: a (eth0 10.196.0.1) -- b (eth0 10.196.0.2)."""
    t = Topo()
    try:
        a, b = t.ns("a"), t.ns("b")
        for ns in (a, b):
            t.run(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        t.veth(a, "eth0", b, "eth0")
        t.addr(a, "eth0", A + "/24")
        t.addr(b, "eth0", B + "/24")
        yield t, a, b
    finally:
        t.close()


def wait_ready(t: Topo, p, timeout: float = 300):
    """The command has opened its ring (it says so on standard error, as
    tcpdump does): from then on no packet is missed."""
    t.wait_output(p, "listening on", timeout=timeout)


def test_peek_live_jsonl(pair):
    t, a, b = pair
    p = t.ulnet(a, "peek", "-i", "eth0", "-c", "6", "--format", "jsonl")
    wait_ready(t, p)
    t.run(b, "ping", "-c", "4", "-i", "0.2", A, check=False, timeout=20)
    assert _wait(p, 20), "peek did not stop after -c 6"
    out, err = p.stdout.read(), p.stderr.read()
    assert p.returncode == 0, err
    rows = [json.loads(x) for x in out.splitlines()]
    assert len(rows) == 6
    icmp = [r for r in rows if r["protocol"] == 1]
    assert icmp and {r["src_ip"] for r in icmp} <= {A, B}
    assert all(r["ts"] > 1e9 for r in rows)


def _wait(p, timeout):
    try:
        p.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def test_flows_live_sigterm_exports_open_flows(pair):
    t, a, b = pair
    p = t.ulnet(a, "flows", "-i", "eth0", "--format", "jsonl", "--stats")
    wait_ready(t, p)
    t.run(b, "ping", "-c", "3", "-i", "0.2", A, check=False, timeout=20)
    send_udp = "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n" \
               f"[s.sendto(b'x'*100, ('{A}', 7777)) for _ in range(5)]"
    t.run(b, "python3", "-c", send_udp)
    time.sleep(1.5)                         # packets still in the ring at SIGTERM are not read
    out, err = t.stop(p)                    # SIGTERM: every open flow is exported
    rows = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    udp = [r for r in rows if r["protocol"] == 17 and r["dst_port"] == 7777]
    icmp = [r for r in rows if r["protocol"] == 1]
    assert len(udp) == 1 and udp[0]["src2dst_packets"] == 5 and udp[0]["expiration_id"] == -1, (out, err)
    assert len(icmp) == 1 and icmp[0]["bidirectional_packets"] >= 6     # echo both ways (+ port unreachables)


@pytest.mark.skipif(not have("tshark"), reason="tshark missing")
@pytest.mark.parametrize("ext", ["pcap", "pcapng"])
def test_capture_read_back_by_tshark(pair, tmp_path, ext):
    t, a, b = pair
    f = tmp_path / f"cap.{ext}"
    p = t.ulnet(a, "capture", "-i", "eth0", "-w", str(f), "-c", "10")
    wait_ready(t, p)
    t.run(b, "ping", "-c", "5", "-i", "0.2", "-s", "300", A, check=False, timeout=20)
    assert _wait(p, 20), "capture did not stop after -c 10"
    err = p.stderr.read()
    assert p.returncode == 0, err
    assert "10 packets captured" in err and "0 dropped by kernel" in err, err
    r = subprocess.run(["tshark", "-r", str(f), "-T", "fields", "-e", "frame.len", "-e", "ip.src", "-e", "icmp.type"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = [x.split("\t") for x in r.stdout.splitlines()]
    assert len(lines) == 10
    echo = [x for x in lines if x[2] in ("8", "0")]
    assert echo and all(int(x[0]) == 342 for x in echo)      # 14 + 20 + 8 + 300


@pytest.mark.skipif(not have("tshark"), reason="tshark missing")
def test_capture_rotates_by_size(pair, tmp_path):
    t, a, b = pair
    f = tmp_path / "rot.pcap"
    p = t.ulnet(a, "capture", "-i", "eth0", "-w", str(f), "-C", "0.004", "-c", "40")
    wait_ready(t, p)
    t.run(b, "ping", "-c", "20", "-i", "0.05", "-s", "1000", A, check=False, timeout=30)
    assert _wait(p, 20)
    files = sorted(tmp_path.glob("rot.pcap*"))
    assert len(files) >= 3, files
    total = 0
    for x in files:
        r = subprocess.run(["tshark", "-r", str(x)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (x, r.stderr)
        total += len(r.stdout.splitlines())
    assert total == 40


@pytest.mark.skipif(not have("tshark"), reason="tshark missing")
def test_capture_rotates_by_packet_time_and_snaplen(pair, tmp_path):
    t, a, b = pair
    f = tmp_path / "t.pcap"
    p = t.ulnet(a, "capture", "-i", "eth0", "-w", str(f), "-G", "1", "-s", "64", "-c", "30")
    wait_ready(t, p)
    t.run(b, "ping", "-c", "15", "-i", "0.2", "-s", "500", A, check=False, timeout=30)
    assert _wait(p, 20)
    files = sorted(tmp_path.glob("t.pcap*"))
    assert len(files) >= 2, files
    total, starts = 0, []
    for x in files:
        r = subprocess.run(["tshark", "-r", str(x), "-T", "fields", "-e", "frame.cap_len", "-e", "frame.len",
                            "-e", "frame.time_epoch"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (x, r.stderr)
        rows = [line.split("\t") for line in r.stdout.splitlines()]
        total += len(rows)
        assert all(int(c) <= 64 for c, _, _ in rows)                  # -s 64
        assert any(int(w) == 542 for _, w, _ in rows)                   # wire length kept
        ts = [float(e) for _, _, e in rows]
        assert max(ts) - min(ts) < 1.0                                  # one second of packet time per file
    assert total == 30


def _udp_pcap(path, n: int, dst_mac: bytes, src: str, dst: str, port: int) -> None:
    """n Ethernet/IPv4/UDP frames with distinct payloads, 1 ms apart."""
    def ip4(s):
        return bytes(int(x) for x in s.split("."))
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i in range(n):
        payload = struct.pack("!I", i) + b"r" * 60
        udp = struct.pack("!HHHH", 5000, port, 8 + len(payload), 0) + payload
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0, ip4(src), ip4(dst))
        s = sum(struct.unpack("!10H", hdr))
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        hdr = hdr[:10] + struct.pack("!H", ~s & 0xFFFF) + hdr[12:]
        frame = dst_mac + b"\x02\x00\x00\x00\x00\x09" + b"\x08\x00" + hdr + udp
        out.append(struct.pack("<IIII", 1700000000 + i // 1000, (i % 1000) * 1000, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))


COUNT_UDP = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)      # SO_RCVBUFFORCE: past rmem_max (we are root)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(60)                     # until the first datagram (the sender may be compiling)
seen = set()
print("listening", flush=True)
end = time.monotonic() + 60
while time.monotonic() < end:
    try:
        d = s.recv(2048)
    except socket.timeout:
        break
    seen.add(int.from_bytes(d[:4], "big"))
    s.settimeout(float(sys.argv[3]))
print(len(seen), flush=True)
"""


@pytest.mark.parametrize("mode", [["--topspeed"], ["--pps", "2000"], ["--speed", "4"]])
def test_replay_arrives_complete(pair, tmp_path, mode):
    t, a, b = pair
    mac = bytes.fromhex(t.run(b, "cat", "/sys/class/net/eth0/address").stdout.strip().replace(":", ""))
    n = 2000 if mode == ["--topspeed"] else 400
    f = tmp_path / "udp.pcap"
    _udp_pcap(f, n, mac, A, B, 9999)
    rx = t.popen(b, "python3", "-c", COUNT_UDP, B, "9999", "3")
    t.wait_output(rx, "listening", stream="stdout", timeout=20)
    t0 = time.monotonic()
    r = t.run_ulnet(a, "replay", str(f), "-o", "eth0", *mode)
    dt = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert f"sent {n} packets" in r.stderr, r.stderr
    assert _wait(rx, 30)
    got = int(t.read_more(rx, "stdout", 1).split()[-1])
    assert got == n
    if mode[0] == "--pps":
        assert dt >= n / 2000 * 0.9            # 0.2 s of pacing at least


def test_live_errors_one_line(pair):
    t, a, b = pair
    for argv in (["peek", "-i", "nosuch0"], ["flows", "-i", "nosuch0"], ["capture", "-i", "nosuch0", "-w", "/dev/null"],
                 ["replay", str(ROOT / "samples" / "sample.pcap"), "-o", "nosuch0"]):
        r = t.run_ulnet(a, *argv)
        assert r.returncode == 2, (argv, r.stderr)
        assert r.stderr.strip().count("\n") == 0 and "nosuch0: no such interface" in r.stderr, r.stderr


# -- the ring of peek -i / flows -i: capture's geometry (>= 64 blocks, 100 ms) --------------------

PACED_UDP = ("import socket, sys, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
             "for i in range(int(sys.argv[2])):\n"
             "    s.sendto(i.to_bytes(4, 'big') + b'p' * 60, (sys.argv[1], 7777)); time.sleep(0.004)")


def _paced_while_stopped(t: Topo, p, b, n: int) -> None:
    """Stop the reader (SIGSTOP), send n datagrams 4 ms apart, let it go on.
    Each datagram retires a block of its own after 1 ms: 32 blocks of 1 ms
    would lose all but 32; 64 blocks of 100 ms hold them all."""
    import signal
    p.send_signal(signal.SIGSTOP)
    try:
        t.run(b, "python3", "-c", PACED_UDP, A, str(n), timeout=30)
    finally:
        p.send_signal(signal.SIGCONT)


def test_peek_live_ring_holds_a_stopped_reader(pair):
    t, a, b = pair
    n = 120
    p = t.ulnet(a, "peek", "-i", "eth0", "-c", str(n), "--format", "jsonl", "--stats", "udp", "port", "7777")
    wait_ready(t, p)
    _paced_while_stopped(t, p, b, n)
    assert _wait(p, 60), "peek did not stop after -c"
    out, err = t.stop(p)
    rows = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert p.returncode == 0, err
    assert len(rows) == n and all(r["dst_port"] == 7777 for r in rows), err
    assert "live.kernel.drops" not in err, err


def test_flows_live_ring_holds_a_stopped_reader(pair):
    t, a, b = pair
    n = 120
    p = t.ulnet(a, "flows", "-i", "eth0", "--format", "jsonl", "--stats", "udp", "port", "7777")
    wait_ready(t, p)
    _paced_while_stopped(t, p, b, n)
    time.sleep(1.5)                         # the blocks retire (100 ms) and are read
    out, err = t.stop(p)
    rows = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert len(rows) == 1 and rows[0]["src2dst_packets"] == n, (out, err)
    assert "live.kernel.drops" not in err, err


# -- vlan filters on a live socket: the kernel keeps the tag in metadata -------------------------
# (This kernel has no 8021q module -- no VLAN sub-interfaces -- so b writes the
# tagged frames itself through a packet socket; a's kernel strips the tags
# into the packets' metadata before any socket filter runs.)

VA, VB = "10.196.100.1", "10.196.100.2"

SEND_FRAMES = r"""
import socket, struct, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
dst = bytes.fromhex(sys.argv[1].replace(":", ""))
src = s.getsockname()[4]

def csum(b):
    b += b"\0" * (len(b) & 1)
    v = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    v = (v & 0xFFFF) + (v >> 16)
    return ~((v & 0xFFFF) + (v >> 16)) & 0xFFFF

for k, spec in enumerate(sys.argv[2:]):          # VID:PROTO:SRC:DST, VID 0 = untagged
    vid, proto, a, b = spec.split(":")
    if proto == "icmp":
        l4 = struct.pack("!BBHHH", 8, 0, 0, 0x77, k) + b"ping" * 8
        l4 = l4[:2] + struct.pack("!H", csum(l4)) + l4[4:]
    else:
        l4 = struct.pack("!HHHH", 5000, 7777, 8 + 32, 0) + b"v" * 32
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), k, 0, 64, 1 if proto == "icmp" else 17, 0,
                     socket.inet_aton(a), socket.inet_aton(b))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    tag = struct.pack("!HH", 0x8100, int(vid)) if int(vid) else b""
    s.send(dst + src + tag + b"\x08\x00" + ip + l4)
    time.sleep(0.05)
"""


def _send(t: Topo, a, b, *specs: str) -> None:
    mac = t.run(a, "cat", "/sys/class/net/eth0/address").stdout.strip()
    t.run(b, "python3", "-c", SEND_FRAMES, mac, *specs, timeout=20)


TAGGED = f"100:icmp:{VB}:{VA}"
OTHER_VLAN = f"200:icmp:{VB}:{VA}"
PLAIN = f"0:icmp:{B}:{A}"


def _peek_rows(t: Topo, a, b, n: int, expr: list[str], specs: list[str]) -> list[dict]:
    """peek -i eth0 -c n EXPR on a while b sends the frames ``specs``."""
    p = t.ulnet(a, "peek", "-i", "eth0", "-c", str(n), "--format", "jsonl", *expr)
    wait_ready(t, p)
    _send(t, a, b, *specs)
    finished = _wait(p, 20)
    out, err = t.stop(p)
    assert finished, f"peek did not stop after -c {n}: {out} {err}"
    assert p.returncode == 0, err
    assert "warning" not in err, err
    return [json.loads(x) for x in out.splitlines() if x.startswith("{")]


def test_peek_live_vlan_filter_matches_stripped_tags(pair):
    t, a, b = pair
    rows = _peek_rows(t, a, b, 3, ["vlan", "100", "and", "icmp"],
                      [PLAIN, OTHER_VLAN, TAGGED, PLAIN, TAGGED, OTHER_VLAN, TAGGED])
    assert len(rows) == 3
    assert all(r["vlan_id"] == 100 and r["protocol"] == 1 and r["icmp_type"] == 8 for r in rows), rows
    assert {(r["src_ip"], r["dst_ip"]) for r in rows} == {(VB, VA)}      # the tag is back in the frame


def test_peek_live_not_vlan_excludes_tagged(pair):
    t, a, b = pair
    # ("not vlan and icmp" would look for IPv4 4 bytes further on: libpcap's
    # vlan shifts the offsets of the rest of the expression, as in tcpdump)
    rows = _peek_rows(t, a, b, 4, ["icmp", "and", "not", "vlan"],
                      [TAGGED, OTHER_VLAN, TAGGED, PLAIN, TAGGED, PLAIN])
    assert len(rows) == 4                     # two echo requests from b, a's two replies
    assert all(r["vlan_id"] is None and {r["src_ip"], r["dst_ip"]} == {A, B} for r in rows), rows


def test_capture_live_vlan_and_udp_read_back_with_the_same_filter(pair, tmp_path):
    """capture keeps the tagged datagrams with the tag in the frame; offline,
    the same expression (the batch interpreter, the tag in the frame) keeps
    them all again."""
    t, a, b = pair
    f = tmp_path / "vlan.pcap"
    p = t.ulnet(a, "capture", "-i", "eth0", "-w", str(f), "-c", "3", "vlan", "and", "udp")
    wait_ready(t, p)
    udp = f"100:udp:{VB}:{VA}"
    _send(t, a, b, f"0:udp:{B}:{A}", udp, TAGGED, f"0:udp:{B}:{A}", udp, udp)
    finished = _wait(p, 20)
    _, err = t.stop(p)
    assert finished and p.returncode == 0, err
    r = t.run_ulnet(a, "peek", "-r", str(f), "--format", "jsonl", "vlan", "100", "and", "udp", "port", "7777")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(rows) == 3 and all(x["vlan_id"] == 100 and x["dst_ip"] == VA for x in rows), rows


def test_peek_live_filter_on_a_down_interface_warns(pair):
    """No live libpcap handle on a down interface: compiled as for a file, said once."""
    t, a, b = pair
    t.run(a, "ip", "link", "set", "dev", "eth0", "down")
    p = t.ulnet(a, "peek", "-i", "eth0", "-c", "1", "vlan")
    err = t.wait_output(p, "listening on", timeout=300)
    _, rest = t.stop(p)
    assert "ulnet peek: warning: filter: eth0: libpcap cannot open it (That device is not up)" in err + rest, err
