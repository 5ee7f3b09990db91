#!/usr/bin/env python3
"""Rewrite the expected outputs of the policy regress cases (run on purpose only).

    .venv/bin/python tests/regress/policy/amend.py [CASE ...]

Each case folder holds rules.conf, case.toml (args, exit), its inputs, and
expected/: stdout.txt, stderr.txt and one NAME.txt per capture written (the
packets as tshark reads them back). tests/test_policy_regress.py runs every
case and diffs against expected/; this script writes expected/ from a run.
Look at the diff (git diff tests/regress) before committing it.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/
from policy_regress import CASES_DIR, run_case  # noqa: E402


def main(names):
    cases = [CASES_DIR / n for n in names] if names else sorted(p.parent for p in CASES_DIR.glob("*/case.toml"))
    for case in cases:
        got = run_case(case)
        exp = case / "expected"
        exp.mkdir(exist_ok=True)
        for old in exp.glob("*.txt"):
            old.unlink()
        for name, text in got.items():
            (exp / name).write_text(text)
        print(f"{case.name}: {', '.join(sorted(got))}")


if __name__ == "__main__":
    main(sys.argv[1:])
