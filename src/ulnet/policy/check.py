"""check -- what a parsed policy means, or every reason it means nothing.

NAME
    ulnet.policy.check -- resolve names, load tables, find errors and shadowed rules

SYNOPSIS
    checked = check(policy, text, filename, app_names=..., category_names=..., ports={"lan", "wan"})
    checked.rules          # [RRule]: conditions as sets, options resolved; the default last
    checked.diagnostics    # warnings (errors raise PolicyError, with the warnings too)

DESCRIPTION
    Macros are expanded (a macro may name other macros; cycles are errors),
    tables are read (inline or from a file beside the rules file, one
    address or prefix per word, # comments), every value is checked for its
    place (a port where a port goes, a prefix that is a prefix), protocol
    names and flow states are looked up, application and category names are
    checked against the detector's lists when they are given (when they are
    not, a warning says so and such conditions never match), and port names
    against the bound ports when those are given.

    A rule that an earlier terminal rule always decides first is reported as
    ``shadowed`` (a warning): the test is conservative (every condition of
    the earlier rule must contain the later rule's), so a warning is always
    right and some shadowed rules go unreported.

    Nothing here runs per packet; compile turns RRules into kernel arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ulnet.policy.ast import Item, MacroDef, Policy, Rule, Spec, TableDef, Pos
from ulnet.policy.errors import Diagnostic, PolicyError, line_of
from ulnet.policy.format import fmt_rule, fmt_item
from ulnet.policy.parse import _suggest
from ulnet.policy import sets as S

PROTOCOLS = {"icmp": 1, "igmp": 2, "ipip": 4, "tcp": 6, "egp": 8, "udp": 17, "ipv6": 41, "rsvp": 46, "gre": 47,
             "esp": 50, "ah": 51, "icmp6": 58, "ipv6-icmp": 58, "eigrp": 88, "ospf": 89, "pim": 103, "vrrp": 112,
             "l2tp": 115, "sctp": 132, "udplite": 136}
STATES = {"new": 0, "established": 1, "closing": 2, "closed": 3, "reset": 4}
TCP_FLAG_LETTERS = "FSRPAUEW"     # bit 0 .. bit 7 of the TCP flags byte
MAX_TAGS = 64
MAX_PORTS = 64
VLAN_MAX = 4095
LENGTH_MAX = (1 << 31) - 1


@dataclass
class NameSet:
    """app/category condition: mode 'any' (known, any value) or 'list'; ids are
    indices in the detector's list (-1 for names that could not be checked)."""
    mode: str
    ids: frozenset
    neg: bool
    names: tuple = ()


@dataclass
class RRule:
    """A rule with its meaning resolved (see the module doc)."""
    index: int
    line: int
    text: str
    action: str
    default: bool = False
    direction: str | None = None
    on: tuple | None = None
    af: int = 0
    proto: frozenset | None = None
    src: list | None = None          # normalized address intervals (after negation)
    dst: list | None = None
    sport: list | None = None        # normalized port intervals (after negation)
    dport: list | None = None
    app: NameSet | None = None
    category: NameSet | None = None
    host: tuple | None = None        # (patterns, neg)
    flags: tuple | None = None       # (value, mask)
    vlan: list | None = None
    length: list | None = None
    state: frozenset | None = None
    tagged: tuple | None = None      # (frozenset of tag names, neg)
    route: str | None = None
    balance: tuple | None = None
    police: object = None
    shape: object = None
    count: str | None = None
    tag: str | None = None
    capture: str | None = None
    log: bool = False
    positions: dict = field(default_factory=dict)
    ast: Rule | None = None

    @property
    def terminal(self) -> bool:
        return self.action != "match"

    @property
    def needs_app(self) -> bool:
        return self.app is not None or self.category is not None or self.host is not None


@dataclass
class Checked:
    rules: list                      # RRule, the default last (index len(rules)-1)
    diagnostics: list
    tables: dict
    tags: list
    ports_used: list
    has_app_rules: bool
    policy: Policy | None = None


class _Checker:
    def __init__(self, policy, text, filename, app_names, category_names, ports, base_dir):
        self.p = policy
        self.text = text
        self.file = filename
        self.apps = None if app_names is None else {n: i for i, n in enumerate(app_names)}
        self.cats = None if category_names is None else {n: i for i, n in enumerate(category_names)}
        self.ports = None if ports is None else set(ports)
        self.base = Path(base_dir) if base_dir is not None else Path(filename).resolve().parent
        self.diags: list[Diagnostic] = []
        self.macros: dict[str, MacroDef] = {}
        self.tables: dict[str, TableDef] = {}
        self.table_sets: dict[str, list] = {}
        self.tags: list[str] = []
        self.ports_used: list[str] = []
        self.warned_names = False

    # ---- diagnostics ----------------------------------------------------
    def err(self, pos: Pos, cause: str, msg: str, severity="error", file=None, text=None):
        file = file or self.file
        text = self.text if text is None else text
        end = pos.end_col if pos.end_line == pos.line else len(line_of(text, pos.line) or "")
        self.diags.append(Diagnostic(file, pos.line, pos.col, cause, msg, severity, end_col=end,
                                     source_line=line_of(text, pos.line)))

    # ---- macros -----------------------------------------------------------
    def expand(self, spec: Spec, seen=()) -> list[tuple[Item, Item | None]]:
        """Items of a spec with macros expanded: (item, the $macro item it came through)."""
        out = []
        for it in spec.items:
            if it.kind == "macro":
                m = self.macros.get(it.text)
                if m is None:
                    self.err(it.pos, "undefined-macro", f"${it.text} is not defined{_suggest(it.text, self.macros)}")
                    continue
                if it.text in seen:
                    self.err(it.pos, "macro-cycle", f"${it.text} refers to itself (through {' -> '.join(seen)})")
                    continue
                if m.value.neg:
                    self.err(it.pos, "wrong-type", f"${it.text} is negated in its definition: negate where it "
                                                   f"is used instead")
                    continue
                for sub, via in self.expand(m.value, seen + (it.text,)):
                    out.append((sub, via or it))
            else:
                out.append((it, None))
        return out

    def wrong(self, it: Item, via: Item | None, want: str):
        got = {"num": "a number", "range": "a range", "cmp": "a comparison", "address": "an address",
               "table": "a table", "name": "a name", "string": "a string", "any": "any"}[it.kind]
        if via is not None:
            self.err(via.pos, "wrong-type", f"${via.text} holds {got} '{fmt_item(it)}' (line {it.pos.line}), "
                                            f"here {want} is needed")
        else:
            self.err(it.pos, "wrong-type", f"{want} is needed here, not {got} '{fmt_item(it)}'")

    # ---- value kinds --------------------------------------------------------
    def addresses(self, spec: Spec | None):
        if spec is None:
            return None
        iv = []
        everything = False
        for it, via in self.expand(spec):
            if it.kind == "any":
                everything = True
            elif it.kind == "address":
                try:
                    a, b, _v = S.parse_prefix(it.text)
                    iv.append((a, b))
                except S.BadPrefix as e:
                    self.err(it.pos, "bad-prefix", f"'{it.text}': {e}")
            elif it.kind == "table":
                t = self.table(it)
                if t is not None:
                    iv.extend(t)
            else:
                self.wrong(it, via, "an address, a prefix, a <table> or any")
        if everything and not spec.neg and not spec.is_list and len(spec.items) == 1:
            return None      # plain "any": no condition
        s = [(0, S.ADDR_MAX)] if everything else S.normalize(iv)
        return S.complement(s, 0, S.ADDR_MAX) if spec.neg else s

    def table(self, it: Item):
        name = it.text
        if name in self.table_sets:
            return self.table_sets[name]
        d = self.tables.get(name)
        if d is None:
            self.err(it.pos, "undefined-table", f"<{name}> is not defined{_suggest(name, self.tables)}")
            return None
        self.table_sets[name] = []          # guards against a table naming itself
        iv = []
        if d.file is not None:
            iv = self.table_file(d)
        else:
            for x, via in self.expand(Spec(d.items, True)):
                if x.kind == "address":
                    try:
                        a, b, _ = S.parse_prefix(x.text)
                        iv.append((a, b))
                    except S.BadPrefix as e:
                        self.err(x.pos, "bad-prefix", f"'{x.text}': {e}")
                elif x.kind == "table":
                    t = self.table(x)
                    if t:
                        iv.extend(t)
                else:
                    self.wrong(x, via, "an address or a prefix")
        s = S.normalize(iv)
        self.table_sets[name] = s
        return s

    def table_file(self, d: TableDef):
        path = Path(d.file)
        if not path.is_absolute():
            path = self.base / path
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            self.err(d.pos, "table-file", f"<{d.name}>: cannot read {path}: {getattr(e, 'strerror', None) or e}")
            return []
        return load_table_text(text, str(path), self)

    def numbers(self, spec: Spec | None, domain_max: int, want: str, cause: str):
        if spec is None:
            return None
        iv = []
        everything = False
        for it, via in self.expand(spec):
            if it.kind in ("num", "range", "cmp", "any"):
                if it.kind == "any":
                    everything = True
                try:
                    iv.extend(S.number_ranges(it, domain_max))
                except ValueError as e:
                    self.err(it.pos, cause, f"'{fmt_item(it)}': {e}")
            else:
                self.wrong(it, via, want)
        if everything and not spec.neg and len(spec.items) == 1 and not spec.is_list:
            return None
        s = S.normalize(iv)
        return S.complement(s, 0, domain_max) if spec.neg else s

    def protocols(self, spec: Spec | None):
        if spec is None:
            return None
        out = set()
        for it, via in self.expand(spec):
            if it.kind == "num":
                if it.a > 255:
                    self.err(it.pos, "unknown-protocol", f"protocol number {it.a} is above 255")
                out.add(min(it.a, 255))
            elif it.kind == "name":
                n = PROTOCOLS.get(it.text.lower())
                if n is None:
                    self.err(it.pos, "unknown-protocol",
                             f"'{it.text}' is not a protocol ulnet knows{_suggest(it.text.lower(), PROTOCOLS)}; "
                             f"give its number instead")
                else:
                    out.add(n)
            elif it.kind == "any":
                if not spec.neg and len(spec.items) == 1:
                    return None
                out.update(range(256))
            else:
                self.wrong(it, via, "a protocol name or number")
        if spec.neg:
            out = set(range(256)) - out
        return frozenset(out)

    def names(self, spec: Spec | None, table: dict | None, what: str, cause: str):
        if spec is None:
            return None
        ids, names = set(), []
        mode = "list"
        for it, via in self.expand(spec):
            if it.kind == "any":
                mode = "any"
            elif it.kind in ("name", "string"):
                names.append(it.text)
                if table is None:
                    if not self.warned_names:
                        self.warned_names = True
                        self.err(it.pos, "unchecked-names",
                                 f"{what} names are not checked: the detector's registry (ulnet.inspect.registry) "
                                 f"is not available; app, category and host conditions never match",
                                 severity="warning")
                    ids.add(-1)
                elif it.text in table:
                    ids.add(table[it.text])
                else:
                    self.err(it.pos, cause, f"'{it.text}' is not a known {what}{_suggest(it.text, table)}")
            else:
                self.wrong(it, via, f"an {what} name" if what[0] in "aeiou" else f"a {what} name")
        if mode == "any" and (ids or names):
            self.err(spec.pos, "wrong-type", f"'any' and {what} names cannot go in one list")
        return NameSet(mode, frozenset(ids), spec.neg, tuple(names))

    def port_names(self, spec: Spec | None, want_one=False):
        if spec is None:
            return None
        out = []
        for it, via in self.expand(spec):
            if it.kind == "name":
                out.append(it.text)
                if it.text not in self.ports_used:
                    self.ports_used.append(it.text)
                if self.ports is not None and it.text not in self.ports:
                    where = via.pos if via is not None else it.pos
                    bound = ", ".join(sorted(self.ports)) or "none"
                    self.err(where, "unbound-port", f"port '{it.text}' is used but not bound (bound ports: {bound})"
                                                    f"{_suggest(it.text, self.ports)}")
            else:
                self.wrong(it, via, "a port name")
        if spec.neg:
            self.err(spec.pos, "wrong-type", "port names cannot be negated")
        if want_one and (len(out) != 1 or spec.is_list):
            self.err(spec.pos, "wrong-type", "route takes one port (balance takes a list)")
        return tuple(out)

    # ---- rules ----------------------------------------------------------------
    def rule(self, r: Rule, index: int) -> RRule:
        pos = r.positions
        rr = RRule(index, r.pos.line, fmt_rule(r), r.action, r.default, positions=pos, ast=r)
        if r.default:
            bad = [c for c in ("direction", "on", "af", "proto", "src", "dst", "app", "category", "host", "flags",
                               "vlan", "length", "state", "tagged") if getattr(r, c) not in (None, False)]
            if bad:
                self.err(pos.get(bad[0], r.pos), "bad-default", "default takes no conditions "
                                                                "(write a rule above it instead)")
            if r.action == "match":
                self.err(r.pos, "bad-default", "default must be pass, block or reject")
        rr.direction = r.direction
        rr.on = self.port_names(r.on)
        rr.af = {"inet": 4, "inet6": 6}.get(r.af, 0)
        rr.proto = self.protocols(r.proto)
        if r.src is not None:
            rr.src = self.addresses(r.src.addr)
            rr.sport = self.numbers(r.src.port, S.PORT_MAX, "a port number or range", "bad-port")
        if r.dst is not None:
            rr.dst = self.addresses(r.dst.addr)
            rr.dport = self.numbers(r.dst.port, S.PORT_MAX, "a port number or range", "bad-port")
        rr.app = self.names(r.app, self.apps, "application", "unknown-application")
        rr.category = self.names(r.category, self.cats, "category", "unknown-category")
        if r.host is not None:
            pats = []
            for it, via in self.expand(r.host):
                if it.kind in ("string", "name"):
                    pats.append(it.text.lower())
                else:
                    self.wrong(it, via, 'a host "glob"')
            rr.host = (tuple(pats), r.host.neg)
        if r.flags is not None and r.flags != "any":
            rr.flags = self.flags(r.flags, pos.get("flags", r.pos))
        rr.vlan = self.numbers(r.vlan, VLAN_MAX, "a VLAN id or range", "bad-number")
        rr.length = self.numbers(r.length, LENGTH_MAX, "a length or range", "bad-number")
        if r.state is not None:
            st = set()
            for it, via in self.expand(r.state):
                if it.kind == "name" and it.text in STATES:
                    st.add(STATES[it.text])
                elif it.kind == "name":
                    self.err(it.pos, "unknown-state", f"'{it.text}' is not a flow state{_suggest(it.text, STATES)}; "
                                                      f"states are {', '.join(STATES)}")
                else:
                    self.wrong(it, via, "a flow state")
            rr.state = frozenset(set(range(len(STATES))) - st if r.state.neg else st)
        if r.tagged is not None:
            names = []
            for it, via in self.expand(r.tagged):
                if it.kind == "name":
                    names.append(it.text)
                else:
                    self.wrong(it, via, "a tag name")
            rr.tagged = (frozenset(names), r.tagged.neg)
        if r.route is not None and r.balance is not None:
            self.err(pos.get("balance", r.pos), "conflict", "a rule sends a flow with route or with balance, not both")
        if r.route is not None:
            ps = self.port_names(r.route, want_one=True)
            rr.route = ps[0] if ps else None
        if r.balance is not None:
            rr.balance = self.port_names(r.balance)
            if rr.balance is not None and len(set(rr.balance)) != len(rr.balance):
                self.err(r.balance.pos, "wrong-type", "a port appears twice in balance")
        if r.action in ("block", "reject"):
            for o in ("route", "balance", "police", "shape"):
                if getattr(r, o) is not None:
                    self.err(pos.get(o, r.pos), "conflict", f"{o} has no effect on a {r.action} rule "
                                                            f"(its packets are dropped)")
        rr.police, rr.shape = r.police, r.shape
        rr.count, rr.tag, rr.capture, rr.log = r.count, r.tag, r.capture, r.log
        if r.tag is not None and r.tag not in self.tags:
            self.tags.append(r.tag)
        return rr

    def flags(self, text: str, pos: Pos):
        v, _, m = text.partition("/")
        bad = [c for c in v + m if c not in TCP_FLAG_LETTERS]
        if bad or (_ and not m):
            self.err(pos, "bad-flags", f"'{text}': TCP flags are letters of {TCP_FLAG_LETTERS} "
                                       f"(FIN SYN RST PSH ACK URG ECE CWR), as FLAGS or FLAGS/MASK like S/SA")
            return None
        val = sum(1 << TCP_FLAG_LETTERS.index(c) for c in set(v))
        mask = sum(1 << TCP_FLAG_LETTERS.index(c) for c in set(m)) if _ else 0xFF
        if val & ~mask:
            self.err(pos, "bad-flags", f"'{text}': flags {v} are not all inside the mask {m}: never matches")
        return (val, mask)

    def run(self) -> Checked:
        default = None
        for s in self.p.statements:
            if isinstance(s, MacroDef):
                if s.name in self.macros:
                    self.err(s.pos, "duplicate-definition",
                             f"macro {s.name} is defined twice (first at line {self.macros[s.name].pos.line})")
                self.macros.setdefault(s.name, s)
            elif isinstance(s, TableDef):
                if s.name in self.tables:
                    self.err(s.pos, "duplicate-definition",
                             f"table <{s.name}> is defined twice (first at line {self.tables[s.name].pos.line})")
                self.tables.setdefault(s.name, s)
            elif isinstance(s, Rule) and s.default:
                if default is not None:
                    self.err(s.pos, "duplicate-definition", f"default is given twice (first at line {default.pos.line})")
                else:
                    default = s
        for name, m in self.macros.items():       # report problems in unused macros too
            self.expand(m.value, (name,))
        for t in self.tables.values():
            self.table(Item("table", t.name, pos=t.pos))
        rules = []
        for s in self.p.statements:
            if isinstance(s, Rule) and not s.default:
                rules.append(self.rule(s, len(rules)))
        if default is None:
            default = Rule("pass", default=True)
        d = self.rule(default, len(rules))
        if default.pos.line == 0:
            d.text = "default pass (implicit)"
        rules.append(d)
        for rr in rules:
            if rr.tagged is not None:
                for t in sorted(rr.tagged[0] - set(self.tags)):
                    self.err(rr.positions.get("tagged", Pos(rr.line, 1, rr.line, 1)), "undefined-tag",
                             f"tag '{t}' is never set by a rule (tag {t}){_suggest(t, self.tags)}")
        if len(self.tags) > MAX_TAGS:
            self.err(Pos(rules[0].line, 1, rules[0].line, 1), "conflict", f"more than {MAX_TAGS} tags")
        if not any(d.severity == "error" for d in self.diags):
            shadow_warnings(rules, self)
        self.diags.sort(key=lambda d: (d.file != self.file, d.file, d.line, d.col))
        has_app = any(r.needs_app for r in rules)
        return Checked(rules, self.diags, self.table_sets, self.tags, self.ports_used, has_app, self.p)


def load_table_text(text: str, filename: str, checker: _Checker) -> list:
    """Addresses and prefixes of a table file, one or more per line, # comments."""
    iv = []
    parse = S.parse_prefix
    for ln, line in enumerate(text.splitlines(), 1):
        body = line.split("#", 1)[0]
        if not body.strip():
            continue
        col = 0
        for w in body.split():
            col = body.index(w, col)
            try:
                a, b, _ = parse(w)
                iv.append((a, b))
            except S.BadPrefix as e:
                checker.err(Pos(ln, col + 1, ln, col + len(w)), "bad-prefix", f"'{w}': {e}", file=filename, text=text)
            col += len(w)
    return iv


# ---- shadowed rules --------------------------------------------------------------

_FIELDS = ("direction", "on", "af", "proto", "src", "dst", "sport", "dport", "app", "category", "host", "flags",
           "vlan", "length", "state", "tagged")


def _present(r: RRule) -> int:
    m = 0
    for k, f in enumerate(_FIELDS):
        v = getattr(r, f)
        if v is not None and v != 0:
            m |= 1 << k
    return m


def _field_covers(f: str, a, b) -> bool:
    """Condition value ``a`` (earlier rule) contains ``b`` (later rule)."""
    if f in ("src", "dst", "sport", "dport", "vlan", "length"):
        return S.is_subset(b, a)
    if f in ("proto", "state"):
        return b <= a
    if f in ("app", "category"):
        if a.mode == "any" and not a.neg:
            return True
        if a.mode == "list" and b.mode == "list" and a.neg == b.neg and -1 not in a.ids | b.ids:
            return b.ids <= a.ids if not a.neg else a.ids <= b.ids
        return False
    if f == "host":
        return (not a[1] and "*" in a[0]) or (a[1] == b[1] and (set(b[0]) <= set(a[0]) if not a[1]
                                                                 else set(a[0]) <= set(b[0])))
    if f == "on":
        return set(b) <= set(a)
    return a == b


def shadow_warnings(rules: list, chk: _Checker) -> None:
    pres = [_present(r) for r in rules]
    earlier: list[int] = []
    for j, rj in enumerate(rules[:-1]):
        for i in earlier:
            if pres[i] & ~pres[j]:
                continue
            ri = rules[i]
            ok = True
            m = pres[i]
            k = 0
            while m:
                if m & 1 and not _field_covers(_FIELDS[k], getattr(ri, _FIELDS[k]), getattr(rj, _FIELDS[k])):
                    ok = False
                    break
                m >>= 1
                k += 1
            if ok:
                chk.err(rj.ast.pos, "shadowed", f"this rule never matches: rule at line {ri.line} "
                                                f"('{ri.text}') decides every flow it would", severity="warning")
                break
        if rj.terminal:
            earlier.append(j)


def check(policy: Policy, text: str, filename: str = "<rules>", app_names=None, category_names=None,
          ports=None, base_dir=None) -> Checked:
    """Resolve and check a parsed policy. Raises PolicyError (with every
    error and warning) if anything is wrong; returns Checked otherwise."""
    c = _Checker(policy, text, filename, app_names, category_names, ports, base_dir).run()
    if any(d.severity == "error" for d in c.diagnostics):
        raise PolicyError(c.diagnostics)
    return c


def load(path, app_names=None, category_names=None, ports=None) -> Checked:
    """Parse and check a rules file (PolicyError on any error; OSError if unreadable)."""
    from ulnet.policy.parse import parse
    text = Path(path).read_text()
    p = parse(text, str(path))
    return check(p, text, str(path), app_names, category_names, ports)
