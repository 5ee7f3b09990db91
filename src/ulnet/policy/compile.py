"""compile -- checked rules -> the arrays the decision kernel walks.

NAME
    ulnet.policy.compile -- rules as bitsets, class tables and one rule table

DESCRIPTION
    Rule r is bit r of a W-word bitset (W = ceil(R / 64)). For each field
    that can be looked up, the values are cut into classes that every rule
    treats alike, and each class gets the bitset of the rules its values
    match (rules without a condition on the field have their bit in every
    class):

      PB   [256, W]            IP protocol -> bitset
      SA*  src address         sorted interval bounds (hi, lo uint64 halves of
      DA*  dst address         the 128-bit address) -> class -> bitset
      SP*  src port, DP* dst   port 0..65535 (65536: no port) -> class -> bitset

    A table of 100,000 prefixes becomes at most 200,001 bounds and, usually,
    a handful of classes: one binary search per flow finds them. The AND of
    the five bitsets leaves the candidate rules, in order; the kernel tests
    the rest of each candidate's conditions (RT, the rule table, one row per
    rule, columns RT_*; lists in POOL) until the first terminal rule.

    The last row of RT is the default. Port names become indices into the
    ports the command line bound (``ports``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ulnet.policy import sets as S
from ulnet.policy.check import Checked, RRule

# actions
A_PASS, A_BLOCK, A_REJECT, A_MATCH = 0, 1, 2, 3
ACTIONS = {"pass": A_PASS, "block": A_BLOCK, "reject": A_REJECT, "match": A_MATCH}
COUNT_KINDS = {None: 0, "rule": 1, "app": 2, "host": 3}

# rule table columns
(RT_ACTION, RT_AF, RT_DIR, RT_ONMASK, RT_FLV, RT_FLM, RT_VLAN_OFF, RT_VLAN_N, RT_LEN_OFF, RT_LEN_N,
 RT_STATE, RT_TAGGED, RT_TAGGED_NEG, RT_TAGSET, RT_APP_MODE, RT_APP_NEG, RT_APP_OFF, RT_APP_N,
 RT_CAT_MODE, RT_CAT_NEG, RT_CAT_OFF, RT_CAT_N, RT_HOST_OFF, RT_HOST_N, RT_HOST_NEG,
 RT_ROUTE, RT_BAL_OFF, RT_BAL_N, RT_POLICE, RT_SHAPE, RT_CAPTURE, RT_COUNT, RT_LOG, RT_MATCHBIT,
 RT_NEEDS_APP, RT_LINE) = range(36)
NRT = 36

# rate table columns (float64 [R+1, NRATE]) for police (RP) and shape (RS)
RATE_PER_NS, RATE_BURST, RATE_QUEUE_NS, RATE_PER_FLOW, RATE_BYTES = range(5)
NRATE = 5
DEFAULT_QUEUE_NS = 10**9


@dataclass
class Compiled:
    rules: list                       # RRule, default last
    W: int
    PB: np.ndarray
    SAH: np.ndarray
    SAL: np.ndarray
    SAC: np.ndarray
    SAB: np.ndarray
    DAH: np.ndarray
    DAL: np.ndarray
    DAC: np.ndarray
    DAB: np.ndarray
    SPC: np.ndarray
    SPB: np.ndarray
    DPC: np.ndarray
    DPB: np.ndarray
    RT: np.ndarray
    POOL: np.ndarray
    HP: np.ndarray
    RP: np.ndarray
    RS: np.ndarray
    MATCHRULE: np.ndarray             # match bit -> rule index
    MW: int
    ports: list                       # port names, index = port id
    captures: list                    # capture file paths, index = capture id
    tags: list
    has_app: bool
    napps: int
    stats: dict = field(default_factory=dict)

    def arrays(self):
        """The tuple the decision kernel takes (order fixed by policy._kernels)."""
        return (self.PB, self.SAH, self.SAL, self.SAC, self.SAB, self.DAH, self.DAL, self.DAC, self.DAB,
                self.SPC, self.SPB, self.DPC, self.DPB, self.RT, self.POOL, self.HP, self.MATCHRULE)


def _bit(r):
    return r // 64, np.uint64(1) << np.uint64(r % 64)


def _any_mask(rules, attr, W):
    m = np.zeros(W, dtype=np.uint64)
    for r in rules:
        if getattr(r, attr) is None:
            w, b = _bit(r.index)
            m[w] |= b
    return m


def _classes(M):
    """Rows of M deduplicated: (class per row int32, class bitsets)."""
    M = np.ascontiguousarray(M)
    rows = M.view(np.dtype((np.void, M.dtype.itemsize * M.shape[1]))).reshape(-1)
    _, first, inv = np.unique(rows, return_index=True, return_inverse=True)
    return inv.reshape(-1).astype(np.int32), np.ascontiguousarray(M[first])


def _addr_tables(rules, attr, W):
    anym = _any_mask(rules, attr, W)
    users = [r for r in rules if getattr(r, attr) is not None]
    bounds = {0}
    for r in users:
        for lo, hi in getattr(r, attr):
            bounds.add(lo)
            if hi < S.ADDR_MAX:
                bounds.add(hi + 1)
    B = sorted(bounds)
    at = {v: k for k, v in enumerate(B)}
    at[S.ADDR_MAX + 1] = len(B)
    M = np.empty((len(B), W), dtype=np.uint64)
    M[:] = anym
    for r in users:
        w, b = _bit(r.index)
        iv = getattr(r, attr)
        if len(iv) <= 64:
            col = M[:, w]
            for lo, hi in iv:
                col[at[lo]:at[hi + 1]] |= b
            continue
        diff = np.zeros(len(B) + 1, dtype=np.int64)
        np.add.at(diff, np.fromiter((at[lo] for lo, _ in iv), np.int64, len(iv)), 1)
        np.add.at(diff, np.fromiter((at[hi + 1] for _, hi in iv), np.int64, len(iv)), -1)
        M[np.cumsum(diff[:-1]) > 0, w] |= b
    cls, bits = _classes(M)
    hi = np.array([x >> 64 for x in B], dtype=np.uint64)
    lo = np.array([x & 0xFFFFFFFFFFFFFFFF for x in B], dtype=np.uint64)
    return hi, lo, cls, bits


def _port_tables(rules, attr, W):
    """Port 0..65535 (and 65536: no port) -> class; classes found over the
    elementary ranges the rules' bounds cut, then spread to every port."""
    anym = _any_mask(rules, attr, W)
    bounds = {0, 65536, 65537}
    for r in rules:
        for lo, hi in getattr(r, attr) or ():
            bounds.update((lo, hi + 1))
    B = np.array(sorted(bounds), dtype=np.int64)
    M = np.empty((len(B) - 1, W), dtype=np.uint64)
    M[:] = anym
    for r in rules:
        iv = getattr(r, attr)
        if iv is None:
            continue
        w, b = _bit(r.index)
        for lo, hi in iv:
            M[np.searchsorted(B, lo):np.searchsorted(B, hi + 1), w] |= b
    M[-1] = anym                       # 65536: packets without ports match no port condition
    cls, bits = _classes(M)
    return np.repeat(cls, np.diff(B)).astype(np.int32), bits


def _rate_row(rate):
    row = np.zeros(NRATE)
    if rate is None:
        return row
    if rate.unit == "bit":
        per_ns = rate.value / 8 / 1e9                # bytes per ns
        burst = rate.burst or max(rate.value / 8 / 10, 2 * 1514)
        row[RATE_BYTES] = 1
    else:
        per_ns = rate.value / 1e9
        burst = rate.burst or max(rate.value / 10, 2)
    row[RATE_PER_NS] = per_ns
    row[RATE_BURST] = burst
    row[RATE_QUEUE_NS] = rate.queue_ns or DEFAULT_QUEUE_NS
    row[RATE_PER_FLOW] = 1 if rate.per_flow else 0
    return row


def compile_policy(checked: Checked, ports: list[str], napps: int = 0) -> Compiled:
    """Arrays for the kernel. ``ports``: the bound port names (their order
    gives port ids; the rules' port names were checked against them)."""
    rules: list[RRule] = checked.rules
    R = len(rules) - 1                         # terminal and match rules; the default is row R
    W = max(1, (R + 63) // 64)
    body = rules[:R]
    pid = {p: i for i, p in enumerate(ports)}
    PB = np.empty((256, W), dtype=np.uint64)
    PB[:] = _any_mask(body, "proto", W)
    for r in body:
        if r.proto is not None:
            w, b = _bit(r.index)
            for p in r.proto:
                PB[p, w] |= b
    SAH, SAL, SAC, SAB = _addr_tables(body, "src", W)
    DAH, DAL, DAC, DAB = _addr_tables(body, "dst", W)
    SPC, SPB = _port_tables(body, "sport", W)
    DPC, DPB = _port_tables(body, "dport", W)

    pool: list[int] = []
    hp = bytearray()
    captures: list[str] = []
    tags = list(checked.tags)
    RT = np.zeros((R + 1, NRT), dtype=np.int64)
    RP = np.zeros((R + 1, NRATE))
    RSH = np.zeros((R + 1, NRATE))
    matchrule = []

    def put(values):
        off = len(pool)
        pool.extend(values)
        return off, len(values)

    def ranges(iv):
        flat = []
        for lo, hi in iv:
            flat += [lo, hi]
        off, n = put(flat)
        return off, n // 2

    for r in rules:
        t = RT[r.index]
        t[RT_ACTION] = ACTIONS[r.action]
        t[RT_LINE] = r.line
        t[RT_AF] = r.af
        t[RT_DIR] = {None: 0, "in": 1, "out": 2}[r.direction]
        t[RT_ONMASK] = 0
        if r.on is not None:
            m = 0
            for p in r.on:
                if p in pid:
                    m |= 1 << pid[p]
            t[RT_ONMASK] = m if m else -1 << 63       # named ports none of which is bound: never matches
        t[RT_FLV], t[RT_FLM] = r.flags if r.flags is not None else (0, -1)
        t[RT_VLAN_N] = -1
        if r.vlan is not None:
            t[RT_VLAN_OFF], t[RT_VLAN_N] = ranges(r.vlan)
        t[RT_LEN_N] = -1
        if r.length is not None:
            t[RT_LEN_OFF], t[RT_LEN_N] = ranges(r.length)
        t[RT_STATE] = -1 if r.state is None else sum(1 << s for s in r.state)
        if r.tagged is not None:
            t[RT_TAGGED] = sum(1 << tags.index(x) for x in r.tagged[0] if x in tags)
            t[RT_TAGGED_NEG] = 1 if r.tagged[1] else 0
        t[RT_TAGSET] = (1 << tags.index(r.tag)) if r.tag is not None else 0
        for key, mode_c, neg_c, off_c, n_c in (("app", RT_APP_MODE, RT_APP_NEG, RT_APP_OFF, RT_APP_N),
                                               ("category", RT_CAT_MODE, RT_CAT_NEG, RT_CAT_OFF, RT_CAT_N)):
            ns = getattr(r, key)
            if ns is None:
                t[mode_c] = -1
            else:
                t[mode_c] = 1 if ns.mode == "any" else 0
                t[neg_c] = 1 if ns.neg else 0
                t[off_c], t[n_c] = put(sorted(ns.ids))
        t[RT_HOST_N] = -1
        if r.host is not None:
            pats, neg = r.host
            offs = []
            for p in pats:
                b = p.encode("utf-8", "replace")
                offs += [len(hp), len(b)]
                hp += b
            t[RT_HOST_OFF], n = put(offs)
            t[RT_HOST_N] = n // 2
            t[RT_HOST_NEG] = 1 if neg else 0
        t[RT_ROUTE] = pid.get(r.route, -1) if r.route is not None else -1
        if r.balance is not None:
            t[RT_BAL_OFF], t[RT_BAL_N] = put([pid.get(p, -1) for p in r.balance])
        t[RT_POLICE] = r.index if r.police is not None else -1
        t[RT_SHAPE] = r.index if r.shape is not None else -1
        RP[r.index] = _rate_row(r.police)
        RSH[r.index] = _rate_row(r.shape)
        if r.capture is not None:
            if r.capture not in captures:
                captures.append(r.capture)
            t[RT_CAPTURE] = captures.index(r.capture)
        else:
            t[RT_CAPTURE] = -1
        t[RT_COUNT] = COUNT_KINDS[r.count]
        t[RT_LOG] = 1 if r.log else 0
        t[RT_MATCHBIT] = -1
        if r.action == "match":
            t[RT_MATCHBIT] = len(matchrule)
            matchrule.append(r.index)
        t[RT_NEEDS_APP] = 1 if r.needs_app else 0
    if len(captures) > 63:
        raise ValueError("more than 63 capture files in one policy")
    MW = max(1, (len(matchrule) + 63) // 64)
    return Compiled(rules, W, PB, SAH, SAL, SAC, SAB, DAH, DAL, DAC, DAB, SPC, SPB, DPC, DPB, RT,
                    np.array(pool or [0], dtype=np.int64), np.frombuffer(bytes(hp) or b"\0", dtype=np.uint8).copy(),
                    RP, RSH, np.array(matchrule or [0], dtype=np.int64), MW, list(ports), captures, tags,
                    checked.has_app_rules, napps,
                    stats={"src_bounds": len(SAH), "src_classes": len(SAB), "dst_bounds": len(DAH),
                           "dst_classes": len(DAB), "words": W})
