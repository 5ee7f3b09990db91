"""libpcap's filter compiler through ctypes (tcpdump's syntax, tcpdump's code).

NAME
    ulnet.filter.libpcap -- compile a filter expression into classic BPF

SYNOPSIS
    prog = compile_expression("tcp port 80", linktype=1, snaplen=262144)
    prog["code"], prog["jt"], prog["jf"], prog["k"]     # a numpy record array

DESCRIPTION
    ulnet has no parser of its own for tcpdump's expressions: libpcap's
    ``pcap_compile`` (the library tcpdump links, Debian package libpcap0.8)
    compiles the expression on a dead handle (``pcap_open_dead(linktype,
    snaplen)``) with the optimizer on and an unknown netmask, exactly what
    tcpdump does for a capture file of that link type. The instructions are
    copied into a numpy array (``BPF_INSN``: code u16, jt u8, jf u8, k u32)
    and libpcap's copy is freed.

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


def compile_expression(expr: str, linktype: int = 1, snaplen: int = DEFAULT_SNAPLEN) -> np.ndarray:
    """Compile ``expr`` for ``linktype`` (a LINKTYPE_ value, as in capture
    files); the program as a BPF_INSN array."""
    lib = _load()
    with _lock:               # pcap_compile was not thread-safe before libpcap 1.8
        h = lib.pcap_open_dead(dlt_of(linktype), int(snaplen))
        if not h:
            raise FilterError(f"libpcap cannot open a handle for link type {linktype}")
        try:
            prog = _Program()
            if lib.pcap_compile(h, ctypes.byref(prog), expr.encode("utf-8"), 1, PCAP_NETMASK_UNKNOWN) != 0:
                raise FilterError((lib.pcap_geterr(h) or b"cannot compile").decode("utf-8", "replace"))
            try:
                n = prog.bf_len
                raw = ctypes.string_at(prog.bf_insns, n * ctypes.sizeof(_Insn))
                out = np.frombuffer(raw, dtype=BPF_INSN).copy()
            finally:
                lib.pcap_freecode(ctypes.byref(prog))
        finally:
            lib.pcap_close(h)
    return out
