import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = (ROOT / ".." / "shared").resolve()
CORPUS = SHARED / "corpus"
NDPI_PCAPS = sorted((CORPUS / "ndpi" / "pcap").glob("*"))
LIBPEAK = CORPUS / "libpeak"
SAMPLE = ROOT / "samples" / "sample.pcap"
ULNET = [sys.executable, "-m", "ulnet.cli.main"]


def run_ulnet(*args, stdin=None, check=False, env=None):
    """Run the ulnet command line in a subprocess; returns CompletedProcess (bytes)."""
    e = dict(os.environ)
    if env:
        e.update(env)
    p = subprocess.run(ULNET + [str(a) for a in args], input=stdin, capture_output=True, env=e, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"ulnet {args} exited {p.returncode}: {p.stderr.decode(errors='replace')}")
    return p


def run_python(code: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -c code`` from the repository root, ``env`` added to this
    process's environment; returns CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          cwd=str(ROOT), env=dict(os.environ, **(env or {})))


def signal_on_call(monkeypatch, owner, name: str, nth: int, signum: int):
    """Make ``owner.name`` (a method) send ``signum`` to this process on its
    ``nth`` call, then run as before. Returns (the original, [calls so far])."""
    orig, calls = getattr(owner, name), [0]

    def wrapper(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == nth:
            os.kill(os.getpid(), signum)
        return orig(self, *args, **kwargs)
    monkeypatch.setattr(owner, name, wrapper)
    return orig, calls


@pytest.fixture(scope="session")
def corpus_available():
    if not NDPI_PCAPS:
        pytest.fail(f"corpus missing at {CORPUS}: ../shared must be present")
    return True
