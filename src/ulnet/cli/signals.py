"""SIGINT and SIGTERM for commands that must finish what they hold.

``stop_signals()`` installs handlers for the duration of a command:
SIGTERM raises ``Terminated`` and SIGINT ``KeyboardInterrupt`` (SIGINT only
where Python's own handler is in place, not when it is ignored, as in a
background job). Inside ``held()`` a signal takes effect when the block
ends, so it cannot cut a record being written or lose chunks taken out of
the pipeline. The handlers note the signal themselves: a signal mask would
not do, another thread of the process (OpenBLAS's) takes a process-directed
signal and Python raises in the main thread all the same.
"""

from __future__ import annotations

import contextlib
import signal


class Terminated(Exception):
    """SIGTERM arrived."""


_HELD = [0, None]      # depth of held() blocks, the exception a signal in them deferred


def _on_signal(signum, frame):
    exc = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    if _HELD[0]:
        _HELD[1] = _HELD[1] or exc
        return
    raise exc()


@contextlib.contextmanager
def held():
    """SIGINT and SIGTERM arriving in the block take effect when it ends."""
    _HELD[0] += 1
    try:
        yield
    finally:
        _HELD[0] -= 1
    if not _HELD[0] and _HELD[1] is not None:
        exc, _HELD[1] = _HELD[1], None
        raise exc()


@contextlib.contextmanager
def stop_signals():
    """The handlers above for the block; the previous ones put back after it."""
    sigs = [signal.SIGTERM] + [signal.SIGINT] * (signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    handlers = {s: signal.signal(s, _on_signal) for s in sigs}
    try:
        yield
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
