"""Industrial, building and home automation: Modbus/TCP, BACnet/IP, DNP3,
IEC 60870-5-104, Siemens S7 (classic and Plus), EtherNet/IP and CIP I/O,
HiSLIP, HART-IP, KNXnet/IP, IEEE C37.118, Omron FINS, Tuya, TP-Link smart
home, CoAP, CAN over UDP, EtherSIO, Beckhoff ADS, DLMS/COSEM (IEC 62056),
tank gauges (ATG), OpenFlow, DDS (RTPS), SOME/IP."""

from ulnet.jit import njit

from ulnet.inspect.matchers._common import digits, has, lower
from ulnet.inspect.words import b, be16, be32, head, le16, le32, lit

_SIMATIC = lit("SIMATIC")
_HS = lit("HS")
_FINS = lit("FINS")
_ISO11898 = lit("ISO11898")
_ESIO = lit("ESIO")
_RTPS = lit("RTPS")
_RTPX = lit("RTPX")


@njit(cache=True)
def match_modbus(w, n, sp, dp, d):
    """Modbus/TCP: protocol id 0, a length equal to the rest of the segment,
    a public function code (or its exception, +0x80)."""
    if n < 8 or be16(w, 2) != 0 or be16(w, 4) != n - 6:
        return False
    f = b(w, 7) & 0x7F
    return 1 <= f <= 24 or f == 43


@njit(cache=True)
def match_bacnet(w, n, sp, dp, d):
    """BACnet/IP: BVLC type 0x81, a function of 0..0x0c, a length equal to
    the datagram."""
    return n >= 4 and b(w, 0) == 0x81 and b(w, 1) <= 0x0C and be16(w, 2) == n


@njit(cache=True)
def match_dnp3(w, n, sp, dp, d):
    """DNP3 link layer: start bytes 0x05 0x64 and a length of at least 5."""
    return n >= 10 and be16(w, 0) == 0x0564 and b(w, 2) >= 5


@njit(cache=True)
def match_iec60870(w, n, sp, dp, d):
    """IEC 60870-5-104: start byte 0x68, an APDU length equal to the segment
    (or followed by the next APDU's start byte), a valid control field: a
    U-format frame with one function bit, an S-format frame, or an I-format
    frame whose ASDU has a type id of 1..127 and a cause of transmission of
    1..47."""
    if n < 6 or b(w, 0) != 0x68:
        return False
    ln = b(w, 1)
    if ln < 4 or ln + 2 > n:
        return False
    if ln + 2 < n and (ln + 2 > 31 or b(w, ln + 2) != 0x68):
        return False
    c = b(w, 2)
    if c & 3 == 3:
        return ln == 4 and (c == 0x07 or c == 0x0B or c == 0x13 or c == 0x23 or c == 0x43 or c == 0x83)
    if c & 3 == 1:
        return c == 1 and b(w, 3) == 0 and ln == 4
    if ln < 10:
        return False
    t = b(w, 6)
    cot = b(w, 8) & 0x3F
    return 1 <= t <= 127 and 1 <= cot <= 47


@njit(cache=True)
def _tpkt_cotp(w, n):
    """TPKT version 3 with a length equal to the segment, and the COTP
    length indicator fitting inside."""
    return n >= 7 and b(w, 0) == 3 and b(w, 1) == 0 and be16(w, 2) == n and b(w, 4) + 5 <= n


@njit(cache=True)
def match_s7comm(w, n, sp, dp, d):
    """Siemens S7 (classic): TPKT + COTP data carrying protocol id 0x32, or
    a COTP connection request/confirm with two-byte TSAPs to ISO-TSAP port
    102 (the port narrows the generic COTP connect)."""
    if not _tpkt_cotp(w, n):
        return False
    c = b(w, 5)
    if c == 0xF0 and b(w, 4) == 2:
        return n >= 10 and b(w, 7) == 0x32 and b(w, 8) <= 7
    if (c == 0xE0 or c == 0xD0) and (sp == 102 or dp == 102):
        return b(w, 11) == 0xC1 and b(w, 12) == 2 and not has(w, n, _SIMATIC, 7)
    return False


@njit(cache=True)
def match_s7commplus(w, n, sp, dp, d):
    """Siemens S7CommPlus: TPKT + COTP data carrying protocol id 0x72, or a
    COTP connection request/confirm with the textual "SIMATIC-..." TSAP."""
    if not _tpkt_cotp(w, n):
        return False
    c = b(w, 5)
    if c == 0xF0 and b(w, 4) == 2:
        return n >= 12 and b(w, 7) == 0x72 and b(w, 8) <= 3
    return (c == 0xE0 or c == 0xD0) and has(w, n, _SIMATIC, 7)


@njit(cache=True)
def match_ethernetip(w, n, sp, dp, d):
    """EtherNet/IP encapsulation: a known command (list services/identity/
    interfaces, (un)register session, send RR/unit data), a little-endian
    length equal to the rest after the 24-byte header, options 0."""
    if n < 24:
        return False
    c = le16(w, 0)
    if not (c == 0x0004 or c == 0x0063 or c == 0x0064 or c == 0x0065 or c == 0x0066
            or c == 0x006F or c == 0x0070 or c == 0x0072 or c == 0x0073):
        return False
    return le16(w, 2) == n - 24 and le32(w, 20) == 0


@njit(cache=True)
def match_cip(w, n, sp, dp, d):
    """CIP class 0/1 I/O over UDP: a common packet format with 2 items, a
    sequenced address item (0x8002, length 8) first, connected data
    (0x00b1) second."""
    return n >= 20 and le16(w, 0) == 2 and le16(w, 2) == 0x8002 and le16(w, 4) == 8 and le16(w, 14) == 0x00B1


@njit(cache=True)
def match_hislip(w, n, sp, dp, d):
    """HiSLIP (IVI-6.1): "HS", a message type of 0..25, and a 64-bit
    payload length equal to the rest of the segment."""
    if n < 16 or head(w, 2) != _HS or b(w, 2) > 25:
        return False
    return be32(w, 8) == 0 and be32(w, 12) <= n - 16


@njit(cache=True)
def match_hart_ip(w, n, sp, dp, d):
    """HART-IP: version 1, message type 0..3, message id 0..3 (session,
    close, keep-alive, pass-through), a byte count equal to the segment; a
    small header, so ports 5094 narrows it."""
    if n < 8 or (sp != 5094 and dp != 5094 and sp != 5095 and dp != 5095):
        return False
    return b(w, 0) == 1 and b(w, 1) <= 3 and b(w, 2) <= 3 and be16(w, 6) == n


@njit(cache=True)
def match_knxnet_ip(w, n, sp, dp, d):
    """KNXnet/IP: header length 6, version 1.0, a known service family, a
    total length that fits (several frames may share a TCP segment)."""
    if n < 6 or b(w, 0) != 6 or b(w, 1) != 0x10:
        return False
    f = b(w, 2)
    ln = be16(w, 4)
    return 2 <= f <= 9 and 6 <= ln <= n


@njit(cache=True)
def match_ieee_c37118(w, n, sp, dp, d):
    """IEEE C37.118 synchrophasor frame: sync 0xAA, a frame type (data,
    header, config 1-3, command) and version, a frame size equal to the
    segment."""
    if n < 16 or b(w, 0) != 0xAA:
        return False
    t = (b(w, 1) >> 4) & 7
    v = b(w, 1) & 0xF
    return t <= 5 and 1 <= v <= 3 and be16(w, 2) == n


@njit(cache=True)
def match_fins(w, n, sp, dp, d):
    """Omron FINS: the TCP framing "FINS", a length, a command of 0..3 (node
    address exchange, frame send, frame error); over UDP a FINS header (ICF
    0x80/0x81/0xC0/0xC1, reserved 0, gateway count 2 or 7) on UDP 9600
    (short binary header: the port narrows it)."""
    if n >= 16 and head(w, 4) == _FINS:
        return 8 <= be32(w, 4) <= 0x10000 and be32(w, 8) <= 3
    if n < 12 or (sp != 9600 and dp != 9600):
        return False
    icf = b(w, 0)
    return (icf & 0x3E) == 0 and icf & 0x80 != 0 and b(w, 1) == 0 and (b(w, 2) == 2 or b(w, 2) == 7)


@njit(cache=True)
def match_tuyalp(w, n, sp, dp, d):
    """Tuya's local protocol: the 0x000055AA prefix and a length that fits."""
    return n >= 24 and be32(w, 0) == 0x000055AA and be32(w, 12) + 16 >= n - 4 and be32(w, 12) < 0x10000


@njit(cache=True)
def match_tplink_shp(w, n, sp, dp, d):
    """TP-Link smart home protocol: JSON '{"' XOR-encrypted with the
    autokey 171 (0xd0 0xf2), then a lower-case key letter; TCP carries a
    4-byte length first."""
    o = 0
    if n >= 8 and be32(w, 0) == n - 4:
        o = 4
    if n < o + 4 or b(w, o) != 0xD0 or b(w, o + 1) != 0xF2:
        return False
    return lower(b(w, o + 2) ^ 0xF2)


@njit(cache=True)
def match_coap(w, n, sp, dp, d):
    """CoAP: version 1, token length <= 8, a defined request or response
    code (an empty message only as 4 bytes), then the payload marker or a
    well-formed option header; a 4-byte header: ports 5683/5684 narrow it."""
    if n < 4 or (sp != 5683 and dp != 5683 and sp != 5684 and dp != 5684):
        return False
    f = b(w, 0)
    tkl = f & 0xF
    if f >> 6 != 1 or tkl > 8 or n < 4 + tkl:
        return False
    c = b(w, 1)
    if c == 0:
        return n == 4
    cl = c >> 5
    dt = c & 0x1F
    if not ((cl == 0 and 1 <= dt <= 7) or (cl == 2 and (1 <= dt <= 5 or dt == 31))
            or (cl == 4 and (dt <= 6 or dt == 8 or dt == 12 or dt == 13 or dt == 15 or dt == 29))
            or (cl == 5 and dt <= 5)):
        return False
    k = 4 + tkl
    if n == k:
        return True
    o = b(w, k)                          # payload marker or an option delta/length
    return o == 0xFF or ((o >> 4) != 15 and (o & 0xF) != 15)


@njit(cache=True)
def match_can(w, n, sp, dp, d):
    """CAN frames over UDP with the "ISO11898" magic."""
    return n >= 12 and head(w, 8) == _ISO11898


@njit(cache=True)
def match_ethersio(w, n, sp, dp, d):
    """EtherSIO: the "ESIO" magic and version 0/1."""
    return n >= 12 and head(w, 4) == _ESIO and b(w, 4) <= 1


@njit(cache=True)
def match_beckhoff_ads(w, n, sp, dp, d):
    """Beckhoff ADS/AMS over TCP: reserved 0, a little-endian length equal to
    the rest of the segment, the AMS header's command id 0..9 and state
    flags (request/response, ADS command)."""
    if n < 38 or be16(w, 0) != 0:
        return False
    ln = le32(w, 2)
    if ln != n - 6 and not (ln < n - 6 and ln >= 32):
        return False
    return le16(w, 22) <= 9 and (le16(w, 24) & 0xFFF0) == 0 and (le16(w, 24) & 4) == 4


@njit(cache=True)
def match_iec62056(w, n, sp, dp, d):
    """DLMS/COSEM over HDLC (IEC 62056-46): flag 0x7E, frame format type 3,
    a frame length of the segment minus the two flags."""
    if n < 9 or b(w, 0) != 0x7E or (b(w, 1) & 0xF0) != 0xA0:
        return False
    return ((b(w, 1) & 7) << 8) + b(w, 2) == n - 2


@njit(cache=True)
def match_atg(w, n, sp, dp, d):
    """Automatic tank gauge (Veeder-Root TLS-3xx) serial commands over TCP:
    SOH, then "I" or "S" and a five-digit function code."""
    if n < 7 or b(w, 0) != 1:
        return False
    c = b(w, 1)
    return (c == 0x49 or c == 0x53) and digits(w, 2, 5)


@njit(cache=True)
def match_openflow(w, n, sp, dp, d):
    """OpenFlow: version 1..6, a message type of 0..35, a length that fits;
    a small header: ports 6653/6633 narrow it."""
    if n < 8 or (sp != 6653 and dp != 6653 and sp != 6633 and dp != 6633):
        return False
    v = b(w, 0)
    ln = be16(w, 2)
    return 1 <= v <= 6 and b(w, 1) <= 35 and 8 <= ln <= n


@njit(cache=True)
def match_rtps(w, n, sp, dp, d):
    """DDS RTPS: "RTPS" (or "RTPX") and protocol version 1.x/2.x."""
    if n < 16:
        return False
    h = head(w, 4)
    return (h == _RTPS or h == _RTPX) and 1 <= b(w, 4) <= 2


@njit(cache=True)
def match_someip(w, n, sp, dp, d):
    """SOME/IP: a length equal to the rest after 8 bytes, protocol version 1,
    a known message type (request, notification, response, error, and their
    TP variants), a small return code."""
    if n < 16 or be32(w, 4) != n - 8 or b(w, 12) != 1:
        return False
    t = b(w, 14) & 0xDF
    return (t == 0 or t == 1 or t == 2 or t == 0x80 or t == 0x81) and b(w, 15) <= 0x3F
