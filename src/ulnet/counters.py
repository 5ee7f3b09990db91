"""Counters: one int64 array that compiled kernels bump by index.

What lives here: the table of every counter ulnet keeps, its dotted name and
what happens to the packet it counts. Kernels import the integer constants
(plain module-level ints, which numba freezes at compile time) and do
``counters[C_X] += 1``; Python reads the array and prints the names.

Rule: a counter that names an error says what happens to the packet. Decode
errors never drop a packet by themselves: the packet goes on with the columns
that could be filled and ``error`` set to the first reason found.

Adding a counter: append a row to ``_TABLE`` (never reorder: error codes in
the decode column are these indices) and use its constant.
"""

from __future__ import annotations

import numpy as np

# (constant name, dotted name, meaning)
_TABLE = (
    ("C_NONE", "none", "no error (index 0 is never bumped)"),
    # --- sources -------------------------------------------------------
    ("C_SRC_PACKETS", "source.packets", "records read from inputs"),
    ("C_SRC_BYTES", "source.bytes", "captured bytes read from inputs"),
    ("C_SRC_TRUNCATED", "source.truncated", "input ended inside a record: the partial record is skipped"),
    ("C_SRC_BAD_RECORD", "source.bad_record", "record header is corrupt (length out of range): reading of that input stops"),
    ("C_SRC_CAPLEN_GT_WIRELEN", "source.caplen_gt_wirelen", "captured length above the wire length: wire length raised to it"),
    ("C_SRC_PCAPNG_SKIPPED_BLOCK", "source.pcapng.skipped_block", "pcapng block of a type ulnet does not read (NRB, ISB, custom, ...): skipped"),
    ("C_SRC_PCAPNG_BAD_IFACE", "source.pcapng.bad_interface", "packet names an interface with no IDB: packet skipped"),
    ("C_SRC_PCAPNG_TOO_MANY_IFACES", "source.pcapng.too_many_interfaces", "more interfaces than ulnet keeps: their packets are skipped"),
    ("C_SRC_ERF_UNSUPPORTED", "source.erf.unsupported_type", "ERF record of a type other than Ethernet/IPv4/IPv6: skipped"),
    ("C_SRC_ERF_LOSS", "source.erf.loss", "ERF loss counter field (packets the capture card lost)"),
    # --- decode: link layer ---------------------------------------------
    ("C_DEC_LINK_UNKNOWN", "decode.link.unknown_linktype", "link type ulnet cannot decode: packet not decoded"),
    ("C_DEC_ETH_TRUNCATED", "decode.eth.truncated", "Ethernet header cut short: not decoded further"),
    ("C_DEC_VLAN_TRUNCATED", "decode.vlan.truncated", "802.1Q tag cut short: not decoded further"),
    ("C_DEC_VLAN_TOO_DEEP", "decode.vlan.too_deep", "more than 8 stacked VLAN tags: not decoded further"),
    ("C_DEC_MPLS_TRUNCATED", "decode.mpls.truncated", "MPLS label stack cut short or too deep: not decoded further"),
    ("C_DEC_MPLS_UNKNOWN", "decode.mpls.unknown_payload", "MPLS payload is neither IPv4 nor IPv6: not decoded further"),
    ("C_DEC_PPPOE_TRUNCATED", "decode.pppoe.truncated", "PPPoE session header cut short: not decoded further"),
    ("C_DEC_SLL_TRUNCATED", "decode.sll.truncated", "Linux cooked header cut short: not decoded further"),
    ("C_DEC_NULL_TRUNCATED", "decode.null.truncated", "BSD loopback header cut short: not decoded further"),
    ("C_DEC_NON_IP", "decode.non_ip", "frame carries no IP (ARP, LLDP, STP, ...): counted, no IP columns"),
    # --- decode: IP -----------------------------------------------------
    ("C_DEC_IPV4", "decode.ipv4", "IPv4 headers decoded (tunnels count each)"),
    ("C_DEC_IPV6", "decode.ipv6", "IPv6 headers decoded (tunnels count each)"),
    ("C_DEC_IPV4_TRUNCATED", "decode.ipv4.truncated", "IPv4 header (with options) cut short: no IP columns"),
    ("C_DEC_IPV4_BAD_VERSION", "decode.ipv4.bad_version", "IP version nibble is not 4 where IPv4 was announced: no IP columns"),
    ("C_DEC_IPV4_BAD_IHL", "decode.ipv4.bad_ihl", "IPv4 header length below 20 bytes: no IP columns"),
    ("C_DEC_IPV4_BAD_LEN", "decode.ipv4.bad_total_length", "IPv4 total length below the header length: no IP columns"),
    ("C_DEC_IPV6_TRUNCATED", "decode.ipv6.truncated", "IPv6 header cut short: no L4 columns"),
    ("C_DEC_IPV6_BAD_VERSION", "decode.ipv6.bad_version", "IP version nibble is not 6 where IPv6 was announced: no IP columns"),
    ("C_DEC_IPV6_EXT_TRUNCATED", "decode.ipv6.ext_truncated", "IPv6 extension header cut short: no L4 columns"),
    ("C_DEC_IPV6_EXT_TOO_MANY", "decode.ipv6.too_many_ext", "more than 16 IPv6 extension headers: no L4 columns"),
    ("C_DEC_FRAGMENT", "decode.ip.fragment", "IP fragments seen (non-first fragments carry no L4 columns)"),
    # --- decode: transport ------------------------------------------------
    ("C_DEC_TCP", "decode.tcp", "TCP headers decoded"),
    ("C_DEC_UDP", "decode.udp", "UDP headers decoded"),
    ("C_DEC_SCTP", "decode.sctp", "SCTP headers decoded"),
    ("C_DEC_ICMP", "decode.icmp", "ICMP headers decoded"),
    ("C_DEC_ICMPV6", "decode.icmpv6", "ICMPv6 headers decoded"),
    ("C_DEC_TCP_TRUNCATED", "decode.tcp.truncated", "TCP header cut short: ports, header length and flags kept when present, no payload"),
    ("C_DEC_TCP_BAD_HLEN", "decode.tcp.bad_header_length", "TCP data offset below 5 words: no payload"),
    ("C_DEC_UDP_TRUNCATED", "decode.udp.truncated", "UDP header cut short: ports kept when present, no payload"),
    ("C_DEC_UDP_BAD_LEN", "decode.udp.bad_length", "UDP length below 8: payload taken from the IP length"),
    ("C_DEC_SCTP_TRUNCATED", "decode.sctp.truncated", "SCTP common header cut short: ports kept when present"),
    ("C_DEC_ICMP_TRUNCATED", "decode.icmp.truncated", "ICMP header cut short: no type/code"),
    ("C_DEC_ICMPV6_TRUNCATED", "decode.icmpv6.truncated", "ICMPv6 header cut short: no type/code"),
    # --- decode: tunnels ------------------------------------------------
    ("C_DEC_TUN_IPIP", "decode.tunnel.ip_in_ip", "IP-in-IP (4 combinations) decapsulated"),
    ("C_DEC_TUN_GRE", "decode.tunnel.gre", "GRE decapsulated"),
    ("C_DEC_TUN_VXLAN", "decode.tunnel.vxlan", "VXLAN decapsulated"),
    ("C_DEC_TUN_GTPU", "decode.tunnel.gtpu", "GTP-U decapsulated"),
    ("C_DEC_TUN_TEREDO", "decode.tunnel.teredo", "Teredo decapsulated"),
    ("C_DEC_GRE_TRUNCATED", "decode.gre.truncated", "GRE header cut short: the GRE packet is the innermost layer"),
    ("C_DEC_GRE_UNKNOWN", "decode.gre.unknown_payload", "GRE payload ulnet does not decapsulate: GRE is the innermost layer"),
    ("C_DEC_VXLAN_TRUNCATED", "decode.vxlan.truncated", "VXLAN header or inner Ethernet cut short: the UDP packet is the innermost layer"),
    ("C_DEC_GTPU_TRUNCATED", "decode.gtpu.truncated", "GTP-U header cut short: the UDP packet is the innermost layer"),
    ("C_DEC_TUNNEL_TOO_DEEP", "decode.tunnel.too_deep", "more than 4 nested tunnels: the 4th inner header is kept"),
    # --- flow ------------------------------------------------------------
    ("C_FLOW_CREATED", "flow.created", "flows created"),
    ("C_FLOW_NOT_IP", "flow.not_ip", "packets without an IP header: counted, not tracked"),
    ("C_FLOW_EVICTED", "flow.table_full", "flow table full: the least recently seen flow was exported (reason evicted) to make room"),
    ("C_FLOW_FRAG_ORPHAN", "flow.fragment_orphan", "non-first IP fragment whose first fragment was not seen: tracked on a port-less flow"),
    ("C_FLOW_FRAG_JOINED", "flow.fragment_joined", "non-first IP fragment counted on the flow of its datagram"),
    ("C_FLOW_FRAG_SKIPPED", "flow.fragment_skipped", "non-first IP fragment not counted on any flow (fragments='first', as ndpiReader)"),
    # --- decode (added later) -------------------------------------------
    ("C_DEC_LINK_TRUNCATED", "decode.link.truncated", "PPP or Cisco HDLC link header cut short: not decoded further"),
    # --- inspect ---------------------------------------------------------
    ("C_INSPECT_PACKETS", "inspect.packets", "payload packets run through the matchers"),
    ("C_INSPECT_DECIDED", "inspect.decided", "flows whose application was decided (payload or IP protocol)"),
    ("C_INSPECT_META_FULL", "inspect.meta_full", "metadata pool full: a flow's server name / user agent was not kept"),
    ("C_INSPECT_QUIC_DECRYPTED", "inspect.quic.decrypted", "QUIC client Initial packets decrypted (RFC 9001) to read the ClientHello"),
    ("C_INSPECT_QUIC_FAILED", "inspect.quic.failed", "QUIC Initial packets that did not decrypt or parse: no server name from them"),
    # --- live I/O (AF_PACKET rings, TAP) ----------------------------------
    ("C_LIVE_KERNEL_PACKETS", "live.kernel.packets", "packets the kernel offered to the receive rings (PACKET_STATISTICS, drops included)"),
    ("C_LIVE_KERNEL_DROPS", "live.kernel.drops", "receive ring full: the kernel dropped the packet before ulnet saw it"),
    ("C_LIVE_FREEZE", "live.kernel.freeze", "TPACKET_V3 queue frozen (every block in user space): packets dropped by the kernel meanwhile"),
    ("C_LIVE_VLAN_REINSERTED", "live.vlan_reinserted", "VLAN tag stripped by the kernel put back into the frame in place (forwarded with it)"),
    ("C_LIVE_GSO_FRAMES", "live.gso_frames", "GSO/GRO frame above the MTU received whole with its virtio-net header: forwarded whole, the kernel segments it on output"),
    ("C_LIVE_TX_PACKETS", "live.tx.packets", "packets queued to a TX ring or written to a TAP"),
    ("C_LIVE_TX_BYTES", "live.tx.bytes", "bytes queued to a TX ring or written to a TAP"),
    ("C_LIVE_TX_RING_FULL", "live.tx.ring_full", "no free TX ring slot after waiting: packet dropped"),
    ("C_LIVE_TX_TOO_BIG", "live.tx.too_big", "frame larger than a TX ring slot: packet dropped"),
    ("C_LIVE_TX_SEND_FAILED", "live.tx.send_failed", "send() failed (interface down): queued slots go out when it is back, later packets may find the ring full"),
    ("C_LIVE_TX_WRONG_FORMAT", "live.tx.wrong_format", "the kernel refused a TX frame (TP_STATUS_WRONG_FORMAT): packet dropped"),
    ("C_LIVE_TAP_WRITE_FAILED", "live.tap.write_failed", "write to a TAP device failed (queue full or device down): packet dropped"),
    ("C_LIVE_POLICY_DROPPED", "live.policy.dropped", "packets the policy stage did not forward"),
    # --- filter (tcpdump expressions) -------------------------------------
    ("C_FILTER_REJECTED", "filter.rejected", "packet rejected by the filter expression: dropped before decode (kernel-side rejections on live sockets are not seen)"),
    # --- live output, appended ---------------------------------------------
    ("C_LIVE_TX_DIRECT", "live.tx.direct", "long (GSO) frames sent from where they were received on the TX interface's direct socket instead of copied into a slot (also in live.tx.packets)"),
)

NAMES: tuple[str, ...] = tuple(row[1] for row in _TABLE)
MEANINGS: tuple[str, ...] = tuple(row[2] for row in _TABLE)
N_COUNTERS = len(_TABLE)
INDEX: dict[str, int] = {name: i for i, name in enumerate(NAMES)}

# Written out so readers and numba see plain ints; checked against the table below.
C_NONE = 0
C_SRC_PACKETS = 1
C_SRC_BYTES = 2
C_SRC_TRUNCATED = 3
C_SRC_BAD_RECORD = 4
C_SRC_CAPLEN_GT_WIRELEN = 5
C_SRC_PCAPNG_SKIPPED_BLOCK = 6
C_SRC_PCAPNG_BAD_IFACE = 7
C_SRC_PCAPNG_TOO_MANY_IFACES = 8
C_SRC_ERF_UNSUPPORTED = 9
C_SRC_ERF_LOSS = 10
C_DEC_LINK_UNKNOWN = 11
C_DEC_ETH_TRUNCATED = 12
C_DEC_VLAN_TRUNCATED = 13
C_DEC_VLAN_TOO_DEEP = 14
C_DEC_MPLS_TRUNCATED = 15
C_DEC_MPLS_UNKNOWN = 16
C_DEC_PPPOE_TRUNCATED = 17
C_DEC_SLL_TRUNCATED = 18
C_DEC_NULL_TRUNCATED = 19
C_DEC_NON_IP = 20
C_DEC_IPV4 = 21
C_DEC_IPV6 = 22
C_DEC_IPV4_TRUNCATED = 23
C_DEC_IPV4_BAD_VERSION = 24
C_DEC_IPV4_BAD_IHL = 25
C_DEC_IPV4_BAD_LEN = 26
C_DEC_IPV6_TRUNCATED = 27
C_DEC_IPV6_BAD_VERSION = 28
C_DEC_IPV6_EXT_TRUNCATED = 29
C_DEC_IPV6_EXT_TOO_MANY = 30
C_DEC_FRAGMENT = 31
C_DEC_TCP = 32
C_DEC_UDP = 33
C_DEC_SCTP = 34
C_DEC_ICMP = 35
C_DEC_ICMPV6 = 36
C_DEC_TCP_TRUNCATED = 37
C_DEC_TCP_BAD_HLEN = 38
C_DEC_UDP_TRUNCATED = 39
C_DEC_UDP_BAD_LEN = 40
C_DEC_SCTP_TRUNCATED = 41
C_DEC_ICMP_TRUNCATED = 42
C_DEC_ICMPV6_TRUNCATED = 43
C_DEC_TUN_IPIP = 44
C_DEC_TUN_GRE = 45
C_DEC_TUN_VXLAN = 46
C_DEC_TUN_GTPU = 47
C_DEC_TUN_TEREDO = 48
C_DEC_GRE_TRUNCATED = 49
C_DEC_GRE_UNKNOWN = 50
C_DEC_VXLAN_TRUNCATED = 51
C_DEC_GTPU_TRUNCATED = 52
C_DEC_TUNNEL_TOO_DEEP = 53
C_FLOW_CREATED = 54
C_FLOW_NOT_IP = 55
C_FLOW_EVICTED = 56
C_FLOW_FRAG_ORPHAN = 57
C_FLOW_FRAG_JOINED = 58
C_FLOW_FRAG_SKIPPED = 59
C_DEC_LINK_TRUNCATED = 60
C_INSPECT_PACKETS = 61
C_INSPECT_DECIDED = 62
C_INSPECT_META_FULL = 63
C_INSPECT_QUIC_DECRYPTED = 64
C_INSPECT_QUIC_FAILED = 65
C_LIVE_KERNEL_PACKETS = 66
C_LIVE_KERNEL_DROPS = 67
C_LIVE_FREEZE = 68
C_LIVE_VLAN_REINSERTED = 69
C_LIVE_GSO_FRAMES = 70
C_LIVE_TX_PACKETS = 71
C_LIVE_TX_BYTES = 72
C_LIVE_TX_RING_FULL = 73
C_LIVE_TX_TOO_BIG = 74
C_LIVE_TX_SEND_FAILED = 75
C_LIVE_TX_WRONG_FORMAT = 76
C_LIVE_TAP_WRITE_FAILED = 77
C_LIVE_POLICY_DROPPED = 78
C_FILTER_REJECTED = 79
C_LIVE_TX_DIRECT = 80

for _i, _row in enumerate(_TABLE):
    assert globals()[_row[0]] == _i, _row

# Error codes that set a packet's ``error`` column (the rest are informational).
ERROR_CODES = frozenset(
    i for i, name in enumerate(NAMES)
    if any(name.endswith(s) for s in ("truncated", "bad_version", "bad_ihl", "bad_total_length",
                                      "too_many_ext", "bad_header_length", "bad_length",
                                      "unknown_linktype", "too_deep", "unknown_payload"))
)


def new_counters() -> np.ndarray:
    """A zeroed counter array (int64, one slot per row of the table)."""
    return np.zeros(N_COUNTERS, dtype=np.int64)


def as_dict(counters: np.ndarray, nonzero: bool = True) -> dict[str, int]:
    """Counter array -> {dotted name: value}, in table order."""
    return {NAMES[i]: int(v) for i, v in enumerate(counters) if i and (v or not nonzero)}


def error_name(code: int) -> str | None:
    """Decode error code (the ``error`` column) -> dotted reason, or None."""
    return NAMES[code] if code else None
