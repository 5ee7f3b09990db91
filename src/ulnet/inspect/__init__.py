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

    Metadata: the packet that decided TLS, HTTP (and HTTP_Proxy), DNS
    (MDNS, LLMNR) or DHCP is read again, in the same kernel, for the server
    name (TLS SNI, HTTP Host without the port, DNS query name, DHCP host name), the HTTP
    User-Agent, the TLS ALPN, the DNS query type. Applications in KEEP_OPEN
    have their later packets read too, until their metadata is complete
    (DNS: the last message read, up to a response; HTTP: a Host header);
    those in UPGRADES go through the matchers again (SMTP then TLS is
    SMTPS). QUIC client Initials are decrypted (RFC 9001, ulnet.inspect.
    quic) to read the SNI and ALPN of their ClientHello, or a gQUIC CHLO's
    SNI and UAID. Names follow nDPI's conventions (docs/inspect.md). These
    go to a metadata slot of the flow, exported with the flow record
    (requested_server_name, user_agent, alpn, dns_query_type).

    See docs/inspect.md for the whole page: conventions, adding an
    application, caveats.

CAVEATS
    A TLS ClientHello split over several TCP segments yields no name unless
    the SNI is in the first segment. Matchers see one packet at a time: no
    stream reassembly.
"""

from __future__ import annotations

DEFAULT_MAX_DPI = 4

_LAZY = ("Inspector", "KEEP_OPEN", "UPGRADES")


def __getattr__(name):
    # the stage (numba, the kernels) loads when it is first asked for: the
    # registry alone (ulnet check, ulnet apps) starts in a fraction of the time
    if name in _LAZY:
        from ulnet.inspect import stage
        return getattr(stage, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
