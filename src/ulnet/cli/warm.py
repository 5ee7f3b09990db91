"""ulnet warm -- compile every kernel ahead of time (first run on a machine).

SYNOPSIS
    ulnet warm [--workers N] [--force] [-q]

DESCRIPTION
    ulnet's hot loops are numba kernels, compiled on their first call and
    cached (``__pycache__`` next to the sources, or NUMBA_CACHE_DIR). The
    first command on a fresh install would otherwise spend a minute or more
    compiling before it answers; ``ulnet warm`` compiles the decoder, the
    flow table, the application matchers, the sinks and the policy kernels
    once, in N worker processes side by side (default: one per core), by
    running each offline command on a small built-in capture. ``make setup``
    and ``make test`` run it. Afterwards a command on a small capture
    answers in well under a second.

    A progress bar on a terminal; otherwise one line at the end (-q: none).
    When each stage's main kernel already has a cache entry for the current
    sources it says so and returns at once (--force: compile anyway).

    Run as root (with iproute2), it also warms the bridge's one-call passes,
    without and with a policy, on a veth pair in a namespace of its own that
    it removes afterwards (about 30 s more on 2 cores); otherwise it says
    they were skipped and ``ulnet bridge`` compiles them on its first run
    (about a minute). capture -i and replay use the offline stages' kernels.

    It also byte-compiles ulnet's Python modules (``compileall``), every
    time, which costs a few milliseconds when nothing changed. An editable
    install under PYTHONDONTWRITEBYTECODE=1 (this project's development
    machines set it) otherwise compiles every module from source in every
    process: 50 ms of each command's start.

EXIT STATUS
    0 done; 1 a job failed (its error is printed).
"""

from __future__ import annotations

import os
import sys



def add_arguments(p):
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="worker processes compiling side by side (default: one per core)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    p.add_argument("--force", action="store_true", help="compile even when the cache looks warm")


def run(args) -> int:
    from ulnet.warm import byte_compile, cache_is_warm, warm
    if args.workers < 1:
        print("ulnet warm: error: --workers must be at least 1", file=sys.stderr)
        return 2
    byte_compile()
    if not args.force and cache_is_warm():
        if not args.quiet:
            print("ulnet warm: the kernel cache is warm (--force compiles anyway)", file=sys.stderr)
        return 0
    try:
        if sys.stderr.isatty() and not args.quiet:
            from rich.progress import Progress
            with Progress(transient=True) as prog:
                task = prog.add_task("compiling kernels", total=None)

                def report(done, total, what):
                    prog.update(task, completed=done, total=total, description=f"compiled {what}")
                seconds = warm(args.workers, report)
        else:
            seconds = warm(args.workers)
    except Exception as e:      # a job failed in a worker: say which, exit 1
        print(f"ulnet warm: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"ulnet warm: kernels compiled and cached in {seconds:.1f} s ({args.workers} workers)",
              file=sys.stderr)
        from ulnet.warm import live_warmable
        if not live_warmable():
            print("ulnet warm: the bridge's passes were not warmed (needs root and iproute2): "
                  "the first ulnet bridge compiles them (about a minute)", file=sys.stderr)
    return 0
