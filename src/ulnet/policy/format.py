"""format -- AST -> canonical rule text (what ``ulnet check -v`` prints).

One statement per line, single spaces, clauses in a fixed order (the order
of docs/rules.md: action, direction, on, inet/inet6, proto, from, to, app,
category, host, flags, vlan, length, state, tagged, then route/balance,
police, shape, count, tag, capture, log). Comments are not kept.
``parse(format(p)) == p`` for every policy ``parse`` accepts (tested over
every example in the docs and the tests).
"""

from __future__ import annotations

from ulnet.policy.ast import Endpoint, Item, MacroDef, Policy, Rate, Rule, Spec, TableDef


def fmt_item(it: Item) -> str:
    k = it.kind
    if k == "table":
        return f"<{it.text}>"
    if k == "macro":
        return f"${it.text}"
    if k == "string":
        return fmt_string(it.text)
    if k == "range":
        return f"{it.a}-{it.b}"
    if k == "cmp":
        return f"{it.op}{it.a}"
    if k == "num":
        return str(it.a)
    return it.text


def fmt_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def fmt_spec(s: Spec) -> str:
    if s.is_list:
        body = "{ " + " ".join(fmt_item(i) for i in s.items) + " }" if s.items else "{ }"
    else:
        body = fmt_item(s.items[0])
    return ("!" + body) if s.neg else body


def _fmt_endpoint(e: Endpoint) -> str:
    parts = []
    if e.addr is not None:
        parts.append(fmt_spec(e.addr))
    if e.port is not None:
        parts.append("port " + fmt_spec(e.port))
    return " ".join(parts)


def _scaled(v: int, units) -> str:
    for name, mult in units:
        if v % mult == 0:
            return f"{v // mult}{name}"
    return str(v)


BIT_UNITS = (("Gbit", 10**9), ("Mbit", 10**6), ("kbit", 10**3), ("bit", 1))
PPS_UNITS = (("Mpps", 10**6), ("kpps", 10**3), ("pps", 1))
BYTE_UNITS = (("MB", 10**6), ("kB", 10**3), ("B", 1))
TIME_UNITS = (("s", 10**9), ("ms", 10**6), ("us", 10**3), ("ns", 1))


def fmt_rate(r: Rate) -> str:
    out = _scaled(r.value, BIT_UNITS if r.unit == "bit" else PPS_UNITS)
    if r.burst:
        out += " burst " + (_scaled(r.burst, BYTE_UNITS) if r.unit == "bit" else f"{r.burst}p")
    if r.queue_ns:
        out += " queue " + _scaled(r.queue_ns, TIME_UNITS)
    if r.per_flow:
        out += " per flow"
    return out


def fmt_rule(r: Rule) -> str:
    w = ["default " + r.action if r.default else r.action]
    if r.direction:
        w.append(r.direction)
    if r.on is not None:
        w.append("on " + fmt_spec(r.on))
    if r.af:
        w.append(r.af)
    if r.proto is not None:
        w.append("proto " + fmt_spec(r.proto))
    if r.src is not None:
        w.append("from " + _fmt_endpoint(r.src))
    if r.dst is not None:
        w.append("to " + _fmt_endpoint(r.dst))
    for name in ("app", "category", "host"):
        v = getattr(r, name)
        if v is not None:
            w.append(f"{name} {fmt_spec(v)}")
    if r.flags is not None:
        w.append("flags " + r.flags)
    for name in ("vlan", "length", "state", "tagged"):
        v = getattr(r, name)
        if v is not None:
            w.append(f"{name} {fmt_spec(v)}")
    if r.route is not None:
        w.append("route " + fmt_spec(r.route))
    if r.balance is not None:
        w.append("balance " + fmt_spec(r.balance))
    if r.police is not None:
        w.append("police " + fmt_rate(r.police))
    if r.shape is not None:
        w.append("shape " + fmt_rate(r.shape))
    if r.count is not None:
        w.append("count" if r.count == "rule" else f"count by {r.count}")
    if r.tag is not None:
        w.append("tag " + r.tag)
    if r.capture is not None:
        w.append("capture " + fmt_string(r.capture))
    if r.log:
        w.append("log")
    return " ".join(w)


def fmt_statement(s) -> str:
    if isinstance(s, Rule):
        return fmt_rule(s)
    if isinstance(s, TableDef):
        if s.file is not None:
            return f"table <{s.name}> file {fmt_string(s.file)}"
        return f"table <{s.name}> {{ " + " ".join(fmt_item(i) for i in s.items) + " }" if s.items \
            else f"table <{s.name}> {{ }}"
    if isinstance(s, MacroDef):
        return f"{s.name} = {fmt_spec(s.value)}"
    raise TypeError(type(s))


def format_policy(p: Policy) -> str:
    """The canonical text of a policy (ends with a newline unless empty)."""
    lines = [fmt_statement(s) for s in p.statements]
    return "".join(line + "\n" for line in lines)
