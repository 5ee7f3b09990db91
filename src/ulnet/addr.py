"""IP addresses as ulnet stores them: two uint64 halves, IPv4 mapped into
::ffff:0:0/96. Conversions to and from text, for output and tests only
(never on the hot path)."""

from __future__ import annotations

import ipaddress
import socket
import struct

V4_MAPPED_LO = 0x0000FFFF00000000
_cache: dict[tuple[int, int, int], str] = {}


def to_text(hi: int, lo: int, version: int) -> str:
    """Text form of an address (dotted quad for IPv4, RFC 5952 for IPv6)."""
    key = (hi, lo, version)
    s = _cache.get(key)
    if s is None:
        if version == 4:
            s = socket.inet_ntop(socket.AF_INET, struct.pack(">I", lo & 0xFFFFFFFF))
        else:
            s = socket.inet_ntop(socket.AF_INET6, struct.pack(">QQ", hi, lo))
        if len(_cache) > 1 << 16:
            _cache.clear()
        _cache[key] = s
    return s


def from_text(text: str) -> tuple[int, int]:
    """Parse an address into the (hi, lo) halves ulnet stores."""
    a = ipaddress.ip_address(text)
    if a.version == 4:
        return 0, V4_MAPPED_LO | int(a)
    v = int(a)
    return v >> 64, v & 0xFFFFFFFFFFFFFFFF
