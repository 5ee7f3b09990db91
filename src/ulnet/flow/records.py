"""Flow records: ended flows (FlowChunk arrays) -> columns with NFStream's names.

``to_columns(chunk)`` builds a dict of numpy arrays / lists, one per field,
vectorised over the chunk; ``FIELDS`` lists the field names in output order.
Addresses become text here (once per flow, never per packet).
"""

from __future__ import annotations

import numpy as np

from ulnet.addr import to_text
from ulnet.flow import FlowChunk, TCP_STATE_NAMES
from ulnet.flow import _kernels as K

TCP_FLAG_NAMES = ("fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr")

BASE_FIELDS = (
    "id", "expiration_id", "src_ip", "src_port", "dst_ip", "dst_port", "protocol", "ip_version", "vlan_id",
    "bidirectional_first_seen_ms", "bidirectional_last_seen_ms", "bidirectional_duration_ms",
    "bidirectional_packets", "bidirectional_bytes",
    "src2dst_packets", "src2dst_bytes", "dst2src_packets", "dst2src_bytes",
    "application_name", "application_category_name", "requested_server_name",
    "tcp_state",
) + tuple(f"{d}_{f}_packets" for d in ("src2dst", "dst2src") for f in TCP_FLAG_NAMES)

STAT_FIELDS = tuple(
    f"{d}_{kind}_{m}"
    for d in ("src2dst", "dst2src", "bidirectional")
    for kind in ("ps", "piat_ms")
    for m in ("min", "mean", "stddev", "max")
)


def fields(statistics: bool) -> tuple[str, ...]:
    return BASE_FIELDS + (STAT_FIELDS if statistics else ())


def to_columns(c: FlowChunk) -> dict[str, object]:
    F, KK = c.F, c.K
    n = len(F)
    meta = F[:, K.F_META]
    proto = meta & 0xFF
    ver = (meta >> 8) & 0xF
    vlan = ((meta >> 12) & 0x1FFF) - 1
    src_is_b = ((meta >> 25) & 1).astype(bool)
    pa = (F[:, K.F_PORTS] >> 16) & 0xFFFF
    pb = F[:, K.F_PORTS] & 0xFFFF
    sport = np.where(src_is_b, pb, pa)
    dport = np.where(src_is_b, pa, pb)
    shi = np.where(src_is_b, KK[:, 2], KK[:, 0]).tolist()
    slo = np.where(src_is_b, KK[:, 3], KK[:, 1]).tolist()
    dhi = np.where(src_is_b, KK[:, 0], KK[:, 2]).tolist()
    dlo = np.where(src_is_b, KK[:, 1], KK[:, 3]).tolist()
    vl = ver.tolist()
    first_ms = F[:, K.F_FIRST] // 1_000_000
    last_ms = F[:, K.F_LAST] // 1_000_000
    reason = ((F[:, K.F_STATE] >> 12) & 0xF) - 1
    state = F[:, K.F_STATE] & 0xF
    has_ports = np.isin(proto, (6, 17, 132))
    cols: dict[str, object] = {
        "id": F[:, K.F_ID],
        "expiration_id": reason,
        "src_ip": [to_text(shi[k], slo[k], vl[k]) for k in range(n)],
        "src_port": np.where(has_ports, sport, 0),
        "dst_ip": [to_text(dhi[k], dlo[k], vl[k]) for k in range(n)],
        "dst_port": np.where(has_ports, dport, 0),
        "protocol": proto,
        "ip_version": ver,
        "vlan_id": np.where(vlan < 0, 0, vlan),
        "bidirectional_first_seen_ms": first_ms,
        "bidirectional_last_seen_ms": last_ms,
        "bidirectional_duration_ms": last_ms - first_ms,
        "bidirectional_packets": F[:, K.F_PK0] + F[:, K.F_PK1],
        "bidirectional_bytes": F[:, K.F_BY0] + F[:, K.F_BY1],
        "src2dst_packets": F[:, K.F_PK0],
        "src2dst_bytes": F[:, K.F_BY0],
        "dst2src_packets": F[:, K.F_PK1],
        "dst2src_bytes": F[:, K.F_BY1],
        "application_name": ["Unknown"] * n,
        "application_category_name": ["Unknown"] * n,
        "requested_server_name": [""] * n,
        "tcp_state": [TCP_STATE_NAMES[s] for s in state.tolist()],
    }
    for di, d in enumerate(("src2dst", "dst2src")):
        for b, f in enumerate(TCP_FLAG_NAMES):
            cols[f"{d}_{f}_packets"] = c.TF[:, di * 8 + b].astype(np.int64)
    if c.ST is not None:
        ST = c.ST
        counts = (F[:, K.F_PK0], F[:, K.F_PK1], F[:, K.F_PK0] + F[:, K.F_PK1])
        for di, d in enumerate(("src2dst", "dst2src", "bidirectional")):
            for ki, kind in enumerate(("ps", "piat_ms")):
                base = di * 8 + ki * 4
                cnt = counts[di].astype(np.float64) - (1.0 if kind == "piat_ms" else 0.0)
                cnt = np.maximum(cnt, 0.0)
                s, ss = ST[:, base + 2], ST[:, base + 3]
                with np.errstate(invalid="ignore", divide="ignore"):
                    mean = np.where(cnt > 0, s / np.maximum(cnt, 1), 0.0)
                    var = np.where(cnt > 1, (ss - cnt * mean * mean) / np.maximum(cnt - 1, 1), 0.0)
                std = np.sqrt(np.maximum(var, 0.0))
                mn = np.where(cnt > 0, ST[:, base], 0.0)
                mx = np.where(cnt > 0, ST[:, base + 1], 0.0)
                cols[f"{d}_{kind}_min"] = mn
                cols[f"{d}_{kind}_mean"] = mean
                cols[f"{d}_{kind}_stddev"] = std
                cols[f"{d}_{kind}_max"] = mx
    return cols
