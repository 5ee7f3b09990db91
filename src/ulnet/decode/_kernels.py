"""The decode kernel (private; see ulnet.decode for the public stage).

One compiled loop over the batch fills the ``hdr`` and ``addr`` columns of
every packet. Every read is checked against the packet's captured end
(``off + caplen``) before it is made; a header that does not fit gets its
``*.truncated`` reason and decoding of that packet stops there.

Layer walk: link layer -> (VLAN | MPLS | PPPoE)* -> IP -> [tunnel -> IP]* ->
transport. The walk is a small state machine (``nxt``) rather than nested
calls, so tunnels of any combination reuse the same code.
"""

from __future__ import annotations

import numpy as np
from ulnet.jit import helper, njit

from ulnet.batch.columns import (
    N_HDR, H_ERROR, H_ETHERTYPE, H_VLAN, H_VLAN2, H_VLAN_COUNT, H_MPLS_COUNT, H_OUTER_L3,
    H_OUTER_VERSION, H_TUNNEL, H_TUNNEL_DEPTH, H_L3, H_IP_VERSION, H_IP_LEN, H_IP_HLEN, H_PROTO,
    H_TTL, H_FRAG, H_FRAG_OFF, H_FRAG_ID, H_L4, H_SPORT, H_DPORT, H_TCP_FLAGS, H_TCP_HLEN,
    H_ICMP_TYPE, H_ICMP_CODE, H_PAYLOAD, H_PAYLOAD_LEN, H_GRE_PROTO,
    TUN_IPIP, TUN_GRE, TUN_VXLAN, TUN_GTPU, TUN_TEREDO, FRAG_IS, FRAG_MF, FRAG_DF,
)
from ulnet.counters import (
    C_DEC_LINK_UNKNOWN, C_DEC_ETH_TRUNCATED, C_DEC_VLAN_TRUNCATED, C_DEC_VLAN_TOO_DEEP,
    C_DEC_MPLS_TRUNCATED, C_DEC_MPLS_UNKNOWN, C_DEC_PPPOE_TRUNCATED, C_DEC_SLL_TRUNCATED,
    C_DEC_NULL_TRUNCATED, C_DEC_NON_IP, C_DEC_IPV4, C_DEC_IPV6, C_DEC_IPV4_TRUNCATED,
    C_DEC_IPV4_BAD_VERSION, C_DEC_IPV4_BAD_IHL, C_DEC_IPV4_BAD_LEN, C_DEC_IPV6_TRUNCATED,
    C_DEC_IPV6_BAD_VERSION, C_DEC_IPV6_EXT_TRUNCATED, C_DEC_IPV6_EXT_TOO_MANY, C_DEC_FRAGMENT,
    C_DEC_TCP, C_DEC_UDP, C_DEC_SCTP, C_DEC_ICMP, C_DEC_ICMPV6, C_DEC_TCP_TRUNCATED,
    C_DEC_TCP_BAD_HLEN, C_DEC_UDP_TRUNCATED, C_DEC_UDP_BAD_LEN, C_DEC_SCTP_TRUNCATED,
    C_DEC_ICMP_TRUNCATED, C_DEC_ICMPV6_TRUNCATED, C_DEC_TUN_IPIP, C_DEC_TUN_GRE, C_DEC_TUN_VXLAN,
    C_DEC_TUN_GTPU, C_DEC_TUN_TEREDO, C_DEC_GRE_TRUNCATED, C_DEC_GRE_UNKNOWN,
    C_DEC_VXLAN_TRUNCATED, C_DEC_GTPU_TRUNCATED, C_DEC_TUNNEL_TOO_DEEP, C_DEC_LINK_TRUNCATED,
)
from ulnet.decode import headers as HD
from ulnet.prefetch import prefetch

PREFETCH_AHEAD = 8   # packets ahead of the one being decoded

# ---- derived offsets (plain ints for numba) ---------------------------------
ETH_TYPE = HD.ETH["type"]
ETH_LEN = HD.ETH_LEN
VLAN_LEN = HD.VLAN_LEN
VLAN_TYPE = HD.VLAN["type"]
PPPOE_PPP = HD.PPPOE["ppp"]
PPPOE_LEN = HD.PPPOE_LEN
SLL_PROTO = HD.SLL["proto"]
SLL_LEN = HD.SLL_LEN
SLL2_PROTO = HD.SLL2["proto"]
SLL2_LEN = HD.SLL2_LEN
NULL_LEN = HD.NULL_LEN
CHDLC_PROTO = HD.CHDLC["proto"]
CHDLC_LEN = HD.CHDLC_LEN
PPP_ADDR_CTRL = HD.PPP_ADDR_CTRL
IP4_LEN = HD.IPV4["len"]
IP4_ID = HD.IPV4["id"]
IP4_FRAG = HD.IPV4["frag"]
IP4_TTL = HD.IPV4["ttl"]
IP4_PROTO = HD.IPV4["proto"]
IP4_SRC = HD.IPV4["src"]
IP4_DST = HD.IPV4["dst"]
IP4_MIN = HD.IPV4_LEN
IP6_PLEN = HD.IPV6["plen"]
IP6_NXT = HD.IPV6["nxt"]
IP6_HLIM = HD.IPV6["hlim"]
IP6_SRC = HD.IPV6["src"]
IP6_DST = HD.IPV6["dst"]
IP6_HDR = HD.IPV6_LEN
IP6F_OFFM = HD.IPV6_FRAG["offm"]
IP6F_ID = HD.IPV6_FRAG["id"]
IP6F_LEN = HD.IPV6_FRAG_LEN
TCP_OFF = HD.TCP["off"]
TCP_FLAGS = HD.TCP["flags"]
TCP_MIN = HD.TCP_MIN
TCP_WIN_END = HD.TCP["win"] + 2       # fixed header up to and including the window
UDP_ULEN = HD.UDP["len"]
UDP_LEN = HD.UDP_LEN
SCTP_LEN = HD.SCTP_LEN
ICMP_LEN = HD.ICMP_LEN
PORTS_LEN = HD.PORTS_LEN
GRE_PROTO = HD.GRE["proto"]
GRE_MIN = HD.GRE_MIN
VXLAN_LEN = HD.VXLAN_LEN
GTPU_TYPE = HD.GTPU["type"]
GTPU_LEN = HD.GTPU_LEN
GTPU_OPT_LEN = HD.GTPU_OPT_LEN

ET_IPV4 = HD.ETHERTYPE_IPV4
ET_IPV6 = HD.ETHERTYPE_IPV6
ET_VLAN = HD.ETHERTYPE_VLAN
ET_QINQ = HD.ETHERTYPE_QINQ
ET_QINQ_OLD = HD.ETHERTYPE_QINQ_OLD
ET_MPLS = HD.ETHERTYPE_MPLS
ET_MPLS_MC = HD.ETHERTYPE_MPLS_MC
ET_PPPOE = HD.ETHERTYPE_PPPOE
ET_TEB = HD.ETHERTYPE_TEB
PPP_IPV4 = HD.PPP_IPV4
PPP_IPV6 = HD.PPP_IPV6
PPP_MPLS = HD.PPP_MPLS
AF_INET = HD.AF_INET
AF6_LINUX, AF6_BSD, AF6_FREEBSD, AF6_MACOS = HD.AF_INET6_VALUES

LT_NULL = HD.LINKTYPE_NULL
LT_ETHERNET = HD.LINKTYPE_ETHERNET
LT_PPP = HD.LINKTYPE_PPP
LT_RAW_OLD_A, LT_RAW_OLD_B = HD.LINKTYPE_RAW_OLD
LT_PPP_HDLC = HD.LINKTYPE_PPP_HDLC
LT_RAW = HD.LINKTYPE_RAW
LT_CHDLC = HD.LINKTYPE_CHDLC
LT_LOOP = HD.LINKTYPE_LOOP
LT_SLL = HD.LINKTYPE_SLL
LT_IPV4 = HD.LINKTYPE_IPV4
LT_IPV6 = HD.LINKTYPE_IPV6
LT_SLL2 = HD.LINKTYPE_SLL2

P_HOPOPTS = HD.IPPROTO_HOPOPTS
P_ICMP = HD.IPPROTO_ICMP
P_IPIP = HD.IPPROTO_IPIP
P_TCP = HD.IPPROTO_TCP
P_UDP = HD.IPPROTO_UDP
P_IPV6 = HD.IPPROTO_IPV6
P_ROUTING = HD.IPPROTO_ROUTING
P_FRAGMENT = HD.IPPROTO_FRAGMENT
P_GRE = HD.IPPROTO_GRE
P_AH = HD.IPPROTO_AH
P_ICMPV6 = HD.IPPROTO_ICMPV6
P_DSTOPTS = HD.IPPROTO_DSTOPTS
P_MOBILITY = HD.IPPROTO_MOBILITY
P_SCTP = HD.IPPROTO_SCTP
PORT_VXLAN = HD.UDP_PORT_VXLAN
PORT_GTPU = HD.UDP_PORT_GTPU
PORT_TEREDO = HD.UDP_PORT_TEREDO

MAX_VLAN = 8
MAX_MPLS = 16
MAX_EXT = 16
MAX_TUNNEL = 4

# layer states of the walk
L_DONE, L_ETH, L_ETYPE, L_IP, L_IP4, L_IP6, L_TUN = 0, 1, 2, 3, 4, 5, 6

# A packet's columns before decoding: -1 (none) but for the counts, versions,
# flags and lengths that start at 0. Each IP header (a tunnel's inner one
# too) resets the fragment, transport and payload columns, a contiguous block.
# One loop over a constant row instead of a store per column keeps the kernel's
# IR (and its cold compile) smaller; LLVM folds the loads.
HDR_INIT = np.full(N_HDR, -1, np.int64)
HDR_INIT[[H_ERROR, H_VLAN_COUNT, H_MPLS_COUNT, H_OUTER_VERSION, H_TUNNEL, H_TUNNEL_DEPTH,
          H_IP_VERSION, H_FRAG, H_FRAG_OFF, H_PAYLOAD_LEN]] = 0
IP_RESET_LO, IP_RESET_HI = H_FRAG, H_PAYLOAD_LEN + 1
assert set(range(IP_RESET_LO, IP_RESET_HI)) == {
    H_FRAG, H_FRAG_OFF, H_FRAG_ID, H_L4, H_SPORT, H_DPORT, H_TCP_FLAGS, H_TCP_HLEN,
    H_ICMP_TYPE, H_ICMP_CODE, H_PAYLOAD, H_PAYLOAD_LEN}

IPV4_MAPPED_HI = np.uint64(0)
IPV4_MAPPED_LO = np.uint64(0x0000FFFF00000000)


# Small helpers are separate (not numba-inlined) functions: numba compiles each
# once and LLVM inlines it into the kernel, while inline="always" re-ran the
# untyped pipeline and split the kernel's blocks at every call site (about a
# second of the cold compile). The np.int64 casts keep NUMBA_DISABLE_JIT runs
# (tests/test_hostile.py) free of uint8 overflow.
@helper
def _be16(buf, p):
    return (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])


@helper
def _be32(buf, p):
    return ((np.int64(buf[p]) << 24) | (np.int64(buf[p + 1]) << 16)
            | (np.int64(buf[p + 2]) << 8) | np.int64(buf[p + 3]))


@helper
def _be64(buf, p):
    v = np.uint64(0)
    for k in range(8):
        v = (v << np.uint64(8)) | np.uint64(buf[p + k])
    return v


@njit(cache=True)
def decode_batch(buf, off, caplen, wirelen, linktype, n, hdr, addr, counters):
    """Decode packets 0..n-1. One flat loop: per-packet helper calls that take
    arrays cost numba reference counting on every call (about 50 ns a packet),
    so the packet body lives here and leaves a layer with ``break``."""
    for i in range(n):
        if i + PREFETCH_AHEAD < n:
            # the walker streamed these lines in, but a 4096-packet batch
            # (~1.4 MB) has pushed its first packets out of L2 by now
            prefetch(buf, off[i + PREFETCH_AHEAD])
        p = off[i]
        end = p + np.int64(caplen[i])
        wend = p + np.int64(wirelen[i])
        lt = np.int64(linktype[i])
        for c in range(N_HDR):
            hdr[i, c] = HDR_INIT[c]
        for k in range(4):
            addr[i, k] = 0
        err = 0
        q = p
        et = -1
        nxt = L_DONE
        tk = 0        # tunnel being entered (L_TUN): kind, counter, layer inside
        tc = 0
        tn = L_DONE
        # ---- link layer ---------------------------------------------------------
        while True:   # one pass; break leaves the link layer
            if lt == LT_ETHERNET:
                nxt = L_ETH
            elif lt == LT_RAW or lt == LT_RAW_OLD_A or lt == LT_RAW_OLD_B:
                nxt = L_IP
            elif lt == LT_IPV4:
                nxt = L_IP4
            elif lt == LT_IPV6:
                nxt = L_IP6
            elif lt == LT_SLL:
                if end - q < SLL_LEN:
                    err = C_DEC_SLL_TRUNCATED
                    break
                et = _be16(buf, q + SLL_PROTO)
                q += SLL_LEN
                nxt = L_ETYPE
            elif lt == LT_SLL2:
                if end - q < SLL2_LEN:
                    err = C_DEC_SLL_TRUNCATED
                    break
                et = _be16(buf, q + SLL2_PROTO)
                q += SLL2_LEN
                nxt = L_ETYPE
            elif lt == LT_NULL or lt == LT_LOOP:
                if end - q < NULL_LEN:
                    err = C_DEC_NULL_TRUNCATED
                    break
                if lt == LT_LOOP or (buf[q] == 0 and buf[q + 1] == 0):
                    fam = _be32(buf, q)
                else:
                    fam = np.int64(buf[q]) | (np.int64(buf[q + 1]) << 8)
                q += NULL_LEN
                if fam == AF_INET:
                    nxt = L_IP4
                elif fam == AF6_LINUX or fam == AF6_BSD or fam == AF6_FREEBSD or fam == AF6_MACOS:
                    nxt = L_IP6
                else:
                    counters[C_DEC_NON_IP] += 1
                    break
            elif lt == LT_CHDLC:
                if end - q < CHDLC_LEN:
                    err = C_DEC_LINK_TRUNCATED
                    break
                et = _be16(buf, q + CHDLC_PROTO)
                q += CHDLC_LEN
                nxt = L_ETYPE
            elif lt == LT_PPP or lt == LT_PPP_HDLC:
                if end - q >= 2 and _be16(buf, q) == PPP_ADDR_CTRL:
                    q += 2
                if end - q < 1 or ((buf[q] & 1) == 0 and end - q < 2):
                    err = C_DEC_LINK_TRUNCATED
                    break
                if buf[q] & 1:
                    ppp = np.int64(buf[q])      # protocol field compression
                    q += 1
                else:
                    ppp = _be16(buf, q)
                    q += 2
                if ppp == PPP_IPV4:
                    nxt = L_IP4
                elif ppp == PPP_IPV6:
                    nxt = L_IP6
                elif ppp == PPP_MPLS:
                    et = ET_MPLS
                    nxt = L_ETYPE
                else:
                    counters[C_DEC_NON_IP] += 1
                    break
            else:
                err = C_DEC_LINK_UNKNOWN
                break

            break
        ip_end = end
        while nxt != L_DONE and err == 0:
            # ---- Ethernet ------------------------------------------------------
            if nxt == L_ETH:
                if end - q < ETH_LEN:
                    if hdr[i, H_TUNNEL_DEPTH] > 0:
                        err = C_DEC_VXLAN_TRUNCATED
                    else:
                        err = C_DEC_ETH_TRUNCATED
                    break
                et = _be16(buf, q + ETH_TYPE)
                q += ETH_LEN
                nxt = L_ETYPE
            # ---- ethertype dispatch (VLAN, MPLS, PPPoE loop back here) --------
            elif nxt == L_ETYPE:
                hdr[i, H_ETHERTYPE] = et
                if et == ET_IPV4:
                    nxt = L_IP4
                elif et == ET_IPV6:
                    nxt = L_IP6
                elif et == ET_VLAN or et == ET_QINQ or et == ET_QINQ_OLD:
                    if end - q < VLAN_LEN:
                        err = C_DEC_VLAN_TRUNCATED
                        break
                    nv = hdr[i, H_VLAN_COUNT]
                    if nv >= MAX_VLAN:
                        err = C_DEC_VLAN_TOO_DEEP
                        break
                    if hdr[i, H_TUNNEL_DEPTH] == 0:
                        vid = _be16(buf, q) & 0x0FFF
                        if nv == 0:
                            hdr[i, H_VLAN] = vid
                        elif nv == 1:
                            hdr[i, H_VLAN2] = vid
                        hdr[i, H_VLAN_COUNT] = nv + 1
                    et = _be16(buf, q + VLAN_TYPE)
                    q += VLAN_LEN
                elif et == ET_MPLS or et == ET_MPLS_MC:
                    k = 0
                    while True:
                        if end - q < 4 or k >= MAX_MPLS:
                            err = C_DEC_MPLS_TRUNCATED
                            break
                        bos = buf[q + 2] & 1
                        q += 4
                        k += 1
                        if bos:
                            break
                    if err:
                        break
                    hdr[i, H_MPLS_COUNT] = k
                    if end - q < 1:
                        err = C_DEC_MPLS_TRUNCATED
                        break
                    v = buf[q] >> 4
                    if v == 4:
                        nxt = L_IP4
                    elif v == 6:
                        nxt = L_IP6
                    else:
                        err = C_DEC_MPLS_UNKNOWN
                        break
                elif et == ET_PPPOE:
                    if end - q < PPPOE_LEN:
                        err = C_DEC_PPPOE_TRUNCATED
                        break
                    ppp = _be16(buf, q + PPPOE_PPP)
                    q += PPPOE_LEN
                    if ppp == PPP_IPV4:
                        nxt = L_IP4
                    elif ppp == PPP_IPV6:
                        nxt = L_IP6
                    else:
                        counters[C_DEC_NON_IP] += 1
                        break
                else:
                    if hdr[i, H_TUNNEL_DEPTH] == 0:
                        counters[C_DEC_NON_IP] += 1
                    break
            # ---- IP of either version (raw IP link types, tunnels) -------------
            elif nxt == L_IP:
                if end - q < 1:
                    err = C_DEC_IPV4_TRUNCATED
                    break
                v = buf[q] >> 4
                if v == 6:
                    nxt = L_IP6
                elif v == 4:
                    nxt = L_IP4
                else:
                    err = C_DEC_IPV4_BAD_VERSION
                    break
            # ---- entering a tunnel: the site set tk/tc (kind, counter), tn (the
            # layer inside) and q/end; too deep stops here -------------------
            elif nxt == L_TUN:
                d = hdr[i, H_TUNNEL_DEPTH]
                if d >= MAX_TUNNEL:
                    err = C_DEC_TUNNEL_TOO_DEEP
                    break
                if tk == TUN_IPIP:
                    hdr[i, H_L4] = q - p
                hdr[i, H_TUNNEL_DEPTH] = d + 1
                hdr[i, H_TUNNEL] = tk
                counters[tc] += 1
                nxt = tn
            # ---- IP ------------------------------------------------------------
            else:
                if hdr[i, H_OUTER_L3] < 0:
                    hdr[i, H_OUTER_L3] = q - p
                    hdr[i, H_OUTER_VERSION] = 4 if nxt == L_IP4 else 6
                for c in range(IP_RESET_LO, IP_RESET_HI):   # fragment, transport, payload
                    hdr[i, c] = HDR_INIT[c]
                if nxt == L_IP4:
                    # The header's columns are written only once it is known to be
                    # sane (version, header length, total length), as tshark does.
                    if end - q < IP4_MIN:
                        err = C_DEC_IPV4_TRUNCATED
                        break
                    if (buf[q] >> 4) != 4:
                        err = C_DEC_IPV4_BAD_VERSION
                        break
                    ihl = np.int64(buf[q] & 0x0F) * 4
                    if ihl < IP4_MIN:
                        err = C_DEC_IPV4_BAD_IHL
                        break
                    if end - q < ihl:
                        err = C_DEC_IPV4_TRUNCATED
                        break
                    tot = _be16(buf, q + IP4_LEN)
                    if tot == 0:
                        # TSO: the kernel hands the capture a super-frame with
                        # total length 0; take the frame's length (as tshark does).
                        tot = wend - q
                    elif tot < ihl:
                        err = C_DEC_IPV4_BAD_LEN
                        break
                    counters[C_DEC_IPV4] += 1
                    hdr[i, H_L3] = q - p
                    hdr[i, H_IP_VERSION] = 4
                    hdr[i, H_IP_LEN] = tot
                    hdr[i, H_IP_HLEN] = ihl
                    proto = np.int64(buf[q + IP4_PROTO])
                    hdr[i, H_PROTO] = proto
                    hdr[i, H_TTL] = buf[q + IP4_TTL]
                    addr[i, 0] = IPV4_MAPPED_HI
                    addr[i, 1] = IPV4_MAPPED_LO | np.uint64(_be32(buf, q + IP4_SRC))
                    addr[i, 2] = IPV4_MAPPED_HI
                    addr[i, 3] = IPV4_MAPPED_LO | np.uint64(_be32(buf, q + IP4_DST))
                    ff = _be16(buf, q + IP4_FRAG)
                    foff = (ff & 0x1FFF) * 8
                    fl = 0
                    if ff & 0x4000:
                        fl |= FRAG_DF
                    if ff & 0x2000:
                        fl |= FRAG_MF | FRAG_IS
                    if foff:
                        fl |= FRAG_IS
                    hdr[i, H_FRAG] = fl
                    hdr[i, H_FRAG_OFF] = foff
                    hdr[i, H_FRAG_ID] = _be16(buf, q + IP4_ID)
                    if fl & FRAG_IS:
                        counters[C_DEC_FRAGMENT] += 1
                    ip_end = min(end, q + tot)
                    q += ihl
                else:
                    if end - q < IP6_HDR:
                        err = C_DEC_IPV6_TRUNCATED
                        break
                    if (buf[q] >> 4) != 6:
                        err = C_DEC_IPV6_BAD_VERSION
                        break
                    counters[C_DEC_IPV6] += 1
                    plen = _be16(buf, q + IP6_PLEN)
                    proto = np.int64(buf[q + IP6_NXT])
                    hdr[i, H_L3] = q - p
                    hdr[i, H_IP_VERSION] = 6
                    hdr[i, H_IP_LEN] = plen + IP6_HDR
                    hdr[i, H_TTL] = buf[q + IP6_HLIM]
                    addr[i, 0] = _be64(buf, q + IP6_SRC)
                    addr[i, 1] = _be64(buf, q + IP6_SRC + 8)
                    addr[i, 2] = _be64(buf, q + IP6_DST)
                    addr[i, 3] = _be64(buf, q + IP6_DST + 8)
                    ip_end = end if plen == 0 else min(end, q + IP6_HDR + plen)
                    l3 = q
                    q += IP6_HDR
                    next_is_frag = False
                    n_ext = 0
                    while (proto == P_HOPOPTS or proto == P_ROUTING or proto == P_DSTOPTS
                           or proto == P_FRAGMENT or proto == P_AH or proto == P_MOBILITY):
                        n_ext += 1
                        if n_ext > MAX_EXT:
                            hdr[i, H_PROTO] = proto
                            err = C_DEC_IPV6_EXT_TOO_MANY
                            break
                        if proto == P_FRAGMENT:
                            if ip_end - q < IP6F_LEN:
                                hdr[i, H_PROTO] = proto
                                err = C_DEC_IPV6_EXT_TRUNCATED
                                break
                            om = _be16(buf, q + IP6F_OFFM)
                            foff = om & 0xFFF8
                            fl = FRAG_IS
                            if om & 1:
                                fl |= FRAG_MF
                            hdr[i, H_FRAG] = fl
                            hdr[i, H_FRAG_OFF] = foff
                            hdr[i, H_FRAG_ID] = _be32(buf, q + IP6F_ID)
                            counters[C_DEC_FRAGMENT] += 1
                            proto = np.int64(buf[q])
                            q += IP6F_LEN
                            if foff:
                                next_is_frag = True
                                break
                        else:
                            if ip_end - q < 2:
                                hdr[i, H_PROTO] = proto
                                err = C_DEC_IPV6_EXT_TRUNCATED
                                break
                            if proto == P_AH:
                                elen = (np.int64(buf[q + 1]) + 2) * 4
                            else:
                                elen = (np.int64(buf[q + 1]) + 1) * 8
                            if ip_end - q < elen:
                                hdr[i, H_PROTO] = proto
                                err = C_DEC_IPV6_EXT_TRUNCATED
                                break
                            proto = np.int64(buf[q])
                            q += elen
                    if err:
                        break
                    hdr[i, H_PROTO] = proto
                    hdr[i, H_IP_HLEN] = q - l3
                    if next_is_frag:
                        break
                # ---- after the IP header: fragments, tunnels, transport -------
                if hdr[i, H_FRAG_OFF] > 0:
                    break  # non-first fragment: no transport header here
                nxt = L_DONE
                if proto == P_IPIP or proto == P_IPV6:
                    tk = TUN_IPIP
                    tc = C_DEC_TUN_IPIP
                    tn = L_IP4 if proto == P_IPIP else L_IP6
                    end = ip_end
                    wend = end
                    nxt = L_TUN
                    continue
                if proto == P_GRE:
                    hdr[i, H_L4] = q - p
                    if ip_end - q < GRE_MIN:
                        err = C_DEC_GRE_TRUNCATED
                        break
                    gf = _be16(buf, q)
                    gp = _be16(buf, q + GRE_PROTO)
                    hdr[i, H_GRE_PROTO] = gp
                    ver = gf & 7
                    glen = GRE_MIN
                    if ver == 0:
                        if gf & 0x8000:
                            glen += 4  # checksum + reserved
                        if gf & 0x2000:
                            glen += 4  # key
                        if gf & 0x1000:
                            glen += 4  # sequence
                    elif ver == 1:
                        glen += 4      # enhanced GRE (PPTP): payload length + call id
                        if gf & 0x1000:
                            glen += 4
                        if gf & 0x0080:
                            glen += 4  # acknowledgement
                    else:
                        err = C_DEC_GRE_UNKNOWN
                        break
                    if ip_end - q < glen:
                        err = C_DEC_GRE_TRUNCATED
                        break
                    hdr[i, H_PAYLOAD] = q + glen - p
                    hdr[i, H_PAYLOAD_LEN] = ip_end - q - glen
                    if ver == 1 and gp == 0x880B:
                        # PPP inside enhanced GRE: address/control may be present
                        r = q + glen
                        if ip_end - r >= 2 and buf[r] == 0xFF and buf[r + 1] == 0x03:
                            r += 2
                        if ip_end - r >= 2:
                            pp = _be16(buf, r)
                            if pp == PPP_IPV4 or pp == PPP_IPV6:
                                tk = TUN_GRE
                                tc = C_DEC_TUN_GRE
                                tn = L_IP4 if pp == PPP_IPV4 else L_IP6
                                q = r + 2
                                end = ip_end
                                wend = end
                                nxt = L_TUN
                                continue
                        break
                    if gp == ET_IPV4 or gp == ET_IPV6 or gp == ET_TEB:
                        tk = TUN_GRE
                        tc = C_DEC_TUN_GRE
                        q += glen
                        end = ip_end
                        wend = end
                        if gp == ET_TEB:
                            tn = L_ETH
                        else:
                            tn = L_IP4 if gp == ET_IPV4 else L_IP6
                        nxt = L_TUN
                        continue
                    break
                hdr[i, H_L4] = q - p
                if proto == P_TCP:
                    counters[C_DEC_TCP] += 1
                    if ip_end - q < PORTS_LEN:
                        err = C_DEC_TCP_TRUNCATED
                        break
                    hdr[i, H_SPORT] = _be16(buf, q)
                    hdr[i, H_DPORT] = _be16(buf, q + 2)
                    # Header length and flags are kept when the header is cut
                    # short after the window field (a tiny first fragment), as
                    # tshark does; flags only when the header length is sane.
                    if ip_end - q < TCP_WIN_END:
                        err = C_DEC_TCP_TRUNCATED
                        break
                    thl = np.int64(buf[q + TCP_OFF] >> 4) * 4
                    hdr[i, H_TCP_HLEN] = thl
                    if thl < TCP_MIN:
                        err = C_DEC_TCP_BAD_HLEN
                        break
                    hdr[i, H_TCP_FLAGS] = (np.int64(buf[q + TCP_OFF] & 1) << 8) | np.int64(buf[q + TCP_FLAGS])
                    if ip_end - q < thl:
                        err = C_DEC_TCP_TRUNCATED
                        break
                    hdr[i, H_PAYLOAD] = q + thl - p
                    hdr[i, H_PAYLOAD_LEN] = ip_end - q - thl
                elif proto == P_UDP:
                    counters[C_DEC_UDP] += 1
                    if ip_end - q < PORTS_LEN:
                        err = C_DEC_UDP_TRUNCATED
                        break
                    sp = _be16(buf, q)
                    dp = _be16(buf, q + 2)
                    hdr[i, H_SPORT] = sp
                    hdr[i, H_DPORT] = dp
                    if ip_end - q < UDP_LEN:
                        err = C_DEC_UDP_TRUNCATED
                        break
                    ulen = _be16(buf, q + UDP_ULEN)
                    pend = ip_end
                    if ulen < UDP_LEN:
                        if ulen != 0 or hdr[i, H_IP_VERSION] != 6:   # 0 = IPv6 jumbogram
                            # counted and recorded, but the walk goes on
                            counters[C_DEC_UDP_BAD_LEN] += 1
                            if hdr[i, H_ERROR] == 0:
                                hdr[i, H_ERROR] = C_DEC_UDP_BAD_LEN
                    else:
                        pend = min(ip_end, q + ulen)
                    r = q + UDP_LEN
                    hdr[i, H_PAYLOAD] = r - p
                    hdr[i, H_PAYLOAD_LEN] = pend - r
                    # ---- UDP tunnels ------------------------------------------
                    if dp == PORT_VXLAN:
                        if pend - r < VXLAN_LEN + ETH_LEN:
                            err = C_DEC_VXLAN_TRUNCATED
                            break
                        if (buf[r] & 0x08) == 0:
                            break  # VNI flag not set: not VXLAN
                        tk = TUN_VXLAN
                        tc = C_DEC_TUN_VXLAN
                        tn = L_ETH
                        q = r + VXLAN_LEN
                        end = pend
                        wend = end
                        nxt = L_TUN
                        continue
                    if dp == PORT_GTPU or sp == PORT_GTPU:
                        if pend - r < GTPU_LEN:
                            err = C_DEC_GTPU_TRUNCATED
                            break
                        gfl = buf[r]
                        if (gfl >> 5) != 1 or (gfl & 0x10) == 0 or buf[r + GTPU_TYPE] != 0xFF:
                            break  # not a GTPv1-U T-PDU (echo, error indication, ...)
                        g = r + GTPU_LEN
                        if gfl & 0x07:
                            if pend - g < GTPU_OPT_LEN:
                                err = C_DEC_GTPU_TRUNCATED
                                break
                            ext = np.int64(buf[g + 3])
                            g += GTPU_OPT_LEN
                            if gfl & 0x04:
                                while ext != 0:
                                    if pend - g < 1:
                                        err = C_DEC_GTPU_TRUNCATED
                                        break
                                    el = np.int64(buf[g]) * 4
                                    if el == 0 or pend - g < el:
                                        err = C_DEC_GTPU_TRUNCATED
                                        break
                                    ext = np.int64(buf[g + el - 1])
                                    g += el
                                if err:
                                    break
                        if pend - g < 1:
                            break  # empty T-PDU
                        v = buf[g] >> 4
                        if v != 4 and v != 6:
                            break
                        tk = TUN_GTPU
                        tc = C_DEC_TUN_GTPU
                        tn = L_IP4 if v == 4 else L_IP6
                        q = g
                        end = pend
                        wend = end
                        nxt = L_TUN
                        continue
                    if dp == PORT_TEREDO or sp == PORT_TEREDO:
                        t = r
                        if pend - t >= 2 and buf[t] == 0 and buf[t + 1] == 1:
                            # authentication indicator: 0x0001, id len, auth len, id, auth, nonce(8), conf(1)
                            if pend - t < 4:
                                break
                            t += 4 + np.int64(buf[t + 2]) + np.int64(buf[t + 3]) + 9
                        if pend - t >= 2 and buf[t] == 0 and buf[t + 1] == 0:
                            t += HD.TEREDO_ORIGIN_LEN
                        if pend - t >= IP6_HDR and (buf[t] >> 4) == 6:
                            ipl = _be16(buf, t + IP6_PLEN)
                            if t + IP6_HDR + ipl == pend:
                                tk = TUN_TEREDO
                                tc = C_DEC_TUN_TEREDO
                                tn = L_IP6
                                q = t
                                end = pend
                                wend = end
                                nxt = L_TUN
                                continue
                elif proto == P_SCTP:
                    counters[C_DEC_SCTP] += 1
                    if ip_end - q < PORTS_LEN:
                        err = C_DEC_SCTP_TRUNCATED
                        break
                    hdr[i, H_SPORT] = _be16(buf, q)
                    hdr[i, H_DPORT] = _be16(buf, q + 2)
                    if ip_end - q < SCTP_LEN:
                        err = C_DEC_SCTP_TRUNCATED
                        break
                    hdr[i, H_PAYLOAD] = q + SCTP_LEN - p
                    hdr[i, H_PAYLOAD_LEN] = ip_end - q - SCTP_LEN
                elif proto == P_ICMP or proto == P_ICMPV6:
                    c_ok = C_DEC_ICMP if proto == P_ICMP else C_DEC_ICMPV6
                    c_bad = C_DEC_ICMP_TRUNCATED if proto == P_ICMP else C_DEC_ICMPV6_TRUNCATED
                    counters[c_ok] += 1
                    if ip_end - q < 2:
                        err = c_bad
                        break
                    hdr[i, H_ICMP_TYPE] = buf[q]
                    hdr[i, H_ICMP_CODE] = buf[q + 1]
                    if ip_end - q >= ICMP_LEN:
                        hdr[i, H_PAYLOAD] = q + ICMP_LEN - p
                        hdr[i, H_PAYLOAD_LEN] = ip_end - q - ICMP_LEN
                else:
                    hdr[i, H_PAYLOAD] = q - p
                    hdr[i, H_PAYLOAD_LEN] = max(0, ip_end - q)
        if err:
            counters[err] += 1
            if hdr[i, H_ERROR] == 0:
                hdr[i, H_ERROR] = err
