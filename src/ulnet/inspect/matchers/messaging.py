"""Chat and messaging: WhatsApp, XMPP (Jabber), IRC, OICQ (QQ); message
brokers and RPC: MQTT, AMQP, Kafka, STOMP, NATS, OpenWire (ActiveMQ),
SMPP, FIX, Thrift, CORBA (GIOP), JSON-RPC, HL7."""

from ulnet.jit import njit

from ulnet.inspect.matchers._common import at, digit, lower, upper
from ulnet.inspect.words import b, be16, be32, head, lit

_WA = lit("WA")
_IQ = lit("<iq ")
_XML_VE = lit("<?xml ve")
_STREAM = lit("<stream:")
_PRESENC = lit("<presenc")
_MESSAGE = lit("<message")
_END_STREAM = lit("</stream")
_NICK = lit("NICK ")
_USER = lit("USER ")
_NOTICE = lit("NOTICE ")
_MQTT = lit("MQTT")
_MQISDP = lit("MQIsdp")
_AMQP = lit("AMQP")
_STOMP = lit("STOMP\n")
_CONNECT = lit("CONNECT\n")
_CONNECTE = lit("CONNECTE")
_INFO = lit("INFO {")
_CONNECT2 = lit("CONNECT ")
_ACTIVEMQ = lit("ActiveMQ")
_K8 = lit("8=")
_K9 = lit("9=")
_GIOP = lit("GIOP")
_MIOP = lit("MIOP")
_JSONRPC = lit('"jsonrpc')
_MSH = lit("MSH|")


@njit(cache=True)
def match_whatsapp(w, n, sp, dp, d):
    """WhatsApp's client hello: the Noise "ED" routing prologue (ED 00 01,
    then 00 00 04 08 / 00 00 02 08 when in the same segment) or the older
    "WA" + protocol version."""
    h = head(w, 4)
    if h == 0x45440001:
        return n == 4 or (n >= 8 and (be32(w, 4) == 0x00000408 or be32(w, 4) == 0x00000208))
    return n >= 10 and head(w, 2) == _WA and 1 <= b(w, 2) <= 6 and b(w, 3) <= 9 and d == 0


@njit(cache=True)
def _xmpp_port(p):
    return p == 5222 or p == 5223 or p == 5269


@njit(cache=True)
def match_jabber(w, n, sp, dp, d):
    """XMPP: a stream opening ("<?xml version" or "<stream:stream") or end,
    or a stanza (<presence, <message, <iq) on the client or server XMPP
    ports (XML is generic: the ports narrow it)."""
    if n < 14 or not (_xmpp_port(sp) or _xmpp_port(dp)):
        return False
    h = head(w, 8)
    if h == _XML_VE or h == _STREAM or h == _PRESENC or h == _MESSAGE or h == _END_STREAM:
        return True
    return head(w, 4) == _IQ


@njit(cache=True)
def match_irc(w, n, sp, dp, d):
    """IRC registration: NICK <nick>, or USER with the ":" of the real
    name; a server notice or numeric reply ":server NOTICE"/":server 001"."""
    if n < 8:
        return False
    h5 = head(w, 5)
    if h5 == _NICK:
        c = b(w, 5)
        return lower(c) or upper(c) or c == 0x5F or c == 0x5B
    if h5 == _USER:
        if sp == 21 or dp == 21 or sp == 110 or dp == 110:
            return False
        for k in range(6, min(n, 31)):
            if b(w, k) == 0x20 and b(w, k + 1) == 0x3A:
                return True
        return False
    if b(w, 0) == 0x3A:
        for k in range(2, min(n, 24)):
            if b(w, k) == 0x20:
                t = at(w, k + 1, 7)
                return t == _NOTICE or (digit(b(w, k + 1)) and digit(b(w, k + 2))
                                                and digit(b(w, k + 3)) and b(w, k + 4) == 0x20)
        return False
    return False


@njit(cache=True)
def match_oicq(w, n, sp, dp, d):
    """OICQ (QQ over UDP), as nDPI checks it: flag 0x02, client version
    0x3b0b, a command of 1..0xb5 or 0x3f7."""
    if n < 7 or b(w, 0) != 2 or be16(w, 1) != 0x3B0B:
        return False
    c = be16(w, 3)
    return (1 <= c <= 0xB5) or c == 0x3F7


@njit(cache=True)
def match_mqtt(w, n, sp, dp, d):
    """MQTT CONNECT: packet type 1, a 1..4 byte remaining length, the
    protocol name "MQTT" (3.1.1/5) or "MQIsdp" (3.1) and a level of 3..5."""
    if n < 12 or b(w, 0) != 0x10:
        return False
    k = 1
    while k < 5 and b(w, k) & 0x80:
        k += 1
    if k == 5:
        return False
    k += 1
    if be16(w, k) == 4 and at(w, k + 2, 4) == _MQTT:
        return 4 <= b(w, k + 6) <= 5
    return be16(w, k) == 6 and at(w, k + 2, 6) == _MQISDP and b(w, k + 8) == 3


@njit(cache=True)
def match_amqp(w, n, sp, dp, d):
    """AMQP: the protocol header "AMQP" + version, or a method frame (type 1)
    whose size + 8 is the segment and whose class is a known one."""
    if n >= 8 and head(w, 4) == _AMQP:
        return b(w, 4) <= 1 and b(w, 5) <= 1
    if n < 12 or b(w, 0) != 1 or be32(w, 3) + 8 != n:
        return False
    c = be16(w, 7)
    return c == 10 or c == 20 or c == 40 or c == 50 or c == 60 or c == 85 or c == 90


@njit(cache=True)
def match_kafka(w, n, sp, dp, d):
    """Kafka request: a 4-byte size equal to the rest of the segment, an API
    key of 0..74, an API version of 0..16, then a client id of printable
    characters (or null)."""
    if n < 14 or be32(w, 0) != n - 4:
        return False
    if be16(w, 4) > 74 or be16(w, 6) > 16:
        return False
    cl = be16(w, 12)
    if cl == 0xFFFF:
        return True
    c = b(w, 14)
    return 1 <= cl <= 255 and 14 + cl <= n and 0x21 <= c < 0x7F


@njit(cache=True)
def match_stomp(w, n, sp, dp, d):
    """STOMP frames that open a session: "STOMP", "CONNECT" or "CONNECTED",
    a newline, then a header name."""
    if n < 12:
        return False
    if head(w, 6) == _STOMP:
        return lower(b(w, 6))
    if head(w, 8) == _CONNECT:
        return lower(b(w, 8))
    return head(w, 8) == _CONNECTE and b(w, 8) == 0x44 and b(w, 9) == 0x0A


@njit(cache=True)
def match_nats(w, n, sp, dp, d):
    """NATS: the server's "INFO {" greeting or the client's "CONNECT {"."""
    if n < 10:
        return False
    if head(w, 6) == _INFO:
        return True
    return head(w, 8) == _CONNECT2 and b(w, 8) == 0x7B


@njit(cache=True)
def match_openwire(w, n, sp, dp, d):
    """ActiveMQ OpenWire: WireFormatInfo (type 1) with the "ActiveMQ" magic."""
    return n >= 13 and b(w, 4) == 1 and at(w, 5, 8) == _ACTIVEMQ


@njit(cache=True)
def match_smpp(w, n, sp, dp, d):
    """SMPP PDU: a command length equal to the segment, a known command id
    (bind, submit, deliver, unbind, enquire_link, ... and their responses),
    status 0 for requests."""
    if n < 16 or be32(w, 0) != n:
        return False
    c = be32(w, 4)
    r = c & 0x7FFFFFFF
    if not (1 <= r <= 9 or r == 0x15 or r == 0x21 or r == 0x102 or r == 0x103):
        return False
    return c & 0x80000000 != 0 or be32(w, 8) == 0


@njit(cache=True)
def match_fix(w, n, sp, dp, d):
    """FIX: the message starts with the BeginString field "8=<version>"
    (FIX.4.x, FIXT.1.1, ...), SOH, then the BodyLength field "9="."""
    if n < 12 or at(w, 0, 2) != _K8:
        return False
    for k in range(3, 16):
        if b(w, k) == 1:
            return at(w, k + 1, 2) == _K9 and 0x30 <= b(w, k + 3) <= 0x39
        if b(w, k) < 0x20 or b(w, k) >= 0x7F:
            return False
    return False


@njit(cache=True)
def match_thrift(w, n, sp, dp, d):
    """Thrift: a strict binary message (version 0x8001, type 1..4, a
    method-name length of 1..63), framed or not; or a compact message
    (0x82, version 1, type 1..4) with a printable method name."""
    o = 0
    if be32(w, 0) == n - 4 and n >= 16:
        o = 4
    if be16(w, o) == 0x8001 and b(w, o + 2) == 0 and 1 <= b(w, o + 3) <= 4:
        ln = be32(w, o + 4)
        return 1 <= ln <= 63 and (lower(b(w, o + 8)) or upper(b(w, o + 8)))
    if b(w, 0) == 0x82 and (b(w, 1) & 0x1F) == 1 and 1 <= (b(w, 1) >> 5) <= 4 and n >= 8:
        k = 2
        while k < 7 and b(w, k) & 0x80:
            k += 1
        ln = b(w, k + 1)
        c = b(w, k + 2)
        return 1 <= ln <= 63 and (lower(c) or upper(c))
    return False


@njit(cache=True)
def match_corba(w, n, sp, dp, d):
    """CORBA: a GIOP 1.0-1.3 message header (message type 0..7) or MIOP."""
    if n < 12:
        return False
    h = head(w, 4)
    if h == _GIOP:
        return b(w, 4) == 1 and b(w, 5) <= 3 and b(w, 7) <= 7
    return h == _MIOP and b(w, 4) == 0x10


@njit(cache=True)
def match_json_rpc(w, n, sp, dp, d):
    """JSON-RPC 2.0: an object whose first member is "jsonrpc"."""
    if n < 16 or b(w, 0) != 0x7B:
        return False
    k = 1
    while k < 4 and (b(w, k) == 0x20 or b(w, k) == 0x0A):
        k += 1
    return at(w, k, 8) == _JSONRPC and b(w, k + 8) == 0x22


@njit(cache=True)
def match_hl7(w, n, sp, dp, d):
    """HL7 v2 over MLLP: the start block 0x0B then the "MSH|" segment."""
    return n >= 10 and b(w, 0) == 0x0B and at(w, 1, 4) == _MSH
