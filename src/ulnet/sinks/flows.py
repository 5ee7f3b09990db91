"""Flow record writers: CSV, JSON lines, Parquet (``ulnet flows``).

Records come in chunks (columns from ``ulnet.flow.records.to_columns``) and
are written as they arrive, so memory does not grow with the capture. CSV
and JSON lines (one object per flow, NFStream's field names) are formatted
by a compiled kernel (``ulnet.sinks._format``: the bytes Arrow's CSV writer
with ``quoting_style="needed"`` and ``json.dumps`` wrote, without a Python
object per value); Parquet goes through Arrow (pyarrow) batch by batch.
"""

from __future__ import annotations

import sys

from ulnet.flow.text import arrow_of
from ulnet.sinks._format import RowFormatter

FORMATS = ("csv", "jsonl", "parquet")


def to_record_batch(cols: dict, names):
    """The columns as a pyarrow RecordBatch (imported here: CSV and JSON lines do not need it)."""
    import pyarrow as pa
    return pa.RecordBatch.from_arrays([arrow_of(cols[k]) for k in names], names=list(names))


class FlowWriter:
    def __init__(self, path: str | None, fmt: str, names):
        if fmt not in FORMATS:
            raise ValueError(f"unknown flow format {fmt!r} (one of {', '.join(FORMATS)})")
        if fmt == "parquet" and (path is None or path == "-"):
            raise ValueError("parquet output needs a file: -o FILE")
        self.fmt = fmt
        self.names = tuple(names)
        self.count = 0
        self._to_stdout = path is None or path == "-"
        self._fh = sys.stdout.buffer if self._to_stdout else open(path, "wb")
        self._w = None
        self._schema = None
        self._text = RowFormatter(self.names, fmt) if fmt != "parquet" else None
        if fmt == "csv":
            self._fh.write(self._text.header())

    def write(self, cols: dict) -> None:
        n = len(cols["id"])
        if not n:
            return
        self.count += n
        if self._text is not None:
            for piece in self._text.format(cols):
                self._fh.write(piece)
            return
        rb = to_record_batch(cols, self.names)
        if self._w is None:
            self._schema = rb.schema
            import pyarrow.parquet as pq      # (only here: 10 ms of imports CSV and JSON do not need)
            self._w = pq.ParquetWriter(self._fh, rb.schema)
        self._w.write_batch(rb.cast(self._schema) if rb.schema != self._schema else rb)

    def close(self) -> None:
        if self.fmt == "parquet" and self._w is None:
            # no flow at all: still a Parquet file (with the schema), not 0 bytes
            import pyarrow.parquet as pq
            rb = to_record_batch(_no_flows(), self.names)
            self._w = pq.ParquetWriter(self._fh, rb.schema)
            self._w.write_batch(rb)
        if self._w is not None:
            self._w.close()
        self._fh.flush()
        if not self._to_stdout:
            self._fh.close()


def _no_flows() -> dict:
    """The record columns of zero flows (every field, statistics included)."""
    import numpy as np
    from ulnet.flow import FlowChunk
    from ulnet.flow import _kernels as K
    from ulnet.flow.records import to_columns
    return to_columns(FlowChunk(np.zeros((0, K.NF), np.int64), np.zeros((0, 4), np.uint64),
                                np.zeros((0, 16), np.uint32), np.zeros((0, K.NS), np.float64),
                                np.zeros((0, K.META_W), np.uint8)))
