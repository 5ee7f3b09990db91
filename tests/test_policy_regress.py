"""Policy regress cases (tests/regress/policy/*): run each, diff its outputs
with expected/ (rewritten only by tests/regress/policy/amend.py)."""

from __future__ import annotations

import pytest

from policy_regress import CASES_DIR, run_case

CASES = sorted(p.parent.name for p in CASES_DIR.glob("*/case.toml"))


@pytest.mark.parametrize("name", CASES)
def test_policy_case(name):
    case = CASES_DIR / name
    got = run_case(case)
    exp = {p.name: p.read_text() for p in (case / "expected").glob("*.txt")}
    assert sorted(got) == sorted(exp), "outputs differ in which files exist"
    for k in sorted(exp):
        assert got[k] == exp[k], f"{name}/{k} differs"
