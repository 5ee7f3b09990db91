"""Raw memory access for compiled kernels: byte copies, loads and pointers.

``copy_bytes(dst, p, src, a, m)`` is ``dst[p:p + m] = src[a:a + m]`` for
uint8 arrays, as one ``memcpy`` (LLVM's ``llvm.memcpy``). numba lowers a
slice assignment to a loop over the elements behind an overlap check: 16 µs
for a 64 KiB frame on this machine, where ``memcpy`` takes 1.8 µs. That
loop was 43 % of the bridge's CPU under an iperf3 TCP stream. The caller
guarantees both ranges are inside their arrays and do not overlap; nothing
is checked.

``copy_short(dst, p, src, a, m)`` is the same copy for short strings:
when ``m <= 16`` it copies 16 bytes (two unaligned 8-byte moves, no call),
so it may read up to 16 bytes from ``src[a]`` and write up to 16 bytes
from ``dst[p]``: the caller keeps 16 bytes of slack after both ranges.

``load_at(addr, i, dtype)`` reads the ``dtype`` value at byte address
``addr + i`` (a column read where it lies, by address and stride).

``pointer_to(addr, dtype)`` is a ``dtype`` pointer to byte address ``addr``
(for ``numba.carray``: arrays passed as address and shape).

Under ``NUMBA_DISABLE_JIT`` (the pure-Python hostile-input tests) an
intrinsic cannot run: ``copy_bytes`` and ``copy_short`` are then the slice
assignment; the other
two are only used by kernels that those tests do not run.
"""

from __future__ import annotations

from numba import config, types
from numba.core import cgutils
from numba.extending import intrinsic


def _copy(typingctx, dst, p, src, a, m, short: bool):
    """Typing and code of copy_bytes (short=False) and copy_short."""
    if not (isinstance(dst, types.Array) and isinstance(src, types.Array)):
        return None

    def codegen(context, builder, sig, args):
        d, p, s, a, m = args
        dp = builder.gep(context.make_array(sig.args[0])(context, builder, d).data, [p])
        sp = builder.gep(context.make_array(sig.args[2])(context, builder, s).data, [a])
        if not short:
            cgutils.raw_memcpy(builder, dp, sp, m, 1)
            return context.get_dummy_value()
        with builder.if_else(builder.icmp_signed("<=", m, m.type(16))) as (then, otherwise):
            with then:
                cgutils.raw_memcpy(builder, dp, sp, m.type(16), 1)
            with otherwise:
                cgutils.raw_memcpy(builder, dp, sp, m, 1)
        return context.get_dummy_value()
    return types.none(dst, p, src, a, m), codegen


@intrinsic
def copy_bytes(typingctx, dst, p, src, a, m):
    return _copy(typingctx, dst, p, src, a, m, short=False)


@intrinsic
def copy_short(typingctx, dst, p, src, a, m):
    return _copy(typingctx, dst, p, src, a, m, short=True)


@intrinsic
def load_at(typingctx, addr, i, dtype):
    ty = dtype.dtype if isinstance(dtype, types.DTypeSpec) else dtype.instance_type

    def codegen(context, builder, sig, args):
        a, k, _ = args
        llty = context.get_value_type(ty)
        ptr = builder.inttoptr(builder.add(a, k), llty.as_pointer())
        return builder.load(ptr)
    return ty(addr, i, dtype), codegen


@intrinsic
def pointer_to(typingctx, addr, dtype):
    ty = dtype.dtype if isinstance(dtype, types.DTypeSpec) else dtype.instance_type

    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], context.get_value_type(types.CPointer(ty)))
    return types.CPointer(ty)(addr, dtype), codegen


if config.DISABLE_JIT:
    def copy_bytes(dst, p, src, a, m):  # noqa: F811
        dst[p:p + m] = src[a:a + m]

    copy_short = copy_bytes  # noqa: F811
