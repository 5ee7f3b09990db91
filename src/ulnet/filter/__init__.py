"""filter -- tcpdump's filter expressions, compiled by libpcap, run on batches.

NAME
    ulnet.filter -- keep the packets a tcpdump expression accepts

SYNOPSIS
    f = Filter("tcp port 80")          # nothing compiled yet
    f.prepare([1])                     # compile for Ethernet now (FilterError if bad)
    n = f.apply(batch, n, counters)    # rows 0..n-1 compacted to the kept ones
    f.program(1)                       # the BPF_INSN array for Ethernet frames in files
    prog, why = f.live_program("eth0") # for SO_ATTACH_FILTER on a live socket (vlan in metadata)

DESCRIPTION
    The expression is compiled by libpcap (``ulnet.filter.libpcap``) once per
    link type met in the input: a pcap file has one, a pcapng file one per
    interface, so a filter is compiled for each interface's link type as its
    first packet arrives. All programs live in flat arrays; one compiled
    kernel (``ulnet.filter._kernels``) runs each packet's program over the
    whole batch and writes a keep mask, and a second moves the kept rows'
    source columns (off, caplen, wirelen, ts, port, linktype) to the front.
    Rejected packets are counted in ``filter.rejected`` and never decoded.

    A live socket gets ``live_program(IFACE)`` instead: compiled on a live
    libpcap handle, so ``vlan`` reads the tag the kernel stripped into the
    packet's metadata (``ulnet.filter.libpcap.compile_live``). The kernel
    runs it; it is not kept among the programs the batch kernels run.

    A link type first met in the middle of an input whose expression libpcap
    cannot compile for it (``vlan`` on raw IP, ``ether host`` on Linux
    cooked) has all its packets rejected, with one warning in ``problems``.
"""

from __future__ import annotations

import numpy as np

from ulnet.counters import C_FILTER_REJECTED
from ulnet.filter import _kernels as K
from ulnet.filter.libpcap import BPF_INSN, DEFAULT_SNAPLEN, FilterError, compile_expression, compile_live, version

__all__ = ["Filter", "FilterError", "BPF_INSN", "compile_expression", "compile_live", "version", "REJECT_ALL"]

REJECT_ALL = np.array([(0x06, 0, 0, 0)], dtype=BPF_INSN)      # ret #0


def validate(prog: np.ndarray) -> None:
    """The checks the kernel's sk_chk_filter makes that matter here: length,
    jumps inside the program, a return at the end. FilterError if not."""
    n = len(prog)
    if not 1 <= n <= K.MAX_STEPS:
        raise FilterError(f"program of {n} instructions (1..{K.MAX_STEPS})")
    code, jt, jf, k = (prog[f].astype(np.int64) for f in ("code", "jt", "jf", "k"))
    for i in range(n):
        c = code[i]
        if c & 7 == K.JMP:
            if c & 0xF0 == K.JA:
                if i + 1 + k[i] >= n:
                    raise FilterError(f"instruction {i}: jump past the end")
            elif i + 1 + max(jt[i], jf[i]) >= n:
                raise FilterError(f"instruction {i}: jump past the end")
    if code[n - 1] & 7 != K.RET:
        raise FilterError("program does not end with a return")


class Filter:
    """One expression, its programs by link type, the batch kernels."""

    def __init__(self, expression: str, snaplen: int = DEFAULT_SNAPLEN):
        self.expression = expression
        self.snaplen = snaplen
        self.programs: dict[int, np.ndarray] = {}
        self.problems: list[str] = []
        self.ltmap = np.full(1 << 16, -1, dtype=np.int32)
        self._flat = np.zeros(0, dtype=BPF_INSN)
        self._start = np.zeros(0, dtype=np.int64)
        self._len = np.zeros(0, dtype=np.int64)
        self._cols = None
        self._keep = np.zeros(0, dtype=np.bool_)

    # ------------------------------------------------------------------
    def program(self, linktype: int) -> np.ndarray:
        """The program for ``linktype``, compiled on first use (FilterError)."""
        p = self.programs.get(linktype)
        if p is None:
            p = compile_expression(self.expression, linktype, self.snaplen)
            validate(p)
            self._add(linktype, p)
        return p

    def live_program(self, ifname: str) -> tuple[np.ndarray, str | None]:
        """(program, None) for a live socket on ``ifname``; (the Ethernet
        file program, libpcap's reason) when no live handle could be opened
        there (FilterError if the expression does not compile)."""
        prog, why = compile_live(self.expression, ifname, self.snaplen)
        validate(prog)
        return prog, why

    def prepare(self, linktypes) -> None:
        """Compile for these link types now: a bad expression fails before
        any packet is read (FilterError)."""
        for lt in linktypes:
            self.program(int(lt))

    def _add(self, linktype: int, prog: np.ndarray) -> None:
        self.programs[linktype] = prog
        self._start = np.append(self._start, len(self._flat))
        self._len = np.append(self._len, len(prog))
        self._flat = np.concatenate([self._flat, prog])
        self._cols = K.as_table(self._flat)
        self.ltmap[linktype] = len(self._len) - 1

    def _late(self, linktype: int) -> None:
        """A link type met in the input: compile, or reject its packets."""
        try:
            self.program(linktype)
        except FilterError as e:
            self._add(linktype, REJECT_ALL)
            self.problems.append(f"filter: cannot be compiled for link type {linktype} ({e}): "
                                 f"its packets are rejected")

    # ------------------------------------------------------------------
    def mask(self, batch, n: int) -> np.ndarray:
        """keep mask (bool, length n) of rows 0..n-1 (a reused array)."""
        if len(self._keep) < batch.capacity:
            self._keep = np.zeros(batch.capacity, dtype=np.bool_)
        keep = self._keep
        i = 0
        while True:
            if self._cols is None:
                self._late(int(batch.linktype[i]))
                continue
            i = K.filter_batch(self._cols, self._start, self._len, self.ltmap, batch.buf, batch.off,
                               batch.caplen, batch.wirelen, batch.linktype, i, n, keep)
            if i >= n:
                return keep[:n]
            self._late(int(batch.linktype[i]))

    def apply(self, batch, n: int, counters=None) -> int:
        """Keep the accepted rows of 0..n-1 (moved to the front, in order);
        how many. Rejected rows are counted in ``filter.rejected``."""
        if n <= 0:
            return 0
        keep = self.mask(batch, n)
        kept = int(K.compact(keep, n, batch.off, batch.caplen, batch.wirelen, batch.ts, batch.port, batch.linktype))
        if counters is not None:
            counters[C_FILTER_REJECTED] += n - kept
        return kept
