"""ulnet.jit's cheaper loading of compiled kernels: each shortcut is installed,
gives what numba's own path gives, and falls back where it must."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from numba import njit
from numba.core import errors

import ulnet.jit as J
from conftest import ROOT, SAMPLE, run_python


def test_every_shortcut_is_installed():
    # False would mean numba's internals moved and ulnet loads kernels the slow way
    assert J.FAST_CACHE_LOAD and J.CACHED_RUNTIME and J.LEAN_ARRAY_TYPEOF and J.CHECKED_CACHE_DIRS
    assert J.LAZY_MATCHER_ENVS
    assert J.LAZY_EXTENSIONS and J.LAZY_LINK_BITCODE and J.MEMO_CALL_TYPES and J.LAZY_LIFETIMES
    assert J.LEAN_SSA and J.LEAN_LIVE_MAP and J.SCOPE_FIXUP_ONCE and J.COMPILE_WITHOUT_GC


def _defined_in_bitcode(bitcode: bytes) -> set[str]:
    import llvmlite.binding as ll
    m = ll.parse_bitcode(bitcode)
    return {g.name for gs in (m.functions, m.global_variables) for g in gs if not g.is_declaration}


def test_elf_symbols_are_the_bitcodes_defined_symbols():
    """The names registered from a kernel's object code are exactly those
    numba registers from its bitcode, for every cached read + decode kernel."""
    from pathlib import Path
    from ulnet.pipeline import Pipeline
    from ulnet.decode._kernels import decode_batch
    from ulnet.sources._kernels import pcap_walk
    for _ in Pipeline([str(SAMPLE)], batch_size=64):
        pass
    checked = 0
    for kern in (decode_batch, pcap_walk):
        for f in Path(kern._cache._cache_path).glob(f"*.{kern.__name__}-*.nbc"):
            for obj, bitcode in J.cached_objects(f):
                names = J._elf_defined_symbols(obj)
                assert names == _defined_in_bitcode(bitcode), f
                assert len(names) > 3
                checked += 1
    assert checked >= 2
    assert J._elf_defined_symbols(b"\xcf\xfa\xed\xfe" + bytes(60)) is None     # Mach-O: numba's own path


def test_a_loaded_kernel_still_links_into_a_new_compile():
    """The bitcode left unparsed at load is parsed when a compile inlines the
    kernel, and the new function computes the same columns."""
    code = textwrap.dedent(f"""
        import numpy as np
        from numba import njit
        from ulnet.pipeline import Pipeline
        from ulnet.decode._kernels import decode_batch
        from ulnet.counters import new_counters
        for b in Pipeline([{str(SAMPLE)!r}], batch_size=64):
            break
        lib = decode_batch.overloads[decode_batch.signatures[0]].library
        pending = "_ulnet_bitcode" in lib.__dict__
        ref = b.hdr[:b.n].copy()
        b.hdr[:] = 0

        @njit
        def user(buf, off, caplen, wirelen, linktype, n, hdr, addr, counters):
            decode_batch(buf, off, caplen, wirelen, linktype, n, hdr, addr, counters)
            return hdr[:n, 14].sum()

        s = user(b.buf, b.off, b.caplen, b.wirelen, b.linktype, b.n, b.hdr, b.addr, new_counters())
        print(pending, "_ulnet_bitcode" in lib.__dict__, bool((b.hdr[:b.n] == ref).all()), s == ref[:, 14].sum())
    """)
    p = run_python(code, timeout=300, env={"PYTHONPATH": str(ROOT / "src")})
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["True", "False", "True", "True"], p.stdout


def test_runtime_module_is_cached_and_loaded(tmp_path):
    code = ("from ulnet.pipeline import Pipeline\n"
            f"print(sum(b.n for b in Pipeline([{str(SAMPLE)!r}])))\n")
    env = {"NUMBA_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(ROOT / "src")}
    outs = []
    for _ in range(2):
        p = run_python(code, timeout=600, env=env)
        assert p.returncode == 0, p.stderr
        outs.append(p.stdout)
        files = list(tmp_path.rglob("ulnet-nrt-*.bin"))
        assert len(files) == 1, files
    assert outs[0] == outs[1] and int(outs[0]) > 0
    assert not list(tmp_path.rglob("ulnet-nrt-*.tmp"))
    # a torn file compiles the module again and replaces the file
    files[0].write_bytes(b"torn")
    p = run_python(code, timeout=600, env=env)
    assert p.returncode == 0 and p.stdout == outs[0], p.stderr
    assert files[0].stat().st_size > 1000


def test_masked_arrays_are_still_refused():
    @njit
    def total(a):
        return a.sum()

    @njit
    def first(a):
        return a[0]

    assert total(np.arange(4)) == 6
    assert first(np.arange(4, dtype=np.float32).reshape(2, 2)[:, 1]) == 1.0     # layout 'A', typed here
    import numpy.ma
    with pytest.raises(errors.NumbaTypeError, match="MaskedArray"):      # as numba refuses them
        njit(lambda a: a.sum())(numpy.ma.array([1, 2, 3]))


def test_user_kernels_still_load_numba_extensions():
    from numba.core import entrypoints
    if not entrypoints._already_initialized:
        @njit
        def one():
            return 1
        assert one() == 1
    assert entrypoints._already_initialized


def _typed(pyfunc, *args):
    """(result, {variable: type}, sorted call signatures) of a fresh compile."""
    f = njit(pyfunc)
    res = f(*args)
    cres = f.overloads[f.signatures[0]]
    typemap = {k: str(v) for k, v in cres.type_annotation.typemap.items()}
    calls = sorted(str(v) for v in cres.type_annotation.calltypes.values())
    return res, typemap, calls


def _mixed(buf, p, n):
    # operators on mixed numpy integer types, casts, builtins: the queries the memo answers
    v = np.uint64(0)
    t = 0
    for k in range(n):
        v = (v << np.uint64(8)) | np.uint64(buf[p + k])
        t += (np.int64(buf[p + k]) << 8) | (buf[p + k] & 15)
    return v, t, min(t, 7) + max(n, 2), abs(-t) % 3


def test_call_types_memo_types_as_numba_does(monkeypatch):
    """A kernel typed through the memo gets the types numba's own resolution
    gives, repeated queries are answered from the memo, and a query numba
    refuses is refused again."""
    from numba.core.types import functions
    stats = functions.BaseFunction.get_call_type._stats
    buf = np.arange(40, dtype=np.uint8)
    hits, asked = stats
    with_memo = _typed(_mixed, buf, 3, 8)
    assert stats[0] > hits                   # fixed-point rounds repeat queries within one compile
    hits, asked = stats
    again = _typed(_mixed, buf, 3, 8)
    # a second compile of the same code: nearly all answered (numba's intrinsics
    # are new function types in every compile, so those are asked again)
    assert stats[0] - hits > 3 * (stats[1] - asked)
    monkeypatch.setattr(functions.BaseFunction, "get_call_type", functions.BaseFunction.get_call_type.__wrapped__)
    without = _typed(_mixed, buf, 3, 8)
    assert with_memo == again == without
    assert without[0] == _mixed(buf, 3, 8)       # and computes what Python computes
    monkeypatch.undo()

    def bad(a):
        return np.int64(a) + "x"
    for _ in range(2):                       # the failure is not remembered as an answer
        with pytest.raises(errors.TypingError):
            njit(bad)(np.int64(1))


def _allocating(n):
    # arrays made and dropped in a loop: their references are released where
    # numba's post-processing places the deletions of dead variables
    t = 0.0
    for k in range(n):
        a = np.arange(k + 1) * 2
        b = a[::2].copy()
        t += b.sum()
    return t


def test_lazy_lifetimes_compile_ulnet_kernels_as_numba_does(monkeypatch):
    """ulnet's kernels skip the block-entry sets of post-processing; the same
    function compiles to the same types and results either way, releases
    every array it allocates, and code outside ulnet is post-processed as
    numba does."""
    from numba.core import postproc
    from numba.core.runtime import rtsys
    lean = postproc.PostProcessor.run._lean

    def as_ulnet(f):
        g = type(f)(f.__code__, f.__globals__, f.__name__)
        g.__module__ = "ulnet.probe"
        return g

    before = lean[0]
    got = _typed(as_ulnet(_allocating), 50)
    assert lean[0] > before                       # the lazy path ran
    k = njit(as_ulnet(_allocating))
    k(3)
    from numba.core.runtime import _nrt_python
    was = _nrt_python.memsys_stats_enabled()
    _nrt_python.memsys_enable_stats()
    try:
        stats0 = rtsys.get_allocation_stats()
        assert k(200) == _allocating(200)
        stats1 = rtsys.get_allocation_stats()
    finally:
        if not was:
            _nrt_python.memsys_disable_stats()
    assert stats1.alloc - stats0.alloc >= 400     # two arrays an iteration (the copy, the product)
    assert stats1.alloc - stats0.alloc == stats1.free - stats0.free       # and each released

    before = lean[0]
    outside = _typed(_allocating, 50)             # a test module's function: numba's own path
    assert lean[0] == before
    monkeypatch.setattr(postproc.PostProcessor, "run", postproc.PostProcessor.run.__wrapped__)
    assert _typed(as_ulnet(_allocating), 50) == got == outside


def test_compile_shortcuts_give_the_same_machine_code(tmp_path):
    """The read + decode kernels compiled with the compile shortcuts (typing
    memo, lazy lifetimes, lean SSA, bit-mask live map, one scope fix-up per
    scope, no garbage collection meanwhile) and with numba's own pipeline
    (ULNET_NUMBA_PLAIN=1), each in an empty cache: the same object code,
    byte for byte, for every cache entry."""
    code = (f"from ulnet.pipeline import Pipeline\n"
            f"import ulnet.jit as J\n"
            f"print(J.MEMO_CALL_TYPES, J.LAZY_LIFETIMES, J.LEAN_SSA, J.LEAN_LIVE_MAP, J.SCOPE_FIXUP_ONCE,"
            f" J.COMPILE_WITHOUT_GC)\n"
            f"for b in Pipeline([{str(SAMPLE)!r}]):\n    pass\n")
    objects, flags = [], []
    for plain in ("0", "1"):
        cache = tmp_path / f"plain{plain}"
        env = {"NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT / "src"), "ULNET_NUMBA_PLAIN": plain}
        p = run_python(code, timeout=600, env=env)
        assert p.returncode == 0, p.stderr
        flags.append(p.stdout.split())
        got = J.cached_digests(cache)
        assert all(got.values()), got
        objects.append(got)
    assert flags == [["True"] * 6, ["False"] * 6]
    assert len(objects[0]) >= 6 and objects[0] == objects[1]


def test_offline_commands_load_no_kernel_that_allocates():
    """A kernel that allocates (np.empty, argsort, ...) brings numba's array
    library in with it when it is loaded from the cache (about 55 ms of
    imports, a tenth of a small command). The kernels of peek, flows (csv,
    jsonl, --statistics), stats and run take their scratch arrays from the
    caller instead. numba names each function's environment after the
    function, so one that allocates shows up here whether it was compiled
    or loaded (sys.modules would tell only on a warm cache: a compile
    imports the library anyway)."""
    code = textwrap.dedent(f"""
        import os, sys, tempfile
        from ulnet.cli.main import main
        out = tempfile.mkdtemp()
        for args in (["peek", {str(SAMPLE)!r}, "-c", "5"],
                     ["flows", {str(SAMPLE)!r}, "-o", os.devnull],
                     ["flows", {str(SAMPLE)!r}, "--statistics", "--format", "jsonl", "-o", os.devnull],
                     ["stats", {str(SAMPLE)!r}],
                     ["run", "--rules", "samples/sample.rules", "--in", "lan=" + {str(SAMPLE)!r},
                      "--out", "wan=" + os.path.join(out, "w.pcap")]):
            sys.stdout = open(os.devnull, "w")
            assert main(args) in (0, None), args
            sys.stdout = sys.__stdout__
        from numba.core.environment import Environment
        print(sorted(k for k in Environment._memo.keys() if "NumbaEnv" in k))
    """)
    r = run_python(code, timeout=600)
    assert r.returncode == 0, r.stderr
    envs = r.stdout.strip().splitlines()[-1]
    assert "ulnet" in envs                          # the listing sees ulnet's kernels
    assert "arrayobj" not in envs and "quicksort" not in envs, envs


def test_cache_directory_is_checked_once_and_again_when_gone(tmp_path):
    """numba tries a temporary file in the cache directory for every function
    it decorates with cache=True; ulnet.jit does it once per directory, and
    again when the directory has gone (a compile still saves its entry)."""
    (tmp_path / "mod.py").write_text("from numba import njit\n" + "".join(
        f"@njit(cache=True)\ndef f{i}(a, b):\n    return a * b + {i}\n" for i in range(12)))
    cache = tmp_path / "cache"
    code = textwrap.dedent(f"""
        import os, shutil, sys, tempfile
        sys.path.insert(0, {str(tmp_path)!r})
        import ulnet.jit
        tries = []
        plain = tempfile.TemporaryFile
        def counted(*a, **k):
            tries.append(k.get("dir"))
            return plain(*a, **k)
        tempfile.TemporaryFile = counted
        import mod
        print(len([d for d in tries if d and d.startswith({str(cache)!r})]))
        shutil.rmtree({str(cache)!r})
        print(mod.f3(2, 5))
        print(sum(len(fs) for _, _, fs in os.walk({str(cache)!r})))
    """)
    r = run_python(code, env={"NUMBA_CACHE_DIR": str(cache)})
    assert r.returncode == 0, r.stderr
    tried, value, saved = r.stdout.split()
    assert tried == "1"                     # numba's own way: 12
    assert value == "13" and int(saved) >= 2    # index + object code, in the directory made again


def test_cache_entries_saved_with_ulnet_load_without_it(tmp_path):
    """ulnet.jit rebuilds the matchers' environments its own way; a cache
    entry saved meanwhile must still name numba's rebuild function, so that
    it loads in a process that never imports ulnet (and ulnet's function
    must not be pickled into it)."""
    (tmp_path / "m2.py").write_text("from numba import njit\n@njit(cache=True)\ndef f(a):\n    return a + 1\n")
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    save = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import ulnet.jit; import m2; print(m2.f(41))"
    r = run_python(save, env=env)
    assert r.returncode == 0 and r.stdout.split() == ["42"], r.stderr
    blobs = [p.read_bytes() for p in (tmp_path / "cache").rglob("*.nbc")]
    assert blobs and all(b"numba.core.environment" in b and b"ulnet" not in b for b in blobs)
    load = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import m2; print(m2.f(41), "
            "sum(m2.f.stats.cache_hits.values()), 'ulnet' in sys.modules)")
    r = run_python(load, env=env)
    assert r.returncode == 0 and r.stdout.split() == ["42", "1", "False"], r.stderr


def _kernel_irs():
    """numba's IR of a few of ulnet's kernels straight from their bytecode
    (before SSA): many blocks, loops, variables assigned more than once."""
    from numba.core.compiler import run_frontend
    from ulnet.decode._kernels import decode_batch
    from ulnet.sources._kernels import pcap_walk, pcapng_walk
    from ulnet.flow._kernels import flow_batch
    from ulnet.sinks._format import format_rows
    return [run_frontend(k.py_func) for k in (decode_batch, pcap_walk, pcapng_walk, flow_batch, format_rows)]


def _dump(blocks) -> str:
    import io
    out = io.StringIO()
    for label, blk in blocks.items():
        print(label, file=out)
        blk.dump(file=out)
    return out.getvalue()


def test_lean_ssa_rewrites_as_numba_does():
    """The SSA repair that walks only the blocks a variable is in gives
    numba's IR statement for statement (fresh names, phi nodes, order)."""
    import copy
    from numba.core import ssa
    lean, numba_own = ssa._run_ssa, ssa._run_ssa.__wrapped__
    assert lean._ulnet
    repaired = 0
    for fir in _kernel_irs():
        a, b = copy.deepcopy(fir.blocks), copy.deepcopy(fir.blocks)
        before = lean._used[0]
        got, want = lean(a), numba_own(b)
        assert lean._used[0] == before + 1                  # not the fallback
        assert _dump(got) == _dump(want)
        assert _dump(got) != _dump(fir.blocks)              # there was something to repair
        repaired += 1
    assert repaired == 5


def test_lean_live_map_is_numbas():
    """Live variables from the bit-mask reaching sets equal numba's, block by
    block, on the kernels' IR before and after SSA."""
    from numba.core import analysis, ssa
    from numba.core.analysis import compute_cfg_from_blocks, compute_use_defs
    lean, numba_own = analysis.compute_live_map, analysis.compute_live_map.__wrapped__
    assert lean._ulnet
    for fir in _kernel_irs():
        for blocks in (fir.blocks, ssa._run_ssa(fir.blocks)):
            cfg = compute_cfg_from_blocks(blocks)
            ud = compute_use_defs(blocks)
            got = lean(cfg, blocks, ud.usemap, ud.defmap)
            want = numba_own(cfg, blocks, ud.usemap, ud.defmap)
            assert got == want
            assert sum(map(len, want.values())) > 20


def test_compiles_run_without_the_garbage_collector():
    """The collector is off while numba compiles (seen from inside a typing
    step) and on again after; a process that turned it off keeps it off."""
    import gc
    from numba.core import types
    from numba.extending import intrinsic
    seen = []

    @intrinsic
    def probe(typingctx):
        seen.append(gc.isenabled())

        def codegen(context, builder, signature, args):
            return context.get_dummy_value()
        return types.none(), codegen

    def f(x):
        probe()
        return x + 1

    assert gc.isenabled()
    assert njit(f)(1) == 2
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        assert njit(f)(2) == 3
        assert seen[-1] is False and not gc.isenabled()
    finally:
        gc.enable()


def test_kernels_have_no_cfunc_wrapper():
    """ulnet.jit's njit leaves out the C-callable wrapper (first-class
    function use only) unless asked; a kernel still runs from Python."""
    from ulnet.decode._kernels import decode_batch

    def g(x):
        return x * 2
    k = J.njit(g)
    assert k(4) == 8
    assert k.targetoptions["no_cfunc_wrapper"] is True
    assert decode_batch.targetoptions["no_cfunc_wrapper"] is True
    assert J.njit(no_cfunc_wrapper=False)(g).targetoptions["no_cfunc_wrapper"] is False
    cres = k.overloads[k.signatures[0]]
    names = {f.name for f in cres.library._final_module.functions}
    assert cres.fndesc.llvm_cpython_wrapper_name in names
    assert cres.fndesc.llvm_cfunc_wrapper_name not in names


def test_helpers_have_no_python_entry_and_still_answer_python():
    """@helper compiles without the CPython wrapper; kernels call its code,
    a Python call runs the Python function (same answers), and the read +
    decode helpers are such helpers."""
    from ulnet.decode import _kernels as dk
    from ulnet.sources import _kernels as sk

    def h(buf, p):
        return (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])
    hh = J.helper(h)
    from numba.core.caching import NullCache
    hh._cache = NullCache()              # compiled here, so its LLVM module can be read

    def k(buf):
        t = 0
        for p in range(buf.size - 1):
            t += hh(buf, p)
        return t
    kk = J.njit(k)
    buf = np.arange(200, dtype=np.uint8)
    assert kk(buf) == sum(h(buf, p) for p in range(199))
    assert len(hh.signatures) == 1                             # compiled when the kernel was
    assert hh(buf, 7) == h(buf, 7)
    assert hh([1, 2, 3], 1) == (2 << 8) | 3                    # Python ran it (a list: no compiled way)
    assert len(hh.signatures) == 1
    cres = hh.overloads[hh.signatures[0]]
    names = {f.name for f in cres.library._final_module.functions if not f.is_declaration}
    assert cres.fndesc.mangled_name in names and cres.fndesc.llvm_cpython_wrapper_name not in names
    for f in (dk._be16, dk._be32, dk._be64, sk._u16, sk._u32, sk._emit, sk._pcapng_ts):
        assert isinstance(f, J._Helper), f
    assert dk._be16(buf, 3) == (3 << 8) | 4 and sk._u32(buf, 4, False) == 0x07060504
    r = run_python("import ulnet.jit as J\ndef f(x):\n    return x + 1\nprint(J.helper(f) is f, J.helper(f)(1))",
                   env={"NUMBA_DISABLE_JIT": "1"})
    assert r.returncode == 0 and r.stdout.split() == ["True", "2"], r.stderr
