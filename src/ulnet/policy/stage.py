"""stage -- the policy stage over a batch: a verdict per flow, looked up per packet.

NAME
    ulnet.policy.stage -- PolicyStage

SYNOPSIS
    stage = PolicyStage(compiled, flow_table, peer, batch_capacity)
    stage.process(batch, i0, i1, app=None)      # after flow (and inspect) for packets i0..i1
    stage.rule, stage.act, stage.out, ...       # per-packet verdict columns (rows i0..i1)
    stage.rule_stats()                          # per rule: packets, bytes, flows

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

    Memory: 8 x (13 + match words) bytes per flow of capacity.
"""

from __future__ import annotations

import numpy as np

from ulnet.policy import _kernels as K
from ulnet.policy.compile import Compiled

LOG_ROWS = 1 << 14


class PolicyStage:
    def __init__(self, compiled: Compiled, table, peer: np.ndarray, capacity: int, app_categories=None):
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
                       self.CBA,
                       self.S, self.LOGB, self.rule, self.act, self.out, self.inp, self.police, self.shape,
                       self.capture, self.cand, self.mset)

    def log_events(self):
        """(packet row, rule, 0 decided / 1 decided again with the application, tags) since process()."""
        return self.LOGB[: int(self.S[K.S_NLOG])]

    def rule_stats(self) -> np.ndarray:
        """int64 [R + 1, 3]: packets, bytes, flows per rule (the default last)."""
        return self.RSTAT
