"""splits -- the per-application and per-host rows of rules that ``count by app`` / ``count by host``.

NAME
    ulnet.policy.splits -- read the splits off a policy stage, add up several

SYNOPSIS
    s = splits(stage, compiled, app_names)    # {"count_by_app": {...}, "count_by_host": {...}}
    total = merge([s_worker0, s_worker1])     # the same shape, summed, host names capped again

DESCRIPTION
    The shape is that of ``ulnet run --stats-json``: ``count_by_app`` is
    ``{rule index (str): {application: {packets, bytes}}}`` (non-zero rows,
    "(not yet known)" for packets before detection), ``count_by_host`` is
    ``{rule index (str): {name: {packets, bytes, flows}}}`` (busiest first,
    then the non-zero special rows "(not yet known)", "(none)", "(other)").
    A key is present only when a rule counts that way. It is plain JSON, so a
    bridge worker can send it to its parent as it is.

    ``merge`` adds up the splits of several stages (the bridge's workers,
    each with its own flow table and its own cap of names per rule). A rule
    keeps at most ``host_cap`` names over all of them, the busiest (by
    packets); the rest are added to "(other)".
"""

from __future__ import annotations

import numpy as np

from ulnet.policy.stage import HOST_CAP, HOST_SPECIAL

NOT_YET_KNOWN = "(not yet known)"


def splits(stage, compiled, app_names) -> dict:
    """The splits of ``stage`` (a PolicyStage running ``compiled``)."""
    out = {}
    cba = stage.CBA
    if cba.shape[1] > 1:
        names = list(app_names or []) + [NOT_YET_KNOWN]
        out["count_by_app"] = {
            str(r.index): {names[a]: {"packets": int(cba[r.index, a, 0]), "bytes": int(cba[r.index, a, 1])}
                           for a in np.flatnonzero(cba[r.index, :, 0]).tolist()}
            for r in compiled.rules if r.count == "app"}
    hc = stage.host_counts()
    if hc:
        out["count_by_host"] = {str(r): {name: {"packets": p, "bytes": b, "flows": f}
                                         for name, (p, b, f) in rows.items()}
                                for r, rows in hc.items()}
    return out


def _add(into: dict, rows: dict) -> None:
    for name, v in rows.items():
        acc = into.setdefault(name, dict.fromkeys(v, 0))
        for k, x in v.items():
            acc[k] += x


def merge(parts: list[dict], host_cap: int = HOST_CAP) -> dict:
    """The sum of several ``splits`` results (see the module documentation)."""
    out: dict = {}
    for kind in ("count_by_app", "count_by_host"):
        if not any(kind in p for p in parts):
            continue
        rules: dict = {}
        for part in parts:
            for r, rows in part.get(kind, {}).items():
                _add(rules.setdefault(r, {}), rows)
        hosts = kind == "count_by_host"
        for r, rows in rules.items():
            busiest = sorted((n for n in rows if not (hosts and n in HOST_SPECIAL)),
                             key=lambda n: (-rows[n]["packets"], n))
            if hosts and len(busiest) > host_cap:
                other = rows.setdefault("(other)", {"packets": 0, "bytes": 0, "flows": 0})
                for n in busiest[host_cap:]:
                    for k in other:
                        other[k] += rows[n][k]
                busiest = busiest[:host_cap]
            special = [n for n in HOST_SPECIAL if n in rows] if hosts else []
            rules[r] = {n: rows[n] for n in busiest + special}
        out[kind] = rules
    return out
