"""policy -- the rule language and the per-flow decision stage.

NAME
    ulnet.policy -- describe, filter, enforce

SYNOPSIS
    from ulnet.policy import load_policy, detector_names
    checked = load_policy("rules.conf", ports={"lan", "wan"})   # PolicyError on any error
    stage = PolicyStage(compile_policy(checked, ports), flow_capacity)  # ulnet.policy.stage

DESCRIPTION
    grammar.lark   the syntax, and the only place it lives (Lark, LALR)
    parse.py       text -> AST (ast.py), syntax errors with a named cause
    format.py      AST -> canonical text (``ulnet check -v``)
    check.py       names, tables, macros, types, ports; shadowed rules
    sets.py        address and number sets behind the conditions
    compile.py     checked rules -> arrays for the kernel
    _kernels.py    the per-flow decision and per-packet verdict kernel
    stage.py       PolicyStage: the stage over a batch (wraps the kernel)

    docs/rules.md is the language's manual, with the grammar.

CAVEATS
    Application, category and host conditions need the inspection stage;
    without its registry they never match (see docs/rules.md).
"""

from __future__ import annotations


def detector_names():
    """(application names, category names) from the inspection stage's
    registry, or (None, None) when it is not available."""
    try:
        from ulnet.inspect import registry     # the inspection stage (another package)
    except ImportError:
        return None, None
    try:
        return list(registry.app_names()), list(registry.category_names())
    except AttributeError:
        return None, None


def load_policy(path, ports=None, app_names=None, category_names=None):
    """Parse and check a rules file with the detector's names (see check.load)."""
    from ulnet.policy.check import load
    if app_names is None and category_names is None:
        app_names, category_names = detector_names()
    return load(path, app_names, category_names, ports)
