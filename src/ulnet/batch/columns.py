"""The decode columns of a PacketBatch: one table, indices derived from it.

Each row: (constant, name, meaning). ``hdr[i, H_X]`` is field X of packet i.
Offsets are relative to the start of the frame (``off[i]``); -1 means absent.
Kernels import the ``H_*`` constants (module-level ints, frozen by numba).
"""

from __future__ import annotations

_TABLE = (
    ("H_ERROR", "error", "first decode error code (ulnet.counters), 0 if none"),
    ("H_ETHERTYPE", "ethertype", "ethertype of the (innermost) L2 payload, -1 if none"),
    ("H_VLAN", "vlan_id", "outermost 802.1Q VLAN id, -1 if untagged"),
    ("H_VLAN2", "vlan_id_inner", "second (QinQ inner) VLAN id, -1 if none"),
    ("H_VLAN_COUNT", "vlan_count", "number of VLAN tags"),
    ("H_MPLS_COUNT", "mpls_count", "number of MPLS labels"),
    ("H_OUTER_L3", "outer_l3_off", "offset of the outermost IP header, -1 if none"),
    ("H_OUTER_VERSION", "outer_ip_version", "IP version of the outermost IP header, 0 if none"),
    ("H_TUNNEL", "tunnel", "innermost tunnel kind decapsulated (TUN_* codes), 0 if none"),
    ("H_TUNNEL_DEPTH", "tunnel_depth", "number of tunnels decapsulated"),
    ("H_L3", "l3_off", "offset of the innermost IP header, -1 if none"),
    ("H_IP_VERSION", "ip_version", "4, 6, or 0 when there is no IP header (or only a bogus one)"),
    ("H_IP_LEN", "ip_len", "IPv4 total length (rest of the frame on the wire when 0: TSO), or IPv6 payload length + 40, of the innermost IP header"),
    ("H_IP_HLEN", "ip_hlen", "innermost IP header length including IPv6 extension headers"),
    ("H_PROTO", "protocol", "IP protocol of the innermost header after extension headers, -1 if none"),
    ("H_TTL", "ttl", "TTL / hop limit of the innermost IP header"),
    ("H_FRAG", "frag", "bit 0: is a fragment, bit 1: more fragments, bit 2: don't fragment (IPv4)"),
    ("H_FRAG_OFF", "frag_offset", "fragment offset in bytes"),
    ("H_FRAG_ID", "frag_id", "IPv4 identification or IPv6 fragment identification"),
    ("H_L4", "l4_off", "offset of the transport header, -1 if none (and for non-first fragments)"),
    ("H_SPORT", "src_port", "TCP/UDP/SCTP source port, -1 if none"),
    ("H_DPORT", "dst_port", "TCP/UDP/SCTP destination port, -1 if none"),
    ("H_TCP_FLAGS", "tcp_flags", "TCP flags (low 9 bits incl. NS), -1 if not TCP, cut short before them or header length below 20"),
    ("H_TCP_HLEN", "tcp_hlen", "TCP header length in bytes, -1 if not TCP or cut short before it"),
    ("H_ICMP_TYPE", "icmp_type", "ICMP / ICMPv6 type, -1 if none"),
    ("H_ICMP_CODE", "icmp_code", "ICMP / ICMPv6 code, -1 if none"),
    ("H_PAYLOAD", "payload_off", "offset of the L4 payload, -1 if none"),
    ("H_PAYLOAD_LEN", "payload_len", "captured payload bytes (bounded by the IP length), 0 if none"),
    ("H_GRE_PROTO", "gre_proto", "GRE protocol type of the last GRE header seen, -1 if none"),
)

HDR_NAMES: tuple[str, ...] = tuple(r[1] for r in _TABLE)
HDR_MEANINGS: tuple[str, ...] = tuple(r[2] for r in _TABLE)
N_HDR = len(_TABLE)

H_ERROR = 0
H_ETHERTYPE = 1
H_VLAN = 2
H_VLAN2 = 3
H_VLAN_COUNT = 4
H_MPLS_COUNT = 5
H_OUTER_L3 = 6
H_OUTER_VERSION = 7
H_TUNNEL = 8
H_TUNNEL_DEPTH = 9
H_L3 = 10
H_IP_VERSION = 11
H_IP_LEN = 12
H_IP_HLEN = 13
H_PROTO = 14
H_TTL = 15
H_FRAG = 16
H_FRAG_OFF = 17
H_FRAG_ID = 18
H_L4 = 19
H_SPORT = 20
H_DPORT = 21
H_TCP_FLAGS = 22
H_TCP_HLEN = 23
H_ICMP_TYPE = 24
H_ICMP_CODE = 25
H_PAYLOAD = 26
H_PAYLOAD_LEN = 27
H_GRE_PROTO = 28

# The constants above are written out so readers and numba see plain ints;
# this check keeps them in step with the table.
for _i, _row in enumerate(_TABLE):
    assert globals()[_row[0]] == _i, _row

# Tunnel kinds (H_TUNNEL)
TUN_NONE, TUN_IPIP, TUN_GRE, TUN_VXLAN, TUN_GTPU, TUN_TEREDO = range(6)
TUNNEL_NAMES = ("none", "ip-in-ip", "gre", "vxlan", "gtp-u", "teredo")

# Fragment bits (H_FRAG)
FRAG_IS = 1
FRAG_MF = 2
FRAG_DF = 4
