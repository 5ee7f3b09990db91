"""AF_PACKET transmit rings as a packet sink (Linux).

NAME
    ulnet.sinks.txring -- send the packets of PacketBatches out of an interface

SYNOPSIS
    tx = TxRing("veth1", vnet_hdr=True)         # PACKET_TX_RING, TPACKET_V2 slots
    tx.send_batch(batch, counters)               # fill slots, one send() per batch
    tx.send_batch(batch, counters, mask=keep)    # only the rows where keep[i]
    tx.close()

DESCRIPTION
    A ``SOCK_RAW`` socket bound to the interface with protocol 0 (it receives
    nothing) and a ``PACKET_TX_RING`` of fixed-size slots mapped into the
    process. ``send_batch`` runs a compiled kernel that copies each selected
    frame from the batch's buffer into the next free slot (the one copy out),
    writes its length and marks it ``TP_STATUS_SEND_REQUEST``; then one
    ``send()`` with ``MSG_DONTWAIT`` asks the kernel to transmit every marked
    slot. The kernel gives a slot back (``TP_STATUS_AVAILABLE``) when the
    packet has left; when the ring is full the sink flushes, waits for
    ``POLLOUT`` (at most ``wait_ms`` in all per batch) and goes on, and
    counts what still does not fit in ``live.tx.ring_full``.

    ``vnet_hdr=True`` (``PACKET_VNET_HDR``): each slot starts with a 10-byte
    virtio-net header. Frames that came from a ring opened with
    ``vnet_hdr`` carry theirs just before ``off`` (``src_vnet=True``): a GSO
    frame larger than the MTU goes out whole and the kernel (or the peer
    veth) segments it; a frame with a partial checksum has it completed.
    Other frames get a zero header. Without ``vnet_hdr`` a frame larger than
    MTU + link header cannot be sent and is counted in ``live.tx.too_big``.

    Long frames (``direct_min``, 16 KiB: GSO frames) from a vnet source
    skip the slots: the kernel sends the slots marked so far, then the
    frame from where it lies in the batch's buffer on a second, ringless
    socket with virtio-net headers (one copy in the kernel where a slot
    costs two). Order is kept; counted in ``live.tx.direct`` as well as
    ``live.tx.packets``. When that ``send()`` fails the fill stops there
    and Python sends the frame (waiting once for room, as for slots).

    ``qdisc_bypass=True`` sets ``PACKET_QDISC_BYPASS``: frames go straight
    to the driver (no traffic control, not seen by other packet sockets).

ERRORS
    ``LiveError`` (see ``ulnet.sources.afpacket``) when the socket or ring
    cannot be set up. A failing ``send()`` (interface down) is counted in
    ``live.tx.send_failed``; slots already marked go out when it is back.

CAVEATS
    Slots have one size (``frame_size``); with ``vnet_hdr`` they hold a
    whole 64 KiB GSO frame, so the ring is ``frames`` x 68 KiB of memory.
"""

from __future__ import annotations

import errno
import mmap
import select
import socket
import struct
import time

import numpy as np
from ulnet import libc
from ulnet.jit import njit
from ulnet.rawmem import copy_bytes

from ulnet.batch import PacketBatch
from ulnet.counters import (C_LIVE_TX_PACKETS, C_LIVE_TX_BYTES, C_LIVE_TX_DIRECT, C_LIVE_TX_RING_FULL,
                            C_LIVE_TX_TOO_BIG, C_LIVE_TX_SEND_FAILED)
from ulnet.sources.afpacket import (LiveError, PACKET_LOSS, PACKET_QDISC_BYPASS, PACKET_TX_RING,
                                    PACKET_VERSION, PACKET_VNET_HDR, SOL_PACKET, TPACKET_V2, VNET_HDR_LEN,
                                    iface_mtu, map_ring, packet_socket, setsockopt_int)

TX_DATA = 32                   # TPACKET2_HDRLEN - sizeof(struct sockaddr_ll): frame data offset in a slot
TX_FRAME = 2048
TX_FRAME_GSO = 69632           # 17 pages: virtio-net header + a 64 KiB GSO frame + slot header
TX_FRAMES = 1024
TX_FRAMES_GSO = 256
DIRECT_MIN = 16384             # frames this long (GSO, virtio-net header) are sent from where they lie
DIRECT_SNDBUF = 4 << 20        # the direct socket's send buffer (the kernel caps it at wmem_max x 2)
# st[] slots (int64): the cursor, slots marked since the last send(), the
# direct-send threshold (0: none), "stopped at a frame to send directly",
# the ring's socket, the direct socket
ST_CUR, ST_MARKED, ST_DIRECT_MIN, ST_STOPPED, ST_FD, ST_DFD = range(6)
ST_SIZE = 6
ETH_HLEN_MAX = 18              # Ethernet header + one VLAN tag


@njit(cache=True)
def send_marked(st):
    """``send()`` the slots marked since the last one, on the ring's socket
    st[ST_FD] (compiled callers: the bridge's loop, the direct send): 0
    when none were marked or it went (st[ST_MARKED] = 0), else the errno
    (the mark stays)."""
    if not st[ST_MARKED]:
        return 0
    if libc.send(st[ST_FD], 0, 0, libc.MSG_DONTWAIT) < 0:
        return libc.errno()
    st[ST_MARKED] = 0
    return 0


@njit(cache=True)
def _send_direct(st, buf, o, cl):
    """Send the marked slots, then the frame at ``o`` (its virtio-net
    header before it) from where it lies on the direct socket; False when
    either send() failed (the caller's Python sends it: it waits for room
    and counts failures)."""
    if libc.PURE_PYTHON or send_marked(st):
        return False
    return libc.send(st[ST_DFD], buf.ctypes.data + o - VNET_HDR_LEN, cl + VNET_HDR_LEN, libc.MSG_DONTWAIT) >= 0


@njit(cache=True)
def _tx_fill(ring, fsize, nframes, st, buf, off, caplen, mask, i0, n, src_vnet, vnet, maxlen,
             counters, c_pkts, c_bytes, c_big):
    """Copy selected rows from i0 into free slots from the cursor st[ST_CUR];
    returns the row where it stopped (n when all are placed; earlier when
    the next slot is still in use, or at a frame to send directly that the
    kernel could not send: st[ST_STOPPED] = 1). st[ST_MARKED] counts slots marked
    since the last send. With st[ST_DIRECT_MIN] > 0, frames of at least
    that many bytes with a virtio-net header (GSO frames from a vnet ring)
    are not copied: the marked slots are sent, then the frame from the
    batch's buffer on the direct socket (st[ST_DFD])."""
    i = i0
    f = st[ST_CUR]
    room = fsize - TX_DATA
    dmin = st[ST_DIRECT_MIN]
    while i < n:
        if not mask[i]:
            i += 1
            continue
        cl = np.int64(caplen[i])
        o = off[i]
        if dmin and src_vnet and vnet and cl >= dmin:
            st[ST_CUR] = f
            if not _send_direct(st, buf, o, cl):
                st[ST_STOPPED] = 1
                return i
            counters[c_pkts] += 1
            counters[c_bytes] += cl
            counters[C_LIVE_TX_DIRECT] += 1
            i += 1
            continue
        h = f * fsize
        if ring[h] | ring[h + 1] | ring[h + 2] | ring[h + 3]:     # not TP_STATUS_AVAILABLE
            break
        gso = src_vnet and buf[o - 9] != 0                          # gso_type
        need = cl + (VNET_HDR_LEN if vnet else 0)
        if need > room or (cl > maxlen and not (vnet and gso)):
            counters[c_big] += 1
            i += 1
            continue
        d = h + TX_DATA
        if vnet:
            if src_vnet:
                copy_bytes(ring, d, buf, o - VNET_HDR_LEN, VNET_HDR_LEN)
            else:
                ring[d:d + VNET_HDR_LEN] = 0
            d += VNET_HDR_LEN
        copy_bytes(ring, d, buf, o, cl)
        ring[h + 4] = need & 0xFF                                   # tp_len
        ring[h + 5] = (need >> 8) & 0xFF
        ring[h + 6] = (need >> 16) & 0xFF
        ring[h + 7] = (need >> 24) & 0xFF
        ring[h] = 1                                                  # TP_STATUS_SEND_REQUEST, written last
        counters[c_pkts] += 1
        counters[c_bytes] += cl
        st[ST_MARKED] += 1
        f += 1
        if f == nframes:
            f = 0
        i += 1
    st[ST_CUR] = f
    return i


def _direct_socket(ifname: str, qdisc_bypass: bool) -> socket.socket:
    """A ringless packet socket on ``ifname`` (protocol 0: it receives
    nothing) with virtio-net headers, for the long frames sent straight
    from the batch's buffer: one copy in the kernel, where a TX-ring slot
    costs two (into the slot, then the veth or the driver copies the slot's
    pages, which it cannot keep)."""
    s = packet_socket(ifname, protocol=0)
    try:
        setsockopt_int(s, PACKET_VNET_HDR, 1, "virtio-net headers", ifname)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, DIRECT_SNDBUF)
        if qdisc_bypass:
            setsockopt_int(s, PACKET_QDISC_BYPASS, 1, "qdisc bypass", ifname)
    except BaseException:
        s.close()
        raise
    return s


class TxRing:
    """One interface's transmit ring; see the module documentation."""

    def __init__(self, ifname: str, *, vnet_hdr: bool = False, qdisc_bypass: bool = False,
                 frame_size: int | None = None, frames: int | None = None, wait_ms: int = 100,
                 direct_min: int = DIRECT_MIN):
        self.name = ifname
        self.vnet = bool(vnet_hdr)
        self.wait_ms = wait_ms
        self.mtu = iface_mtu(ifname)
        self._closed = False
        self.sends = 0
        self.down = False          # the last send() failed: do not wait for slots meanwhile
        s = self.sock = packet_socket(ifname, protocol=0)
        try:
            setsockopt_int(s, PACKET_VERSION, TPACKET_V2, "ring version", ifname)
            setsockopt_int(s, PACKET_LOSS, 1, "skip malformed frames", ifname)
            if self.vnet:
                setsockopt_int(s, PACKET_VNET_HDR, 1, "virtio-net headers", ifname)
            if qdisc_bypass:
                setsockopt_int(s, PACKET_QDISC_BYPASS, 1, "qdisc bypass", ifname)
            fs = frame_size or (TX_FRAME_GSO if self.vnet else max(TX_FRAME, self.mtu + 64))
            if fs < mmap.PAGESIZE:
                fs = 1 << (fs - 1).bit_length()
                bs = max(65536, mmap.PAGESIZE)
            else:
                fs = bs = (fs + mmap.PAGESIZE - 1) // mmap.PAGESIZE * mmap.PAGESIZE
            per = bs // fs
            nf = frames or (TX_FRAMES_GSO if self.vnet else TX_FRAMES)
            nb = max(1, -(-nf // per))
            self.fsize = fs
            self.nframes = per * nb
            try:
                s.setsockopt(SOL_PACKET, PACKET_TX_RING, struct.pack("4I", bs, nb, fs, per * nb))
            except OSError as e:
                raise LiveError(f"{ifname}: cannot set up the transmit ring: {e.strerror}") from None
            self.mm = map_ring(s, bs * nb, ifname)
        except BaseException:
            s.close()
            raise
        self.ring = np.frombuffer(self.mm, dtype=np.uint8)
        self.st = np.zeros(ST_SIZE, dtype=np.int64)
        self.st[ST_FD] = s.fileno()
        self.st[ST_DFD] = -1
        self.direct = None
        if self.vnet and direct_min:
            try:
                self.direct = _direct_socket(ifname, qdisc_bypass)
            except BaseException:
                self.close()
                raise
            self.st[ST_DIRECT_MIN] = direct_min
            self.st[ST_DFD] = self.direct.fileno()
        self._all = np.ones(0, dtype=np.bool_)
        self._poll = select.poll()
        self._poll.register(s.fileno(), select.POLLOUT | select.POLLERR)

    def fileno(self) -> int:
        return self.sock.fileno()

    def _flush(self, counters) -> None:
        if not self.st[ST_MARKED]:
            return
        self.st[ST_MARKED] = 0
        self.sends += 1
        try:
            self.sock.send(b"", socket.MSG_DONTWAIT)
            self.down = False
        except BlockingIOError:
            pass
        except OSError as e:
            if e.errno not in (errno.ENETDOWN, errno.ENXIO, errno.ENOBUFS, errno.EMSGSIZE, errno.EINVAL):
                raise
            self.down = True
            counters[C_LIVE_TX_SEND_FAILED] += 1

    def send_batch(self, batch: PacketBatch, counters: np.ndarray, mask=None, src_vnet: bool = False,
                   start: int = 0) -> int:
        """Queue the batch's rows (where ``mask`` is true) and send them with
        one ``send()``; returns the rows that found a slot. ``start``: the
        rows before it are already placed (slots marked, not yet sent)."""
        n = batch.n
        if mask is None:
            if len(self._all) < n:
                self._all = np.ones(max(n, 64), dtype=np.bool_)
            mask = self._all
        before = int(counters[C_LIVE_TX_PACKETS])
        maxlen = self.mtu + ETH_HLEN_MAX
        i = start
        deadline = None
        while True:
            i = _tx_fill(self.ring, self.fsize, self.nframes, self.st, batch.buf, batch.off, batch.caplen,
                         mask, i, n, src_vnet, self.vnet, maxlen, counters, C_LIVE_TX_PACKETS,
                         C_LIVE_TX_BYTES, C_LIVE_TX_TOO_BIG)
            self._flush(counters)
            if i < n and self.st[ST_STOPPED]:
                self.st[ST_STOPPED] = 0
                self._send_direct(batch.buf, int(batch.off[i]), int(batch.caplen[i]), counters)
                i += 1
                continue
            if i >= n:
                break
            # ring full: wait for the kernel to give slots back, within a bound
            now = time.monotonic()
            if deadline is None:
                deadline = now + self.wait_ms / 1000
            left = deadline - now
            if left <= 0 or self.down:
                counters[C_LIVE_TX_RING_FULL] += int(np.count_nonzero(mask[i:n]))
                break
            try:
                self._poll.poll(max(1, int(left * 1000)))
            except InterruptedError:
                pass
        return int(counters[C_LIVE_TX_PACKETS]) - before

    def _send_direct(self, buf, o: int, cl: int, counters) -> None:
        """The frame at ``o`` the kernel could not send directly (or, under
        NUMBA_DISABLE_JIT, left to Python), after the marked slots (the
        caller flushed them): wait once for room, then count a failure."""
        frame = memoryview(buf)[o - VNET_HDR_LEN:o + cl]
        try:
            try:
                self.direct.send(frame, socket.MSG_DONTWAIT)
            except BlockingIOError:
                select.select([], [self.direct], [], self.wait_ms / 1000)
                self.direct.send(frame, socket.MSG_DONTWAIT)
            self.down = False
        except BlockingIOError:
            counters[C_LIVE_TX_RING_FULL] += 1
            return
        except OSError as e:
            if e.errno == errno.EMSGSIZE:
                counters[C_LIVE_TX_TOO_BIG] += 1
                return
            if e.errno not in (errno.ENETDOWN, errno.ENXIO, errno.ENOBUFS, errno.EINVAL):
                raise
            self.down = e.errno != errno.ENOBUFS
            counters[C_LIVE_TX_SEND_FAILED] += 1
            return
        finally:
            frame.release()
        counters[C_LIVE_TX_PACKETS] += 1
        counters[C_LIVE_TX_BYTES] += cl
        counters[C_LIVE_TX_DIRECT] += 1

    def pending(self) -> int:
        """Slots the kernel has not given back yet (queued or in flight)."""
        return int(np.count_nonzero(self.ring[0:self.nframes * self.fsize:self.fsize]))

    def drain(self, counters: np.ndarray, timeout: float = 5.0) -> int:
        """Send what is queued and wait (at most ``timeout`` s) until every
        slot is back; returns the slots still pending."""
        self.st[ST_MARKED] = max(int(self.st[ST_MARKED]), 1)
        end = time.monotonic() + timeout
        while True:
            self._flush(counters)
            left = self.pending()
            if not left or time.monotonic() >= end or self.down:
                return left
            time.sleep(0.002)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.ring = np.zeros(0, dtype=np.uint8)
        try:
            self.mm.close()
        except BufferError:
            pass
        self.sock.close()
        if self.direct is not None:
            self.direct.close()
