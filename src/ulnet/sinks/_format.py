"""Flow records as CSV or JSON lines text, formatted by one compiled kernel.

``RowFormatter(names, "csv" | "jsonl").format(cols)`` turns a chunk of record
columns (numpy int/float arrays and ``ulnet.flow.text.Texts``: what
``ulnet.flow.records.to_columns`` gives; Arrow arrays too, for other callers) into bytes, a buffer at a time,
with no Python object per value. The bytes are those of Arrow's CSV writer
(``quoting_style="needed"``) and of ``json.dumps`` of one dict per flow:

- integers: decimal;
- text: CSV quotes every non-null string and doubles its quotes; JSON
  escapes as ``json.dumps`` does with ``ensure_ascii`` (``\\uXXXX``, with
  surrogate pairs above U+FFFF; ``\\n`` ``\\r`` ``\\t`` ``\\b`` ``\\f``);
- null (any column of an Arrow array with nulls): an empty CSV field, JSON
  ``null``;
- floats: the shortest digits that read back as the same double, laid out
  as Arrow does (CSV: positional for decimal exponents -6..9, else
  ``1.5e+10``, ``1e-7``; ``60``, ``-0``, ``nan``, ``inf``) or as Python's
  ``repr`` (JSON: positional for -4..15, else ``1e-05``; ``60.0``, ``-0.0``,
  ``NaN``, ``Infinity``). Whole numbers below 2**53 get their digits in the
  kernel; the digits of the others come from Arrow's float -> string cast
  (vectorised, C++: the same digits its CSV writer prints), which the kernel
  reads back and lays out.
"""

from __future__ import annotations

import json
import math

import numpy as np

from ulnet.jit import njit
from ulnet.rawmem import copy_bytes, copy_short, load_at
from ulnet.flow.text import Texts, arrow_of

INT, UINT, FLOAT, TEXT = 0, 1, 2, 3
BUFFER = 16 << 20          # output buffer: a chunk of records is written in pieces of at most this
SLACK = 16                 # bytes after T and after a row that copy_short may touch
_WIDTH = {INT: 20, UINT: 20, FLOAT: 25, TEXT: 4}      # most bytes of a value (text: + its escapes; null)
_TEN = np.uint64(10)
_HUNDRED = np.uint64(100)
_PAIRS = np.frombuffer("".join(f"{k:02d}" for k in range(100)).encode(), np.uint8)
_NAN_CSV, _NAN_JS = np.frombuffer(b"nan", np.uint8), np.frombuffer(b"NaN", np.uint8)
_INF_CSV, _INF_JS = np.frombuffer(b"inf", np.uint8), np.frombuffer(b"Infinity", np.uint8)
_NULL = np.frombuffer(b"null", np.uint8)
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


@njit(inline='always')
def _put(out, p, word):
    for k in range(word.shape[0]):
        out[p + k] = word[k]
    return p + word.shape[0]


@njit(inline='always')
def _put_uint(out, p, u):
    """Decimal digits of uint64 ``u``, two at a time from the right."""
    n = 1
    t = _TEN
    while n < 20 and u >= t:
        n += 1
        t *= _TEN
    q = p + n
    while u >= _HUNDRED:
        r = np.int64(u % _HUNDRED)
        u //= _HUNDRED
        q -= 2
        out[q] = _PAIRS[2 * r]
        out[q + 1] = _PAIRS[2 * r + 1]
    if u >= _TEN:
        out[p] = _PAIRS[2 * np.int64(u)]
        out[p + 1] = _PAIRS[2 * np.int64(u) + 1]
    else:
        out[p] = 48 + np.int64(u)
    return p + n


@njit(inline='always')
def _put_int(out, p, v):
    if v < 0:
        out[p] = 45
        return _put_uint(out, p + 1, np.uint64(-(v + 1)) + np.uint64(1))
    return _put_uint(out, p, np.uint64(v))


@njit(cache=True)
def _put_u(out, p, cp):
    """A JSON \\uXXXX escape (lowercase hex, as json.dumps)."""
    out[p] = 92
    out[p + 1] = 117
    for k in range(4):
        out[p + 2 + k] = _HEX[(cp >> (12 - 4 * k)) & 15]
    return p + 6


@njit(cache=True)
def _put_text(out, p, T, a, b, js):
    out[p] = 34
    p += 1
    if not js:
        for k in range(a, b):
            out[p] = T[k]
            p += 1
            if T[k] == 34:
                out[p] = 34
                p += 1
        out[p] = 34
        return p + 1
    k = a
    while k < b:
        c = np.int64(T[k])
        k += 1
        if c < 0x80:
            if 32 <= c <= 126 and c != 34 and c != 92:
                out[p] = c
                p += 1
            elif c == 34 or c == 92:
                out[p] = 92
                out[p + 1] = c
                p += 2
            elif c == 10 or c == 13 or c == 9 or c == 8 or c == 12:
                out[p] = 92
                out[p + 1] = 110 if c == 10 else 114 if c == 13 else 116 if c == 9 else 98 if c == 8 else 102
                p += 2
            else:
                p = _put_u(out, p, c)
            continue
        m = 3 if c >= 0xF0 else 2 if c >= 0xE0 else 1      # UTF-8 (checked by Arrow)
        cp = c & (7 if m == 3 else 15 if m == 2 else 31)
        for j in range(min(m, b - k)):
            cp = (cp << 6) | (np.int64(T[k + j]) & 63)
        k += m
        if cp >= 0x10000:
            cp -= 0x10000
            p = _put_u(out, _put_u(out, p, 0xD800 | (cp >> 10)), 0xDC00 | (cp & 0x3FF))
        else:
            p = _put_u(out, p, cp)
    out[p] = 34
    return p + 1


@njit(cache=True)
def _digits(v, T, a, b, dig):
    """Shortest decimal digits of finite ``|v|`` into ``dig``: (count, exponent
    of the first digit). From the integer when T[a:b] is empty (v whole and
    below 2**53), else read from T[a:b] (Arrow's text of v)."""
    nd = 0
    e = 0
    if a == b:
        u = np.uint64(abs(v))
        while u > 0:
            dig[nd] = 48 + np.int64(u % _TEN)
            u //= _TEN
            nd += 1
        e = nd - 1
        for k in range(nd // 2):
            dig[k], dig[nd - 1 - k] = dig[nd - 1 - k], dig[k]
    else:
        seen = 0            # digit characters before the point (or all of them)
        lead = 0            # zeros before the first nonzero digit
        point = -1
        k = a
        while k < b:
            c = T[k]
            if 48 <= c <= 57:
                seen += 1
                if nd == 0 and c == 48:
                    lead += 1
                else:
                    dig[nd] = c
                    nd += 1
            elif c == 46:
                point = seen
            elif c == 101:
                neg = T[k + 1] == 45
                x = 0
                for j in range(k + 2, b):
                    x = 10 * x + np.int64(T[j]) - 48
                e = -x if neg else x
                break
            k += 1
        e += (seen if point < 0 else point) - 1 - lead
    while nd > 0 and dig[nd - 1] == 48:
        nd -= 1
    return nd, e


@njit(cache=True)
def _put_float(out, p, v, T, a, b, dig, js):
    if v != v:
        return _put(out, p, _NAN_JS if js else _NAN_CSV)
    if v < 0 or (v == 0 and math.copysign(1.0, v) < 0):
        out[p] = 45
        p += 1
    if abs(v) == np.inf:
        return _put(out, p, _INF_JS if js else _INF_CSV)
    nd, e = _digits(v, T, a, b, dig)
    if nd == 0:
        out[p] = 48
        p += 1
    elif (-4 <= e < 16) if js else (-6 <= e < 10):
        if e < 0:
            out[p] = 48
            out[p + 1] = 46
            p += 2
            for k in range(-e - 1):
                out[p + k] = 48
            p += -e - 1
            for k in range(nd):
                out[p + k] = dig[k]
            return p + nd
        for k in range(e + 1):
            out[p + k] = dig[k] if k < nd else 48
        p += e + 1
        if nd > e + 1:
            out[p] = 46
            p += 1
            for k in range(e + 1, nd):
                out[p] = dig[k]
                p += 1
            return p
    else:
        out[p] = dig[0]
        p += 1
        if nd > 1:
            out[p] = 46
            p += 1
            for k in range(1, nd):
                out[p] = dig[k]
                p += 1
        out[p] = 101
        out[p + 1] = 45 if e < 0 else 43
        p += 2
        if js and -10 < e < 10:
            out[p] = 48
            p += 1
        return _put_uint(out, p, np.uint64(abs(e)))
    if js:
        out[p] = 46
        out[p + 1] = 48
        p += 2
    return p


@njit(cache=True)
def format_rows(js, kind, slot, tslot, vrow, pre, pre_off, end, base, tcols, n, NA, NS, FA, FS, TO, T, plain, V, i0,
                out, dig):
    """Rows i0.. of a chunk as text into ``out`` while they surely fit;
    returns (next row, bytes written). Column c: prefix pre[pre_off[c]:
    pre_off[c + 1]], then the value of kind[c]: INT, UINT: the int64 at byte
    address NA[slot[c]] + i * NS[slot[c]]; FLOAT: the float64 at FA[slot[c]]
    + i * FS[slot[c]]; or text T[TO[tslot[c], i]:TO[tslot[c],
    i + 1]] (TEXT; for FLOAT Arrow's text of the value or empty), copied as
    it is when plain[tslot[c]] (no byte of the column needs escaping); null
    when vrow[c] >= 0 and V[vrow[c], i] == 0. Each row ends with ``end``;
    row i takes at most ``base`` bytes (SLACK included) plus, for each text
    column t in ``tcols``, its length times 2 (CSV: quotes doubled) or 6
    (JSON: a \\u00XX per byte). T ends with SLACK bytes that are no value's.
    ``dig``: 32 bytes of scratch for floats, passed in (a kernel that
    allocates makes the command import numba's array library, ~55 ms)."""
    esc = 6 if js else 2
    p = 0
    i = i0
    while i < n:
        most = base
        for t in tcols:
            most += esc * (TO[t, i + 1] - TO[t, i])
        if p + most > out.shape[0]:
            break
        for c in range(kind.shape[0]):
            m = pre_off[c + 1] - pre_off[c]
            if m > 4:
                copy_bytes(out, p, pre, pre_off[c], m)
            else:
                for k in range(m):
                    out[p + k] = pre[pre_off[c] + k]
            p += m
            if vrow[c] >= 0 and V[vrow[c], i] == 0:
                if js:
                    p = _put(out, p, _NULL)
                continue
            kd = kind[c]
            if kd == INT:
                p = _put_int(out, p, load_at(NA[slot[c]], i * NS[slot[c]], np.int64))
            elif kd == UINT:
                p = _put_uint(out, p, load_at(NA[slot[c]], i * NS[slot[c]], np.uint64))
            elif kd == FLOAT:
                v = load_at(FA[slot[c]], i * FS[slot[c]], np.float64)
                a, b = TO[tslot[c], i], TO[tslot[c], i + 1]
                if a < b and not js:                        # Arrow's text is the CSV text
                    copy_bytes(out, p, T, a, b - a)
                    p += b - a
                elif a == b and v == v and abs(v) < 1e9:    # whole: positional in both layouts
                    if v < 0 or (v == 0 and math.copysign(1.0, v) < 0):
                        out[p] = 45
                        p += 1
                    p = _put_uint(out, p, np.uint64(abs(v)))
                    if js:
                        out[p] = 46
                        out[p + 1] = 48
                        p += 2
                else:
                    p = _put_float(out, p, v, T, a, b, dig, js)
            else:
                a, b = TO[tslot[c], i], TO[tslot[c], i + 1]
                if plain[tslot[c]]:                     # nothing to escape in this column
                    out[p] = 34
                    copy_short(out, p + 1, T, a, b - a)
                    p += b - a + 1
                    out[p] = 34
                    p += 1
                else:
                    p = _put_text(out, p, T, a, b, js)
        p = _put(out, p, end)
        i += 1
    return i, p


def _string_parts(a) -> tuple[np.ndarray, np.ndarray]:
    """(offsets [n + 1] from 0, bytes) of a Texts column or an Arrow string array."""
    if isinstance(a, Texts):
        off = a.offsets.astype(np.int64)
        return off - off[0], a.data[off[0]:off[-1]]
    import pyarrow as pa
    if not pa.types.is_string(a.type):
        a = a.cast(pa.string())
    bufs = a.buffers()
    off = np.frombuffer(bufs[1], np.int32, count=len(a) + 1, offset=4 * a.offset).astype(np.int64)
    data = np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None else np.empty(0, np.uint8)
    return off - off[0], data[off[0]:off[-1]]


def _needs_escape(data: np.ndarray, js: bool) -> bool:
    """Would any byte of a text column be written other than as it is? CSV:
    a quote (doubled). JSON: a quote, a backslash, a control or a non-ASCII
    byte (escaped)."""
    if not len(data):
        return False
    if not js:
        return bool((data == 34).any())
    return bool(((data < 32) | (data > 126) | (data == 34) | (data == 92)).any())


def _float_text(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, bytes): Arrow's text of the finite values not whole below
    2**53 (whose digits the kernel finds itself); empty for the others."""
    with np.errstate(invalid="ignore"):
        cast = np.isfinite(x) & ((x != np.trunc(x)) | (np.abs(x) >= 2.0 ** 53))
    lens = np.zeros(len(x), np.int64)
    if not cast.any():
        return np.zeros(len(x) + 1, np.int64), np.empty(0, np.uint8)
    import pyarrow as pa
    import pyarrow.compute as pc        # only here: 24 ms to import
    off, data = _string_parts(pc.cast(arrow_of(x[cast]), pa.string()))
    lens[cast] = np.diff(off)
    return np.concatenate(([0], np.cumsum(lens))), data


class RowFormatter:
    """Record columns -> CSV (``fmt="csv"``) or JSON lines (``"jsonl"``)."""

    def __init__(self, names, fmt: str):
        if fmt not in ("csv", "jsonl"):
            raise ValueError(f"not a text format: {fmt!r}")
        self.names = tuple(names)
        self.js = fmt == "jsonl"
        if self.js:
            pres = [("{" if c == 0 else ", ") + json.dumps(k) + ": " for c, k in enumerate(self.names)]
            self.end = np.frombuffer(b"}\n", np.uint8)
        else:
            pres = ["" if c == 0 else "," for c in range(len(self.names))]
            self.end = np.frombuffer(b"\n", np.uint8)
        pre = [p.encode() for p in pres]
        self.pre = np.frombuffer(b"".join(pre) or b"\0", np.uint8)
        self.pre_off = np.concatenate(([0], np.cumsum([len(p) for p in pre]))).astype(np.int64)
        self._buf = np.empty(0, np.uint8)
        self._dig = np.empty(32, np.uint8)

    def header(self) -> bytes:
        """The CSV header line (every name quoted, as Arrow writes it)."""
        return (",".join('"' + k.replace('"', '""') + '"' for k in self.names) + "\n").encode()

    def _columns(self, cols: dict, n: int):
        kind = np.empty(len(self.names), np.int64)
        slot = np.full(len(self.names), -1, np.int64)
        tslot = np.full(len(self.names), -1, np.int64)
        vrow = np.full(len(self.names), -1, np.int64)
        nums, floats, texts, valid = [], [], [], []
        for c, k in enumerate(self.names):
            v = cols[k]
            if isinstance(v, Texts):
                kind[c], tslot[c] = TEXT, len(texts)
                texts.append(_string_parts(v))
                continue
            if not (isinstance(v, np.ndarray) and v.dtype.kind in "iuf"):
                import pyarrow as pa            # other columns (API callers): through Arrow
                a = arrow_of(v)
                if a.null_count:
                    vrow[c] = len(valid)
                    valid.append(a.is_valid().to_numpy(zero_copy_only=False))
                if pa.types.is_string(a.type) or pa.types.is_large_string(a.type):
                    kind[c], tslot[c] = TEXT, len(texts)
                    texts.append(_string_parts(a))
                    continue
                if not (pa.types.is_integer(a.type) or pa.types.is_floating(a.type)):
                    raise TypeError(f"column {k}: cannot write {a.type} as text")
                v = a.fill_null(0).to_numpy()
            if v.dtype.kind == "f":
                if v.dtype != np.float64:
                    raise TypeError(f"column {k}: cannot write {v.dtype} as text (float64 only)")
                kind[c], slot[c], tslot[c] = FLOAT, len(floats), len(texts)
                floats.append(v)
                texts.append(_float_text(v))
            else:
                kind[c], slot[c] = (UINT if v.dtype.kind == "u" else INT), len(nums)
                nums.append(v.astype(np.uint64 if v.dtype.kind == "u" else np.int64, copy=False).view(np.int64))
        # where each column's values are, and its stride: no copy (the kernel
        # reads them through load_at while ``nums``/``floats`` keep them alive)
        NA = np.array([v.ctypes.data for v in nums], np.int64)
        NS = np.array([v.strides[0] for v in nums], np.int64)
        FA = np.array([v.ctypes.data for v in floats], np.int64)
        FS = np.array([v.strides[0] for v in floats], np.int64)
        base = np.cumsum([0] + [len(d) for _, d in texts])
        TO = np.empty((len(texts), n + 1), np.int64)      # each text column's offsets into T
        for t, (o, _) in enumerate(texts):
            np.add(o, base[t], out=TO[t])
        T = np.concatenate([d for _, d in texts] + [np.zeros(SLACK, np.uint8)])
        plain = np.array([not _needs_escape(d, self.js) for _, d in texts] or [False], np.bool_)
        V = np.stack(valid).astype(np.uint8) if valid else np.empty((0, n), np.uint8)
        base = len(self.pre) + len(self.end) + sum(_WIDTH[int(x)] for x in kind) + SLACK
        tcols = np.ascontiguousarray(tslot[kind == TEXT])
        return kind, slot, tslot, vrow, (base, tcols), (NA, NS, FA, FS), (nums, floats), TO, T, plain, V

    def format(self, cols: dict):
        """Yield the text of a chunk's records, a buffer (memoryview) at a time."""
        n = len(cols[self.names[0]]) if self.names else 0
        kind, slot, tslot, vrow, (base, tcols), (NA, NS, FA, FS), keep, TO, T, plain, V = self._columns(cols, n)
        if len(self._buf) < BUFFER:
            self._buf = np.empty(BUFFER, np.uint8)
        i = 0
        while i < n:
            i2, used = format_rows(self.js, kind, slot, tslot, vrow, self.pre, self.pre_off, self.end, base, tcols, n,
                                   NA, NS, FA, FS, TO, T, plain, V, i, self._buf, self._dig)
            if i2 == i:             # one row longer than the buffer
                self._buf = np.empty(2 * len(self._buf), np.uint8)
                continue
            yield memoryview(self._buf)[:used]
            i = i2
