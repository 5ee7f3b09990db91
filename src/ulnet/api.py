"""The Python API: ``ulnet.flows(source, **options)``.

    import ulnet
    for f in ulnet.flows("trace.pcap"):
        print(f.src_ip, f.dst_port, f.bidirectional_bytes)
    df = ulnet.flows("trace.pcap", statistics=True).to_pandas()
    ulnet.flows(["a.pcap", "b.pcap.gz"], idle_timeout=30).to_csv("flows.csv")

``source`` is a capture path (or ``-``) or a list of them, read in order as
one stream. Options: ``idle_timeout``, ``active_timeout``, ``close_timeout``
(seconds), ``max_flows``, ``statistics``, ``fragments`` ('datagram' or
'first'), ``inspect`` (application detection, default on), ``max_dpi``, ``count`` (packets), ``batch_size``.
Records carry NFStream's field names (see ``ulnet flows``). Iteration
streams (memory stays bounded); ``to_arrow``/``to_pandas`` build the whole
table in memory; ``to_csv`` writes batch by batch through Arrow.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterator

from ulnet.batch import FLOW_BATCH
from ulnet.flow import FlowTable, DEFAULT_IDLE, DEFAULT_ACTIVE, DEFAULT_CLOSE, DEFAULT_MAX_FLOWS
from ulnet.flow.records import fields, to_columns
from ulnet.flow.text import as_list
from ulnet.inspect import Inspector, DEFAULT_MAX_DPI
from ulnet.pipeline import Pipeline
from ulnet.sinks.flows import FlowWriter, to_record_batch


class FlowRecords:
    """Flow records of a source; computed when iterated or converted."""

    def __init__(self, source, *, idle_timeout: float = DEFAULT_IDLE, active_timeout: float = DEFAULT_ACTIVE,
                 close_timeout: float = DEFAULT_CLOSE, max_flows: int = DEFAULT_MAX_FLOWS,
                 statistics: bool = False, fragments: str = "datagram", inspect: bool = True,
                 max_dpi: int = DEFAULT_MAX_DPI, count: int | None = None, batch_size: int = FLOW_BATCH):
        self.inputs = [str(source)] if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__") \
            else [str(s) for s in source]
        self.options = dict(max_flows=max_flows, idle_timeout=idle_timeout, active_timeout=active_timeout,
                            close_timeout=close_timeout, statistics=statistics, fragments=fragments)
        FlowTable(1, idle_timeout, active_timeout, close_timeout)   # validate options now
        self.inspect = inspect
        self.max_dpi = max_dpi
        Inspector(max_dpi)                                          # validate
        self.count = count
        self.batch_size = batch_size
        self.fields = fields(statistics)
        self.problems: list[str] = []
        self.counters = None

    def _column_chunks(self) -> Iterator[dict]:
        table = FlowTable(**self.options)
        insp = Inspector(self.max_dpi) if self.inspect else None
        pipe = Pipeline(self.inputs, batch_size=self.batch_size, count=self.count, flows=table, inspector=insp)
        try:
            for _ in pipe:
                for c in pipe.take_ended():
                    yield to_columns(c)
        finally:
            for c in pipe.finish_flows():
                yield to_columns(c)
            self.problems = pipe.problems
            self.counters = pipe.counters

    def __iter__(self):
        Record = namedtuple("FlowRecord", self.fields)
        for cols in self._column_chunks():
            lists = [as_list(cols[k]) for k in self.fields]
            for row in zip(*lists):
                yield Record(*row)

    def to_arrow(self):
        """All records as a pyarrow Table."""
        import pyarrow as pa
        batches = [to_record_batch(c, self.fields) for c in self._column_chunks()]
        if not batches:
            return pa.table({k: [] for k in self.fields})
        schema = batches[0].schema
        return pa.Table.from_batches([b.cast(schema) if b.schema != schema else b for b in batches])

    def to_pandas(self):
        return self.to_arrow().to_pandas()

    def to_csv(self, path: str) -> int:
        """Write the records as CSV; returns how many."""
        w = FlowWriter(path, "csv", self.fields)
        try:
            for c in self._column_chunks():
                w.write(c)
        finally:
            w.close()
        return w.count


def flows(source, **options) -> FlowRecords:
    """Flow records of a capture file (or list of files); see FlowRecords."""
    return FlowRecords(source, **options)
