"""Compare ulnet's flows with nDPI's results for one capture.

A match: same protocol, same unordered endpoints (address, port), same VLAN,
and the same packets and bytes in each direction. Returns the nDPI flows
without a match, each with the closest ulnet flow on the same endpoints
(or None).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict

import ulnet
from ndpi_results import parse


# ndpiReader keeps a flow until the end of the capture (no idle split, no
# split at TCP FIN) and counts only first fragments: compare like with like.
NDPI_LIKE = dict(idle_timeout=1e9, active_timeout=1e9,
                 close_timeout=1e9, fragments="first")


def _norm(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip   # nDPI sometimes prints an invalid IPv6 text ("2600:1901::7a0b::")


def ulnet_flows(capture, **options):
    table = defaultdict(list)
    rec = ulnet.flows(str(capture), **(options or NDPI_LIKE))
    for f in rec:
        ends = frozenset([(_norm(f.src_ip), f.src_port), (_norm(f.dst_ip), f.dst_port)])
        table[(f.protocol, ends, f.vlan_id)].append(f)
    return table


def compare(capture, result, **options):
    nd = parse(result)
    ours = ulnet_flows(capture, **options)
    missing = []
    for fl in nd:
        a = (_norm(fl.a[0]), fl.a[1])
        b = (_norm(fl.b[0]), fl.b[1])
        key = (fl.proto, frozenset([a, b]), fl.vlan)
        cands = ours.get(key, [])
        hit = None
        for f in cands:
            fwd = (_norm(f.src_ip), f.src_port) == a
            got = ((f.src2dst_packets, f.src2dst_bytes, f.dst2src_packets, f.dst2src_bytes) if fwd else
                   (f.dst2src_packets, f.dst2src_bytes, f.src2dst_packets, f.src2dst_bytes))
            if a == b:
                got2 = (f.dst2src_packets, f.dst2src_bytes, f.src2dst_packets, f.src2dst_bytes)
            else:
                got2 = None
            want = (fl.a2b_packets, fl.a2b_bytes, fl.b2a_packets, fl.b2a_bytes)
            if got == want or got2 == want:
                hit = f
                break
        if hit is not None:
            cands.remove(hit)
        else:
            missing.append((fl, cands[0] if cands else None))
    return len(nd), missing


def difference_line(capture_name, fl, near) -> str:
    """One line of tests/golden/ndpi_flow_differences.tsv (without the reason)."""
    nd = f"{fl.proto} {fl.a[0]}:{fl.a[1]} {fl.b[0]}:{fl.b[1]} vlan={fl.vlan} " \
         f"{fl.a2b_packets}/{fl.a2b_bytes} {fl.b2a_packets}/{fl.b2a_bytes}"
    if near is None:
        ours = "none"
    else:
        ours = f"{near.src_ip}:{near.src_port} {near.src2dst_packets}/{near.src2dst_bytes} " \
               f"{near.dst2src_packets}/{near.dst2src_bytes}"
    return f"{capture_name}\t{nd}\t{ours}"
