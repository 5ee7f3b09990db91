"""The rule language: grammar, parse, canonical form, check, errors (step 1 of issue 5).

Application names here are test data passed as parameters (the checker takes
the detector's lists as arguments); they are not a registry.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from ulnet.policy.ast import Endpoint, Item, Rate, Rule, Spec, Policy
from ulnet.policy.check import check
from ulnet.policy.errors import CAUSES, PolicyError
from ulnet.policy.format import format_policy
from ulnet.policy.parse import parse, GRAMMAR_PATH

from conftest import ROOT, run_python, run_ulnet

APPS = ["Unknown", "DNS", "HTTP", "TLS", "QUIC", "NTP", "BitTorrent", "SSH"]
CATS = ["Unspecified", "Web", "Network", "Download-FileTransfer-FileSharing"]
DOC = ROOT / "docs" / "rules.md"
MUST = ["default pass", "block proto icmp", "block from 10.0.0.0/8 to any port 22", "pass app DNS",
        "block app BitTorrent", "pass proto tcp to port 80 route wan"]


def ok(text, ports=None, base_dir="/tmp"):
    p = parse(text, "t.rules")
    return p, check(p, text, "t.rules", APPS, CATS, ports, base_dir=base_dir)


def errors_of(text, ports=None, base_dir="/tmp", apps=APPS):
    with pytest.raises(PolicyError) as ei:
        p = parse(text, "t.rules")
        check(p, text, "t.rules", apps, CATS, ports, base_dir=base_dir)
    return ei.value.errors


def doc_examples():
    return re.findall(r"```rules\n(.*?)```", DOC.read_text(), re.S)


def regress_rules():
    return sorted((ROOT / "tests" / "regress" / "policy").glob("*/rules.conf"))


# ---- must-have lines, docs, round trip -----------------------------------------------

@pytest.mark.parametrize("line", MUST)
def test_required_lines_are_valid(line):
    p, c = ok(line + "\n", ports={"wan", "lan"})
    assert len(p.statements) == 1
    assert parse(line) == p          # without the newline too


def test_docs_carry_the_grammar_verbatim():
    text = DOC.read_text()
    m = re.search(r"## GRAMMAR.*?```lark\n(.*?)```", text, re.S)
    assert m and m.group(1) == GRAMMAR_PATH.read_text()


def test_docs_list_every_cause():
    text = DOC.read_text()
    for cause in CAUSES:
        assert f"`{cause}`" in text, cause


@pytest.mark.parametrize("i", range(len(doc_examples())))
def test_doc_examples_round_trip_and_check(i):
    text = doc_examples()[i]
    p, c = ok(text)
    canon = format_policy(p)
    assert parse(canon) == p
    assert format_policy(parse(canon)) == canon       # canonical is a fixed point
    assert not [d for d in c.diagnostics if d.severity == "error"]


def test_regress_rules_round_trip():
    files = regress_rules()
    assert files, "no regress cases"
    n = 0
    for f in files:
        text = f.read_text()
        try:
            p = parse(text, str(f))
        except PolicyError:
            continue                 # error cases: their point is not to parse
        assert parse(format_policy(p)) == p, f
        n += 1
    assert n > 0


def test_canonical_form_normalises():
    p = parse("pass  in on lan to port{22,80} from 10.0.0.0/8 police 2000kbit burst 16000B per rule count by rule\n")
    assert format_policy(p) == "pass in on lan from 10.0.0.0/8 to port { 22 80 } police 2Mbit burst 16kB count\n"
    assert parse("pass police 1.5Mbit").statements[0].police.value == 1_500_000
    assert parse("pass shape 10kpps queue 0.5s per flow").statements[0].shape == Rate(10_000, "pps", 0, 500_000_000, True)


def test_comments_continuations_and_lists_over_lines():
    text = "# head\n\nx = { 22 \\\n 80 }   # tail\ntable <t> {\n 10.0.0.0/8, # a\n 192.168.0.0/16\n}\npass to <t> port $x\n# end"
    p, _ = ok(text)
    assert format_policy(p) == "x = { 22 80 }\ntable <t> { 10.0.0.0/8 192.168.0.0/16 }\npass to <t> port $x\n"


def test_keywords_are_whole_words():
    # "inon" must not read as "in on"
    (e,) = errors_of("pass inon lan\n")
    assert e.cause == "unknown-keyword" and (e.line, e.col) == (1, 6)


# ---- hypothesis: random policies survive format -> parse ------------------------------------

_names = st.sampled_from(["lan", "wan", "wan1", "dmz", "x_1", "a-b"])
_apps = st.sampled_from(APPS)
_num = st.integers(0, 65535)


def _spec(items, allow_neg=True, max_size=3):
    return st.builds(lambda its, lst, neg: Spec(tuple(its[:1]) if not lst else tuple(its), lst, neg),
                     st.lists(items, min_size=1, max_size=max_size), st.booleans(),
                     st.booleans() if allow_neg else st.just(False))


_port_items = st.one_of(
    st.builds(lambda a: Item("num", str(a), a=a), _num),
    st.builds(lambda a, b: Item("range", f"{a}-{b}", a=a, b=b), _num, _num),
    st.builds(lambda op, a: Item("cmp", f"{op}{a}", a=a, op=op), st.sampled_from(["<", "<=", ">", ">=", "!="]), _num),
    st.builds(lambda m: Item("macro", m), st.sampled_from(["ssh", "web"])),
)
_addr_items = st.one_of(
    st.sampled_from([Item("address", t) for t in ("10.0.0.0/8", "192.168.1.1", "fd00::/8", "::1", "2001:db8::/32")]),
    st.builds(lambda n: Item("table", n), st.sampled_from(["lan", "bad"])),
    st.just(Item("any", "any")),
)
_rate = st.builds(Rate, st.integers(1, 10**10), st.sampled_from(["bit", "pps"]), st.integers(0, 10**6),
                  st.sampled_from([0, 1000, 5_000_000, 10**9]), st.booleans())


@st.composite
def rules(draw):
    kw = {}
    action = draw(st.sampled_from(["pass", "block", "reject", "match"]))
    if draw(st.booleans()):
        kw["direction"] = draw(st.sampled_from(["in", "out"]))
    if draw(st.booleans()):
        kw["on"] = draw(_spec(st.builds(lambda n: Item("name", n), _names), allow_neg=False))
    if draw(st.booleans()):
        kw["af"] = draw(st.sampled_from(["inet", "inet6"]))
    if draw(st.booleans()):
        kw["proto"] = draw(_spec(st.sampled_from([Item("name", "tcp"), Item("name", "udp"), Item("num", "47", a=47)])))
    for side in ("src", "dst"):
        if draw(st.booleans()):
            a = draw(st.one_of(st.none(), _spec(_addr_items)))
            p = draw(st.one_of(st.none(), _spec(_port_items)))
            if a is not None or p is not None:
                kw[side] = Endpoint(a, p)
    if draw(st.booleans()):
        kw["app"] = draw(_spec(st.builds(lambda n: Item("name", n), _apps)))
    if draw(st.booleans()):
        kw["host"] = draw(_spec(st.sampled_from([Item("string", "*.example.com"), Item("string", 'q"uote\\')])))
    if draw(st.booleans()):
        kw["flags"] = draw(st.sampled_from(["S/SA", "any", "FA", "R/R"]))
    if draw(st.booleans()):
        kw["vlan"] = draw(_spec(_port_items))
    if draw(st.booleans()):
        kw["length"] = draw(_spec(_port_items))
    if draw(st.booleans()):
        kw["state"] = draw(_spec(st.sampled_from([Item("name", "new"), Item("name", "established")])))
    if draw(st.booleans()):
        kw["route"] = Spec((Item("name", draw(_names)),))
    elif draw(st.booleans()):
        kw["balance"] = draw(_spec(st.builds(lambda n: Item("name", n), _names), allow_neg=False))
    if draw(st.booleans()):
        kw["police"] = draw(_rate).__class__(**{**draw(_rate).__dict__, "queue_ns": 0})
    if draw(st.booleans()):
        kw["shape"] = draw(_rate)
    if draw(st.booleans()):
        kw["count"] = draw(st.sampled_from(["rule", "app", "host"]))
    if draw(st.booleans()):
        kw["tag"] = draw(_names)
    if draw(st.booleans()):
        kw["capture"] = draw(st.sampled_from(["x.pcap", "dir/a b.pcap", 'q"x']))
    kw["log"] = draw(st.booleans())
    return Rule(action, **kw)


@settings(max_examples=300, deadline=None)
@given(st.lists(rules(), min_size=1, max_size=5))
def test_random_policies_round_trip(rs):
    p = Policy(tuple(rs))
    text = format_policy(p)
    assert parse(text) == p, text


# ---- errors: position, caret, named cause ---------------------------------------------------

CASES = [
    # (text, cause, line, col, substring of the message)
    ("pass prot tcp\n", "unknown-keyword", 1, 6, "did you mean 'proto'"),
    ("default pass\nblok proto icmp\n", "unknown-keyword", 2, 1, "did you mean 'block'"),
    ("pass proto tcp to port 80 rout wan\n", "unknown-keyword", 1, 27, "did you mean 'route'"),
    ("pass app Bittorent\n", "unknown-application", 1, 10, "did you mean 'BitTorrent'"),
    ("pass category Webb\n", "unknown-category", 1, 15, "did you mean 'Web'"),
    ("block from 10.0.0.0/33\n", "bad-prefix", 1, 12, "above 32"),
    ("block from 10.0.0.256\n", "bad-prefix", 1, 12, "0-255"),
    ("block to fd00::zz/8\n", "bad-prefix", 1, 10, "IPv6"),
    ("block from <nope>\n", "undefined-table", 1, 12, "<nope>"),
    ("block to port $ssh\n", "undefined-macro", 1, 15, "$ssh"),
    ("pass route wan\n", "unbound-port", 1, 12, "wan"),
    ("pass to port 70000\n", "bad-port", 1, 14, "65535"),
    ("pass to port 90-80\n", "bad-port", 1, 14, "backwards"),
    ("pass proto tcpp\n", "unknown-protocol", 1, 12, "did you mean 'tcp'"),
    ("pass flags S/QA\n", "bad-flags", 1, 6, "FSRPAUEW"),
    ("pass state neww\n", "unknown-state", 1, 12, "did you mean 'new'"),
    ("x = 10.0.0.1\npass to port $x\n", "wrong-type", 2, 14, "holds an address"),
    ("pass to port 10.0.0.1\n", "wrong-type", 1, 14, "port"),
    ("table <t> { 1.2.3.4 }\ntable <t> { 1.2.3.5 }\n", "duplicate-definition", 2, 1, "first at line 1"),
    ("default pass\ndefault block\n", "duplicate-definition", 2, 1, "first at line 1"),
    ("pass proto tcp proto udp\n", "duplicate-clause", 1, 16, "twice"),
    ("a = $b\nb = $a\npass to port $a\n", "macro-cycle", 1, 5, "itself"),
    ("table <t> file \"/nonexistent/x.txt\"\nblock from <t>\n", "table-file", 1, 1, "cannot read"),
    ("default pass from 10.0.0.1\n", "bad-default", 1, 14, "no conditions"),
    ("default match\n", "bad-default", 1, 1, "pass, block or reject"),
    ("pass route lan balance { lan wan }\n", "conflict", 1, 16, "not both"),
    ("block route lan\n", "conflict", 1, 7, "no effect"),
    ("pass to any port\n", "missing-value", 1, 17, "'port' needs a value"),
    ("pass proto { tcp udp\n", "syntax", 1, 12, "not closed"),
    ("pass host \"x.com\n", "unterminated-string", 1, 11, "closing quote"),
    ("pass proto tcp %\n", "unexpected-character", 1, 16, "'%'"),
    ("pass police 2mbit\n", "bad-rate", 1, 13, "Mbit"),
    ("pass police 2Mbps\n", "bad-rate", 1, 13, "ambiguous"),
    ("pass shape 2Mbit burst 10p\n", "bad-size", 1, 24, "bytes"),
    ("pass shape 2Mbit queue 10m\n", "bad-duration", 1, 24, "ms"),
    ("pass count by apps\n", "bad-option", 1, 15, "by app"),
    ("pass police 1Mbit per flows\n", "bad-option", 1, 23, "per flow"),
    ("pass tagged x\n", "undefined-tag", 1, 6, "never set"),
    ("pass vlan 4096\n", "bad-number", 1, 11, "4095"),
]


@pytest.mark.parametrize("text,cause,line,col,msg", CASES, ids=[c[1] + "-" + str(i) for i, c in enumerate(CASES)])
def test_error_position_and_cause(text, cause, line, col, msg):
    errs = errors_of(text, ports={"lan"})
    e = errs[0]
    assert (e.cause, e.line, e.col) == (cause, line, col), e.render()
    assert msg in e.message, e.render()
    out = e.render().splitlines()
    assert out[0].startswith(f"t.rules:{line}:{col}: error: {cause}: ")
    assert out[1] == "    " + text.splitlines()[line - 1]
    assert out[2].index("^") == 4 + col - 1


def test_every_parse_and_check_cause_has_a_case():
    covered = {c[1] for c in CASES} | {"shadowed", "unchecked-names", "ignored-option"}
    assert set(CAUSES) <= covered, set(CAUSES) - covered


@pytest.mark.parametrize("n", [1, 2, 7, 30])
def test_error_on_line_n_reports_line_n(n):
    good = ["pass proto tcp to port 80 route wan", "block from 10.0.0.0/8 to any port 22", "pass app DNS",
            "# a comment", "", "match proto icmp count"]
    lines = [good[i % len(good)] for i in range(n - 1)]
    for bad, cause in (("block from 10.0.0.0/40", "bad-prefix"), ("pass prot tcp", "unknown-keyword"),
                       ("pass app Nope", "unknown-application"), ("pass to port", "missing-value"),
                       ("pass route nowhere", "unbound-port")):
        text = "\n".join(lines + [bad, "default block"]) + "\n"
        errs = errors_of(text, ports={"wan"})
        assert (errs[0].line, errs[0].cause) == (n, cause), errs[0].render()


def test_all_errors_of_meaning_reported_together():
    errs = errors_of("pass app Nope\nblock from 1.2.3.4/99\nblock from <t>\n")
    assert [(e.line, e.cause) for e in errs] == [(1, "unknown-application"), (2, "bad-prefix"), (3, "undefined-table")]


def test_table_file_errors_name_the_table_file(tmp_path):
    (tmp_path / "bl.txt").write_text("# blocklist\n10.0.0.0/8 192.168.0.0/16\n\n  203.0.113.0/99  # bad\n")
    errs = errors_of('table <bl> file "bl.txt"\nblock from <bl>\n', base_dir=tmp_path)
    e = errs[0]
    assert (e.file, e.line, e.col, e.cause) == (str(tmp_path / "bl.txt"), 4, 3, "bad-prefix")
    assert e.render().splitlines()[1] == "      203.0.113.0/99  # bad"


def test_table_file_loads(tmp_path):
    (tmp_path / "bl.txt").write_text("10.0.0.0/8\n10.1.0.0/16\n2001:db8::/32 # x\n")
    _, c = ok('table <bl> file "bl.txt"\nblock from <bl>\n', base_dir=tmp_path)
    assert len(c.rules[0].src) == 2           # merged: 10/8 contains 10.1/16


def test_unchecked_names_warn_and_never_match():
    p = parse("pass app DNS\n")
    c = check(p, "pass app DNS\n", "t", None, None)
    assert [d.cause for d in c.diagnostics] == ["unchecked-names"]
    assert c.rules[0].app.ids == frozenset({-1})


# ---- shadowed rules --------------------------------------------------------------------------

@pytest.mark.parametrize("text,shadowed_lines", [
    ("block proto tcp\nblock proto tcp to port 80\n", [2]),
    ("pass\nblock from 1.2.3.4\n", [2]),
    ("table <t> { 10.0.0.0/8 }\nblock from <t>\npass from 10.1.0.0/16 to port 22\n", [3]),
    ("block to port 1-1000\npass to port { 22 80 }\npass to port 22-1001\n", [2]),
    ("pass app any\nblock app DNS\n", [2]),
    ("block proto tcp\nmatch proto tcp count\n", [2]),
    # not shadowed
    ("match proto tcp\nblock proto tcp to port 80\n", []),
    ("block proto tcp to port 80\nblock proto tcp\n", []),
    ("block from !10.0.0.0/8\npass from 10.1.0.0/16\n", []),
    ("block from !10.0.0.0/8\npass from 11.0.0.0/8\n", [2]),
    ("block app DNS\npass proto udp\n", []),
])
def test_shadowed_rules_warn(text, shadowed_lines):
    _, c = ok(text)
    got = [d.line for d in c.diagnostics if d.cause == "shadowed"]
    assert got == shadowed_lines
    assert all(d.severity == "warning" for d in c.diagnostics)


# ---- the command ----------------------------------------------------------------------------

def test_check_command(tmp_path):
    f = tmp_path / "r.rules"
    f.write_text("\n".join(MUST) + "\n")
    names = tmp_path / "apps.txt"
    names.write_text("\n".join(APPS) + "\n")
    p = run_ulnet("check", f, "-v", "--port", "wan", "--app-names", names)
    assert p.returncode == 0, p.stderr
    canon = p.stdout.decode()
    assert parse(canon) == parse(f.read_text())
    g = tmp_path / "canon.rules"
    g.write_text(canon)
    p2 = run_ulnet("check", g, "-v", "--app-names", names)
    assert p2.returncode == 0 and p2.stdout.decode() == canon


def test_check_command_errors(tmp_path):
    f = tmp_path / "r.rules"
    f.write_text("default block\npass proto tcp to port 80 route wan\nblock from 10.0.0.0/33\n")
    p = run_ulnet("check", f, "--port", "lan")
    assert p.returncode == 1
    err = p.stderr.decode()
    assert f"{f}:2:33: error: unbound-port:" in err
    assert f"{f}:3:12: error: bad-prefix:" in err
    assert "2 errors: nothing applied" in err
    assert p.stdout == b""
    assert run_ulnet("check", tmp_path / "missing.rules").returncode == 2


def test_rules_parser_is_loaded_from_its_cache_and_rebuilt_when_bad():
    """The analysed grammar is kept (__pycache__ or the user's cache): a
    later process loads it instead of building the LALR tables again; a
    file that cannot be read is rebuilt without a word."""
    from ulnet.policy.parse import _cache_file
    path = _cache_file()
    assert path, "no writable cache directory"
    code = """
import logging, sys
from lark import logger
logger.setLevel(logging.DEBUG)
from ulnet.policy.parse import parse
p = parse("pass proto tcp to port 80\\n", "t.rules")
print("RULES", len(p.rules), file=sys.stderr)
"""
    first = run_python(code)
    assert "RULES 1" in first.stderr, first.stderr
    again = run_python(code)
    assert "Loading grammar from cache" in again.stderr and "RULES 1" in again.stderr, again.stderr
    with open(path, "wb") as f:
        f.write(b"not a cache")
    rebuilt = run_python(code.replace("logging.DEBUG", "logging.CRITICAL"))
    assert rebuilt.returncode == 0 and rebuilt.stderr.strip() == "RULES 1", rebuilt.stderr
    with open(path, "rb") as f:
        assert len(f.readline().strip()) == 64      # lark's digest line: a cache again
    assert "Loading grammar from cache" in run_python(code).stderr


@pytest.mark.parametrize("argv", [["check", "samples/sample.rules"], ["apps"]])
def test_registry_commands_start_without_numba(argv):
    """ulnet check and ulnet apps need the registry, not the inspection
    kernels: they do not load numba (0.3-0.5 s of imports)."""
    out = run_python(f"""
import sys
from ulnet.cli.main import main
rc = main({argv!r})
print("RESULT", rc, "numba" in sys.modules, file=sys.stderr)
""")
    rc, loaded = out.stderr.split("RESULT")[-1].split()
    assert (rc, loaded) == ("0", "False"), out.stderr


@settings(max_examples=400, deadline=None)
@given(whole=st.integers(0, 10**7), frac=st.text("0123456789", max_size=7),
       unit=st.sampled_from(["bit", "kbit", "Mbit", "Gbit", "pps", "kpps", "Mpps"]))
def test_rate_quantities_are_exact(whole, frac, unit):
    """Rates, bursts and times are read exactly (no floating point): a
    quantity is accepted when it is a whole, positive number of the base
    unit, as exact rational arithmetic (fractions.Fraction) says."""
    from fractions import Fraction
    from lark import Token
    from ulnet.policy import parse as P
    text = f"{whole}.{frac}" if frac else str(whole)
    ref = Fraction(text) * P.RATE_UNITS[unit][1]
    try:
        got = P.parse_rate(Token("RATE", text + unit))
    except P._Bad:
        assert ref.denominator != 1 or ref <= 0
    else:
        assert ref.denominator == 1 and ref > 0 and got == (int(ref), P.RATE_UNITS[unit][0])
    ref_t = Fraction(text) * P.TIME_UNITS["us"]
    try:
        assert P.parse_duration(Token("DURATION", text + "us")) == ref_t
    except P._Bad:
        assert ref_t.denominator != 1 or ref_t <= 0
