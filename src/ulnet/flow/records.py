"""Flow records: ended flows (FlowChunk arrays) -> columns with NFStream's names.

``to_columns(chunk)`` builds a dict of numpy arrays / lists, one per field,
vectorised over the chunk; ``FIELDS`` lists the field names in output order.
Addresses become text here (once per flow, never per packet).
"""

from __future__ import annotations

import numpy as np

from ulnet.inspect import ports as _ports
from ulnet.inspect.registry import NAMES as APP_NAMES, CATEGORIES as APP_CATEGORIES
from ulnet.flow import FlowChunk, TCP_STATE_NAMES
from ulnet.flow import _kernels as K
from ulnet.flow.text import address_array, meta_array, take_names
from ulnet.jit import njit

TCP_FLAG_NAMES = ("fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr")

BASE_FIELDS = (
    "id", "expiration_id", "src_ip", "src_port", "dst_ip", "dst_port", "protocol", "ip_version", "vlan_id",
    "bidirectional_first_seen_ms", "bidirectional_last_seen_ms", "bidirectional_duration_ms",
    "bidirectional_packets", "bidirectional_bytes",
    "src2dst_packets", "src2dst_bytes", "dst2src_packets", "dst2src_bytes",
    "application_name", "application_category_name", "application_confidence", "dpi_packets",
    "requested_server_name", "user_agent", "alpn", "dns_query_type",
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


CONFIDENCE_NAMES = ("none", "port", "payload", "protocol")


def app_ids(c: FlowChunk) -> tuple[np.ndarray, np.ndarray]:
    """Application id (index into the registry's NAMES) and confidence code
    (index into CONFIDENCE_NAMES) of each flow of a chunk, with the port
    guess applied: what application_name / application_confidence say,
    as arrays (for aggregates that need no text)."""
    D, _ = derived(c)
    return _app_ids(c.F, D[:, D_PROTO], D[:, D_SPORT], D[:, D_DPORT])


def _app_ids(F, proto, sport, dport):
    """``sport``/``dport``: the record's ports (0 for protocols without)."""
    a = F[:, K.F_APP]
    app = (a >> K.A_APP_SHIFT) & K.APP_MASK
    conf = (a >> K.A_CONF_SHIFT) & 3
    guess = _ports.guess(proto, sport, dport)
    by_port = (app == 0) & (guess > 0)
    return np.where(by_port, guess, app), np.where(by_port, 1, np.where(app == 0, 0, conf))


def _app_columns(F, META, proto, sport, dport) -> dict[str, object]:
    app, conf = _app_ids(F, proto, sport, dport)
    dpi = (F[:, K.F_APP] >> K.A_DPI_SHIFT) & 0xFF
    qtype = (META[:, K.M_QTYPE].astype(np.int64) << 8) | META[:, K.M_QTYPE + 1]
    return {
        "application_name": take_names(APP_NAMES, app),
        "application_category_name": take_names(APP_CATEGORIES, app),
        "application_confidence": take_names(CONFIDENCE_NAMES, conf),
        "dpi_packets": (dpi & 0xF) + (dpi >> 4),
        "requested_server_name": meta_array(META, K.M_NAME, K.M_NAME_MAX),
        "user_agent": meta_array(META, K.M_UA, K.M_UA_MAX),
        "alpn": meta_array(META, K.M_ALPN, K.M_ALPN_MAX),
        "dns_query_type": qtype,
    }


# the integer columns derived from a chunk's F, K and TF rows, one row per flow
(D_PROTO, D_VER, D_VLAN, D_SPORT, D_DPORT, D_FIRST, D_LAST, D_DUR,
 D_REASON, D_STATE, D_BIPK, D_BIBY, D_TF) = range(13)
ND = D_TF + 16


@njit(cache=True)
def _derive(F, KK, TF, D, A):
    """One pass over the chunk instead of some forty numpy passes: D gets
    the integer columns (D_*), A the source and destination addresses
    (hi, lo, hi, lo) in the record's direction."""
    for i in range(F.shape[0]):
        key = F[i, K.F_KEY]
        proto = (key >> 32) & 0xFF
        vlan = ((key >> 44) & 0x1FFF) - 1
        pa = (key >> 16) & 0xFFFF
        pb = key & 0xFFFF
        if not (proto == 6 or proto == 17 or proto == 132):     # no ports
            pa = pb = 0
        if (key >> K.KEY_SRC_IS_B) & 1:
            sp, dp = pb, pa
            A[i, 0], A[i, 1], A[i, 2], A[i, 3] = KK[i, 2], KK[i, 3], KK[i, 0], KK[i, 1]
        else:
            sp, dp = pa, pb
            A[i, 0], A[i, 1], A[i, 2], A[i, 3] = KK[i, 0], KK[i, 1], KK[i, 2], KK[i, 3]
        first = F[i, K.F_FIRST] // 1_000_000
        last = F[i, K.F_LAST] // 1_000_000
        st = F[i, K.F_STATE]
        D[i, D_PROTO] = proto
        D[i, D_VER] = (key >> 40) & 0xF
        D[i, D_VLAN] = vlan if vlan > 0 else 0
        D[i, D_SPORT] = sp
        D[i, D_DPORT] = dp
        D[i, D_FIRST] = first
        D[i, D_LAST] = last
        D[i, D_DUR] = last - first
        D[i, D_REASON] = ((st >> 12) & 0xF) - 1
        D[i, D_STATE] = st & 0xF
        D[i, D_BIPK] = F[i, K.F_PK0] + F[i, K.F_PK1]
        D[i, D_BIBY] = F[i, K.F_BY0] + F[i, K.F_BY1]
        for b in range(16):
            D[i, D_TF + b] = TF[i, b]


def derived(c: FlowChunk) -> tuple[np.ndarray, np.ndarray]:
    """(D, A) of a chunk: see _derive."""
    n = len(c.F)
    D = np.empty((n, ND), dtype=np.int64)
    A = np.empty((n, 4), dtype=np.uint64)
    _derive(c.F, c.K, c.TF, D, A)
    return D, A


def to_columns(c: FlowChunk) -> dict[str, object]:
    F = c.F
    D, A = derived(c)
    ver = D[:, D_VER]
    cols: dict[str, object] = {
        "id": F[:, K.F_ID],
        "expiration_id": D[:, D_REASON],
        "src_ip": address_array(A[:, 0], A[:, 1], ver),
        "src_port": D[:, D_SPORT],
        "dst_ip": address_array(A[:, 2], A[:, 3], ver),
        "dst_port": D[:, D_DPORT],
        "protocol": D[:, D_PROTO],
        "ip_version": ver,
        "vlan_id": D[:, D_VLAN],
        "bidirectional_first_seen_ms": D[:, D_FIRST],
        "bidirectional_last_seen_ms": D[:, D_LAST],
        "bidirectional_duration_ms": D[:, D_DUR],
        "bidirectional_packets": D[:, D_BIPK],
        "bidirectional_bytes": D[:, D_BIBY],
        "src2dst_packets": F[:, K.F_PK0],
        "src2dst_bytes": F[:, K.F_BY0],
        "dst2src_packets": F[:, K.F_PK1],
        "dst2src_bytes": F[:, K.F_BY1],
        **_app_columns(F, c.META, D[:, D_PROTO], D[:, D_SPORT], D[:, D_DPORT]),
        "tcp_state": take_names(TCP_STATE_NAMES, D[:, D_STATE]),
    }
    for di, d in enumerate(("src2dst", "dst2src")):
        for b, f in enumerate(TCP_FLAG_NAMES):
            cols[f"{d}_{f}_packets"] = D[:, D_TF + di * 8 + b]
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
