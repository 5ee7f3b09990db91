"""Classic pcap files as a packet sink.

NAME
    ulnet.sinks.pcap -- write the packets of PacketBatches to a pcap file

SYNOPSIS
    from ulnet.sinks.pcap import PcapWriter
    with PcapWriter("out.pcap", linktype=1, nanosecond=True) as w:
        for batch in pipeline:
            w.write_batch(batch)                 # every packet of the batch
            w.write_batch(batch, mask=keep)      # or only rows where keep[i]
    w.packets, w.bytes, w.cut                    # what was written

DESCRIPTION
    ``PcapWriter(path, linktype, nanosecond=False, snaplen=262144)`` opens
    ``path`` (``-`` is standard output) and writes the 24-byte pcap file
    header (little-endian, version 2.4, magic a1b2c3d4, or a1b23c4d when
    ``nanosecond``), then one 16-byte record header plus the captured bytes
    per packet. ``linktype=None`` takes the link type of the first packet
    written and writes the header then (a file closed with no packet says
    Ethernet, 1): for a command that must open its output before it has
    seen a packet of a pcapng or ERF input.

    ``write_batch(batch, mask=None)`` takes the packets from ``batch.buf``
    with their ``ts``, ``caplen`` and ``wirelen`` (rows ``0 .. batch.n-1``;
    with ``mask``, a boolean array of at least ``batch.n`` values, only the
    rows where it is true). A compiled kernel lays the records of the whole
    batch out in one reused output array, which goes to the file in one
    ``write``: no per-packet system call and no per-packet Python object.
    ``close()`` flushes (standard output is flushed, not closed).

    Timestamps are int64 nanoseconds in the batch; a microsecond file keeps
    them truncated to the microsecond.

ERRORS
    ``LinkTypeError`` (a ``ValueError``) when a selected packet's link type
    is not the file's: a pcap file has exactly one link type (write pcapng
    for mixed inputs). Nothing of that batch is written. ``OSError`` from opening or writing.

CAVEATS
    A packet longer than ``snaplen`` is cut to ``snaplen`` bytes (its wire
    length is kept) and counted in ``cut``, as a capture with that snap
    length would have stored it. pcap stores seconds as an unsigned 32-bit
    number: times before 1970 or after 2106 do not survive (they wrap).
    Byte order is always little-endian; readers handle both.
"""

from __future__ import annotations

import struct
import sys

import numpy as np
from ulnet.jit import njit
from ulnet.rawmem import copy_bytes

from ulnet.batch import PacketBatch

MAGIC_USEC = 0xA1B2C3D4
MAGIC_NSEC = 0xA1B23C4D
FILE_HDR = struct.Struct("<IHHiIII")     # magic, major, minor, thiszone, sigfigs, snaplen, linktype
REC_HDR = 16                             # ts_sec, ts_frac, caplen, wirelen (u32 each)
DEFAULT_SNAPLEN = 262144


class Output:
    """A file (or standard output) and one reused byte array that batches are
    laid out in; shared by the capture writers. One ``write`` per batch."""

    def __init__(self, path: str):
        self.path = path
        if path == "-":
            self.fh = sys.stdout.buffer
            self.own = False
        else:
            self.fh = open(path, "wb")
            self.own = True
        self.buf = np.empty(1 << 16, dtype=np.uint8)
        self.bytes = 0

    def reserve(self, nbytes: int) -> np.ndarray:
        """The output array, grown (doubling) to hold at least ``nbytes``."""
        if nbytes > len(self.buf):
            size = len(self.buf)
            while size < nbytes:
                size *= 2
            self.buf = np.empty(size, dtype=np.uint8)
        return self.buf

    def write(self, data) -> None:
        self.fh.write(data)
        self.bytes += len(data)

    def write_out(self, nbytes: int) -> None:
        """Write the first ``nbytes`` of the output array."""
        if nbytes:
            self.write(memoryview(self.buf)[:nbytes])

    def close(self) -> None:
        if self.fh is None:
            return
        try:
            if self.own:
                self.fh.close()
            else:
                self.fh.flush()
        finally:
            self.fh = None


def row_mask(batch: PacketBatch, mask, cache: list) -> np.ndarray:
    """``mask`` as a boolean array of at least ``batch.n`` values; None means
    every row (an all-true array kept in ``cache[0]``, reused)."""
    n = batch.n
    if mask is None:
        m = cache[0]
        if m is None or len(m) < n:
            m = cache[0] = np.ones(max(n, 1), dtype=np.bool_)
        return m
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        m = m.astype(np.bool_)
    if m.ndim != 1 or len(m) < n:
        raise ValueError(f"mask must be a 1-d boolean array of at least batch.n = {n} values")
    return m


@njit(cache=True, inline="always")
def put_u32le(out, q, v):
    out[q] = v & 0xFF
    out[q + 1] = (v >> 8) & 0xFF
    out[q + 2] = (v >> 16) & 0xFF
    out[q + 3] = (v >> 24) & 0xFF


@njit(cache=True)
def _pcap_size(caplen, linktype, mask, n, lt, snaplen):
    """Bytes the selected records take; -1-i if row i has another link type."""
    total = 0
    for i in range(n):
        if mask[i]:
            if linktype[i] != lt:
                return -1 - i
            total += REC_HDR + min(np.int64(caplen[i]), snaplen)
    return total


@njit(cache=True)
def _pcap_records(buf, off, caplen, wirelen, ts, mask, n, nano, snaplen, out, counts):
    """Lay the selected records out in ``out`` from 0; returns the bytes used.
    counts[0] += packets, counts[1] += packets cut to snaplen."""
    q = 0
    for i in range(n):
        if not mask[i]:
            continue
        cl = np.int64(caplen[i])
        if cl > snaplen:
            cl = snaplen
            counts[1] += 1
        t = ts[i]
        sec = t // 1000000000
        frac = t - sec * 1000000000
        if not nano:
            frac //= 1000
        put_u32le(out, q, sec)
        put_u32le(out, q + 4, frac)
        put_u32le(out, q + 8, cl)
        put_u32le(out, q + 12, np.int64(wirelen[i]))
        o = off[i]
        copy_bytes(out, q + REC_HDR, buf, o, cl)
        q += REC_HDR + cl
        counts[0] += 1
    return q


class LinkTypeError(ValueError):
    """A packet whose link type is not the pcap file's (``row`` in its batch)."""

    def __init__(self, message: str, row: int, linktype: int, file_linktype: int):
        super().__init__(message)
        self.row = row
        self.linktype = linktype
        self.file_linktype = file_linktype


class WriterCounts:
    """What both capture writers report: ``_counts`` = [packets, cut], ``_out`` an Output."""

    @property
    def packets(self) -> int:
        """Packets written so far."""
        return int(self._counts[0])

    @property
    def cut(self) -> int:
        """Packets cut to the snap length."""
        return int(self._counts[1])

    @property
    def bytes(self) -> int:
        """Bytes written so far, file header (pcapng: block headers) included."""
        return self._out.bytes


class PcapWriter(WriterCounts):
    """A pcap file being written; see the module documentation."""

    def __init__(self, path: str, linktype: int | None, nanosecond: bool = False,
                 snaplen: int = DEFAULT_SNAPLEN):
        if linktype is not None and not 0 <= linktype <= 0xFFFF:
            raise ValueError(f"link type out of range: {linktype}")
        if not 1 <= snaplen <= 0xFFFFFFFF:
            raise ValueError(f"snap length out of range: {snaplen}")
        self.path = path
        self.linktype = None
        self.nanosecond = bool(nanosecond)
        self.snaplen = int(snaplen)
        self._counts = np.zeros(2, dtype=np.int64)
        self._all = [None]
        self._out = Output(path)
        if linktype is not None:
            self._header(linktype)

    def _header(self, linktype: int) -> None:
        self.linktype = int(linktype)
        self._out.write(FILE_HDR.pack(MAGIC_NSEC if self.nanosecond else MAGIC_USEC, 2, 4, 0, 0,
                                      self.snaplen, self.linktype))

    def write_batch(self, batch: PacketBatch, mask=None) -> int:
        """Write the batch's packets (those where ``mask`` is true); returns
        how many were written."""
        if self._out.fh is None:
            raise ValueError(f"{self.path}: writer is closed")
        m = row_mask(batch, mask, self._all)
        n = batch.n
        if self.linktype is None:
            sel = np.flatnonzero(m[:n])
            if not len(sel):
                return 0
            self._header(int(batch.linktype[sel[0]]))
        size = _pcap_size(batch.caplen, batch.linktype, m, n, self.linktype, self.snaplen)
        if size < 0:
            i = -1 - size
            lt = int(batch.linktype[i])
            raise LinkTypeError(f"{self.path}: packet {i} of the batch has link type {lt}, the pcap file "
                                f"has link type {self.linktype}: a pcap file holds one link type "
                                f"(write pcapng for mixed link types)", i, lt, self.linktype)
        before = int(self._counts[0])
        out = self._out.reserve(size)
        used = _pcap_records(batch.buf, batch.off, batch.caplen, batch.wirelen, batch.ts, m, n,
                             self.nanosecond, self.snaplen, out, self._counts)
        self._out.write_out(used)
        return int(self._counts[0]) - before

    def close(self) -> None:
        """Flush and close the file (standard output is only flushed)."""
        if self.linktype is None and self._out.fh is not None:
            self._header(1)
        self._out.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
