"""The bridge's packed policy pass (ulnet.live._polkernels) against its spec.

policy_pass_packed takes policy_pass's 129 arguments back out of one int64
array; PASS_SPEC says in which order and of what kind. Both are written out
by hand: these tests fail as soon as they disagree with each other or with
policy_pass's own parameters. No root needed: nothing is run.
"""

from __future__ import annotations

import ast
import inspect

from ulnet.live import _polkernels as P


def test_spec_names_policy_pass_parameters_in_order():
    params = list(inspect.signature(P.policy_pass.py_func).parameters)
    assert [name for name, _, _ in P.PASS_SPEC] == params


def test_packed_pass_unpacks_as_the_spec_says():
    src = inspect.getsource(P.policy_pass_packed.py_func)
    body = src.split('"""policy_pass over the arguments ``pack`` made ``A`` of."""\n', 1)[1]
    assert body.startswith(P.render_unpack())


def test_packed_pass_calls_policy_pass_with_every_argument_in_order():
    tree = ast.parse(inspect.getsource(P.policy_pass_packed.py_func))
    ret = [n for n in ast.walk(tree) if isinstance(n, ast.Return)][-1]
    assert [a.id for a in ret.value.args] == [name for name, _, _ in P.PASS_SPEC]
