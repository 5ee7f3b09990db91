"""inspect -- the application of each flow from its first payload bytes.

NAME
    ulnet.inspect -- lightweight inspection (after libpeak's peak_li and
    libprotoident)

SYNOPSIS
    insp = Inspector(max_dpi=4)
    for batch in pipeline:            # after the flow stage
        insp.process(batch, flow_table, counters)

DESCRIPTION
    For each flow whose application is still open, the first ``max_dpi``
    payload packets of each direction go through the matchers of the
    registry (ulnet.inspect.registry), in its order, each looking at the
    first 32 payload bytes only. The first matcher that says yes decides that
    direction's application; the first direction decided gives the flow's
    application, with confidence ``payload``. Flows of other IP protocols
    (ICMP, IGMP, ESP, ...) are decided by the protocol number (confidence
    ``protocol``). A flow that no matcher decided gets, at export, a guess
    from the registry's port list (confidence ``port``), or stays Unknown
    (``none``). ``dpi_packets`` counts the payload packets inspected.

    Metadata: the packet that decided TLS, HTTP, DNS (MDNS, LLMNR) or DHCP
    is read once more for the server name (TLS SNI, HTTP Host without the
    port, DNS query name, DHCP host name; lower-cased but for DHCP), the
    HTTP User-Agent, the TLS ALPN, the DNS query type. QUIC client Initials
    are decrypted (RFC 9001, ulnet.inspect.quic) to read the SNI and ALPN of
    their ClientHello. These go to a metadata slot of the flow, exported with
    the flow record (requested_server_name, user_agent, alpn, dns_query_type).

CAVEATS
    A TLS ClientHello split over several TCP segments yields no name unless
    the SNI is in the first segment. Matchers see one packet at a time: no
    stream reassembly.
"""

from __future__ import annotations

import numpy as np

from ulnet.batch import PacketBatch
from ulnet.batch.columns import H_PAYLOAD, H_PAYLOAD_LEN
from ulnet.counters import C_INSPECT_QUIC_DECRYPTED, C_INSPECT_QUIC_FAILED
from ulnet.flow import FlowTable
from ulnet.flow import _kernels as FK
from ulnet.inspect import _kernels as K
from ulnet.inspect import quic
from ulnet.inspect.registry import ID

DEFAULT_MAX_DPI = 4
_QUIC_PENDING_MAX = 4096


class Inspector:
    def __init__(self, max_dpi: int = DEFAULT_MAX_DPI):
        if not 1 <= max_dpi <= 15:
            raise ValueError("max_dpi (payload packets inspected per direction) must be 1..15")
        self.max_dpi = max_dpi
        self.xapp = np.zeros(0, dtype=np.int64)
        self.app = np.zeros(0, dtype=np.int64)     # per packet: the flow's application after it
        self._sni = np.zeros(4, dtype=np.int64)
        g = ID.get
        self._ids = (g("TLS", -1), g("HTTP", -1), g("DNS", -1), g("MDNS", -1), g("LLMNR", -1), g("DHCP", -1))
        self._quic = g("QUIC", -1)
        self._quic_pieces: dict[int, list] = {}     # flow id -> CRYPTO pieces until the CH is whole

    def process(self, batch: PacketBatch, table: FlowTable, counters: np.ndarray,
                i0: int = 0, i1: int | None = None) -> None:
        """Inspect packets i0..i1 of a batch the flow table has just seen."""
        b = batch
        i1 = b.n if i1 is None else i1
        if len(self.xapp) < b.capacity:
            self.xapp = np.zeros(b.capacity, dtype=np.int64)
            self.app = np.zeros(b.capacity, dtype=np.int64)
        K.inspect_batch(b.buf, b.off, b.hdr, b.flow_entry, b.flow_dir, i0, i1, table.F, self.max_dpi,
                        counters, self.xapp, self.app)
        K.extract_batch(b.buf, b.off, b.hdr, b.flow_entry, self.xapp, i0, i1, table.F, table.META, table.MFREE,
                        table.S, counters, *self._ids, self._sni)
        if self._quic > 0:
            self._quic_names(b, table, counters, i0, i1)

    # ---- QUIC: a few packets per QUIC flow, in Python -----------------------------
    def _quic_names(self, b, table, counters, i0, i1):
        hits = np.flatnonzero(self.xapp[i0:i1] == self._quic) + i0
        for i in hits.tolist():
            e = int(b.flow_entry[i])
            fid = int(b.flow_id[i])
            p = int(b.off[i] + b.hdr[i, H_PAYLOAD])
            m = int(b.hdr[i, H_PAYLOAD_LEN])
            try:
                pieces = quic.initial_crypto(bytes(b.buf[p:p + m]))
                counters[C_INSPECT_QUIC_DECRYPTED] += 1
            except (ValueError, IndexError):
                counters[C_INSPECT_QUIC_FAILED] += 1
                continue
            have = self._quic_pieces.pop(fid, []) + pieces
            stream = quic.assemble(have)
            arr = np.frombuffer(stream, dtype=np.uint8)
            if len(arr) >= 4:
                need = 4 + ((int(arr[1]) << 16) | (int(arr[2]) << 8) | int(arr[3]))
            else:
                need = 1 << 30
            if len(arr) < need and len(self._quic_pieces) < _QUIC_PENDING_MAX:
                self._quic_pieces[fid] = have       # wait for the next Initial
                self._reopen(table, e)
            if not K.tls_client_hello(arr, 0, len(arr), self._sni):
                continue
            s_off, s_len, a_off, a_len = self._sni.tolist()
            if s_len <= 0 and a_len <= 0:
                continue
            ms = K._slot(table.F, e, table.META, table.MFREE, table.S, counters)
            if ms < 0:
                continue
            if s_len > 0:
                K._put(table.META, ms, FK.M_NAME, FK.M_NAME_MAX, arr, s_off, s_len, True)
            if a_len > 0:
                K._put(table.META, ms, FK.M_ALPN, FK.M_ALPN_MAX, arr, a_off, a_len, False)
            self._quic_pieces.pop(fid, None)

    @staticmethod
    def _reopen(table, e):
        """Let the flow's next client packet through inspection again (the
        rest of a ClientHello split over two Initials)."""
        a = int(table.F[e, FK.F_APP])
        a &= ~(3 << FK.A_DONE_SHIFT)
        table.F[e, FK.F_APP] = a
