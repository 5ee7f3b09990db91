"""Network namespaces and veth pairs for the live tests (root only).

Every name carries a random suffix; every address lives inside namespaces
made here; ``Topo.close()`` (run by the fixtures even when a test fails)
ends the processes it started, by pid, and deletes its namespaces, which
takes their veths with them.

    with Topo() as t:
        h1, br, h2 = t.ns("h1"), t.ns("br"), t.ns("h2")
        t.veth(h1, "eth0", br, "a")
        t.run(h1, "ping", "-c1", "10.199.0.2")
        p = t.popen(br, "ulnet", "bridge", "a", "b")
"""

from __future__ import annotations

import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ULNET = [sys.executable, "-m", "ulnet.cli.main"]


def is_root() -> bool:
    return os.geteuid() == 0


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


class Topo:
    def __init__(self):
        self.tag = secrets.token_hex(3)
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen] = []

    # -- building ---------------------------------------------------------
    def ns(self, role: str) -> str:
        name = f"ulnt-{role}-{self.tag}"
        subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
        self.namespaces.append(name)
        self.run(name, "ip", "link", "set", "dev", "lo", "up")
        for k in ("net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"):
            self.run(name, "sysctl", "-qw", f"{k}=0", check=False)
        return name

    def veth(self, ns1: str, if1: str, ns2: str, if2: str, up: bool = True) -> None:
        tmp1, tmp2 = f"u{self.tag}{secrets.token_hex(2)}", f"v{self.tag}{secrets.token_hex(2)}"
        subprocess.run(["ip", "link", "add", tmp1, "type", "veth", "peer", "name", tmp2], check=True, timeout=10)
        try:
            subprocess.run(["ip", "link", "set", "dev", tmp1, "netns", ns1, "name", if1], check=True, timeout=10)
            subprocess.run(["ip", "link", "set", "dev", tmp2, "netns", ns2, "name", if2], check=True, timeout=10)
        except BaseException:
            subprocess.run(["ip", "link", "del", tmp1], timeout=10, capture_output=True)
            raise
        if up:
            self.run(ns1, "ip", "link", "set", "dev", if1, "up")
            self.run(ns2, "ip", "link", "set", "dev", if2, "up")

    def addr(self, ns: str, ifname: str, *cidrs: str) -> None:
        for c in cidrs:
            self.run(ns, "ip", "addr", "add", c, "dev", ifname, *(["nodad"] if ":" in c else []))

    def offloads(self, ns: str, ifname: str, on: bool) -> None:
        self.run(ns, "ethtool", "-K", ifname, "tso", "on" if on else "off", "gso", "on" if on else "off",
                 "gro", "on" if on else "off", "tx", "on" if on else "off", check=False)

    # -- running ----------------------------------------------------------
    def cmd(self, ns: str, *argv) -> list[str]:
        return ["ip", "netns", "exec", ns, *[str(a) for a in argv]]

    def run(self, ns: str, *argv, timeout: float = 30, check: bool = True, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        p = subprocess.run(self.cmd(ns, *argv), timeout=timeout, **kw)
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, argv))} in {ns} exited {p.returncode}: "
                                 f"{p.stdout[-2000:] if p.stdout else ''}{p.stderr[-2000:] if p.stderr else ''}")
        return p

    def popen(self, ns: str, *argv, **kw) -> subprocess.Popen:
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("text", True)
        p = subprocess.Popen(self.cmd(ns, *argv), **kw)
        self.procs.append(p)
        return p

    def ulnet(self, ns: str, *args, **kw) -> subprocess.Popen:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT / "src")
        kw.setdefault("env", env)
        return self.popen(ns, *ULNET, *args, **kw)

    def run_ulnet(self, ns: str, *args, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT / "src")
        return self.run(ns, *ULNET, *args, timeout=timeout, check=False, env=env, **kw)

    @staticmethod
    def stop(p: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 20) -> tuple[str, str]:
        """Signal a process we started (by pid) and collect its output."""
        if p.poll() is None:
            p.send_signal(sig)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate(timeout=10)
        return getattr(p, "_ul_stdout", "") + (out or ""), getattr(p, "_ul_stderr", "") + (err or "")

    @staticmethod
    def read_more(p: subprocess.Popen, stream: str = "stderr", timeout: float = 0.0) -> str:
        """What the process wrote on ``stream`` so far (kept on the Popen object)."""
        f = getattr(p, stream)
        key = "_ul_" + stream
        buf = getattr(p, key, "")
        fd = f.fileno()
        end = time.monotonic() + timeout
        while True:
            left = max(0.0, end - time.monotonic())
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk.decode(errors="replace")
            if time.monotonic() >= end:
                break
        setattr(p, key, buf)
        return buf

    def wait_output(self, p: subprocess.Popen, needle: str, stream: str = "stderr", timeout: float = 60) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            buf = self.read_more(p, stream, 0.2)
            if needle in buf:
                return buf
            if p.poll() is not None:
                buf = self.read_more(p, stream, 0.5)
                raise AssertionError(f"process exited {p.returncode} before printing {needle!r}: {buf[-3000:]}")
        raise AssertionError(f"timed out after {timeout}s waiting for {needle!r}: {self.read_more(p, stream)[-3000:]}")

    def wait_for(self, pred, timeout: float = 30, interval: float = 0.1, what: str = "condition"):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            v = pred()
            if v:
                return v
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    # -- teardown ---------------------------------------------------------
    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.terminate()
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)
                except ProcessLookupError:
                    pass
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()
        self.procs.clear()
        for ns in reversed(self.namespaces):
            # processes left in the namespace (children of ours) go with it
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=10).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        self.namespaces.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def bridge_topology(t: Topo, offloads: bool | None = None, ipv6: bool = True):
    """h1 (10.199.0.1, fd00:199::1) -- a [br] b -- h2 (10.199.0.2, fd00:199::2).
    Returns (h1, br, h2). ``offloads`` True/False sets TSO/GSO/GRO/tx-checksum
    on every veth; None leaves the defaults (on). ``ipv6=False``: no IPv6 on
    the hosts at all (no neighbour discovery chatter)."""
    h1, br, h2 = t.ns("h1"), t.ns("br"), t.ns("h2")
    if not ipv6:
        for ns in (h1, h2):
            t.run(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
    t.veth(h1, "eth0", br, "a")
    t.veth(h2, "eth0", br, "b")
    t.addr(h1, "eth0", "10.199.0.1/24", *(["fd00:199::1/64"] if ipv6 else []))
    t.addr(h2, "eth0", "10.199.0.2/24", *(["fd00:199::2/64"] if ipv6 else []))
    for ns in (br,):
        t.run(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", check=False)
        t.run(ns, "sysctl", "-qw", "net.ipv4.ip_forward=0", check=False)
    if offloads is not None:
        for ns, ifs in ((h1, ("eth0",)), (br, ("a", "b")), (h2, ("eth0",))):
            for i in ifs:
                t.offloads(ns, i, offloads)
    return h1, br, h2
