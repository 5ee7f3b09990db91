"""ulnet check -- parse and check a rules file without running it.

SYNOPSIS
    ulnet check RULES [-v] [--port NAME ...]

DESCRIPTION
    Reads RULES (the rule language of docs/rules.md), checks every name,
    table, macro and value, and prints each problem as

      FILE:LINE:COL: error: CAUSE: message
          the line
          ^~~~ under the spot

    Warnings (a shadowed rule, names that cannot be checked) print the same
    way with "warning". Nothing is applied: check reads no packet.

    -v prints the canonical form of the policy to standard output (one
    statement per line, clauses in their fixed order, comments dropped);
    ``ulnet check`` accepts its own output and finds the same policy.

    --port NAME (repeatable) checks that every port the rules name (on,
    route, balance) is one of these, as ``ulnet run`` does with the ports it
    binds.

    Application and category names are checked against the inspection
    stage's registry when it is installed; without it, a warning says they
    were not checked. --app-names FILE and --category-names FILE check them
    against other lists instead (one name a line; for instance a detector's
    protocol list, to check rules meant for another build).

EXIT STATUS
    0 no error (warnings allowed), 1 the rules have errors, 2 RULES cannot be read.
"""

from __future__ import annotations

import sys

from ulnet.cli.common import policy_errors
from ulnet.policy import detector_names
from ulnet.policy.check import check
from ulnet.policy.errors import PolicyError
from ulnet.policy.format import format_policy
from ulnet.policy.parse import parse



def add_arguments(p):
    p.add_argument("rules", metavar="RULES", help="rules file")
    p.add_argument("-v", dest="verbose", action="store_true", help="print the canonical form")
    p.add_argument("--port", action="append", default=None, metavar="NAME",
                   help="a port the rules may name (repeat); without it, port names are not checked")
    add_name_arguments(p)


def add_name_arguments(p):
    p.add_argument("--app-names", metavar="FILE", help="application names to check against (one a line)")
    p.add_argument("--category-names", metavar="FILE", help="category names to check against (one a line)")


def names_of(args):
    """(app names, category names): from --app-names/--category-names, else the registry."""
    apps, cats = detector_names()
    for attr in ("app_names", "category_names"):
        path = getattr(args, attr, None)
        if path:
            with open(path, encoding="utf-8") as f:
                names = [x.strip() for x in f if x.strip() and not x.startswith("#")]
            if attr == "app_names":
                apps = names
            else:
                cats = names
    return apps, cats


def run(args) -> int:
    try:
        with open(args.rules, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        print(f"ulnet check: error: {args.rules}: cannot read: {getattr(e, 'strerror', None) or e}", file=sys.stderr)
        return 2
    try:
        apps, cats = names_of(args)
    except OSError as e:
        print(f"ulnet check: error: cannot read a names file: {e}", file=sys.stderr)
        return 2
    try:
        policy = parse(text, args.rules)
        checked = check(policy, text, args.rules, apps, cats, args.port)
    except PolicyError as e:
        return policy_errors(e, "ulnet check", args.rules)
    for d in checked.diagnostics:
        print(d.render(), file=sys.stderr)
    if args.verbose:
        sys.stdout.write(format_policy(policy))
    return 0
