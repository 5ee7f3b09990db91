"""The issue's acceptance test: ulnet's applications and server names
against nDPI's own results over the nDPI corpus (tests/oracle/accuracy.py
does the comparison; ``python tests/oracle/accuracy.py`` prints the same
figures as a report).

Compared: the flows nDPI decided from payload ([Confidence: DPI]) that
ulnet tracks with the same endpoints. Claimed applications are those in
ulnet's registry; precision counts the flows ulnet decided by payload or
IP protocol (a port guess claims nothing).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import CORPUS

sys.path.insert(0, str(Path(__file__).resolve().parent / "oracle"))
import accuracy  # noqa: E402

MIN_AGREEMENT = 0.95
MIN_PRECISION = 0.90
MIN_SNI = 0.95


@pytest.fixture(scope="module")
def rep():
    if not (CORPUS / "ndpi" / "result").exists():
        pytest.fail(f"nDPI corpus missing at {CORPUS}")
    return accuracy.report(accuracy.evaluate())


def test_enough_flows_compared(rep):
    assert rep["flows_compared"] > 3000 and rep["claimed_flows"] > 1000


def test_overall_agreement_on_claimed_applications(rep):
    assert rep["agreement"] >= MIN_AGREEMENT, rep["agreement"]


def test_no_claimed_application_below_90_percent_precision(rep):
    low = {a: (v["precision"], v["ulnet_flows"]) for a, v in rep["apps"].items()
           if v["ulnet_flows"] and v["precision"] < MIN_PRECISION}
    assert not low, f"precision below {MIN_PRECISION} (precision, flows): {low}"


@pytest.mark.parametrize("app", accuracy.SNI_APPS)
def test_server_name_agreement(rep, app):
    v = rep["sni"][app]
    assert v["flows"] >= 20, f"too few {app} flows with a name to judge: {v}"
    assert v["agreement"] >= MIN_SNI, f"{app}: {v} (python tests/oracle/accuracy.py --show {app})"


def test_dpi_packets_no_more_than_ndpi(rep):
    assert rep["dpi_packets_mean_ulnet"] <= rep["dpi_packets_mean_ndpi"], \
        (rep["dpi_packets_mean_ulnet"], rep["dpi_packets_mean_ndpi"])
