"""errors -- diagnostics of the rule language: file:line:col, the line, a caret, a named cause.

Every problem found in a rules file (or a table file it loads) is a
``Diagnostic``. Rendered::

    rules.conf:3:12: error: bad-prefix: '10.0.0.0/33': prefix length above 32
        block from 10.0.0.0/33 to any port 22
                   ^~~~~~~~~~~

``cause`` is a short stable name (the list is CAUSES below; docs/rules.md
explains each); tests and tools match on it, people read ``message``.
``PolicyError`` carries every error found (warnings ride along): a policy
with an error is never applied.
"""

from __future__ import annotations

from dataclasses import dataclass

CAUSES = {
    # syntax (parse)
    "syntax": "the text does not follow the grammar",
    "unknown-keyword": "a word that is not a keyword where a keyword must be (with a suggestion)",
    "missing-value": "a keyword that needs a value has none",
    "unterminated-string": "a string without its closing quote",
    "unexpected-character": "a character no token starts with",
    "bad-rate": "a rate that is not a number with a unit (pps, kpps, Mpps, bit, kbit, Mbit, Gbit)",
    "bad-size": "a burst that is not a size (B, kB, MB, KiB, MiB, or p for packets)",
    "bad-duration": "a queue time that is not a duration (ns, us, ms, s)",
    "bad-option": "a word after per or count by that is not one of its choices",
    # meaning (check)
    "unknown-application": "an application name the detector does not know",
    "unknown-category": "a category name the detector does not know",
    "unknown-protocol": "a protocol name that is not known (or a number above 255)",
    "unknown-state": "a flow state that is not one of new, established, closing, closed, reset",
    "bad-prefix": "an address or prefix that is not valid IPv4 or IPv6",
    "bad-port": "a port number above 65535 or a range that runs backwards",
    "bad-number": "a number out of range for its condition (VLAN id, length)",
    "bad-flags": "TCP flags other than F S R P A U E W, or not FLAGS/MASK",
    "wrong-type": "a value of the wrong kind for its place (an address where a port goes, ...)",
    "undefined-table": "a <table> used but never defined",
    "undefined-macro": "a $macro used but never defined",
    "duplicate-definition": "a table, macro or default defined twice",
    "duplicate-clause": "a condition or option given twice in one rule",
    "undefined-tag": "a tag tested with tagged that no rule sets with tag",
    "macro-cycle": "a macro that refers to itself",
    "table-file": "a table file that cannot be read",
    "unbound-port": "a port named in a rule that the command line does not bind",
    "bad-default": "a default statement with conditions, or with match",
    "conflict": "options that cannot go together (route and balance, ...)",
    # warnings
    "shadowed": "a rule that can never match: an earlier rule decides every flow it would",
    "unchecked-names": "application names cannot be checked: no detector registry",
    "ignored-option": "an option that has no effect where it is",
}


@dataclass
class Diagnostic:
    file: str
    line: int
    col: int
    cause: str
    message: str
    severity: str = "error"          # or "warning"
    end_col: int = 0                 # last column (inclusive) of the spot, 0: one character
    source_line: str | None = None

    def render(self) -> str:
        head = f"{self.file}:{self.line}:{self.col}: {self.severity}: {self.cause}: {self.message}"
        if self.source_line is None or self.line <= 0:
            return head
        text = self.source_line.rstrip("\r\n").expandtabs(1)
        width = max(1, (self.end_col - self.col + 1) if self.end_col >= self.col else 1)
        width = min(width, max(1, len(text) - self.col + 1))
        caret = " " * (self.col - 1) + "^" + "~" * (width - 1)
        return f"{head}\n    {text}\n    {caret}"

    def __str__(self) -> str:
        return self.render()


class PolicyError(Exception):
    """A rules file with errors: ``diagnostics`` holds them (and the warnings)."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = list(diagnostics)
        errs = [d for d in self.diagnostics if d.severity == "error"]
        super().__init__("\n".join(d.render() for d in errs) or "policy error")

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


def line_of(text: str, line: int) -> str | None:
    lines = text.splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else ("" if line == len(lines) + 1 else None)
