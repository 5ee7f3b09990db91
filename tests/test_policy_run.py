"""Policy enforcement (issue 5, steps 2-3): the decision kernel against a
plain-Python twin, batch-size independence, reject answers, police and
shape rates, balancing on the benchmark capture."""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ulnet.batch.columns import H_PROTO, H_SPORT, H_DPORT, H_TCP_FLAGS, H_VLAN, H_IP_VERSION
from ulnet.policy.check import check
from ulnet.policy.enforce import Enforcer
from ulnet.policy.parse import parse
from ulnet.policy import sets as S

from conftest import CORPUS, ROOT, SHARED, run_ulnet
from _captures import Rec, ether, ipv4_udp, pcap_bytes

CASES = ROOT / "tests" / "regress" / "policy"
BENCH_SLICE = ROOT / "bench" / "out" / "corpus-2000000-first200000.pcap"


# ---- the slow twin: rules evaluated in plain Python --------------------------------------

def _in(iv, v):
    return iv is None or any(lo <= v <= hi for lo, hi in iv)


def naive_decide(rules, f):
    """First terminal rule matching flow f (a dict of its first packet); the default otherwise."""
    for r in rules[:-1]:
        if r.af and r.af != f["ver"]:
            continue
        if r.proto is not None and f["proto"] not in r.proto:
            continue
        if r.src is not None and not _in(r.src, f["src"]):
            continue
        if r.dst is not None and not _in(r.dst, f["dst"]):
            continue
        if r.sport is not None and (f["sport"] < 0 or not _in(r.sport, f["sport"])):
            continue
        if r.dport is not None and (f["dport"] < 0 or not _in(r.dport, f["dport"])):
            continue
        if r.flags is not None and (f["flags"] < 0 or f["flags"] & r.flags[1] != r.flags[0]):
            continue
        if r.vlan is not None and (f["vlan"] < 0 or not _in(r.vlan, f["vlan"])):
            continue
        if r.length is not None and not _in(r.length, f["len"]):
            continue
        if r.action == "match":
            continue
        return r.index
    return rules[-1].index


def _tcp(src, dst, sp, dp, flags):
    a = bytes(int(x) for x in src.split("."))
    b = bytes(int(x) for x in dst.split("."))
    tcp = struct.pack(">HHIIBBHHH", sp, dp, 1, 0, 5 << 4, flags, 1024, 0, 0)
    return struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, a, b) + tcp


def random_policy(rng):
    lines = []
    for _ in range(rng.randint(1, 40)):
        w = [rng.choice(["pass", "block", "reject", "match", "pass"])]
        if rng.random() < .3:
            w.append("proto " + rng.choice(["tcp", "udp", "{ tcp udp }", "!udp"]))
        if rng.random() < .4:
            net = rng.choice(["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3", "!10.0.0.0/8",
                              "{ 10.2.0.0/16 10.3.3.3 }", "<t>"])
            w.append("from " + net)
        if rng.random() < .4:
            part = "to " + rng.choice(["192.0.2.0/25", "any", "!192.0.2.128/25", "192.0.2.7"])
            if rng.random() < .6:
                part += " port " + rng.choice(["80", "1-1023", "<1024", ">=5000", "!=53", "{ 22 80 443 }", "!{ 1-100 }"])
            w.append(part)
        if rng.random() < .2:
            w.append("flags " + rng.choice(["S/SA", "A/A", "S"]))
        if rng.random() < .15:
            w.append("length " + rng.choice([">60", "<=54", "40-100"]))
        if rng.random() < .15:
            w.append("vlan " + rng.choice(["10", "{ 10 20 }", "5-15"]))
        if w[0] in ("block", "reject") or rng.random() < .5:
            pass
        lines.append(" ".join(w))
    lines.append(rng.choice(["default pass", "default block"]))
    return "table <t> { 10.4.0.0/16 10.5.5.5 }\n" + "\n".join(lines) + "\n"


def random_capture(rng, n=400):
    recs, flows = [], []
    for k in range(n):
        src = rng.choice(["10.1.2.3", "10.1.9.9", "10.2.0.1", "10.3.3.3", "11.0.0.1", "10.4.1.1", "10.5.5.5"])
        dst = rng.choice(["192.0.2.7", "192.0.2.200", "192.0.2.1"])
        sp = rng.randint(1, 65535)
        dp = rng.choice([22, 53, 80, 443, 5000, 6000, 7, 1023, 1024])
        if rng.random() < .5:
            flags = rng.choice([2, 18, 16, 4])
            ip = _tcp(src, dst, sp, dp, flags)
            proto = 6
        else:
            ip = ipv4_udp(src, dst, sp, dp, b"x" * rng.randint(0, 60))
            flags, proto = -1, 17
        vlan = rng.choice([-1, -1, 10, 20])
        if vlan >= 0:
            frame = ether(struct.pack(">HH", vlan, 0x0800) + ip, 0x8100)
        else:
            frame = ether(ip, 0x0800)
        recs.append(Rec(frame, 1_000_000_000 + k * 1000))
        flows.append(dict(ver=4, proto=proto, src=S.parse_prefix(src)[0], dst=S.parse_prefix(dst)[0],
                          sport=sp, dport=dp, flags=flags, vlan=vlan, len=len(frame)))
    return pcap_bytes(recs, nano=True), flows


@pytest.mark.parametrize("seed", range(12))
def test_kernel_matches_the_naive_twin(tmp_path, seed):
    rng = random.Random(seed)
    text = random_policy(rng)
    data, flows = random_capture(rng)
    (tmp_path / "in.pcap").write_bytes(data)
    p = parse(text)
    checked = check(p, text, "r", ports=["lan", "wan"])
    run = Enforcer(checked, {"lan": str(tmp_path / "in.pcap")}, {"wan": str(tmp_path / "out.pcap")}, batch_size=64)
    got = []
    orig = run.stage.process

    def spy(b, i0, i1, app=None):
        orig(b, i0, i1, app)
        for i in range(i0, i1):
            got.append((int(b.flow_id[i]), int(run.stage.rule[i])))
    run.stage.process = spy
    run.run()
    first = {}
    for k, (fid, rule) in enumerate(got):
        first.setdefault(fid, (k, rule))
    for fid, (k, rule) in first.items():
        assert rule == naive_decide(checked.rules, flows[k]), (text, flows[k])
    # every packet of a flow carries its flow's verdict
    for fid, rule in got:
        assert rule == first[fid][1]


# ---- batch size does not matter ---------------------------------------------------------

@pytest.mark.parametrize("case", ["run-two-ports", "run-shape", "run-reject", "run-police", "run-capture-count-log",
                                  "run-app", "run-balance", "run-count-host"])
def test_batch_size_independence(tmp_path, case):
    spec_args = __import__("tomllib").loads((CASES / case / "case.toml").read_text())["args"]
    outs = {}
    for bs in (1, 7, 256):
        work = tmp_path / f"bs{bs}"
        work.mkdir()
        for f in (CASES / case).iterdir():
            if f.is_file():
                (work / f.name).write_bytes(f.read_bytes())
        p = subprocess.run([*__import__("conftest").ULNET, *spec_args, "--batch-size", str(bs), "-q"], cwd=work,
                           capture_output=True)
        assert p.returncode == 0, p.stderr
        outs[bs] = {f.name: f.read_bytes() for f in sorted(work.iterdir())
                    if f.suffix in (".pcap", ".json") and not (CASES / case / f.name).exists()}
    assert outs[1] == outs[7] == outs[256]


# ---- reject: valid answers ------------------------------------------------------------------

def test_reject_answers_are_valid():
    text = (CASES / "run-reject" / "expected" / "lan.pcap.txt").read_text().splitlines()
    head = text[0].split("|")
    rows = [dict(zip(head, line.split("|"))) for line in text[1:]]
    assert len(rows) == 7
    for r in rows:
        for k in ("ip.checksum.status", "tcp.checksum.status", "icmp.checksum.status", "icmpv6.checksum.status"):
            assert r[k] in ("", "1"), (k, r)        # 1: good
    rst = [r for r in rows if r["tcp.flags.str"]]
    assert [r["tcp.ack_raw"] for r in rst] == ["1001", "0", "8"]   # SYN seq 1000 -> ack 1001; v6 SYN seq 7 -> 8
    assert rst[1]["tcp.seq_raw"] == "3000"                         # answer to an ACK: seq = their ack


# ---- police and shape: the rates hold --------------------------------------------------------

def _tshark_times_sizes(path):
    p = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.len"],
                       capture_output=True, text=True, check=True)
    out = []
    for line in p.stdout.splitlines():
        t, n = line.split("\t")
        sec, _, frac = t.partition(".")
        out.append((int(sec) * 10**9 + int(frac.ljust(9, "0")[:9]), int(n)))
    return out


def _max_over_rate(pk, per_ns):
    """max over windows [i, j] of sum(size) - rate * (t_j - t_i)."""
    worst = 0.0
    for i in range(len(pk)):
        tot = 0
        for j in range(i, len(pk)):
            tot += pk[j][1]
            worst = max(worst, tot - per_ns * (pk[j][0] - pk[i][0]))
    return worst


def test_shape_rate_from_output_timestamps(tmp_path):
    case = CASES / "run-shape"
    for f in case.iterdir():
        if f.is_file():
            (tmp_path / f.name).write_bytes(f.read_bytes())
    p = run_ulnet("run", "--rules", tmp_path / "rules.conf", "--in", f"lan={tmp_path / 'in.pcap'}",
                  "--out", f"wan={tmp_path / 'wan.pcap'}", "--stats-json", tmp_path / "s.json", "-q")
    assert p.returncode == 0, p.stderr
    pk = [x for x in _tshark_times_sizes(tmp_path / "wan.pcap") if x[1] >= 1000]     # the shaped flow
    assert len(pk) >= 30
    rate = 1_000_000 / 8 / 1e9            # 1Mbit in bytes per ns
    burst = 3000
    assert _max_over_rate(pk, rate) <= burst + 1e-6
    assert all(b[0] >= a[0] for a, b in zip(pk, pk[1:]))          # departures in order
    st = json.loads((tmp_path / "s.json").read_text())["actions"]
    assert st["forward.shaped"] > 0 and st["drop.shape_queue"] > 0      # the 300 ms queue overflows
    # over the whole output: the shaped flow leaves at about the rate
    span = (pk[-1][0] - pk[0][0]) / 1e9
    assert abs(sum(s for _, s in pk[1:]) * 8 / span - 1e6) / 1e6 < 0.05


def test_police_rate(tmp_path):
    out = _tshark_times_sizes(CASES / "run-police" / "in.pcap")
    assert len(out) == 200
    st = json.loads((CASES / "run-police" / "expected" / "stats.json.txt").read_text())["actions"]
    # 20 pps, burst 5, over 1 s of traffic: at most 5 + 20 * 1.0 packets pass
    assert st["forward"] <= 5 + 20 * 1.0 + 1 and st["forward"] >= 20
    assert st["forward"] + st["drop.police"] == 200
    stf = json.loads((CASES / "run-police-per-flow" / "expected" / "stats.json.txt").read_text())["actions"]
    # 100 kbit per flow = 12.5 kB/s per flow, 142-byte packets, burst 1000 B: two flows
    per_flow_max = (1000 + 12500 * 1.0) / 142
    assert stf["forward"] <= 2 * per_flow_max + 2


# ---- balance: the benchmark capture ----------------------------------------------------------

def _flow_keys(path):
    p = run_ulnet("flows", path, "--format", "jsonl", check=True)
    keys = {}
    for line in p.stdout.decode().splitlines():
        r = json.loads(line)
        k = (r["protocol"], r["vlan_id"]) + tuple(sorted([(r["src_ip"], r["src_port"]), (r["dst_ip"], r["dst_port"])]))
        keys[k] = r
    return keys


def _bench_slice(tmp_path):
    """The benchmark capture's first 200,000 packets: bench/out's copy when a
    benchmark built it, else built here by the same deterministic generator."""
    if BENCH_SLICE.exists():
        return BENCH_SLICE
    out = tmp_path / "corpus-200000.pcap"
    subprocess.run([sys.executable, str(SHARED / "bench" / "make_corpus.py"), str(CORPUS / "ndpi" / "pcap"), str(out),
                    "--target-packets", "200000"], check=True, capture_output=True, timeout=600)
    return out


def test_balance_on_the_benchmark_capture(tmp_path):
    bench = _bench_slice(tmp_path)
    rules = tmp_path / "r.conf"
    rules.write_text("pass balance { w1 w2 }\n")
    p = run_ulnet("run", "--rules", rules, "--in", f"lan={bench}", "--out", f"w1={tmp_path / 'w1.pcap'}",
                  "--out", f"w2={tmp_path / 'w2.pcap'}", "--stats-json", tmp_path / "s.json", "-q")
    assert p.returncode == 0, p.stderr
    a, b = _flow_keys(tmp_path / "w1.pcap"), _flow_keys(tmp_path / "w2.pcap")
    assert not (set(a) & set(b)), "a flow on both ports"
    allf = _flow_keys(bench)
    ip_flows = {k for k in allf if k[2][0] is not None}
    assert set(a) | set(b) >= {k for k in ip_flows if allf[k]["ip_version"] in (4, 6)} - {k for k in ip_flows if False}
    both_in = sum(1 for k, r in allf.items() if r["dst2src_packets"] > 0)
    both_out = sum(1 for r in list(a.values()) + list(b.values()) if r["dst2src_packets"] > 0)
    assert both_out >= both_in - 5          # both directions of a flow land on one port
    st = json.loads((tmp_path / "s.json").read_text())["outputs"]
    pa, pb = st["w1"]["packets"], st["w2"]["packets"]
    assert abs(pa - pb) / max(pa, pb) < 0.10, (pa, pb)
    assert abs(len(a) - len(b)) / max(len(a), len(b)) < 0.10, (len(a), len(b))
