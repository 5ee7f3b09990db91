"""The decoder against tshark, packet by packet, over the whole corpus.

For every capture in ``corpus/ndpi/pcap`` and ``corpus/libpeak`` the golden
file ``tests/golden/tshark/<capture>.tsv.gz`` (tshark 4.0, one line per
packet, see its README) is read, the capture is run through
``ulnet.Pipeline`` in this process, and the fields below are compared for the
same packet number:

    wire_len cap_len vlan_id ip_version src dst protocol ip_len
    src_port dst_port frag_mf frag_offset tcp_flags tcp_hlen icmp_type icmp_code
    outer_ip_version outer_src outer_dst   (only for tunnelled packets)

plus the packet count of each capture. Every difference must be listed in
``tests/golden/tshark/KNOWN_DIFFERENCES.txt`` with its reason; a new
difference fails, and so does a listed one that no longer happens (remove
it). The rules that turn tshark's output into the value ulnet must produce
(innermost layer of tunnels, cut at ICMP error quotes and at carriers ulnet
does not decapsulate, ...) are in ``expected()`` and in the README section
"How test_decode_tshark compares".

    python tests/test_decode_tshark.py [CAPTURE ...]

prints the current differences as KNOWN_DIFFERENCES lines (with their
reason when listed, "?" when new), for whoever updates the file by hand.
"""

from __future__ import annotations

import gzip
import socket
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, NDPI_PCAPS, LIBPEAK
from ulnet.addr import to_text
from ulnet.batch import PacketBatch
from ulnet.batch.columns import (
    H_VLAN, H_IP_VERSION, H_IP_LEN, H_PROTO, H_SPORT, H_DPORT, H_FRAG, H_FRAG_OFF,
    H_TCP_FLAGS, H_TCP_HLEN, H_ICMP_TYPE, H_ICMP_CODE, H_OUTER_L3, H_OUTER_VERSION,
    H_TUNNEL_DEPTH, FRAG_MF,
)
from ulnet.counters import new_counters
from ulnet.decode import decode
from ulnet.pipeline import Pipeline
from ulnet.sources import CaptureError

GOLDEN = ROOT / "tests" / "golden" / "tshark"
KNOWN = GOLDEN / "KNOWN_DIFFERENCES.txt"
CAPTURES = NDPI_PCAPS + sorted(p for p in LIBPEAK.glob("*") if p.suffix in (".pcap", ".pcapng", ".erf"))

FIELDS = ("wire_len", "cap_len", "vlan_id", "ip_version", "src", "dst", "protocol", "ip_len",
          "src_port", "dst_port", "frag_mf", "frag_offset", "tcp_flags", "tcp_hlen",
          "icmp_type", "icmp_code", "outer_ip_version", "outer_src", "outer_dst")
ABSENT = "-"

# ---- tshark's side ------------------------------------------------------------

# Paths between two IP layers that ulnet decapsulates (tshark's protocol
# tokens between them). Anything else carrying an inner IP header (ICMP error
# quotes, sFlow samples, CAPWAP, ...) is cut: the packet is the outer one.
TUNNEL_PATHS = frozenset(("", "gre", "gre:ppp", "udp:gtp", "udp:vxlan", "udp:teredo"))
# ... and Ethernet inside a tunnel (GRE TEB, VXLAN) up to the inner IP
_ETH_INSIDE = ("eth", "ethertype", "vlan")
# IPv6 extension headers ulnet walks (tshark's token names; "ah" only counts after ipv6)
IPV6_EXT_TOKENS = frozenset(("ipv6.hopopts", "ipv6.routing", "ipv6.fraghdr", "ipv6.dstopts", "ah", "mipv6"))
IPV6_EXT_NXT = frozenset((0, 43, 44, 51, 60, 135))
L4_PROTO = {"tcp": 6, "udp": 17, "sctp": 132, "icmpv6": 58, "icmp": 1, "ip": 4, "ipv6": 41, "gre": 47,
            "esp": 50}


def _is_tunnel_path(mid: list[str]) -> bool:
    if ":".join(mid) in TUNNEL_PATHS:
        return True
    # GRE / VXLAN carrying Ethernet: gre:eth:ethertype[:vlan:ethertype]*
    for head in (["gre"], ["udp", "vxlan"]):
        if mid[:len(head)] == head and len(mid) > len(head) and mid[len(head)] == "eth" \
                and all(t in _ETH_INSIDE for t in mid[len(head):]):
            return True
    return False


def cut_protocols(tokens: list[str]) -> list[str]:
    """tshark's protocol stack cut after the last layer ulnet decodes: the
    path from each IP layer to the next must be a tunnel ulnet follows."""
    ip_at = [k for k, t in enumerate(tokens) if t in ("ip", "ipv6")]
    for a, b in zip(ip_at, ip_at[1:]):
        mid = [t for t in tokens[a + 1:b] if t not in IPV6_EXT_TOKENS]
        if not _is_tunnel_path(mid):
            # keep the IP layer, its extension headers and the layer above them
            j = a + 1
            while j < b and tokens[j] in IPV6_EXT_TOKENS:
                j += 1
            return tokens[:j + 1]
    return tokens


def _nth(values: list[str], n: int) -> str:
    """The n-th value of a field, or ABSENT: a layer tshark lists without the
    field is cut short or malformed there, and ulnet must not report it either."""
    return values[n] if 0 <= n < len(values) else ABSENT


def _times8(v: str) -> str:
    return v if v == ABSENT else str(int(v) * 8)


def expected(row: dict[str, list[str]]) -> dict[str, str | None]:
    """tshark's line -> what ulnet must report for that packet, per field
    (ABSENT: must be absent; None: tshark does not say, not compared)."""
    tokens = cut_protocols(row["frame.protocols"][0].split(":") if row["frame.protocols"] else [])
    e: dict[str, str | None] = {"wire_len": row["frame.len"][0], "cap_len": row["frame.cap_len"][0]}
    ip_at = [k for k, t in enumerate(tokens) if t in ("ip", "ipv6")]
    before_ip = tokens[:ip_at[0]] if ip_at else tokens
    e["vlan_id"] = _nth(row["vlan.id"], 0) if "vlan" in before_ip else ABSENT
    # the innermost IP layer, and how many layers of its family come before it
    k = ip_at[-1] if ip_at else -1
    fam = tokens[k] if ip_at else ""
    n = tokens[:k + 1].count(fam) - 1
    if not ip_at or _nth(row[fam + ".src"], n) == ABSENT:
        e["ip_version"] = "0"   # no IP, or tshark found the header bogus and stopped there
        if len(ip_at) > 1:
            e["ip_version"] = None  # an inner header tshark rejects: not in this corpus
        return e
    exts = []
    for t in tokens[k + 1:]:
        if t not in IPV6_EXT_TOKENS or fam == "ip":
            break
        exts.append(t)
    above = tokens[k + 1 + len(exts):]
    l4 = above[0] if above else None
    if fam == "ip":
        e["ip_version"] = "4"
        e["ip_len"] = _nth(row["ip.len"], n)
        e["protocol"] = _nth(row["ip.proto"], n)
        e["frag_mf"] = _nth(row["ip.flags.mf"], n)
        e["frag_offset"] = _times8(_nth(row["ip.frag_offset"], n))
    else:
        e["ip_version"] = "6"
        pl = _nth(row["ipv6.plen"], n)
        e["ip_len"] = pl if pl == ABSENT else str(int(pl) + 40)
        nxt = _nth(row["ipv6.nxt"], n)
        if nxt == ABSENT or int(nxt) not in IPV6_EXT_NXT:
            e["protocol"] = nxt
        elif l4 in L4_PROTO:
            e["protocol"] = str(L4_PROTO[l4])       # the header after the extension headers
        else:
            e["protocol"] = None    # a non-first fragment: tshark's output does not say
        if "ipv6.fraghdr" in exts:
            m = tokens[:k + 1 + exts.index("ipv6.fraghdr") + 1].count("ipv6.fraghdr") - 1
            e["frag_mf"] = _nth(row["ipv6.fraghdr.more"], m)
            e["frag_offset"] = _times8(_nth(row["ipv6.fraghdr.offset"], m))
        else:
            e["frag_mf"], e["frag_offset"] = "0", "0"
    e["src"], e["dst"] = _nth(row[fam + ".src"], n), _nth(row[fam + ".dst"], n)
    if l4 in ("tcp", "udp", "sctp"):
        m = tokens[:k + 1 + len(exts) + 1].count(l4) - 1
        e["src_port"] = _nth(row[l4 + ".srcport"], m)
        e["dst_port"] = _nth(row[l4 + ".dstport"], m)
        if l4 == "tcp":
            fl = _nth(row["tcp.flags"], m)
            e["tcp_flags"] = fl if fl == ABSENT else str(int(fl, 16) & 0x1FF)   # ulnet keeps 9 bits
            e["tcp_hlen"] = _nth(row["tcp.hdr_len"], m)
    elif l4 in ("icmp", "icmpv6"):
        m = tokens.count(l4) - 1
        e["icmp_type"] = _nth(row[l4 + ".type"], m)
        e["icmp_code"] = _nth(row[l4 + ".code"], m)
    if len(ip_at) > 1:
        o = tokens[ip_at[0]]
        e["outer_ip_version"] = "4" if o == "ip" else "6"
        e["outer_src"] = _nth(row[o + ".src"], 0)
        e["outer_dst"] = _nth(row[o + ".dst"], 0)
    return e


def read_golden(capture: str) -> list[dict[str, list[str]]]:
    with gzip.open(GOLDEN / f"{capture}.tsv.gz", "rt", encoding="utf-8", newline="\n") as f:
        lines = f.read().split("\n")
    names = lines[0].split("\t")
    rows = []
    for line in lines[1:]:
        if line:
            rows.append({k: (v.split(",") if v else []) for k, v in zip(names, line.split("\t"))})
    return rows


# ---- ulnet's side --------------------------------------------------------------

def _v4(b: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET, b)


def _v6(b: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, b)


def _rows(b) -> list[dict[str, str]]:
    """Our values for the ``b.n`` packets of a decoded batch."""
    out = []
    n = b.n
    hdr = b.hdr[:n]
    addr = b.addr[:n]
    for i in range(n):
        h = hdr[i]
        v = int(h[H_IP_VERSION])
        r = {"wire_len": str(int(b.wirelen[i])), "cap_len": str(int(b.caplen[i])),
             "vlan_id": str(int(h[H_VLAN])) if h[H_VLAN] >= 0 else ABSENT, "ip_version": str(v)}
        if v:
            a = addr[i]
            r["src"] = to_text(int(a[0]), int(a[1]), v)
            r["dst"] = to_text(int(a[2]), int(a[3]), v)
            r["ip_len"] = str(int(h[H_IP_LEN]))
            r["protocol"] = str(int(h[H_PROTO]))
            r["frag_mf"] = "1" if h[H_FRAG] & FRAG_MF else "0"
            r["frag_offset"] = str(int(h[H_FRAG_OFF]))
            for f, c in (("src_port", H_SPORT), ("dst_port", H_DPORT), ("tcp_flags", H_TCP_FLAGS),
                         ("tcp_hlen", H_TCP_HLEN), ("icmp_type", H_ICMP_TYPE), ("icmp_code", H_ICMP_CODE)):
                r[f] = str(int(h[c])) if h[c] >= 0 else ABSENT
        if h[H_TUNNEL_DEPTH] > 0:
            p = int(b.off[i]) + int(h[H_OUTER_L3])
            if h[H_OUTER_VERSION] == 4:
                r["outer_ip_version"] = "4"
                r["outer_src"], r["outer_dst"] = _v4(b.buf[p + 12:p + 16]), _v4(b.buf[p + 16:p + 20])
            else:
                r["outer_ip_version"] = "6"
                r["outer_src"], r["outer_dst"] = _v6(b.buf[p + 8:p + 24]), _v6(b.buf[p + 24:p + 40])
        out.append(r)
    return out


def ours(path: Path) -> list[dict[str, str]]:
    """Run the capture through the pipeline; one dict of our values per packet."""
    out = []
    for b in Pipeline([str(path)], batch_size=4096):
        out += _rows(b)
    return out


def ours_plain_pcap(path: Path) -> list[dict[str, str]]:
    """The decoder alone over a classic pcap read here (for captures whose
    link type the source refuses, so the decoder is still checked)."""
    data = path.read_bytes()
    if data[:4] not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        return []
    e = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    lt = struct.unpack_from(e + "I", data, 20)[0] & 0xFFFF
    recs, pos = [], 24
    while pos + 16 <= len(data):
        _s, _f, cl, wl = struct.unpack_from(e + "IIII", data, pos)
        if pos + 16 + cl > len(data):
            break
        recs.append((pos + 16, cl, wl))
        pos += 16 + cl
    b = PacketBatch(max(1, len(recs)))
    b.buf = np.frombuffer(data, dtype=np.uint8)
    b.n = len(recs)
    for i, (o, cl, wl) in enumerate(recs):
        b.off[i], b.caplen[i], b.wirelen[i], b.linktype[i] = o, cl, wl, lt
    decode(b, new_counters())
    return _rows(b)


# ---- the comparison ------------------------------------------------------------

def differences(path: Path) -> list[tuple[str, str, str, str, str]]:
    """(capture, packet number, field, ours, tshark's) for every difference."""
    cap = path.name
    want = read_golden(cap)
    diffs = []
    try:
        got = ours(path)
    except CaptureError:
        diffs.append((cap, "-", "open", "refused", "read"))
        got = ours_plain_pcap(path)
    if len(got) != len(want):
        diffs.append((cap, "-", "count", str(len(got)), str(len(want))))
    for num, (g, row) in enumerate(zip(got, want), 1):
        e = expected(row)
        for f in FIELDS:
            a, t = g.get(f, ABSENT), e.get(f, ABSENT)
            if t is not None and a != t:
                diffs.append((cap, str(num), f, a, t))
    return diffs


def read_known() -> tuple[dict[tuple[str, ...], str], dict[str, str]]:
    """KNOWN_DIFFERENCES.txt -> ({(capture, packet, field, ours, tshark's): reason}, {reason: text})."""
    known, reasons = {}, {}
    for n, line in enumerate(KNOWN.read_text().splitlines(), 1):
        if line.startswith("# reason "):
            tag, _, text = line[len("# reason "):].partition(": ")
            reasons[tag] = text
        elif line and not line.startswith("#"):
            cols = line.split("\t")
            assert len(cols) == 6, f"KNOWN_DIFFERENCES.txt:{n}: 6 tab-separated columns expected"
            known[tuple(cols[:5])] = cols[5]
    return known, reasons


KNOWN_ROWS, REASONS = read_known()


def test_every_capture_has_a_golden_file():
    assert len(CAPTURES) > 400
    golden = {p.name[:-len(".tsv.gz")] for p in GOLDEN.glob("*.tsv.gz")}
    assert golden == {p.name for p in CAPTURES}


def test_known_differences_are_well_formed():
    names = {p.name for p in CAPTURES}
    for row, reason in KNOWN_ROWS.items():
        assert row[0] in names, f"{row}: no such capture"
        assert row[2] in FIELDS + ("count", "open"), f"{row}: no such field"
        assert reason in REASONS, f"{row}: reason {reason!r} has no '# reason {reason}: ...' line"
    assert set(REASONS) == set(KNOWN_ROWS.values()), "a reason no row uses: remove it"


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_decode_matches_tshark(path):
    got = set(differences(path))
    known = {k for k in KNOWN_ROWS if k[0] == path.name}
    new = sorted(got - known, key=lambda d: (int(d[1]) if d[1].isdigit() else 0, d[2]))
    fixed = sorted(known - got)
    msg = []
    if new:
        msg.append(f"{len(new)} new difference(s) from tshark (capture, packet, field, ours, tshark's):")
        msg += ["  " + "  ".join(d) for d in new[:40]]
    if fixed:
        msg.append(f"{len(fixed)} listed difference(s) no longer happen: remove them from {KNOWN.name}:")
        msg += ["  " + "  ".join(d) for d in fixed]
    assert not msg, "\n".join(msg)


if __name__ == "__main__":
    sel = set(sys.argv[1:])
    for p in CAPTURES:
        if not sel or p.name in sel:
            for d in differences(p):
                print("\t".join(d + (KNOWN_ROWS.get(d, "?"),)))
