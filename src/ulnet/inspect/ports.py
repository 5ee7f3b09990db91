"""Last-resort application guesses from ports (confidence "port").

Built once from the registry's port lists: two lookup arrays (TCP, UDP) of
65536 application ids. Used at export, vectorised over a chunk of flows,
only for flows no matcher decided: the responder's port first, then the
initiator's.
"""

from __future__ import annotations

import numpy as np

from ulnet.inspect.registry import APPS

_TABLES: dict[int, np.ndarray] = {}


def _build():
    tcp = np.zeros(65536, dtype=np.int64)
    udp = np.zeros(65536, dtype=np.int64)
    for i, a in enumerate(APPS, start=1):
        if isinstance(a.transport, int):
            continue
        for port in a.ports:
            if a.transport in ("tcp", "both") and not tcp[port]:
                tcp[port] = i
            if a.transport in ("udp", "both") and not udp[port]:
                udp[port] = i
    _TABLES[6] = tcp
    _TABLES[17] = udp


def guess(proto: np.ndarray, src_port: np.ndarray, dst_port: np.ndarray) -> np.ndarray:
    """Application id by port for each flow (0: no guess)."""
    if not _TABLES:
        _build()
    out = np.zeros(len(proto), dtype=np.int64)
    for p, table in _TABLES.items():
        m = proto == p
        if m.any():
            g = table[dst_port[m]]
            g = np.where(g == 0, table[src_port[m]], g)
            out[m] = g
    return out
