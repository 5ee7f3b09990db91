"""ulnet stats: per-application and per-category totals agree with the flow
records; the timeline holds every byte once; the plot is a PNG."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest

from conftest import CORPUS, run_ulnet, signal_on_call

import ulnet
from ulnet.cli import stats as S
from ulnet.inspect.registry import ID, NAMES

NDPI = CORPUS / "ndpi" / "pcap"
CAPTURES = ["wechat.pcap", "quic.pcap", "dns_exfiltration.pcap", "webdav.pcap"]


def _present(names):
    got = [NDPI / n for n in names if (NDPI / n).exists()]
    if not got:
        pytest.skip("corpus captures missing")
    return got


def _stats(*args):
    return json.loads(run_ulnet("stats", "--format", "json", *args, check=True).stdout)


def test_totals_agree_with_flow_records():
    paths = _present(CAPTURES)
    s = _stats(*paths)
    want = defaultdict(lambda: [0, 0, 0])
    cats = defaultdict(lambda: [0, 0, 0])
    conf = defaultdict(int)
    for f in ulnet.flows([str(p) for p in paths]):
        for d in (want[f.application_name], cats[f.application_category_name]):
            d[0] += 1
            d[1] += f.bidirectional_packets
            d[2] += f.bidirectional_bytes
        conf[f.application_confidence] += 1
    assert {a["name"]: [a["flows"], a["packets"], a["bytes"]] for a in s["applications"]} == dict(want)
    assert {c["name"]: [c["flows"], c["packets"], c["bytes"]] for c in s["categories"]} == dict(cats)
    assert {k: v for k, v in s["confidence"].items() if v} == dict(conf)
    assert s["flows"] == sum(v[0] for v in want.values())
    assert [a["bytes"] for a in s["applications"]] == sorted((a["bytes"] for a in s["applications"]), reverse=True)
    assert s["inputs"] == [str(p) for p in paths]


def test_timeline_holds_every_byte_once():
    s = _stats(*_present(["wechat.pcap"]))
    tl = s["timeline"]
    assert sum(sum(v) for v in tl["bytes"].values()) == s["bytes"]
    assert max(len(v) for v in tl["bytes"].values()) <= S.MAX_BINS
    # flows decided on their first payload packet: the timeline and the table agree on them
    tls = next(a for a in s["applications"] if a["name"] == "TLS")
    assert abs(sum(tl["bytes"]["TLS"]) - tls["bytes"]) <= 0.05 * tls["bytes"]


def test_fixed_bin_and_batch_size_do_not_change_totals():
    p, = _present(["wechat.pcap"])
    a = _stats(p, "--bin", "0.5")
    b = _stats(p, "--bin", "0.5", "--batch-size", "7")
    assert a == b
    assert a["timeline"]["bin_ms"] == 500


def test_timeline_coarsens_and_handles_time_going_back():
    tl = S.Timeline()
    app = np.array([ID["DNS"], ID["TLS"]], dtype=np.int64)
    wl = np.array([100, 200], dtype=np.uint32)
    tl.add(np.array([10_000_000_000, 11_000_000_000], dtype=np.int64), app, wl)
    tl.add(np.array([5_000_000_000, 4_000 * 1_000_000_000], dtype=np.int64), app, wl)   # earlier, then much later
    used = tl.used()
    assert used.shape[1] <= S.MAX_BINS and used.sum() == 600
    assert used[ID["DNS"]].sum() == 200 and used[ID["TLS"]].sum() == 400
    assert tl.t0 <= 5_000_000_000


def test_text_output_names_applications_and_categories():
    p, = _present(["wechat.pcap"])
    out = run_ulnet("stats", p, check=True).stdout.decode()
    for word in ("applications", "categories", "TLS", "Web", "Network", "% bytes"):
        assert word in out


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    p, = _present(["wechat.pcap"])
    out = tmp_path / "t.png"
    run_ulnet("stats", p, "--plot", out, "--top", "3", check=True)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_bad_input_and_options():
    assert run_ulnet("stats", "/nonexistent.pcap").returncode == 2
    assert run_ulnet("stats").returncode == 2
    p, = _present(["quic.pcap"])
    assert run_ulnet("stats", p, "--top", "0").returncode == 2


def test_packet_apps_uses_the_port_guess_while_undecided():
    names = set(NAMES)
    assert "Unknown" in names


def test_interrupted_run_prints_the_summary_of_what_it_read(tmp_path, monkeypatch, capsys):
    """SIGINT arriving while ended flows are counted (here: sent from inside
    the count) stops the reading after that batch: the run still prints a
    summary, exits 130 and says so, and the summary is the one of a clean
    run limited (-c) to the packets it read. Before, it printed nothing."""
    import signal
    import ulnet.flow as FL
    from ulnet.cli.main import main

    p, = _present(["wechat.pcap"])
    monkeypatch.setattr(FL, "EXPORT_ROWS", 8)           # many chunks of ended flows during the run
    orig, _ = signal_on_call(monkeypatch, S.Totals, "add", 3, signal.SIGINT)
    args = ["stats", str(p), "--format", "json", "--idle-timeout", "0.01", "--batch-size", "64"]
    assert main(args) == 130
    cap = capsys.readouterr()
    got = json.loads(cap.out)
    assert "interrupted after" in cap.err
    monkeypatch.setattr(S.Totals, "add", orig)
    assert main(args) == 0
    whole = json.loads(capsys.readouterr().out)
    assert 0 < got["packets_read"] < whole["packets_read"]
    assert main(args + ["-c", str(got["packets_read"])]) == 0
    assert json.loads(capsys.readouterr().out) == got
    assert got["flows"] > 3 and got["timeline"]["bytes"]
