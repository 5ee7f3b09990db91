"""parse -- rule text -> AST, with errors that name the line, the column and the cause.

NAME
    ulnet.policy.parse -- the front end of the rule language

SYNOPSIS
    from ulnet.policy.parse import parse, parse_file
    policy = parse(text, filename="rules.conf")      # ulnet.policy.ast.Policy
    # raises PolicyError(diagnostics) on a syntax error

DESCRIPTION
    The grammar is grammar.lark beside this file (Lark, LALR, contextual
    lexer); this module only walks the tree Lark builds into the frozen
    nodes of ``ulnet.policy.ast``. Rates, sizes and durations are read into
    base units here (``2Mbit`` -> 2_000_000 bit/s) so the AST compares by
    meaning. Names are not looked up here: that is ``check``.

    Syntax errors are turned into one ``Diagnostic`` with a named cause
    (after lark's examples/advanced/error_reporting_lalr.py): a word where a
    keyword must be is ``unknown-keyword`` with a "did you mean" from the
    keywords that fit there; a keyword left without its value is
    ``missing-value``; ``unterminated-string``, ``unexpected-character``,
    and ``syntax`` for the rest. LALR stops at the first syntax error, so a
    file reports one syntax error at a time; errors of meaning (check) are
    all reported together.
"""

from __future__ import annotations

import difflib
import os
import re
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from ulnet.policy.ast import (Endpoint, Item, MacroDef, Policy, Pos, Rate, Rule, Spec, TableDef, NOPOS)
from ulnet.policy.errors import Diagnostic, PolicyError, line_of

GRAMMAR_PATH = Path(__file__).with_name("grammar.lark")


def _cache_file() -> str | bool:
    """Where Lark keeps the analysed grammar (building the LALR tables takes
    0.15-0.3 s, loading them a few ms): beside the grammar in __pycache__,
    as Python keeps byte code, else in the user's cache directory; False
    when neither can be written (built every time). Lark stores a digest of
    the grammar, its options and its own version in the file and rebuilds
    when they differ; a file it cannot read is rebuilt too."""
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    for d in (GRAMMAR_PATH.parent / "__pycache__", Path(home) / "ulnet"):
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(d, os.W_OK):
            return str(d / "grammar.lark.cache")
    return False


@lru_cache(maxsize=1)
def parser() -> Lark:
    return Lark(GRAMMAR_PATH.read_text(), parser="lalr", lexer="contextual", propagate_positions=True,
                cache=_cache_file())


@lru_cache(maxsize=1)
def keywords() -> dict[str, str]:
    """Terminal name -> keyword text, read from the grammar (the /word\\b/ terminals)."""
    out = {}
    for t in parser().terminals:
        m = re.fullmatch(r"([a-z0-9]+)\\b", t.pattern.value)
        if m:
            out[t.name] = m.group(1)
    return out


STATEMENT_KEYWORDS = ("table", "default", "pass", "block", "reject", "match")

# how terminals are named in messages
_HUMAN = {
    "NAME": "a name", "NUMBER": "a number", "ADDRESS": "an address", "TABLE": "a <table>",
    "MACRO": "a $macro", "STRING": "a \"string\"", "QUANTITY": "a quantity (like 2Mbit, 200pps, 16kB, 50ms)",
    "FLAGSPEC": "TCP flags (like S/SA)", "CMP": "a comparison (< <= > >= !=)", "LBRACE": "'{'",
    "RBRACE": "'}'", "BANG": "'!'", "EQUAL": "'='", "COMMA": "','", "MINUS": "'-'", "_NL": "the end of the line",
    "$END": "the end of the file",
}
_VALUE_TERMS = {"NAME", "NUMBER", "ADDRESS", "TABLE", "MACRO", "STRING", "QUANTITY", "FLAGSPEC", "LBRACE",
                "BANG", "CMP", "_ANY"}


def _human(term: str) -> str:
    if term in _HUMAN:
        return _HUMAN[term]
    kw = keywords().get(term)
    return f"'{kw}'" if kw else term


# ---- quantities ------------------------------------------------------------------
_QTY = re.compile(r"([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)")
RATE_UNITS = {"bit": ("bit", 1), "kbit": ("bit", 10**3), "Kbit": ("bit", 10**3), "Mbit": ("bit", 10**6),
              "Gbit": ("bit", 10**9), "Tbit": ("bit", 10**12),
              "pps": ("pps", 1), "kpps": ("pps", 10**3), "Kpps": ("pps", 10**3), "Mpps": ("pps", 10**6)}
SIZE_UNITS = {"": None, "B": ("B", 1), "kB": ("B", 1000), "KB": ("B", 1000), "MB": ("B", 10**6),
              "KiB": ("B", 1024), "MiB": ("B", 1 << 20), "p": ("p", 1), "pkt": ("p", 1), "packets": ("p", 1)}
TIME_UNITS = {"ns": 1, "us": 1000, "ms": 10**6, "s": 10**9}


class _Bad(Exception):
    def __init__(self, cause, message, tok):
        self.cause, self.message, self.tok = cause, message, tok


def _split_qty(tok: Token):
    """(number, unit): the number as (digits, decimals), exact ("1.5" is
    (15, 1)); fractions.Fraction would import decimal (3 ms of the start of
    every command that reads rules, 35 ms when its shared library is not
    in the page cache)."""
    m = _QTY.fullmatch(str(tok))
    whole, _, frac = m.group(1).partition(".")
    return (int(whole + frac), len(frac)), m.group(2)


def _whole_positive(num: tuple[int, int], mult: int) -> int | None:
    """num * mult when it is a whole, positive number, else None."""
    q, r = divmod(num[0] * mult, 10 ** num[1])
    return q if r == 0 and q > 0 else None


def parse_rate(tok: Token) -> tuple[int, str]:
    num, unit = _split_qty(tok)
    if unit not in RATE_UNITS:
        hint = " (bps is ambiguous: write bit rates in bit, kbit, Mbit, Gbit)" if unit.lower().endswith("bps") else ""
        raise _Bad("bad-rate", f"'{tok}': unknown rate unit '{unit}'; units are pps, kpps, Mpps, bit, kbit, "
                               f"Mbit, Gbit{hint}", tok)
    kind, mult = RATE_UNITS[unit]
    v = _whole_positive(num, mult)
    if v is None:
        raise _Bad("bad-rate", f"'{tok}': a rate must be a whole, positive number of {kind}/s", tok)
    return v, kind


def parse_size(tok: Token, kind: str) -> int:
    num, unit = _split_qty(tok)
    if unit not in SIZE_UNITS:
        raise _Bad("bad-size", f"'{tok}': unknown size unit '{unit}'; units are B, kB, MB, KiB, MiB, or p (packets)", tok)
    u = SIZE_UNITS[unit]
    want = "B" if kind == "bit" else "p"
    if u is None:
        u = (want, 1)
    if u[0] != want:
        raise _Bad("bad-size", f"'{tok}': a burst for a rate in {'bit/s' if kind == 'bit' else 'packets/s'} "
                               f"is in {'bytes' if want == 'B' else 'packets (p)'}", tok)
    v = _whole_positive(num, u[1])
    if v is None:
        raise _Bad("bad-size", f"'{tok}': a burst must be a whole, positive number of "
                               f"{'bytes' if want == 'B' else 'packets'}", tok)
    return v


def parse_duration(tok: Token) -> int:
    num, unit = _split_qty(tok)
    if unit not in TIME_UNITS:
        raise _Bad("bad-duration", f"'{tok}': unknown time unit '{unit}'; units are ns, us, ms, s", tok)
    v = _whole_positive(num, TIME_UNITS[unit])
    if v is None:
        raise _Bad("bad-duration", f"'{tok}': a queue time must be a whole, positive number of nanoseconds", tok)
    return v


# ---- tree -> AST ------------------------------------------------------------------

def _pos_tok(t: Token) -> Pos:
    return Pos(t.line, t.column, t.end_line or t.line, (t.end_column or t.column + 1) - 1)


def _pos_tree(t: Tree) -> Pos:
    m = t.meta
    if getattr(m, "empty", True):
        return NOPOS
    return Pos(m.line, m.column, m.end_line, m.end_column - 1)


def _unquote(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s[1:-1])


def _item(t: Tree) -> Item:
    k = t.data
    c = t.children
    p = _pos_tree(t)
    if k == "num":
        return Item("num", str(c[0]), a=int(c[0]), pos=p)
    if k == "range":
        return Item("range", f"{c[0]}-{c[1]}", a=int(c[0]), b=int(c[1]), pos=p)
    if k == "cmp":
        return Item("cmp", f"{c[0]}{c[1]}", a=int(c[1]), op=str(c[0]), pos=p)
    if k == "address":
        return Item("address", str(c[0]), pos=p)
    if k == "table_ref":
        return Item("table", str(c[0])[1:-1], pos=p)
    if k == "macro_ref":
        return Item("macro", str(c[0])[1:], pos=p)
    if k == "name":
        return Item("name", str(c[0]), pos=p)
    if k == "string":
        return Item("string", _unquote(str(c[0])), pos=p)
    if k == "any":
        return Item("any", "any", pos=p)
    raise AssertionError(k)


def _spec(children) -> Spec:
    """The value of a clause: the children after its keyword."""
    (t,) = children
    if t.data == "negated":
        inner = _spec(t.children)
        return Spec(inner.items, inner.is_list, True, pos=_pos_tree(t))
    if t.data == "list":
        return Spec(tuple(_item(x) for x in t.children), True, False, pos=_pos_tree(t))
    return Spec((_item(t),), False, False, pos=_pos_tree(t))


def _endpoint(t: Tree) -> Endpoint:
    addr = port = None
    for c in t.children:
        if c.data == "port_part":
            port = _spec(c.children)
        else:
            addr = _spec([c])
    return Endpoint(addr, port, pos=_pos_tree(t))


_CLAUSE_FIELD = {"from_": "src", "to": "dst", "direction": "direction", "af": "af"}


def _rate(t: Tree) -> Rate:
    value, unit = parse_rate(t.children[0])
    burst = queue = 0
    per_flow = False
    seen = {}
    for o in t.children[1:]:
        if o.data in seen:
            raise _Bad("duplicate-clause", f"'{o.data}' given twice for one {t.data}", _first_token(o))
        seen[o.data] = True
        if o.data == "burst":
            burst = parse_size(o.children[0], unit)
        elif o.data == "queue":
            if t.data == "police":
                raise _Bad("bad-option", "police has no queue (it drops what exceeds the rate): "
                                             "use shape for a queue", o.children[0])
            queue = parse_duration(o.children[0])
        elif o.data == "per":
            w = str(o.children[0])
            if w not in ("flow", "rule"):
                raise _Bad("bad-option", f"'per {w}': say per flow (a bucket for each flow) or per rule "
                                         f"(one for the rule, the default)", o.children[0])
            per_flow = w == "flow"
    return Rate(value, unit, burst, queue, per_flow, pos=_pos_tree(t))


def _first_token(t):
    for x in t.scan_values(lambda v: isinstance(v, Token)):
        return x
    return None


def _rule(t: Tree, default: bool) -> Rule:
    children = t.children
    action = str(children[0].children[0])
    fields: dict = {}
    positions: dict = {}
    for c in children[1:]:
        name = _CLAUSE_FIELD.get(c.data, c.data)
        if c.data == "flags_any":
            name = "flags"
        if name in fields:
            first = positions[name]
            raise _Bad("duplicate-clause", f"'{_clause_word(name)}' given twice in one rule "
                                           f"(first at column {first.col})", c)
        positions[name] = _pos_tree(c)
        if c.data in ("direction", "af"):
            fields[name] = str(c.children[0])
        elif c.data in ("from_", "to"):
            fields[name] = _endpoint(c)
        elif c.data == "flags":
            fields[name] = str(c.children[0])
        elif c.data == "flags_any":
            fields[name] = "any"
        elif c.data in ("police", "shape"):
            fields[name] = _rate(c)
        elif c.data == "count":
            w = str(c.children[0]) if c.children else "rule"
            if w not in ("app", "host", "rule"):
                raise _Bad("bad-option", f"'count by {w}': count by app, by host or by rule", c.children[0])
            fields[name] = w
        elif c.data == "tag":
            fields[name] = str(c.children[0])
        elif c.data == "capture":
            fields[name] = _unquote(str(c.children[0]))
        elif c.data == "log":
            fields[name] = True
        else:
            fields[name] = _spec(c.children)
    return Rule(action, default=default, pos=_pos_tree(t), positions=positions, **fields)


def _clause_word(field: str) -> str:
    return {"src": "from", "dst": "to", "direction": "in/out", "af": "inet/inet6"}.get(field, field)


def _build(tree: Tree) -> Policy:
    out = []
    for s in tree.children:
        if s.data == "table_inline":
            name = str(s.children[0])[1:-1]
            lst = s.children[1]
            out.append(TableDef(name, tuple(_item(x) for x in lst.children), None, pos=_pos_tree(s)))
        elif s.data == "table_file":
            out.append(TableDef(str(s.children[0])[1:-1], (), _unquote(str(s.children[1])), pos=_pos_tree(s)))
        elif s.data == "macro_def":
            out.append(MacroDef(str(s.children[0]), _spec(s.children[1:]), pos=_pos_tree(s)))
        elif s.data == "default_def":
            out.append(_rule(s, True))
        elif s.data == "rule":
            out.append(_rule(s, False))
        else:
            raise AssertionError(s.data)
    return Policy(tuple(out))


# ---- errors --------------------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


def _word_at(text: str, pos: int) -> tuple[int, str] | None:
    """The word that covers offset ``pos`` (start offset, word), if any."""
    if pos >= len(text) or not (text[pos].isalnum() or text[pos] == "_"):
        return None
    s = pos
    while s > 0 and (text[s - 1].isalnum() or text[s - 1] in "_-"):
        s -= 1
    m = _WORD.match(text, s)
    return (s, m.group(0)) if m else None


def _offset(text: str, line: int, col: int) -> int:
    lines = text.splitlines(keepends=True)
    return sum(len(x) for x in lines[:line - 1]) + col - 1


def _line_col(text: str, off: int) -> tuple[int, int]:
    line = text.count("\n", 0, off) + 1
    col = off - (text.rfind("\n", 0, off) + 1) + 1
    return line, col


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(word.lower(), sorted(set(choices)), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _keyword_error(text, filename, off, word, candidates) -> Diagnostic:
    line, col = _line_col(text, off)
    fit = ", ".join(sorted(set(candidates))) if len(set(candidates)) <= 8 else None
    msg = f"'{word}' is not a keyword here{_suggest(word, candidates)}"
    if fit and not _suggest(word, candidates):
        msg += f"; expected one of: {fit}"
    return Diagnostic(filename, line, col, "unknown-keyword", msg, end_col=col + len(word) - 1,
                      source_line=line_of(text, line))


def _syntax_diagnostic(e: UnexpectedInput, text: str, filename: str) -> Diagnostic:
    kw = keywords()
    if isinstance(e, UnexpectedCharacters):
        off = e.pos_in_stream
        expected = set(e.allowed)
        ch = text[off] if off < len(text) else ""
        if ch == '"':
            line, col = _line_col(text, off)
            return Diagnostic(filename, line, col, "unterminated-string", "string has no closing quote on its line",
                              end_col=len(line_of(text, line) or ""), source_line=line_of(text, line))
        w = _word_at(text, off)
        if w is not None and not (expected & _VALUE_TERMS):
            cands = [kw[x] for x in expected if x in kw]
            return _keyword_error(text, filename, w[0], w[1], cands or list(kw.values()))
        line, col = _line_col(text, off)
        exp = ", ".join(sorted(_human(x) for x in expected))
        return Diagnostic(filename, line, col, "unexpected-character", f"unexpected '{ch}'; expected {exp}",
                          source_line=line_of(text, line))
    assert isinstance(e, UnexpectedToken)
    tok = e.token
    expected = set(e.expected)
    if expected == {"EQUAL"}:
        # a statement that starts with a word that is not a keyword: the parser
        # took it for a macro name and wanted '='
        off = _offset(text, tok.line, tok.column) if tok.type != "$END" else len(text)
        ls = text.rfind("\n", 0, off) + 1
        m = _WORD.match(text, ls + len(text[ls:]) - len(text[ls:].lstrip()))
        if m:
            return _keyword_error(text, filename, m.start(), m.group(0), STATEMENT_KEYWORDS)
    if tok.type in ("$END", "_NL"):
        # something is missing at the end of the line
        if tok.type == "$END":
            off = len(text.rstrip())
        else:
            off = _offset(text, tok.line, tok.column)
        # point just after the last word on the line (skip a trailing comment)
        ls = text.rfind("\n", 0, off) + 1
        seg = re.sub(r"#.*", "", text[ls:off]).rstrip()
        off = ls + len(seg)
        line, col = _line_col(text, off)
        prev = seg.split()[-1] if seg.split() else ""
        if expected & _VALUE_TERMS:
            if "RBRACE" in expected:
                o = _unclosed_brace(text, off)
                if o is not None:
                    bl, bc = _line_col(text, o)
                    return Diagnostic(filename, bl, bc, "syntax", "list not closed: '}' expected",
                                      source_line=line_of(text, bl))
            return Diagnostic(filename, line, col, "missing-value",
                              f"'{prev}' needs a value: {_expected_values(expected, prev)}",
                              source_line=line_of(text, line))
        exp = ", ".join(sorted(_human(x) for x in expected)[:10])
        return Diagnostic(filename, line, col, "syntax", f"the statement ends too early after '{prev}'; expected {exp}",
                          source_line=line_of(text, line))
    off = _offset(text, tok.line, tok.column)
    w = _word_at(text, off)
    kw_expected = [kw[x] for x in expected if x in kw]
    if w is not None and tok.type not in kw and not (expected & _VALUE_TERMS):
        d = _keyword_error(text, filename, w[0], w[1], kw_expected or list(kw.values()))
        before = re.sub(r"#.*", "", text[text.rfind("\n", 0, w[0]) + 1:w[0]]).split()
        if before and before[-1] not in kw.values() and "did you mean" not in d.message:
            d.message = (f"'{w[1]}' is not a keyword here; after a value comes the next condition or option "
                         f"(several values go in a list: {{ {before[-1]} {w[1]} }})")
        return d
    line, col = tok.line, tok.column
    shown = f"'{tok}'" if tok.type not in kw else f"keyword '{tok}'"
    if expected & _VALUE_TERMS and tok.type in kw:
        return Diagnostic(filename, line, col, "missing-value",
                          f"a value is missing before {shown}: {_expected_values(expected, _prev_word(text, off))}",
                          end_col=col + len(str(tok)) - 1, source_line=line_of(text, line))
    exp = ", ".join(sorted(_human(x) for x in expected)[:12])
    return Diagnostic(filename, line, col, "syntax", f"unexpected {shown}; expected {exp}",
                      end_col=col + max(1, len(str(tok))) - 1, source_line=line_of(text, line))


_VALUE_HINT = {
    "port": "a port number, a range (1024-65535), a comparison (<1024), any, a $macro or a { list }",
    "from": "an address, a prefix, a <table>, any, a $macro, a { list } (or port ...)",
    "to": "an address, a prefix, a <table>, any, a $macro, a { list } (or port ...)",
    "proto": "a protocol name or number, a $macro or a { list }",
    "app": "an application name, any, a $macro or a { list }",
    "category": "a category name, any, a $macro or a { list }",
    "host": "a \"glob\" (like \"*.example.com\"), a $macro or a { list }",
    "on": "a port name, a $macro or a { list }",
    "route": "a port name or a $macro",
    "balance": "a { list } of port names or a $macro",
    "vlan": "a VLAN id, a range, a $macro or a { list }",
    "length": "a length, a range (64-128), a comparison (>1000), a $macro or a { list }",
    "state": "a flow state (new, established, closing, closed, reset) or a { list }",
    "tagged": "a tag name or a { list }",
    "=": "a value or a { list }",
}


def _unclosed_brace(text: str, off: int) -> int | None:
    """Offset of the last '{' before ``off`` that has no '}' (comments and strings skipped)."""
    stack = []
    for m in re.finditer(r'#[^\n]*|"(?:[^"\\\n]|\\.)*"|[{}]', text[:off]):
        t = m.group(0)
        if t == "{":
            stack.append(m.start())
        elif t == "}" and stack:
            stack.pop()
    return stack[-1] if stack else None


def _expected_values(expected, prev: str = "") -> str:
    if prev in _VALUE_HINT:
        return _VALUE_HINT[prev]
    kinds = [_human(x) for x in sorted(expected & _VALUE_TERMS - {"LBRACE", "BANG", "CMP"})]
    if "_ANY" in expected:
        kinds = [k for k in kinds if k != "'any'"] + ["any"]
    extra = " or a { list }" if "LBRACE" in expected else ""
    return ", ".join(kinds) + extra


def _prev_word(text: str, off: int) -> str:
    seg = re.sub(r"#.*", "", text[text.rfind("\n", 0, off) + 1:off]).split()
    return seg[-1] if seg else ""


def parse(text: str, filename: str = "<rules>") -> Policy:
    """Parse rule text into a Policy; PolicyError with one Diagnostic on a syntax error."""
    try:
        tree = parser().parse(text)
    except UnexpectedInput as e:
        raise PolicyError([_syntax_diagnostic(e, text, filename)]) from None
    try:
        return _build(tree)
    except _Bad as b:
        t = b.tok
        if isinstance(t, Tree):
            p = _pos_tree(t)
            line, col, end = p.line, p.col, (p.end_col if p.end_line == p.line else p.col)
        else:
            line, col, end = t.line, t.column, t.column + len(str(t)) - 1
        raise PolicyError([Diagnostic(filename, line, col, b.cause, b.message, end_col=end,
                                      source_line=line_of(text, line))]) from None


def parse_file(path: str | Path) -> tuple[Policy, str]:
    """Read and parse a rules file; returns (policy, text). OSError if unreadable."""
    text = Path(path).read_text()
    return parse(text, str(path)), text
