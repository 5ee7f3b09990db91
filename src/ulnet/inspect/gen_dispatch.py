"""Generate ulnet/inspect/_dispatch.py from the registry (run after editing it).

    python -m ulnet.inspect.gen_dispatch          # rewrite _dispatch.py
    python -m ulnet.inspect.gen_dispatch --check  # exit 1 if it is stale

The dispatcher is plain generated code, one ``if`` per matcher in registry
order, so numba compiles straight calls (no function tables) and caches it
like any other module.

Most matchers first refuse what cannot be theirs by its length, ports or
direction alone (``if n < 20 or ...: return False``, ``if sp != 53 and dp
!= 53: return False``, ``return n >= 8 and <magic>``). That part of the
matcher's first statement, read from its source, is repeated at the call
site (``if n >= 20 and match_x(...)``): the same answer, since the matcher
says no whenever it fails, but a payload that no matcher takes no longer
pays a call to each one (most of a miss's cost: on the 18-byte UDP payloads
of bench_flows.py's synthetic capture the inspection stage took 0.57-0.72 s
per million packets with plain calls and 0.25-0.28 s with these tests;
bench/_worker.py flows, alternated). Only names n, sp, dp and d, numbers,
comparisons, arithmetic and ``and``/``or``/``not`` are copied: nothing
that reads the payload or calls a function.
"""

from __future__ import annotations

import ast
import inspect
import sys
import textwrap
from pathlib import Path

from ulnet.inspect.registry import APPS, matcher_function

OUT = Path(__file__).with_name("_dispatch.py")


_PURE_NAMES = {"n", "sp", "dp", "d"}
_PURE_NODES = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.Compare,
               ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.BinOp, ast.Add, ast.Sub, ast.Mult,
               ast.Mod, ast.FloorDiv, ast.BitAnd, ast.BitOr, ast.RShift, ast.LShift, ast.Name, ast.Load,
               ast.Constant)


def _pure(node) -> bool:
    """An expression of the arguments n, sp, dp, d and numbers only."""
    for x in ast.walk(node):
        if not isinstance(x, _PURE_NODES):
            return False
        if isinstance(x, ast.Name) and x.id not in _PURE_NAMES:
            return False
        if isinstance(x, ast.Constant) and type(x.value) is not int:
            return False
    return True


def _prefix(node, op) -> list:
    """The leading operands of a chain of ``op`` (ast.Or / ast.And) that are pure."""
    parts = node.values if isinstance(node, ast.BoolOp) and isinstance(node.op, op) else [node]
    out = []
    for x in parts:
        if not _pure(x):
            break
        out.append(x)
    return out


_NEGATED = {ast.Lt: ast.GtE, ast.LtE: ast.Gt, ast.Gt: ast.LtE, ast.GtE: ast.Lt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq}


def _joined(op, parts):
    return parts[0] if len(parts) == 1 else ast.BoolOp(op(), parts)


def _guard(func):
    """call_guard's expression (an ast node), or None."""
    body = ast.parse(textwrap.dedent(inspect.getsource(getattr(func, "py_func", func)))).body[0].body
    stmts = [s for s in body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    if not stmts:
        return None
    s = stmts[0]
    if (isinstance(s, ast.If) and not s.orelse and len(s.body) == 1 and isinstance(s.body[0], ast.Return)
            and isinstance(s.body[0].value, ast.Constant) and s.body[0].value.value is False):
        parts = _prefix(s.test, ast.Or)
        if not parts:
            return None
        c = parts[0]
        if len(parts) == 1 and isinstance(c, ast.Compare) and len(c.ops) == 1 and type(c.ops[0]) in _NEGATED:
            return ast.Compare(c.left, [_NEGATED[type(c.ops[0])]()], c.comparators)   # n < 20 -> n >= 20
        return ast.UnaryOp(ast.Not(), _joined(ast.Or, parts))
    if isinstance(s, ast.Return) and s.value is not None:
        parts = _prefix(s.value, ast.And)
        if parts and parts[0] is not s.value:       # (the whole return value pure: nothing left to call for)
            return _joined(ast.And, parts)
    return None


def call_guard(func) -> str | None:
    """What must hold for ``func`` (a matcher) to say yes, read from its
    first statement, as source text: the pure leading part of ``if A or B
    ...: return False`` (not (A or B)) or of ``return A and B ...`` (A and
    B); None when there is none."""
    g = _guard(func)
    return None if g is None else ast.unparse(g)


def _call(alias: str, guard) -> str:
    """The call site's condition: ``guard`` (an ast node or None) and the call."""
    call = f"{alias}(w, n, sp, dp, d)"
    if guard is None:
        return call
    text = ast.unparse(guard)
    if isinstance(guard, ast.BoolOp) and isinstance(guard.op, ast.Or):
        text = f"({text})"
    return f"{text} and {call}"


def render() -> str:
    imports = []
    seen = set()
    tcp, udp, proto = [], [], []
    for i, a in enumerate(APPS, start=1):
        for p in a.ip:
            proto.append((p, i, a.name))
        if isinstance(a.transport, int):
            proto.append((a.transport, i, a.name))
            continue
        if a.matcher is None:
            continue
        mod, fn = a.matcher.split(":")
        alias = f"{mod}_{fn}"
        if alias not in seen:
            seen.add(alias)
            imports.append(f'    ("ulnet.inspect.matchers.{mod}", "{fn}", "{alias}"),')
        guard = _guard(matcher_function(a.matcher))
        call = (_call(alias, guard), i, a.name)
        if a.transport in ("tcp", "both"):
            tcp.append(call)
        if a.transport in ("udp", "both"):
            udp.append(call)
    lines = ['"""GENERATED by ulnet.inspect.gen_dispatch from registry.py: do not edit.', "",
             "The matchers are globals of this module, imported by ``load_matchers``:",
             "numba needs them to compile ``dispatch`` but not to load it from its cache",
             "(the machine code has them inlined), so when the cache is fresh their",
             "imports (about 45 ms) are skipped; ulnet.inspect loads them and retries",
             "if a compile asks for them all the same.", '"""', "",
             "import importlib", "", "from ulnet.jit import njit", "",
             "# (module, function, the global name dispatch calls it by)", "MATCHERS = ("]
    lines += sorted(imports)
    lines += [")", "", "",
              "def load_matchers() -> bool:",
              '    """Import every matcher into this module; False when they already were."""',
              "    g = globals()",
              '    if g.get("_LOADED"):',
              "        return False",
              "    for mod, fn, alias in MATCHERS:",
              "        g[alias] = getattr(importlib.import_module(mod), fn)",
              '    g["_LOADED"] = True',
              "    return True",
              "", "", "@njit(cache=True)", "def dispatch(w, n, sp, dp, d, l4):",
              '    """Application id for one payload (0: no matcher said yes)."""',
              "    if l4 == 6:"]
    for call, i, name in tcp:
        lines += [f"        if {call}:", f"            return {i}  # {name}"]
    lines += ["        return 0", "    if l4 == 17:"]
    for call, i, name in udp:
        lines += [f"        if {call}:", f"            return {i}  # {name}"]
    lines += ["        return 0", "    return 0", "", "", "@njit(cache=True)", "def proto_app(proto):",
              '    """Application id decided by the IP protocol number alone (0: none)."""']
    for p, i, name in sorted(proto):
        lines += [f"    if proto == {p}:", f"        return {i}  # {name}"]
    lines += ["    return 0", "", "",
              "def _cached() -> bool:",
              '    """numba has a cache entry for ``dispatch`` compiled from this very file."""',
              "    try:",
              "        return bool(dispatch._cache._cache_file._load_index())",
              "    except Exception:     # a numba without these internals: import them",
              "        return False",
              "", "",
              "if not _cached():",
              "    load_matchers()",
              ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python -m ulnet.inspect.gen_dispatch", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
