"""BPF filters with tcpdump's syntax (issue 6 item 2): what ulnet keeps is
what tcpdump keeps on real captures; the classic-BPF interpreter opcode by
opcode and against a plain-Python twin on random programs; the command
line (trailing expression, -F, one-line errors); the kernel filter on a
live socket (root)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from numba import njit
from hypothesis import HealthCheck, given, settings, strategies as st

from ulnet.batch import PacketBatch
from ulnet.filter import BPF_INSN, Filter, FilterError, _kernels as K
from ulnet.filter.libpcap import compile_expression
from ulnet.pipeline import Pipeline
from ulnet.sources import open_capture

from conftest import CORPUS, run_ulnet

PCAPS = CORPUS / "ndpi" / "pcap"
TCPDUMP = shutil.which("tcpdump")
need_tcpdump = pytest.mark.skipif(TCPDUMP is None, reason="tcpdump missing")

# link types: Ethernet (plain, VLAN, ARP, fuzzed), Linux cooked, raw IP (pcapng), BSD loopback, raw IPv4
CAPTURES = ["icmp-tunnel.pcap", "android.pcap", "discord_mid_flow.pcap", "fuzz-2006-06-26-2594.pcap",
            "6in4tunnel.pcap", "dns2tcp_tunnel.pcap", "bets.pcapng", "nats.pcap", "kerberos_fuzz.pcapng"]
EXPRESSIONS = [
    "tcp", "udp port 53", "host 192.168.2.1 or host 192.168.154.131", "net 10.0.0.0/8", "vlan", "ip6",
    "tcp[tcpflags] & tcp-syn != 0", "greater 1000", "icmp or arp", "not ip", "ip[6:2] & 0x1fff != 0",
    "tcp port 443 and len < 100", "vlan and udp", "less 80", "ether broadcast",
    "udp[8] = 0x16 or tcp[((tcp[12] & 0xf0) >> 2)] = 0x16", "ip6 and (tcp or udp)", "ip proto 41",
]


def _frames_of(path) -> list[tuple]:
    """(ts, caplen, wirelen, bytes) of every packet of a capture file."""
    r = open_capture(str(path))
    b = PacketBatch(1024)
    out = []
    while (n := r.fill(b)):
        out += [(int(b.ts[i]), int(b.caplen[i]), int(b.wirelen[i]), b.frame(i)) for i in range(n)]
    r.close()
    return out


def _ulnet_kept(path, expr, batch_size=1024):
    """(frames the pipeline keeps, problems, filter.rejected) or FilterError."""
    f = Filter(expr)
    pipe = Pipeline([str(path)], batch_size=batch_size, filter=f)
    pipe.open_all()
    out = []
    for b in pipe:
        out += [(int(b.ts[i]), int(b.caplen[i]), int(b.wirelen[i]), b.frame(i)) for i in range(b.n)]
    from ulnet.counters import INDEX
    return out, pipe.problems, int(pipe.counters[INDEX["filter.rejected"]])


def _tcpdump_kept(path, expr, tmp_path):
    out = tmp_path / "td.pcap"
    p = subprocess.run([TCPDUMP, "-r", str(path), "-w", str(out), expr], capture_output=True, timeout=120)
    if p.returncode != 0:
        return None, p.stderr.decode(errors="replace")
    return _frames_of(out), ""


@need_tcpdump
@pytest.mark.parametrize("name", CAPTURES)
def test_same_packets_as_tcpdump(name, tmp_path, corpus_available):
    path = PCAPS / name
    total = len(_frames_of(path))
    checked = 0
    for expr in EXPRESSIONS:
        theirs, err = _tcpdump_kept(path, expr, tmp_path)
        try:
            ours, problems, rejected = _ulnet_kept(path, expr)
        except FilterError as e:
            assert theirs is None, (expr, str(e))      # tcpdump refuses it too
            assert str(e) in err, (expr, str(e), err)
            continue
        if theirs is None:
            # only possible where the link type is learned from the file (pcapng):
            # its packets are rejected with a warning instead
            assert name.endswith(".pcapng") and ours == [] and problems, (expr, err)
            continue
        assert len(ours) == len(theirs), (name, expr, len(ours), len(theirs))
        assert ours == theirs, (name, expr)
        assert rejected == total - len(ours)
        checked += 1
    assert checked >= 8


def test_batch_size_does_not_change_the_result(corpus_available):
    path = PCAPS / "icmp-tunnel.pcap"
    ref = _ulnet_kept(path, "icmp or arp", batch_size=4096)[0]
    for bs in (1, 7, 100):
        assert _ulnet_kept(path, "icmp or arp", batch_size=bs)[0] == ref


@need_tcpdump
def test_pcapng_with_two_link_types(tmp_path, corpus_available):
    """A pcapng whose interfaces are Ethernet and raw IP: a program per link type."""
    eth, raw = PCAPS / "android.pcap", PCAPS / "bets.pcapng"
    both = tmp_path / "both.pcapng"
    run_ulnet("peek", eth, raw, "-w", both, check=True)
    for expr in ("tcp", "udp port 53", "greater 1000"):
        want = sum(len(_tcpdump_kept(p, expr, tmp_path)[0]) for p in (eth, raw))
        ours, problems, _ = _ulnet_kept(both, expr)
        assert len(ours) == want and not problems, expr
    # vlan compiles for Ethernet only: raw-IP packets are rejected, with one warning
    ours, problems, _ = _ulnet_kept(both, "vlan or tcp")
    assert len(ours) == len(_tcpdump_kept(eth, "vlan or tcp", tmp_path)[0])
    assert len(problems) == 1 and "link type 101" in problems[0] and "rejected" in problems[0]


# ---- the interpreter, opcode by opcode ----------------------------------------------------------

def _bpf(insns, pkt: bytes, wirelen: int | None = None) -> int:
    prog = np.array(insns, dtype=BPF_INSN)
    buf = np.frombuffer(b"\xee" * 5 + pkt + b"\xee" * 8, dtype=np.uint8).copy()   # bytes outside must not be seen
    mem = np.zeros(16, dtype=np.int64)
    return int(_run(K.as_table(prog), len(prog), buf, len(pkt), len(pkt) if wirelen is None else wirelen, mem))


@njit
def _run(P, plen, buf, caplen, wirelen, mem):
    return K.run_program(P, 0, plen, buf, 5, caplen, wirelen, mem)


LD_W_ABS, LD_H_ABS, LD_B_ABS = 0x20, 0x28, 0x30
LD_W_IND, LD_H_IND, LD_B_IND = 0x40, 0x48, 0x50
LD_IMM, LD_LEN, LD_MEM = 0x00, 0x80, 0x60
LDX_IMM, LDX_LEN, LDX_MEM, LDX_MSH = 0x01, 0x81, 0x61, 0xB1
ST, STX = 0x02, 0x03
RET_K, RET_A = 0x06, 0x16
TAX, TXA = 0x07, 0x87
JA = 0x05
PKT = bytes(range(1, 41))


def _alu(op, src_x=False):
    return 0x04 | op | (0x08 if src_x else 0)


def _jmp(op, src_x=False):
    return 0x05 | op | (0x08 if src_x else 0)


def test_loads():
    assert _bpf([(LD_W_ABS, 0, 0, 0), (RET_A, 0, 0, 0)], PKT) == 0x01020304
    assert _bpf([(LD_H_ABS, 0, 0, 2), (RET_A, 0, 0, 0)], PKT) == 0x0304
    assert _bpf([(LD_B_ABS, 0, 0, 39), (RET_A, 0, 0, 0)], PKT) == 40
    assert _bpf([(LDX_IMM, 0, 0, 4), (LD_W_IND, 0, 0, 1), (RET_A, 0, 0, 0)], PKT) == 0x06070809
    assert _bpf([(LDX_IMM, 0, 0, 4), (LD_H_IND, 0, 0, 1), (RET_A, 0, 0, 0)], PKT) == 0x0607
    assert _bpf([(LDX_IMM, 0, 0, 4), (LD_B_IND, 0, 0, 1), (RET_A, 0, 0, 0)], PKT) == 6
    assert _bpf([(LD_IMM, 0, 0, 0xDEADBEEF), (RET_A, 0, 0, 0)], PKT) == 0xDEADBEEF
    assert _bpf([(LD_LEN, 0, 0, 0), (RET_A, 0, 0, 0)], PKT, wirelen=1500) == 1500       # len is the wire length
    assert _bpf([(LDX_LEN, 0, 0, 0), (TXA, 0, 0, 0), (RET_A, 0, 0, 0)], PKT, wirelen=99) == 99
    assert _bpf([(LDX_MSH, 0, 0, 0x10), (TXA, 0, 0, 0), (RET_A, 0, 0, 0)], b"\x00" * 16 + b"\x45") == 20
    assert _bpf([(LDX_IMM, 0, 0, 7), (TXA, 0, 0, 0), (RET_A, 0, 0, 0)], PKT) == 7


def test_out_of_bounds_loads_reject():
    n = len(PKT)
    assert _bpf([(LD_W_ABS, 0, 0, n - 4), (RET_K, 0, 0, 1)], PKT) == 1
    assert _bpf([(LD_W_ABS, 0, 0, n - 3), (RET_K, 0, 0, 1)], PKT) == 0
    assert _bpf([(LD_H_ABS, 0, 0, n - 1), (RET_K, 0, 0, 1)], PKT) == 0
    assert _bpf([(LD_B_ABS, 0, 0, n), (RET_K, 0, 0, 1)], PKT) == 0
    assert _bpf([(LD_B_ABS, 0, 0, 0xFFFFFFFF), (RET_K, 0, 0, 1)], PKT) == 0
    assert _bpf([(LDX_IMM, 0, 0, 0xFFFFFFFF), (LD_B_IND, 0, 0, 2), (RET_K, 0, 0, 1)], PKT) == 0   # no wrap-around
    assert _bpf([(LDX_IMM, 0, 0, n), (LD_B_IND, 0, 0, 0), (RET_K, 0, 0, 1)], PKT) == 0
    assert _bpf([(LDX_MSH, 0, 0, n), (RET_K, 0, 0, 1)], PKT) == 0
    # loads see the captured bytes only, whatever the wire length
    assert _bpf([(LD_B_ABS, 0, 0, n), (RET_K, 0, 0, 1)], PKT, wirelen=1500) == 0
    assert _bpf([(LD_B_ABS, 0, 0, 0xFFFFF000), (RET_K, 0, 0, 1)], PKT) == 0     # Linux ancillary area: not a packet load


def test_scratch_memory():
    prog = [(LD_IMM, 0, 0, 11), (ST, 0, 0, 3), (LDX_IMM, 0, 0, 22), (STX, 0, 0, 15),
            (LD_MEM, 0, 0, 15), (LDX_MEM, 0, 0, 3), (_alu(0x00, True), 0, 0, 0), (RET_A, 0, 0, 0)]
    assert _bpf(prog, PKT) == 33
    assert _bpf([(LD_MEM, 0, 0, 5), (RET_A, 0, 0, 0)], PKT) == 0             # scratch starts at 0
    assert _bpf([(ST, 0, 0, 16), (RET_K, 0, 0, 1)], PKT) == 0                # index out of range: reject
    assert _bpf([(LD_MEM, 0, 0, 16), (RET_K, 0, 0, 1)], PKT) == 0
    assert _bpf([(LDX_MEM, 0, 0, 99), (RET_K, 0, 0, 1)], PKT) == 0


@pytest.mark.parametrize("op,a,s,want", [
    (0x00, 0xFFFFFFFF, 2, 1),                # add wraps at 32 bits
    (0x10, 1, 2, 0xFFFFFFFF),                # sub wraps
    (0x20, 0x10000, 0x10000, 0),             # mul wraps
    (0x30, 100, 7, 14),                      # div
    (0x90, 100, 7, 2),                       # mod
    (0x40, 0xF0, 0x0F, 0xFF),                # or
    (0x50, 0xF0, 0x3C, 0x30),                # and
    (0xA0, 0xFF, 0x0F, 0xF0),                # xor
    (0x60, 0x80000001, 1, 2),                # lsh drops the top bit
    (0x70, 0x80000000, 31, 1),               # rsh is unsigned
    (0x60, 1, 32, 0),                        # shifts of 32 and more give 0 (libpcap)
    (0x70, 0xFFFFFFFF, 40, 0),
])
def test_alu(op, a, s, want):
    assert _bpf([(LD_IMM, 0, 0, a), (_alu(op), 0, 0, s), (RET_A, 0, 0, 0)], PKT) == want
    assert _bpf([(LD_IMM, 0, 0, a), (LDX_IMM, 0, 0, s), (_alu(op, True), 0, 0, 0), (RET_A, 0, 0, 0)], PKT) == want


def test_neg_and_division_by_zero():
    assert _bpf([(LD_IMM, 0, 0, 1), (_alu(0x80), 0, 0, 0), (RET_A, 0, 0, 0)], PKT) == 0xFFFFFFFF
    for op in (0x30, 0x90):                  # div, mod by zero: the program returns 0 (reject)
        assert _bpf([(LD_IMM, 0, 0, 5), (_alu(op), 0, 0, 0), (RET_K, 0, 0, 1)], PKT) == 0
        assert _bpf([(LD_IMM, 0, 0, 5), (LDX_IMM, 0, 0, 0), (_alu(op, True), 0, 0, 0), (RET_K, 0, 0, 1)], PKT) == 0


@pytest.mark.parametrize("op,a,s,taken", [
    (0x10, 5, 5, True), (0x10, 5, 6, False),     # jeq
    (0x20, 6, 5, True), (0x20, 5, 5, False),     # jgt (unsigned)
    (0x20, 0xFFFFFFFF, 1, True),
    (0x30, 5, 5, True), (0x30, 4, 5, False),     # jge
    (0x40, 6, 2, True), (0x40, 4, 3, False),     # jset
])
def test_conditional_jumps(op, a, s, taken):
    tail = [(RET_K, 0, 0, 100), (RET_K, 0, 0, 200), (RET_K, 0, 0, 300)]
    want = 300 if taken else 200          # jt = 2, jf = 1
    assert _bpf([(LD_IMM, 0, 0, a), (_jmp(op), 2, 1, s)] + tail, PKT) == want
    assert _bpf([(LD_IMM, 0, 0, a), (LDX_IMM, 0, 0, s), (_jmp(op, True), 2, 1, 0)] + tail, PKT) == want


def test_ja_ret_misc_and_bounds():
    assert _bpf([(JA, 0, 0, 1), (RET_K, 0, 0, 1), (RET_K, 0, 0, 2)], PKT) == 2
    assert _bpf([(JA, 0, 0, 5), (RET_K, 0, 0, 1)], PKT) == 0                 # jump past the end: reject
    assert _bpf([(LD_IMM, 0, 0, 9), (TAX, 0, 0, 0), (LD_IMM, 0, 0, 0), (TXA, 0, 0, 0), (RET_A, 0, 0, 0)], PKT) == 9
    assert _bpf([(LD_IMM, 0, 0, 9)], PKT) == 0                               # falls off the end
    assert _bpf([(0xFF, 0, 0, 0), (RET_K, 0, 0, 1)], PKT) == 0               # unknown opcode
    assert _bpf([(0x18, 0, 0, 0), (RET_K, 0, 0, 1)], PKT) == 0               # LD with a size field of 3
    assert _bpf([(0x08, 0, 0, 0), (RET_K, 0, 0, 1)], PKT) == 0               # ld #k with a half-word size
    assert _bpf([(LD_IMM, 0, 0, 1), (0x8C, 0, 0, 0), (RET_A, 0, 0, 0)], PKT) == 0   # neg with X
    assert _bpf([(LDX_IMM, 0, 0, 1), (0x0E, 0, 0, 0)], PKT) == 0             # ret x (no such thing)
    assert _bpf([(RET_K, 0, 0, 0xFFFFFFFF)], PKT) == 0xFFFFFFFF


def test_validate_rejects_bad_programs():
    from ulnet.filter import validate
    for bad in ([], [(JA, 0, 0, 1), (RET_K, 0, 0, 1)], [(_jmp(0x10), 3, 0, 1), (RET_K, 0, 0, 1)],
                [(LD_IMM, 0, 0, 1)]):
        with pytest.raises(FilterError):
            validate(np.array(bad, dtype=BPF_INSN))
    validate(compile_expression("tcp port 80"))


# ---- random programs against a plain-Python twin -------------------------------------------------

def _py_bpf(insns, pkt: bytes, wirelen: int) -> int:
    """The reference: classic BPF written out in plain Python."""
    a = x = 0
    mem = [0] * 16
    pc = 0
    m32 = 0xFFFFFFFF

    def load(at, size):
        if at < 0 or at + size > len(pkt):
            return None
        return int.from_bytes(pkt[at:at + size], "big")
    valid = {0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x00, 0x80, 0x60,        # ld
             0x01, 0x81, 0x61, 0xB1, 0x02, 0x03, 0x06, 0x16, 0x07, 0x87, 0x05, 0x84}
    valid |= {0x04 | op | s for op in range(0, 0xB0, 0x10) if op != 0x80 for s in (0, 8)}
    valid |= {0x05 | op | s for op in (0x10, 0x20, 0x30, 0x40) for s in (0, 8)}
    while pc < len(insns):
        code, jt, jf, k = insns[pc]
        pc += 1
        if code not in valid:
            return 0
        cls = code & 7
        if cls == 0:
            mode, size = code & 0xE0, {0: 4, 8: 2, 0x10: 1}.get(code & 0x18)
            if mode in (0x20, 0x40):
                if size is None:
                    return 0
                v = load(k if mode == 0x20 else x + k, size)
                if v is None:
                    return 0
                a = v
            elif mode == 0:
                a = k
            elif mode == 0x80:
                a = wirelen
            elif mode == 0x60 and k < 16:
                a = mem[k]
            else:
                return 0
        elif cls == 1:
            mode = code & 0xE0
            if mode == 0:
                x = k
            elif mode == 0x80:
                x = wirelen
            elif mode == 0x60 and k < 16:
                x = mem[k]
            elif mode == 0xA0:
                v = load(k, 1)
                if v is None:
                    return 0
                x = (v & 15) * 4
            else:
                return 0
        elif cls in (2, 3):
            if k >= 16:
                return 0
            mem[k] = a if cls == 2 else x
        elif cls == 4:
            op, s = code & 0xF0, (x if code & 8 else k)
            if op in (0x30, 0x90) and s == 0:
                return 0
            ops = {0x00: lambda: a + s, 0x10: lambda: a - s, 0x20: lambda: a * s, 0x30: lambda: a // s,
                   0x90: lambda: a % s, 0x40: lambda: a | s, 0x50: lambda: a & s, 0xA0: lambda: a ^ s,
                   0x60: lambda: a << s if s < 32 else 0, 0x70: lambda: a >> s if s < 32 else 0,
                   0x80: lambda: -a}
            if op not in ops:
                return 0
            a = ops[op]() & m32
        elif cls == 5:
            op, s = code & 0xF0, (x if code & 8 else k)
            if op == 0:
                pc += k
                continue
            tests = {0x10: a == s, 0x20: a > s, 0x30: a >= s, 0x40: (a & s) != 0}
            if op not in tests:
                return 0
            pc += jt if tests[op] else jf
        elif cls == 6:
            return {0: k, 0x10: a}.get(code & 0x18, 0)
        else:
            if code & 0xF8 == 0:
                x = a
            elif code & 0xF8 == 0x80:
                a = x
            else:
                return 0
    return 0


_CODES = [0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x00, 0x80, 0x60, 0x01, 0x81, 0x61, 0xB1, 0x02, 0x03,
          0x07, 0x87, 0x05, 0x06, 0x16, 0x18, 0xFF, 0x0D, 0x0E, 0x8C, 0x12, 0x89, 0x0F, 0x68] + \
    [0x04 | op | s for op in (0, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0) for s in (0, 8)] + \
    [0x05 | op | s for op in (0x10, 0x20, 0x30, 0x40, 0x50) for s in (0, 8)]
_insn = st.tuples(st.sampled_from(_CODES), st.integers(0, 4), st.integers(0, 4),
                  st.one_of(st.integers(0, 70), st.integers(0, 0xFFFFFFFF)))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_insn, min_size=1, max_size=24), st.binary(max_size=64), st.integers(0, 2000))
def test_random_programs_match_the_python_twin(insns, pkt, extra):
    assert _bpf(insns, pkt, len(pkt) + extra) == _py_bpf(insns, pkt, len(pkt) + extra)


# ---- the command line ---------------------------------------------------------------------------

@need_tcpdump
def test_peek_w_writes_what_tcpdump_writes(tmp_path, corpus_available):
    src = PCAPS / "icmp-tunnel.pcap"
    ours = tmp_path / "ours.pcap"
    p = run_ulnet("peek", src, "-w", ours, "icmp", "or", "arp", check=True)
    td = subprocess.run([TCPDUMP, "-r", str(src), "-w", "-", "icmp or arp"], capture_output=True, timeout=60)
    assert ours.read_bytes() == td.stdout, p.stderr


def test_peek_trailing_expression_forms(tmp_path, corpus_available):
    src = PCAPS / "icmp-tunnel.pcap"
    a = run_ulnet("peek", src, "arp", check=True).stdout
    b = run_ulnet("peek", "-r", src, "arp", check=True).stdout
    c = run_ulnet("peek", src, "-c", "1000", "arp", check=True).stdout           # words after an option
    (tmp_path / "f.bpf").write_text("# only ARP\narp   # and a comment\n")
    d = run_ulnet("peek", src, "-F", tmp_path / "f.bpf", check=True).stdout
    assert a == b == c == d and a.count(b"\n") == 98
    assert run_ulnet("peek", src, "-c", "3", "arp", check=True).stdout.count(b"\n") == 3   # -c counts kept packets
    s = run_ulnet("flows", "-r", src, "udp and port 53", check=True)
    assert s.stdout.count(b"\n") == 1                                           # header only: no DNS here


@pytest.mark.parametrize("cmd", [["peek", "{src}"], ["flows", "-r", "{src}"], ["stats", "{src}"],
                                 ["capture", "-i", "lo", "-w", "{out}"],
                                 ["run", "--rules", "{rules}", "--in", "a={src}", "--out", "b={out}"]])
def test_bad_expression_one_line_exit_2(cmd, tmp_path, corpus_available):
    rules = tmp_path / "r.rules"
    rules.write_text("pass in on a\n")
    out = tmp_path / "out.pcap"
    argv = [w.format(src=PCAPS / "icmp-tunnel.pcap", out=out, rules=rules) for w in cmd]
    p = run_ulnet(*argv, "tcp", "port")
    lines = p.stderr.decode().splitlines()
    assert p.returncode == 2 and p.stdout == b""
    assert lines == [f"ulnet {cmd[0]}: error: filter: can't parse filter expression: syntax error"], lines
    assert not out.exists()


def test_filter_error_messages(tmp_path, corpus_available):
    src = PCAPS / "dns2tcp_tunnel.pcap"                # Linux cooked: no VLAN in libpcap's compiler
    p = run_ulnet("peek", src, "vlan")
    assert p.returncode == 2
    assert p.stderr.decode().strip() == "ulnet peek: error: filter: no VLAN support for Linux cooked v1"
    p = run_ulnet("peek", src, "-F", tmp_path / "missing.bpf")
    assert p.returncode == 2 and p.stderr.decode().startswith("ulnet peek: error: filter: ")
    p = run_ulnet("peek", "no-such-file.pcap", "tcp")
    assert p.returncode == 2 and "no-such-file.pcap" in p.stderr.decode()
    p = run_ulnet("peek", src, "missing.pcap", "tcp")           # a capture-file name: an input, not a filter word
    assert p.returncode == 2 and "missing.pcap: cannot open" in p.stderr.decode()


# ---- live: the kernel runs the program (root, network namespaces) --------------------------------

def _pair():
    from netns import Topo
    t = Topo()
    a, b = t.ns("a"), t.ns("b")
    for ns in (a, b):
        t.run(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
    t.veth(a, "eth0", b, "eth0")
    t.addr(a, "eth0", "10.196.0.1/24")
    t.addr(b, "eth0", "10.196.0.2/24")
    return t, a, b


_SEND_UDP = ("import socket, time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
             "for _ in range(5): s.sendto(b'x'*100, ('10.196.0.1', 7777)); time.sleep(0.05)")

_live = pytest.mark.skipif(__import__("os").geteuid() != 0, reason="live tests need root (network namespaces)")


@_live
def test_capture_live_kernel_filter(tmp_path):
    t, a, b = _pair()
    try:
        out = tmp_path / "out.pcap"
        # (UDP to a closed port draws ICMP port unreachables: echo only)
        p = t.ulnet(a, "capture", "-i", "eth0", "-w", str(out), "-c", "8",
                    "icmp[icmptype]", "=", "icmp-echo", "or", "icmp[icmptype]", "=", "icmp-echoreply")
        t.wait_output(p, "listening on", timeout=300)
        t.run(b, "python3", "-c", _SEND_UDP, timeout=20)                  # sent alongside: must not be captured
        t.run(b, "ping", "-c", "4", "-i", "0.2", "10.196.0.1", check=False, timeout=20)
        t.run(b, "python3", "-c", _SEND_UDP, timeout=20)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        _, err = t.stop(p)
        assert p.returncode == 0, err
        assert "8 packets captured, 8 received" in err, err        # the rest never reached the ring
        frames = _frames_of(out)
        assert len(frames) == 8
        for _ts, _cl, _wl, data in frames:
            assert data[12:14] == b"\x08\x00" and data[23] == 1 and data[34] in (0, 8)   # IPv4 ICMP echo
    finally:
        t.close()


@_live
def test_peek_live_kernel_filter():
    import json
    t, a, b = _pair()
    try:
        p = t.ulnet(a, "peek", "-i", "eth0", "-c", "3", "--format", "jsonl", "udp", "port", "7777")
        t.wait_output(p, "listening on", timeout=300)
        t.run(b, "ping", "-c", "2", "-i", "0.2", "10.196.0.1", check=False, timeout=20)
        t.run(b, "python3", "-c", _SEND_UDP, timeout=20)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        out, err = t.stop(p)
        rows = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
        assert len(rows) == 3 and all(r["protocol"] == 17 and r["dst_port"] == 7777 for r in rows), (out, err)
    finally:
        t.close()
