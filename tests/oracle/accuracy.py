#!/usr/bin/env python3
"""Application accuracy of ulnet against nDPI over the nDPI corpus.

For every flow nDPI decided from payload ([Confidence: DPI]) and ulnet
tracked with the same endpoints: ulnet's application_name against nDPI's
master protocol (the name before the dot in [proto: 91.126/TLS.Google]),
and requested_server_name against nDPI's Hostname/SNI (case-insensitive).

    python tests/oracle/accuracy.py [--json OUT] [--show APP]

Claimed applications: those ulnet's registry can decide from payload.
Precision of X: of the flows ulnet calls X, how many nDPI calls X.
Recall of X: of the flows nDPI calls X, how many ulnet calls X.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from compare_flows import NDPI_LIKE, _norm  # noqa: E402
from ndpi_results import parse  # noqa: E402

import ulnet  # noqa: E402
from ulnet.inspect.registry import APPS  # noqa: E402

ROOT = HERE.parent.parent
NDPI = (ROOT / ".." / "shared" / "corpus" / "ndpi").resolve()
SNI_APPS = ("TLS", "QUIC", "HTTP", "DNS")
# ulnet names that nDPI reports under another master protocol name
ALIASES = {}


def claimed() -> set[str]:
    return {a.name for a in APPS}


def evaluate(limit=None):
    pairs = []       # (capture, nDPI flow, ulnet record)
    caps = sorted((NDPI / "pcap").glob("*"))[:limit]
    for p in caps:
        r = NDPI / "result" / (p.name + ".out")
        if not r.exists():
            continue
        try:
            ours = defaultdict(list)
            for f in ulnet.flows(str(p), **NDPI_LIKE):
                ends = frozenset([(_norm(f.src_ip), f.src_port), (_norm(f.dst_ip), f.dst_port)])
                ours[(f.protocol, ends, f.vlan_id)].append(f)
        except Exception as e:  # unreadable capture: its flows are not compared
            print(f"skip {p.name}: {e}", file=sys.stderr)
            continue
        for fl in parse(r):
            if fl.confidence != "DPI":
                continue
            key = (fl.proto, frozenset([(_norm(fl.a[0]), fl.a[1]), (_norm(fl.b[0]), fl.b[1])]), fl.vlan)
            cands = ours.get(key)
            if not cands:
                continue
            pairs.append((p.name, fl, cands[0]))
    return pairs


def report(pairs):
    names = claimed()
    ours_n = Counter()
    ours_ok = Counter()
    nd_n = Counter()
    nd_ok = Counter()
    sni_n = Counter()
    sni_ok = Counter()
    dpi_ours = dpi_nd = dpi_cnt = 0
    for cap, fl, f in pairs:
        want = ALIASES.get(fl.master, fl.master)
        got = f.application_name
        if got in names and f.application_confidence in ("payload", "protocol"):
            ours_n[got] += 1
            ours_ok[got] += got == want
        if want in names:
            nd_n[want] += 1
            nd_ok[want] += got == want
        if want in SNI_APPS and got == want and fl.host:
            sni_n[want] += 1
            sni_ok[want] += f.requested_server_name.lower() == fl.host.lower()
        if got == want and f.application_confidence == "payload":
            dpi_ours += f.dpi_packets
            dpi_nd += fl.dpi_packets
            dpi_cnt += 1
    apps = {}
    for a in sorted(set(ours_n) | set(nd_n)):
        apps[a] = {"ulnet_flows": ours_n[a], "precision": ours_ok[a] / ours_n[a] if ours_n[a] else None,
                   "ndpi_flows": nd_n[a], "recall": nd_ok[a] / nd_n[a] if nd_n[a] else None}
    total_claimed = sum(ours_n.values())
    agree = sum(ours_ok.values())
    return {
        "flows_compared": len(pairs),
        "claimed_flows": total_claimed,
        "agreement": agree / total_claimed if total_claimed else None,
        "apps": apps,
        "sni": {a: {"flows": sni_n[a], "agreement": sni_ok[a] / sni_n[a] if sni_n[a] else None} for a in SNI_APPS},
        "sni_overall": sum(sni_ok.values()) / max(1, sum(sni_n.values())),
        "dpi_packets_mean_ulnet": dpi_ours / dpi_cnt if dpi_cnt else None,
        "dpi_packets_mean_ndpi": dpi_nd / dpi_cnt if dpi_cnt else None,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--show", help="list disagreements for this application (ours or nDPI's)")
    args = ap.parse_args()
    pairs = evaluate()
    rep = report(pairs)
    print(f"flows compared {rep['flows_compared']}, claimed {rep['claimed_flows']}, "
          f"agreement {rep['agreement']:.4f}, SNI {rep['sni_overall']:.4f}, "
          f"dpi packets ulnet {rep['dpi_packets_mean_ulnet']:.2f} vs nDPI {rep['dpi_packets_mean_ndpi']:.2f}")
    print(f"{'application':24} {'ulnet':>6} {'prec':>6} {'nDPI':>6} {'recall':>6}")
    for a, v in sorted(rep["apps"].items(), key=lambda kv: -(kv[1]["ndpi_flows"] + kv[1]["ulnet_flows"])):
        pr = f"{v['precision']:.2f}" if v["precision"] is not None else "-"
        rc = f"{v['recall']:.2f}" if v["recall"] is not None else "-"
        print(f"{a:24} {v['ulnet_flows']:>6} {pr:>6} {v['ndpi_flows']:>6} {rc:>6}")
    for a, v in rep["sni"].items():
        print(f"SNI {a}: {v['flows']} flows, agreement {v['agreement']}")
    if args.show:
        for cap, fl, f in pairs:
            if (f.application_name == args.show) != (fl.master == args.show) or \
                    (args.show in SNI_APPS and fl.master == args.show == f.application_name and fl.host
                     and fl.host.lower() != f.requested_server_name.lower()):
                print(f"  {cap}: nDPI {fl.app} host={fl.host!r} | ulnet {f.application_name} "
                      f"host={f.requested_server_name!r} {fl.a}->{fl.b}")
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=1))


if __name__ == "__main__":
    main()
