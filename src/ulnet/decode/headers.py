"""Header layouts as tables; field offsets and header sizes derived from them.

Each header is a list of (field, numpy dtype) rows in wire order. ``numpy``
computes the offsets, so no offset is counted by hand. The decode kernel uses
the derived module constants (plain ints, frozen by numba at compile time).
Bit fields are described next to the header they live in.

The next-layer bindings (ethertype -> layer, IP protocol -> layer, UDP port
-> tunnel) are one aligned block at the end.
"""

from __future__ import annotations

import numpy as np


def _layout(rows):
    dt = np.dtype(rows)
    return {name: dt.fields[name][1] for name in dt.names}, dt.itemsize


ETH, ETH_LEN = _layout([("dst", "6u1"), ("src", "6u1"), ("type", ">u2")])
VLAN, VLAN_LEN = _layout([("tci", ">u2"), ("type", ">u2")])          # tci: pcp:3 dei:1 vid:12
MPLS_LEN = 4                                                          # label:20 tc:3 s:1 ttl:8
PPPOE, PPPOE_LEN = _layout([("vt", "u1"), ("code", "u1"), ("sid", ">u2"), ("len", ">u2"), ("ppp", ">u2")])
SLL, SLL_LEN = _layout([("pkttype", ">u2"), ("hatype", ">u2"), ("halen", ">u2"), ("addr", "8u1"), ("proto", ">u2")])
SLL2, SLL2_LEN = _layout([("proto", ">u2"), ("res", ">u2"), ("ifindex", ">u4"), ("hatype", ">u2"),
                          ("pkttype", "u1"), ("halen", "u1"), ("addr", "8u1")])
NULL_LEN = 4                                                          # address family, byte order varies
CHDLC, CHDLC_LEN = _layout([("addr", "u1"), ("ctrl", "u1"), ("proto", ">u2")])   # proto is an ethertype
PPP_ADDR_CTRL = 0xFF03                                                # optional (address/control field compression)
# PPP protocol: 2 bytes, or 1 byte when the first byte is odd (protocol field compression)

IPV4, IPV4_LEN = _layout([("vhl", "u1"), ("tos", "u1"), ("len", ">u2"), ("id", ">u2"), ("frag", ">u2"),
                          ("ttl", "u1"), ("proto", "u1"), ("sum", ">u2"), ("src", ">u4"), ("dst", ">u4")])
# vhl: version:4 ihl:4 (32-bit words); frag: rf:1 df:1 mf:1 offset:13 (8-byte units)
IPV6, IPV6_LEN = _layout([("vtcfl", ">u4"), ("plen", ">u2"), ("nxt", "u1"), ("hlim", "u1"),
                          ("src", "16u1"), ("dst", "16u1")])
IPV6_EXT, IPV6_EXT_MIN = _layout([("nxt", "u1"), ("len", "u1")])      # len in 8-byte units, not counting the first 8
IPV6_FRAG, IPV6_FRAG_LEN = _layout([("nxt", "u1"), ("res", "u1"), ("offm", ">u2"), ("id", ">u4")])
# offm: offset:13 (8-byte units) res:2 m:1
IPV6_AH_UNIT = 4                                                      # AH length is in 4-byte units, minus 2

TCP, TCP_MIN = _layout([("sport", ">u2"), ("dport", ">u2"), ("seq", ">u4"), ("ack", ">u4"),
                        ("off", "u1"), ("flags", "u1"), ("win", ">u2"), ("sum", ">u2"), ("urp", ">u2")])
# off: data offset:4 (32-bit words) res:3 ns:1
UDP, UDP_LEN = _layout([("sport", ">u2"), ("dport", ">u2"), ("len", ">u2"), ("sum", ">u2")])
SCTP, SCTP_LEN = _layout([("sport", ">u2"), ("dport", ">u2"), ("vtag", ">u4"), ("sum", ">u4")])
ICMP, ICMP_LEN = _layout([("type", "u1"), ("code", "u1"), ("sum", ">u2"), ("rest", ">u4")])
PORTS_LEN = 4                                                          # sport + dport, common to TCP/UDP/SCTP

GRE, GRE_MIN = _layout([("flags", ">u2"), ("proto", ">u2")])          # flags: c:1 r:1 k:1 s:1 ... a:1 ... ver:3
VXLAN, VXLAN_LEN = _layout([("flags", "u1"), ("res", "3u1"), ("vni", "3u1"), ("res2", "u1")])
GTPU, GTPU_LEN = _layout([("flags", "u1"), ("type", "u1"), ("len", ">u2"), ("teid", ">u4")])
# flags: version:3 pt:1 res:1 e:1 s:1 pn:1; e|s|pn add 4 bytes (seq, npdu, next ext type)
GTPU_OPT_LEN = 4
TEREDO_ORIGIN_LEN = 8                                                 # 0x0000 + port + address

# ---- next-layer bindings ----------------------------------------------------
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_VLAN = 0x8100      # 802.1Q
ETHERTYPE_QINQ = 0x88A8      # 802.1ad
ETHERTYPE_QINQ_OLD = 0x9100
ETHERTYPE_MPLS = 0x8847
ETHERTYPE_MPLS_MC = 0x8848
ETHERTYPE_PPPOE = 0x8864
ETHERTYPE_TEB = 0x6558       # transparent Ethernet bridging (inside GRE)
PPP_IPV4 = 0x0021
PPP_IPV6 = 0x0057
PPP_MPLS = 0x0281

IPPROTO_HOPOPTS = 0
IPPROTO_ICMP = 1
IPPROTO_IPIP = 4
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_IPV6 = 41
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_GRE = 47
IPPROTO_AH = 51
IPPROTO_ICMPV6 = 58
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60
IPPROTO_MOBILITY = 135
IPPROTO_SCTP = 132

UDP_PORT_VXLAN = 4789
UDP_PORT_GTPU = 2152
UDP_PORT_TEREDO = 3544

# pcap link types (LINKTYPE_*) the kernel reads
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_PPP = 9
LINKTYPE_RAW_OLD = (12, 14)  # raw IP as some systems write it
LINKTYPE_PPP_HDLC = 50
LINKTYPE_RAW = 101
LINKTYPE_CHDLC = 104
LINKTYPE_LOOP = 108
LINKTYPE_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_SLL2 = 276

# BSD loopback address families (the value is in the capturing host's order
# for LINKTYPE_NULL, network order for LINKTYPE_LOOP)
AF_INET = 2
AF_INET6_VALUES = (10, 24, 28, 30)   # Linux, NetBSD/OpenBSD, FreeBSD, macOS
