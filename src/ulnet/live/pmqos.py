"""A CPU wake-up latency request for the bridge (Linux PM QoS).

NAME
    ulnet.live.pmqos -- hold /dev/cpu_dma_latency while the bridge runs

SYNOPSIS
    with cpu_latency(0):        # idle CPUs poll instead of halting
        run_bridge(...)
    with cpu_latency(0, required=False) as held:   # the bridge's default
        ...

DESCRIPTION
    Writing a number of microseconds to ``/dev/cpu_dma_latency`` and keeping
    the file open asks the kernel's cpuidle governor to use no idle state
    whose exit latency is larger (the kernel's CPU latency QoS; what tuned's
    ``force_latency``, cyclictest and DPDK's power library use). With 0 an
    idle CPU polls in the kernel instead of halting, so the packet that
    wakes the bridge finds it at once: on this machine (a VM whose idle
    vCPUs halt at once, ``haltpoll``) ping's added p50 through the bridge
    went from +70 to +28 us (docs/live.md). The request is the machine's:
    while it is held every idle CPU polls (power, and CPU time a hypervisor
    sees as busy). The kernel drops it when the file is closed, also when
    the process dies.

    ``ulnet bridge`` holds a request of 0 by default (``--cpu-latency off``
    holds none; without root the default is silently not held).

ERRORS
    ``LiveError`` when the device cannot be opened or written (not Linux,
    no such device, not root), unless ``required=False``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct

from ulnet.sources.afpacket import LiveError

DEVICE = "/dev/cpu_dma_latency"


@contextlib.contextmanager
def cpu_latency(usec: int | None, device: str = DEVICE, required: bool = True):
    """Hold a CPU wake-up latency request of ``usec`` microseconds for the
    ``with`` block (None: none); yields whether it is held. ``required=False``
    (the bridge's default request): a request that cannot be made is not
    an error, the block runs without it."""
    fd = None
    if usec is not None:
        try:
            fd = _request(usec, device)
        except LiveError:
            if required:
                raise
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)


def _request(usec: int, device: str) -> int:
    """The open descriptor that holds the request (LiveError when it cannot)."""
    what = f"cannot request a CPU wake-up latency of {usec} us ({device})"
    try:
        fd = os.open(device, os.O_WRONLY)
    except OSError as e:
        root = " (root needed)" if e.errno in (errno.EPERM, errno.EACCES) else ""
        raise LiveError(f"{what}: {e.strerror}{root}") from None
    try:
        os.write(fd, struct.pack("i", int(usec)))
    except OSError as e:
        os.close(fd)
        raise LiveError(f"{what}: {e.strerror}") from None
    return fd


def current(device: str = DEVICE) -> int:
    """The latency in force now (the smallest request held), in microseconds."""
    fd = os.open(device, os.O_RDONLY)
    try:
        return struct.unpack("i", os.read(fd, 4))[0]
    finally:
        os.close(fd)
