"""libc's system calls for compiled kernels.

The bridge's compiled loop (``ulnet.live._run``) and the TX ring's fill
(``ulnet.sinks.txring``) call ``poll``, ``send``, ``recv`` and
``clock_gettime`` without going back to Python. They are declared to numba
as external functions: numba links them by name, so a cached kernel stays
valid from process to process. Arguments are plain integers (file
descriptors, addresses of numpy buffers, lengths, flags); a call returns
what libc returns, and ``errno()`` reads the calling thread's errno.

Under ``NUMBA_DISABLE_JIT`` (the pure-Python test runs) external functions
cannot be called: ``PURE_PYTHON`` is true there, and the kernels that use
them leave the call to their Python caller.
"""

from __future__ import annotations

import numpy as np
from numba import config, types

from ulnet.jit import njit
from ulnet.rawmem import load_at

PURE_PYTHON = bool(config.DISABLE_JIT)

_i32, _i64, _u64 = types.int32, types.int64, types.uint64
poll = types.ExternalFunction("poll", _i32(_i64, _u64, _i32))
send = types.ExternalFunction("send", _i64(_i32, _i64, _u64, _i32))
recv = types.ExternalFunction("recv", _i64(_i32, _i64, _u64, _i32))
errno_location = types.ExternalFunction("__errno_location", _i64())
clock_gettime = types.ExternalFunction("clock_gettime", _i32(_i32, _i64))

CLOCK_MONOTONIC = 1
MSG_TRUNC = 0x20
MSG_DONTWAIT = 0x40
POLLERR = 0x8
EINTR = 4
EAGAIN = 11


@njit(cache=True)
def errno():
    return load_at(errno_location(), 0, np.int32)
