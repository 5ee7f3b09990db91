"""libpcap's filter compiler through ctypes (tcpdump's syntax, tcpdump's code).

NAME
    ulnet.filter.libpcap -- compile a filter expression into classic BPF

SYNOPSIS
    prog = compile_expression("tcp port 80", linktype=1, snaplen=262144)
    prog["code"], prog["jt"], prog["jf"], prog["k"]     # a numpy record array
    prog, why_dead = compile_live("vlan 100", "eth0", snaplen=262144)    # for SO_ATTACH_FILTER on eth0

DESCRIPTION
    ulnet has no parser of its own for tcpdump's expressions: libpcap's
    ``pcap_compile`` (the library tcpdump links, Debian package libpcap0.8)
    compiles the expression on a dead handle (``pcap_open_dead(linktype,
    snaplen)``) with the optimizer on and an unknown netmask, exactly what
    tcpdump does for a capture file of that link type. The instructions are
    copied into a numpy array (``BPF_INSN``: code u16, jt u8, jf u8, k u32)
    and libpcap's copy is freed.

    ``compile_live`` compiles for a live socket on a Linux interface as
    tcpdump -i does: on a handle activated on that interface
    (``pcap_create``, ``pcap_activate``: a small ring, no promiscuous mode,
    closed at once). libpcap then knows the kernel strips 802.1Q tags into
    the packet's metadata before the socket filter runs, and ``vlan``
    becomes the kernel's ancillary loads (SKF_AD_VLAN_TAG_PRESENT,
    SKF_AD_VLAN_TAG) or a tag left in the frame (QinQ); ``inbound`` and
    ``outbound`` become SKF_AD_PKTTYPE. Such a program runs only in the
    kernel (the batch interpreter has no ancillary loads). When the handle
    cannot be activated (the interface is down or missing, no privileges)
    the expression is compiled on a dead Ethernet handle instead and
    libpcap's reason is returned with it.

ERRORS
    ``FilterError`` with libpcap's own message (``pcap_geterr``), or a
    message saying libpcap cannot be loaded.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

import numpy as np

BPF_INSN = np.dtype([("code", "<u2"), ("jt", "u1"), ("jf", "u1"), ("k", "<u4")])
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
DEFAULT_SNAPLEN = 262144


class FilterError(Exception):
    """A filter that cannot be compiled (message: libpcap's own words)."""


class _Insn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _Program(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_Insn))]


_lib = None
_lock = threading.Lock()


def _load():
    global _lib
    if _lib is not None:
        return _lib
    names = [n for n in (ctypes.util.find_library("pcap"), "libpcap.so.0.8", "libpcap.so.1") if n]
    err = None
    for name in names:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError as e:
            err = e
    else:
        raise FilterError(f"cannot load libpcap (install libpcap0.8): {err}")
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_compile.restype = ctypes.c_int
    lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Program), ctypes.c_char_p, ctypes.c_int,
                                 ctypes.c_uint32]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_freecode.restype = None
    lib.pcap_freecode.argtypes = [ctypes.POINTER(_Program)]
    lib.pcap_close.restype = None
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    lib.pcap_create.restype = ctypes.c_void_p
    lib.pcap_create.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    for f in ("pcap_set_snaplen", "pcap_set_buffer_size"):
        getattr(lib, f).restype = ctypes.c_int
        getattr(lib, f).argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.pcap_activate.restype = ctypes.c_int
    lib.pcap_activate.argtypes = [ctypes.c_void_p]
    lib.pcap_lib_version.restype = ctypes.c_char_p
    lib.pcap_lib_version.argtypes = []
    _lib = lib
    return lib


def version() -> str:
    """libpcap's version string (``libpcap version 1.10.3 (...)``)."""
    return _load().pcap_lib_version().decode("utf-8", "replace")


# LINKTYPE_* (file headers) whose DLT_* (what pcap_open_dead takes) differs on
# Linux; every other value is the same in both.
_LINKTYPE_TO_DLT = {100: 11, 101: 12, 102: 15, 103: 16}


def dlt_of(linktype: int) -> int:
    """The DLT_ value libpcap's compiler takes for a file's LINKTYPE_ value."""
    return _LINKTYPE_TO_DLT.get(int(linktype), int(linktype))


def _compile_on(lib, h, expr: str) -> np.ndarray:
    """pcap_compile on handle ``h`` (closed here, whatever happens)."""
    try:
        prog = _Program()
        if lib.pcap_compile(h, ctypes.byref(prog), expr.encode("utf-8"), 1, PCAP_NETMASK_UNKNOWN) != 0:
            raise FilterError((lib.pcap_geterr(h) or b"cannot compile").decode("utf-8", "replace"))
        try:
            n = prog.bf_len
            raw = ctypes.string_at(prog.bf_insns, n * ctypes.sizeof(_Insn))
            return np.frombuffer(raw, dtype=BPF_INSN).copy()
        finally:
            lib.pcap_freecode(ctypes.byref(prog))
    finally:
        lib.pcap_close(h)


def compile_expression(expr: str, linktype: int = 1, snaplen: int = DEFAULT_SNAPLEN) -> np.ndarray:
    """Compile ``expr`` for ``linktype`` (a LINKTYPE_ value, as in capture
    files); the program as a BPF_INSN array."""
    lib = _load()
    with _lock:               # pcap_compile was not thread-safe before libpcap 1.8
        h = lib.pcap_open_dead(dlt_of(linktype), int(snaplen))
        if not h:
            raise FilterError(f"libpcap cannot open a handle for link type {linktype}")
        return _compile_on(lib, h, expr)


LIVE_RING_BYTES = 1 << 16     # the throwaway handle's ring: as small as libpcap takes


def compile_live(expr: str, ifname: str, snaplen: int = DEFAULT_SNAPLEN) -> tuple[np.ndarray, str | None]:
    """Compile ``expr`` for a live socket on interface ``ifname`` (module
    documentation): (program, None), or (the dead-handle Ethernet program,
    libpcap's reason) when no live handle can be activated there."""
    lib = _load()
    err = ctypes.create_string_buffer(512)       # PCAP_ERRBUF_SIZE: 256
    with _lock:
        h = lib.pcap_create(ifname.encode("utf-8", "surrogateescape"), err)
        if h:
            lib.pcap_set_snaplen(h, int(snaplen))
            lib.pcap_set_buffer_size(h, LIVE_RING_BYTES)
            if lib.pcap_activate(h) >= 0:        # > 0: a warning (no promiscuous mode asked anyway)
                return _compile_on(lib, h, expr), None
            why = (lib.pcap_geterr(h) or b"cannot activate").decode("utf-8", "replace")
            lib.pcap_close(h)
        else:
            why = err.value.decode("utf-8", "replace") or "cannot create a handle"
    return compile_expression(expr, 1, snaplen), why
