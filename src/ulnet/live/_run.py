"""The bridge's event loop as one compiled call (private to ulnet.live).

``bridge_loop`` is ``Forwarder.run`` for a bridge without a policy whose
ports are all rings: it calls each port's one-call pass
(``_kernels.bridge_pass_packed``), flushes the peer's TX ring with
``send()``, and when no port has packets empties the wake-up sockets,
looks once more and sleeps in ``poll()``, all without going back to
Python. Python's loop around the same calls cost about a third of the
bridge's CPU under an iperf3 TCP stream (the interpreter, argument
unboxing, a socket object per call, an exception per empty wake-up
socket).

It returns to Python whenever Python has something to do: a pass stopped
where it needs Python (``LOOP_PASS``: the caller finishes that port's step
as ``Forwarder._finish`` does), ``max_ns`` passed (ticks, the stop
flag), a signal interrupted the sleep, a receive socket reports an error
(a link went down), or a flush failed other than for a full queue (the
caller's ``TxRing._flush`` sends again and counts).

The system calls are libc's (``ulnet.libc``), declared as external
functions: numba links them by name, so the cached kernel stays valid
from process to process.
"""

from __future__ import annotations

import numpy as np
from numba import carray

from ulnet.jit import njit
from ulnet.libc import (CLOCK_MONOTONIC, EAGAIN, MSG_DONTWAIT, MSG_TRUNC, POLLERR, clock_gettime as _clock_gettime,
                        poll as _poll, recv as _recv)
from ulnet.rawmem import pointer_to
from ulnet.sinks.txring import ST_MARKED, ST_SIZE, send_marked

from ulnet.live._kernels import PASS_DONE, PASS_EMPTY, bridge_pass_packed

WAKE_DRAIN = 64          # recv() calls at most per wake-up socket and idle look (as RingSource.drain_wake)

# bridge_loop return codes
LOOP_TIME = 0            # max_ns passed
LOOP_PASS = 1            # port io[0]'s pass returned io[1] (neither EMPTY nor DONE); res as it left it
LOOP_SIGNAL = 2          # poll() was interrupted (a signal) or failed
LOOP_POLLERR = 3         # port io[0]'s receive socket reports an error
LOOP_SEND = 4            # flushing the TX ring port io[0] forwards to failed (not EAGAIN): slots still marked

# io[] slots: the first ones the loop reports in (the caller zeroes them
# before each call, IO_EPOCH excepted), then the loop's own scratch (the
# clock, the idle state, a byte for recv), so a call allocates nothing
IO_PORT, IO_CODE, IO_PACKETS, IO_DONE, IO_EPOCH = 0, 1, 2, 3, 4      # IO_EPOCH: policy_loop's, in and out
IO_TS, IO_LAST, IO_LOOKED, IO_SINK = 5, 7, 8, 9     # timespec (2 slots); last packet; wake-ups emptied since
IO_SIZE = 10


@njit(cache=True)
def _now(io):
    _clock_gettime(CLOCK_MONOTONIC, io.ctypes.data + 8 * IO_TS)
    return io[IO_TS] * 1000000000 + io[IO_TS + 1]


@njit(cache=True)
def begin(io):
    """A loop's start time; the idle state starts afresh."""
    start = _now(io)
    io[IO_LAST] = start
    io[IO_LOOKED] = 0
    return start


@njit(cache=True)
def flush_peer(txst, k):
    """``send()`` the TX ring port k forwards to, if slots are marked; False
    when that failed other than for a full queue (the slots stay marked;
    after EAGAIN they are queued and the next send() takes them)."""
    st = carray(pointer_to(txst[k], np.int64), (ST_SIZE,))
    e = send_marked(st)
    if e == EAGAIN:
        st[ST_MARKED] = 0
        return True
    return e == 0


@njit(cache=True)
def after_pass(code, k, res, txst, io):
    """Port k's pass returned ``code`` (not EMPTY; DONE is 1 for both
    passes): count its packets and flush the peer's TX ring; -1 to go on,
    else the LOOP_* code to return."""
    io[IO_PACKETS] += res[0]
    if code != PASS_DONE:
        io[IO_PORT] = k
        io[IO_CODE] = code
        return LOOP_PASS
    io[IO_DONE] += 1
    if not flush_peer(txst, k):
        io[IO_PORT] = k
        return LOOP_SEND
    return -1


@njit(cache=True)
def after_round(total, start, pfd, nports, nwake, io, max_ns, busy_ns, idle_ms):
    """What a loop does after visiting every port (``total`` packets): go
    on (-1), or return a LOOP_* code."""
    now = _now(io)
    if total:
        io[IO_LAST] = now
        io[IO_LOOKED] = 0
    if now - start >= max_ns:
        return LOOP_TIME
    if total or (busy_ns and now - io[IO_LAST] < busy_ns):
        return -1
    if nwake and not io[IO_LOOKED]:
        # empty the wake-up queues, then look once more: a packet that
        # arrives after that look finds its queue empty and wakes the poll
        sink = io.ctypes.data + 8 * IO_SINK
        for j in range(nports, nports + nwake):
            for _ in range(WAKE_DRAIN):
                if _recv(pfd[2 * j], sink, 1, MSG_DONTWAIT | MSG_TRUNC) < 0:
                    break
        io[IO_LOOKED] = 1
        return -1
    io[IO_LOOKED] = 0
    left = (max_ns - (now - start)) // 1000000 + 1
    r = _poll(pfd.ctypes.data, pfd.shape[0] // 2, min(idle_ms, left))
    if r < 0:
        return LOOP_SIGNAL
    if r > 0:
        for k in range(nports):
            if (pfd[2 * k + 1] >> 16) & POLLERR:
                io[IO_PORT] = k
                return LOOP_POLLERR
    return -1


@njit(cache=True)
def bridge_loop(AP, res, txst, pfd, nwake, io, max_ns, busy_ns, idle_ms):
    """Forward until there is something for Python to do; returns a LOOP_* code.

    AP[k]: port k's packed bridge_pass arguments (their ``res`` is ``res``);
    txst[k]: the address of the ``st`` array of the TX ring port k forwards
    to (its socket is in it: ``sinks.txring.ST_FD``); pfd: ``struct pollfd`` as int32 pairs (fd,
    events | revents << 16), the receive sockets of the ports first, then
    ``nwake`` wake-up sockets. io (IO_SIZE slots, see IO_*): the port and
    pass code of a LOOP_PASS or LOOP_POLLERR, and the packets taken and
    passes done (one flow epoch each)."""
    start = begin(io)
    while True:
        before = io[IO_PACKETS]
        for k in range(AP.shape[0]):
            code = bridge_pass_packed(AP[k])
            if code != PASS_EMPTY:
                r = after_pass(code, k, res, txst, io)
                if r >= 0:
                    return r
        r = after_round(io[IO_PACKETS] - before, start, pfd, AP.shape[0], nwake, io, max_ns, busy_ns, idle_ms)
        if r >= 0:
            return r
