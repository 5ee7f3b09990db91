"""Text columns of flow records (``Texts``: offsets + UTF-8 bytes, the
layout of an Arrow string array), built by compiled kernels: no Python
string per flow, and no pyarrow import for CSV and JSON lines (about 45 ms
of every command's start-up); ``Texts.to_arrow`` wraps the same buffers. Addresses: IPv4 dotted quads here, the rare IPv6 rows through the
standard formatter (RFC 5952), copied in by the same kernel. Names from the metadata pool:
copied as they are, checked as UTF-8 by Arrow; a pool with invalid UTF-8
falls back to decoding each name with replacement characters."""

from __future__ import annotations

import functools

import numpy as np
from ulnet.jit import njit
from ulnet.rawmem import copy_bytes

from ulnet.addr import to_text


@njit(cache=True)
def _addr_text(lo, v4, t6_off, t6_data, offsets, data):
    """Dotted quads of the IPv4 rows; the other rows take the next text of
    (t6_off, t6_data) in turn."""
    p = 0
    j = 0
    for i in range(lo.shape[0]):
        offsets[i] = p
        if not v4[i]:
            m = t6_off[j + 1] - t6_off[j]
            copy_bytes(data, p, t6_data, t6_off[j], m)
            p += m
            j += 1
            continue
        a = np.int64(lo[i] & np.uint64(0xFFFFFFFF))
        for k in range(4):
            o = (a >> (24 - 8 * k)) & 0xFF
            if o >= 100:
                data[p] = 48 + o // 100
                p += 1
            if o >= 10:
                data[p] = 48 + (o // 10) % 10
                p += 1
            data[p] = 48 + o % 10
            p += 1
            if k < 3:
                data[p] = 46
                p += 1
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


def _strings(n: int, offsets: np.ndarray, data: np.ndarray, used: int) -> Texts:
    return Texts(offsets, data[:used])


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
    v6 = np.flatnonzero(~v4)
    texts = [to_text(int(hi[k]), int(lo[k]), 6).encode() for k in v6.tolist()]
    t6_off = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in texts], out=t6_off[1:])
    t6_data = np.frombuffer(b"".join(texts) or b"\0", dtype=np.uint8)
    offsets = np.empty(n + 1, dtype=np.int32)
    data = np.empty(max(1, 15 * (n - len(v6)) + int(t6_off[-1])), dtype=np.uint8)
    return _strings(n, offsets, data, _addr_text(lo, v4, t6_off, t6_data, offsets, data))


def meta_array(META: np.ndarray, field: int, width: int) -> Texts:
    """A length-prefixed text field of each metadata row."""
    n = META.shape[0]
    total = int(np.minimum(META[:, field], width).sum())
    if not total:           # no text in any row (META may be a broadcast zero row)
        return _strings(n, np.zeros(n + 1, dtype=np.int32), np.zeros(1, dtype=np.uint8), 0)
    offsets = np.empty(n + 1, dtype=np.int32)
    data = np.empty(total, dtype=np.uint8)
    arr = _strings(n, offsets, data, _meta_text(META, field, width, offsets, data))
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
    enc = [str(x).encode() for x in names]
    t_off = np.zeros(len(enc) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in enc], out=t_off[1:])
    t_off.flags.writeable = False       # shared by every call
    return t_off, np.frombuffer(b"".join(enc) or b"\0", dtype=np.uint8)


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
    return _strings(n, offsets, data, _take_text(t_off, t_data, idx, offsets, data))


def as_list(v) -> list:
    """A record column as a Python list (for JSON lines and row iteration)."""
    if isinstance(v, Texts) or hasattr(v, "to_pylist"):      # Texts, Arrow arrays
        return v.to_pylist()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v
