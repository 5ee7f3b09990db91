"""The inspection stage: ``Inspector`` (see the package's page, ulnet.inspect).

Kept out of the package's ``__init__`` so that what only needs the
registry (``ulnet check``, ``ulnet apps``, the rules compiler) does not
load numba and the inspection kernels.
"""

from __future__ import annotations

import numpy as np
from numba.core.errors import TypingError

from ulnet.batch import PacketBatch
from ulnet.batch.columns import H_PAYLOAD, H_PAYLOAD_LEN
from ulnet.counters import C_INSPECT_QUIC_DECRYPTED, C_INSPECT_QUIC_FAILED
from ulnet.flow import FlowTable
from ulnet.flow import _kernels as FK
from ulnet.inspect import DEFAULT_MAX_DPI, _dispatch
from ulnet.inspect import _kernels as K
from ulnet.inspect import quic
from ulnet.inspect.registry import ID, NAMES

_QUIC_PENDING_MAX = 4096
QUIC_STREAM_MAX = 16384      # bytes of a QUIC ClientHello kept (browsers': 0.3-2 KB)

# Applications whose metadata needs more packets than the one that decided
# them, and from which directions (bit 0 the client, bit 1 the server): DNS
# (the response's question, as nDPI reports it), HTTP and HTTP_Proxy (a Host
# header in a later segment, or after a response seen first), QUIC (a ClientHello split
# over several Initials).
KEEP_OPEN = {"DNS": 3, "MDNS": 3, "LLMNR": 3, "HTTP": 3, "HTTP_Proxy": 3, "QUIC": 1}

# A flow that changes protocol on the way, as nDPI names it: (decided as,
# then a packet the matchers call) -> the flow's application. A plain-text
# mail or file-transfer session that turns to TLS (STARTTLS, AUTH TLS) is
# the TLS variant, its name read from the ClientHello; STUN that carries a
# DTLS handshake (WebRTC) is DTLS. Those flows stay open for max_dpi
# packets per direction. Rows whose names are not in the registry are left
# out.
UPGRADES = {
    ("SMTP", "TLS"): "SMTPS",
    ("POP3", "TLS"): "POPS",
    ("IMAP", "TLS"): "IMAPS",
    ("FTP_CONTROL", "TLS"): "FTPS",
    ("STUN", "DTLS"): "DTLS",
}


class Inspector:
    def __init__(self, max_dpi: int = DEFAULT_MAX_DPI):
        if not 1 <= max_dpi <= 15:
            raise ValueError("max_dpi (payload packets inspected per direction) must be 1..15")
        self.max_dpi = max_dpi
        self.xapp = np.zeros(0, dtype=np.int64)
        self.app = np.zeros(0, dtype=np.int64)     # per packet: the flow's application after it
        self._sni = np.zeros(4, dtype=np.int64)
        g = ID.get
        self._ids = np.array([g("TLS", -1), g("HTTP", -1), g("DNS", -1), g("MDNS", -1), g("LLMNR", -1),
                              g("DHCP", -1), g("QUIC", -1), g("HTTP_Proxy", -1)], dtype=np.int64)
        assert len(self._ids) == K.N_IDS
        self._quic = g("QUIC", -1)
        self._keep_open = np.zeros(len(NAMES), dtype=np.uint8)
        for name, dirs in KEEP_OPEN.items():
            if name in ID:
                self._keep_open[ID[name]] = dirs
        self._upgrade = np.zeros((len(NAMES), len(NAMES)), dtype=np.int16)
        for (first, seen), then in UPGRADES.items():
            if first in ID and seen in ID and then in ID:
                self._upgrade[ID[first], ID[seen]] = ID[then]
                self._keep_open[ID[first]] |= 3 | 4
        # QUIC: flow id -> (stream bytes, byte-known marks) until the hello is whole
        self._quic_pieces: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._qbuf = np.zeros(QUIC_STREAM_MAX, dtype=np.uint8)      # quic_hello's scratch
        self._qhave = np.zeros(QUIC_STREAM_MAX, dtype=np.uint8)
        self._rows = np.zeros((256, 3), dtype=np.int64)
        self._no_stream = (np.zeros(0, dtype=np.uint8), np.zeros(0, dtype=np.uint8))

    def process(self, batch: PacketBatch, table: FlowTable, counters: np.ndarray,
                i0: int = 0, i1: int | None = None) -> None:
        """Inspect packets i0..i1 of a batch the flow table has just seen."""
        b = batch
        i1 = b.n if i1 is None else i1
        if len(self.xapp) < b.capacity:
            self.xapp = np.zeros(b.capacity, dtype=np.int64)
            self.app = np.zeros(b.capacity, dtype=np.int64)
        args = (b.buf, b.off, b.hdr, b.flow_entry, b.flow_dir, i0, i1, table.F, table.META,
                table.MFREE, table.S, self.max_dpi, counters, self.xapp, self.app, self._keep_open,
                self._upgrade, self._ids, self._sni)
        try:
            nquic = K.inspect_batch(*args)
        except TypingError:
            # a compile that needs the matchers, skipped at import because the
            # dispatcher's cache looked fresh (ulnet.inspect._dispatch)
            if not _dispatch.load_matchers():
                raise
            for kernel in (_dispatch.dispatch, K.inspect_batch):   # numba remembers failed compiles
                getattr(getattr(kernel, "_compiler", None), "_failed_cache", {}).clear()
            nquic = K.inspect_batch(*args)
        if nquic:
            self._quic_names(b, table, counters, i0, i1)

    # ---- QUIC: a few packets per QUIC flow, in Python -----------------------------
    def _quic_names(self, b, table, counters, i0, i1):
        """The client Initials of QUIC flows (xapp == QUIC): decrypt, put the
        handshake back together, read the name; close the flow's metadata
        once the hello is whole (or cannot be read)."""
        hits = np.flatnonzero(self.xapp[i0:i1] == self._quic)
        if not len(hits):
            return
        finished: set[int] = set()
        closed: list[int] = []                      # their entries (one flow each within a segment)
        unused: dict[int, list[int]] = {}           # flow id -> [entry, packets counted but not needed]
        rows = hits + i0
        start = b.off[rows] + b.hdr[rows, H_PAYLOAD]
        data = b.buf
        decrypted = failed = 0
        for fid, e, p, m in zip(b.flow_id[rows].tolist(), b.flow_entry[rows].tolist(), start.tolist(),
                                b.hdr[rows, H_PAYLOAD_LEN].tolist()):
            if fid in finished:
                unused.setdefault(fid, [e, 0])[1] += 1
                continue
            try:
                ini = quic.open_initial(data[p:p + m].tobytes())
                if ini.plain:
                    done = self._read_initial(table, e, counters, fid, ini)
                else:           # unencrypted gQUIC: its CHLO, from this packet
                    self._quic_pieces.pop(fid, None)
                    arr = np.frombuffer(quic.assemble(ini.pieces), np.uint8)
                    K.chlo_meta(arr, 0, len(arr), table.F, e, table.META, table.MFREE, table.S, counters)
                    done = True
                decrypted += 1
            except ValueError:
                failed += 1
                self._quic_pieces.pop(fid, None)
                done = True
            if done:
                finished.add(fid)
                closed.append(e)
        if closed:          # their metadata is complete: no more inspection
            table.F[closed, FK.F_APP] |= np.int64(K.DONE_BOTH << FK.A_DONE_SHIFT)
        counters[C_INSPECT_QUIC_DECRYPTED] += decrypted
        counters[C_INSPECT_QUIC_FAILED] += failed
        for e, k in unused.values():               # dpi_packets: only the packets that were read
            a = int(table.F[e, FK.F_APP])
            dpi = (a >> FK.A_DPI_SHIFT) & 0xFF
            c0 = max((dpi & 0xF) - k, 0)
            table.F[e, FK.F_APP] = (a & ~(0xF << FK.A_DPI_SHIFT)) | (c0 << FK.A_DPI_SHIFT)

    def _read_initial(self, table, e, counters, fid, ini) -> bool:
        """A decrypted Initial: its CRYPTO frames joined to the flow's
        stream and the hello read, by one kernel call (K.quic_hello); a TLS
        stream is kept (bounded) until the hello is whole, a gQUIC CHLO is
        read from the one packet. True when the flow is done."""
        prev = self._quic_pieces.pop(fid, None) or self._no_stream
        st, end = K.quic_hello(np.frombuffer(ini.plain, np.uint8), ini.crypto_type, ini.handshake == "chlo",
                               self._rows, prev[0], prev[1],
                               self._qbuf, self._qhave, table.F, e, table.META, table.MFREE, table.S, counters,
                               self._sni)
        if st < 0:
            raise ValueError("a frame runs past the end of the packet")
        if st == 0:
            if len(self._quic_pieces) >= _QUIC_PENDING_MAX:     # bounded: forget the oldest
                self._quic_pieces.pop(next(iter(self._quic_pieces)))
            self._quic_pieces[fid] = (self._qbuf[:end].copy(), self._qhave[:end].copy())
            self._qhave[:end] = 0
        return st == 1


def warm_quic() -> None:
    """Compile the QUIC Initial kernel (``ulnet warm``: the sample has no QUIC)."""
    from ulnet.counters import new_counters
    table, c = FlowTable(16), new_counters()
    Inspector()._read_initial(table, 0, c, 0, quic.Initial(1, "tls", [], b"\x06\x00\x01\x01", 6))
    # (read-only, as np.frombuffer gives the stage its CHLOs: another type for numba)
    K.chlo_meta(np.frombuffer(bytes(8), np.uint8), 0, 8, table.F, 0, table.META, table.MFREE, table.S, c)
