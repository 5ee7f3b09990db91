"""A compiled pass's arguments packed into one int64 array (private to ulnet.live).

A numba call unboxes each argument: about 60 ns an array warm, twice that
on a CPU just woken. The bridge calls its one-call pass for every port on
every step, with packets or not: bridge_pass's 54 arguments cost 1.9-3 us a
call, policy_pass's 129 about 8 us. Packed, the call unboxes one int64
array: each array argument as its address and shape, each number as itself
(``pack``); the packed kernel makes the arrays again as views (``carray``
over ``rawmem.pointer_to``, no copy). The caller keeps the arrays alive
(the argument tuple ``pack`` was given) and packs again when they change.

A spec is a tuple of ``(name, dtype, ndim)``, one per parameter in order
(ndim 0: a number; dtype "int" or "bool"). ``render_unpack(spec)`` writes
the first lines of the packed kernel; tests/test_live_pack.py fails while a
packed kernel, its spec and the pass's parameters disagree.
"""

from __future__ import annotations

import numpy as np
from numba import config


def pack(args, spec) -> np.ndarray | None:
    """``args`` (the pass's arguments, in order) as the packed kernel's one
    array; None when one of them is not of the kind ``spec`` says (then call
    the pass itself). None too under ``NUMBA_DISABLE_JIT``: a packed kernel
    makes its arrays from addresses, which pure Python cannot."""
    if len(args) != len(spec) or config.DISABLE_JIT:
        return None
    out = []
    for a, (_, dt, nd) in zip(args, spec):
        if nd == 0:
            if dt == "bool":
                if not isinstance(a, (bool, np.bool_)):
                    return None
            elif isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
                return None
            out.append(int(a))
        else:
            if (not isinstance(a, np.ndarray) or a.dtype.name != dt or a.ndim != nd
                    or not a.flags.c_contiguous):
                return None
            out.append(a.ctypes.data)
            out.extend(int(x) for x in a.shape)
    return np.array(out, dtype=np.int64)


def render_unpack(spec) -> str:
    """The first lines of a packed kernel, as ``spec`` says: each argument
    taken back out of ``A`` in order. After a change to a pass's
    parameters, edit its spec and paste this in."""
    lines, i = [], 0
    for name, dt, nd in spec:
        if nd == 0:
            lines.append(f"    {name} = A[{i}] != 0" if dt == "bool" else f"    {name} = A[{i}]")
            i += 1
        else:
            np_dt = "bool_" if dt == "bool" else dt
            shape = "".join(f"A[{i + 1 + d}], " for d in range(nd)).rstrip(" ")
            lines.append(f"    {name} = carray(pointer_to(A[{i}], np.{np_dt}), ({shape}))")
            i += 1 + nd
    return "\n".join(lines) + "\n"
