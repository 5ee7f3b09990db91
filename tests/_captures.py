"""Test helpers: build capture files byte by byte, and read one back as plain
Python values.

The builders write every header with ``struct`` from the format
specifications (pcap: tcpdump.org/manpages/pcap-savefile.5; pcapng:
draft-ietf-opsawg-pcapng; ERF: Endace ERF types), so the tests do not
depend on ulnet's own writers to make their inputs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from ulnet.batch import PacketBatch
from ulnet.counters import INDEX, new_counters
from ulnet.sources import open_capture

# ---- frames ----------------------------------------------------------------


def ipv4_udp(src: str, dst: str, sport: int, dport: int, payload: bytes = b"hello") -> bytes:
    a = bytes(int(x) for x in src.split("."))
    b = bytes(int(x) for x in dst.split("."))
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
    return struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, a, b) + udp


def ipv6_udp(src: str, dst: str, sport: int, dport: int, payload: bytes = b"hello") -> bytes:
    import ipaddress
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
    return (struct.pack(">IHBB", 6 << 28, len(udp), 17, 64) + ipaddress.IPv6Address(src).packed
            + ipaddress.IPv6Address(dst).packed + udp)


def ether(payload: bytes, ethertype: int) -> bytes:
    return b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + struct.pack(">H", ethertype) + payload


# ---- pcap ------------------------------------------------------------------


@dataclass
class Rec:
    """One packet to write: captured bytes, wire length (None: len(data)), time in ns."""
    data: bytes
    ts: int
    wirelen: int | None = None
    caplen: int | None = None      # override the record's caplen field (corrupt files)

    @property
    def wl(self) -> int:
        return len(self.data) if self.wirelen is None else self.wirelen


def pcap_bytes(recs, linktype=1, big=False, nano=False, kuznetsov=False, snaplen=262144,
               minor=4, swapped=False) -> bytes:
    """swapped: write orig_len before incl_len (as pcap 2.0-2.2 did)."""
    e = ">" if big else "<"
    magic = 0xA1B2CD34 if kuznetsov else (0xA1B23C4D if nano else 0xA1B2C3D4)
    out = [struct.pack(e + "IHHiIII", magic, 2, minor, 0, 0, snaplen, linktype)]
    for r in recs:
        sec, ns = divmod(r.ts, 1_000_000_000)
        frac = ns if nano else ns // 1000
        cl = len(r.data) if r.caplen is None else r.caplen
        out.append(struct.pack(e + "IIII", sec, frac, *((r.wl, cl) if swapped else (cl, r.wl))))
        if kuznetsov:
            out.append(struct.pack(e + "IHBB", 3, 0x0800, 0, 0))
        out.append(r.data)
    return b"".join(out)


# ---- pcapng ----------------------------------------------------------------


def ng_option(e: str, code: int, value: bytes) -> bytes:
    return struct.pack(e + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def ng_block(e: str, btype: int, body: bytes, length: int | None = None, trailer: int | None = None) -> bytes:
    body = body + b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return (struct.pack(e + "II", btype, n if length is None else length) + body
            + struct.pack(e + "I", n if trailer is None else trailer))


def ng_shb(e: str) -> bytes:
    return ng_block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def ng_idb(e: str, linktype: int, tsresol: int | None = None, tsoffset: int | None = None,
           snaplen: int = 0) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += ng_option(e, 9, bytes([tsresol]))
    if tsoffset is not None:
        opts += ng_option(e, 14, struct.pack(e + "q", tsoffset))
    if opts:
        opts += ng_option(e, 0, b"")
    return ng_block(e, 1, struct.pack(e + "HHI", linktype, 0, snaplen) + opts)


def ng_epb(e: str, iface: int, units: int, data: bytes, wirelen: int | None = None,
           caplen: int | None = None) -> bytes:
    """EPB whose timestamp is ``units`` in the interface's resolution."""
    cl = len(data) if caplen is None else caplen
    wl = len(data) if wirelen is None else wirelen
    return ng_block(e, 6, struct.pack(e + "IIIII", iface, units >> 32, units & 0xFFFFFFFF, cl, wl) + data)


def ng_spb(e: str, data: bytes, wirelen: int | None = None) -> bytes:
    return ng_block(e, 3, struct.pack(e + "I", len(data) if wirelen is None else wirelen) + data)


def ng_nrb(e: str) -> bytes:
    value = bytes([192, 0, 2, 1]) + b"host.test\0"
    rec = struct.pack(e + "HH", 1, len(value)) + value + b"\0" * (-len(value) % 4)
    return ng_block(e, 4, rec + struct.pack(e + "HH", 0, 0))


def ng_isb(e: str, iface: int = 0) -> bytes:
    return ng_block(e, 5, struct.pack(e + "III", iface, 0, 0) + ng_option(e, 4, struct.pack(e + "Q", 7))
                    + ng_option(e, 0, b""))


def ng_custom(e: str, copyable: bool = True) -> bytes:
    return ng_block(e, 0x00000BAD if copyable else 0x40000BAD, struct.pack(e + "I", 32473) + b"custom data!")


# ---- ERF -------------------------------------------------------------------

ERF_TYPE_HDLC = 1
ERF_TYPE_ETH = 2
ERF_TYPE_IPV4 = 22
ERF_TYPE_IPV6 = 23


def erf_record(rtype: int, ts_ns: int, data: bytes, wirelen: int | None = None, loss: int = 0,
               ext_headers: int = 0) -> bytes:
    """One ERF record; the timestamp is little-endian 32.32 fixed point."""
    sec, ns = divmod(ts_ns, 1_000_000_000)
    frac = ((ns << 32) + 500_000_000) // 1_000_000_000      # nearest 2^-32 s: reads back as ns exactly
    ts = (sec << 32) | frac
    ext = b"".join(struct.pack(">Q", (0x80 if k < ext_headers - 1 else 0) << 56) for k in range(ext_headers))
    pad = b"\0\0" if rtype == ERF_TYPE_ETH else b""
    body = ext + pad + data
    rlen = 16 + len(body)
    t = rtype | (0x80 if ext_headers else 0)
    wl = len(data) if wirelen is None else wirelen
    return struct.pack("<Q", ts) + struct.pack(">BBHHH", t, 0x04, rlen, loss, wl) + body


# ---- reading back ----------------------------------------------------------


@dataclass
class Read:
    """Everything a reader delivered, as plain values."""
    frames: list = field(default_factory=list)
    caplen: list = field(default_factory=list)
    wirelen: list = field(default_factory=list)
    ts: list = field(default_factory=list)
    linktype: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    failed: bool = False
    counters: np.ndarray | None = None
    kind: str = ""

    def count(self, name: str) -> int:
        return int(self.counters[INDEX[name]])

    def rows(self):
        return list(zip(self.frames, self.caplen, self.wirelen, self.ts, self.linktype))


def read_capture(path, batch_size: int = 4096, each_batch=None) -> Read:
    """Read a whole capture with the Python API; ``each_batch(batch)`` sees
    every batch (``batch.n`` set) before it is reused."""
    r = open_capture(str(path))
    r.counters = new_counters()
    out = Read(kind=r.kind, counters=r.counters)
    b = PacketBatch(batch_size)
    try:
        while True:
            k = r.fill(b)
            if not k:
                break
            b.n = k
            buf, off, cl = b.buf, b.off[:k].tolist(), b.caplen[:k].tolist()
            out.frames.extend(bytes(buf[o:o + c]) for o, c in zip(off, cl))
            out.caplen.extend(cl)
            out.wirelen.extend(b.wirelen[:k].tolist())
            out.ts.extend(b.ts[:k].tolist())
            out.linktype.extend(b.linktype[:k].tolist())
            if each_batch is not None:
                each_batch(b)
    finally:
        out.problems = list(r.problems)
        out.failed = r.failed
        r.close()
    return out


def pcap_record_offsets(data: bytes) -> list[int]:
    """Start of every record of a little-endian classic pcap file, and its end."""
    offs, p = [], 24
    while p + 16 <= len(data):
        offs.append(p)
        p += 16 + struct.unpack_from("<I", data, p + 8)[0]
    offs.append(p)
    return offs
