"""ast -- the rule language as plain, comparable values.

What lives here: the nodes ``parse`` builds and ``format`` prints. Nodes are
frozen dataclasses; positions (``pos``) are carried for error messages but
excluded from equality, so ``parse(format(p)) == p`` compares meaning and
spelling, not layout. Nothing here knows the syntax (that is grammar.lark)
or what names mean (that is check).

Normalisations made when the AST is built (so that the canonical form
round-trips): ``count by rule`` is ``count``; ``per rule`` is the default
(per_flow False); rates are held in base units (bit/s or packets/s), sizes
in bytes or packets, durations in nanoseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Pos:
    """1-based line and column of the first character, and of the end."""
    line: int
    col: int
    end_line: int
    end_col: int


NOPOS = Pos(0, 0, 0, 0)


def _pos():
    return field(default=NOPOS, compare=False, repr=False)


@dataclass(frozen=True)
class Item:
    """One value. kind: num, range, cmp, address, table, macro, name, string, any.
    ``text`` is the item as written (the name for table/macro without <>/$,
    the unescaped value for string); num/range/cmp hold ``a`` (and ``b``, or
    the operator in ``op``)."""
    kind: str
    text: str = ""
    a: int = 0
    b: int = 0
    op: str = ""
    pos: Pos = _pos()


@dataclass(frozen=True)
class Spec:
    """A condition's value: items (one, or a { list }), optionally negated."""
    items: tuple[Item, ...]
    is_list: bool = False
    neg: bool = False
    pos: Pos = _pos()


@dataclass(frozen=True)
class Endpoint:
    """from/to: an address spec, a port spec, or both."""
    addr: Spec | None = None
    port: Spec | None = None
    pos: Pos = _pos()


@dataclass(frozen=True)
class Rate:
    """police/shape RATE [burst SIZE] [queue TIME] [per flow].
    unit 'bit' (value in bit/s) or 'pps' (packets/s); burst in bytes for
    bit rates and packets for pps (0: the default); queue in ns (0: default)."""
    value: int
    unit: str
    burst: int = 0
    queue_ns: int = 0
    per_flow: bool = False
    pos: Pos = _pos()


@dataclass(frozen=True)
class Rule:
    """A rule (``default`` True for the default statement). Conditions and
    options are None when absent. ``positions`` maps clause name -> Pos."""
    action: str
    default: bool = False
    direction: str | None = None
    on: Spec | None = None
    af: str | None = None
    proto: Spec | None = None
    src: Endpoint | None = None
    dst: Endpoint | None = None
    app: Spec | None = None
    category: Spec | None = None
    host: Spec | None = None
    flags: str | None = None         # "S/SA", "any"
    vlan: Spec | None = None
    length: Spec | None = None
    state: Spec | None = None
    tagged: Spec | None = None
    route: Spec | None = None
    balance: Spec | None = None
    police: Rate | None = None
    shape: Rate | None = None
    count: str | None = None         # None, "rule", "app", "host"
    tag: str | None = None
    capture: str | None = None
    log: bool = False
    pos: Pos = _pos()
    positions: dict = field(default_factory=dict, compare=False, repr=False, hash=False)


CONDITIONS = ("direction", "on", "af", "proto", "src", "dst", "app", "category", "host", "flags", "vlan",
              "length", "state", "tagged")
OPTIONS = ("route", "balance", "police", "shape", "count", "tag", "capture", "log")


@dataclass(frozen=True)
class TableDef:
    """table <name> { items } or table <name> file "path"."""
    name: str
    items: tuple[Item, ...] = ()
    file: str | None = None
    pos: Pos = _pos()


@dataclass(frozen=True)
class MacroDef:
    """name = value (one item or a list)."""
    name: str
    value: Spec = None
    pos: Pos = _pos()


@dataclass(frozen=True)
class Policy:
    """The statements of a rules file, in order."""
    statements: tuple = ()

    @property
    def rules(self) -> list[Rule]:
        return [s for s in self.statements if isinstance(s, Rule) and not s.default]

    @property
    def default(self) -> Rule | None:
        for s in self.statements:
            if isinstance(s, Rule) and s.default:
                return s
        return None
