#!/usr/bin/env python3
"""Name ulnet's compiled kernels in `perf` profiles.

    perf record -F 4000 -g -o perf.data -- \\
        taskset -c 1 .venv/bin/python bench/diag_perf.py flows CAPTURE -o /dev/null
    perf report -i perf.data --sort sym

Runs one ulnet command in this process (as the console script does), then
writes /tmp/perf-PID.map, the file perf reads to name code that was made at
run time: the address and size of every function of every cached kernel
this process loaded (sizes from the cache's object code, addresses from
numba's JIT engine). Without it perf shows the kernels as bare addresses
("[JIT] tid ..."). The kernels must be in the numba cache (`ulnet warm`):
the map is read from it.

Use the cache the command normally uses: NUMBA_ENABLE_PROFILING=1 compiles
the kernels again, into that same cache, with code that ran read + decode
about 2x slower (seen 2026-11-27); it is not needed for this map.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from ulnet.cli.main import main  # noqa: E402
from ulnet.jit import _elf_symbols, cached_objects  # noqa: E402

STT_FUNC = 2


def cache_files() -> list[Path]:
    """Every numba cache entry (.nbc) of ulnet's kernels."""
    import ulnet
    roots = [Path(ulnet.__file__).parent]
    if os.environ.get("NUMBA_CACHE_DIR"):
        roots.append(Path(os.environ["NUMBA_CACHE_DIR"]))
    return [f for r in roots for f in r.rglob("*.nbc")]


def write_map(path: Path) -> int:
    """perf's map of the loaded kernels' functions; how many it names."""
    from numba.core.registry import cpu_target
    engine = cpu_target.target_context.codegen()._engine._ee
    found = {}
    for f in cache_files():
        for obj, _bitcode in cached_objects(f):
            for name, kind, size in _elf_symbols(obj) or ():
                if kind != STT_FUNC or not size:
                    continue
                try:
                    addr = engine.get_function_address(name)
                except Exception:
                    addr = 0
                if addr:
                    found[addr] = (size, name)
    with open(path, "w") as m:
        for addr, (size, name) in sorted(found.items()):
            m.write(f"{addr:x} {size:x} {name}\n")
    return len(found)


def run() -> int:
    rc = main(sys.argv[1:], fast_start=True)
    sys.stdout.flush()
    n = write_map(Path(f"/tmp/perf-{os.getpid()}.map"))
    print(f"diag_perf: /tmp/perf-{os.getpid()}.map names {n} compiled functions", file=sys.stderr)
    return rc


if __name__ == "__main__":
    os._exit(run() or 0)      # as the console script: no interpreter teardown in the profile
