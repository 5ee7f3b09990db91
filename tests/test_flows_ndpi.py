"""Flows against nDPI's own results over the whole nDPI corpus.

ulnet runs with ndpiReader-like settings (no idle/active split, no split at
TCP close, only first fragments counted: tests/oracle/compare_flows.py says
why); every nDPI flow must have a ulnet flow with the same endpoints, VLAN,
protocol and packets/bytes per direction. At least 99% must match, and the
rest must be exactly the differences listed (with reasons) in
tests/golden/ndpi_flow_differences.tsv.
"""

import sys
from pathlib import Path

import pytest

from conftest import CORPUS, ROOT

sys.path.insert(0, str(ROOT / "tests" / "oracle"))
from compare_flows import compare, difference_line  # noqa: E402
from ndpi_results import parse  # noqa: E402

NDPI = CORPUS / "ndpi"
DIFFS = ROOT / "tests" / "golden" / "ndpi_flow_differences.tsv"
# Captures whose link type ulnet does not decode yet: all their flows are differences.
UNSUPPORTED_LINKTYPE: dict[str, int] = {}


def test_flows_match_ndpi(corpus_available):
    known = {}
    for line in DIFFS.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        cap, nd, ours, reason = line.split("\t")
        assert reason.strip(), line
        known.setdefault(f"{cap}\t{nd}\t{ours}", 0)
        known[f"{cap}\t{nd}\t{ours}"] += 1
    total = matched = 0
    found = {}
    for p in sorted((NDPI / "pcap").glob("*")):
        r = NDPI / "result" / (p.name + ".out")
        if not r.exists():
            continue
        if p.name in UNSUPPORTED_LINKTYPE:
            total += len(parse(r))
            continue
        n, missing = compare(p, r)
        total += n
        matched += n - len(missing)
        for fl, near in missing:
            k = difference_line(p.name, fl, near)
            found[k] = found.get(k, 0) + 1
    rate = matched / total
    print(f"nDPI flows: {total}, matched exactly: {matched} ({100 * rate:.2f}%)")
    assert rate >= 0.99
    new = {k: v for k, v in found.items() if known.get(k, 0) < v}
    gone = {k: v for k, v in known.items() if found.get(k, 0) < v}
    assert not new, "new differences (check, then tests/oracle/update_ndpi_flow_differences.py):\n" + "\n".join(new)
    assert not gone, "differences that went away (remove them from the file):\n" + "\n".join(gone)
