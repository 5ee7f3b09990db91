"""Voice, video and their signalling: STUN, SIP, H.323, MGCP, Megaco, IAX2,
Cisco Skinny, BFCP, Mumble, Discord voice, RTP.

RTP is the greediest matcher of all (two header bits and a payload type):
its row sits last in the registry.
"""

from ulnet.jit import njit

from ulnet.inspect.matchers._common import at, digit, upper
from ulnet.inspect.words import b, be16, be32, head, le32, lit

_COOKIE = 0x2112A442

_SIP = lit("sip:")
_SIPS = lit("sips")
_TEL = lit("tel:")
_AUEP = lit("AUEP")
_AUCX = lit("AUCX")
_CRCX = lit("CRCX")
_DLCX = lit("DLCX")
_EPCF = lit("EPCF")
_MDCX = lit("MDCX")
_NTFY = lit("NTFY")
_RQNT = lit("RQNT")
_RSIP = lit("RSIP")
_X = lit("!/")
_MEGACO = lit("MEGACO/")


@njit(cache=True)
def match_stun(w, n, sp, dp, d):
    """STUN/TURN message (RFC 5389): top two bits zero, the magic cookie,
    a length that is a multiple of 4 and fits (several messages may share a
    TCP segment); or an RFC 3489 binding message without cookie whose length
    is exactly the datagram."""
    if n < 20 or b(w, 0) & 0xC0:
        return False
    ln = be16(w, 2)
    if ln & 3:
        return False
    if be32(w, 4) == _COOKIE:
        return ln + 20 <= n
    t = be16(w, 0)
    return ln + 20 == n and (t == 0x0001 or t == 0x0101 or t == 0x0111) and ln >= 8


_SIP20 = lit("SIP/2.0 ")


@njit(cache=True)
def match_sip(w, n, sp, dp, d):
    """SIP: a status line "SIP/2.0 NNN", or a request line: an upper-case
    method followed by a sip:, sips: or tel: URI."""
    if n < 16:
        return False
    if head(w, 8) == _SIP20:
        return digit(b(w, 8)) and digit(b(w, 9))
    k = 0
    while k < 10 and upper(b(w, k)):
        k += 1
    if k < 3 or k == 10 or b(w, k) != 0x20:
        return False
    u = at(w, k + 1, 4) | 0x20202000
    return u == _SIP or u == _SIPS or u == _TEL


@njit(cache=True)
def match_h323(w, n, sp, dp, d):
    """H.323: H.225 call signalling over TPKT (version 3, length equal to the
    segment) with a Q.931 header (protocol discriminator 8, a call reference
    of 1..2 bytes, a known message type); RAS on UDP 1719 (PER encoded: the
    port narrows it)."""
    if n >= 9 and b(w, 0) == 3 and b(w, 1) == 0 and be16(w, 2) == n and b(w, 4) == 8:
        cr = b(w, 5)
        if cr < 1 or cr > 2:
            return False
        t = b(w, 6 + cr)
        return t == 0x05 or t == 0x01 or t == 0x02 or t == 0x03 or t == 0x07 or t == 0x5A \
            or t == 0x62 or t == 0x6E or t == 0x7D or t == 0x7B or t == 0x75 or t == 0x45
    if (sp == 1719 or dp == 1719) and n >= 8 and b(w, 0) < 0x80:
        return (b(w, 0) >> 1) <= 0x1A and be16(w, 1) != 0
    return False


@njit(cache=True)
def match_mgcp(w, n, sp, dp, d):
    """MGCP command: one of the nine verbs, a space, a transaction id."""
    if n < 12 or b(w, 4) != 0x20 or not digit(b(w, 5)):
        return False
    v = head(w, 4)
    return v == _AUEP or v == _AUCX or v == _CRCX or v == _DLCX or v == _EPCF \
        or v == _MDCX or v == _NTFY or v == _RQNT or v == _RSIP


@njit(cache=True)
def match_megaco(w, n, sp, dp, d):
    """Megaco/H.248 text encoding: "MEGACO/v " or the compact "!/v "."""
    if n < 12:
        return False
    if head(w, 2) == _X and digit(b(w, 2)) and b(w, 3) == 0x20:
        return True
    return head(w, 7) == _MEGACO and digit(b(w, 7))


@njit(cache=True)
def match_iax(w, n, sp, dp, d):
    """IAX2 full frame at the start of a call: F bit, small outbound and
    inbound sequence numbers, a frame type of 1..10 with a small subclass.
    A compact header: UDP port 4569 narrows it."""
    if n < 12 or (sp != 4569 and dp != 4569):
        return False
    if not (b(w, 0) & 0x80) or b(w, 8) > 16 or b(w, 9) > 16:
        return False
    ft = b(w, 10)
    return 1 <= ft <= 10 and (ft != 6 or b(w, 11) <= 0x2F)


@njit(cache=True)
def match_skinny(w, n, sp, dp, d):
    """Cisco Skinny (SCCP): a little-endian length equal to the rest of the
    segment, a header version of 0 or 0x11..0x16, a message id below 0x200."""
    if n < 12 or le32(w, 0) + 8 != n:
        return False
    v = le32(w, 4)
    if v != 0 and not (0x11 <= v <= 0x16):
        return False
    return le32(w, 8) < 0x200


@njit(cache=True)
def match_bfcp(w, n, sp, dp, d):
    """BFCP (RFC 8855): version 1 or 2, a primitive of 1..17, the payload
    length in 32-bit words matching the message."""
    if n < 12:
        return False
    v = b(w, 0) >> 5
    if v != 1 and v != 2:
        return False
    p = b(w, 1)
    return 1 <= p <= 17 and be16(w, 2) * 4 + 12 == n


@njit(cache=True)
def match_mumble(w, n, sp, dp, d):
    """Mumble's UDP ping on port 64738: a 12-byte request (zero type word,
    then a timestamp) or the 24-byte answer (version 1.x, echoed timestamp,
    users, slots, bandwidth). Bare numbers: the port narrows them."""
    if sp != 64738 and dp != 64738:
        return False
    if n == 12:
        return be32(w, 0) == 0
    return n == 24 and b(w, 0) == 0 and b(w, 1) == 1 and be32(w, 20) <= 0x1000000


@njit(cache=True)
def match_discord(w, n, sp, dp, d):
    """Discord voice: the IP discovery request/response (type 1/2, length
    70, 74 bytes) or the 8-byte 0x1337cafe keep-alive."""
    if n == 74:
        t = be32(w, 0)
        return t == 0x00010046 or t == 0x00020046
    return n == 8 and be32(w, 0) == 0x1337CAFE


@njit(cache=True)
def match_rtp(w, n, sp, dp, d):
    """RTP: version 2 without padding or CSRCs, a payload type in use (the
    static audio/video types or the dynamic range) that RTCP cannot take, a
    header extension (if flagged) with the one- or two-byte profile (RFC
    8285), a non-zero SSRC, G.711 payloads of whole milliseconds. The
    weakest signature here: matched last."""
    if n < 20:
        return False
    f = b(w, 0)
    if f != 0x80 and f != 0x90:
        return False
    pt = b(w, 1) & 0x7F
    if not (pt == 0 or 3 <= pt <= 18 or 25 <= pt <= 26 or 31 <= pt <= 34 or 96 <= pt <= 127):
        return False
    cc = f & 0xF
    if be32(w, 8) == 0:
        return False
    if (pt == 0 or pt == 8) and (f & 0x30) == 0 and (n - 12 - 4 * cc) % 8 != 0:
        return False                     # G.711: one byte per sample, whole milliseconds
    if f & 0x10:
        x = be16(w, 12 + 4 * cc)
        return x == 0xBEDE or (x & 0xFFF0) == 0x1000
    return True
