"""ulnet warm: its built-in capture reaches every stage, and after it the
offline commands compile nothing more (numba saves no new cache entry)."""

from __future__ import annotations

import json
import os

from conftest import ROOT, SAMPLE, run_ulnet

from ulnet.warm import sample_capture


def test_sample_capture_reaches_every_stage(tmp_path):
    cap = tmp_path / "w.pcap"
    cap.write_bytes(sample_capture())
    p = run_ulnet("peek", "--format", "jsonl", cap, check=True)
    pk = [json.loads(x) for x in p.stdout.decode().splitlines()]
    assert len(pk) == 10 and all(r["error"] is None for r in pk), pk
    apps = {r["application_name"] for r in pk}
    assert {"HTTP", "TLS", "DNS", "ICMP"} <= apps, apps
    assert {r["ip_version"] for r in pk} == {4, 6}
    assert any(r["vlan_id"] for r in pk)


def test_warm_leaves_nothing_to_compile(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    p = run_ulnet("warm", "--workers", "2", env=env)
    assert p.returncode == 0, p.stderr
    assert b"compiled and cached" in p.stderr
    again = run_ulnet("warm", env=env)
    assert b"cache is warm" in again.stderr
    env["NUMBA_DEBUG_CACHE"] = "1"
    out = tmp_path / "o.pcap"
    for args in (["peek", SAMPLE], ["peek", SAMPLE, "udp", "port", "53"], ["flows", "--statistics", SAMPLE], ["stats", SAMPLE],
                 ["run", "--rules", ROOT / "samples" / "sample.rules", "--in", f"lan={SAMPLE}", "--out", f"wan={out}", "-q"]):
        r = run_ulnet(*args, env=env)
        assert r.returncode == 0, r.stderr
        text = (r.stdout + r.stderr).decode(errors="replace")
        saved = [x for x in text.splitlines() if "data saved to" in x]
        assert not saved, (args, saved[:5])
        assert "index loaded from" in text      # the check above can fail: the cache is in use
