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

from numba import njit  # noqa: F401  (re-exported)


def fast_cache_load() -> bool:
    """Install the cheaper cache load; True when installed (idempotent)."""
    try:
        from numba.core import caching
        from numba.core.runtime import rtsys
        cls = caching.Cache
        if getattr(cls.load_overload, "_ulnet", False):
            return True
        cls._guard_against_spurious_io_errors   # the internals used below
        cls._load_overload
    except (ImportError, AttributeError):
        return False

    def load_overload(self, sig, target_context):
        rtsys.initialize(target_context)
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)
        # None when the guard swallows an I/O error: numba then compiles

    load_overload._ulnet = True
    cls.load_overload = load_overload
    return True


# ---- caches of kernels that call kernels of other files ----------------------
#
# numba keys a cached kernel on its own source file only: a kernel that calls
# (and so inlines) kernels or freezes constants of other files keeps running
# their old code after they change. Each group names such kernel files and
# every file they take code or constants from; when any of them changed
# since the group's stamp (size and time of each file, as numba's own key),
# the group's cached kernels are dropped and compile again.
CACHE_GROUPS = {
    "core": (["sources/_kernels.py", "decode/_kernels.py", "flow/_kernels.py"],
             ["prefetch.py", "counters.py", "batch/columns.py", "decode/headers.py"]),
    "inspect": (["inspect/_dispatch.py", "inspect/_kernels.py", "inspect/words.py", "inspect/matchers/*.py"],
                ["flow/_kernels.py", "prefetch.py", "counters.py", "batch/columns.py"]),
    "live": (["live/_kernels.py", "live/_polkernels.py"],
             ["sources/afpacket.py", "decode/_kernels.py", "decode/headers.py", "flow/_kernels.py",
              "inspect/_dispatch.py", "inspect/_kernels.py", "inspect/words.py", "inspect/matchers/*.py",
              "policy/_kernels.py", "policy/enforce.py", "actions/_kernels.py", "sinks/txring.py",
              "prefetch.py", "counters.py", "batch/columns.py"]),
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
        from numba.core import caching
        impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
        locators = impl._locator_classes
    except (ImportError, AttributeError):
        return []

    def _probe():
        pass

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
            for cls in locators:
                loc = cls.from_function(_probe, str(f))
                if loc is not None:
                    dirs.setdefault(Path(loc.get_cache_path()), []).append(f.stem)
                    break
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
drop_stale_caches()
