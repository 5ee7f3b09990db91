"""VPNs, tunnels and proxies: IKE (IPsec key exchange), OpenVPN, WireGuard,
PPTP, L2TP, Tailscale, SOCKS, the HAProxy PROXY header."""

from ulnet.jit import njit

from ulnet.inspect.matchers._common import at
from ulnet.inspect.words import b, be16, be32, head, lit

_PROXY = lit("PROXY ")
_TCP4 = lit("TCP4")
_TCP6 = lit("TCP6")
_UNKN = lit("UNKN")


@njit(cache=True)
def _ike_at(w, n, o):
    """An ISAKMP/IKE header at o: non-zero initiator SPI, version 1.0 or
    2.0, a matching exchange type, a length equal to the rest."""
    if n < o + 28 or (be32(w, o) == 0 and be32(w, o + 4) == 0):
        return False
    v = b(w, o + 17)
    x = b(w, o + 18)
    if v == 0x10:
        ok = 1 <= x <= 5 or 32 <= x <= 33
    elif v == 0x20:
        ok = 34 <= x <= 37
    else:
        return False
    return ok and be32(w, o + 24) == n - o


@njit(cache=True)
def match_ike(w, n, sp, dp, d):
    """IKEv1/IKEv2 on UDP 500, or after the 4-byte non-ESP marker on 4500."""
    if _ike_at(w, n, 0):
        return True
    return be32(w, 0) == 0 and _ike_at(w, n, 4)


@njit(cache=True)
def _ovpn_reset(w, n, o):
    """An OpenVPN hard-reset packet at o: client v2/v3 or server v2, key id
    0, a session id that is not text, with one of the sizes the handshake
    has without/with tls-auth (SHA-1, SHA-256, SHA-512 HMAC) or tls-crypt."""
    m = n - o
    op = b(w, o)
    if op != 0x38 and op != 0x50 and op != 0x40:
        return False
    text = True                          # a random session id is not all printable
    for k in range(o + 1, o + 9):
        c = b(w, k)
        if c < 0x20 or c >= 0x7F:
            text = False
    if text:
        return False
    if op == 0x38 or op == 0x50:
        if m == 14:                      # no HMAC: empty ack list, packet id 0
            return b(w, o + 9) == 0 and be32(w, o + 10) == 0
        if m == 42:                      # SHA-1 HMAC, then a small replay packet id
            return b(w, o + 29) == 0 and (o > 0 or (b(w, 30) == 0 and b(w, 31) == 0))
        return m == 54 or m == 86 or m == 70
    if op == 0x40:
        if m == 26:                      # no HMAC: acks the client's packet 0
            return b(w, o + 9) == 1 and be32(w, o + 10) == 0
        return m == 54 or m == 66 or m == 98 or m == 82
    return False


@njit(cache=True)
def match_openvpn(w, n, sp, dp, d):
    """OpenVPN's first packets: a hard reset (opcode 7, 8 or 10, key 0) of
    the sizes the protocol produces, over UDP, or over TCP behind the
    2-byte packet length."""
    if _ovpn_reset(w, n, 0):
        return True
    return be16(w, 0) == n - 2 and _ovpn_reset(w, n, 2)


@njit(cache=True)
def match_wireguard(w, n, sp, dp, d):
    """WireGuard: message type 1..4 with three zero bytes, the fixed sizes of
    handshake initiation (148), response (92) and cookie reply (64), or
    transport data padded to 16 bytes with a small counter."""
    if n < 32 or b(w, 1) != 0 or b(w, 2) != 0 or b(w, 3) != 0:
        return False
    t = b(w, 0)
    if t == 1:
        return n == 148
    if t == 2:
        return n == 92
    if t == 3:
        return n == 64
    if t == 4:
        return (n - 16) % 16 == 0 and be32(w, 12) == 0
    return False


@njit(cache=True)
def match_pptp(w, n, sp, dp, d):
    """PPTP control connection: length equal to the message, control message
    type 1 and the magic cookie 0x1A2B3C4D."""
    return n >= 16 and be16(w, 0) == n and be16(w, 2) == 1 and be32(w, 4) == 0x1A2B3C4D \
        and 1 <= be16(w, 8) <= 15


@njit(cache=True)
def match_l2tp(w, n, sp, dp, d):
    """L2TP control message: T, L and S bits set, version 2 or 3, length
    equal to the datagram."""
    if n < 12 or (b(w, 0) & 0xCB) != 0xC8:
        return False
    v = b(w, 1) & 0x0F
    return (v == 2 or v == 3) and be16(w, 2) == n


@njit(cache=True)
def match_tailscale(w, n, sp, dp, d):
    """Tailscale's disco messages: the magic "TS" + U+1F4AC."""
    return n >= 30 and head(w, 6) == 0x5453F09F92AC


@njit(cache=True)
def match_socks(w, n, sp, dp, d):
    """SOCKS client messages: a v5 greeting (method count and list length
    agree), a v5 request (command, address type and size agree), or a v4/4a
    CONNECT/BIND request: a printable user id (and host name, for 4a) each
    ended by a NUL."""
    if n < 3:
        return False
    v = b(w, 0)
    c = b(w, 1)
    if v == 5:
        if 1 <= c <= 9 and n == 2 + c:
            m = b(w, 2)
            return m <= 3 or m >= 0x80
        if 1 <= c <= 3 and b(w, 2) == 0 and n >= 10:
            t = b(w, 3)
            if t == 1:
                return n == 10
            if t == 4:
                return n == 22
            return t == 3 and n == 7 + b(w, 4) and b(w, 4) > 0
        return False
    if v == 4 and (c == 1 or c == 2) and 9 <= n <= 32:
        if b(w, n - 1) != 0 or be16(w, 2) == 0:
            return False
        v4a = be32(w, 4) < 256 and b(w, 7) != 0     # 0.0.0.x: a host name follows the user id
        for k in range(8, n - 1):
            c = b(w, k)
            if c == 0:
                if not v4a:
                    return False
                v4a = False
            elif c < 0x20 or c >= 0x7F:
                return False
        return True
    return False


@njit(cache=True)
def match_haproxy(w, n, sp, dp, d):
    """The PROXY protocol header: v1 text "PROXY TCP4/TCP6/UNKNOWN" or the
    12-byte v2 signature."""
    if n >= 15 and head(w, 6) == _PROXY:
        t = at(w, 6, 4)
        return t == _TCP4 or t == _TCP6 or t == _UNKN
    return n >= 16 and be32(w, 0) == 0x0D0A0D0A and be32(w, 4) == 0x000D0A51 and be32(w, 8) == 0x5549540A
