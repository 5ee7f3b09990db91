"""decode -- fill the header columns of a batch.

NAME
    ulnet.decode -- one compiled pass over a PacketBatch: link layer, VLAN,
    MPLS, PPPoE, IPv4/IPv6 (options, extension headers, fragments), tunnels,
    TCP/UDP/SCTP/ICMP/ICMPv6.

SYNOPSIS
    from ulnet.decode import decode
    decode(batch, counters)          # fills batch.hdr and batch.addr

DESCRIPTION
    Link types: Ethernet (1), raw IP (101, and 12/14 as some systems write
    it), raw IPv4 (228), raw IPv6 (229), Linux cooked SLL (113) and SLL2
    (276), BSD null (0, host byte order guessed from the value), OpenBSD
    loop (108), PPP (9, and 50 PPP in HDLC framing; address/control and
    protocol field compression allowed; IPv4, IPv6, MPLS) and Cisco HDLC
    (104, an ethertype after address and control).

    Above the link layer: 802.1Q, 802.1ad and old QinQ (0x9100) tags up to 8
    deep (the outer two ids are kept), MPLS label stacks up to 16 labels
    (payload guessed from the IP version nibble), PPPoE session frames
    carrying IPv4/IPv6.

    Tunnels are decapsulated to the innermost IP header, up to 4 deep:
    IP-in-IP (4-in-4, 6-in-4, 4-in-6, 6-in-6), GRE (version 0 with
    checksum/key/sequence, IPv4/IPv6/transparent Ethernet payloads; version 1
    PPTP enhanced GRE carrying PPP with IP), VXLAN (UDP destination port
    4789, I flag set), GTP-U (UDP port 2152, GTPv1 T-PDU, optional fields and
    extension header chain) and Teredo (UDP port 3544, optional
    authentication and origin indication, accepted only when the inner IPv6
    payload length matches). The columns describe the innermost header; the
    outermost IP header stays at ``outer_l3_off`` / ``outer_ip_version`` and
    ``tunnel`` / ``tunnel_depth`` tell what was removed.

    Addresses go to ``batch.addr`` as two uint64 halves per endpoint, IPv4
    mapped into ::ffff:0:0/96.

ERRORS
    Never an exception and never a read past the captured length. A header
    that does not fit, or is inconsistent, sets the packet's ``error`` column
    to the first reason (a counter index; see ``ulnet.counters``) and bumps
    that counter; the columns decoded before it stay valid. An IPv4 header
    fills its columns only when it is sane (version 4, header length at
    least 20 and captured, total length not below the header length): a
    bogus one leaves ``ip_version`` 0, as tshark stops there too. An IPv4
    total length of 0 (TCP segmentation offload captures) is taken as the
    rest of the frame on the wire, as tshark does. A TCP header cut short
    after its window field (a tiny first fragment) keeps its header length
    and, when that is at least 20, its flags.

    tests/test_decode_tshark.py compares these columns with tshark over the
    whole corpus; tests/golden/tshark/KNOWN_DIFFERENCES.txt lists where and
    why ulnet reads a packet differently.

CAVEATS
    Non-first fragments carry no transport columns (no reassembly here). A
    tunnel inside a fragment is not decapsulated. VLAN tags inside a VXLAN
    or GRE Ethernet payload are walked but not recorded in the VLAN columns.
"""

from __future__ import annotations

import numpy as np

from ulnet.batch import PacketBatch
from ulnet.decode._kernels import decode_batch as _decode_batch


def decode(batch: PacketBatch, counters: np.ndarray) -> None:
    """Decode the ``batch.n`` packets of ``batch`` in place."""
    _decode_batch(batch.buf, batch.off, batch.caplen, batch.wirelen, batch.linktype, batch.n,
                  batch.hdr, batch.addr, counters)
