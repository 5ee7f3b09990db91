"""stage -- the policy stage over a batch: a verdict per flow, looked up per packet.

NAME
    ulnet.policy.stage -- PolicyStage

SYNOPSIS
    stage = PolicyStage(compiled, flow_table, peer, batch_capacity)
    stage.process(batch, i0, i1, app=None)      # after flow (and inspect) for packets i0..i1
    stage.rule, stage.act, stage.out, ...       # per-packet verdict columns (rows i0..i1)
    stage.rule_stats()                          # per rule: packets, bytes, flows
    stage.host_counts()                         # count by host: per rule, per server name

DESCRIPTION
    The stage owns the per-flow verdict cache ``V`` (int64 [flow capacity,
    NV], indexed by flow entry, see _kernels) and the flow's match set
    ``MS`` (a bit per match rule). A flow is decided on its first packet and
    once more when its application becomes known (only if the policy has
    app, category or host conditions). A reused flow entry is told apart by
    its flow id. Per packet the kernel reads the cached verdict, bumps the
    per-rule counters and writes the verdict columns the actions read:
    ``rule`` (deciding rule, R = default), ``act`` (A_PASS...), ``out``
    (route/balance port, -1 none), ``inp`` (port the flow came in on),
    ``police``, ``shape`` (rule or -1), ``capture`` (bit per capture file).
    Packets without IP get rule -1 and act pass.

    ``app`` is the per-packet application column of the inspection stage
    (the flow's application after that packet, 0 while unknown); the flow
    table's F_APP field tells when detection has given up.

    ``count by host`` splits a rule's packets, bytes and flows by the
    flow's requested_server_name (the flow table's META pool), ASCII
    lower-cased, fixed when the flow's application becomes known (the
    moment host conditions look at it too): packets before that count as
    "(not yet known)", a flow known without a name as "(none)". A flow
    counts in "(not yet known)" (its first packet) and again under its
    name. Each rule has at most ``host_cap`` names (default 10,000); the
    rest count as "(other)". The names are interned once for all rules.

    Memory: 8 x (14 + match words) bytes per flow of capacity; with count
    by host, about 240 bytes per name the host table holds
    (host_cap x rules that count by host).
"""

from __future__ import annotations

import numpy as np

from ulnet.flow import _kernels as FK
from ulnet.policy import _kernels as K
from ulnet.policy.compile import Compiled

LOG_ROWS = 1 << 14
HOST_CAP = 10_000
HOST_SPECIAL = ("(not yet known)", "(none)", "(other)")    # K.H_NOTYET, K.H_NONE, K.H_OTHER


def _pow2(n: int) -> int:
    return 1 << max(1, (int(n) - 1).bit_length())


class PolicyStage:
    def __init__(self, compiled: Compiled, table, peer: np.ndarray, capacity: int, app_categories=None,
                 host_cap: int = HOST_CAP):
        c = compiled
        self.c = c
        self.table = table
        cap = table.capacity
        R = len(c.rules) - 1
        self.V = np.zeros((cap, K.NV), dtype=np.int64)
        self.V[:, K.V_FID] = -1
        self.MS = np.zeros((cap, c.MW), dtype=np.int64)
        self.RSTAT = np.zeros((R + 1, 3), dtype=np.int64)
        self.napps = max(c.napps, 1)
        by_app = any(r.count == "app" for r in c.rules)
        self.CBA = np.zeros((R + 1, self.napps + 1 if by_app else 1, 2), dtype=np.int64)
        nh = sum(r.count == "host" for r in c.rules)
        self.host_cap = int(host_cap)
        nn = self.host_cap * nh if nh else 1
        self.HNAME = np.zeros((nn, FK.M_NAME_MAX), dtype=np.uint8)
        self.HLEN = np.zeros(nn, dtype=np.int64)
        self.HHASH = np.zeros(nn, dtype=np.uint64)
        self.HIX = np.full(_pow2(2 * nn), -1, dtype=np.int64)
        self.PKEY = np.zeros(nn, dtype=np.int64)
        self.PC = np.zeros((nn, 3), dtype=np.int64)
        self.PIX = np.full(_pow2(2 * nn), -1, dtype=np.int64)
        self.NHR = np.zeros(R + 1, dtype=np.int64)
        self.HSPEC = np.zeros((R + 1, 3, 3), dtype=np.int64)
        self.HST = np.zeros(K.NHST, dtype=np.int64)
        self.S = np.zeros(K.NS, dtype=np.int64)
        self.LOGB = np.zeros((LOG_ROWS, 4), dtype=np.int64)
        self.PEER = np.asarray(peer, dtype=np.int64)
        self.APPCAT = np.asarray(app_categories if app_categories is not None else [0], dtype=np.int64)
        self.cand = np.zeros(c.W, dtype=np.uint64)
        self.mset = np.zeros(c.MW, dtype=np.uint64)
        self.arrays = c.arrays()
        self._zero_app = np.zeros(capacity, dtype=np.int64)
        self.rule = np.zeros(capacity, dtype=np.int64)
        self.act = np.zeros(capacity, dtype=np.int64)
        self.out = np.zeros(capacity, dtype=np.int64)
        self.inp = np.zeros(capacity, dtype=np.int64)
        self.police = np.zeros(capacity, dtype=np.int64)
        self.shape = np.zeros(capacity, dtype=np.int64)
        self.capture = np.zeros(capacity, dtype=np.int64)

    def process(self, b, i0: int, i1: int, app=None) -> None:
        """Decide and look up packets i0..i1 of batch ``b`` (flow columns filled)."""
        if i1 <= i0:
            return
        if len(self.rule) < b.capacity:
            raise ValueError("batch larger than the stage was made for")
        t = self.table
        use_app = app is not None
        self.S[K.S_NLOG] = 0
        K.decide_batch(i0, i1, b.hdr, b.addr, b.wirelen, b.port, b.flow_entry, b.flow_id, b.flow_dir,
                       app if use_app else self._zero_app, t.F, t.META, *self.arrays,
                       self.APPCAT, self.PEER, self.c.has_app and use_app, use_app, self.V, self.MS, self.RSTAT,
                       self.CBA, self.S, self.LOGB,
                       self.host_cap, self.HNAME, self.HLEN, self.HHASH, self.HIX, self.PIX, self.PKEY, self.PC,
                       self.NHR, self.HSPEC, self.HST,
                       self.rule, self.act, self.out, self.inp, self.police, self.shape, self.capture, self.cand,
                       self.mset)

    def log_events(self):
        """(packet row, rule, 0 decided / 1 decided again with the application, tags) since process()."""
        return self.LOGB[: int(self.S[K.S_NLOG])]

    def rule_stats(self) -> np.ndarray:
        """int64 [R + 1, 3]: packets, bytes, flows per rule (the default last)."""
        return self.RSTAT

    def host_counts(self) -> dict:
        """Count by host: {rule index: {name: (packets, bytes, flows)}} for the
        rules that count by host, names by packets (most first), then the
        non-zero special rows ("(not yet known)", "(none)", "(other)")."""
        out = {}
        n = int(self.HST[K.HST_PAIRS])
        nn = self.HNAME.shape[0]
        keys = self.PKEY[:n]
        rules, hids = keys // nn, keys % nn
        for r in self.c.rules:
            if r.count != "host":
                continue
            sel = np.flatnonzero(rules == r.index)
            sel = sel[np.lexsort((sel, -self.PC[sel, 0]))]
            rows = {}
            for x in sel.tolist():
                h = int(hids[x])
                name = self.HNAME[h, :int(self.HLEN[h])].tobytes().decode("utf-8", "replace")
                rows[name] = tuple(int(v) for v in self.PC[x])
            for k, name in enumerate(HOST_SPECIAL):
                v = self.HSPEC[r.index, k]
                if v[0]:
                    rows[name] = tuple(int(t) for t in v)
            out[r.index] = rows
        return out
