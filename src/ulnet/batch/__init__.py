"""PacketBatch: the one data structure every stage shares.

NAME
    ulnet.batch -- a vector of packets as columns over one byte buffer

DESCRIPTION
    ``buf`` is a uint8 *view* of the mapped capture file (or of a source's
    window, or a ring block); packets are never copied into it. Per packet the
    source fills ``off`` (offset of the frame in ``buf``), ``caplen``,
    ``wirelen``, ``ts`` (int64 nanoseconds since the epoch), ``port`` (which
    input) and ``linktype``.

    Stages write columns into ``hdr`` (int64, shape [capacity, N_HDR], one
    named column per field, see ``ulnet.batch.columns``) and addresses into
    ``addr`` (uint64, shape [capacity, 4]: src hi/lo, dst hi/lo, IPv4 mapped
    into ::ffff:0:0/96). The flow stage fills ``flow_entry`` (row in the flow
    table), ``flow_id``, ``flow_dir`` (0 from the flow's source, 1 back) and
    ``flow_pkt`` (packet number within the flow, from 1); -1 without IP. All arrays are allocated once with the batch and
    reused batch after batch: nothing is allocated per packet or per batch.

    A batch is valid until its source produces the next one (exactly like a
    ring slot): copy what must outlive it.

CAVEATS
    ``n`` packets are valid; rows past ``n`` hold stale data from earlier
    batches.
"""

from __future__ import annotations

import numpy as np

from ulnet.batch.columns import N_HDR, HDR_NAMES

# Packets per batch when reading captures. 1024 keeps a batch's packets and
# columns (about 0.6 MB) inside L2, so the decoder reads what the walker just
# brought in: read + decode 55 against 63 ns a packet at 4096 on a quiet
# machine (bench/bench_decode.py "where the time goes"). On a busy one the
# sizes rank differently from run to run (2026-11-27, 21:48 and three splits
# right after: 1024 fastest in two of the four, 4096 in the other two).
DEFAULT_BATCH = 1024
# ``ulnet flows`` and ``ulnet stats`` (and ulnet.flows()) call the flow table
# and the inspection stage from Python once a batch: at 4096 packets a batch
# ``ulnet flows`` on the benchmark capture took 1.86 against 1.92 s (medians
# of 8 alternated pairs, the pairs' differences -0.085 s).
FLOW_BATCH = 4096
# ``ulnet run`` (the offline policy) pays Python per batch in its stages and
# actions, so it keeps larger batches (1.45-1.60 s against 1.51-1.96 s at
# 1024 on the benchmark capture).
ENFORCE_BATCH = 4096
_EMPTY = np.zeros(0, dtype=np.uint8)


class PacketBatch:
    __slots__ = ("capacity", "n", "buf", "off", "caplen", "wirelen", "ts", "port",
                 "linktype", "hdr", "addr", "flow_entry", "flow_id", "flow_dir", "flow_pkt")

    def __init__(self, capacity: int = DEFAULT_BATCH):
        if capacity < 1:
            raise ValueError("batch size must be at least 1")
        self.capacity = capacity
        self.n = 0
        self.buf = _EMPTY
        self.off = np.zeros(capacity, dtype=np.int64)
        self.caplen = np.zeros(capacity, dtype=np.uint32)
        self.wirelen = np.zeros(capacity, dtype=np.uint32)
        self.ts = np.zeros(capacity, dtype=np.int64)
        self.port = np.zeros(capacity, dtype=np.uint16)
        self.linktype = np.zeros(capacity, dtype=np.uint16)
        self.hdr = np.zeros((capacity, N_HDR), dtype=np.int64)
        self.addr = np.zeros((capacity, 4), dtype=np.uint64)
        # flow stage: table entry, flow id, direction (0 src->dst, 1 back), packet number in flow
        self.flow_entry = np.full(capacity, -1, dtype=np.int64)
        self.flow_id = np.full(capacity, -1, dtype=np.int64)
        self.flow_dir = np.full(capacity, -1, dtype=np.int64)
        self.flow_pkt = np.full(capacity, -1, dtype=np.int64)

    def __len__(self) -> int:
        return self.n

    def col(self, name: str) -> np.ndarray:
        """The first ``n`` values of a decode column, by name (a view)."""
        return self.hdr[: self.n, HDR_NAMES.index(name)]

    def frame(self, i: int) -> bytes:
        """Captured bytes of packet ``i`` (a copy; for tests and printing)."""
        o = int(self.off[i])
        return bytes(self.buf[o:o + int(self.caplen[i])])
