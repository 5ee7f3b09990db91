"""ulnet command line: one module per command, wired here.

Exit status (every command): 0 success; 1 an input could not be read to its
end (corrupt record) or another run-time failure; 2 a usage error or an input
that cannot be opened at all (missing file, unknown format or link type).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys

from ulnet import __version__

# command -> one-line help; each command is the module ulnet.cli.<command>
# (add_arguments, run), imported only when it is the one that runs: the
# others would cost their imports in every command's start-up
COMMANDS = {
    "peek": "print one line per packet (libpeak's peek)",
    "flows": "write one record per flow (CSV, JSON lines, Parquet)",
    "bridge": "forward between two interfaces, or an interface and the host (TAP), through the pipeline",
    "capture": "write a live interface to capture files, with rotation (tcpdump -w)",
    "replay": "send capture files out of an interface through a TX ring (tcpreplay)",
    "check": "check a rules file (and print its canonical form with -v)",
    "run": "enforce a rules file on capture files (ports bound to files)",
    "apps": "list the applications inspection can report, with their categories",
    "stats": "packets, bytes and flows per application and category; traffic over time (--plot)",
    "warm": "compile every kernel ahead of time (the first run on a machine)",
}

# commands that run the compiled stages (a terminal is told when they must compile first)
COLD_NOTICE = {"peek", "flows", "bridge", "capture", "replay", "run", "stats"}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, then exit 2 (argparse prints usage too; keep it short)
        self.exit(2, f"ulnet {self.prog.split()[-1]}: error: {message}\n"
                     if " " in self.prog else f"ulnet: error: {message}\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``command``, only that command's module is imported
    (the others get a bare entry, enough for the command list)."""
    p = _Parser(prog="ulnet", description="userland networking: capture, decode, flows, inspect, policy")
    p.add_argument("--version", action="version", version=f"ulnet {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, help_ in COMMANDS.items():
        if command is not None and name != command:
            sub.add_parser(name, help=help_)
            continue
        mod = importlib.import_module(f"ulnet.cli.{name}")
        sp = sub.add_parser(name, help=help_, description=mod.__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(sp)
        sp.set_defaults(_run=mod.run)
    return p


# glibc malloc: blocks of 128 KiB and up are mapped fresh (and their pages
# faulted in and zeroed) on every allocation, and a heap whose free top passes
# 128 KiB is trimmed. The record path allocates the same column-sized arrays
# (0.5-15 MB) for every chunk of ended flows: 650,000 page faults and 1.3-2.6
# s of system time over 10 M flows. Up to 32 MiB (glibc's ceiling) they come
# from the heap instead, and 256 MiB of freed heap stay for the next chunk.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def tune_malloc(mmap_threshold: int = 32 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Keep column-sized arrays on glibc's heap (see above); False where
    there is no glibc ``mallopt``."""
    import ctypes
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))


def main(argv: list[str] | None = None, *, fast_start: bool = False) -> int:
    """Run one command; returns the exit status. ``fast_start`` (the console
    script): no garbage collection while the command's modules load (numba,
    numpy and pyarrow create some 300,000 objects, and a full collection in
    the middle of that walked them all: 35-40 ms of every command's
    start-up); what has loaded is then frozen (later collections skip it)
    and collection resumes before the command runs."""
    tune_malloc()
    if fast_start and gc.isenabled():
        gc.disable()
        try:
            return _main(argv, thaw=True)
        finally:
            gc.enable()
    return _main(argv)


def _main(argv: list[str] | None, thaw: bool = False) -> int:
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(words[0] if words and words[0] in COMMANDS else None)
    args, extra = parser.parse_known_args(argv)
    if extra:
        # words after an option (``peek x.pcap -c 5 tcp port 80``): the filter
        # expression of a command that takes one; anything else is an error
        target = "files" if hasattr(args, "files") and hasattr(args, "filter_file") else \
            "expression" if hasattr(args, "expression") else None
        if target is None or any(w.startswith("-") and w != "-" for w in extra):
            parser.parse_args(argv)            # the usual one-line error, exit 2
        getattr(args, target).extend(extra)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return 2
    if args.command in COLD_NOTICE and sys.stderr.isatty():
        from ulnet.warm import cache_is_warm
        if not cache_is_warm():
            print("ulnet: first run with these sources: compiling kernels (a minute or two, once; "
                  "`ulnet warm` does it ahead of time, on every core)", file=sys.stderr, flush=True)
    if thaw:
        gc.freeze()
        gc.enable()
    try:
        return args._run(args)
    except BrokenPipeError:
        # output piped into head(1) and the like: stop quietly
        try:
            sys.stdout = None
        except Exception:
            pass
        return 0
    except KeyboardInterrupt:
        return 130


def entry() -> None:
    """The console script: run the command, flush, and leave without the
    interpreter's teardown (freeing numba's and LLVM's state takes about
    0.15 s, a sixth of a small command's time). Commands close their files
    before they return; an exception still unwinds the normal way."""
    import os
    try:
        rc = main(fast_start=True)
    except SystemExit as e:         # argparse has printed its message
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)
    for f in (sys.stdout, sys.stderr):
        try:
            if f is not None:
                f.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass
    os._exit(rc if isinstance(rc, int) else 1)


if __name__ == "__main__":
    entry()
