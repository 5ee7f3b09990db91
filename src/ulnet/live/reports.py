"""One report per bridge worker, sent to the parent through a pipe when the worker stops.

What lives here: ``Reports``, N pipes (one per worker) and the parent's
reading of them. What must not: what the report says (the worker's caller
decides: ``LivePolicy.splits()``, the count by app / count by host rows).

Theory of operation. The pipes are made before the fork. Worker k keeps
only its own write end; at exit it writes one JSON document and closes it
(a worker that fails writes nothing: its pipe just closes). The parent
keeps the read ends, non-blocking, and drains them while it waits for the
workers (``drain`` doubles as its sleep), so a worker never waits long on a
full pipe, and once it has told them to stop it reads until every pipe is
closed or a deadline passes. A report is bounded by what it holds (the
policy stage caps names per rule) and by ``LIMIT`` bytes here; a larger or
unreadable one is dropped.
"""

from __future__ import annotations

import json
import os
import select
import time

LIMIT = 256 << 20


class Reports:
    def __init__(self, workers: int):
        self.fds = [os.pipe() for _ in range(workers)]
        self.bufs = [bytearray() for _ in range(workers)]
        self.open: dict[int, int] = {}           # read fd -> worker

    # -- worker side ---------------------------------------------------------
    def child(self, k: int) -> int:
        """In worker k after the fork: close every other end; its write end."""
        for j, (r, w) in enumerate(self.fds):
            os.close(r)
            if j != k:
                os.close(w)
        return self.fds[k][1]

    @staticmethod
    def send(fd: int, report) -> None:
        """Write ``report`` (JSON-able) to ``fd`` and close it."""
        try:
            data = memoryview(json.dumps(report).encode())
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)

    # -- parent side -----------------------------------------------------------
    def parent(self) -> None:
        """In the parent after the forks: keep the read ends, non-blocking."""
        for k, (r, w) in enumerate(self.fds):
            os.close(w)
            os.set_blocking(r, False)
            self.open[r] = k

    def drain(self, timeout: float) -> None:
        """Read what the pipes hold, waiting up to ``timeout`` seconds for some."""
        if not self.open:
            time.sleep(timeout)
            return
        try:
            ready, _, _ = select.select(list(self.open), [], [], timeout)
        except InterruptedError:
            return
        for fd in ready:
            k = self.open[fd]
            while True:
                try:
                    chunk = os.read(fd, 1 << 20)
                except BlockingIOError:
                    break
                if not chunk:                   # the worker closed its end
                    os.close(fd)
                    del self.open[fd]
                    break
                if len(self.bufs[k]) <= LIMIT:
                    self.bufs[k] += chunk

    def wait_closed(self, seconds: float) -> None:
        """Read until every worker has closed its pipe, for at most ``seconds``."""
        end = time.monotonic() + seconds
        while self.open and time.monotonic() < end:
            self.drain(min(0.1, max(0.0, end - time.monotonic())))

    def take(self) -> list:
        """The complete reports (one per worker that sent one); closes what is left."""
        for fd in list(self.open):
            os.close(fd)
            self.bufs[self.open.pop(fd)].clear()     # still open: not complete
        out = []
        for b in self.bufs:
            if b and len(b) <= LIMIT:
                try:
                    out.append(json.loads(b))
                except ValueError:
                    pass
        return out
