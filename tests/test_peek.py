"""ulnet peek against libpeak's golden files, and batch-size independence."""

import re
import subprocess
import sys

import pytest

from conftest import LIBPEAK, SAMPLE, NDPI_PCAPS, run_ulnet

# (capture, libpeak's expected output)
GOLDEN = [
    ("test.pcap", "expected-peek-test_pcap.txt"),
    ("test_be.pcap", "expected-peek-test_pcap_swap.txt"),
    ("test.erf", "expected-peek-test_erf.txt"),
]

# Columns this release fills: everything but `app`, which comes with the
# inspection stage (until then peek prints '-').
_PENDING = re.compile(r", app: .*$")


def _strip(lines):
    return [_PENDING.sub("", line) for line in lines]


@pytest.mark.parametrize("capture,expected", GOLDEN)
def test_peek_matches_libpeak(capture, expected):
    out = run_ulnet("peek", LIBPEAK / capture, check=True).stdout.decode().splitlines()
    want = (LIBPEAK / expected).read_text().splitlines()
    assert _strip(out) == _strip(want)


def test_peek_pcapng_differs_from_libpeak_on_purpose():
    """libpeak's test.pcapng has an IDB with if_tsresol = 9 (nanoseconds) and
    obsolete Packet Blocks whose length field is not padded to 4 bytes.
    libpeak ignores if_tsresol (it prints the first timestamp as microseconds:
    1970-09-17 13:15:52.221737) and stops after the first block. ulnet honours
    if_tsresol, as the pcapng spec and tshark do, and reads all 8 packets."""
    out = run_ulnet("peek", LIBPEAK / "test.pcapng", check=True).stdout.decode().splitlines()
    want = (LIBPEAK / "expected-peek-test_pcapng.txt").read_text().splitlines()
    assert len(want) == 1 and len(out) == 8
    assert all(", flow: 0," in line for line in out)
    # same packet, other clock: everything after the timestamp agrees
    assert _strip([out[0]])[0].split(", ", 1)[1] == _strip(want)[0].split(", ", 1)[1]
    # the nanosecond reading of the same 64-bit timestamp
    assert out[0].startswith("time: Thu 1970-01-01 06:13:45.352221,")


BATCH_FILES = [SAMPLE, LIBPEAK / "test.pcapng", LIBPEAK / "test.erf"] + \
    [p for p in NDPI_PCAPS if p.name in ("gre.pcapng", "dns_fragmented.pcap", "6in4tunnel.pcap", "4in6tunnel.pcap",
                                         "ipv6_in_gtp.pcap", "http_ipv6.pcap", "teredo.pcap")]


@pytest.mark.parametrize("fmt", ["text", "jsonl"])
@pytest.mark.parametrize("path", BATCH_FILES, ids=lambda p: p.name)
def test_output_independent_of_batch_size(path, fmt):
    outs = [run_ulnet("peek", "--format", fmt, "--batch-size", bs, path, check=True).stdout for bs in (1, 7, 256)]
    assert outs[0] and outs[0] == outs[1] == outs[2]


def test_count_option_stops():
    out = run_ulnet("peek", "-c", 3, SAMPLE, check=True).stdout.decode().splitlines()
    assert len(out) == 3


def test_stats_lists_counters():
    p = run_ulnet("peek", "--stats", SAMPLE, check=True)
    err = p.stderr.decode()
    assert re.search(r"^source\.packets\s+30\s", err, re.M)
    assert re.search(r"^decode\.non_ip\s+1\s", err, re.M)
    assert re.search(r"^decode\.tunnel\.gre\s+1\s", err, re.M)


def test_jsonl_carries_flow_ids():
    import json
    rows = [json.loads(x) for x in run_ulnet("peek", "--format", "jsonl", SAMPLE, check=True).stdout.decode().splitlines()]
    assert [r["flow_id"] for r in rows[:4]] == [0, 0, 1, 1]
    assert rows[-1]["flow_id"] is None and rows[-1]["ip_version"] is None   # ARP: no flow


@pytest.mark.parametrize("fast_start", [True, False], ids=["console-script", "in-process"])
def test_start_up_without_a_full_collection(fast_start):
    """The console script (main(fast_start=True)) loads the command's modules
    with garbage collection off, freezes them and collects again before the
    command runs: no full collection walks numba's objects, collection is on
    afterwards. An in-process caller keeps Python's own collection (the
    control: there, loading them does take a full collection)."""
    code = f"""
import gc, sys
full = []
gc.callbacks.append(lambda phase, info: full.append(1) if phase == "start" and info["generation"] == 2 else None)
from ulnet.cli.main import main
rc = main(["peek", "-c", "3", {str(SAMPLE)!r}], fast_start={fast_start})
print("RESULT", rc, len(full), gc.get_freeze_count(), gc.isenabled(), file=sys.stderr)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    rc, full, frozen, enabled = out.stderr.split("RESULT")[-1].split()
    assert rc == "0" and enabled == "True", out.stderr
    if fast_start:
        assert full == "0" and int(frozen) > 50_000, out.stderr
    else:
        assert int(full) >= 1 and frozen == "0", out.stderr
