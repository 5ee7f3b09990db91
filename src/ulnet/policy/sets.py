"""sets -- the value sets conditions stand for: address intervals, number ranges.

Addresses are 128-bit integers with IPv4 mapped into ::ffff:0:0/96 (as the
decode stage stores them). A set of addresses or of numbers is a sorted list
of disjoint, non-adjacent closed intervals; negation is the complement in
the domain. These are used by check (subset tests for shadowed rules) and
by compile (class tables for the kernel); none of this runs per packet.
"""

from __future__ import annotations

import ipaddress

ADDR_MAX = (1 << 128) - 1
V4_BASE = 0xFFFF << 32
PORT_MAX = 65535


class BadPrefix(ValueError):
    pass


def parse_prefix(text: str) -> tuple[int, int, int]:
    """'10.0.0.0/8', '10.1.2.3', 'fd00::/8' -> (first, last, version) as
    128-bit integers (IPv4 mapped). BadPrefix with the reason otherwise."""
    addr, _, plen = text.partition("/")
    if ":" in addr:
        try:
            a = int(ipaddress.IPv6Address(addr))
        except ValueError:
            raise BadPrefix(f"'{addr}' is not an IPv6 address") from None
        bits = 128
        version = 6
        base = 0
    else:
        parts = addr.split(".")
        if len(parts) != 4:
            raise BadPrefix(f"'{addr}' is not an IPv4 address (four numbers with dots)")
        a = 0
        for p in parts:
            if not p.isdigit() or int(p) > 255 or (len(p) > 1 and p[0] == "0"):
                raise BadPrefix(f"'{addr}' is not an IPv4 address ('{p}' is not 0-255)")
            a = a << 8 | int(p)
        bits = 32
        version = 4
        base = V4_BASE
    if _:
        if not plen.isdigit():
            raise BadPrefix(f"prefix length '{plen}' is not a number")
        n = int(plen)
        if n > bits:
            raise BadPrefix(f"prefix length {n} is above {bits}")
    else:
        n = bits
    host = (1 << (bits - n)) - 1
    first = a & ~host
    return base + first, base + (first | host), version


def normalize(intervals) -> list[tuple[int, int]]:
    """Sort and merge overlapping or adjacent closed intervals."""
    out: list[list[int]] = []
    for lo, hi in sorted(intervals):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1][1] = hi
        else:
            out.append([lo, hi])
    return [(a, b) for a, b in out]


def complement(iv: list[tuple[int, int]], lo: int, hi: int) -> list[tuple[int, int]]:
    out = []
    cur = lo
    for a, b in iv:
        if a > cur:
            out.append((cur, a - 1))
        cur = max(cur, b + 1)
    if cur <= hi:
        out.append((cur, hi))
    return out


def is_subset(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> bool:
    """Every value of normalized set ``a`` is in normalized set ``b``."""
    import bisect
    for lo, hi in a:
        k = bisect.bisect_right(b, (lo, ADDR_MAX + 1)) - 1
        if k < 0 or b[k][1] < hi:
            return False
    return True


def number_ranges(item, domain_max: int) -> list[tuple[int, int]]:
    """A num/range/cmp/any item as ranges within [0, domain_max]. ValueError with the reason."""
    k = item.kind
    if k == "any":
        return [(0, domain_max)]
    if k == "num":
        if item.a > domain_max:
            raise ValueError(f"{item.a} is above {domain_max}")
        return [(item.a, item.a)]
    if k == "range":
        if item.a > item.b:
            raise ValueError(f"range {item.a}-{item.b} runs backwards")
        if item.b > domain_max:
            raise ValueError(f"{item.b} is above {domain_max}")
        return [(item.a, item.b)]
    if k == "cmp":
        n, op = item.a, item.op
        if n > domain_max and op in ("<", "<=", "!="):
            raise ValueError(f"{n} is above {domain_max}")
        r = {"<": [(0, n - 1)], "<=": [(0, n)], ">": [(n + 1, domain_max)], ">=": [(n, domain_max)],
             "!=": [(0, n - 1), (n + 1, domain_max)]}[op]
        return [(a, min(b, domain_max)) for a, b in r if a <= b and a <= domain_max]
    raise TypeError(k)
