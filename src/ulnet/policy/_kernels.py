"""Policy kernels (private; see ulnet.policy.stage for the public stage).

decide_batch walks packets i0..i1 of a batch in order. For a packet whose
flow has no verdict yet (the entry's cached flow id differs: a new flow, or
an entry reused) or whose application just became known (and the policy
has app/category/host rules), it decides the flow: the AND of the class
bitsets of its protocol, addresses and ports gives the candidate rules in
order, and the first candidate whose other conditions hold and that is
terminal decides; match rules on the way add themselves to the flow's
match set. The verdict is cached per flow entry (V, MS); every packet then
costs a lookup plus the per-rule counters.

Per flow entry (V int64 [cap, NV]):
"""

from __future__ import annotations

import numpy as np
from ulnet.jit import njit

from ulnet.batch.columns import (H_IP_VERSION, H_PROTO, H_SPORT, H_DPORT, H_TCP_FLAGS, H_VLAN, H_VLAN2)
from ulnet.flow._kernels import (F_STATE, F_PK1, F_APP, A_DONE_SHIFT, A_APP_SHIFT, A_META_SHIFT, M_NAME, M_NAME_MAX)
from ulnet.policy.compile import (
    RT_ACTION, RT_AF, RT_DIR, RT_ONMASK, RT_FLV, RT_FLM, RT_VLAN_OFF, RT_VLAN_N, RT_LEN_OFF, RT_LEN_N,
    RT_STATE, RT_TAGGED, RT_TAGGED_NEG, RT_TAGSET, RT_APP_MODE, RT_APP_NEG, RT_APP_OFF, RT_APP_N,
    RT_CAT_MODE, RT_CAT_NEG, RT_CAT_OFF, RT_CAT_N, RT_HOST_OFF, RT_HOST_N, RT_HOST_NEG,
    RT_ROUTE, RT_BAL_OFF, RT_BAL_N, RT_POLICE, RT_SHAPE, RT_CAPTURE, RT_COUNT, RT_LOG, RT_MATCHBIT,
    A_MATCH,
)

# per-flow verdict columns (V)
V_FID = 0        # flow id the row was decided for (-1: none)
V_RULE = 1       # deciding rule (R = the default)
V_KNOWN = 2      # 1 once decided with the application known
V_IN = 3         # port the flow's first packet came in on
V_OUT = 4        # route/balance port, -1 none
V_FLAGS = 5      # TCP flags of the first packet (-1 none)
V_LEN = 6        # wire length of the first packet
V_POLICE = 7     # police rule, -1 none
V_SHAPE = 8      # shape rule, -1 none
V_CAPTURE = 9    # capture files (bit per capture id)
V_TAGS = 10      # tags set
V_LOG = 11       # 1: some rule of the verdict logs
V_COUNTAPP = 12  # bit 0: some rule of the verdict counts by app; bit 1: some rule counts by host
V_HOST = 13      # the flow's host for count by host: -1 not yet known, -2 none, -3 over the cap, else its id
NV = 14

# count by host: special rows per rule (HSPEC [R + 1, 3, 3]: row, packets/bytes/flows)
H_NOTYET, H_NONE, H_OTHER = 0, 1, 2
# count by host state (HST int64)
HST_NAMES, HST_PAIRS = 0, 1
NHST = 2

# stage state (S int64)
S_DECISIONS, S_REDECISIONS, S_NON_IP, S_NLOG = 0, 1, 2, 3
NS = 4

# the decision kernel's policy tuple (compile.Compiled.arrays)
_DEBRUIJN = np.array([0, 1, 48, 2, 57, 49, 28, 3, 61, 58, 50, 42, 38, 29, 17, 4, 62, 55, 59, 36, 53, 51, 43, 22,
                      45, 39, 33, 30, 24, 18, 12, 5, 63, 47, 56, 27, 60, 41, 37, 16, 54, 35, 52, 21, 44, 32, 23,
                      11, 46, 26, 40, 15, 34, 20, 31, 10, 25, 14, 19, 9, 13, 8, 7, 6], dtype=np.int64)
_DB_MUL = np.uint64(0x03F79D71B4CB0A89)


@njit(cache=True, inline="always")
def _lowbit_index(low, DB):
    return DB[np.int64((low * _DB_MUL) >> np.uint64(58))]


@njit(cache=True)
def _addr_class(H, L, C, hi, lo):
    """Class of address (hi, lo): the last bound <= it."""
    a = 0
    b = H.shape[0]          # bounds[0] == 0 always
    while b - a > 1:
        m = (a + b) >> 1
        if H[m] < hi or (H[m] == hi and L[m] <= lo):
            a = m
        else:
            b = m
    return C[a]


@njit(cache=True, inline="always")
def _in_ranges(POOL, off, n, v):
    for k in range(n):
        if POOL[off + 2 * k] <= v <= POOL[off + 2 * k + 1]:
            return True
    return False


@njit(cache=True, inline="always")
def _in_ids(POOL, off, n, v):
    for k in range(n):
        if POOL[off + k] == v:
            return True
    return False


@njit(cache=True)
def _glob(HP, po, pn, META, ms, base, hn):
    """Case-insensitive glob (* and ?) of pattern HP[po:po+pn] on META[ms, base:base+hn]."""
    p = 0
    s = 0
    star = -1
    mark = 0
    while s < hn:
        c = META[ms, base + s]
        if 0x41 <= c <= 0x5A:
            c += 32
        if p < pn and (HP[po + p] == 0x3F or HP[po + p] == c):
            p += 1
            s += 1
        elif p < pn and HP[po + p] == 0x2A:
            star = p
            mark = s
            p += 1
        elif star >= 0:
            p = star + 1
            mark += 1
            s = mark
        else:
            return False
    while p < pn and HP[po + p] == 0x2A:
        p += 1
    return p == pn


@njit(cache=True, inline="always")
def _name_cond(RT, POOL, r, mode_c, neg_c, off_c, n_c, known, v):
    mode = RT[r, mode_c]
    if mode < 0:
        return True
    if not known:
        return False
    if mode == 1:
        return RT[r, neg_c] == 0
    hit = _in_ids(POOL, RT[r, off_c], RT[r, n_c], v)
    return hit != (RT[r, neg_c] == 1)


@njit(cache=True)
def _residual(RT, POOL, HP, r, ver, vin, vout, flags, vlan, length, state, tags, known, app, cat,
              META, ms, hbase, hn):
    """The conditions of rule r the bitsets do not cover."""
    af = RT[r, RT_AF]
    if af != 0 and af != ver:
        return False
    om = RT[r, RT_ONMASK]
    if om != 0:
        d = RT[r, RT_DIR]
        hin = vin >= 0 and (om >> vin) & 1 == 1
        hout = vout >= 0 and (om >> vout) & 1 == 1
        if d == 1:
            if not hin:
                return False
        elif d == 2:
            if not hout:
                return False
        elif not (hin or hout):
            return False
    fm = RT[r, RT_FLM]
    if fm >= 0:
        if flags < 0 or (flags & fm) != RT[r, RT_FLV]:
            return False
    n = RT[r, RT_VLAN_N]
    if n >= 0:
        if vlan < 0 or not _in_ranges(POOL, RT[r, RT_VLAN_OFF], n, vlan):
            return False
    n = RT[r, RT_LEN_N]
    if n >= 0 and not _in_ranges(POOL, RT[r, RT_LEN_OFF], n, length):
        return False
    st = RT[r, RT_STATE]
    if st >= 0 and (st >> state) & 1 == 0:
        return False
    tg = RT[r, RT_TAGGED]
    if tg != 0:
        has = (tags & tg) == tg
        if has == (RT[r, RT_TAGGED_NEG] == 1):
            return False
    if not _name_cond(RT, POOL, r, RT_APP_MODE, RT_APP_NEG, RT_APP_OFF, RT_APP_N, known, app):
        return False
    if not _name_cond(RT, POOL, r, RT_CAT_MODE, RT_CAT_NEG, RT_CAT_OFF, RT_CAT_N, known, cat):
        return False
    n = RT[r, RT_HOST_N]
    if n >= 0:
        if not known or ms < 0 or hn <= 0:
            return False
        off = RT[r, RT_HOST_OFF]
        hit = False
        for k in range(n):
            if _glob(HP, POOL[off + 2 * k], POOL[off + 2 * k + 1], META, ms, hbase, hn):
                hit = True
                break
        if hit == (RT[r, RT_HOST_NEG] == 1):
            return False
    return True


@njit(cache=True, inline="always")
def _mix(h, v):
    h ^= v
    h *= np.uint64(0x9E3779B97F4A7C15)
    h ^= h >> np.uint64(31)
    return h


@njit(cache=True)
def _sym_hash(shi, slo, dhi, dlo, sp, dp, proto):
    """Symmetric flow hash: the same both ways (endpoints in a fixed order)."""
    a_first = (shi < dhi) or (shi == dhi and (slo < dlo or (slo == dlo and sp <= dp)))
    if not a_first:
        shi, slo, dhi, dlo, sp, dp = dhi, dlo, shi, slo, dp, sp
    h = np.uint64(0x51ED270B27F3AB3B)
    h = _mix(h, shi)
    h = _mix(h, slo)
    h = _mix(h, dhi)
    h = _mix(h, dlo)
    h = _mix(h, np.uint64((sp << 24) ^ (dp << 8) ^ proto))
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    return h


@njit(cache=True)
def _intern_host(META, ms, hn, HNAME, HLEN, HHASH, HIX, HST):
    """Id of the (ASCII lower-cased) name META[ms, M_NAME+1 : +hn] in the host
    table, added if new; -3 when the table is full."""
    h = np.uint64(0xCBF29CE484222325)
    for k in range(hn):
        c = META[ms, M_NAME + 1 + k]
        if 0x41 <= c <= 0x5A:
            c += 32
        h ^= np.uint64(c)
        h *= np.uint64(0x100000001B3)
    mask = HIX.shape[0] - 1
    j = np.int64(h & np.uint64(mask))
    while True:
        x = HIX[j]
        if x < 0:
            break
        if HHASH[x] == h and HLEN[x] == hn:
            same = True
            for k in range(hn):
                c = META[ms, M_NAME + 1 + k]
                if 0x41 <= c <= 0x5A:
                    c += 32
                if HNAME[x, k] != c:
                    same = False
                    break
            if same:
                return x
        j = (j + 1) & mask
    n = HST[HST_NAMES]
    if n >= HNAME.shape[0]:
        return -3
    for k in range(hn):
        c = META[ms, M_NAME + 1 + k]
        if 0x41 <= c <= 0x5A:
            c += 32
        HNAME[n, k] = c
    HLEN[n] = hn
    HHASH[n] = h
    HIX[j] = n
    HST[HST_NAMES] = n + 1
    return n


@njit(cache=True)
def _count_host(r, hid, newflow, wl, HCAP, NN, PIX, PKEY, PC, NHR, HSPEC, HST):
    """Count one packet of rule r under host hid (see V_HOST); newflow: the
    flow's first packet in that row. A rule has at most HCAP host rows, then
    (other); NN is the host table's size."""
    if hid < 0:
        s = H_NOTYET if hid == -1 else (H_NONE if hid == -2 else H_OTHER)
        HSPEC[r, s, 0] += 1
        HSPEC[r, s, 1] += wl
        if newflow:
            HSPEC[r, s, 2] += 1
        return
    key = r * NN + hid
    mask = PIX.shape[0] - 1
    j = np.int64((np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(20)) & mask
    while True:
        x = PIX[j]
        if x < 0:
            break
        if PKEY[x] == key:
            PC[x, 0] += 1
            PC[x, 1] += wl
            if newflow:
                PC[x, 2] += 1
            return
        j = (j + 1) & mask
    n = HST[HST_PAIRS]
    if NHR[r] >= HCAP or n >= PKEY.shape[0]:
        HSPEC[r, H_OTHER, 0] += 1
        HSPEC[r, H_OTHER, 1] += wl
        if newflow:
            HSPEC[r, H_OTHER, 2] += 1
        return
    PKEY[n] = key
    PIX[j] = n
    PC[n, 0] = 1
    PC[n, 1] = wl
    PC[n, 2] = 1 if newflow else 0
    NHR[r] += 1
    HST[HST_PAIRS] = n + 1


@njit(cache=True)
def decide_batch(i0, i1, hdr, addr, wirelen, port, fentry, fid, fdir, papp, F, META,
                 PB, SAH, SAL, SAC, SAB, DAH, DAL, DAC, DAB, SPC, SPB, DPC, DPB, RT, POOL, HP, MATCHRULE,
                 APPCAT, PEER, has_app, use_app, V, MS, RSTAT, CBA, S, LOGB,
                 HCAP, HNAME, HLEN, HHASH, HIX, PIX, PKEY, PC, NHR, HSPEC, HST,
                 o_rule, o_act, o_out, o_in, o_police, o_shape, o_cap, cand, mset):
    """Decide flows and fill the per-packet verdict columns o_* for packets i0..i1."""
    R = RT.shape[0] - 1
    W = cand.shape[0]
    MW = mset.shape[0]
    napp = CBA.shape[1] - 1
    DB = _DEBRUIJN
    for i in range(i0, i1):
        e = fentry[i]
        wl = np.int64(wirelen[i])
        if e < 0:
            S[S_NON_IP] += 1
            o_rule[i] = -1
            o_act[i] = 0
            o_out[i] = -1
            o_in[i] = port[i]
            o_police[i] = -1
            o_shape[i] = -1
            o_cap[i] = 0
            continue
        # the application as of this packet (0: unknown)
        pa = np.int64(0)
        known = False
        if use_app:
            pa = papp[i]
            # known: named on this packet, or detection has given up (the flow
            # table's state after this segment: a give-up shows from its segment on)
            fa = F[e, F_APP]
            known = pa > 0 or (((fa >> A_DONE_SHIFT) & 3) == 3 and ((fa >> A_APP_SHIFT) & 0x3FF) == 0)
        fresh = V[e, V_FID] != fid[i]
        first = fresh
        if fresh or (has_app and known and V[e, V_KNOWN] == 0):
            d = fdir[i]
            if fresh:
                V[e, V_FID] = fid[i]
                V[e, V_IN] = port[i]
                V[e, V_FLAGS] = hdr[i, H_TCP_FLAGS]
                V[e, V_LEN] = wl
                V[e, V_RULE] = -1
                V[e, V_HOST] = -1
                for w in range(MW):
                    MS[e, w] = 0
                S[S_DECISIONS] += 1
            else:
                S[S_REDECISIONS] += 1
            # the flow as its first packet showed it (initiator -> responder)
            if d == 1:
                shi, slo, dhi, dlo = addr[i, 2], addr[i, 3], addr[i, 0], addr[i, 1]
                sp, dp = hdr[i, H_DPORT], hdr[i, H_SPORT]
            else:
                shi, slo, dhi, dlo = addr[i, 0], addr[i, 1], addr[i, 2], addr[i, 3]
                sp, dp = hdr[i, H_SPORT], hdr[i, H_DPORT]
            proto = hdr[i, H_PROTO]
            if proto < 0:
                proto = 255
            ver = hdr[i, H_IP_VERSION]
            vlan = hdr[i, H_VLAN2]
            if vlan < 0:
                vlan = hdr[i, H_VLAN]
            vin = V[e, V_IN]
            vout = PEER[vin] if vin >= 0 else -1
            if proto == 6:
                ts = F[e, F_STATE] & 0xF
                state = 0 if ts <= 1 else ts - 1          # none/new -> new, established, closing, closed, reset
            else:
                state = 0 if F[e, F_PK1] == 0 else 1
            cat = APPCAT[pa] if pa < APPCAT.shape[0] else 0
            ms = -1
            hn = 0
            if known:
                ms = (F[e, F_APP] >> A_META_SHIFT) - 1
                if ms >= 0:
                    hn = np.int64(META[ms, M_NAME])
            spc = SPC[sp] if sp >= 0 else SPC[65536]
            dpc = DPC[dp] if dp >= 0 else DPC[65536]
            sac = _addr_class(SAH, SAL, SAC, shi, slo)
            dac = _addr_class(DAH, DAL, DAC, dhi, dlo)
            for w in range(W):
                cand[w] = PB[proto, w] & SAB[sac, w] & DAB[dac, w] & SPB[spc, w] & DPB[dpc, w]
            for w in range(MW):
                mset[w] = 0
            tags = np.int64(0)
            rule = R
            for w in range(W):
                bits = cand[w]
                done = False
                while bits != 0:
                    low = bits & (~bits + np.uint64(1))
                    bits ^= low
                    r = w * 64 + _lowbit_index(low, DB)
                    if not _residual(RT, POOL, HP, r, ver, vin, vout, V[e, V_FLAGS], vlan, V[e, V_LEN], state,
                                     tags, known, pa, cat, META, ms, M_NAME + 1, hn):
                        continue
                    tags |= RT[r, RT_TAGSET]
                    if RT[r, RT_ACTION] == A_MATCH:
                        mb = RT[r, RT_MATCHBIT]
                        mset[mb >> 6] |= np.uint64(1) << np.uint64(mb & 63)
                        continue
                    rule = r
                    done = True
                    break
                if done:
                    break
            tags |= RT[rule, RT_TAGSET]
            # flows per rule: count the rules new to this flow's verdict
            if V[e, V_RULE] != rule:
                RSTAT[rule, 2] += 1
            for w in range(MW):
                newbits = mset[w] & ~np.uint64(MS[e, w])
                while newbits != 0:
                    low = newbits & (~newbits + np.uint64(1))
                    newbits ^= low
                    RSTAT[MATCHRULE[w * 64 + _lowbit_index(low, DB)], 2] += 1
                MS[e, w] = np.int64(mset[w])
            # options: match rules in order, then the deciding rule (last wins)
            out = -1
            pol = -1
            shp = -1
            capm = np.int64(0)
            lg = 0
            cnt = 0
            for k in range(MW * 64 + 1):
                if k < MW * 64:
                    if (mset[k >> 6] >> np.uint64(k & 63)) & np.uint64(1) == 0:
                        continue
                    r = MATCHRULE[k]
                else:
                    r = rule
                if RT[r, RT_ROUTE] >= 0:
                    out = RT[r, RT_ROUTE]
                elif RT[r, RT_BAL_N] > 0:
                    h = _sym_hash(shi, slo, dhi, dlo, sp, dp, proto)
                    out = POOL[RT[r, RT_BAL_OFF] + np.int64(h % np.uint64(RT[r, RT_BAL_N]))]
                if RT[r, RT_POLICE] >= 0:
                    pol = RT[r, RT_POLICE]
                if RT[r, RT_SHAPE] >= 0:
                    shp = RT[r, RT_SHAPE]
                if RT[r, RT_CAPTURE] >= 0:
                    capm |= np.int64(1) << RT[r, RT_CAPTURE]
                if RT[r, RT_LOG] == 1:
                    lg = 1
                if RT[r, RT_COUNT] == 2:
                    cnt |= 1
                elif RT[r, RT_COUNT] == 3:
                    cnt |= 2
            V[e, V_RULE] = rule
            V[e, V_KNOWN] = 1 if known else 0
            V[e, V_OUT] = out
            V[e, V_POLICE] = pol
            V[e, V_SHAPE] = shp
            V[e, V_CAPTURE] = capm
            V[e, V_TAGS] = tags
            V[e, V_LOG] = lg
            V[e, V_COUNTAPP] = cnt
            if lg == 1 and S[S_NLOG] < LOGB.shape[0]:
                LOGB[S[S_NLOG], 0] = i
                LOGB[S[S_NLOG], 1] = rule
                LOGB[S[S_NLOG], 2] = 0 if fresh else 1
                LOGB[S[S_NLOG], 3] = tags
                S[S_NLOG] += 1
        # ---- per packet: counters and the verdict columns ----------------------
        rule = V[e, V_RULE]
        RSTAT[rule, 0] += 1
        RSTAT[rule, 1] += wl
        cf = V[e, V_COUNTAPP]
        cnt = (cf & 1) == 1
        ab = pa if known and pa <= napp - 1 else napp
        if cnt and RT[rule, RT_COUNT] == 2:
            CBA[rule, ab, 0] += 1
            CBA[rule, ab, 1] += wl
        # count by host: the flow's name is fixed once it is known and has a name, or inspection is over
        hcnt = (cf & 2) == 2
        hid = np.int64(-1)
        hnew = first
        if hcnt:
            hid = V[e, V_HOST]
            if hid == -1 and known:
                ms = (F[e, F_APP] >> A_META_SHIFT) - 1
                hn = np.int64(META[ms, M_NAME]) if ms >= 0 else 0
                if hn > M_NAME_MAX:
                    hn = M_NAME_MAX
                if hn > 0:
                    hid = _intern_host(META, ms, hn, HNAME, HLEN, HHASH, HIX, HST)
                elif ((F[e, F_APP] >> A_DONE_SHIFT) & 3) == 3:
                    hid = -2        # no name, and inspection is over: none will come
                if hid != -1:       # else the metadata is still open (HTTP, QUIC, DNS): wait for the name
                    V[e, V_HOST] = hid
                    hnew = True
            if RT[rule, RT_COUNT] == 3:
                _count_host(rule, hid, hnew, wl, HCAP, HNAME.shape[0], PIX, PKEY, PC, NHR, HSPEC, HST)
        for w in range(MW):
            bits = np.uint64(MS[e, w])
            while bits != 0:
                low = bits & (~bits + np.uint64(1))
                bits ^= low
                r = MATCHRULE[w * 64 + _lowbit_index(low, DB)]
                RSTAT[r, 0] += 1
                RSTAT[r, 1] += wl
                if cnt and RT[r, RT_COUNT] == 2:
                    CBA[r, ab, 0] += 1
                    CBA[r, ab, 1] += wl
                if hcnt and RT[r, RT_COUNT] == 3:
                    _count_host(r, hid, hnew, wl, HCAP, HNAME.shape[0], PIX, PKEY, PC, NHR, HSPEC, HST)
        o_rule[i] = rule
        o_act[i] = RT[rule, RT_ACTION]
        o_out[i] = V[e, V_OUT]
        o_in[i] = V[e, V_IN]
        o_police[i] = V[e, V_POLICE]
        o_shape[i] = V[e, V_SHAPE]
        o_cap[i] = V[e, V_CAPTURE]
