"""The detector registry: which applications ulnet recognises, in the order
their matchers run.

NAME
    ulnet.inspect.registry -- the ordered application table

DESCRIPTION
    One row per application: (name, category, transport, matcher, ports, ip).
    ``name`` is nDPI's spelling (results compare directly with nDPI and
    NFStream), ``category`` nDPI's category name. ``transport`` says which
    packets the matcher sees: "tcp", "udp" or "both"; an integer instead
    means "decided by IP protocol number" (ICMP, IGMP, ESP, ...: no matcher).
    ``matcher`` is "module:function" under ulnet.inspect.matchers, or None
    for applications known only by port or protocol. ``ports`` are the
    last-resort port guesses used at export for flows no matcher decided
    (confidence "port"). ``ip`` lists further IP protocol numbers that decide
    a row that also has a payload matcher (IPSec: ESP and AH, and its key
    exchange, IKE, over UDP).

    Application id = row index + 1; 0 is Unknown. Ids are stable only within
    one version: use names across versions.

ORDER
    Matchers run top to bottom and the first that says yes decides that
    direction. Shallow, exact signatures come first (a magic number, a
    fixed banner); broad ones that could swallow others come last (RTP,
    generic binary heuristics). Keep a comment on every block saying why it
    sits where it does. The blocks, in order: IP protocol numbers; TLS,
    QUIC, DTLS; long magic strings and numbers; text protocols whose
    request lines look like HTTP's (RTSP, SIP, NATS), then HTTP; other
    keyword protocols; the DNS family; binary headers whose length fields
    must agree with the payload; short headers narrowed by their service
    port; RTP.

FAMILIES
    matchers/system.py (LAN and OS services), netops.py (management, AAA,
    flow export, operator tunnels), mail.py, files.py, remote.py, vpn.py
    (and proxies), database.py, messaging.py (chat, brokers, RPC), voip.py,
    media.py, p2p.py (and crypto currencies), iot.py (industrial and home
    automation), games.py; _common.py holds their shared helpers. web.py
    and network.py hold TLS/QUIC/DTLS/HTTP and the DNS family.

ADDING AN APPLICATION
    1. a matcher in ulnet/inspect/matchers/<family>.py over (w, n, sp, dp, d);
    2. a row here, in the right block;
    3. a sample (a capture in ../shared/corpus/ndpi, or one made in tests);
    4. ``python -m ulnet.inspect.gen_dispatch`` to regenerate _dispatch.py
       (a test fails when it is stale), and a regress line in the tests
       (tests/test_inspect_matchers.py: a payload it accepts, near misses it
       refuses; the fuzz there covers every matcher by itself).

CAVEATS
    A flow is decided by its first matching packet. Continuations that nDPI
    names differently (STUN that goes on with DTLS, a mail session that
    turns to TLS: DTLS, SMTPS, POPS, IMAPS, FTPS) are the inspector's
    upgrade pass (ulnet.inspect.UPGRADES): it needs both names as rows here
    (SMTPS, POPS, IMAPS have no matcher of their own). RTCP has none: a
    strict one (version 2, a sender or receiver report first, a length that
    holds its report blocks and fits, a non-zero SSRC) found nDPI's 2 RTCP
    flows of the corpus but also called RTCP 3 flows nDPI names otherwise
    (KakaoTalk_Voice, by its servers' addresses; a Discord call whose first
    packet is a report): precision 0.40.
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
    ip: tuple[int, ...] = ()


def _rows():
    A = App
    return [
        # ---- decided by IP protocol number: no payload needed ----------------
        A("ICMP", "Network", 1, None),
        A("IGMP", "Network", 2, None),
        A("ICMPV6", "Network", 58, None),
        A("GRE", "Network", 47, None),
        A("OSPF", "Network", 89, None),
        A("IP_PIM", "Network", 103, None),
        A("VRRP", "Network", 112, None),
        A("SCTP", "Network", 132, None),
        # ---- exact magic at offset 0: cannot collide with each other ---------
        A("TLS", "Web", "tcp", "web:match_tls", (443, 8443)),
        A("QUIC", "Web", "udp", "web:match_quic", (443,)),
        A("DTLS", "Web", "udp", "web:match_dtls", ()),
        # ---- long magic strings and numbers (6+ fixed bytes): unambiguous, ---
        # ---- so they go before everything that only checks a few bits -------
        A("SSH", "RemoteAccess", "tcp", "remote:match_ssh", (22,)),
        A("BitTorrent", "Download", "both", "p2p:match_bittorrent", (6881, 6771, 51413)),
        A("Gnutella", "Download", "tcp", "p2p:match_gnutella", (6346,)),
        A("Syncthing", "Download", "both", "p2p:match_syncthing", (21027, 22000)),
        A("BITCOIN", "Crypto_Currency", "tcp", "p2p:match_bitcoin", (8333,)),
        A("Monero", "Crypto_Currency", "tcp", "p2p:match_monero", (18080,)),
        A("Tailscale", "VPN", "udp", "vpn:match_tailscale", (41641,)),
        A("HAProxy", "Web", "tcp", "vpn:match_haproxy", ()),
        A("HTTP2", "Web", "tcp", "media:match_http2", ()),
        A("RSYNC", "DataTransfer", "tcp", "files:match_rsync", (873,)),
        A("Git", "Collaborative", "tcp", "files:match_git", (9418,)),
        A("Munin", "System", "tcp", "system:match_munin", (4949,)),
        A("CHECKMK", "DataTransfer", "tcp", "system:match_checkmk", (6556,)),
        A("Zabbix", "Network", "tcp", "system:match_zabbix", (10050, 10051)),
        A("TiVoConnect", "Network", "both", "system:match_tivoconnect", (2190,)),
        A("Spotify", "Music", "both", "system:match_spotify", (57621, 4070)),
        A("Source_Engine", "Game", "udp", "games:match_source_engine", (27015,)),
        A("RakNet", "Game", "udp", "games:match_raknet", (19132,)),
        A("Yojimbo", "Game", "udp", "games:match_yojimbo", ()),
        A("Controller_Area_Network", "System", "udp", "iot:match_can", ()),
        A("EtherSIO", "IoT-Scada", "udp", "iot:match_ethersio", (6060,)),
        A("RTPS", "RPC", "udp", "iot:match_rtps", (7400, 7410)),
        A("Corba", "RPC", "both", "messaging:match_corba", (683,)),
        A("HL7", "RPC", "tcp", "messaging:match_hl7", (2575,)),
        A("OpenWire", "RPC", "tcp", "messaging:match_openwire", (61616,)),
        A("FIX", "RPC", "tcp", "messaging:match_fix", ()),
        A("PPTP", "VPN", "tcp", "vpn:match_pptp", (1723,)),
        A("Citrix", "Network", "tcp", "remote:match_citrix", (1494, 2598)),
        A("VNC", "RemoteAccess", "tcp", "remote:match_vnc", (5900, 5901)),
        A("AVAST", "Network", "tcp", "netops:match_avast", ()),
        A("RipeAtlas", "Network", "udp", "netops:match_ripeatlas", ()),
        A("BJNP", "System", "udp", "system:match_bjnp", (8611, 8612)),
        A("TuyaLP", "IoT-Scada", "udp", "iot:match_tuyalp", (6667,)),
        A("BGP", "Network", "tcp", "netops:match_bgp", (179,)),
        A("WhatsApp", "Chat", "tcp", "messaging:match_whatsapp", (5222,)),
        A("Roughtime", "System", "both", "netops:match_roughtime", (2002,)),
        # ---- text protocols whose request lines look like HTTP's: before it --
        A("RTSP", "Media", "tcp", "media:match_rtsp", (554,)),
        A("SIP", "VoIP", "both", "voip:match_sip", (5060, 5061)),
        A("Nats", "RPC", "tcp", "messaging:match_nats", (4222,)),
        # ---- HTTP itself -----------------------------------------------------
        A("HTTP_Proxy", "Web", "tcp", "web:match_http_proxy", ()),      # "GET http://...": absolute form
        A("HTTP_Connect", "Web", "tcp", "web:match_http_connect", (3128,)),
        A("HTTP", "Web", "tcp", "web:match_http", (80, 8080)),
        # ---- other text protocols by keyword; FTPS and FTP before SMTP ------
        # ---- (all greet with "220": FTP's greeting names FTP, FTPS is the ----
        # ---- client's AUTH TLS) ----------------------------------------------
        A("SSDP", "System", "udp", "system:match_ssdp", (1900,)),
        A("FTPS", "Download", "tcp", "files:match_ftps", (990,)),
        A("FTP_CONTROL", "Download", "tcp", "files:match_ftp_control", (21,)),
        A("SMTP", "Email", "tcp", "mail:match_smtp", (25, 587)),
        A("POP3", "Email", "tcp", "mail:match_pop3", (110,)),
        A("IMAP", "Email", "tcp", "mail:match_imap", (143,)),
        A("Usenet", "Web", "tcp", "mail:match_usenet", (119,)),
        A("IRC", "Chat", "tcp", "messaging:match_irc", (194, 6667)),
        A("STOMP", "RPC", "tcp", "messaging:match_stomp", (61613,)),
        A("MGCP", "VoIP", "udp", "voip:match_mgcp", (2427, 2727)),
        A("Megaco", "VoIP", "udp", "voip:match_megaco", (2944,)),
        A("Mining", "Mining", "tcp", "p2p:match_mining", (3333,)),
        A("JSON-RPC", "RPC", "tcp", "messaging:match_json_rpc", ()),
        A("RESP", "Database", "tcp", "database:match_resp", (6379,)),
        A("Syslog", "System", "both", "system:match_syslog", (514,)),
        A("Ookla", "Network", "tcp", "netops:match_ookla", (8080,)),
        A("ATG", "IoT-Scada", "tcp", "iot:match_atg", (10001,)),
        A("Jabber", "Web", "tcp", "messaging:match_jabber", (5222, 5269)),
        A("WSD", "Network", "udp", "system:match_wsd", (3702,)),
        # ---- DNS family: header consistency plus the service port; DNSCrypt -
        # ---- first (its certificate query is DNS, its replies use 5353 too) --
        A("DNScrypt", "Network", "udp", "netops:match_dnscrypt", ()),
        A("MDNS", "Network", "udp", "network:match_mdns", (5353,)),
        A("LLMNR", "Network", "udp", "network:match_llmnr", (5355,)),
        A("DNS", "Network", "both", "network:match_dns", (53,)),
        # ---- binary headers with a magic value and a length that must agree --
        # ---- with the payload: several independent checks each --------------
        A("STUN", "Network", "both", "voip:match_stun", (3478,)),
        A("NetBIOS", "System", "both", "system:match_netbios", (137, 138, 139)),
        A("SMBv23", "System", "tcp", "system:match_smbv23", (445,)),
        A("Kerberos", "Network", "both", "system:match_kerberos", (88,)),
        A("LDAP", "System", "both", "system:match_ldap", (389,)),
        A("SNMP", "Network", "udp", "netops:match_snmp", (161, 162)),
        A("Service_Location_Protocol", "RPC", "both", "system:match_slp", (427,)),
        A("NFS", "DataTransfer", "both", "system:match_nfs", (2049, 111)),
        A("DCERPC", "RPC", "both", "system:match_dcerpc", (135,)),
        A("H323", "VoIP", "both", "voip:match_h323", (1719, 1720)),
        A("RDP", "RemoteAccess", "both", "remote:match_rdp", (3389,)),
        A("S7CommPlus", "IoT-Scada", "tcp", "iot:match_s7commplus", ()),
        A("S7Comm", "IoT-Scada", "tcp", "iot:match_s7comm", (102,)),
        A("IPSec", "VPN", "udp", "vpn:match_ike", (500, 4500), ip=(50, 51)),   # IKE; ESP, AH
        A("OpenVPN", "VPN", "both", "vpn:match_openvpn", (1194,)),
        A("WireGuard", "VPN", "udp", "vpn:match_wireguard", (51820,)),
        A("L2TP", "VPN", "udp", "vpn:match_l2tp", (1701,)),
        A("SOCKS", "Web", "tcp", "vpn:match_socks", (1080,)),
        A("PostgreSQL", "Database", "tcp", "database:match_postgresql", (5432,)),
        A("MySQL", "Database", "tcp", "database:match_mysql", (3306,)),
        A("MsSQL-TDS", "Database", "tcp", "database:match_mssql_tds", (1433,)),
        A("Oracle", "Database", "tcp", "database:match_oracle", (1521,)),
        A("MongoDB", "Database", "tcp", "database:match_mongodb", (27017,)),
        A("Memcached", "Network", "both", "database:match_memcached", (11211,)),
        A("Cassandra", "Database", "tcp", "database:match_cassandra", (9042,)),
        A("Elasticsearch", "System", "tcp", "database:match_elasticsearch", (9300,)),
        A("MQTT", "RPC", "tcp", "messaging:match_mqtt", (1883,)),
        A("AMQP", "RPC", "tcp", "messaging:match_amqp", (5672,)),
        A("Kafka", "RPC", "tcp", "messaging:match_kafka", (9092,)),
        A("SMPP", "Download", "tcp", "messaging:match_smpp", (2775,)),
        A("Thrift", "RPC", "both", "messaging:match_thrift", ()),
        A("OICQ", "Chat", "udp", "messaging:match_oicq", (8000,)),
        A("Diameter", "Network", "tcp", "netops:match_diameter", (3868,)),
        A("collectd", "System", "udp", "system:match_collectd", (25826,)),
        A("Radius", "Network", "udp", "netops:match_radius", (1812, 1813)),
        A("NetFlow", "Network", "udp", "netops:match_netflow", (2055, 4739)),
        A("sFlow", "Network", "udp", "netops:match_sflow", (6343,)),
        A("Teredo", "Network", "udp", "netops:match_teredo", (3544,)),
        A("XDMCP", "RemoteAccess", "udp", "remote:match_xdmcp", (177,)),
        A("TeamViewer", "RemoteAccess", "both", "remote:match_teamviewer", (5938,)),
        A("Telnet", "RemoteAccess", "tcp", "remote:match_telnet", (23,)),
        A("Modbus", "IoT-Scada", "tcp", "iot:match_modbus", (502,)),
        A("BACnet", "IoT-Scada", "udp", "iot:match_bacnet", (47808,)),
        A("DNP3", "IoT-Scada", "tcp", "iot:match_dnp3", (20000,)),
        A("IEC60870", "IoT-Scada", "tcp", "iot:match_iec60870", (2404,)),
        A("EthernetIP", "Network", "both", "iot:match_ethernetip", (44818,)),
        A("CIP", "IoT-Scada", "udp", "iot:match_cip", (2222,)),
        A("HiSLIP", "IoT-Scada", "tcp", "iot:match_hislip", (4880,)),
        A("KNXnet_IP", "IoT-Scada", "both", "iot:match_knxnet_ip", (3671,)),
        A("IEEE-C37118", "IoT-Scada", "both", "iot:match_ieee_c37118", (4712, 4713)),
        A("BeckhoffADS", "IoT-Scada", "tcp", "iot:match_beckhoff_ads", (48898,)),
        A("IEC62056", "IoT-Scada", "both", "iot:match_iec62056", (4059,)),
        A("SOMEIP", "RPC", "both", "iot:match_someip", (30490,)),
        A("TPLINK_SHP", "IoT-Scada", "both", "iot:match_tplink_shp", (9999,)),
        A("CiscoSkinny", "VoIP", "tcp", "voip:match_skinny", (2000,)),
        A("BFCP", "Video", "both", "voip:match_bfcp", ()),
        A("i3D", "Game", "udp", "games:match_i3d", ()),
        A("Discord", "Collaborative", "udp", "voip:match_discord", ()),
        A("RMCP", "System", "udp", "system:match_rmcp", (623,)),
        A("RTMP", "Media", "tcp", "media:match_rtmp", (1935,)),
        A("MPEG_TS", "Media", "udp", "media:match_mpeg_ts", ()),
        A("TFTP", "DataTransfer", "udp", "files:match_tftp", (69,)),
        # ---- short binary headers that need their service port to narrow ----
        # ---- them (the docstrings say so) ------------------------------------
        A("DHCP", "Network", "udp", "system:match_dhcp", (67, 68)),
        A("DHCPV6", "Network", "udp", "system:match_dhcpv6", (546, 547)),
        A("NTP", "System", "udp", "system:match_ntp", (123,)),
        A("Dropbox", "Cloud", "udp", "system:match_dropbox", (17500,)),
        A("HSRP", "Network", "udp", "netops:match_hsrp", (1985, 2029)),
        A("UBNTAC2", "Network", "udp", "netops:match_ubntac2", (10001,)),
        A("NAT-PMP", "Network", "udp", "netops:match_natpmp", (5351,)),
        A("GTP", "Network", "udp", "netops:match_gtp", (2123, 2152, 3386)),
        A("CAPWAP", "Network", "udp", "netops:match_capwap", (5246, 5247)),
        A("IAX", "VoIP", "udp", "voip:match_iax", (4569,)),
        A("Mumble", "VoIP", "udp", "voip:match_mumble", (64738,)),
        A("HART-IP", "IoT-Scada", "both", "iot:match_hart_ip", (5094,)),
        A("FINS", "IoT-Scada", "both", "iot:match_fins", (9600,)),
        A("COAP", "IoT-Scada", "udp", "iot:match_coap", (5683, 5684)),
        A("OpenFlow", "Network", "tcp", "iot:match_openflow", (6653, 6633)),
        A("RSH", "RemoteAccess", "tcp", "remote:match_rsh", (514,)),
        # ---- no matcher: TLS on the implicit-TLS mail ports, and the name ----
        # ---- the upgrade pass gives a mail session that turns to TLS ---------
        A("SMTPS", "Email", "tcp", None, (465,)),
        A("POPS", "Email", "tcp", None, (995,)),
        A("IMAPS", "Email", "tcp", None, (993,)),
        # ---- greedy last: RTP (version bits and a payload type) ----------------
        A("RTP", "Media", "udp", "voip:match_rtp", ()),
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


def matcher_function(spec: str):
    """The compiled matcher a row names (``App.matcher``, "module:function"
    under ulnet.inspect.matchers); imports its module (and numba) on the
    first call."""
    import importlib
    mod, fn = spec.split(":")
    return getattr(importlib.import_module(f"ulnet.inspect.matchers.{mod}"), fn)
