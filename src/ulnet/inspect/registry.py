"""The detector registry: which applications ulnet recognises, in the order
their matchers run.

NAME
    ulnet.inspect.registry -- the ordered application table

DESCRIPTION
    One row per application: (name, category, transport, matcher, ports).
    ``name`` is nDPI's spelling (results compare directly with nDPI and
    NFStream), ``category`` nDPI's category name. ``transport`` says which
    packets the matcher sees: "tcp", "udp" or "both"; an integer instead
    means "decided by IP protocol number" (ICMP, IGMP, ESP, ...: no matcher).
    ``matcher`` is "module:function" under ulnet.inspect.matchers, or None
    for applications known only by port or protocol. ``ports`` are the
    last-resort port guesses used at export for flows no matcher decided
    (confidence "port").

    Application id = row index + 1; 0 is Unknown. Ids are stable only within
    one version: use names across versions.

ORDER
    Matchers run top to bottom and the first that says yes decides that
    direction. Shallow, exact signatures come first (a magic number, a
    fixed banner); broad ones that could swallow others come last (RTP,
    generic binary heuristics). Keep a comment on every block saying why it
    sits where it does.

ADDING AN APPLICATION
    1. a matcher in ulnet/inspect/matchers/<family>.py over (w, n, sp, dp, d);
    2. a row here, in the right block;
    3. a sample (a capture in ../shared/corpus/ndpi, or one made in tests);
    4. ``python -m ulnet.inspect.gen_dispatch`` to regenerate _dispatch.py
       (a test fails when it is stale), and a regress line in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class App:
    name: str
    category: str
    transport: str | int
    matcher: str | None
    ports: tuple[int, ...] = ()


def _rows():
    A = App
    return [
        # ---- decided by IP protocol number: no payload needed ----------------
        A("ICMP", "Network", 1, None),
        A("IGMP", "Network", 2, None),
        A("ICMPV6", "Network", 58, None),
        A("IPSec", "VPN", 50, None),            # ESP
        A("GRE", "Network", 47, None),
        A("OSPF", "Network", 89, None),
        A("IP_PIM", "Network", 103, None),
        A("VRRP", "Network", 112, None),
        A("SCTP", "Network", 132, None),
        # ---- exact magic at offset 0: cannot collide with each other ---------
        A("TLS", "Web", "tcp", "web:match_tls", (443, 8443)),
        A("QUIC", "Web", "udp", "web:match_quic", (443,)),
        A("DTLS", "Web", "udp", "web:match_dtls", ()),
        # ---- text protocols by keyword ---------------------------------------
        A("HTTP_Connect", "Web", "tcp", "web:match_http_connect", (3128,)),
        A("HTTP", "Web", "tcp", "web:match_http", (80, 8080)),
        # ---- DNS family: header consistency plus the service port -----------
        A("MDNS", "Network", "udp", "network:match_mdns", (5353,)),
        A("LLMNR", "Network", "udp", "network:match_llmnr", (5355,)),
        A("DNS", "Network", "both", "network:match_dns", (53,)),
    ]


APPS: tuple[App, ...] = tuple(_rows())
UNKNOWN = "Unknown"
NAMES: tuple[str, ...] = (UNKNOWN,) + tuple(a.name for a in APPS)
CATEGORIES: tuple[str, ...] = ("Unknown",) + tuple(a.category for a in APPS)
ID: dict[str, int] = {name: i for i, name in enumerate(NAMES)}
assert len(ID) == len(NAMES), "duplicate application name in the registry"
assert len(NAMES) <= 1023, "application ids are 10 bits in the flow table"


def app_names() -> list[str]:
    """Every application name ulnet can report (nDPI spelling), Unknown first."""
    return list(NAMES)


def category_names() -> list[str]:
    """Every category name used by the registry."""
    return sorted(set(CATEGORIES))
