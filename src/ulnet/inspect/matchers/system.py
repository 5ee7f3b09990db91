"""LAN and operating-system services: DHCP, DHCPv6, NetBIOS, SMB, SSDP, WSD,
NTP, Syslog, NFS (ONC RPC), SLP, LDAP, Kerberos, DCE/RPC, printer and
management discovery (BJNP, RMCP), monitoring agents (collectd, Munin,
Check_MK, Zabbix), LAN sync of desktop apps (Dropbox, Spotify, TiVo)."""

from ulnet.jit import njit

from ulnet.inspect.matchers._common import alnum, at, ber_len, digit, lower, upper
from ulnet.inspect.words import b, be16, be32, head, le16, lit

_X = lit(" * ")
_XML = lit("<?xml")
_SOAP = lit("<soap")
_S_E = lit("<s:E")
_BJNP = lit("BJNP")
_BNJB = lit("BNJB")
_PJNB = lit("PJNB")
_MFNP = lit("MFNP")
_MUNIN = lit("# munin ")
_NODE = lit("node ")
_CHECK = lit("<<<check")
_MK = lit("_mk>>>")
_ZBXD = lit("ZBXD")
_TIVOCONN = lit("tivoconn")
_ECT = lit("ect=")
_HOST_I = lit('{"host_i')
_VERSIO = lit('{"versio')
_DISPLA = lit('{"displa')
_SPOTUDP0 = lit("SpotUdp0")


@njit(cache=True)
def match_dhcp(w, n, sp, dp, d):
    """BOOTP header: op 1/2, htype 1 (Ethernet), hlen 6, few hops, flags
    but the broadcast bit zero, >= 240 bytes. The magic cookie sits at byte
    236, beyond what matchers see, so UDP ports 67/68 narrow the signature."""
    if n < 240 or (b(w, 0) != 1 and b(w, 0) != 2) or b(w, 1) != 1 or b(w, 2) != 6 or b(w, 3) > 16:
        return False
    if be16(w, 10) & 0x7FFF:
        return False
    return sp == 67 or dp == 67 or sp == 68 or dp == 68


@njit(cache=True)
def match_dhcpv6(w, n, sp, dp, d):
    """DHCPv6 message type 1..13 and a plausible first option code; the
    header has no magic, so UDP ports 546/547 narrow it."""
    if n < 8 or not (546 <= sp <= 547 or 546 <= dp <= 547):
        return False
    t = b(w, 0)
    if t < 1 or t > 13:
        return False
    if t >= 12:                      # relay: hop count, then two addresses
        return n >= 34 and b(w, 1) <= 32
    opt = be16(w, 4)
    return 1 <= opt <= 143 and be16(w, 6) <= n - 8


_SMB1 = lit(b"\xffSMB")
_SMB2 = lit(b"\xfeSMB")
_SMB3T = lit(b"\xfdSMB")


@njit(cache=True)
def _smb_frame(w, n):
    """A NetBIOS session message (type 0) whose 24-bit length fits."""
    if n < 36 or b(w, 0) != 0:
        return False
    ln = (b(w, 1) << 16) | be16(w, 2)
    return 32 <= ln <= 0xFFFFFF and ln + 4 >= n - 4


@njit(cache=True)
def _nb_name(w, k):
    """A NetBIOS first-level encoded name at k: length 32, then letters A..P
    (checks the characters visible in the first 32 bytes)."""
    if b(w, k) != 0x20:
        return False
    for i in range(k + 1, min(k + 11, 32)):
        c = b(w, i)
        if c < 0x41 or c > 0x50:
            return False
    return True


@njit(cache=True)
def match_netbios(w, n, sp, dp, d):
    """NetBIOS name service (UDP 137: DNS-like header, an encoded name at
    12), datagram service (UDP 138: type 0x10-0x12, the encoded source name
    at 14), session service (TCP 139: session request 0x81 with the encoded
    called name, or the positive response 0x82 on port 139), and SMB1
    carried in a session message (nDPI names that NetBIOS too, with SMBv1
    as the application)."""
    if n >= 50 and _nb_name(w, 12):
        op = (be16(w, 2) >> 11) & 0xF
        qd = be16(w, 4)
        an = be16(w, 6)
        return (op == 0 or 5 <= op <= 8) and qd + an >= 1 and qd <= 1 and an <= 1
    t = b(w, 0)
    if 0x10 <= t <= 0x12 and n >= 82 and b(w, 1) < 0x10 and _nb_name(w, 14):
        return be16(w, 10) + 14 <= n
    if t == 0x81 and b(w, 1) == 0 and be16(w, 2) == n - 4 and n >= 72:
        return _nb_name(w, 4)
    if t == 0x82 and n == 4 and be16(w, 1) == 0 and b(w, 3) == 0:
        return sp == 139 or dp == 139
    # SMB1 in a session message (TCP 139/445): nDPI reports it as NetBIOS (.SMBv1)
    return _smb_frame(w, n) and be32(w, 4) == _SMB1 and b(w, 8) <= 0xA5


@njit(cache=True)
def match_smbv23(w, n, sp, dp, d):
    """SMB2/3 over TCP: "\\xfeSMB" with header length 64, or the SMB3
    transform header "\\xfdSMB"."""
    if not _smb_frame(w, n):
        return False
    m = be32(w, 4)
    if m == _SMB2:
        return b(w, 8) == 64 and b(w, 9) == 0 and b(w, 16) <= 0x12
    return m == _SMB3T


_MSEARCH = lit("M-SEARCH")
_NOTIFY = lit("NOTIFY *")
_HTTP11 = lit("HTTP/1.1")
_SP200 = lit(" 200 ")


@njit(cache=True)
def match_ssdp(w, n, sp, dp, d):
    """SSDP on UDP: "M-SEARCH * HTTP/1.1", "NOTIFY * HTTP/1.1" or a unicast
    "HTTP/1.1 200" answer (HTTP over UDP is SSDP in practice)."""
    if n < 17:
        return False
    h = head(w, 8)
    if h == _MSEARCH:
        return at(w, 8, 3) == _X
    if h == _NOTIFY:
        return True
    return h == _HTTP11 and at(w, 8, 5) == _SP200


@njit(cache=True)
def match_wsd(w, n, sp, dp, d):
    """WS-Discovery: a SOAP envelope ("<?xml" or "<soap:"/"<s:Envelope")
    on UDP 3702 (the port narrows a generic XML opening)."""
    if n < 32 or (sp != 3702 and dp != 3702):
        return False
    return head(w, 5) == _XML or head(w, 5) == _SOAP or head(w, 4) == _S_E


@njit(cache=True)
def match_ntp(w, n, sp, dp, d):
    """NTP: version 1..4 and a mode in the first byte; modes 1..5 the fixed
    48-byte packet (optionally with a MAC); control messages (mode 6) an
    opcode of 1..31 and a data count that fits; private mode 7 a known
    implementation and request code. One byte of header is weak, so UDP
    port 123 narrows it."""
    if sp != 123 and dp != 123:
        return False
    f = b(w, 0)
    v = (f >> 3) & 7
    mode = f & 7
    if v < 1 or v > 4 or mode == 0:
        return False
    if mode <= 5:
        return n == 48 or n == 52 or n == 60 or n == 68 or n == 72
    if mode == 6:
        return n >= 12 and 1 <= (b(w, 1) & 0x1F) <= 31 and 12 + be16(w, 10) <= n
    impl = b(w, 2)
    return n >= 8 and (impl == 0 or impl == 2 or impl == 3) and b(w, 3) <= 45


@njit(cache=True)
def match_syslog(w, n, sp, dp, d):
    """"<PRI>" with a priority of 0..191, then a version digit, a month or a
    timestamp (RFC 3164 and RFC 5424)."""
    if n < 6 or b(w, 0) != 0x3C:
        return False
    pri = 0
    k = 1
    while k < 5 and digit(b(w, k)):
        pri = pri * 10 + b(w, k) - 0x30
        k += 1
    if k == 1 or k == 5 or b(w, k) != 0x3E or pri > 191:
        return False
    c = b(w, k + 1)
    return digit(c) or upper(c) or lower(c)


@njit(cache=True)
def _rpc_call(w, n, o):
    """An ONC RPC call at offset o for NFS, mountd, portmapper, NLM or
    status, RPC version 2, a small program version."""
    if n < o + 24 or be32(w, o + 4) != 0 or be32(w, o + 8) != 2:
        return False
    prog = be32(w, o + 12)
    if prog != 100003 and prog != 100005 and prog != 100000 and prog != 100021 and prog != 100024:
        return False
    v = be32(w, o + 16)
    return 1 <= v <= 4 and be32(w, o + 20) <= 64


@njit(cache=True)
def match_nfs(w, n, sp, dp, d):
    """NFS and its helpers: an ONC RPC call (UDP), or one behind a TCP
    record mark whose length fits the segment."""
    if _rpc_call(w, n, 0):
        return True
    if b(w, 0) & 0x80:
        ln = be32(w, 0) & 0x7FFFFFFF
        return ln + 4 >= n and ln >= 40 and _rpc_call(w, n, 4)
    return False


@njit(cache=True)
def match_slp(w, n, sp, dp, d):
    """Service Location Protocol: v1 (function 1..10, 16-bit length equal
    to the datagram, a language code) or v2 (function 1..11, 24-bit length,
    language tag length 1..8 and a letter)."""
    if n < 16:
        return False
    v = b(w, 0)
    f = b(w, 1)
    if v == 1:
        return 1 <= f <= 10 and be16(w, 2) == n and lower(b(w, 6)) and lower(b(w, 7))
    if v == 2:
        ln = (b(w, 2) << 16) | be16(w, 3)
        tl = be16(w, 12)
        return 1 <= f <= 11 and ln == n and 1 <= tl <= 8 and lower(b(w, 14) | 0x20)
    return False


@njit(cache=True)
def _ldap_at(w, n, o):
    """An LDAPMessage at o: SEQUENCE, INTEGER messageID (1..4 octets), then
    an application-class protocolOp; the declared length fits the packet
    (equal, several messages in one segment, or the start of a long one)."""
    if b(w, o) != 0x30:
        return False
    lo, ln = ber_len(w, o + 1)
    if lo == 0 or ln < 5:
        return False
    p = o + 1 + lo
    if p + ln > n and n < 1024:
        return False
    if b(w, p) != 0x02 or b(w, p + 1) < 1 or b(w, p + 1) > 4:
        return False
    q = p + 2 + b(w, p + 1)
    if q >= 32:
        return False
    t = b(w, q)
    # bind (60/61), unbind (42), search (63/64/65/73), modify .. extended (66-78), abandon (50)
    return 0x60 <= t <= 0x78 or t == 0x42 or t == 0x50 or t == 0x4A


@njit(cache=True)
def match_ldap(w, n, sp, dp, d):
    """LDAP (TCP and CLDAP over UDP): BER LDAPMessage whose declared length
    fits the payload, a message id and a protocol operation tag."""
    return n >= 7 and _ldap_at(w, n, 0)


@njit(cache=True)
def _krb_at(w, n, o):
    """A Kerberos message at o: [APPLICATION 10..14/30] SEQUENCE and the
    protocol version 5 as the first field ([0] or [1] INTEGER 5)."""
    t = b(w, o)
    if not (0x6A <= t <= 0x6E or t == 0x7E):
        return False
    lo, ln = ber_len(w, o + 1)
    if lo == 0 or ln < 16:
        return False
    p = o + 1 + lo
    if b(w, p) != 0x30:
        return False
    l2, _ = ber_len(w, p + 1)
    if l2 == 0:
        return False
    q = p + 1 + l2
    if q + 5 > 32:
        return False
    tag = b(w, q)
    return (tag == 0xA0 or tag == 0xA1) and at(w, q + 1, 4) == 0x03020105


@njit(cache=True)
def match_kerberos(w, n, sp, dp, d):
    """Kerberos 5 AS/TGS request and reply, AP request, KRB-ERROR: the
    ASN.1 application tag and pvno 5 (UDP; TCP after a 4-byte length)."""
    if n < 20:
        return False
    if _krb_at(w, n, 0):
        return True
    return be32(w, 0) + 4 >= n and be32(w, 0) < 0x100000 and _krb_at(w, n, 4)


@njit(cache=True)
def match_dcerpc(w, n, sp, dp, d):
    """DCE/RPC connection-oriented PDU: version 5.0/5.1, a packet type of
    0..19, little-endian data representation and a fragment length that
    fits the segment."""
    if n < 16 or b(w, 0) != 5 or b(w, 1) > 1 or b(w, 2) > 19:
        return False
    if b(w, 4) != 0x10 or b(w, 5) != 0 or b(w, 6) != 0 or b(w, 7) != 0:
        return False
    fl = le16(w, 8)
    return fl >= 16 and (fl == n or fl < n)


@njit(cache=True)
def match_bjnp(w, n, sp, dp, d):
    """Canon BJNP printer discovery and control: "BJNP"/"BNJP"/"PJNB"/"MFNP"
    magic, a device type and a command code."""
    h = head(w, 4)
    if n < 16:
        return False
    if h != _BJNP and h != _BNJB and h != _PJNB and h != _MFNP:
        return False
    return b(w, 4) <= 0x82 and b(w, 5) <= 0x30


@njit(cache=True)
def match_rmcp(w, n, sp, dp, d):
    """RMCP (IPMI over LAN, ASF): version 6, reserved 0, class 6 (ASF) or
    7 (IPMI) with a small message class."""
    if n < 8 or b(w, 0) != 6 or b(w, 1) != 0:
        return False
    c = b(w, 3) & 0x1F
    return c == 6 or c == 7


@njit(cache=True)
def match_collectd(w, n, sp, dp, d):
    """collectd binary network protocol: the first part a host (0), plugin
    (2) or type (4) string part with a length that fits, name characters
    and its NUL where visible; or a signed (0x0200) or encrypted (0x0210,
    spanning the datagram) packet."""
    if n < 8:
        return False
    t = be16(w, 0)
    pl = be16(w, 2)
    if t == 0x0210:                      # encrypted packet: one part, the whole datagram
        return pl == n
    if t == 0x0200:                      # signed packet: HMAC-SHA-256 and a user name
        return 37 <= pl <= n
    if pl < 6 or pl > n or pl > 260:
        return False
    if t != 0 and t != 2 and t != 4:     # host (always first from collectd), plugin, type
        return False
    for k in range(4, min(pl - 1, 32)):  # a host or plugin name: letters, digits, . - _ /
        c = b(w, k)
        if not (alnum(c) or c == 0x2E or c == 0x2D or c == 0x5F or c == 0x2F):
            return False
    return pl > 32 or b(w, pl - 1) == 0


@njit(cache=True)
def match_munin(w, n, sp, dp, d):
    """Munin node greeting "# munin node at "."""
    return n >= 16 and head(w, 8) == _MUNIN and at(w, 8, 5) == _NODE


@njit(cache=True)
def match_checkmk(w, n, sp, dp, d):
    """Check_MK agent output "<<<check_mk>>>"."""
    return n >= 14 and head(w, 8) == _CHECK and at(w, 8, 6) == _MK


@njit(cache=True)
def match_zabbix(w, n, sp, dp, d):
    """Zabbix agent/server protocol header "ZBXD" with flags 1 (or 3/5)."""
    return n >= 13 and head(w, 4) == _ZBXD and (b(w, 4) & 1) == 1 and b(w, 4) <= 7


@njit(cache=True)
def match_tivoconnect(w, n, sp, dp, d):
    """TiVo beacons "tivoconnect=" (any case)."""
    if n < 14:
        return False
    return (head(w, 8) | 0x2020202020202020) == _TIVOCONN and (at(w, 8, 4) | 0x20202000) == _ECT


@njit(cache=True)
def match_dropbox(w, n, sp, dp, d):
    """Dropbox LAN sync discovery: a JSON object starting {"host_int" or
    {"version" sent from and to UDP 17500 (the port narrows a generic JSON
    opening)."""
    if n < 20 or sp != 17500 or dp != 17500:
        return False
    return head(w, 8) == _HOST_I or head(w, 8) == _VERSIO or head(w, 8) == _DISPLA


@njit(cache=True)
def match_spotify(w, n, sp, dp, d):
    """Spotify LAN discovery "SpotUdp0" (UDP 57621), and the client's TCP
    hello: protocol version 00 04 00 00 and the length of the message."""
    if n >= 8 and head(w, 8) == _SPOTUDP0:
        return True
    return n >= 16 and be32(w, 0) == 0x00040000 and be16(w, 4) == n and b(w, 6) == 0x52 and b(w, 8) == 0x50
