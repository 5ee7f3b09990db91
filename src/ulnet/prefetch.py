"""Software prefetch for compiled kernels.

``prefetch(arr, i)`` asks the CPU to bring the cache line holding ``arr[i]``
towards the core (LLVM's ``llvm.prefetch``: a read, high locality). It never
faults, so an index past the end of the array is harmless; it changes no
value, only when memory arrives.

``stream_ahead(arr, pf, pos, end)`` is the helper the capture walkers use:
a record walk is a chain of dependent loads (the next header's offset is in
the current one), so each step waits for memory unless the lines ahead are
already on their way. It prefetches every line from ``pf`` up to
``pos + STREAM_AHEAD`` (clamped to ``end``) and returns the new ``pf``.
On the 2 M packet benchmark capture this took the pcap walker from about
60 to about 30 ns a packet (bench/diag_decode.py).
"""

from __future__ import annotations

from llvmlite import ir
from numba import config, types

from ulnet.jit import helper, njit
from numba.core import cgutils
from numba.extending import intrinsic

LINE = 64
STREAM_AHEAD = 4096   # bytes ahead of the cursor; 2-8 KiB measured the same

_I8P = ir.IntType(8).as_pointer()
_I32 = ir.IntType(32)


@intrinsic
def prefetch(typingctx, arr, idx):
    if not isinstance(arr, types.Array) or not isinstance(idx, types.Integer):
        return None
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        a, i = args
        ary = context.make_array(signature.args[0])(context, builder, a)
        ptr = builder.bitcast(builder.gep(ary.data, [i]), _I8P)
        fnty = ir.FunctionType(ir.VoidType(), [_I8P, _I32, _I32, _I32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # rw=0 (read), locality=3 (keep in all levels), cache type=1 (data)
        builder.call(fn, [ptr, ir.Constant(_I32, 0), ir.Constant(_I32, 3), ir.Constant(_I32, 1)])
        return context.get_dummy_value()

    return sig, codegen


# Pure-Python runs (NUMBA_DISABLE_JIT, the hostile-input tests): an
# intrinsic cannot run there, and there is no cache to warm.
PURE_PYTHON = bool(config.DISABLE_JIT)
if PURE_PYTHON:
    def prefetch(arr, idx):  # noqa: F811
        pass


@helper
def stream_ahead(buf, pf, pos, end):
    if PURE_PYTHON:
        return pos
    lim = pos + STREAM_AHEAD
    if lim > end:
        lim = end
    if pf < pos:
        pf = pos
    while pf < lim:
        prefetch(buf, pf)
        pf += LINE
    return pf
