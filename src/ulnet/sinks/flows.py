"""Flow record writers: CSV, JSON lines, Parquet (``ulnet flows``).

Records come in chunks (columns from ``ulnet.flow.records.to_columns``) and
are written as they arrive, so memory does not grow with the capture. CSV
and Parquet go through Arrow (pyarrow) batch by batch; JSON lines are one
object per flow with NFStream's field names.
"""

from __future__ import annotations

import json
import sys

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ulnet.flow.text import arrow_of, as_list

FORMATS = ("csv", "jsonl", "parquet")


def to_record_batch(cols: dict, names) -> pa.RecordBatch:
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

    def write(self, cols: dict) -> None:
        n = len(cols["id"])
        if not n:
            return
        self.count += n
        if self.fmt == "jsonl":
            self._write_jsonl(cols, n)
            return
        rb = to_record_batch(cols, self.names)
        if self._w is None:
            self._schema = rb.schema
            if self.fmt == "csv":
                self._w = pacsv.CSVWriter(self._fh, rb.schema,
                                          write_options=pacsv.WriteOptions(quoting_style="needed"))
            else:
                self._w = pq.ParquetWriter(self._fh, rb.schema)
        self._w.write_batch(rb.cast(self._schema) if rb.schema != self._schema else rb)

    def _write_jsonl(self, cols, n):
        lists = [(k, as_list(cols[k])) for k in self.names]
        out = []
        for i in range(n):
            out.append(json.dumps({k: v[i] for k, v in lists}, separators=(", ", ": ")))
        self._fh.write(("\n".join(out) + "\n").encode())

    def close(self) -> None:
        if self._w is None and self.fmt == "csv":
            self._fh.write((",".join(f'"{k}"' for k in self.names) + "\n").encode())
        if self._w is not None:
            self._w.close()
        self._fh.flush()
        if not self._to_stdout:
            self._fh.close()
