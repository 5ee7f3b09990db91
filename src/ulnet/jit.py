"""numba as ulnet's kernels use it: ``from ulnet.jit import njit``.

Importing this module also makes loading a cached kernel cheaper. When
numba loads a compiled kernel from its cache it first refreshes its whole
typing and lowering registry (imports some forty implementation modules,
cffi's C parser among them, and installs thousands of declarations): about
0.12 s, once per process, spent before the first packet of every command.
That registry is only consulted to *compile*; machine code loaded from the
cache needs the runtime (NRT), which is still initialised here. A cache
miss compiles through numba's own pipeline, which refreshes the registry
itself, so nothing is lost when a kernel is not cached.

If numba changes the internals used here, the patch is left out and loading
works as before (only slower): see ``fast_cache_load``.
"""

from __future__ import annotations

import functools
import os
import sys

import numba
import numba.core.registry


def njit(*args, **options):
    """numba's ``njit`` as ulnet's kernels use it: the same options, with
    ``no_cfunc_wrapper=True`` unless given. numba compiles, next to every
    function, a C-callable wrapper used only when the function is passed as
    a first-class function value (ulnet never does): read + decode's
    compile builds 21 LLVM modules instead of 29, 6.11-6.45 against
    6.60-7.35 CPU s in four alternated cold runs, and the kernels' own
    machine code is as it was. The wrapper a call from Python goes through
    (the CPython one) is kept."""
    options.setdefault("no_cfunc_wrapper", True)
    return numba.njit(*args, **options)


class _Helper(numba.core.registry.CPUDispatcher):
    """A helper's dispatcher (see ``helper``): called from Python, it runs
    the Python function, since there is no compiled way in from Python."""

    def __call__(self, *args, **kwargs):
        return self.py_func(*args, **kwargs)


def helper(func):
    """``@helper``: a small function that only ulnet's kernels call, compiled
    and cached like ``@njit(cache=True)`` but without the CPython wrapper,
    the entry that unboxes Python arguments (numba builds, optimises and
    compiles one for every function, most of a small helper's compile:
    each read + decode helper took 0.22-0.55 s to compile with it, two
    cold runs, and 0.05-0.10 s without, one run, in the same slow hour). A kernel calls the helper's compiled code as before and
    LLVM inlines it; a call from Python (a curious user) runs the Python
    function: the same values, as numpy scalars where compiled code hands
    back Python ones, and it tests the Python function, not the compiled
    one. So only functions no test calls to check compiled behaviour are
    helpers (not the matchers: tests/test_inspect_matchers.py calls each
    from Python and checks it returns a Python bool)."""
    d = njit(cache=True, no_cpython_wrapper=True)(func)
    if isinstance(d, numba.core.registry.CPUDispatcher):     # not under NUMBA_DISABLE_JIT
        d.__class__ = _Helper
    return d


# ---- how a shortcut is put in place -------------------------------------------
#
# Each shortcut below looks up the numba internals it relies on inside
# ``with _internals():`` (a missing one leaves the shortcut out: numba's own
# path runs, only slower), takes the function it replaces through
# ``_not_ours`` (ulnet's replacement already there: nothing to do), and
# returns ``_replace(...)``. ``@_shortcut`` turns the two ways out into the
# bool the module records (FAST_CACHE_LOAD, ...).
class _Installed(Exception):
    """ulnet's replacement is in place already."""


class _Absent(Exception):
    """numba lacks an internal the shortcut needs."""


def _shortcut(install):
    """A shortcut's installer that answers True when the shortcut is in
    place (now or already) and False when numba lacks what it needs."""
    @functools.wraps(install)
    def run(*args, **kwargs) -> bool:
        try:
            return install(*args, **kwargs)
        except _Installed:
            return True
        except _Absent:
            return False
    return run


class _internals:
    """``with _internals():`` around the look-up of numba's internals: an
    ImportError or AttributeError there means this numba release moved
    them (_Absent)."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind is not None and issubclass(kind, (ImportError, AttributeError)):
            raise _Absent(str(exc)) from exc
        return False


def _not_ours(func):
    """``func``, the numba function a shortcut replaces; _Installed when it
    is ulnet's replacement already."""
    if getattr(func, "_ulnet", False):
        raise _Installed
    return func


def _replace(owner, name: str, new) -> bool:
    """Put ``new`` in place of ``owner.name``, marked as ulnet's (``_ulnet``,
    and ``__wrapped__`` for the original); True."""
    new._ulnet = True
    new.__wrapped__ = getattr(owner, name)
    setattr(owner, name, new)
    return True


def _is_ulnet(func) -> bool:
    """Whether a Python function belongs to ulnet (a kernel of this package)."""
    mod = getattr(func, "__module__", None) or ""
    return mod == "ulnet" or mod.startswith("ulnet.")


@_shortcut
def fast_cache_load() -> bool:
    """Install the cheaper cache load; True when installed (idempotent)."""
    with _internals():
        from numba.core import caching
        from numba.core.runtime import rtsys
        cls = caching.Cache
        _not_ours(cls.load_overload)
        cls._guard_against_spurious_io_errors   # the internals used below
        cls._load_overload

    def load_overload(self, sig, target_context):
        rtsys.initialize(target_context)
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)
        # None when the guard swallows an I/O error: numba then compiles

    return _replace(cls, "load_overload", load_overload)


# ---- numba's runtime module, cached like a kernel ------------------------------
#
# Every process that runs a compiled kernel initialises numba's runtime (NRT),
# which builds a small LLVM module (atomic reference counts, allocation
# helpers) and compiles it to machine code: about 20 ms before the first
# packet of every command. The machine code depends only on numba, llvmlite
# and the CPU, so it is kept as object code next to the kernels' caches
# (numba's own serialisation, the one its kernel cache uses) and loaded from
# there; anything unexpected (no such internals, a file that does not load)
# compiles it as before.
def cache_dir_of(source) -> "Path | None":
    """Where numba caches the kernels of the source file ``source`` (its own
    locators, in its order: NUMBA_CACHE_DIR, __pycache__, the user's cache);
    None when none applies. Raises AttributeError when numba's internals moved."""
    from pathlib import Path
    from numba.core import caching
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)

    def _probe():
        pass

    for cls in impl._locator_classes:
        loc = cls.from_function(_probe, str(source))
        if loc is not None:
            return Path(loc.get_cache_path())
    return None


def _nrt_cache_file(codegen):
    import hashlib

    import llvmlite
    import numba

    d = cache_dir_of(__file__)
    if d is None:
        return None
    key = repr((numba.__version__, llvmlite.__version__, codegen.magic_tuple()))
    return d / f"ulnet-nrt-{hashlib.sha256(key.encode()).hexdigest()[:16]}.bin"


@_shortcut
def cached_runtime() -> bool:
    """Load numba's runtime module from a cache file (compile and save it on
    the first run); True when installed (idempotent)."""
    with _internals():
        from numba.core.runtime import nrtdynmod
        orig = _not_ours(nrtdynmod.compile_nrt_functions)

    def compile_nrt_functions(ctx):
        import pickle
        try:
            codegen = ctx.codegen()
            path = _nrt_cache_file(codegen)
        except Exception:       # internals moved: compile as numba does
            return orig(ctx)
        if path is not None:
            try:
                with open(path, "rb") as f:
                    return codegen.unserialize_library(pickle.load(f))
            except Exception:   # missing, stale or torn: compile it again
                pass
        try:    # numba's compile_nrt_functions, keeping the object code
            ir_mod, lib = nrtdynmod.create_nrt_module(ctx)
            lib.enable_object_caching()
            lib.add_ir_module(ir_mod)
            lib.finalize()
        except Exception:
            return orig(ctx)
        if path is not None:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(tmp, "wb") as f:
                    pickle.dump(lib.serialize_using_object_code(), f)
                os.replace(tmp, path)
            except Exception:
                tmp.unlink(missing_ok=True)
        return lib

    return _replace(nrtdynmod, "compile_nrt_functions", compile_nrt_functions)


# ---- a cached kernel's linking bitcode, parsed only to link ------------------
#
# A cached kernel holds its machine code and, for kernels that a later
# compile inlines it into, its LLVM bitcode. Loading parses that bitcode at
# once (about 1 ms per kernel, 3 ms of the first batch for the read + decode
# kernels) only to list the symbols the machine code defines. The list is
# read from the object file's ELF symbol table instead (the same names: every
# defined symbol but section and file entries; checked against the bitcode for
# every ulnet kernel) and the bitcode is parsed when a compile links it.
# Anything but a 64-bit little-endian ELF object loads as numba does.
def _elf_symbols(obj: bytes):
    """(name, type, size) of every named symbol an ELF64 little-endian
    object defines (types as st_info's low bits: 1 object, 2 function;
    section and file symbols left out); None for another format."""
    import struct
    if obj[:4] != b"\x7fELF" or obj[4] != 2 or obj[5] != 1:
        return None
    shoff, = struct.unpack_from("<Q", obj, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", obj, 0x3A)
    out = []
    for i in range(shnum):
        sh = shoff + i * shentsize
        if struct.unpack_from("<I", obj, sh + 4)[0] != 2:      # SHT_SYMTAB
            continue
        off, size, link = struct.unpack_from("<QQI", obj, sh + 0x18)
        entsize, = struct.unpack_from("<Q", obj, sh + 0x38)
        strtab, = struct.unpack_from("<Q", obj, shoff + link * shentsize + 0x18)
        for k in range(off, off + size - entsize + 1, entsize):
            name, info, _other, shndx, _value, sym_size = struct.unpack_from("<IBBHQQ", obj, k)
            if name == 0 or shndx == 0 or (info & 15) in (3, 4):   # unnamed, undefined, section, file
                continue
            start = strtab + name
            out.append((obj[start:obj.index(b"\0", start)].decode(), info & 15, sym_size))
    return out


def _elf_defined_symbols(obj: bytes):
    """The names an ELF64 little-endian object defines; None for another format."""
    syms = _elf_symbols(obj)
    return None if syms is None else {name for name, _t, _s in syms}


@_shortcut
def lazy_link_bitcode() -> bool:
    with _internals():
        import llvmlite.binding as ll
        from numba.core import codegen as cg
        cls = cg.CPUCodeLibrary
        orig_linking = _not_ours(cls._get_module_for_linking)
        orig_unserialize = cls._unserialize.__func__
        for attr in ("enable_object_caching", "_set_compiled_object", "_finalize_final_module"):
            getattr(cls, attr)

    def _unserialize(klass, codegen, state):
        name, kind, data = state
        names = None
        if kind == "object":
            try:
                names = _elf_defined_symbols(data[0])
                codegen._engine._defined_symbols
            except Exception:
                names = None
        if names is None:
            return orig_unserialize(klass, codegen, state)
        object_code, shared_bitcode = data
        self = codegen.create_library(name)
        self.enable_object_caching()
        self._set_compiled_object(object_code)
        self._ulnet_bitcode = shared_bitcode
        self._finalize_final_module()
        codegen._engine._defined_symbols |= names
        return self

    def _get_module_for_linking(self):
        bc = self.__dict__.pop("_ulnet_bitcode", None)
        if bc is not None and self._shared_module is None:
            self._shared_module = ll.parse_bitcode(bc)
        return orig_linking(self)

    cls._unserialize = classmethod(_unserialize)
    return _replace(cls, "_get_module_for_linking", _get_module_for_linking)


# ---- no extension scan for ulnet's own kernels --------------------------------
#
# Before a dispatcher's first compile or cache load, numba loads every
# installed ``numba_extensions`` entry point, which means scanning all
# installed distributions' metadata (about 4 ms a process). ulnet's kernels
# use no extension types, so the scan is left to the first dispatcher that is
# not ulnet's (an API user's own @njit code still gets its extensions).
@_shortcut
def lazy_extensions() -> bool:
    with _internals():
        from numba.core import dispatcher, entrypoints
        cls = dispatcher.Dispatcher
        _not_ours(cls._compilation_chain_init_hook)
        entrypoints.init_all

    def _compilation_chain_init_hook(self):
        if not _is_ulnet(self.py_func):
            entrypoints.init_all()

    return _replace(cls, "_compilation_chain_init_hook", _compilation_chain_init_hook)


# ---- the cache directory, checked once ----------------------------------------
@_shortcut
def checked_cache_dirs() -> bool:
    """Check that a cache directory is writable once per process, not once
    per function. numba's ``@njit(cache=True)`` makes the directory and
    writes and removes a temporary file in it for every function it
    decorates (and again before each save). ulnet has about 250 kernels;
    with all of them imported that was 18 ms of a command's start (30 -> 12
    ms, measured when every command that inspects still imported the
    matchers); a cached ``ulnet flows`` now decorates 89 (the matchers are
    imported only to compile: lazy_matcher_envs), proportionally less. A
    directory that passed is taken as it is while it still exists (one
    stat); one that failed, or has gone, is checked as numba checks it."""
    with _internals():
        from numba.core import caching
        cls = caching._CacheLocator
        orig = _not_ours(cls.ensure_cache_path)
    passed: set[str] = set()

    def ensure_cache_path(self):
        path = self.get_cache_path()
        if path in passed and os.path.isdir(path):
            return
        orig(self)
        passed.add(path)

    return _replace(cls, "ensure_cache_path", ensure_cache_path)


# ---- the matchers' environments, without importing the matchers ---------------
#
# numba gives every compiled function an "environment" (its module's globals
# and constants, for object-mode code and boxing) and pickles it into the
# cache entry of each kernel the function is compiled into; loading the
# entry rebuilds it by importing the module. The inspection's dispatcher
# has its ~180 matchers compiled into it, so loading it imported all 15
# matcher modules and built a numba dispatcher for each matcher (about
# 45-65 ms, in every command that inspects), although its machine code
# needs none of them. The matchers are nopython functions of integers over
# the payload word: nothing in them reads their environment. While a
# matcher module is not imported, its environments are rebuilt from the
# pickled constants and the module's name alone; a compile that needs the
# matchers imports them as before (``ulnet.inspect._dispatch``). Saved
# entries are unchanged: the replacement pickles under numba's own name.
LAZY_ENV_MODULES = ("ulnet.inspect.matchers.",)


@_shortcut
def lazy_matcher_envs() -> bool:
    with _internals():
        from numba.core import environment as E
        orig = _not_ours(E._rebuild_env)
        E.lookup_environment, E.Environment._memo

    def _rebuild_env(modname, consts, env_name):
        if modname and modname.startswith(LAZY_ENV_MODULES) and modname not in sys.modules:
            env = E.lookup_environment(env_name)
            if env is None:
                env = E.Environment({"__name__": modname})
                env.consts[:] = consts
                env.env_name = env_name
                E.Environment._memo[env_name] = env
            return env
        return orig(modname, consts, env_name)

    _rebuild_env.__module__, _rebuild_env.__qualname__ = orig.__module__, orig.__qualname__
    return _replace(E, "_rebuild_env", _rebuild_env)


# ---- typing an array argument without importing numpy.ma ---------------------
#
# numba types an array argument the first time it sees its kind by asking
# ``isinstance(val, np.ma.MaskedArray)``, and the attribute access imports
# numpy.ma (about 10 ms, once per process). No array can be a MaskedArray
# while numpy.ma has not been imported, so until then the check is skipped;
# afterwards numba's own function answers.
@_shortcut
def lean_array_typeof() -> bool:
    with _internals():
        from numba.core import errors, types
        from numba.core.typing import typeof as tyof
        from numba.np import numpy_support
        import numpy as np
        orig = _not_ours(tyof._typeof_ndarray)

    def _typeof_ndarray(val, c):
        if "numpy.ma" in sys.modules:
            return orig(val, c)
        try:
            dtype = numpy_support.from_dtype(val.dtype)
        except errors.NumbaNotImplementedError:
            raise errors.NumbaValueError(f"Unsupported array dtype: {val.dtype}")
        return types.Array(dtype, val.ndim, numpy_support.map_layout(val),
                           readonly=not val.flags.writeable)

    _replace(tyof, "_typeof_ndarray", _typeof_ndarray)
    tyof.typeof_impl.register(np.ndarray)(_typeof_ndarray)
    return True


# ---- typing a call numba has already typed ------------------------------------
#
# numba's type inference asks a function type for its signature at every call
# site, and again at each round of its fixed-point propagation: for each
# candidate template it builds the template, rates every registered signature
# against the arguments and, for an operator on numpy integers, searches the
# ufunc loops. The decoder's kernel makes about 3,000 such queries for about
# 330 distinct ones (an operator on the same argument types); answering
# repeats from a table takes 0.7-1 s off its type inference, about a tenth of
# its cold compile (and of every other kernel's). The answer is a function of
# the query (the function type, the typing context, the argument types and
# keywords); a query that fails is not kept, so it fails again the same way.
@_shortcut
def memo_call_types(limit: int = 200_000) -> bool:
    with _internals():
        from numba.core.types import functions
        cls = functions.BaseFunction
        orig = _not_ours(cls.get_call_type)
    memo: dict = {}
    stats = [0, 0]      # answered from the memo, asked of numba

    def get_call_type(self, context, args, kws):
        impl_keys = getattr(self, "_impl_keys", None)   # numba's record of the chosen templates
        if impl_keys is None:
            return orig(self, context, args, kws)
        try:
            key = (self, context, tuple(args), tuple(sorted(kws.items())) if kws else ())
            got = memo.get(key)
        except TypeError:        # an unhashable argument type: ask numba
            return orig(self, context, args, kws)
        if got is not None:
            stats[0] += 1
            sig, impl = got
            impl_keys[sig.args] = impl
            return sig
        stats[1] += 1
        sig = orig(self, context, args, kws)
        if sig is not None:
            if len(memo) >= limit:
                memo.clear()
            memo[key] = (sig, impl_keys[sig.args])
        return sig

    get_call_type._memo = memo
    get_call_type._stats = stats
    return _replace(cls, "get_call_type", get_call_type)


# ---- variable lifetimes only where they are read -------------------------------
#
# After most of its passes numba "post-processes" the function's IR: it
# recomputes the control-flow graph, the use/def sets, the live and dead
# variables of every block and, from those, the variables live on entry to
# each block, about nine times per function, each a whole-function
# dataflow analysis (a fifth of the decoder's cold compile). The last of
# those, the block-entry sets, is read by object-mode lowering only; the
# others are kept as numba keeps them, computed when a pass (or the deletion
# of dead variables before lowering) reads them. This applies to ulnet's
# kernels, which are all nopython-mode functions and no generators; every
# other function (numba's own, an API user's) is post-processed as numba does.
@_shortcut
def lazy_lifetimes() -> bool:
    with _internals():
        from numba.core import postproc, transforms
        cls = postproc.PostProcessor
        orig = _not_ours(cls.run)
        cls._insert_var_dels, postproc.VariableLifetime, transforms.canonicalize_cfg
    lean = [0]          # runs that skipped the block-entry sets

    def run(self, emit_dels: bool = False, extend_lifetimes: bool = False):
        fir = self.func_ir
        if fir.is_generator or not _is_ulnet(getattr(getattr(fir, "func_id", None), "func", None)):
            return orig(self, emit_dels=emit_dels, extend_lifetimes=extend_lifetimes)
        lean[0] += 1
        fir.blocks = transforms.canonicalize_cfg(fir.blocks)
        fir.variable_lifetime = postproc.VariableLifetime(fir.blocks)   # computed when read
        fir.generator_info = None
        if emit_dels:
            self._insert_var_dels(extend_lifetimes=extend_lifetimes)

    run._lean = lean
    return _replace(cls, "run", run)


# ---- SSA repair only where the variable is ---------------------------------------
#
# numba's SSA reconstruction takes the variables assigned more than once
# one at a time and, for each, rewrites every statement of every block
# twice (fresh names for its assignments, then each use tied to the
# definition that reaches it, with phi nodes where paths meet): 47 such
# variables in read + decode's kernels and about 196,000 statement visits
# (counted under cProfile: 0.5 s of a 5.5 s cold compile) to change a few
# hundred statements. A block that neither assigns nor reads the
# variable comes out of both walks as it went in, so only the blocks that
# do are walked (found once, before the first variable: repairing one
# variable adds and renames only names of that variable). Same IR, same
# names in the same order. Falls back to numba's walk when a variable is
# not in the scope fresh names are drawn from (a fresh name could then be
# another variable's).
@_shortcut
def lean_ssa() -> bool:
    with _internals():
        from collections import defaultdict
        from numba.core import errors, ir, ssa
        from numba.core.analysis import compute_cfg_from_blocks
        orig = _not_ours(ssa._run_ssa)
        (ssa._iterated_domfronts, ssa._find_defs_violators, ssa._CacheListVars, ssa._make_states,
         ssa._run_block_rewrite, ssa._FreshVarHandler, ssa._FixSSAVars, ssa._compute_phi_locations)
    used = [0, 0]       # functions repaired here, left to numba

    def where(blocks, cache):
        """name -> labels of the blocks that assign it, that read it (as
        _FreshVarHandler and _FixSSAVars see assignments and reads)."""
        assigns, reads = defaultdict(list), defaultdict(list)
        for label, blk in blocks.items():
            a, r = set(), set()
            for stmt in blk.body:
                if isinstance(stmt, ir.Assign):
                    a.add(stmt.target.name)
                    v = stmt.value
                    if isinstance(v, ir.Inst):
                        r.update(x.name for x in cache.get(v))
                    elif isinstance(v, ir.Var):
                        r.add(v.name)
                else:
                    r.update(x.name for x in cache.get(stmt))
            for n in a:
                assigns[n].append(label)
            for n in r:
                reads[n].append(label)
        return assigns, reads

    def rewrite(blocks, labels, states, handler):
        """numba's _run_block_rewrite on ``labels`` (in block order); every
        other block copied as it is."""
        done = ssa._run_block_rewrite({k: blocks[k] for k in labels}, states, handler)
        out = {}
        for label, blk in blocks.items():
            new = done.get(label)
            if new is None:
                new = ir.Block(scope=blk.scope, loc=blk.loc)
                new.body = list(blk.body)
            out[label] = new
        return out

    def run_ssa(blocks):
        if not blocks:
            return {}
        scope = ssa._make_states(blocks)["scope"]
        cfg = compute_cfg_from_blocks(blocks)
        df_plus = ssa._iterated_domfronts(cfg)
        violators = ssa._find_defs_violators(blocks, cfg)
        if not all(name in scope.localvars for name in violators):
            used[1] += 1
            return orig(blocks)
        used[0] += 1
        cache = ssa._CacheListVars()
        assigns, reads = where(blocks, cache) if violators else ({}, {})
        for varname in violators:
            # the states numba's two walks share (the scope stays the first
            # block's: rewritten blocks keep theirs)
            states = {"scope": scope, "varname": varname, "defmap": defaultdict(list)}
            blocks = rewrite(blocks, assigns.get(varname, ()), states, ssa._FreshVarHandler())
            states["phimap"] = phimap = defaultdict(list)
            states["cfg"] = cfg
            states["phi_locations"] = ssa._compute_phi_locations(df_plus, states["defmap"])
            blocks = rewrite(blocks, reads.get(varname, ()), states, ssa._FixSSAVars(cache))
            for label, philist in phimap.items():
                blocks[label].body = philist + blocks[label].body
        if compute_cfg_from_blocks(blocks) != cfg:
            raise errors.CompilerError("CFG mutated in SSA pass")
        return blocks

    run_ssa._used = used
    return _replace(ssa, "_run_ssa", run_ssa)


# ---- live variables: the reaching sets as bit masks --------------------------------
#
# numba's live-variable analysis first finds, for each block, every variable
# assigned or read on some path into it (a forward fixed point of set
# unions), then pushes the reads backwards, keeping a variable live only
# where it is in that first set. In the decoder's kernel (371 blocks, 1,851
# variables after SSA) those first sets hold nearly every variable (median
# 1,849), and the analysis runs after most passes: the forward fixed point
# took 0.37 s of a profiled cold read + decode compile. Here
# the first sets are integers, one bit per variable, so a union is a few
# hundred machine words; the backward pass is numba's, on the same (small)
# sets, with membership in the first set read from the bits. The same fixed
# point, so the same live sets.
@_shortcut
def lean_live_map() -> bool:
    with _internals():
        from numba.core import analysis, ir_utils
        orig = _not_ours(analysis.compute_live_map)

    def compute_live_map(cfg, blocks, var_use_map, var_def_map):
        topo_order = cfg.topo_order()
        bit: dict = {}

        def mask(names):
            m = 0
            for name in names:
                b = bit.get(name)
                if b is None:
                    b = bit[name] = 1 << len(bit)
                m |= b
            return m

        here = {}
        for offset in topo_order:
            here[offset] = mask(var_def_map[offset]) | mask(var_use_map[offset])
        succs = {offset: [out for out, _ in cfg.successors(offset)] for offset in topo_order}
        reach: dict = {}
        changed = True
        while changed:
            changed = False
            for offset in topo_order:
                old = reach.get(offset, 0)
                m = old | here[offset]
                if m != old:
                    reach[offset] = m
                    changed = True
                for out in succs[offset]:
                    old = reach.get(out, 0)
                    if old | m != old:
                        reach[out] = old | m
                        changed = True

        live_map = {offset: set(var_use_map[offset]) for offset in blocks.keys()}
        preds = {offset: [inc for inc, _ in cfg.predecessors(offset)] for offset in topo_order}
        backwards = topo_order[::-1]
        changed = True
        while changed:
            changed = False
            for offset in backwards:
                live_vars = live_map[offset]
                for inc in preds[offset]:
                    r = reach.get(inc, 0)
                    dst = live_map[inc]
                    before = len(dst)
                    dst |= {v for v in live_vars if r & bit.get(v, 0)} - var_def_map[inc]
                    if len(dst) != before:
                        changed = True
        return live_map

    ok = _replace(analysis, "compute_live_map", compute_live_map)
    if getattr(ir_utils, "compute_live_map", None) is orig:
        ir_utils.compute_live_map = compute_live_map
    return ok


# ---- one pass per scope where numba makes one per block ---------------------------
#
# After inlining, numba makes sure the scope of every block defines every
# variable the function uses: for each block, for each variable. The blocks
# of a function share one scope (or a few), so the same scope is completed
# once per block: 371 blocks x ~1,900 variables in the decoder's kernel,
# 0.09 s of its cold compile (0.6 s under cProfile). Each distinct scope is
# completed once here, in the order numba would first reach it.
@_shortcut
def scope_fixup_once() -> bool:
    with _internals():
        from numba.core import untyped_passes
        _not_ours(untyped_passes.fixup_var_define_in_scope)

    def fixup_var_define_in_scope(blocks):
        used_var = {}
        for blk in blocks.values():
            for inst in blk.body:
                for var in inst.list_vars():
                    used_var[var] = inst
        seen = set()
        for blk in blocks.values():
            scope = blk.scope
            if id(scope) in seen:
                continue
            seen.add(id(scope))
            for var in used_var:
                if var.name not in scope.localvars:
                    scope.localvars.define(var.name, var)

    return _replace(untyped_passes, "fixup_var_define_in_scope", fixup_var_define_in_scope)


# ---- no cyclic garbage collection while compiling --------------------------------
#
# A compile allocates millions of small objects (IR nodes, types, llvmlite
# instructions) and keeps most of them until it ends, so Python's cyclic
# collector, triggered by allocation counts, ran 560-579 times during read
# + decode's first batch and walked ever more live objects: 0.71-0.73 s of
# a 5.2-5.9 s cold compile (gc.callbacks, two runs). The collector is paused while numba
# compiles (from the outermost compile to its end; nested compiles of called
# kernels run inside it) and resumes afterwards, when the compile's garbage
# is collected as usual: peak RSS 184 against 180 MB. A process that turned
# the collector off itself is left as it is. Loading from the cache is not
# affected, and the machine code is the same.
@_shortcut
def compile_without_gc() -> bool:
    import gc
    with _internals():
        from numba.core import compiler
        orig = _not_ours(compiler.compile_extra)
    def compile_extra(*args, **kwargs):
        if not gc.isenabled():
            return orig(*args, **kwargs)
        gc.disable()
        try:
            return orig(*args, **kwargs)
        finally:
            gc.enable()

    return _replace(compiler, "compile_extra", compile_extra)


def cached_objects(path) -> list[tuple[bytes, bytes]]:
    """(object code, linking bitcode) of each compiled library in one numba
    cache entry (a ``.nbc`` file): what ulnet.jit's shortcuts must leave as
    numba makes it (tests/test_jit.py, bench/diag_compile.py)."""
    import pickle
    from pathlib import Path

    def walk(o):
        if isinstance(o, tuple) and len(o) == 3 and o[1] == "object":
            yield o[2]
        elif isinstance(o, (tuple, list)):
            for x in o:
                yield from walk(x)
        elif isinstance(o, dict):
            for x in o.values():
                yield from walk(x)

    return [(obj, bitcode) for obj, bitcode in walk(pickle.loads(Path(path).read_bytes()))]


def cached_digests(cache_dir) -> dict[str, list[str]]:
    """sha256 of the object code of every compiled library in the numba
    cache entries under ``cache_dir``, by entry file name: what two cache
    directories are compared by (tests/test_jit.py, bench/diag_compile.py)."""
    import hashlib
    from pathlib import Path
    return {f.name: [hashlib.sha256(obj).hexdigest() for obj, _bc in cached_objects(f)]
            for f in Path(cache_dir).rglob("*.nbc")}


# ---- caches of kernels that call kernels of other files ----------------------
#
# numba keys a cached kernel on its own source file only: a kernel that calls
# (and so inlines) kernels or freezes constants of other files keeps running
# their old code after they change. Each group names such kernel files and
# every file they take code or constants from; when any of them changed
# since the group's stamp (size and time of each file, as numba's own key),
# the group's cached kernels are dropped and compile again.
CACHE_GROUPS = {
    "core": (["sources/_kernels.py", "decode/_kernels.py", "flow/_kernels.py", "flow/records.py"],
             ["prefetch.py", "counters.py", "batch/columns.py", "decode/headers.py"]),
    "sinks": (["sinks/_format.py", "sinks/pcap.py", "sinks/pcapng.py", "sinks/txring.py", "policy/enforce.py",
               "flow/text.py"],
              ["rawmem.py", "libc.py", "counters.py"]),
    "inspect": (["inspect/_dispatch.py", "inspect/_kernels.py", "inspect/words.py", "inspect/matchers/*.py",
                 "inspect/quic_frames.py"],
                ["flow/_kernels.py", "prefetch.py", "counters.py", "batch/columns.py"]),
    "live": (["live/_kernels.py", "live/_polkernels.py", "live/_run.py"],
             ["sources/afpacket.py", "decode/_kernels.py", "decode/headers.py", "flow/_kernels.py",
              "inspect/_dispatch.py", "inspect/_kernels.py", "inspect/words.py", "inspect/matchers/*.py",
              "policy/_kernels.py", "policy/enforce.py", "actions/_kernels.py", "sinks/txring.py",
              "prefetch.py", "rawmem.py", "libc.py", "counters.py", "batch/columns.py"]),
}


def _files(root, patterns):
    out = []
    for pat in patterns:
        out += sorted(root.glob(pat)) if "*" in pat else [root / pat]
    return out


def drop_stale_caches(groups=None, root=None) -> list[str]:
    """Drop the cached kernels of every group whose sources changed since its
    stamp; returns the groups dropped. Cheap when nothing changed (a stat of
    each file). ``root``: the directory the groups' paths are relative to
    (default: the ulnet package)."""
    import hashlib
    from pathlib import Path
    try:
        cache_dir_of(__file__)
    except (ImportError, AttributeError):
        return []

    root = Path(root) if root is not None else Path(__file__).resolve().parent
    dropped = []
    for name, (kern, deps) in (groups or CACHE_GROUPS).items():
        kernels = [f for f in _files(root, kern) if f.exists()]
        h = hashlib.sha256()
        for f in kernels + _files(root, deps):
            try:
                st = f.stat()
                h.update(f"{f.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            except OSError:
                h.update(f"{f.name}\0missing\n".encode())
        stamp_text = h.hexdigest()
        dirs = {}
        for f in kernels:
            d = cache_dir_of(f)
            if d is not None:
                dirs.setdefault(d, []).append(f.stem)
        if not dirs:
            continue
        stamp = next(iter(dirs)) / f"ulnet-{name}.stamp"
        try:
            if stamp.read_text() == stamp_text:
                continue
        except OSError:
            pass
        for d, stems in dirs.items():
            for stem in stems:
                for old in list(d.glob(f"{stem}.*.nbi")) + list(d.glob(f"{stem}.*.nbc")):
                    try:
                        old.unlink()
                    except OSError:
                        pass
        try:
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.write_text(stamp_text)
        except OSError:
            pass
        dropped.append(name)
    return dropped


FAST_CACHE_LOAD = fast_cache_load()
CACHED_RUNTIME = cached_runtime()
LEAN_ARRAY_TYPEOF = lean_array_typeof()
CHECKED_CACHE_DIRS = checked_cache_dirs()
LAZY_MATCHER_ENVS = lazy_matcher_envs()
LAZY_EXTENSIONS = lazy_extensions()
LAZY_LINK_BITCODE = lazy_link_bitcode()
# ULNET_NUMBA_PLAIN=1: compile through numba's own pipeline (a way out, should
# a numba release disagree with the six compile shortcuts below; the choices
# of what is compiled, njit's no_cfunc_wrapper and @helper, stay)
_PLAIN = os.environ.get("ULNET_NUMBA_PLAIN") == "1"
MEMO_CALL_TYPES = not _PLAIN and memo_call_types()
LAZY_LIFETIMES = not _PLAIN and lazy_lifetimes()
LEAN_SSA = not _PLAIN and lean_ssa()
LEAN_LIVE_MAP = not _PLAIN and lean_live_map()
SCOPE_FIXUP_ONCE = not _PLAIN and scope_fixup_once()
COMPILE_WITHOUT_GC = not _PLAIN and compile_without_gc()
drop_stale_caches()
