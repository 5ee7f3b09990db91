"""AF_PACKET receive rings as packet sources (Linux).

NAME
    ulnet.sources.afpacket -- a live interface into PacketBatches, read in place

SYNOPSIS
    src = RingSource("eth0", port=0)              # TPACKET_V3 blocks (capture)
    src = RingSource("veth0", version=2, vnet_hdr=True, ignore_outgoing=True)   # bridge
    while running:
        n = src.fill(batch)                       # batch rows view the ring in place
        if not n:
            src.wait(100); continue               # poll only when the ring is empty
        ...                                       # decode, flow, policy, send
        src.release()                             # give the frames back to the kernel
    src.add_kernel_stats(counters); src.close()

DESCRIPTION
    One ``SOCK_RAW`` socket per interface (``ETH_P_ALL``), a receive ring
    mapped into the process, and a compiled walker that fills the source
    columns of a batch (``off``, ``caplen``, ``wirelen``, ``ts``, ``port``,
    ``linktype``) pointing into the ring: the kernel's copy into the ring is
    the only copy in. ``ts`` comes from the ring header (``tp_sec`` and
    ``tp_nsec``); no clock is read per packet.

    Two ring layouts:

    ``version=3`` (TPACKET_V3): variable-size frames packed in blocks; the
    kernel hands a block over when it is full or when ``retire_ms`` has
    passed since its first packet. Few wake-ups, dense memory: right for
    capture. The retire timeout is latency: a lone packet waits up to
    ``retire_ms`` in the ring (measured in docs/live.md: 1 ms minimum, the
    kernel rounds to whole milliseconds).

    ``peek=True`` (V3, the bridge): packets are also taken from the block
    the kernel is still filling. A packet there is finished when the
    ``sockaddr_ll`` after its header carries the interface index:
    ``tpacket_rcv`` writes it last, after the frame and the header fields
    (an opaque call between them orders the compiler, x86 orders the
    stores; elsewhere ``peek`` is off). ``release()`` zeroes what the
    kernel wrote in a block before handing it back, so a header position
    of the next lap reads 0 until the kernel has written it. A V3 ring
    wakes its reader only when a block retires, so a second, ringless
    socket on the interface (``ret #1``, the minimum receive buffer) makes
    poll() return per packet: ``wake_fileno()``; ``drain_wake()`` before
    the last look at the ring ahead of a poll.

    ``version=2`` (TPACKET_V2): one fixed-size frame per packet, handed over
    at once. No retire delay, but a frame per packet: a ring of the same
    memory holds far fewer small packets than V3 blocks, and bursts
    overflow it (docs/live.md).

    A batch never straddles a release: ``release()`` gives back exactly the
    frames (V2) or whole blocks (V3) that ``fill`` walked; a block walked in
    part stays ours until its last packet has been taken.

    VLAN tags that the kernel stripped (``TP_STATUS_VLAN_VALID``) are put
    back into the frame in place (the ring reserves headroom for it), so
    decode, captures and the TX ring see the frame as it was on the wire
    (counted in ``live.vlan_reinserted``).

    ``vnet_hdr=True`` sets ``PACKET_VNET_HDR``: every frame is preceded by
    a 10-byte virtio-net header, and GSO/GRO frames larger than the MTU
    (TCP segmentation offload on veth, GRO on a NIC) are delivered whole
    with their segmentation and checksum metadata. The TX ring takes the
    header back (``ulnet.sinks.txring``), so the kernel segments and
    checksums on output: offloads stay on and nothing is changed on the
    interfaces. The header is kept just before ``off`` (``VNET_HDR_LEN``
    bytes) and is not part of the frame.

    Other options: ``snaplen`` (a one-instruction classic BPF program
    ``ret #snaplen`` attached with ``SO_ATTACH_FILTER``, as libpcap does),
    ``bpf`` (a classic BPF program, ``ulnet.filter.BPF_INSN`` array, from
    a tcpdump expression compiled for Ethernet with the snap length:
    attached with ``SO_ATTACH_FILTER`` instead, so the kernel drops what it
    rejects before it reaches the ring; those packets are not counted),
    ``promisc`` (``PACKET_MR_PROMISC`` membership, dropped by the kernel
    when the socket closes), ``ignore_outgoing`` (``PACKET_IGNORE_OUTGOING``:
    a bridge must not read back what it sends), ``fanout=(group, type)``
    (``PACKET_FANOUT``; ``FANOUT_HASH`` is the kernel's symmetric flow hash,
    so both directions of a flow land on the same member).

ERRORS
    ``LiveError``, one line: the interface does not exist, privileges are
    missing (root or CAP_NET_RAW), the interface is not Ethernet-framed, the
    ring cannot be set up.

CAVEATS
    Linux only. Kernel drops (ring full) are read with ``PACKET_STATISTICS``
    (``add_kernel_stats``: ``live.kernel_drops``). A packet larger than a V2
    frame is cut to it (``tp_snaplen < tp_len``): size frames for the MTU,
    or 64 KiB with ``vnet_hdr``.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import platform
import select
import socket
import struct

import numpy as np
from ulnet.jit import njit

from ulnet.batch import PacketBatch
from ulnet.counters import (C_SRC_PACKETS, C_SRC_BYTES, C_LIVE_VLAN_REINSERTED, C_LIVE_GSO_FRAMES,
                            C_LIVE_KERNEL_DROPS, C_LIVE_KERNEL_PACKETS, C_LIVE_FREEZE)

# <linux/if_packet.h>, <linux/if_ether.h>, <asm-generic/socket.h>
SOL_PACKET = 263
ETH_P_ALL = 0x0003
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_RESERVE = 12
PACKET_TX_RING = 13
PACKET_LOSS = 14
PACKET_VNET_HDR = 15
PACKET_FANOUT = 18
PACKET_QDISC_BYPASS = 20
PACKET_IGNORE_OUTGOING = 23
SO_ATTACH_FILTER = 26
TPACKET_V2, TPACKET_V3 = 1, 2
FANOUT_HASH = 0           # symmetric flow hash (__skb_get_hash_symmetric)
FANOUT_LB = 1
FANOUT_CPU = 2
FANOUT_FLAG_IGNORE_OUTGOING = 0x4000   # the group's own hook must skip outgoing frames too

# tp_status bits (receive side)
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
TP_STATUS_GSO_TCP = 0x100

VNET_HDR_LEN = 10          # struct virtio_net_hdr
RESERVE = 16               # PACKET_RESERVE: headroom before the frame (VLAN re-insertion)
ARPHRD_ETHER, ARPHRD_LOOPBACK = 1, 772
LINKTYPE_ETHERNET = 1

# Header layouts (offsets within the ring frame header), from if_packet.h.
#              name            V2   V3
_HDR = {"status": (0, 20), "len": (4, 16), "snaplen": (8, 12), "mac": (12, 24),
        "sec": (16, 4), "nsec": (20, 8), "vlan_tci": (24, 32), "vlan_tpid": (26, 36)}
# tpacket_block_desc: version u32, offset_to_priv u32, then tpacket_hdr_v1:
BLK_STATUS, BLK_NUM_PKTS, BLK_FIRST, BLK_LEN = 8, 12, 16, 20
BLK_HDR_LEN = 48           # sizeof(struct tpacket_block_desc), 8-aligned: the first packet (no private area)
PEEK_SLL_IFINDEX = 48 + 4  # sockaddr_ll after the 48-byte tpacket3_hdr: sll_ifindex
PEEK_MIN_ROOM = 128        # a packet header + sockaddr_ll + headroom fits before the block's end

# Ring geometry defaults
V3_BLOCK = 1 << 20         # 1 MiB blocks
V3_BLOCKS = 32
V3_RETIRE_MS = 1
OBSERVE_BUFFER_KIB = 32768 # capture, peek -i, flows -i: ring size (-B)
OBSERVE_RETIRE_MS = 100    # ... and block retire timeout: a packet is seen at most this late
V2_FRAME = 2048            # one MTU-sized packet per frame
V2_FRAME_GSO = 65536 + 512 # a whole GSO frame + headers
V2_FRAMES = 1024
V2_FRAMES_GSO = 256


def ring_geometry(buffer_kib: int = OBSERVE_BUFFER_KIB) -> tuple[int, int]:
    """(block size, blocks) of a TPACKET_V3 ring of about ``buffer_kib`` KiB,
    for the observing commands (capture, peek -i, flows -i).

    A block is handed over when full or when the retire timer fires
    (OBSERVE_RETIRE_MS), whichever comes first, and a retired block is one
    slot whatever it holds: under moderate traffic the ring covers about
    blocks x the timer of a reader that is not scheduled, however large it
    is. So: blocks of 1 MiB only when that still makes at least 64 of them,
    else halved down to 128 KiB (which still holds a whole 64 KiB GRO/GSO
    frame). 32 MiB -> 64 x 512 KiB; 2 MiB -> 16 x 128 KiB. (1 MiB blocks
    with a 10 ms timer made 2 blocks of a 2 MiB ring, 20 ms, and lost
    packets at 30-250 kpps where tcpdump's 8 x 256 KiB with libpcap's
    1000 ms did not: bench/bench_capture.py.)"""
    total = buffer_kib * 1024
    block = 1 << 20
    while block > (128 << 10) and total // block < 64:
        block >>= 1
    return block, max(2, total // block)


class LiveError(Exception):
    """A live interface that cannot be used: one line, says why."""


def privilege_hint(e: OSError) -> str:
    return f"{e.strerror or e}: run as root or with CAP_NET_RAW and CAP_NET_ADMIN"


def iface_index(name: str) -> int:
    """Interface index of ``name``; LiveError when it does not exist."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        raise LiveError(f"{name}: no such interface") from None


def iface_type(name: str) -> int:
    try:
        with open(f"/sys/class/net/{name}/type") as f:
            return int(f.read())
    except (OSError, ValueError):
        return ARPHRD_ETHER


def iface_mtu(name: str) -> int:
    try:
        with open(f"/sys/class/net/{name}/mtu") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1500


def packet_socket(name: str, protocol: int = ETH_P_ALL) -> socket.socket:
    """An AF_PACKET SOCK_RAW socket bound to interface ``name``."""
    iface_index(name)
    if iface_type(name) not in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
        raise LiveError(f"{name}: not an Ethernet interface (ARPHRD {iface_type(name)}); ulnet reads Ethernet frames")
    try:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(protocol))
    except PermissionError as e:
        raise LiveError(f"{name}: cannot open a packet socket: {privilege_hint(e)}") from None
    try:
        s.bind((name, protocol))
    except OSError as e:
        s.close()
        if e.errno == errno.ENODEV:
            raise LiveError(f"{name}: no such interface") from None
        raise LiveError(f"{name}: cannot bind a packet socket: {e.strerror}") from None
    return s


def setsockopt_int(s: socket.socket, opt: int, value: int, what: str, name: str) -> None:
    try:
        s.setsockopt(SOL_PACKET, opt, value)
    except OSError as e:
        if e.errno == errno.EPERM:
            raise LiveError(f"{name}: {what}: {privilege_hint(e)}") from None
        raise LiveError(f"{name}: {what}: {e.strerror}") from None


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def attach_bpf(s: socket.socket, insns: list[tuple[int, int, int, int]], name: str) -> None:
    """Attach a classic BPF program (list of (code, jt, jf, k)) with SO_ATTACH_FILTER."""
    arr = (_SockFilter * len(insns))(*[_SockFilter(*i) for i in insns])
    prog = _SockFprog(len(insns), arr)
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(memoryview(prog)))
    except OSError as e:
        raise LiveError(f"{name}: cannot attach the filter: {e.strerror}") from None


def set_promisc(s: socket.socket, ifindex: int, name: str) -> None:
    # struct packet_mreq { int mr_ifindex; unsigned short mr_type, mr_alen; unsigned char mr_address[8]; }
    mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
    try:
        s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
    except OSError as e:
        raise LiveError(f"{name}: cannot set promiscuous mode: {privilege_hint(e)}") from None


def map_ring(s: socket.socket, size: int, name: str) -> mmap.mmap:
    try:
        return mmap.mmap(s.fileno(), size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    except OSError as e:
        raise LiveError(f"{name}: cannot map the ring ({size} bytes): {e.strerror}") from None


# ----------------------------------------------------------------------------
# compiled walkers (private)

@njit(cache=True, inline="always")
def _u16(b, p):
    return np.int64(b[p]) | (np.int64(b[p + 1]) << 8)


@njit(cache=True, inline="always")
def _u32(b, p):
    return np.int64(b[p]) | (np.int64(b[p + 1]) << 8) | (np.int64(b[p + 2]) << 16) | (np.int64(b[p + 3]) << 24)


@njit(cache=True, inline="always")
def _put_u16be(b, p, v):
    b[p] = (v >> 8) & 0xFF
    b[p + 1] = v & 0xFF


@njit(cache=True, inline="always")
def _put_u16le(b, p, v):
    b[p] = v & 0xFF
    b[p + 1] = (v >> 8) & 0xFF


@njit(cache=True)
def _take(ring, h, status, mac, snap, wlen, sec, nsec, tci, tpid, vnet, port,
          off, caplen, wirelen, ts, linktype, portcol, i, counters, c_vlan, c_gso):
    """Fill row i from one ring frame header at h and count it; re-insert a
    stripped VLAN tag in place (moving the virtio-net header with the frame)."""
    m = h + mac
    if status & 0x10:                           # TP_STATUS_VLAN_VALID
        if vnet:
            for j in range(10):                 # virtio-net header moves 4 bytes back
                ring[m - 14 + j] = ring[m - 10 + j]
        for j in range(12):                     # destination + source MAC
            ring[m - 4 + j] = ring[m + j]
        m -= 4
        if status & 0x40 and tpid != 0:         # TP_STATUS_VLAN_TPID_VALID
            _put_u16be(ring, m + 12, tpid)
        else:
            _put_u16be(ring, m + 12, 0x8100)
        _put_u16be(ring, m + 14, tci)
        snap += 4
        wlen += 4
        if vnet:                                # offsets in the header are from the frame start
            hl = _u16(ring, m - 8)
            cs = _u16(ring, m - 4)
            if ring[m - 10] & 1:                # VIRTIO_NET_HDR_F_NEEDS_CSUM
                _put_u16le(ring, m - 4, cs + 4)
            if hl:
                _put_u16le(ring, m - 8, hl + 4)
    off[i] = m
    caplen[i] = snap
    wirelen[i] = wlen
    ts[i] = sec * 1000000000 + nsec
    linktype[i] = 1
    portcol[i] = port
    if status & 0x10:
        counters[c_vlan] += 1
    if status & 0x100:                          # TP_STATUS_GSO_TCP
        counters[c_gso] += 1
    counters[C_SRC_PACKETS] += 1
    counters[C_SRC_BYTES] += snap


@njit(cache=True)
def _walk_v3(ring, block_size, nblocks, st, vnet, port, off, caplen, wirelen, ts, linktype, portcol,
             n0, cap, counters, c_vlan, c_gso, peek, ifindex):
    """Walk ready V3 blocks from the cursor st = [block, pkt index, offset in
    block, blocks walked to the end since the last release, first such block].
    With ``peek``, also take the finished packets of the block the kernel is
    still filling (see RingSource: the ring must be zeroed on release).
    Returns rows filled (from n0)."""
    i = n0
    while i < cap:
        blk = st[0]
        b = blk * block_size
        owned = (_u32(ring, b + BLK_STATUS) & 1) != 0   # TP_STATUS_USER: the block is ours
        if not owned and not peek:
            break
        k = st[1]
        p = st[2]
        if owned:
            npk = _u32(ring, b + BLK_NUM_PKTS)
            if k == 0:
                p = _u32(ring, b + BLK_FIRST)
        else:
            npk = 1 << 30
            if k == 0:
                p = BLK_HDR_LEN
        while k < npk and i < cap:
            h = b + p
            if not owned:
                # the kernel's block: a packet is finished when its sockaddr_ll
                # carries the interface index (written after the frame and the
                # header, see RingSource); zeroed memory reads 0 until then
                if p + PEEK_MIN_ROOM > block_size or _u32(ring, h + PEEK_SLL_IFINDEX) != ifindex \
                        or (_u32(ring, h + 20) & 1) == 0:
                    break
            status = _u32(ring, h + 20)
            snap = _u32(ring, h + 12)
            _take(ring, h, status, _u16(ring, h + 24), snap, _u32(ring, h + 16),
                  _u32(ring, h + 4), _u32(ring, h + 8), _u32(ring, h + 32), _u16(ring, h + 36),
                  vnet, port, off, caplen, wirelen, ts, linktype, portcol, i, counters, c_vlan, c_gso)
            i += 1
            k += 1
            nxt = _u32(ring, h)                     # tp_next_offset
            p += nxt
            if nxt == 0:                            # the last packet of a block closed meanwhile:
                break                               # its num_pkts (next call) ends it
        if k < npk:                                 # batch full inside the block, or the kernel's block
            st[1] = k
            st[2] = p
            break
        st[1] = 0
        st[2] = 0
        if st[3] == 0:
            st[4] = blk
        st[3] += 1
        st[0] = (blk + 1) % nblocks
        if st[3] == nblocks:
            break
    return i - n0


@njit(cache=True)
def _fill_v3(ring, block_size, nblocks, st, vnet, port, off, caplen, wirelen, ts, linktype, portcol,
             n0, cap, counters, peek, ifindex):
    """RingSource.fill of a V3 ring (and of the bridge's one-call passes):
    _walk_v3; when an empty batch gets nothing, the blocks whose packets
    were all taken earlier (peek) and that retired since go back to the
    kernel: nothing views them, and a retired block left ours keeps poll()
    readable."""
    got = _walk_v3(ring, block_size, nblocks, st, vnet, port, off, caplen, wirelen, ts, linktype, portcol,
                   n0, cap, counters, C_LIVE_VLAN_REINSERTED, C_LIVE_GSO_FRAMES, peek, ifindex)
    if got == 0 and n0 == 0 and st[3]:
        _release_v3(ring, block_size, nblocks, st, peek)
    return got


@njit(cache=True)
def _release_v3(ring, block_size, nblocks, st, zero):
    b = st[4]
    for _ in range(st[3]):
        if zero:                                    # what the kernel wrote after the block header
            base = b * block_size
            end = base + min(_u32(ring, base + BLK_LEN), block_size)
            ring[base + BLK_HDR_LEN:end] = 0
        ring[b * block_size + BLK_STATUS] = 0       # TP_STATUS_KERNEL (low byte; the rest is 0)
        ring[b * block_size + BLK_STATUS + 1] = 0
        ring[b * block_size + BLK_STATUS + 2] = 0
        ring[b * block_size + BLK_STATUS + 3] = 0
        b = (b + 1) % nblocks
    st[3] = 0


@njit(cache=True)
def _walk_v2(ring, frame_size, nframes, st, vnet, port, off, caplen, wirelen, ts, linktype, portcol,
             n0, cap, counters, c_vlan, c_gso):
    """Walk ready V2 frames from st[0]; st[1] counts frames to release."""
    i = n0
    f = st[0]
    while i < cap and st[1] < nframes:
        h = f * frame_size
        status = _u32(ring, h)
        if (status & 1) == 0:
            break
        _take(ring, h, status, _u16(ring, h + 12), _u32(ring, h + 8), _u32(ring, h + 4),
              _u32(ring, h + 16), _u32(ring, h + 20), _u16(ring, h + 24), _u16(ring, h + 26),
              vnet, port, off, caplen, wirelen, ts, linktype, portcol, i, counters, c_vlan, c_gso)
        i += 1
        st[1] += 1
        f = (f + 1) % nframes
    st[0] = f
    return i - n0


@njit(cache=True)
def _release_v2(ring, frame_size, nframes, st):
    f = st[0] - st[1]
    if f < 0:
        f += nframes
    for _ in range(st[1]):
        h = f * frame_size
        ring[h] = 0
        ring[h + 1] = 0
        ring[h + 2] = 0
        ring[h + 3] = 0
        f = (f + 1) % nframes
    st[1] = 0


# ----------------------------------------------------------------------------

class RingSource:
    """One interface's receive ring; see the module documentation."""

    def __init__(self, ifname: str, port: int = 0, *, version: int = 3, snaplen: int | None = None,
                 promisc: bool = True, vnet_hdr: bool = False, ignore_outgoing: bool = False,
                 fanout: tuple[int, int] | None = None, block_size: int = V3_BLOCK,
                 blocks: int = V3_BLOCKS, retire_ms: int = V3_RETIRE_MS,
                 frame_size: int | None = None, frames: int | None = None, bpf=None, peek: bool = False):
        if version not in (2, 3):
            raise ValueError("ring version is 2 or 3")
        self.name = ifname
        self.port = port
        self.version = version
        self.vnet = bool(vnet_hdr)
        self.ifindex = iface_index(ifname)
        self.counters = None
        self._closed = False
        # peek: read a V3 block while the kernel fills it (x86 store order), woken per packet
        self.peek = bool(peek) and version == 3 and PEEK_SUPPORTED
        self.waker = _waker(ifname, ignore_outgoing) if self.peek else None   # bound first: its hook runs last
        try:
            s = self.sock = packet_socket(ifname)
        except BaseException:
            if self.waker is not None:
                self.waker.close()
            raise
        try:
            setsockopt_int(s, PACKET_VERSION, TPACKET_V3 if version == 3 else TPACKET_V2, "ring version", ifname)
            setsockopt_int(s, PACKET_RESERVE, RESERVE, "ring headroom", ifname)
            if self.vnet:
                setsockopt_int(s, PACKET_VNET_HDR, 1, "virtio-net headers", ifname)
            if ignore_outgoing:
                setsockopt_int(s, PACKET_IGNORE_OUTGOING, 1, "ignore outgoing", ifname)
            if snaplen is not None and not 1 <= snaplen <= 0xFFFFFFFF:
                raise LiveError(f"{ifname}: snap length out of range: {snaplen}")
            if bpf is not None:                                       # compiled with the snap length
                attach_bpf(s, [tuple(int(v) for v in i) for i in bpf.tolist()], ifname)
            elif snaplen is not None:
                attach_bpf(s, [(0x06, 0, 0, snaplen)], ifname)        # BPF_RET|BPF_K snaplen
            if promisc:
                set_promisc(s, self.ifindex, ifname)
            if version == 3:
                self.unit = block_size
                self.count = blocks
                req = struct.pack("7I", block_size, blocks, 2048, block_size // 2048 * blocks, retire_ms, 0, 0)
            else:
                fs = frame_size or (V2_FRAME_GSO if self.vnet else max(V2_FRAME, _align(iface_mtu(ifname) + 128, 16)))
                nf = frames or (V2_FRAMES_GSO if self.vnet else V2_FRAMES)
                # small frames: a power of two, packed in 64 KiB blocks; large
                # frames: whole pages, one per block (frames must tile blocks)
                if fs < mmap.PAGESIZE:
                    fs = 1 << (max(fs, 64) - 1).bit_length()
                    bs = max(65536, mmap.PAGESIZE)
                else:
                    fs = bs = _align(fs, mmap.PAGESIZE)
                per = bs // fs
                nb = max(1, -(-nf // per))
                self.unit = fs
                self.count = per * nb
                self.frames_per_block = per
                self.block_bytes = bs
                req = struct.pack("4I", bs, nb, fs, per * nb)
            try:
                s.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
            except OSError as e:
                raise LiveError(f"{ifname}: cannot set up the receive ring: {e.strerror}") from None
            size = self.unit * self.count if version == 3 else self.block_bytes * (self.count // self.frames_per_block)
            self.mm = map_ring(s, size, ifname)
            if fanout is not None:
                group, ftype = fanout
                if ignore_outgoing:
                    ftype |= FANOUT_FLAG_IGNORE_OUTGOING
                try:
                    s.setsockopt(SOL_PACKET, PACKET_FANOUT, (group & 0xFFFF) | (ftype << 16))
                except OSError as e:
                    raise LiveError(f"{ifname}: cannot join fanout group {group}: {e.strerror}") from None
        except BaseException:
            s.close()
            if self.waker is not None:
                self.waker.close()
            raise
        self.ring = np.frombuffer(self.mm, dtype=np.uint8)
        self.st = np.zeros(5, dtype=np.int64)
        self._poll = select.poll()
        self._poll.register(s.fileno(), select.POLLIN | select.POLLERR)

    def fileno(self) -> int:
        return self.sock.fileno()

    def fill(self, batch: PacketBatch, n0: int = 0) -> int:
        """Rows from ``n0`` filled with the packets ready in the ring (0 if
        none); ``batch.buf`` becomes the ring. Call ``release()`` once the
        batch is consumed."""
        if self.counters is None:
            from ulnet.counters import new_counters
            self.counters = new_counters()
        b = batch
        if self.version == 3:
            got = _fill_v3(self.ring, self.unit, self.count, self.st, self.vnet, self.port, b.off, b.caplen,
                           b.wirelen, b.ts, b.linktype, b.port, n0, b.capacity, self.counters, self.peek,
                           self.ifindex)
        else:
            got = _walk_v2(self.ring, self.unit, self.count, self.st, self.vnet, self.port, b.off, b.caplen,
                           b.wirelen, b.ts, b.linktype, b.port, n0, b.capacity, self.counters,
                           C_LIVE_VLAN_REINSERTED, C_LIVE_GSO_FRAMES)
        b.buf = self.ring
        return int(got)

    def warm(self, batch: PacketBatch) -> None:
        """Load (or compile) the walker and the release kernel now, taking no
        packet: the first packets must not wait for numba."""
        self.fill(batch, batch.capacity)            # a full batch: walks nothing
        if self.version == 3:
            _release_v3(self.ring, self.unit, self.count, self.st, self.peek)  # st[3] == 0: releases nothing
        else:
            _release_v2(self.ring, self.unit, self.count, self.st)  # st[1] == 0: releases nothing

    def release(self) -> None:
        """Give the frames/blocks walked by the last ``fill`` back to the kernel."""
        if self.version == 3:
            if self.st[3]:
                _release_v3(self.ring, self.unit, self.count, self.st, self.peek)
        elif self.st[1]:
            _release_v2(self.ring, self.unit, self.count, self.st)

    def wait(self, timeout_ms: int) -> bool:
        """Poll until the ring has packets or ``timeout_ms`` passes; True if ready.
        A pending socket error (interface went down) is cleared and reported as not ready."""
        try:
            ev = self._poll.poll(timeout_ms)
        except InterruptedError:
            return False
        for _fd, e in ev:
            if e & select.POLLERR:
                self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                return False
        return bool(ev)

    def kernel_stats(self) -> tuple[int, int, int]:
        """(packets, drops, freeze count) since the last call (the kernel resets them)."""
        if self.version == 3:
            raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
            return struct.unpack("3I", raw)
        raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        p, d = struct.unpack("2I", raw)
        return p, d, 0

    def add_kernel_stats(self, counters: np.ndarray) -> None:
        if self._closed:
            return
        p, d, f = self.kernel_stats()
        counters[C_LIVE_KERNEL_PACKETS] += p
        counters[C_LIVE_KERNEL_DROPS] += d
        counters[C_LIVE_FREEZE] += f

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.ring = np.zeros(0, dtype=np.uint8)
        try:
            self.mm.close()
        except BufferError:
            pass       # a batch still views the ring; it goes with the last view
        self.sock.close()
        if self.waker is not None:
            self.waker.close()

    def wake_fileno(self) -> int | None:
        """The wake-up socket (``peek``): readable when a packet has arrived
        since the last ``drain_wake()``; None without one."""
        return None if self.waker is None else self.waker.fileno()

    def drain_wake(self) -> None:
        """Empty the wake-up socket; call it before the last look at the ring
        ahead of a poll(), so a packet arriving after that look wakes it."""
        w = self.waker
        if w is None:
            return
        for _ in range(64):
            try:
                w.recv(1, socket.MSG_DONTWAIT | socket.MSG_TRUNC)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return


# The peek relies on the order in which the kernel's stores become visible
# (tpacket_rcv writes the frame, the header, then the sockaddr_ll after an
# opaque call, with no barrier before the V3 block is closed): x86's total
# store order. Elsewhere V3 blocks are read once retired.
PEEK_SUPPORTED = platform.machine() in ("x86_64", "AMD64", "i686", "i386")
WAKE_RCVBUF = 1            # SO_RCVBUF: the kernel's minimum; a full queue drops before cloning


def _waker(ifname: str, ignore_outgoing: bool) -> socket.socket:
    """A ringless packet socket on ``ifname`` that keeps 1 byte of each
    packet in a queue of the minimum size: poll() on it wakes per packet
    (a V3 ring wakes only when a block retires). When the queue is full the
    kernel drops before cloning: an idle reader pays a recv() or two."""
    w = packet_socket(ifname)
    try:
        if ignore_outgoing:
            setsockopt_int(w, PACKET_IGNORE_OUTGOING, 1, "ignore outgoing", ifname)
        attach_bpf(w, [(0x06, 0, 0, 1)], ifname)                  # ret #1
        w.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, WAKE_RCVBUF)
        w.setblocking(False)
    except BaseException:
        w.close()
        raise
    return w


def _align(v: int, a: int) -> int:
    return (v + a - 1) // a * a


def observe_ring(ifname: str, *, snaplen: int | None = None, promisc: bool = True,
                 buffer_kib: int = OBSERVE_BUFFER_KIB, bpf=None) -> RingSource:
    """The receive ring of the observing commands (capture, peek -i, flows
    -i): TPACKET_V3, ``ring_geometry(buffer_kib)``, OBSERVE_RETIRE_MS."""
    block, blocks = ring_geometry(buffer_kib)
    return RingSource(ifname, 0, version=3, snaplen=snaplen, promisc=promisc, block_size=block, blocks=blocks,
                      retire_ms=OBSERVE_RETIRE_MS, bpf=bpf)


def open_interface(ifname: str, port: int = 0, **options) -> RingSource:
    """Open a live interface as a packet source (see RingSource)."""
    return RingSource(ifname, port, **options)
