"""pcapng files as a packet sink.

NAME
    ulnet.sinks.pcapng -- write the packets of PacketBatches to a pcapng file

SYNOPSIS
    from ulnet.sinks.pcapng import PcapngWriter
    with PcapngWriter("out.pcapng") as w:
        for batch in pipeline:
            w.write_batch(batch)                 # or write_batch(batch, mask=keep)
    w.packets, w.interfaces                      # [(port, linktype), ...] in IDB order

DESCRIPTION
    ``PcapngWriter(path, snaplen=0)`` writes one Section Header Block
    (little-endian, version 1.0, section length unknown, ``shb_userappl``
    "ulnet <version>") at once. Packets become Enhanced Packet Blocks. Each
    distinct (input port, link type) pair seen gets its own Interface
    Description Block, written just before the first packet that uses it,
    with ``if_tsresol`` = 9: timestamps are stored in nanoseconds, exactly as
    the batch holds them. So a mix of link types (Ethernet from one input,
    Linux cooked from another) goes into one file, which pcap cannot hold.
    ``path`` ``-`` is standard output.

    ``write_batch(batch, mask=None)`` writes rows ``0 .. batch.n-1`` of the
    batch (with ``mask``, only those where it is true) from ``batch.buf``
    with their ``ts``, ``caplen``, ``wirelen``. Compiled kernels assign the
    interfaces and lay out every block of the batch in one reused output
    array, written with one ``write``: no per-packet system call and no
    per-packet Python object. ``close()`` flushes (standard output is flushed,
    not closed).

ERRORS
    ``OSError`` from opening or writing.

CAVEATS
    ``snaplen`` 0 (the default) means no limit and is what the IDBs carry;
    with a snap length, longer packets are cut to it and counted in ``cut``.
    Interfaces are told apart by the batch's ``port`` (which input) and link
    type only: the several interfaces of one pcapng input with the same link
    type become one. Times before 1970 do not fit the unsigned 64-bit
    timestamp (they wrap). Packet comments, flags and statistics are not
    written.
"""

from __future__ import annotations

import struct

import numpy as np
from ulnet.jit import njit
from ulnet.rawmem import copy_bytes

from ulnet import __version__
from ulnet.batch import PacketBatch
from ulnet.sinks.pcap import Output, WriterCounts, put_u32le, row_mask

BLK_SHB = 0x0A0D0D0A
BLK_IDB = 1
BLK_EPB = 6
BOM = 0x1A2B3C4D
EPB_FIXED = 32          # type, length, interface, ts high, ts low, caplen, wirelen ... trailing length
OPT_ENDOFOPT = 0
OPT_SHB_USERAPPL = 4
OPT_IF_TSRESOL = 9
MAX_IFACES = 1 << 16


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(btype: int, body: bytes) -> bytes:
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def shb() -> bytes:
    """The Section Header Block this writer starts a file with."""
    opts = _option(OPT_SHB_USERAPPL, f"ulnet {__version__}".encode()) + _option(OPT_ENDOFOPT, b"")
    return _block(BLK_SHB, struct.pack("<IHHq", BOM, 1, 0, -1) + opts)


def idb(linktype: int, snaplen: int) -> bytes:
    """An Interface Description Block with nanosecond timestamps."""
    opts = _option(OPT_IF_TSRESOL, bytes([9])) + _option(OPT_ENDOFOPT, b"")
    return _block(BLK_IDB, struct.pack("<HHI", linktype, 0, snaplen) + opts)


@njit(cache=True)
def _assign_ifaces(port, linktype, mask, n, start, keys, nkeys, iface):
    """iface[i] = index of (port, linktype) of row i in keys[:nkeys], from row
    ``start``; returns the first row whose pair is not known yet, or -1."""
    last_key = -1
    last_if = -1
    for i in range(start, n):
        if not mask[i]:
            continue
        k = (np.int64(port[i]) << 16) | np.int64(linktype[i])
        if k != last_key:
            last_if = -1
            for j in range(nkeys):
                if keys[j] == k:
                    last_if = j
                    break
            if last_if < 0:
                return i
            last_key = k
        iface[i] = last_if
    return -1


@njit(cache=True)
def _epb_size(caplen, mask, n, snaplen):
    total = 0
    for i in range(n):
        if mask[i]:
            cl = np.int64(caplen[i])
            if snaplen and cl > snaplen:
                cl = snaplen
            total += EPB_FIXED + ((cl + 3) & ~3)
    return total


@njit(cache=True)
def _epb_records(buf, off, caplen, wirelen, ts, iface, mask, n, snaplen, out, q, counts):
    """Lay out one EPB per selected row in ``out`` from ``q``; returns the end.
    counts[0] += packets, counts[1] += packets cut to snaplen."""
    for i in range(n):
        if not mask[i]:
            continue
        cl = np.int64(caplen[i])
        if snaplen and cl > snaplen:
            cl = snaplen
            counts[1] += 1
        padded = (cl + 3) & ~3
        blen = EPB_FIXED + padded
        t = ts[i]
        put_u32le(out, q, BLK_EPB)
        put_u32le(out, q + 4, blen)
        put_u32le(out, q + 8, iface[i])
        put_u32le(out, q + 12, (t >> 32) & 0xFFFFFFFF)
        put_u32le(out, q + 16, t & 0xFFFFFFFF)
        put_u32le(out, q + 20, cl)
        put_u32le(out, q + 24, np.int64(wirelen[i]))
        o = off[i]
        d = q + 28
        copy_bytes(out, d, buf, o, cl)
        for k in range(d + cl, d + padded):
            out[k] = 0
        put_u32le(out, q + blen - 4, blen)
        q += blen
        counts[0] += 1
    return q


class PcapngWriter(WriterCounts):
    """A pcapng file being written; see the module documentation."""

    def __init__(self, path: str, snaplen: int = 0):
        if not 0 <= snaplen <= 0xFFFFFFFF:
            raise ValueError(f"snap length out of range: {snaplen}")
        self.path = path
        self.snaplen = int(snaplen)
        self.interfaces: list[tuple[int, int]] = []
        self._keys = np.zeros(16, dtype=np.int64)
        self._iface = np.zeros(0, dtype=np.int64)
        self._counts = np.zeros(2, dtype=np.int64)
        self._all = [None]
        self._out = Output(path)
        self._out.write(shb())

    def _new_interfaces(self, batch: PacketBatch, m: np.ndarray, n: int) -> bytes:
        """Assign interfaces to the selected rows; the IDBs of new ones."""
        if len(self._iface) < n:
            self._iface = np.zeros(max(n, 2 * len(self._iface)), dtype=np.int64)
        blocks = []
        start = 0
        while True:
            i = _assign_ifaces(batch.port, batch.linktype, m, n, start,
                               self._keys, len(self.interfaces), self._iface)
            if i < 0:
                return b"".join(blocks)
            if len(self.interfaces) >= MAX_IFACES:
                raise ValueError(f"{self.path}: more than {MAX_IFACES} interfaces")
            port, lt = int(batch.port[i]), int(batch.linktype[i])
            k = len(self.interfaces)
            if k == len(self._keys):
                self._keys = np.concatenate([self._keys, np.zeros(k, dtype=np.int64)])
            self._keys[k] = (port << 16) | lt
            self.interfaces.append((port, lt))
            blocks.append(idb(lt, self.snaplen))
            start = i

    def write_batch(self, batch: PacketBatch, mask=None) -> int:
        """Write the batch's packets (those where ``mask`` is true); returns
        how many were written."""
        if self._out.fh is None:
            raise ValueError(f"{self.path}: writer is closed")
        m = row_mask(batch, mask, self._all)
        n = batch.n
        head = self._new_interfaces(batch, m, n)
        size = len(head) + _epb_size(batch.caplen, m, n, self.snaplen)
        out = self._out.reserve(size)
        out[:len(head)] = np.frombuffer(head, dtype=np.uint8)
        before = int(self._counts[0])
        end = _epb_records(batch.buf, batch.off, batch.caplen, batch.wirelen, batch.ts, self._iface,
                           m, n, self.snaplen, out, len(head), self._counts)
        self._out.write_out(end)
        return int(self._counts[0]) - before

    def close(self) -> None:
        """Flush and close the file (standard output is only flushed)."""
        self._out.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
