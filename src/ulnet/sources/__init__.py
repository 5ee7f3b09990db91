"""sources -- where packets come from.

Capture files (``ulnet.sources.capture``: pcap, pcapng, ERF, gzip, stdin).
Live interfaces come with the live-I/O work. Every source fills PacketBatch
source columns (``off``, ``caplen``, ``wirelen``, ``ts``, ``port``,
``linktype``) over a buffer it owns.
"""

from ulnet.sources.capture import CaptureError, CaptureReader, open_capture

__all__ = ["CaptureError", "CaptureReader", "open_capture"]
