"""Helpers shared by the benchmarks (private): the benchmark capture, running
one measurement pinned to a core under ``/usr/bin/time -v``, formatting.

Used by bench_decode.py and bench_flows.py; see bench/README.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKER = HERE / "_worker.py"
SHARED = (ROOT / ".." / "shared").resolve()
MAKE_CORPUS = SHARED / "bench" / "make_corpus.py"
CORPUS_DIR = SHARED / "corpus" / "ndpi" / "pcap"
TINY = ROOT / "samples" / "sample.pcap"
TIME_BIN = "/usr/bin/time"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# the capture
# ---------------------------------------------------------------------------
def _inputs_fingerprint(make_corpus: Path, corpus_dir: Path, packets: int) -> str:
    h = hashlib.sha256()
    h.update(make_corpus.read_bytes())
    h.update(str(packets).encode())
    for p in sorted(corpus_dir.iterdir()):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.name}\0{st.st_size}\0{int(st.st_mtime)}\n".encode())
    return h.hexdigest()


def build_corpus(out: Path, packets: int, make_corpus: Path = MAKE_CORPUS,
                 corpus_dir: Path = CORPUS_DIR) -> Path:
    """OUT/corpus-N.pcap, rebuilt only when make_corpus.py, the input
    directory or N changed (fingerprint in a .stamp file beside it)."""
    cap = out / f"corpus-{packets}.pcap"
    stamp = cap.with_suffix(".pcap.stamp")
    fp = _inputs_fingerprint(make_corpus, corpus_dir, packets)
    if cap.exists() and stamp.exists() and stamp.read_text().strip() == fp:
        log(f"capture cached: {cap}")
        return cap
    log(f"building {cap} ({packets} packets) with {make_corpus} ...")
    tmp = cap.with_suffix(".pcap.tmp")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(make_corpus), str(corpus_dir), str(tmp),
                    "--target-packets", str(packets)], check=True)
    tmp.rename(cap)
    stamp.write_text(fp + "\n")
    log(f"built in {time.perf_counter() - t0:.1f} s")
    return cap


def slice_pcap(src: Path, dst: Path, n: int) -> Path:
    """The first n records of a classic pcap file (header kept), cached."""
    if dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime:
        return dst
    tmp = dst.with_suffix(".tmp")
    with open(src, "rb") as f, open(tmp, "wb") as g:
        head = f.read(24)
        magic = struct.unpack("<I", head[:4])[0]
        e = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        g.write(head)
        for _ in range(n):
            rh = f.read(16)
            if len(rh) < 16:
                break
            cl = struct.unpack(e + "I", rh[8:12])[0]
            g.write(rh)
            g.write(f.read(cl))
    tmp.rename(dst)
    return dst


def warm_page_cache(*paths: Path) -> None:
    for p in paths:
        with open(p, "rb") as f:
            while f.read(8 << 20):
                pass


def read_back_copy(src: Path, dst: Path) -> Path:
    """A copy of ``src`` whose pages are cached the way a file read from
    disk is: written, flushed, dropped from the page cache
    (POSIX_FADV_DONTNEED), then read once (readahead fills the cache with
    large folios, where a file cached by its writer keeps the folios of its
    writes, small for small writes; mapping it then takes one page-table
    entry per 2 MiB instead of one per 4 KiB)."""
    import shutil
    shutil.copyfile(src, dst)
    fd = os.open(dst, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    warm_page_cache(dst)
    return dst


# ---------------------------------------------------------------------------
# running one measurement
# ---------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    out = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out.extend(int(x) for x in f.read().split())
    except OSError:
        pass
    return out


def _tree_mem(root: int) -> tuple[int, int]:
    """RssAnon, RssFile (kB) summed over root's descendants (not root itself)."""
    anon = file = 0
    todo = _children(root)
    while todo:
        pid = todo.pop()
        todo.extend(_children(pid))
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        anon += int(line.split()[1])
                    elif line.startswith("RssFile:"):
                        file += int(line.split()[1])
        except OSError:
            pass
    return anon, file


class Runner:
    def __init__(self, cpu: int | None):
        self.cpu = cpu
        self.have_time = os.access(TIME_BIN, os.X_OK)
        if not self.have_time:
            log(f"{TIME_BIN} missing (apt-get install time): peak RSS from wait4() instead")
        self.have_taskset = cpu is not None and shutil.which("taskset") is not None
        if cpu is not None and not self.have_taskset:
            log("taskset missing: processes are not pinned")

    def prefix(self) -> list[str]:
        pre = []
        if self.have_taskset:
            pre += ["taskset", "-c", str(self.cpu)]
        if self.have_time:
            pre += [TIME_BIN, "-v"]
        return pre

    def run(self, cmd: list[str], env: dict | None = None, sample: float = 0.0) -> dict:
        """Run cmd; wall seconds (parent clock), peak RSS (kB), worker RESULT.

        sample > 0: every `sample` seconds the parent also reads RssAnon and
        RssFile of the process tree under the prefix (from /proc, not on the
        pinned core's clock) and keeps the peaks ("sampled_peak_anon_kb",
        "sampled_peak_file_kb", "sampled_peak_kb" = peak of the sum)."""
        full = self.prefix() + cmd
        e = dict(os.environ)
        if env:
            e.update(env)
        with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
            t0 = time.perf_counter()
            p = subprocess.Popen(full, stdout=fo, stderr=fe, env=e)
            pa = pf = ps = 0
            root_included = not self.prefix()
            while True:
                # wait4 (not Popen.wait): its rusage is the peak RSS when time -v is missing
                pid, status, ru = os.wait4(p.pid, os.WNOHANG if sample > 0 else 0)
                if pid:
                    break
                a, f = _tree_mem_self(p.pid) if root_included else _tree_mem(p.pid)
                pa, pf, ps = max(pa, a), max(pf, f), max(ps, a + f)
                time.sleep(sample)
            wall = time.perf_counter() - t0
            rc = os.waitstatus_to_exitcode(status)
            p.returncode = rc
            fo.seek(0)
            fe.seek(0)
            out_s = fo.read().decode(errors="replace")
            err_s = fe.read().decode(errors="replace")
        if rc != 0:
            raise RuntimeError(f"{' '.join(full)} failed ({rc}):\n{err_s[-3000:]}")
        rss = None
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err_s)
        if m:
            rss = int(m.group(1))
        elif not self.have_time:
            rss = int(ru.ru_maxrss)     # kB on Linux
        # CPU seconds of the process tree (time -v: user + system; else wait4's rusage)
        mu = re.search(r"User time \(seconds\): ([\d.]+)", err_s)
        ms = re.search(r"System time \(seconds\): ([\d.]+)", err_s)
        cpu = float(mu.group(1)) + float(ms.group(1)) if mu and ms else ru.ru_utime + ru.ru_stime
        res = {}
        for line in out_s.splitlines():
            if line.startswith("RESULT "):
                res = json.loads(line[7:])
        res["wall"] = wall
        res["maxrss_kb"] = rss
        res["cpu_s"] = cpu
        res["cmd"] = " ".join(full)
        res["stdout"] = out_s[:65536] if not res.get("mode") else ""
        if sample > 0:
            res.update(sampled_peak_anon_kb=pa, sampled_peak_file_kb=pf, sampled_peak_kb=ps)
        return res

    def worker(self, mode: str, capture: Path, *args: str, env: dict | None = None,
               sample: float = 0.0) -> dict:
        return self.run([sys.executable, str(WORKER), mode, str(capture), *args], env=env, sample=sample)


def _tree_mem_self(pid: int) -> tuple[int, int]:
    """As _tree_mem, root included (no prefix process in between)."""
    a, f = _tree_mem(pid)
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    a += int(line.split()[1])
                elif line.startswith("RssFile:"):
                    f += int(line.split()[1])
    except OSError:
        pass
    return a, f


def cache_files(d: str) -> int:
    return sum(len(fs) for _, _, fs in os.walk(d))


def med(xs):
    return statistics.median(xs)


# ---------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------
def fmt_rate(x: float) -> str:
    return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x / 1e3:.1f} k"


def fmt_mb(kb) -> str:
    return "-" if kb is None else f"{kb / 1024:.0f} MB"


def fmt_secs(xs: list[float]) -> str:
    if len(xs) == 1:
        return f"{xs[0]:.3f}"
    return f"{med(xs):.3f} ({min(xs):.3f}-{max(xs):.3f}, n={len(xs)})"


def versions(mods=("numba", "numpy", "dpkt", "scapy")) -> dict:
    v = {"python": platform.python_version()}
    for mod in mods:
        try:
            v[mod] = __import__(mod).__version__
        except Exception:  # pragma: no cover - report what is there
            v[mod] = "?"
    try:
        tv = subprocess.run(["tcpdump", "--version"], capture_output=True, text=True)
        v["tcpdump"] = " / ".join(line.strip() for line in tv.stdout.splitlines()[:2])
    except OSError:
        v["tcpdump"] = "?"
    return v


def machine() -> dict:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "loadavg": os.getloadavg()}


def git_state() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True).stdout.strip()
        return rev + (" + uncommitted changes in src/" if dirty else "")
    except OSError:
        return "?"
