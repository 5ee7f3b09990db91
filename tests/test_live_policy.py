"""The rule language on a live bridge (root only): block, reject, police,
shape, SIGHUP reload. Ports are named by the bridge's interface names (a, b).

Topology (tests/netns.py): h1 10.199.0.1 -- a [ulnet bridge a b --rules R] b -- h2 10.199.0.2.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from netns import Topo, bridge_topology, have, is_root
from test_live_bridge import H2, ping, start_bridge

pytestmark = pytest.mark.skipif(not is_root(), reason="live tests need root (network namespaces)")


@pytest.fixture
def topo():
    t = Topo()
    try:
        yield t
    finally:
        t.close()


def http_server(t, ns, root):
    (root / "index.html").write_text("hello\n")
    t.popen(ns, "python3", "-m", "http.server", "8080", "--bind", H2, "--directory", str(root))
    t.wait_for(lambda: ":8080" in t.run(ns, "ss", "-ltn", check=False).stdout, 20, what="http.server")


def curl(t, ns, timeout=10):
    t0 = time.monotonic()
    r = t.run(ns, "curl", "-sS", "--max-time", timeout, f"http://{H2}:8080/index.html", check=False,
              timeout=timeout + 10)
    return r, time.monotonic() - t0


def test_policy_block_icmp_http_still_works(topo, tmp_path):
    h1, br, h2 = bridge_topology(topo, ipv6=False)
    rules = tmp_path / "r.rules"
    rules.write_text("default pass\nblock proto icmp\n")
    http_server(topo, h2, tmp_path)
    p = start_bridge(topo, br, "a", "b", "--rules", str(rules))
    assert ping(topo, h1, H2, count=3, check=False) == 0
    r, _ = curl(topo, h1)
    assert r.returncode == 0 and r.stdout == "hello\n", r.stderr
    out, err = topo.stop(p)
    last = [json.loads(x) for x in out.splitlines() if x.startswith("{")][-1]
    assert last["policy_dropped"] >= 3
    # per-rule counts at exit, as ulnet run prints them: line, packets, bytes, flows, rule
    rows = {ln.split(None, 4)[4]: [int(x) for x in ln.split(None, 4)[1:4]]
            for ln in err.splitlines() if ln[:5].strip().isdigit() and len(ln.split(None, 4)) == 5}
    assert rows["block proto icmp"][0] == last["policy_dropped"] and rows["block proto icmp"][2] >= 1, err
    # the HTTP flow: handshake, request, response at least (TCP merges FINs and ACKs differently run to run)
    assert rows["default pass"][0] >= 5 and rows["default pass"][2] >= 1, err


def test_policy_reject_fails_at_once(topo, tmp_path):
    h1, br, h2 = bridge_topology(topo, ipv6=False)
    rules = tmp_path / "r.rules"
    rules.write_text("default pass\nreject proto tcp to port 8080\n")
    http_server(topo, h2, tmp_path)
    start_bridge(topo, br, "a", "b", "--rules", str(rules))
    ping(topo, h1, H2, count=2)
    r, dt = curl(topo, h1, timeout=10)
    assert r.returncode == 7, (r.returncode, r.stderr)        # connection refused: the RST came back
    assert dt < 3.0, dt


@pytest.mark.skipif(not have("iperf3"), reason="iperf3 missing")
def test_policy_police_holds_udp_rate(topo, tmp_path):
    h1, br, h2 = bridge_topology(topo, ipv6=False)
    rules = tmp_path / "r.rules"
    rules.write_text("default pass\npass proto udp police 10Mbit\n")
    topo.popen(h2, "iperf3", "-s", "-1", "-B", H2)
    start_bridge(topo, br, "a", "b", "--rules", str(rules))
    time.sleep(0.5)
    r = topo.run(h1, "iperf3", "-c", H2, "-u", "-b", "40M", "-t", "4", "-J", timeout=60)
    res = json.loads(r.stdout)
    got = res["end"]["sum"]["bits_per_second"] * (1 - res["end"]["sum"]["lost_percent"] / 100) / 1e6
    assert 8.5 <= got <= 11.0, got


@pytest.mark.skipif(not have("iperf3"), reason="iperf3 missing")
def test_policy_shape_holds_tcp_near_rate(topo, tmp_path):
    h1, br, h2 = bridge_topology(topo, ipv6=False)
    rules = tmp_path / "r.rules"
    rules.write_text("default pass\npass proto tcp shape 40Mbit\n")
    topo.popen(h2, "iperf3", "-s", "-1", "-B", H2)
    start_bridge(topo, br, "a", "b", "--rules", str(rules))
    time.sleep(0.5)
    r = topo.run(h1, "iperf3", "-c", H2, "-t", "5", "-J", timeout=60)
    mbit = json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"] / 1e6
    assert 25 <= mbit <= 44, mbit


def test_policy_sighup_broken_file_keeps_rules(topo, tmp_path):
    h1, br, h2 = bridge_topology(topo, ipv6=False)
    rules = tmp_path / "r.rules"
    rules.write_text("default pass\n")
    p = start_bridge(topo, br, "a", "b", "--rules", str(rules))
    ping(topo, h1, H2, count=3)
    rules.write_text("default pass\nblock prot icmp\n")          # a typo
    p.send_signal(signal.SIGHUP)
    topo.wait_output(p, "reload failed", timeout=10)
    ping(topo, h1, H2, count=5, interval=0.1)                      # still forwarding, old rules
    rules.write_text("default pass\nblock proto icmp\n")
    p.send_signal(signal.SIGHUP)
    topo.wait_output(p, "rules reloaded", timeout=10)
    assert ping(topo, h1, H2, count=3, check=False) == 0


def test_policy_bad_rules_not_applied(topo, tmp_path):
    br = topo.ns("br")
    topo.veth(br, "a", br, "b")
    rules = tmp_path / "r.rules"
    rules.write_text("default pass\npass in on nosuchport\n")
    r = topo.run_ulnet(br, "bridge", "a", "b", "--rules", str(rules))
    assert r.returncode == 1 and "rules not applied" in r.stderr, r.stderr


def test_policy_balance_keeps_each_flow_on_one_link(topo, tmp_path):
    """h1 -- a [bridge a b --port c: pass in on a balance { b c }] b -- h2, c -- h3.
    h2 and h3 are two identical backends (same IP, same MAC), each serving
    its own name. A flow split over both links would break its TCP
    connection; every request must succeed, and both backends must serve."""
    h1, br, h2, h3 = topo.ns("h1"), topo.ns("br"), topo.ns("h2"), topo.ns("h3")
    for ns in (h1, h2, h3):
        topo.run(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
    topo.veth(h1, "eth0", br, "a")
    topo.veth(h2, "eth0", br, "b")
    topo.veth(h3, "eth0", br, "c")
    topo.addr(h1, "eth0", "10.199.0.1/24")
    h1_mac = topo.run(h1, "cat", "/sys/class/net/eth0/address").stdout.strip()
    for ns, name in ((h2, "h2"), (h3, "h3")):
        topo.run(ns, "ip", "link", "set", "dev", "eth0", "address", "02:00:00:00:19:02")
        topo.addr(ns, "eth0", H2 + "/24")
        # ARP from a goes to b only (non-IP frames follow the A <-> B pairing): h3 must know h1
        topo.run(ns, "ip", "neigh", "replace", "10.199.0.1", "lladdr", h1_mac, "dev", "eth0", "nud", "permanent")
        d = tmp_path / name
        d.mkdir()
        (d / "who").write_text(name + "\n")
        topo.popen(ns, "python3", "-m", "http.server", "8080", "--bind", H2, "--directory", str(d))
        topo.wait_for(lambda: ":8080" in topo.run(ns, "ss", "-ltn", check=False).stdout, 20, what="http.server")
    rules = tmp_path / "r.rules"
    rules.write_text("default pass\npass in on a proto tcp balance { b c }\n")
    start_bridge(topo, br, "a", "b", "--port", "c", "--rules", str(rules))
    ping(topo, h1, H2, count=2)
    served = []
    for k in range(24):
        r = topo.run(h1, "curl", "-sS", "--max-time", "5", f"http://{H2}:8080/who", check=False, timeout=15)
        assert r.returncode == 0, (k, r.stderr)
        served.append(r.stdout.strip())
    assert set(served) == {"h2", "h3"}, served


def _splits(err: str) -> dict:
    """The rows under each "count by app|host, line N" heading of the exit report: {heading: {name: [numbers]}}."""
    out, cur = {}, None
    for ln in err.splitlines():
        if ln.startswith(("count by app, line", "count by host, line")):
            cur = out.setdefault(ln.split(":")[0].split(" (")[0], {})
        elif cur is not None and ln.startswith("      ") and len(ln.split()) >= 3:
            nums = []
            rest = ln.split()
            while rest and rest[0].isdigit():
                nums.append(int(rest.pop(0)))
            cur[" ".join(rest)] = nums
        else:
            cur = None
    return out


@pytest.mark.skipif(not have("curl"), reason="curl missing")
@pytest.mark.parametrize("workers", ["1", "2"])
def test_policy_count_by_app_and_host_at_exit(topo, tmp_path, workers):
    """The exit report splits count by app / count by host rules as ulnet run
    does, every worker's rows added up (with 2 workers they come through pipes)."""
    h1, br, h2 = bridge_topology(topo, ipv6=False)
    rules = tmp_path / "r.rules"
    rules.write_text("match count by app\nmatch proto tcp count by host\ndefault pass\n")
    http_server(topo, h2, tmp_path)
    p = start_bridge(topo, br, "a", "b", "--rules", str(rules), "--workers", workers)
    ping(topo, h1, H2, count=4)
    for _ in range(4):                       # four TCP flows: with 2 workers, likely on both
        r, _ = curl(topo, h1)
        assert r.returncode == 0 and r.stdout == "hello\n", r.stderr
    time.sleep(0.5)
    out, err = topo.stop(p)
    assert p.returncode == 0, err
    rows = {ln.split(None, 4)[4]: [int(x) for x in ln.split(None, 4)[1:4]]
            for ln in err.splitlines() if ln[:5].strip().isdigit() and len(ln.split(None, 4)) == 5}
    sp = _splits(err)
    apps = sp["count by app, line 1"]
    assert apps["ICMP"][0] >= 8 and apps["HTTP"][0] >= 4 * 5, err       # 4 echoes and replies; 4 exchanges
    # every packet of the rule once, under an application or "(not yet known)"
    assert sum(v[0] for v in apps.values()) == rows["match count by app"][0], err
    assert sum(v[1] for v in apps.values()) == rows["match count by app"][1], err
    hosts = sp["count by host, line 2"]
    assert any(h.startswith(H2) for h in hosts), err                  # HTTP Host: 10.199.0.2:8080
    assert sum(v[0] for v in hosts.values()) == rows["match proto tcp count by host"][0], err
