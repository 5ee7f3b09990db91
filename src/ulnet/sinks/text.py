"""Per-packet text and JSON lines (``ulnet peek``).

Formatting is the one place that touches packets one by one in Python: it is
output, bounded by the terminal or the pipe it writes to. Columns are pulled
out of the batch as whole lists first (``tolist``), then joined.
"""

from __future__ import annotations

import numpy as np

from ulnet.addr import to_text
from ulnet.batch import PacketBatch
from ulnet.batch.columns import (
    H_ERROR, H_ETHERTYPE, H_VLAN, H_IP_VERSION, H_IP_LEN, H_PROTO, H_SPORT, H_DPORT, H_TCP_FLAGS,
    H_ICMP_TYPE, H_ICMP_CODE, H_FRAG, H_FRAG_OFF, H_TUNNEL, H_PAYLOAD_LEN, TUNNEL_NAMES, FRAG_MF,
)
from ulnet.counters import NAMES

_WEEKDAYS = ("Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed")  # 1970-01-01 was a Thursday


def time_strings(ts: np.ndarray) -> list[str]:
    """'Mon 2009-10-05 06:06:07.492060' (UTC, microseconds, truncated) per timestamp."""
    secs = ts // 1_000_000_000
    usec = (ts - secs * 1_000_000_000) // 1000
    days = secs // 86400
    stamp = np.datetime_as_string(secs.astype("datetime64[s]"), unit="s")
    return [f"{_WEEKDAYS[d % 7]} {s[:10]} {s[11:]}.{u:06d}"
            for d, s, u in zip(days.tolist(), stamp.tolist(), usec.tolist())]


def _endpoint(a_hi, a_lo, ver, port):
    ip = to_text(a_hi, a_lo, ver)
    if port < 0:
        return ip
    return f"[{ip}]:{port}" if ver == 6 else f"{ip}:{port}"


def _columns(batch: PacketBatch):
    n = batch.n
    return batch.hdr[:n].tolist(), batch.addr[:n].tolist()


def format_text(batch: PacketBatch, flow_ids=None, apps=None) -> str:
    n = batch.n
    if n == 0:
        return ""
    times = time_strings(batch.ts[:n])
    rows, addrs = _columns(batch)
    wirelen = batch.wirelen[:n].tolist()
    out = []
    for i in range(n):
        h = rows[i]
        ver = h[H_IP_VERSION]
        if ver == 0:
            err = h[H_ERROR]
            if err:
                out.append(f"time: {times[i]}, error: {NAMES[err]}, wire_len: {wirelen[i]}\n")
            else:
                out.append(f"time: {times[i]}, non-ip: ethertype 0x{h[H_ETHERTYPE] & 0xFFFF:04x}, "
                           f"wire_len: {wirelen[i]}\n")
            continue
        a = addrs[i]
        flow = "-" if flow_ids is None else flow_ids[i]
        app = "-" if apps is None else apps[i]
        out.append(f"time: {times[i]}, flow: {flow}, ip_type: {h[H_PROTO]}, ip_len: {h[H_IP_LEN]}, "
                   f"src: {_endpoint(a[0], a[1], ver, h[H_SPORT])}, "
                   f"dst: {_endpoint(a[2], a[3], ver, h[H_DPORT])}, app: {app}\n")
    return "".join(out)


def _j(v):
    return "null" if v < 0 else str(v)


def _js(s):
    return "null" if s is None else f'"{s}"'


def format_jsonl(batch: PacketBatch, flow_ids=None, apps=None) -> str:
    n = batch.n
    if n == 0:
        return ""
    rows, addrs = _columns(batch)
    ts = batch.ts[:n].tolist()
    wl = batch.wirelen[:n].tolist()
    cl = batch.caplen[:n].tolist()
    lt = batch.linktype[:n].tolist()
    out = []
    for i in range(n):
        h = rows[i]
        ver = h[H_IP_VERSION]
        a = addrs[i]
        if ver:
            src = f'"{to_text(a[0], a[1], ver)}"'
            dst = f'"{to_text(a[2], a[3], ver)}"'
        else:
            src = dst = "null"
        t = ts[i]
        sec, ns = divmod(t, 1_000_000_000)
        err = h[H_ERROR]
        flow = "null" if flow_ids is None or flow_ids[i] < 0 else flow_ids[i]
        app = "null" if apps is None or flow == "null" else _js(apps[i])
        fr = h[H_FRAG]
        out.append(
            f'{{"ts": {sec}.{ns:09d}, "wire_len": {wl[i]}, "cap_len": {cl[i]}, "linktype": {lt[i]}, '
            f'"ip_version": {ver if ver else "null"}, "src_ip": {src}, "dst_ip": {dst}, '
            f'"protocol": {_j(h[H_PROTO])}, "src_port": {_j(h[H_SPORT])}, "dst_port": {_j(h[H_DPORT])}, '
            f'"vlan_id": {_j(h[H_VLAN])}, "ip_len": {_j(h[H_IP_LEN])}, "tcp_flags": {_j(h[H_TCP_FLAGS])}, '
            f'"icmp_type": {_j(h[H_ICMP_TYPE])}, "icmp_code": {_j(h[H_ICMP_CODE])}, '
            f'"frag_offset": {h[H_FRAG_OFF]}, "more_fragments": {"true" if fr & FRAG_MF else "false"}, '
            f'"tunnel": {_js(TUNNEL_NAMES[h[H_TUNNEL]] if h[H_TUNNEL] else None)}, '
            f'"payload_len": {h[H_PAYLOAD_LEN]}, "flow_id": {flow}, "application_name": {app}, '
            f'"error": {_js(NAMES[err] if err else None)}}}\n')
    return "".join(out)
