"""Policy regress cases: run one case folder, return its outputs as text.

A case is tests/regress/policy/NAME/ with ``case.toml``::

    args = ["run", "--rules", "rules.conf", "--in", "lan=in.pcap", "--out", "wan=wan.pcap"]
    exit = 0

The command runs in a scratch copy of the folder. Outputs: ``stdout.txt``,
``stderr.txt`` (the scratch path replaced by ``$CASE``), and for every
capture file the run wrote (not an input), ``FILE.txt``: one line per packet
as tshark reads it back (time, length, addresses, ports, protocol, TCP
flags, ICMP type/code, checksum status). The same as text makes the diffs
readable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES_DIR = ROOT / "tests" / "regress" / "policy"
TSHARK_FIELDS = ("frame.time_epoch", "frame.len", "vlan.id", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
                 "ip.proto", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "tcp.flags.str",
                 "tcp.seq_raw", "tcp.ack_raw", "icmp.type", "icmp.code", "icmpv6.type", "icmpv6.code",
                 "ip.checksum.status", "tcp.checksum.status", "icmp.checksum.status", "icmpv6.checksum.status")


def tshark_text(path: Path) -> str:
    cmd = ["tshark", "-n", "-r", str(path), "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
           "-o", "udp.check_checksum:TRUE", "-T", "fields", "-E", "separator=|", "-E", "occurrence=f"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise AssertionError(f"tshark failed on {path}: {p.stderr}")
    return "|".join(TSHARK_FIELDS) + "\n" + p.stdout


def run_case(case: Path) -> dict[str, str]:
    spec = tomllib.loads((case / "case.toml").read_text())
    with tempfile.TemporaryDirectory(prefix="ulnet-case-") as tmp:
        work = Path(tmp) / case.name
        shutil.copytree(case, work, ignore=shutil.ignore_patterns("expected"))
        before = {p.name for p in work.iterdir()}
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
        p = subprocess.run([sys.executable, "-m", "ulnet.cli.main", *spec["args"]], cwd=work, capture_output=True,
                           text=True, timeout=600, env=env)
        want = spec.get("exit", 0)
        if p.returncode != want:
            raise AssertionError(f"{case.name}: exit {p.returncode}, expected {want}\n{p.stderr}")
        out = {"stdout.txt": p.stdout.replace(str(work), "$CASE"),
               "stderr.txt": p.stderr.replace(str(work), "$CASE")}
        for f in sorted(work.iterdir()):
            if f.name not in before and f.suffix in (".pcap", ".pcapng"):
                out[f.name + ".txt"] = tshark_text(f)
            elif f.name not in before and f.suffix == ".json":
                out[f.name + ".txt"] = f.read_text()
        return out
