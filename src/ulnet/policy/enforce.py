"""enforce -- a policy over capture files: ports, inputs merged by time, the stage loop.

NAME
    ulnet.policy.enforce -- offline enforcement (what ``ulnet run`` does)

SYNOPSIS
    run = Enforcer(checked, inputs={"lan": "a.pcap"}, outputs={"wan": "x.pcap"}, batch_size=4096)
    run.run()                       # reads every packet, writes every output
    run.stats()                     # per rule packets/bytes/flows, arcs, counters

DESCRIPTION
    Ports are the names bound by the inputs and outputs (inputs first, in
    order). Each input is read by its own reader; with several inputs the
    packets are merged by timestamp into one batch (one copy of each
    packet: a merged batch views one buffer); with one input the batch views
    the input directly (no copy). Each batch goes through decode, flow
    (and, in the flow table's segments, inspect when the policy needs the
    application, policy and actions), then its packets are written to the
    outputs.

    The other side of a port: with two ports, the other one; with one output
    port, that port; else the only output that is not the port itself, or
    none (then passed packets of flows without route/balance are dropped,
    counted as drop.no_output, and a warning says so at the start).
"""

from __future__ import annotations

import numpy as np
from ulnet.jit import njit
from ulnet.rawmem import copy_bytes

from ulnet.actions import Actions
from ulnet.actions import _kernels as AK
from ulnet.batch import PacketBatch, ENFORCE_BATCH
from ulnet.counters import new_counters
from ulnet.decode import decode
from ulnet.flow import FlowTable
from ulnet.policy import _kernels as PK
from ulnet.policy.compile import compile_policy
from ulnet.policy.splits import splits
from ulnet.policy.stage import PolicyStage
from ulnet.sources import open_capture


def peers(ports: list[str], outputs) -> list[int]:
    out_ids = [k for k, p in enumerate(ports) if p in outputs]
    res = []
    for k in range(len(ports)):
        if len(ports) == 2:
            res.append(1 - k)
        elif len(out_ids) == 1:
            res.append(out_ids[0])
        else:
            others = [j for j in out_ids if j != k]
            res.append(others[0] if len(others) == 1 else -1)
    return res


@njit(cache=True)
def _copy_rows(src, soff, scap, swire, sts, slt, sport, rows, dst, q, doff, dcap, dwire, dts, dlt, dport, k0):
    k = k0
    for r in rows:
        o = soff[r]
        c = scap[r]
        copy_bytes(dst, q, src, o, c)
        doff[k] = q
        dcap[k] = c
        dwire[k] = swire[r]
        dts[k] = sts[r]
        dlt[k] = slt[r]
        dport[k] = sport[r]
        q += c
        k += 1
    return q


class Merger:
    """Several inputs as one stream ordered by timestamp (see the module doc)."""

    def __init__(self, readers, capacity: int):
        self.readers = readers
        self.b = [PacketBatch(capacity) for _ in readers]
        self.pos = [0] * len(readers)
        self.done = [False] * len(readers)
        self.buf = np.zeros(1 << 20, dtype=np.uint8)

    def fill(self, out: PacketBatch) -> int:
        cand_ts, cand_in, cand_row = [], [], []
        horizon = None
        for k, r in enumerate(self.readers):
            b = self.b[k]
            if self.pos[k] >= b.n and not self.done[k]:
                b.n = r.fill(b)
                self.pos[k] = 0
                if not b.n:
                    self.done[k] = True
            if self.pos[k] < b.n:
                ts = np.maximum.accumulate(b.ts[self.pos[k]:b.n])
                if not self.done[k]:
                    horizon = ts[-1] if horizon is None else min(horizon, ts[-1])
                cand_ts.append(ts)
                cand_in.append(np.full(len(ts), k))
                cand_row.append(np.arange(self.pos[k], b.n))
        if not cand_ts:
            return 0
        ts = np.concatenate(cand_ts)
        inp = np.concatenate(cand_in)
        row = np.concatenate(cand_row)
        if horizon is not None:
            keep = ts <= horizon
            ts, inp, row = ts[keep], inp[keep], row[keep]
        order = np.lexsort((row, inp, ts))[: out.capacity]
        inp, row = inp[order], row[order]
        n = len(order)
        need = sum(int(self.b[k].caplen[row[inp == k]].sum()) for k in set(inp.tolist()))
        if need > len(self.buf):
            self.buf = np.zeros(max(need, 2 * len(self.buf)), dtype=np.uint8)
        # rows in the merged order, copied input by input at their merged positions
        q = 0
        pos_of = np.empty(n, dtype=np.int64)
        for k in range(len(self.readers)):
            sel = np.flatnonzero(inp == k)
            if not len(sel):
                continue
            b = self.b[k]
            tmp = PacketBatch(len(sel))
            q = _copy_rows(b.buf, b.off, b.caplen, b.wirelen, b.ts, b.linktype, b.port, row[sel], self.buf, q,
                           tmp.off, tmp.caplen, tmp.wirelen, tmp.ts, tmp.linktype, tmp.port, 0)
            out.off[sel] = tmp.off
            out.caplen[sel] = tmp.caplen
            out.wirelen[sel] = tmp.wirelen
            out.ts[sel] = tmp.ts
            out.linktype[sel] = tmp.linktype
            out.port[sel] = tmp.port
            self.pos[k] += len(sel)
        del pos_of
        out.buf = self.buf
        out.n = n
        return n


class Enforcer:
    def __init__(self, checked, inputs: dict, outputs: dict, batch_size: int = ENFORCE_BATCH,
                 max_flows: int = 1 << 20, app_names=None, app_categories=None, log=None, filter=None):
        self.checked = checked
        self.ports = list(dict.fromkeys(list(inputs) + list(outputs)))
        self.inputs = inputs
        self.outputs = outputs
        self.peer = peers(self.ports, outputs)
        self.compiled = compile_policy(checked, self.ports, len(app_names) if app_names else 0)
        self.app_names = app_names
        self.batch_size = batch_size
        self.counters = new_counters()
        self.readers = [open_capture(path, port=self.ports.index(name)) for name, path in inputs.items()]
        for r in self.readers:
            r.counters = self.counters
        self.filter = filter               # ulnet.filter.Filter: packets it rejects never reach the rules
        if filter is not None:
            from ulnet.pipeline import prepare_filter
            prepare_filter(filter, [r.linktype if r.kind == "pcap" else None for r in self.readers])
        self.nano = (any(r.kind != "pcap" or r.nano for r in self.readers)
                     or any(r.shape is not None for r in checked.rules))
        self.table = FlowTable(max_flows=max_flows)
        self.inspector = None
        needs_app = checked.has_app_rules or any(r.count in ("app", "host") for r in checked.rules)
        if needs_app and app_names:
            from ulnet.inspect import Inspector
            self.inspector = Inspector()
        self.stage = PolicyStage(self.compiled, self.table, self.peer, batch_size, app_categories)
        self.actions = Actions(self.compiled, self.ports, outputs, self.peer, batch_size, self.table.capacity,
                               nanosecond=self.nano)
        self.log = log
        self.problems: list[str] = []
        self.failed = False
        self.seen = 0

    def _after_flow(self, b, i0, i1):
        app = None
        if self.inspector is not None:
            self.inspector.process(b, self.table, self.counters, i0, i1)
            app = self.inspector.app
        self.stage.process(b, i0, i1, app)
        self.actions.act(b, i0, i1, self.stage)
        if self.log is not None:
            for row, rule, kind, tags in self.stage.log_events().tolist():
                self.log(self, b, row, rule, kind, tags)

    def run(self) -> None:
        b = PacketBatch(self.batch_size)
        src = Merger(self.readers, self.batch_size) if len(self.readers) > 1 else None
        try:
            while True:
                n = src.fill(b) if src is not None else self.readers[0].fill(b)
                if not n:
                    break
                if self.filter is not None:
                    n = self.filter.apply(b, n, self.counters)
                    if not n:
                        continue
                b.n = n
                decode(b, self.counters)
                self.table.process(b, self.counters, self._after_flow)
                self.actions.emit(b, self.seen, self.stage.capture)
                self.seen += n
        finally:
            if self.filter is not None:
                self.problems.extend(self.filter.problems)
            for r in self.readers:
                self.problems.extend(r.problems)
                self.failed |= r.failed
                r.close()
            self.actions.close()

    def stats(self) -> dict:
        rs = self.stage.rule_stats()
        rules = []
        for r in self.compiled.rules:
            pk, by, fl = (int(x) for x in rs[r.index])
            rules.append({"rule": r.index, "line": r.line, "text": r.text, "packets": pk, "bytes": by, "flows": fl})
        arcs = {name: int(v) for name, v in zip(AK.NEXT_NAMES, self.actions.counts)}
        arcs["reject.answered_rst"] = int(self.actions.rcounts[0])
        arcs["reject.answered_icmp"] = int(self.actions.rcounts[1])
        arcs["reject.not_answered"] = int(self.actions.rcounts[2])
        arcs["reject.no_output"] = self.actions.no_output_answers
        S = self.stage.S
        out = {"packets": self.seen, "rules": rules, "actions": arcs,
               "policy": {"decisions": int(S[PK.S_DECISIONS]), "redecisions": int(S[PK.S_REDECISIONS]),
                          "non_ip": int(S[PK.S_NON_IP])},
               "outputs": {o.name: {"file": o.path, "packets": o.packets} for o in self.actions.outputs.values()}}
        out.update(splits(self.stage, self.compiled, self.app_names))
        return out
