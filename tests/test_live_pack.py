"""The bridge's packed one-call passes against their specs (ulnet.live._pack).

bridge_pass_packed (ulnet.live._kernels) and policy_pass_packed
(ulnet.live._polkernels) take their pass's 54 and 129 arguments back out of
one int64 array; BRIDGE_SPEC and PASS_SPEC say in which order and of what
kind. Both are written out by hand: these tests fail as soon as they
disagree with each other or with the pass's own parameters. No root needed:
nothing is run.
"""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest

from ulnet.live import _kernels as B
from ulnet.live import _polkernels as P
from ulnet.live._pack import pack, render_unpack

PASSES = [pytest.param(B.bridge_pass, B.bridge_pass_packed, B.BRIDGE_SPEC, id="bridge_pass"),
          pytest.param(P.policy_pass, P.policy_pass_packed, P.PASS_SPEC, id="policy_pass")]


@pytest.mark.parametrize("kernel, packed, spec", PASSES)
def test_spec_names_the_pass_parameters_in_order(kernel, packed, spec):
    params = list(inspect.signature(kernel.py_func).parameters)
    assert [name for name, _, _ in spec] == params


@pytest.mark.parametrize("kernel, packed, spec", PASSES)
def test_packed_pass_unpacks_as_the_spec_says(kernel, packed, spec):
    src = inspect.getsource(packed.py_func)
    body = src.split('made ``A`` of."""\n', 1)[1]
    assert body.startswith(render_unpack(spec))


@pytest.mark.parametrize("kernel, packed, spec", PASSES)
def test_packed_pass_calls_the_pass_with_every_argument_in_order(kernel, packed, spec):
    tree = ast.parse(inspect.getsource(packed.py_func))
    ret = [n for n in ast.walk(tree) if isinstance(n, ast.Return)][-1]
    assert ret.value.func.id == kernel.py_func.__name__
    assert [a.id for a in ret.value.args] == [name for name, _, _ in spec]


def test_pack_lays_out_addresses_shapes_and_numbers_and_refuses_other_kinds():
    spec = (("a", "int64", 2), ("n", "int", 0), ("flag", "bool", 0), ("b", "uint8", 1))
    a = np.zeros((3, 5), np.int64)
    b = np.zeros(7, np.uint8)
    got = pack((a, 9, True, b), spec)
    assert got.tolist() == [a.ctypes.data, 3, 5, 9, 1, b.ctypes.data, 7]
    assert pack((a, 9, True), spec) is None                              # too few
    assert pack((a.astype(np.int32), 9, True, b), spec) is None          # wrong dtype
    assert pack((a[:, ::2], 9, True, b), spec) is None                   # not contiguous
    assert pack((a, True, True, b), spec) is None                        # a bool where a number goes
    assert pack((a, 9, 1, b), spec) is None                              # a number where a bool goes
