"""The running numbers of a live command: a rich view on a terminal, or JSON lines.

``Snapshot`` turns cumulative counters into one interval's rates; ``JsonLines``
prints one object per interval; ``RichView`` redraws a small table. Both take
the same ``Snapshot`` so the numbers are the same whatever the display.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from ulnet.counters import (C_SRC_PACKETS, C_SRC_BYTES, C_LIVE_KERNEL_DROPS, C_LIVE_FREEZE, C_LIVE_TX_PACKETS,
                            C_LIVE_TX_BYTES, C_LIVE_TX_RING_FULL, C_LIVE_TX_TOO_BIG, C_LIVE_TAP_WRITE_FAILED,
                            C_LIVE_POLICY_DROPPED)

OUR_DROPS = (C_LIVE_TX_RING_FULL, C_LIVE_TX_TOO_BIG, C_LIVE_TAP_WRITE_FAILED)


class Snapshot:
    """Differences between successive readings of the counters."""

    def __init__(self, port_names: list[str]):
        self.names = port_names
        self.last = None
        self.last_ports = None
        self.t0 = self.t = time.monotonic()

    def take(self, counters: np.ndarray, ports: np.ndarray, flows: int, per_worker=None) -> dict:
        now = time.monotonic()
        c = counters.astype(np.int64)
        prev = self.last if self.last is not None else np.zeros_like(c)
        pprev = self.last_ports if self.last_ports is not None else np.zeros_like(ports)
        dt = max(now - self.t, 1e-9)
        d = c - prev
        out = {
            "time": round(time.time(), 3),
            "interval_s": round(dt, 3),
            "rx_packets": int(c[C_SRC_PACKETS]),
            "rx_bytes": int(c[C_SRC_BYTES]),
            "tx_packets": int(c[C_LIVE_TX_PACKETS]),
            "tx_bytes": int(c[C_LIVE_TX_BYTES]),
            "rx_pps": round(d[C_SRC_PACKETS] / dt, 1),
            "rx_bps": round(8 * d[C_SRC_BYTES] / dt, 1),
            "tx_pps": round(d[C_LIVE_TX_PACKETS] / dt, 1),
            "tx_bps": round(8 * d[C_LIVE_TX_BYTES] / dt, 1),
            "kernel_drops": int(c[C_LIVE_KERNEL_DROPS] + c[C_LIVE_FREEZE]),
            "drops": int(sum(c[i] for i in OUR_DROPS)),
            "policy_dropped": int(c[C_LIVE_POLICY_DROPPED]),
            "flows": int(flows),
            "flows_per_worker": [int(f) for f in per_worker] if per_worker is not None else [int(flows)],
            "ports": {n: {"rx_packets": int(ports[k, 0]), "rx_bytes": int(ports[k, 1]),
                          "tx_packets": int(ports[k, 2]),
                          "rx_pps": round((ports[k, 0] - pprev[k, 0]) / dt, 1)}
                      for k, n in enumerate(self.names)},
            "applications": None,      # top applications: with the inspection stage
        }
        self.last, self.last_ports, self.t = c, ports.copy(), now
        return out


class JsonLines:
    def __init__(self, file=None):
        self.file = file or sys.stdout

    def show(self, snap: dict) -> None:
        self.file.write(json.dumps(snap) + "\n")
        self.file.flush()

    def close(self) -> None:
        pass


def _si(v: float, unit: str) -> str:
    for k, p in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= p:
            return f"{v / p:.2f} {k}{unit}"
    return f"{v:.0f} {unit}"


class RichView:
    """A table redrawn in place on standard error (only on a terminal)."""

    def __init__(self, title: str):
        from rich.console import Console
        from rich.live import Live
        self.title = title
        self.live = Live(console=Console(stderr=True), auto_refresh=False, transient=False)
        self.live.start()

    def show(self, s: dict) -> None:
        from rich.table import Table
        t = Table(title=self.title, expand=False)
        for col in ("port", "rx packets", "rx/s", "tx packets"):
            t.add_column(col, justify="right")
        for name, p in s["ports"].items():
            t.add_row(name, f"{p['rx_packets']:,}", _si(p["rx_pps"], "pps"), f"{p['tx_packets']:,}")
        t.caption = (f"rx {_si(s['rx_pps'], 'pps')} {_si(s['rx_bps'], 'bit/s')} · tx {_si(s['tx_pps'], 'pps')} "
                     f"{_si(s['tx_bps'], 'bit/s')} · drops: kernel {s['kernel_drops']:,} ours {s['drops']:,} "
                     f"policy {s['policy_dropped']:,} · flows {s['flows']:,} · apps: pending (inspection)")
        self.live.update(t, refresh=True)

    def close(self) -> None:
        self.live.stop()


def make_view(title: str, interval: float | None, quiet: bool = False):
    """JSON lines when ``interval`` is given, a rich view on a terminal, else None."""
    if interval is not None:
        return JsonLines()
    if not quiet and sys.stderr.isatty():
        return RichView(title)
    return None
