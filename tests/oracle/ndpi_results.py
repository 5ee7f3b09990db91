"""Parse nDPI's result files (../shared/corpus/ndpi/result/NAME.out).

One flow per line like
    \t12\tUDP 10.0.0.1:53 <-> 10.0.0.2:4000 [VLAN: 5][proto: 5.126/DNS.Google]...[Confidence: DPI]
    ...[DPI packets: 2][cat: Network/14][1 pkts/82 bytes <-> 1 pkts/1514 bytes]...[Hostname/SNI: x]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PROTO_NUMBERS = {"TCP": 6, "UDP": 17, "ICMP": 1, "ICMPV6": 58, "IGMP": 2, "ESP": 50, "AH": 51, "GRE": 47,
                 "SCTP": 132, "OSPF": 89, "PIM": 103, "VRRP": 112}

_LINE = re.compile(
    r"^\t(?P<n>\d+)\t(?P<proto>[A-Z0-9]+) (?P<a>\S+) (?P<arrow><->|->) (?P<b>\S+) "
    r"(?:\[VLAN: (?P<vlan>\d+)\])?\[proto: (?P<pnum>[0-9.]+)/(?P<pname>[^\]]+)\]")
_COUNTS = re.compile(r"\[(\d+) pkts/(\d+) bytes (?:<->|->) (\d+) pkts/(\d+) bytes\]")
_CONF = re.compile(r"\[Confidence: ([^\]]+)\]")
_DPI_PKTS = re.compile(r"\[DPI packets: (\d+)\]")
_HOST = re.compile(r"\[Hostname/SNI: ([^\]]*)\]")
_CAT = re.compile(r"\[cat: ([^/\]]+)/\d+\]")


def _endpoint(text: str) -> tuple[str, int]:
    if text.startswith("["):
        ip, _, port = text[1:].rpartition("]:")
        return ip, int(port)
    ip, _, port = text.rpartition(":")
    return ip, int(port)


@dataclass
class NdpiFlow:
    n: int
    proto: int
    a: tuple[str, int]
    b: tuple[str, int]
    vlan: int
    app: str            # "DNS.Google"
    master: str         # "DNS"
    confidence: str
    dpi_packets: int
    category: str
    host: str
    a2b_packets: int
    a2b_bytes: int
    b2a_packets: int
    b2a_bytes: int


def parse(path) -> list[NdpiFlow]:
    flows = []
    with open(path, "rb") as f:
        for raw in f:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            m = _LINE.match(line)
            if not m or m["proto"] not in PROTO_NUMBERS and not m["proto"].isdigit():
                continue
            c = _COUNTS.search(line)
            if not c:
                continue
            proto = PROTO_NUMBERS.get(m["proto"]) or int(m["proto"])
            app = m["pname"]
            conf = _CONF.search(line)
            dp = _DPI_PKTS.search(line)
            host = _HOST.search(line)
            cat = _CAT.search(line)
            flows.append(NdpiFlow(
                n=int(m["n"]), proto=proto, a=_endpoint(m["a"]), b=_endpoint(m["b"]),
                vlan=int(m["vlan"]) if m["vlan"] else 0, app=app, master=app.split(".")[0],
                confidence=conf[1] if conf else "", dpi_packets=int(dp[1]) if dp else 0,
                category=cat[1] if cat else "", host=host[1] if host else "",
                a2b_packets=int(c[1]), a2b_bytes=int(c[2]), b2a_packets=int(c[3]), b2a_bytes=int(c[4])))
    return flows
