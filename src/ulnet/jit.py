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


FAST_CACHE_LOAD = fast_cache_load()
