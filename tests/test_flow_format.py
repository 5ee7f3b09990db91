"""Flow records as CSV and JSON lines (``FlowWriter`` through the compiled
formatter, ``ulnet.sinks._format``): byte for byte what the writers before
it wrote, kept below as the oracles -- Arrow's CSV writer
(``quoting_style="needed"``) batch by batch, and ``json.dumps`` of one dict
per flow.

1. Every capture of the corpus, with and without statistics.
2. Crafted columns: text with commas, quotes, newlines, control and
   non-ASCII characters, empty and null; the extreme integers; floats at
   every layout boundary, nan and infinities, subnormals; nulls in a
   numeric column. Then hypothesis, and random doubles by the thousand.
3. A chunk larger than the output buffer, and a row larger than it.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import LIBPEAK, NDPI_PCAPS
from ulnet.api import FlowRecords
from ulnet.flow.records import fields
from ulnet.flow.text import as_list
from ulnet.sinks import _format
from ulnet.sinks.flows import FlowWriter, to_record_batch

CAPTURES = NDPI_PCAPS + sorted(p for p in LIBPEAK.iterdir() if not p.name.startswith("expected-peek-"))


# ---- the oracles: the writers as they were -----------------------------------------------------

def oracle_csv(chunks, names) -> bytes:
    out, w, schema = io.BytesIO(), None, None
    for cols in chunks:
        if not len(cols["id"]):
            continue
        rb = to_record_batch(cols, names)
        if w is None:
            schema = rb.schema
            w = pacsv.CSVWriter(out, schema, write_options=pacsv.WriteOptions(quoting_style="needed"))
        w.write_batch(rb.cast(schema) if rb.schema != schema else rb)
    if w is None:
        return (",".join(f'"{k}"' for k in names) + "\n").encode()
    w.close()
    return out.getvalue()


def oracle_jsonl(chunks, names) -> bytes:
    out = []
    for cols in chunks:
        n = len(cols["id"])
        if not n:
            continue
        lists = [(k, as_list(cols[k])) for k in names]
        rows = [json.dumps({k: v[i] for k, v in lists}, separators=(", ", ": ")) for i in range(n)]
        out.append(("\n".join(rows) + "\n").encode())
    return b"".join(out)


ORACLE = {"csv": oracle_csv, "jsonl": oracle_jsonl}


def written(chunks, names, fmt, path) -> bytes:
    w = FlowWriter(str(path), fmt, names)
    for cols in chunks:
        w.write(cols)
    w.close()
    return path.read_bytes()


def assert_same(chunks, names, tmp_path, formats=("csv", "jsonl")):
    for fmt in formats:
        want = ORACLE[fmt](chunks, names)
        got = written(chunks, names, fmt, tmp_path / ("out." + fmt))
        if got != want:         # the first differing line, not two walls of bytes
            for k, (a, b) in enumerate(zip(got.split(b"\n"), want.split(b"\n"))):
                assert a == b, f"{fmt} line {k}"
            assert len(got) == len(want), fmt


# ---- 1. the corpus -----------------------------------------------------------------------------

@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_corpus_captures(path, tmp_path, corpus_available):
    chunks = list(FlowRecords(path, statistics=True)._column_chunks())
    for statistics in (False, True):
        assert_same(chunks, fields(statistics), tmp_path)


# ---- 2. crafted values -------------------------------------------------------------------------

TEXT = ["plain", "", None, "a,b", 'say "hi"', '"', "line\nbreak", "cr\rlf\r\n", "tab\there", "é",
        "中文", "😀 emoji", "\x00\x01\x1f\x7f", "back\\slash", " lead", "trail ", "\u2028\ufeff", "\U0010ffff"]
FLOATS = [0.0, -0.0, 1.0, -1.0, 60.0, 0.1, 0.5, 1 / 3, 2 / 3, 123456.789, 1e-4, 1e-5, 1.5e-5, 1e-6, 1.5e-6,
          1e-7, 1.25e-7, 9.999999e-7, 1e9, 999999999.0, 999999999.5, 1e10, 1.5e10, 9999999999.0, 1e15, 1e16,
          1.5e16, 9007199254740992.0, 9007199254740993.0, 2.0 ** 60, 1e21, 1e22, 1e100, 1.7976931348623157e308,
          5e-324, 2.2250738585072014e-308, -1e-300, -123.456, float("nan"), float("inf"), float("-inf"),
          -float("nan"), 1234567.0, 12345678.9, 0.000123, 100.0, 1e8, 123456789012.0]
INTS = [0, 1, -1, 9, 10, 99, 100, -10, 2 ** 31, -2 ** 31, 10 ** 18, -10 ** 18, 2 ** 63 - 1, -2 ** 63]


def _crafted(n):
    def cyc(xs):
        return (xs * (n // len(xs) + 1))[:n]
    ints = cyc(INTS)
    return {
        "id": np.array(ints, dtype=np.int64),
        "name": pa.array(cyc(TEXT), type=pa.string()),
        "x": np.array(cyc(FLOATS)),
        "big": np.array(cyc([0, 1, 2 ** 63, 2 ** 64 - 1, 10 ** 19]), dtype=np.uint64),
        "maybe": pa.array(cyc([1, None, -7, 2 ** 63 - 1]), type=pa.int64()),
        "fmaybe": pa.array(cyc([0.5, None, float("inf"), 3.0]), type=pa.float64()),
        "empty": pa.array([""] * n, type=pa.string()),
        "nulls": pa.array([None] * n, type=pa.string()),
    }


def test_crafted_columns(tmp_path):
    cols = _crafted(len(FLOATS) * 3)
    assert_same([cols], list(cols), tmp_path)


def test_crafted_names_and_odd_column_kinds(tmp_path):
    """Field names that need quoting or escaping; a sliced Arrow array; a
    large_string array; a Python list."""
    n = len(TEXT)
    sliced = pa.array(["skip"] * 3 + TEXT).slice(3)
    cols = {"id": np.arange(n), 'na"me,x': sliced, "é\n": pa.array(TEXT, type=pa.large_string()),
            "lst": [f"v{k}" for k in range(n)]}
    for fmt in ("csv", "jsonl"):
        want = ORACLE[fmt]([cols], list(cols))
        assert written([cols], list(cols), fmt, tmp_path / "o") == want


def test_no_records(tmp_path):
    names = fields(True)
    assert written([], names, "csv", tmp_path / "a") == oracle_csv([], names)
    assert written([], names, "jsonl", tmp_path / "b") == b""


row = st.tuples(
    st.integers(-2 ** 63, 2 ** 63 - 1),
    st.integers(0, 2 ** 64 - 1),
    st.floats(),
    st.one_of(st.none(), st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)),
    st.one_of(st.none(), st.integers(-2 ** 63, 2 ** 63 - 1)),
    # nothing to escape in either format: copied as it is (16 bytes at a time when short)
    st.text(st.characters(min_codepoint=32, max_codepoint=126, blacklist_characters='"\\'), max_size=40),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(row, min_size=0, max_size=20), min_size=1, max_size=3))
def test_hypothesis_rows(tmp_path, chunks_rows):
    chunks = []
    for rows in chunks_rows:
        i, u, f, t, m, q = zip(*rows) if rows else ((),) * 6
        chunks.append({"id": np.array(i, dtype=np.int64), "u": np.array(u, dtype=np.uint64),
                       "f": np.array(f, dtype=np.float64), "t": pa.array(t, type=pa.string()),
                       "m": pa.array(m, type=pa.int64()), "q": pa.array(q, type=pa.string())})
    assert_same(chunks, ["id", "u", "f", "t", "m", "q"], tmp_path)


def test_random_doubles(tmp_path):
    """Any bit pattern, and decimals of every size: the shortest digits of
    Arrow's cast are those of Python's repr, laid out either way."""
    rng = np.random.default_rng(7)
    n = 20_000
    bits = rng.integers(0, 2 ** 64 - 1, n, dtype=np.uint64, endpoint=True)
    cols = {"id": np.arange(n), "bits": bits.view(np.float64),
            "scaled": rng.random(n) * 10.0 ** rng.integers(-12, 22, n),
            "decimal": np.floor(rng.random(n) * 1e9) / 10.0 ** rng.integers(0, 12, n),
            "whole": np.floor(rng.random(n) * 10.0 ** rng.integers(0, 20, n))}
    assert_same([cols], list(cols), tmp_path)


# ---- 3. buffer boundaries ----------------------------------------------------------------------

def test_chunks_larger_than_the_buffer(tmp_path, monkeypatch):
    monkeypatch.setattr(_format, "BUFFER", 512)
    chunks = [_crafted(n) for n in (500, 7)]
    for cols in chunks:
        cols["long"] = pa.array(["x" * 3000 if k % 97 == 0 else "é" * 40 for k in range(len(cols["id"]))])
    assert_same(chunks, list(chunks[0]), tmp_path)
