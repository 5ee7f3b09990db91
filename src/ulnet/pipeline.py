"""pipeline -- the stages in data-path order; the one module that wires them.

    sources  ->  [filter]  ->  decode  ->  (flow -> inspect -> policy -> actions: later stages)  ->  sinks

``Pipeline`` reads one or more inputs in order as one continuous stream,
fills a reused PacketBatch, runs the stages over it and hands the batch to
the caller. The batch (and the bytes it views) is valid until the next one.

A live source (``live=``: an AF_PACKET ring, ``ulnet.sources.afpacket``)
replaces the files: the batch views the ring, its frames go back to the
kernel when the caller asks for the next batch, and the pipeline sleeps in
poll() only while the ring is empty. It runs until the caller stops
iterating (a signal) or ``count`` packets.

``filter=`` (a ``ulnet.filter.Filter``, tcpdump's expressions) drops the
packets it rejects before decode (``filter.rejected``); ``count`` counts
the packets it keeps, as tcpdump -c does. A live source is filtered by the
kernel instead (the program is attached to its socket), so the pipeline
does not run it again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ulnet.batch import PacketBatch, DEFAULT_BATCH
from ulnet.counters import new_counters
from ulnet.decode import decode
from ulnet.filter import Filter, FilterError
from ulnet.sources import open_capture, CaptureReader
from ulnet.flow import FlowTable, FlowChunk
from ulnet.inspect import Inspector


class Pipeline:
    def __init__(self, inputs: Sequence[str], batch_size: int = DEFAULT_BATCH,
                 count: int | None = None, flows: FlowTable | None = None,
                 inspector: Inspector | None = None, live=None, filter: Filter | None = None):
        if not inputs and live is None:
            raise ValueError("no input: give a capture file (or - for standard input)")
        self.live = live
        self.filter = filter
        self.inputs = list(inputs)
        self.batch = PacketBatch(batch_size)
        self.counters = new_counters()
        self.count = count
        self.seen = 0
        self.problems: list[str] = []
        self.failed = False
        self.readers: list[CaptureReader] = []
        self._current: CaptureReader | None = None
        self.flows = flows
        self.inspector = inspector if flows is not None else None
        self.ended: list[FlowChunk] = []     # flows that ended; the caller takes them
        self.bytes_done = 0                  # input bytes consumed (for progress)

    def _after_flow(self, batch, i0, i1):
        """The stages that follow the flow table, over packets i0..i1."""
        if self.inspector is not None:
            self.inspector.process(batch, self.flows, self.counters, i0, i1)

    def take_ended(self) -> list[FlowChunk]:
        out, self.ended = self.ended, []
        return out

    def finish_flows(self):
        """End of input (or shutdown): every flow still open, exported once;
        yields chunks one at a time (write them as they come)."""
        yield from self.take_ended()
        if self.flows is not None:
            yield from self.flows.flush()

    def progress(self) -> int:
        r = self._current
        return self.bytes_done + (r.win.base + r.pos if r is not None else 0)

    def open_all(self) -> None:
        """Open every input before reading any (a bad file fails early)."""
        if self.live is not None:
            self.live.counters = self.counters
        for k, path in enumerate(self.inputs):
            r = open_capture(path)
            r.counters = self.counters
            self.readers.append(r)
        if self.filter is not None and self.live is None:
            prepare_filter(self.filter, [r.linktype if r.kind == "pcap" else None for r in self.readers])

    def _live_batch(self, n: int) -> PacketBatch:
        b = self.batch
        if self.count is not None:
            n = min(n, self.count - self.seen)
        b.n = n
        decode(b, self.counters)
        if self.flows is not None:
            self.ended.extend(self.flows.process(b, self.counters, self._after_flow))
        self.seen += n
        return b

    def _iter_live(self) -> Iterator[PacketBatch]:
        r, b = self.live, self.batch
        r.counters = self.counters
        try:
            while self.count is None or self.seen < self.count:
                n = r.fill(b)
                if not n:
                    try:
                        r.wait(100)
                    except BaseException:
                        # stopped by a signal: what the ring already holds still
                        # reaches the flow table (so it is exported), not the caller
                        for _ in range(64):
                            n = r.fill(b)
                            if not n or (self.count is not None and self.seen >= self.count):
                                break
                            self._live_batch(n)
                            r.release()
                        raise
                    continue
                yield self._live_batch(n)
                r.release()
        finally:
            b.n = 0
            b.buf = b.buf[:0]
            r.add_kernel_stats(self.counters)
            r.close()

    def __iter__(self) -> Iterator[PacketBatch]:
        if self.live is not None:
            yield from self._iter_live()
            return
        if not self.readers:
            self.open_all()
        b = self.batch
        self._current = None
        for r in self.readers:
            self._current = r
            try:
                while self.count is None or self.seen < self.count:
                    n = r.fill(b)
                    if not n:
                        break
                    if self.filter is not None:
                        n = self.filter.apply(b, n, self.counters)
                        if not n:
                            continue
                    if self.count is not None:
                        n = min(n, self.count - self.seen)
                    b.n = n
                    decode(b, self.counters)
                    if self.flows is not None:
                        self.ended.extend(self.flows.process(b, self.counters, self._after_flow))
                    self.seen += n
                    yield b
            finally:
                self._current = None
                self.bytes_done += r.win.base + r.pos
                self.problems.extend(r.problems)
                if self.filter is not None:
                    self.problems.extend(self.filter.problems)
                    self.filter.problems.clear()
                self.failed |= r.failed
                b.n = 0
                b.buf = b.buf[:0]
                r.close()


def prepare_filter(f: Filter, linktypes) -> None:
    """Compile ``f`` for the inputs' link types before any packet is read
    (``None``: not known until its packets come, pcapng and ERF). FilterError
    when it cannot be compiled for a known one, or, with none known, for any
    link type ulnet reads (a bad expression fails early either way)."""
    from ulnet.sources.capture import LINKTYPES
    known = [lt for lt in linktypes if lt is not None]
    if known:
        f.prepare(known)
    if len(known) == len(linktypes):
        return
    first = None
    for lt in [1] + sorted(set(LINKTYPES) - {1}):
        try:
            f.program(lt)
            return
        except FilterError as e:
            first = first or e
    raise first
