"""Flow table kernels (private; see ulnet.flow for the public stage).

Storage: fixed-capacity numpy arrays, one row per flow entry.
    F     int64  [cap, NF]   counters and packed key parts (F_* columns)
    K     uint64 [cap, 4]    endpoints a_hi, a_lo, b_hi, b_lo in canonical order
    TF    uint32 [cap, 16]   TCP flag counters: 8 flags x 2 directions
    LNK   int32  [cap, 2]    prev/next in the entry's expiry list
    IDX   int32  [slots]     open-addressing index, linear probing, entry+1 (0 = empty)
    ST    float64[cap, NS]   per-flow statistics (only with --statistics; else shape [1, NS])

Expiry lists (doubly linked, oldest first): LIVE (ordered by last packet:
idle timeout and eviction walk it from the head) and CLOSED (TCP flows that
saw RST or FIN both ways, ordered the same way, with the shorter close
timeout). Every check runs on the packet clock, before each packet: the
head of each list is the only flow that can be due, so the check is O(1).

Export: expired flows are copied to the export arrays (same columns) in
the order they end; when the export arrays are full the kernel returns and
the caller drains them and resumes at the same packet.
"""

from __future__ import annotations

import numpy as np
from ulnet.jit import njit
from ulnet.prefetch import prefetch

from ulnet.batch.columns import (
    H_PAYLOAD_LEN, H_IP_VERSION, H_PROTO, H_VLAN, H_VLAN2, H_SPORT, H_DPORT, H_TCP_FLAGS, H_FRAG, H_FRAG_OFF, H_FRAG_ID,
    FRAG_IS, FRAG_MF,
)
from ulnet.counters import (
    C_FLOW_CREATED, C_FLOW_NOT_IP, C_FLOW_EVICTED, C_FLOW_FRAG_ORPHAN, C_FLOW_FRAG_JOINED,
    C_FLOW_FRAG_SKIPPED,
)

# ---- flow entry columns (F) ---------------------------------------------------
F_ID = 0          # flow id, in order of first packet
F_FIRST = 1       # first packet ts (ns)
F_LAST = 2        # last packet ts (ns)
F_PK0 = 3         # packets src -> dst
F_PK1 = 4         # packets dst -> src
F_BY0 = 5         # bytes (wire length) src -> dst
F_BY1 = 6         # bytes dst -> src
F_KEY = 7         # canonical a_port << 16 | b_port | proto << 32 | ip_version << 40
                  # | (vlan + 1) << 44 | src_is_b << 57
F_STATE = 8       # tcp state | fin_src << 4 | fin_dst << 5 | list << 8 | reason(+1) << 12
                  # | segment epoch of the last packet << 16
                  # | segment epoch of the last packet with payload << 32 (see flow_batch)
F_APP = 9         # inspection: see the A_* fields below
NF = 10

KEY_MASK = (np.int64(1) << 57) - 1     # the key bits (without src_is_b)
KEY_SRC_IS_B = 57

# F_APP fields (written by the inspection stage, ulnet.inspect)
A_APP0_SHIFT, A_APP1_SHIFT, A_APP_SHIFT = 0, 10, 20       # 10 bits each: app id per direction, merged
A_CONF_SHIFT = 30       # 2 bits: 0 none, 1 port, 2 payload, 3 ip protocol
A_DPI_SHIFT = 32        # 8 bits: payload packets inspected
A_DONE_SHIFT = 40       # 2 bits: direction 0 / 1 decided or given up
A_META_SHIFT = 42       # 22 bits: metadata slot + 1 (0 = none)
APP_MASK = 0x3FF
META_MAX_SLOTS = (1 << 22) - 1

# metadata slot layout (META uint8 [slots, META_W]); each text field is a
# length byte followed by the bytes (truncated to fit)
META_W = 320
M_NAME, M_NAME_MAX = 0, 191          # requested_server_name (SNI, Host, DNS query, DHCP host name)
M_UA, M_UA_MAX = 192, 111            # HTTP User-Agent
M_ALPN, M_ALPN_MAX = 304, 13         # TLS/QUIC ALPN (first protocol)
M_QTYPE = 318                        # DNS query type, 2 bytes big-endian

# statistics columns (ST): for dir in (src2dst, dst2src, bidirectional):
#   size: min, max, sum, sumsq ; iat: min, max, sum, sumsq   -> 8 per dir
# (LT int64 [cap, 2]: last packet ts per direction, for inter-arrival times)
NS = 24

# TCP states (F_STATE low nibble)
TCP_NONE, TCP_NEW, TCP_ESTABLISHED, TCP_CLOSING, TCP_CLOSED, TCP_RESET = 0, 1, 2, 3, 4, 5

# expiry lists
LIST_LIVE, LIST_CLOSED, LIST_FREE, LIST_DUE = 0, 1, 2, 3   # DUE: export row reserved (_reserve)

# end reasons (expiration_id): NFStream's values where it has one
END_INPUT = -1     # end of input / shutdown (NFStream: custom expiration)
END_IDLE = 0
END_ACTIVE = 1
END_TCP = 2        # TCP closed by FIN both ways or RST, then the close timeout
END_EVICT = 3      # table full: the least recently seen flow made room

# kernel state slots (S int64 array)
S_NEXT_ID = 0
S_LIVE_HEAD, S_LIVE_TAIL, S_CLOSED_HEAD, S_CLOSED_TAIL = 1, 2, 3, 4
S_FREE_HEAD = 5    # first freed entry (chained through LNK[e, 1]; entries from S_HWM up are free too), -1 none
S_NLIVE = 6        # entries in use
S_NEXP = 7         # rows used in the export arrays
S_SEED = 8
S_MFREE_TOP = 9    # free metadata slots on the MFREE stack
S_FREE_TAIL = 10   # last free entry, -1 none
S_HWM = 11         # entries ever taken: every entry in use is below it, every one from it up is free
S_NRES = 12        # export rows reserved in this segment (_reserve)
S_RES_LO = 13      # the first of them
S_PF = 14          # PF_RING slots: index slot of packet k at S_PF + (k & PF_MASK) (prefetch only)
PF_RING = 32
PF_MASK = PF_RING - 1
S_SIZE = S_PF + PF_RING

# Prefetch distances (packets ahead of the one being tracked): the index
# slot of packet i + PF_SLOT_AHEAD is requested first; PF_ENTRY_AHEAD
# packets ahead, that slot has arrived and the entry it names (K, F and
# LNK rows) is requested. With 10 M flows every one of those is a cache
# (and TLB) miss; with a small table they are hits and cost a few ns.
PF_SLOT_AHEAD = 16
PF_ENTRY_AHEAD = 8

# fragment map (FR int64 [FRAG_SLOTS, 6]): key (hash of addresses, id, proto), entry, flow id, -, -, ts;
# FRAG_WAYS slots per bucket, so that datagrams in flight at once do not push
# each other out (which would make the result depend on the hash seed)
FRAG_SLOTS = 4096
FRAG_WAYS = 4
FRAG_TTL_NS = 60 * 1000000000

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG, TCP_ECE, TCP_CWR = 1, 2, 4, 8, 16, 32, 64, 128

M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@njit(cache=True, inline="always")
def _mix(h, v):
    h ^= v
    h *= np.uint64(0x9E3779B97F4A7C15)
    h ^= h >> np.uint64(29)
    return h


@njit(cache=True)
def _hash(seed, ahi, alo, bhi, blo, key):
    h = np.uint64(seed)
    h = _mix(h, ahi)
    h = _mix(h, alo)
    h = _mix(h, bhi)
    h = _mix(h, blo)
    h = _mix(h, np.uint64(key))
    h ^= h >> np.uint64(32)
    h *= np.uint64(0xD6E8FEB86659FD93)
    h ^= h >> np.uint64(32)
    return h


@njit(cache=True)
def _full(free_head, hwm, cap):
    """No entry to take: no freed entry and none left that was never used."""
    return free_head < 0 and hwm >= cap


@njit(cache=True)
def drain_due(S, drain_rows, xrows):
    """Ended flows should be handed over now: drain_rows of them have built
    up, or the export arrays could not take the two rows a packet may need."""
    return S[S_NEXP] >= drain_rows or S[S_NEXP] + 2 > xrows


@njit(cache=True)
def _packet_key(ver, proto, vlan2, vlan, sp, dp, shi, slo, dhi, dlo):
    """A packet's flow key from its header fields: (proto, swap, a_hi, a_lo,
    b_hi, b_lo, a_port, b_port, mkey). proto -1 becomes 255, the
    VLAN is the inner (customer) tag of QinQ as nDPI and NFStream use, ports
    are 0 unless both are known; the endpoints go in canonical order (swap:
    the source is endpoint b)."""
    if proto < 0:
        proto = 255
    if vlan2 >= 0:
        vlan = vlan2
    if sp < 0 or dp < 0:
        sp = 0
        dp = 0
    swap = (shi > dhi) or (shi == dhi and (slo > dlo or (slo == dlo and sp > dp)))
    if swap:
        ahi, alo, bhi, blo, ap, bp = dhi, dlo, shi, slo, dp, sp
    else:
        ahi, alo, bhi, blo, ap, bp = shi, slo, dhi, dlo, sp, dp
    mkey = ((np.int64(ap) << 16) | np.int64(bp) | (np.int64(proto) << 32) | (np.int64(ver) << 40)
            | (np.int64(vlan + 1) << 44))
    return proto, swap, ahi, alo, bhi, blo, ap, bp, mkey


@njit(cache=True)
def _frag_slot(FR, b, fkey):
    """The slot of datagram fkey in bucket b: its own if it is there, else the
    one written longest ago (free slots have time 0)."""
    best = b
    for k in range(b, b + FRAG_WAYS):
        if FR[k, 0] == fkey:
            return k
        if FR[k, 5] < FR[best, 5]:
            best = k
    return best


@njit(cache=True, inline="always")
def _pending(F, e, epoch):
    """Flow e got packets the next stage (inspection) has not seen yet, in
    the current segment: payload (or a non-TCP/UDP packet), and its
    inspection is still open."""
    return ((F[e, F_STATE] >> 32) & 0xFFFF) == epoch and ((F[e, F_APP] >> A_DONE_SHIFT) & 3) != 3


# ---- expiry lists --------------------------------------------------------------

@njit(cache=True)
def _list_unlink(S, LNK, F, e):
    lst = (F[e, F_STATE] >> 8) & 0xF
    hs = S_LIVE_HEAD if lst == LIST_LIVE else S_CLOSED_HEAD
    p = LNK[e, 0]
    n = LNK[e, 1]
    if p >= 0:
        LNK[p, 1] = n
    else:
        S[hs] = n
    if n >= 0:
        LNK[n, 0] = p
    else:
        S[hs + 1] = p
    LNK[e, 0] = -1
    LNK[e, 1] = -1


@njit(cache=True)
def _list_append(S, LNK, F, e, lst):
    F[e, F_STATE] = (F[e, F_STATE] & ~np.int64(0xF00)) | (np.int64(lst) << 8)
    hs = S_LIVE_HEAD if lst == LIST_LIVE else S_CLOSED_HEAD
    t = S[hs + 1]
    LNK[e, 0] = t
    LNK[e, 1] = -1
    if t >= 0:
        LNK[t, 1] = e
    else:
        S[hs] = e
    S[hs + 1] = e


# ---- index (open addressing, backward-shift deletion) ----------------------------

@njit(cache=True)
def _index_remove(IDX, K, F, e, S):
    mask = IDX.shape[0] - 1
    h = _hash(S[S_SEED], K[e, 0], K[e, 1], K[e, 2], K[e, 3], F[e, F_KEY] & KEY_MASK)
    j = np.int64(h & np.uint64(mask))
    while IDX[j] != e + 1:
        j = (j + 1) & mask
    # backward shift
    while True:
        IDX[j] = 0
        k = j
        while True:
            k = (k + 1) & mask
            v = IDX[k]
            if v == 0:
                return
            o = v - 1
            hk = np.int64(_hash(S[S_SEED], K[o, 0], K[o, 1], K[o, 2], K[o, 3], F[o, F_KEY] & KEY_MASK)
                          & np.uint64(mask))
            # can v move to j? yes if its home hk is not cyclically in (j, k]
            if j <= k:
                if j < hk <= k:
                    continue
            else:
                if hk > j or hk <= k:
                    continue
            IDX[j] = v
            j = k
            break


@njit(cache=True)
def _export_row(F, K, TF, ST, S, META, MFREE, XF, XK, XTF, XST, XMETA, x, e, reason, stats):
    """Copy entry e to export row x and give its metadata slot back (its
    metadata to XMETA row x, when it has a slot)."""
    for c in range(NF):
        XF[x, c] = F[e, c]
    XF[x, F_STATE] = (F[e, F_STATE] & ~np.int64(0xF000)) | (np.int64(reason + 1) << 12)
    for c in range(4):
        XK[x, c] = K[e, c]
    for c in range(16):
        XTF[x, c] = TF[e, c]
    if stats:
        for c in range(NS):
            XST[x, c] = ST[e, c]
    ms = (F[e, F_APP] >> A_META_SHIFT) - 1
    if ms >= 0:
        for c in range(META_W):
            XMETA[x, c] = META[ms, c]
            META[ms, c] = 0
        MFREE[S[S_MFREE_TOP]] = ms
        S[S_MFREE_TOP] += 1
    # (a row without a slot is left as it is: the drain blanks it, when the
    # chunk has names at all; FlowTable._drain)


@njit(cache=True)
def _export(F, K, TF, ST, LNK, IDX, S, META, MFREE, XF, XK, XTF, XST, XMETA, e, reason, stats):
    x = S[S_NEXP]
    S[S_NEXP] = x + 1
    _export_row(F, K, TF, ST, S, META, MFREE, XF, XK, XTF, XST, XMETA, x, e, reason, stats)
    _list_unlink(S, LNK, F, e)
    _release(LNK, IDX, K, F, S, e)


@njit(cache=True)
def _reserve(F, K, LNK, IDX, S, XF, e, reason):
    """Flow e is due (idle or close timeout) but got payload in this segment
    that inspection has not seen: take its export row now (the export order
    stays the order flows end), take it out of the expiry lists and the
    index, and fill the row when the segment is settled (settle_reserved,
    after inspection); the entry stays taken until then."""
    x = S[S_NEXP]
    S[S_NEXP] = x + 1
    XF[x, F_ID] = e
    XF[x, F_STATE] = -10 - reason
    if S[S_NRES] == 0:
        S[S_RES_LO] = x
    S[S_NRES] += 1
    _list_unlink(S, LNK, F, e)
    _index_remove(IDX, K, F, e, S)     # a later packet with its key starts a new flow
    F[e, F_STATE] = (F[e, F_STATE] & ~np.int64(0xF00)) | (np.int64(LIST_DUE) << 8)


@njit(cache=True)
def settle_reserved(F, K, TF, ST, LNK, IDX, S, META, MFREE, XF, XK, XTF, XST, XMETA, stats):
    """Fill the export rows reserved in the segment just inspected."""
    if S[S_NRES] == 0:
        return
    for x in range(S[S_RES_LO], S[S_NEXP]):
        if XF[x, F_STATE] < 0:
            e = XF[x, F_ID]
            _export_row(F, K, TF, ST, S, META, MFREE, XF, XK, XTF, XST, XMETA, x, e, -10 - XF[x, F_STATE], stats)
            _free(LNK, F, S, e)
    S[S_NRES] = 0


@njit(cache=True)
def _release(LNK, IDX, K, F, S, e):
    """Entry e (out of its expiry list) leaves the index and joins the free list."""
    _index_remove(IDX, K, F, e, S)
    _free(LNK, F, S, e)


@njit(cache=True)
def _free(LNK, F, S, e):
    # (the segment epoch of its last packet stays: see the reuse check in flow_batch)
    F[e, F_STATE] = (F[e, F_STATE] & (np.int64(0xFFFF) << 16)) | (np.int64(LIST_FREE) << 8)
    # F_APP stays as it was until the entry is reused: packets of this flow
    # earlier in the current segment still read its (final) application.
    # Freed entries join the free list at its tail, so an entry is reused
    # as late as possible (FIFO), never within the segment that freed it
    # (an entry never used is taken then, or the segment ends when the
    # table is full). Entries never used are not on the list: they are the
    # ones from S_HWM up.
    LNK[e, 1] = -1
    t = S[S_FREE_TAIL]
    if t >= 0:
        LNK[t, 1] = e
    else:
        S[S_FREE_HEAD] = e
    S[S_FREE_TAIL] = e
    S[S_NLIVE] -= 1


@njit(cache=True)
def _stat_init(ST, e):
    for d in range(3):
        b = d * 8
        ST[e, b + 0] = np.inf
        ST[e, b + 1] = -np.inf
        ST[e, b + 2] = 0.0
        ST[e, b + 3] = 0.0
        ST[e, b + 4] = np.inf
        ST[e, b + 5] = -np.inf
        ST[e, b + 6] = 0.0
        ST[e, b + 7] = 0.0


@njit(cache=True, inline="always")
def _stat_add(ST, e, b, v):
    if v < ST[e, b]:
        ST[e, b] = v
    if v > ST[e, b + 1]:
        ST[e, b + 1] = v
    ST[e, b + 2] += v
    ST[e, b + 3] += v * v


@njit(cache=True)
def flow_batch(hdr, addr, ts, wirelen, n, i0,
               F, K, TF, ST, LT, LNK, IDX, S, FR, META, MFREE,
               XF, XK, XTF, XST, XMETA,
               idle_ns, active_ns, close_ns, stats, skip_frags, epoch,
               out_entry, out_id, out_dir, out_pkt, counters):
    """Track packets i0..n-1. Returns the index of the first packet not yet
    processed: n when done; less when the export arrays filled up, or when a
    flow touched by packets i0.. of this call (stamped with ``epoch``) would
    be exported before the later stages (inspection) have seen those
    packets: the caller runs them over i0..returned, settles the reserved
    rows (settle_reserved), bumps the epoch and calls again from there.
    A flow that times out in that state does not end the segment: its
    export row is reserved (_reserve) and filled by settle_reserved."""
    xcap = XF.shape[0]
    mask = IDX.shape[0] - 1
    nf = F.shape[1]
    cap = F.shape[0]
    for r in range(PF_RING):
        S[S_PF + r] = -1
    pf_free = -1
    for i in range(i0, n):
        # ---- prefetch (changes no value): the index slot of the packet
        # PF_SLOT_AHEAD ahead, and the entry named by the slot requested for
        # the packet PF_ENTRY_AHEAD ahead. (Inline: a helper taking the
        # arrays would pay numba's reference counting on every call.)
        k = i + PF_SLOT_AHEAD
        if k < n:
            jk = -1
            if hdr[k, H_IP_VERSION] != 0 and not (hdr[k, H_FRAG] & FRAG_IS):
                _, _, k0, k1, k2, k3, _, _, kk = _packet_key(
                    hdr[k, H_IP_VERSION], hdr[k, H_PROTO], hdr[k, H_VLAN2], hdr[k, H_VLAN], hdr[k, H_SPORT],
                    hdr[k, H_DPORT], addr[k, 0], addr[k, 1], addr[k, 2], addr[k, 3])
                jk = np.int64(_hash(S[S_SEED], k0, k1, k2, k3, kk) & np.uint64(mask))
                prefetch(IDX, jk)
            S[S_PF + (k & PF_MASK)] = jk
        if i + PF_ENTRY_AHEAD < n:
            j = S[S_PF + ((i + PF_ENTRY_AHEAD) & PF_MASK)]
            if j >= 0:
                v = np.int64(IDX[j]) - 1
                if v >= 0:
                    prefetch(K, v * 4)
                    prefetch(F, v * nf)
                    prefetch(F, v * nf + nf - 1)
                    prefetch(LNK, v * 2)
        # the entry the next new flow takes: the free list's head was freed
        # longest ago, so its rows are cold by now
        ne = S[S_FREE_HEAD]
        if ne < 0 and S[S_HWM] < cap:
            ne = S[S_HWM]
        if ne != pf_free and ne >= 0:
            pf_free = ne
            prefetch(F, ne * nf)
            prefetch(F, ne * nf + nf - 1)
            prefetch(K, ne * 4)
            prefetch(LNK, ne * 2)
        t = ts[i]
        # ---- expiry on the packet clock (heads of the two lists) --------------
        while True:
            if S[S_NEXP] >= xcap:
                return i
            e = S[S_CLOSED_HEAD]
            if e >= 0 and t - F[e, F_LAST] > close_ns:
                if i > i0 and _pending(F, e, epoch):
                    _reserve(F, K, LNK, IDX, S, XF, e, END_TCP)   # payload not inspected yet: fill its row later
                else:
                    _export(F, K, TF, ST, LNK, IDX, S, META, MFREE, XF, XK, XTF, XST, XMETA, e, END_TCP, stats)
                continue
            e = S[S_LIVE_HEAD]
            if e >= 0 and t - F[e, F_LAST] > idle_ns:
                if i > i0 and _pending(F, e, epoch):
                    _reserve(F, K, LNK, IDX, S, XF, e, END_IDLE)  # payload not inspected yet: fill its row later
                else:
                    _export(F, K, TF, ST, LNK, IDX, S, META, MFREE, XF, XK, XTF, XST, XMETA, e, END_IDLE, stats)
                continue
            break
        if S[S_NEXP] + 2 > xcap:
            return i
        if S[S_NRES] > 0 and _full(S[S_FREE_HEAD], S[S_HWM], cap):
            return i   # table full: the reserved flows' entries must be free first
        ver = hdr[i, H_IP_VERSION]
        if ver == 0:
            out_entry[i] = -1
            out_id[i] = -1
            out_dir[i] = -1
            out_pkt[i] = -1
            counters[C_FLOW_NOT_IP] += 1
            continue
        shi = addr[i, 0]
        slo = addr[i, 1]
        dhi = addr[i, 2]
        dlo = addr[i, 3]
        proto, swap, ahi, alo, bhi, blo, ap, bp, mkey = _packet_key(
            ver, hdr[i, H_PROTO], hdr[i, H_VLAN2], hdr[i, H_VLAN], hdr[i, H_SPORT], hdr[i, H_DPORT],
            shi, slo, dhi, dlo)
        # ---- non-first fragments: the flow of their datagram ------------------
        fr = hdr[i, H_FRAG]
        joined = -1
        fs = 0
        if fr & FRAG_IS:
            fh = _hash(S[S_SEED], shi, slo, dhi, dlo, (np.int64(hdr[i, H_FRAG_ID]) << 8) | proto)
            fkey = np.int64(fh >> np.uint64(1))
            fs = _frag_slot(FR, np.int64(fh & np.uint64(FRAG_SLOTS - 1)) & ~np.int64(FRAG_WAYS - 1), fkey)
            if hdr[i, H_FRAG_OFF] == 0:
                if fr & FRAG_MF:
                    FR[fs, 0] = fkey
                    FR[fs, 1] = -1   # entry filled in below
                    FR[fs, 5] = t
            elif skip_frags:
                out_entry[i] = -1
                out_id[i] = -1
                out_dir[i] = -1
                out_pkt[i] = -1
                counters[C_FLOW_FRAG_SKIPPED] += 1
                continue
            else:
                if FR[fs, 0] == fkey and t - FR[fs, 5] <= FRAG_TTL_NS:
                    fe = FR[fs, 1]
                    if fe >= 0 and F[fe, F_ID] == FR[fs, 2] and ((F[fe, F_STATE] >> 8) & 0xF) < LIST_FREE:
                        joined = fe
                if joined < 0:
                    counters[C_FLOW_FRAG_ORPHAN] += 1
                else:
                    counters[C_FLOW_FRAG_JOINED] += 1
        if joined >= 0:
            e = joined
            src_is_b = (F[e, F_KEY] >> KEY_SRC_IS_B) & 1
            a_is_src = (K[e, 0] == shi) and (K[e, 1] == slo)
            if K[e, 0] == K[e, 2] and K[e, 1] == K[e, 3]:
                d = 0
            elif src_is_b == 0:
                d = 0 if a_is_src else 1
            else:
                d = 1 if a_is_src else 0
        else:
            # the slot the prefetch computed PF_SLOT_AHEAD packets ago from the
            # same key (-1 for the first packets of a call and for fragments)
            home = S[S_PF + (i & PF_MASK)]
            if home < 0:
                home = np.int64(_hash(S[S_SEED], ahi, alo, bhi, blo, mkey) & np.uint64(mask))
            j = home
            e = -1
            while True:
                v = IDX[j]
                if v == 0:
                    break
                o = v - 1
                if (K[o, 1] == alo and K[o, 3] == blo and (F[o, F_KEY] & KEY_MASK) == mkey
                        and K[o, 0] == ahi and K[o, 2] == bhi):
                    e = o
                    break
                j = (j + 1) & mask
            tcpf = hdr[i, H_TCP_FLAGS]
            if e >= 0:
                restart = -2
                if t - F[e, F_FIRST] > active_ns:
                    restart = END_ACTIVE
                elif (F[e, F_STATE] & 0xF) >= TCP_CLOSED and tcpf >= 0 and (tcpf & TCP_SYN) and not (tcpf & TCP_ACK):
                    restart = END_TCP     # a new connection on a closed 5-tuple
                if restart != -2:
                    # (its entry is not reused within the segment: see the free list below)
                    if i > i0 and _pending(F, e, epoch):
                        return i   # payload in this segment not inspected yet: let the next stage see it first
                    _export(F, K, TF, ST, LNK, IDX, S, META, MFREE, XF, XK, XTF, XST, XMETA, e, restart, stats)
                    e = -1
                    # the index changed: find the empty slot again
                    j = home
                    while IDX[j] != 0:
                        j = (j + 1) & mask
            if e < 0:
                if _full(S[S_FREE_HEAD], S[S_HWM], cap):
                    victim = S[S_CLOSED_HEAD]
                    if victim < 0:
                        victim = S[S_LIVE_HEAD]
                    if i > i0 and _pending(F, victim, epoch):
                        return i   # payload in this segment not inspected yet: let the next stage see it first
                    counters[C_FLOW_EVICTED] += 1
                    _export(F, K, TF, ST, LNK, IDX, S, META, MFREE, XF, XK, XTF, XST, XMETA, victim, END_EVICT, stats)
                    j = home
                    while IDX[j] != 0:
                        j = (j + 1) & mask
                # a freed entry first (the one freed longest ago), else one
                # never used: the entries touched stay about as many as the
                # flows live at once, not the table's capacity
                e = S[S_FREE_HEAD]
                if e >= 0 and i > i0 and ((F[e, F_STATE] >> 16) & 0xFFFF) == epoch:
                    # touched in this segment, then freed: the next stages still read it
                    if S[S_HWM] >= cap:
                        return i
                    e = -1
                fresh = e < 0              # never used: its rows are still the allocation's zeros
                if fresh:
                    e = S[S_HWM]
                    S[S_HWM] = e + 1
                else:
                    S[S_FREE_HEAD] = LNK[e, 1]
                    if S[S_FREE_HEAD] < 0:
                        S[S_FREE_TAIL] = -1
                S[S_NLIVE] += 1
                IDX[j] = e + 1
                K[e, 0] = ahi
                K[e, 1] = alo
                K[e, 2] = bhi
                K[e, 3] = blo
                F[e, F_ID] = S[S_NEXT_ID]
                S[S_NEXT_ID] += 1
                F[e, F_FIRST] = t
                F[e, F_LAST] = t
                F[e, F_PK0] = 0
                F[e, F_PK1] = 0
                F[e, F_BY0] = 0
                F[e, F_BY1] = 0
                F[e, F_KEY] = mkey | (np.int64(1 if swap else 0) << KEY_SRC_IS_B)
                F[e, F_APP] = 0
                F[e, F_STATE] = TCP_NEW if proto == 6 else TCP_NONE   # epoch stamped below
                if not fresh:    # (a fresh UDP flow's TCP flag row is never touched)
                    for c in range(16):
                        TF[e, c] = 0
                if stats:
                    _stat_init(ST, e)
                    LT[e, 0] = -1
                    LT[e, 1] = -1
                _list_append(S, LNK, F, e, LIST_LIVE)
                counters[C_FLOW_CREATED] += 1
            src_is_b = (F[e, F_KEY] >> KEY_SRC_IS_B) & 1
            d = 0 if (1 if swap else 0) == src_is_b else 1
            if ahi == bhi and alo == blo and ap == bp:
                d = 0
            if fr & FRAG_IS and hdr[i, H_FRAG_OFF] == 0 and fr & FRAG_MF:
                FR[fs, 1] = e
                FR[fs, 2] = F[e, F_ID]
        # ---- update the flow ----------------------------------------------------
        wl = np.int64(wirelen[i])
        if d == 0:
            F[e, F_PK0] += 1
            F[e, F_BY0] += wl
        else:
            F[e, F_PK1] += 1
            F[e, F_BY1] += wl
        if stats:
            fv = float(wl)
            _stat_add(ST, e, d * 8, fv)
            _stat_add(ST, e, 16, fv)
            if LT[e, d] >= 0:
                _stat_add(ST, e, d * 8 + 4, (t - LT[e, d]) / 1e6)
            if F[e, F_PK0] + F[e, F_PK1] > 1:
                _stat_add(ST, e, 20, (t - F[e, F_LAST]) / 1e6)
            LT[e, d] = t
        if t > F[e, F_LAST]:
            F[e, F_LAST] = t
        tcpf = hdr[i, H_TCP_FLAGS]
        if proto == 6 and tcpf >= 0 and joined < 0:
            for b in range(8):
                if tcpf & (1 << b):
                    TF[e, d * 8 + b] += 1
            st = F[e, F_STATE]
            s0 = st & 0xF
            if tcpf & TCP_RST:
                s0 = TCP_RESET
            else:
                if tcpf & TCP_FIN:
                    st |= np.int64(1) << (4 + d)
                if (st >> 4) & 3 == 3:
                    s0 = TCP_CLOSED
                elif (st >> 4) & 3:
                    s0 = TCP_CLOSING
                elif s0 == TCP_NEW and d == 1 and (tcpf & TCP_ACK):
                    s0 = TCP_ESTABLISHED
                elif s0 == TCP_NEW and d == 0 and (tcpf & TCP_ACK) and not (tcpf & TCP_SYN) and F[e, F_PK1] > 0:
                    s0 = TCP_ESTABLISHED
            F[e, F_STATE] = (st & ~np.int64(0xF)) | s0
        F[e, F_STATE] = (F[e, F_STATE] & ~(np.int64(0xFFFF) << 16)) | (np.int64(epoch & 0xFFFF) << 16)
        if hdr[i, H_PAYLOAD_LEN] > 0 or proto != 6 and proto != 17:
            F[e, F_STATE] = (F[e, F_STATE] & ~(np.int64(0xFFFF) << 32)) | (np.int64(epoch & 0xFFFF) << 32)
        # ---- keep the expiry list order (most recently seen at the tail) -------
        lst = (F[e, F_STATE] >> 8) & 0xF
        want = LIST_CLOSED if (F[e, F_STATE] & 0xF) >= TCP_CLOSED else LIST_LIVE
        if S[want + want + 2] != e or lst != want:
            _list_unlink(S, LNK, F, e)
            _list_append(S, LNK, F, e, want)
        out_entry[i] = e
        out_id[i] = F[e, F_ID]
        out_dir[i] = d
        out_pkt[i] = F[e, F_PK0] + F[e, F_PK1]
    return n


@njit(cache=True)
def live_entries(F, S, ids, ents):
    """Entries in use into ents (their flow ids into ids; both at least
    S[S_NLIVE] long) for the end-of-input flush; returns (count, whether the
    ids came out in order). A sequential scan of the entries (not a walk of
    the expiry lists, whose order is random in memory); the caller sorts
    the ids unless they came out in order (a table that never reused an
    entry). Allocates nothing (see FlowTable.flush)."""
    cnt = 0
    is_sorted = True
    for e in range(S[S_HWM]):
        if ((F[e, F_STATE] >> 8) & 0xF) != LIST_FREE and cnt < ids.shape[0]:
            ids[cnt] = F[e, F_ID]
            ents[cnt] = e
            if cnt and ids[cnt] < ids[cnt - 1]:
                is_sorted = False
            cnt += 1
    return cnt, is_sorted


@njit(cache=True)
def flush_entries(F, K, TF, ST, S, META, MFREE, XF, XK, XTF, XST, XMETA, stats, reason, ents, k0):
    """The final flush: export ents[k0:] (every entry in use) until the export
    arrays are full; returns the next k. Only the rows are copied: the index,
    the expiry lists and the free chain are left as they are, and the caller
    resets the whole table (FlowTable._reset) once every entry is out."""
    xcap = XF.shape[0]
    k = k0
    while k < len(ents) and S[S_NEXP] < xcap:
        e = ents[k]
        x = S[S_NEXP]
        S[S_NEXP] = x + 1
        _export_row(F, K, TF, ST, S, META, MFREE, XF, XK, XTF, XST, XMETA, x, e, reason, stats)
        F[e, F_STATE] = np.int64(LIST_FREE) << 8
        k += 1
    return k
