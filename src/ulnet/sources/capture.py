"""Capture files as packet sources: pcap, pcapng, ERF; plain, gzip or stdin.

NAME
    ulnet.sources.capture -- read capture files into PacketBatches

SYNOPSIS
    src = open_capture("trace.pcapng")          # or "-" for stdin, or x.pcap.gz
    batch = PacketBatch(4096)
    while src.fill(batch):
        ...                                      # batch.n packets, views into src
    src.close(); src.problems                    # warnings/errors, one line each

DESCRIPTION
    The format is told by the file's magic number, not its name: classic pcap
    (both byte orders, microsecond and nanosecond, and the Kuznetsov variant),
    pcapng (SHB of either byte order, several sections, IDB with its own link
    type, ``if_tsresol`` and ``if_tsoffset`` per interface, EPB, SPB and the
    obsolete PB; NRB, ISB and any other block are skipped and counted), and
    ERF (Ethernet, IPv4, IPv6 records), which has no magic number and is
    recognised by a plausible first record. gzip-compressed captures (magic
    1f 8b) are decompressed as a stream.

    A regular file is memory-mapped and its records are read in place. A
    stream (stdin, a pipe or FIFO named by path such as ``<(zcat x.gz)``,
    gzip) is read into a window that is refilled when the batch needs bytes
    past its end; the window grows only to hold one record, so memory stays
    bounded whatever the capture's size.

ERRORS
    ``CaptureError`` (a one-line message naming the file and, where it
    applies, the byte offset) for a missing file, an empty or unknown file,
    or a corrupt file header. A truncated last record ends the input: every
    packet before it is delivered and the truncation is recorded in
    ``problems`` (``source.truncated``). A corrupt record header stops that
    input the same way with ``source.bad_record`` and ``failed`` set. A
    compressed stream that ends early is a truncation too; one that is
    corrupt (bad deflate data, CRC error) or a read that fails stops that
    input like a corrupt record. Either way the packets read before it are
    delivered.
"""

from __future__ import annotations

import gzip
import mmap
import os
import stat
import struct
import sys
import zlib

import numpy as np

from ulnet.batch import PacketBatch
from ulnet.counters import C_SRC_TRUNCATED, C_SRC_BAD_RECORD
from ulnet.sources import _kernels as K

PCAP_MAGICS = {
    0xA1B2C3D4: (False, False, 16),   # (nanosecond, kuznetsov) , record header size
    0xA1B23C4D: (True, False, 16),
    0xA1B2CD34: (False, True, 24),
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
GZIP_MAGIC = b"\x1f\x8b"

# Link types ulnet decodes (pcap LINKTYPE_* values).
LINKTYPES = {
    0: "NULL (BSD loopback)",
    1: "EN10MB (Ethernet)",
    9: "PPP",
    12: "RAW (raw IP, as OpenBSD numbers it)",
    14: "RAW (raw IP, as BSD/OS numbers it)",
    50: "PPP_HDLC (PPP in HDLC-like framing)",
    101: "RAW (raw IP)",
    104: "C_HDLC (Cisco HDLC)",
    108: "LOOP (OpenBSD loopback)",
    113: "LINUX_SLL (Linux cooked)",
    228: "IPV4 (raw IPv4)",
    229: "IPV6 (raw IPv6)",
    276: "LINUX_SLL2 (Linux cooked v2)",
}

STREAM_WINDOW = 4 << 20
ADVISE_CHUNK = 32 << 20          # mapped files: populate / release in steps of this size
MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)   # Linux >= 5.14


class CaptureError(Exception):
    """A capture that cannot be read at all: one line, names the file."""


class _Window:
    """Bytes of the input visible to the walkers: a mapped file or a stream chunk."""

    def __init__(self, path: str, fh):
        self.path = path
        self.mm = None
        self.fh = None
        self.raw = None     # a pipe or FIFO opened by path, closed with the window
        self.fill_window = False
        if fh is None:
            try:
                f = open(path, "rb")
            except OSError as e:
                raise CaptureError(f"{path}: cannot open: {e.strerror}") from None
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                # a pipe or FIFO (``<(zcat x.pcap.gz)``, mkfifo): read it as a stream
                self.raw = fh = f
                if f.peek(2)[:2] == GZIP_MAGIC:
                    fh = gzip.GzipFile(fileobj=f, mode="rb")
        if fh is None:
            with f:
                size = os.fstat(f.fileno()).st_size
                if size == 0:
                    raise CaptureError(f"{path}: empty file, no capture header")
                head = f.read(2)
                if head == GZIP_MAGIC:
                    fh = gzip.open(path, "rb")
                    self.fill_window = True     # a file never blocks: read whole windows
                else:
                    self.mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if self.mm is not None:
            self.buf = np.frombuffer(self.mm, dtype=np.uint8)
            self.end = len(self.buf)
            self.eof = True
        else:
            self.fh = fh
            self.buf = np.empty(STREAM_WINDOW, dtype=np.uint8)
            self.end = 0
            self.eof = False
        self.base = 0   # file offset of buf[0]
        self.error = None   # (cut short?, message) once a stream read has failed
        self.populated = 0  # mapped bytes whose page tables are filled (MADV_POPULATE_READ)
        self.dropped = 0    # mapped bytes released behind the reader (MADV_DONTNEED)

    def advise(self, pos: int) -> None:
        """Memory-mapped input: fill the page tables ahead of ``pos`` in bulk
        (one madvise instead of a page fault per 4 KiB: the walker's main cost
        on a large file) and release the pages well behind it, so resident
        memory stays bounded whatever the file's size. Bytes before ``pos``
        must not be in use (batches are valid until the next one)."""
        mm = self.mm
        if mm is None:
            return
        if pos + ADVISE_CHUNK > self.populated and self.populated < self.end:
            start = self.populated
            length = min(2 * ADVISE_CHUNK, self.end - start)
            try:
                mm.madvise(MADV_POPULATE_READ, start, length)
            except (OSError, ValueError):
                try:
                    mm.madvise(mmap.MADV_WILLNEED, start, length)
                except (OSError, ValueError):
                    pass
            self.populated = start + length
        # released a chunk at a time: one madvise per batch (4 us each,
        # 8 ms over the 2 M packet benchmark at 1024 packets a batch) became
        # one per 32 MiB; what stays mapped is still at most about 3 chunks
        drop_to = (pos - ADVISE_CHUNK) & ~(mmap.PAGESIZE - 1)
        if drop_to - self.dropped >= ADVISE_CHUNK:
            try:
                mm.madvise(mmap.MADV_DONTNEED, self.dropped, drop_to - self.dropped)
            except (OSError, ValueError):
                pass
            self.dropped = drop_to

    def ensure(self, pos: int, need: int) -> int:
        """Make at least ``need`` bytes from ``pos`` visible if the input has
        them; returns the (possibly moved) position of those bytes."""
        if self.eof or self.end - pos >= need:
            return pos
        keep = self.end - pos
        if need > len(self.buf):
            grown = np.empty(max(need, 2 * len(self.buf)), dtype=np.uint8)
            grown[:keep] = self.buf[pos:self.end]
            self.buf = grown
        else:
            self.buf[:keep] = self.buf[pos:self.end]
        self.base += pos
        self.end = keep
        mv = memoryview(self.buf)
        try:
            # read what is there, and block only while fewer than ``need`` bytes are
            # visible (a live pipe must not wait for a whole window)
            # read1: at most one read of the underlying stream, so a pipe that has
            # fewer bytes than the window returns what it has instead of blocking
            want = len(self.buf) if self.fill_window else need
            while self.end < want:
                data = self.fh.read1(len(self.buf) - self.end)
                if not data:
                    self.eof = True
                    break
                mv[self.end:self.end + len(data)] = data
                self.end += len(data)
        except (OSError, EOFError, zlib.error) as e:
            # the stream ends here (gzip cut short, corrupt or failing its CRC,
            # an I/O error): what was read stays visible; the reader reports it
            self.eof = True
            self.error = (isinstance(e, EOFError), f"byte offset {self.base + self.end}: read failed: {e}")
        finally:
            mv.release()
        return 0

    def close(self):
        if self.fh is not None and self.fh is not sys.stdin.buffer:
            self.fh.close()
        if self.raw is not None:
            self.raw.close()
        self.buf = np.zeros(0, dtype=np.uint8)
        if self.mm is not None:
            try:
                self.mm.close()
            except BufferError:
                pass  # a batch still views the map; it is freed with the last view


class CaptureReader:
    """One capture input. ``fill(batch)`` loads the next packets; 0 means done."""

    def __init__(self, path: str, port: int = 0):
        self.path = path
        self.port = port
        self.problems: list[str] = []
        self.failed = False
        self.done = False
        self.counters = None  # set by the caller (shared counter array) or lazily
        self._out = np.zeros(2, dtype=np.int64)
        fh = sys.stdin.buffer if path == "-" else None
        name = "<stdin>" if path == "-" else path
        self.name = name
        if fh is not None:
            head = fh.peek(2)[:2] if hasattr(fh, "peek") else b""
            if head == GZIP_MAGIC:
                fh = gzip.GzipFile(fileobj=fh, mode="rb")
        self.win = _Window(name, fh)
        self.pos = 0
        self._open_format()

    # ------------------------------------------------------------------
    def _open_format(self):
        w = self.win
        self.pos = w.ensure(0, 64)
        if w.error is not None and w.end < 24:
            raise CaptureError(f"{self.name}: {w.error[1]}")
        head = bytes(w.buf[: min(w.end, 64)])
        if len(head) < 4:
            raise CaptureError(f"{self.name}: file too short for a capture header ({len(head)} bytes)")
        magic_le = struct.unpack_from("<I", head)[0]
        magic_be = struct.unpack_from(">I", head)[0]
        if magic_le in PCAP_MAGICS or magic_be in PCAP_MAGICS:
            big = magic_le not in PCAP_MAGICS
            self.nano, kuz, self.rec_hdr = PCAP_MAGICS[magic_be if big else magic_le]
            if len(head) < 24:
                raise CaptureError(f"{self.name}: byte offset {len(head)}: pcap file header cut short (24 bytes needed)")
            e = ">" if big else "<"
            vmaj, vmin, _tz, _sig, snap, lt = struct.unpack_from(e + "HHiIII", head, 4)
            if vmaj != 2:
                raise CaptureError(f"{self.name}: byte offset 4: unsupported pcap version {vmaj}.{vmin}")
            self.big = big
            self.swap = 1 if vmin < 3 else 2 if vmin == 3 else 0     # see pcap_walk
            self.linktype = lt & 0xFFFF     # upper bits may carry FCS length
            self.snaplen = snap
            self.maxcap = min(max(snap, 262144), K.MAX_CAPLEN)
            self.kind = "pcap"
            self._check_linktype(self.linktype, 20)
            self.pos = 24
        elif head[:4] == PCAPNG_MAGIC:
            self.kind = "pcapng"
            self.state = np.zeros(K.PS_SIZE, dtype=np.int64)
            self.if_lt = np.zeros(K.MAX_IF, dtype=np.int64)
            self.if_kind = np.zeros(K.MAX_IF, dtype=np.int64)
            self.if_exp = np.zeros(K.MAX_IF, dtype=np.int64)
            self.if_offns = np.zeros(K.MAX_IF, dtype=np.int64)
            self.if_snap = np.zeros(K.MAX_IF, dtype=np.int64)
            self.maxcap = K.MAX_CAPLEN
            if len(head) < 12 or struct.unpack_from("<I", head, 8)[0] not in (K.BOM,) and \
                    struct.unpack_from(">I", head, 8)[0] != K.BOM:
                raise CaptureError(f"{self.name}: byte offset 8: pcapng section header has no valid byte-order magic")
        elif _looks_like_erf(head):
            self.kind = "erf"
            self.maxcap = K.MAX_CAPLEN
        else:
            raise CaptureError(f"{self.name}: byte offset 0: not a capture file (pcap, pcapng, ERF or gzip); "
                               f"first bytes {head[:4].hex()}")

    def _check_linktype(self, lt: int, offset: int):
        if lt not in LINKTYPES:
            raise CaptureError(f"{self.name}: byte offset {offset}: unsupported link type {lt} "
                               f"(ulnet reads {', '.join(str(k) for k in sorted(LINKTYPES))})")

    # ------------------------------------------------------------------
    def fill(self, batch: PacketBatch, n0: int = 0) -> int:
        """Fill ``batch`` rows from ``n0``; returns how many were added (0 at end).
        Sets ``batch.buf`` to this input's window."""
        if self.done:
            return 0
        if self.counters is None:
            from ulnet.counters import new_counters
            self.counters = new_counters()
        w = self.win
        w.advise(self.pos)          # the previous batch (before pos) is done with
        while True:
            got, status = self._walk(batch, n0)
            self.pos = int(self._out[0])
            if got or status == K.ST_FULL:
                batch.buf = w.buf
                return got
            # the window of a stream can end on a record boundary (ST_END):
            # that is the end of the input only when the stream says so
            if (status == K.ST_MORE or status == K.ST_END) and not w.eof:
                need = self._need()
                self.pos = w.ensure(self.pos, need)
                continue
            self._finish(status)
            return 0

    def _need(self) -> int:
        """Bytes needed to see the whole record at pos (header first)."""
        w, p = self.win, self.pos
        avail = w.end - p
        if self.kind == "pcap":
            if avail < self.rec_hdr:
                return self.rec_hdr
            cl = struct.unpack_from(">I" if self.big else "<I", w.buf, p + 8)[0]
            return self.rec_hdr + cl
        if self.kind == "pcapng":
            if avail < 12:
                return 12
            big = self.state[K.PS_BIG_ENDIAN] == 1
            if bytes(w.buf[p:p + 4]) == PCAPNG_MAGIC:
                big = struct.unpack_from(">I", w.buf, p + 8)[0] == K.BOM
            return (struct.unpack_from(">I" if big else "<I", w.buf, p + 4)[0] + 3) & ~3
        if avail < 16:
            return 16
        return struct.unpack_from(">H", w.buf, p + 10)[0]

    def _walk(self, batch, n0):
        w, b, out = self.win, batch, self._out
        cap = b.capacity
        if self.kind == "pcap":
            got = K.pcap_walk(w.buf, self.pos, w.end, self.big, self.nano, self.rec_hdr, self.swap, self.linktype,
                              self.port, self.maxcap, b.off, b.caplen, b.wirelen, b.ts, b.linktype, b.port,
                              n0, cap, self.counters, out)
        elif self.kind == "pcapng":
            got = K.pcapng_walk(w.buf, self.pos, w.end, self.state, self.if_lt, self.if_kind, self.if_exp,
                                self.if_offns, self.if_snap, self.port, self.maxcap,
                                b.off, b.caplen, b.wirelen, b.ts, b.linktype, b.port,
                                n0, cap, self.counters, out)
        else:
            got = K.erf_walk(w.buf, self.pos, w.end, self.port, self.maxcap,
                             b.off, b.caplen, b.wirelen, b.ts, b.linktype, b.port,
                             n0, cap, self.counters, out)
        return int(got), int(out[1])

    def _finish(self, status: int):
        self.done = True
        at = self.win.base + self.pos
        if self.win.error is not None and status != K.ST_BAD:
            cut, what = self.win.error
            if cut:
                self.counters[C_SRC_TRUNCATED] += 1
                self.problems.append(f"{self.name}: {what}: the input ends there (truncated)")
            else:
                self.counters[C_SRC_BAD_RECORD] += 1
                self.failed = True
                self.problems.append(f"{self.name}: {what}: reading stopped there")
        elif status == K.ST_MORE:
            self.counters[C_SRC_TRUNCATED] += 1
            self.problems.append(f"{self.name}: byte offset {at}: capture ends inside a record "
                                 f"({self.win.end - self.pos} bytes left): last record skipped (truncated)")
        elif status == K.ST_BAD:
            self.counters[C_SRC_BAD_RECORD] += 1
            self.failed = True
            self.problems.append(f"{self.name}: byte offset {at}: corrupt {self.kind} record header: "
                                 f"reading stopped here")

    def close(self):
        self.win.close()


def _looks_like_erf(head: bytes) -> bool:
    """ERF has no magic number: accept a first record of a type ulnet reads
    whose record length is plausible."""
    if len(head) < 16:
        return False
    rtype = head[8] & 0x7F
    rlen = struct.unpack_from(">H", head, 10)[0]
    return rtype in (K.ERF_ETH, K.ERF_IPV4, K.ERF_IPV6) and rlen >= 16


def open_capture(path: str, port: int = 0) -> CaptureReader:
    """Open a capture file (or ``-`` for standard input) as a packet source."""
    return CaptureReader(path, port)
