"""Text columns of flow records (``Texts``: offsets + UTF-8 bytes, the
layout of an Arrow string array), built by compiled kernels: no Python
string per flow, and no pyarrow import for CSV and JSON lines (about 45 ms
of every command's start-up); ``Texts.to_arrow`` wraps the same buffers.
Addresses: dotted quads and IPv6 text (inet_ntop's rules) written by one
kernel. Names from the metadata pool: copied as they are and checked as
UTF-8 (``utf8_whole``); a pool with invalid UTF-8 falls back to decoding
each name with replacement characters."""

from __future__ import annotations

import functools

import numpy as np
from ulnet.jit import njit
from ulnet.rawmem import copy_bytes


@njit(cache=True, inline="always")
def _put_dec(data, p, o):
    """Decimal text of 0 <= o < 256 at p; returns the next p."""
    if o >= 100:
        data[p] = 48 + o // 100
        p += 1
    if o >= 10:
        data[p] = 48 + (o // 10) % 10
        p += 1
    data[p] = 48 + o % 10
    return p + 1


@njit(cache=True)
def _quad(data, p, a):
    """Dotted quad of the 32-bit a at p; returns the next p."""
    for k in range(4):
        p = _put_dec(data, p, (a >> (24 - 8 * k)) & 0xFF)
        if k < 3:
            data[p] = 46
            p += 1
    return p


@njit(cache=True)
def _v6_text(data, p, hi, lo, w):
    """IPv6 text at p, as glibc's inet_ntop writes it (RFC 5952: lower-case
    hex without leading zeros, the longest run of two or more zero groups
    (the first of equal runs) as ``::``; ``::a.b.c.d`` and
    ``::ffff:a.b.c.d`` for the IPv4-compatible and -mapped forms).
    w: scratch, 8 int64. Returns the next p."""
    for k in range(4):
        w[k] = np.int64((hi >> np.uint64(48 - 16 * k)) & np.uint64(0xFFFF))
        w[4 + k] = np.int64((lo >> np.uint64(48 - 16 * k)) & np.uint64(0xFFFF))
    best, blen, cur, clen = -1, 0, -1, 0
    for k in range(8):
        if w[k] == 0:
            if cur < 0:
                cur, clen = k, 1
            else:
                clen += 1
        elif cur >= 0:
            if best < 0 or clen > blen:
                best, blen = cur, clen
            cur = -1
    if cur >= 0 and (best < 0 or clen > blen):
        best, blen = cur, clen
    if blen < 2:
        best = -1
    for k in range(8):
        if best >= 0 and best <= k < best + blen:
            if k == best:
                data[p] = 58
                p += 1
            continue
        if k:
            data[p] = 58
            p += 1
        if k == 6 and best == 0 and (blen == 6 or (blen == 5 and w[5] == 0xFFFF)):
            return _quad(data, p, np.int64(lo & np.uint64(0xFFFFFFFF)))
        started = False
        for s in range(12, -1, -4):
            d = (w[k] >> s) & 0xF
            if d or started or s == 0:
                data[p] = 48 + d if d < 10 else 87 + d
                p += 1
                started = True
    if best >= 0 and best + blen == 8:
        data[p] = 58
        p += 1
    return p


@njit(cache=True)
def _addr_text(hi, lo, v4, offsets, data, w):
    """Text of each address: a dotted quad where v4, else IPv6 (w: 8 int64
    of scratch, passed in: a kernel that allocates makes every command that
    loads it import numba's array library, about 55 ms)."""
    p = 0
    for i in range(lo.shape[0]):
        offsets[i] = p
        if v4[i]:
            p = _quad(data, p, np.int64(lo[i] & np.uint64(0xFFFFFFFF)))
        else:
            p = _v6_text(data, p, hi[i], lo[i], w)
    offsets[lo.shape[0]] = p
    return p


@njit(cache=True)
def _meta_text(META, field, width, offsets, data):
    p = 0
    for i in range(META.shape[0]):
        offsets[i] = p
        m = min(np.int64(META[i, field]), width)
        for c in range(m):
            data[p + c] = META[i, field + 1 + c]
        p += m
    offsets[META.shape[0]] = p
    return p


class Texts:
    """A column of texts: ``offsets`` (int32, n + 1, from 0) into ``data``
    (UTF-8 bytes), as Arrow lays out a string array; valid UTF-8 throughout
    (its makers check). pyarrow is imported only by ``to_arrow``."""

    __slots__ = ("offsets", "data")

    def __init__(self, offsets: np.ndarray, data: np.ndarray):
        self.offsets = offsets
        self.data = data

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, k: int) -> str:
        k = range(len(self))[k]             # negative indices; IndexError past the end
        return self.data[self.offsets[k]:self.offsets[k + 1]].tobytes().decode()

    def __repr__(self) -> str:
        return f"Texts({self.to_pylist()!r})"

    def to_pylist(self) -> list[str]:
        raw = self.data.tobytes()
        o = self.offsets.tolist()
        return [raw[o[k]:o[k + 1]].decode() for k in range(len(o) - 1)]

    def to_arrow(self):
        import pyarrow as pa
        return pa.StringArray.from_buffers(len(self), pa.py_buffer(self.offsets), pa.py_buffer(self.data))


def arrow_of(v):
    """A record column (numpy array, Texts or Arrow array) as an Arrow array,
    zero-copy for contiguous numbers. Not ``pa.array``: that imports pandas
    (0.1 s of a command's start-up) to ask whether the input is a pandas object."""
    import pyarrow as pa
    if isinstance(v, pa.Array):
        return v
    if isinstance(v, Texts):
        return v.to_arrow()
    a = np.asarray(v)
    if a.dtype == np.bool_:
        bits = np.packbits(a, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(a), [None, pa.py_buffer(bits)])
    if a.dtype.kind in "iuf":
        a = np.ascontiguousarray(a)
        return pa.Array.from_buffers(pa.from_numpy_dtype(a.dtype), len(a), [None, pa.py_buffer(a)])
    return string_array([str(x) for x in a.tolist()]).to_arrow()


def string_array(texts: list[str]) -> Texts:
    """Python strings as a Texts column; for the few strings of a chunk that
    no kernel writes."""
    data = [t.encode() for t in texts]
    offsets = np.zeros(len(data) + 1, dtype=np.int32)
    np.cumsum([len(d) for d in data], out=offsets[1:])
    return Texts(offsets, np.frombuffer(b"".join(data), dtype=np.uint8))


def utf8_whole(offsets: np.ndarray, data: np.ndarray) -> bool:
    """Is every text of (offsets, data) valid UTF-8? The whole buffer valid
    and no non-empty text starting with a continuation byte: then no text
    boundary splits a character, so each text is valid on its own."""
    try:
        data.tobytes().decode()
    except UnicodeDecodeError:
        return False
    starts = offsets[:-1][np.diff(offsets) > 0]
    return not bool(((data[starts] & 0xC0) == 0x80).any())


def address_array(hi: np.ndarray, lo: np.ndarray, ver: np.ndarray) -> Texts:
    """Text of each address (``ver`` 4 or 6)."""
    n = len(lo)
    v4 = ver == 4
    n6 = n - int(np.count_nonzero(v4))
    offsets = np.empty(n + 1, dtype=np.int32)
    data = np.empty(max(1, 15 * (n - n6) + 45 * n6), dtype=np.uint8)     # the longest texts
    used = _addr_text(np.ascontiguousarray(hi), np.ascontiguousarray(lo), v4, offsets, data,
                      np.empty(8, np.int64))
    return Texts(offsets, data[:used])


def meta_array(META: np.ndarray, field: int, width: int) -> Texts:
    """A length-prefixed text field of each metadata row."""
    n = META.shape[0]
    total = int(np.minimum(META[:, field], width).sum())
    if not total:           # no text in any row (META may be a broadcast zero row)
        return Texts(np.zeros(n + 1, dtype=np.int32), np.zeros(0, dtype=np.uint8))
    offsets = np.empty(n + 1, dtype=np.int32)
    data = np.empty(total, dtype=np.uint8)
    arr = Texts(offsets, data[:_meta_text(META, field, width, offsets, data)])
    if utf8_whole(arr.offsets, arr.data):
        return arr
    # names with invalid UTF-8: decode them one by one, with replacement characters
    lens = np.minimum(META[:, field].astype(np.int64), width)
    out = [""] * n
    for k in np.flatnonzero(lens).tolist():
        out[k] = META[k, field + 1:field + 1 + int(lens[k])].tobytes().decode("utf-8", "replace")
    return string_array(out)


@njit(cache=True)
def _take_text(t_off, t_data, idx, offsets, data):
    p = 0
    for i in range(idx.shape[0]):
        offsets[i] = p
        k = idx[i]
        m = t_off[k + 1] - t_off[k]
        copy_bytes(data, p, t_data, t_off[k], m)
        p += m
    offsets[idx.shape[0]] = p
    return p


@functools.lru_cache(maxsize=16)
def _name_table(names: tuple) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, bytes) of a name list, built once per list."""
    t = string_array([str(x) for x in names])
    t_off = t.offsets.astype(np.int64)
    t_off.flags.writeable = False       # shared by every call
    return t_off, t.data if len(t.data) else np.zeros(1, dtype=np.uint8)


def take_names(names: tuple | list, idx: np.ndarray) -> Texts:
    """names[idx] as a Texts column, gathered by a kernel: no Python
    string per row (Arrow's ``take`` would import pyarrow.compute, 24 ms of
    every command's start)."""
    t_off, t_data = _name_table(tuple(names))
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    if len(idx) and (idx.min() < 0 or idx.max() >= len(t_off) - 1):
        raise IndexError("take_names: index out of range")
    n = len(idx)
    offsets = np.empty(n + 1, dtype=np.int32)
    data = np.empty(max(1, int(np.diff(t_off)[idx].sum()) if n else 1), dtype=np.uint8)
    return Texts(offsets, data[:_take_text(t_off, t_data, idx, offsets, data)])


def as_list(v) -> list:
    """A record column as a Python list (for JSON lines and row iteration)."""
    if isinstance(v, Texts) or hasattr(v, "to_pylist"):      # Texts, Arrow arrays
        return v.to_pylist()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v
