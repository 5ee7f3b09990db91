"""A TAP device as packet source and sink: the host stack as a port (Linux).

NAME
    ulnet.sources.tap -- frames to and from the local host's network stack

SYNOPSIS
    tap = TapPort("tap0", port=1)          # creates tap0 (or attaches to a persistent one)
    n = tap.fill(batch)                    # frames the host sent, read into tap's buffer
    tap.send_batch(batch, counters, mask, src_vnet=True)   # frames for the host
    tap.close()                            # a TAP ulnet created goes away with it

DESCRIPTION
    Opens ``/dev/net/tun`` with ``IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`` and
    sets ``TUNSETOFFLOAD`` (checksum, TSO4/6): frames carry a virtio-net
    header both ways, exactly like rings opened with ``vnet_hdr``, so GSO
    frames and partial checksums cross between the host stack and the wire
    whole (the kernel segments them when they leave through a real port).
    The device is brought up; giving it an address is the host's business
    (``ip addr add ... dev tap0``). This is netmap's "transparent mode":
    traffic between an interface and the host goes through the pipeline.

    ``fill`` reads frames into one preallocated buffer (the TAP has no ring:
    one ``read`` per frame, stopping when the device has none left, the
    batch is full or the buffer cannot hold another 64 KiB frame). Each
    frame is stored as [virtio-net header][frame], ``off`` pointing at the
    frame, as on an AF_PACKET ring with ``vnet_hdr``. ``ts`` is the read
    time, one clock reading per fill. ``send_batch`` writes one frame per
    ``write`` (header and frame gathered with ``writev``).

ERRORS
    ``LiveError``: the TAP cannot be created (no ``/dev/net/tun``, no
    CAP_NET_ADMIN, a name in use by another kind of device).

CAVEATS
    One system call per frame each way: the TAP is the slow port (io_uring
    or AF_XDP would remove that). A write the host stack cannot take (queue
    full) drops the frame (``live.tap.write_failed``).
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
import struct
import time

import numpy as np

from ulnet.batch import PacketBatch
from ulnet.counters import C_SRC_PACKETS, C_SRC_BYTES, C_LIVE_TX_PACKETS, C_LIVE_TX_BYTES, C_LIVE_TAP_WRITE_FAILED
from ulnet.sources.afpacket import LiveError, VNET_HDR_LEN, privilege_hint

TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 = 0x01, 0x02, 0x04
SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
IFF_UP = 0x1

FRAME_MAX = 65536 + VNET_HDR_LEN + 64
BUF_BYTES = 8 << 20
_ZERO_VNET = bytes(VNET_HDR_LEN)


def set_up(name: str) -> None:
    """Bring interface ``name`` up (SIOCSIFFLAGS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", name.encode(), 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", name.encode(), flags | IFF_UP))


class TapPort:
    """A TAP device (source and sink); see the module documentation."""

    def __init__(self, name: str, port: int = 0):
        if not name or len(name.encode()) > 15:
            raise LiveError(f"TAP {name!r}: a device name is 1 to 15 bytes")
        self.name = name
        self.port = port
        self.counters = None
        self.vnet = True
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            hint = privilege_hint(e) if e.errno in (errno.EPERM, errno.EACCES) else e.strerror
            raise LiveError(f"TAP {name}: cannot create: /dev/net/tun: {hint}") from None
        try:
            ifr = struct.pack("16sH22x", name.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
            fcntl.ioctl(fd, TUNSETIFF, ifr)
            fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
            set_up(name)
        except OSError as e:
            os.close(fd)
            hint = privilege_hint(e) if e.errno in (errno.EPERM, errno.EACCES) else e.strerror
            raise LiveError(f"TAP {name}: cannot create: {hint}") from None
        self.fd = fd
        self.buf = np.zeros(BUF_BYTES, dtype=np.uint8)
        self._mv = memoryview(self.buf)
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def fileno(self) -> int:
        return self.fd

    def fill(self, batch: PacketBatch, n0: int = 0) -> int:
        if self.counters is None:
            from ulnet.counters import new_counters
            self.counters = new_counters()
        b, mv, fd = batch, self._mv, self.fd
        i, q = n0, 0
        lim = len(self.buf) - FRAME_MAX
        c = self.counters
        while i < b.capacity and q <= lim:
            try:
                got = os.readv(fd, [mv[q:q + FRAME_MAX]])
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno in (errno.EIO, errno.EBADFD, errno.ENETDOWN):
                    break                 # device down: nothing to read
                raise
            if got <= VNET_HDR_LEN:
                continue
            fl = got - VNET_HDR_LEN
            b.off[i] = q + VNET_HDR_LEN
            b.caplen[i] = fl
            b.wirelen[i] = fl
            b.port[i] = self.port
            b.linktype[i] = 1
            c[C_SRC_PACKETS] += 1
            c[C_SRC_BYTES] += fl
            q += (got + 15) & ~15
            i += 1
        if i > n0:
            b.ts[n0:i] = time.time_ns()
        b.buf = self.buf
        return i - n0

    def release(self) -> None:
        pass

    def wait(self, timeout_ms: int) -> bool:
        try:
            return bool(self._poll.poll(timeout_ms))
        except InterruptedError:
            return False

    def send_batch(self, batch: PacketBatch, counters: np.ndarray, mask=None, src_vnet: bool = False) -> int:
        buf = memoryview(batch.buf)
        off, cl = batch.off, batch.caplen
        sent = 0
        for i in range(batch.n):
            if mask is not None and not mask[i]:
                continue
            o, n = int(off[i]), int(cl[i])
            try:
                if src_vnet:
                    os.write(self.fd, buf[o - VNET_HDR_LEN:o + n])
                else:
                    os.writev(self.fd, [_ZERO_VNET, buf[o:o + n]])
            except OSError:
                counters[C_LIVE_TAP_WRITE_FAILED] += 1
                continue
            sent += 1
            counters[C_LIVE_TX_PACKETS] += 1
            counters[C_LIVE_TX_BYTES] += n
        return sent

    def add_kernel_stats(self, counters) -> None:
        pass

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
