"""Network operations: management and AAA (SNMP, RADIUS, Diameter), flow
export (NetFlow/IPFIX, sFlow), router redundancy and discovery (HSRP,
Ubiquiti), NAT-PMP, tunnels of the operator (GTP, Teredo, CAPWAP), BGP,
DNSCrypt, time and measurement services (Roughtime, RIPE Atlas, Ookla),
Avast's update protocol."""

from ulnet.jit import njit

from ulnet.inspect.matchers._common import at, ber_len, digit, lower
from ulnet.inspect.words import b, be16, be32, head, le32, lit

_DNSCRYPT = lit("dnscrypt")
_CERT = lit("-cert")
_ROUGHTIM = lit("ROUGHTIM")
_NONC = lit("NONC")
_PADŸ = lit("PAD\xff")
_VER = lit("VER\x00")
_SREP = lit("SREP")
_SIG = lit("SIG\x00")
_CERT2 = lit("CERT")
_MGLNDD = lit("MGLNDD_")
_HI = lit("HI\n")
_HI2 = lit("HI ")
_HELLO = lit("HELLO ")
_NOSA = lit("NOSA")


@njit(cache=True)
def match_snmp(w, n, sp, dp, d):
    """SNMP message: SEQUENCE whose length is the datagram, INTEGER version
    0/1/3, then the community OCTET STRING (v1/v2c) or the v3 header
    SEQUENCE."""
    if n < 20 or b(w, 0) != 0x30:
        return False
    lo, ln = ber_len(w, 1)
    if lo == 0 or 1 + lo + ln != n:
        return False
    p = 1 + lo
    if b(w, p) != 0x02 or b(w, p + 1) != 1:
        return False
    v = b(w, p + 2)
    nxt = b(w, p + 3)
    if v == 0 or v == 1:
        return nxt == 0x04
    return v == 3 and nxt == 0x30


@njit(cache=True)
def match_radius(w, n, sp, dp, d):
    """RADIUS: a known code (access, accounting, challenge, status, CoA,
    disconnect) and a length field equal to the datagram, 20..4096."""
    c = b(w, 0)
    if not (1 <= c <= 5 or 11 <= c <= 13 or 40 <= c <= 45):
        return False
    return 20 <= n <= 4096 and be16(w, 2) == n


@njit(cache=True)
def match_netflow(w, n, sp, dp, d):
    """NetFlow v1/v5/v7 (count and fixed record size give the length),
    v9 (record count, a template or data flowset id), IPFIX (v10: the
    message length equals the datagram)."""
    if n < 20:
        return False
    v = be16(w, 0)
    c = be16(w, 2)
    if v == 10:
        return c == n and be16(w, 16) >= 2 and be16(w, 16) != 3
    if v == 5:
        return 1 <= c <= 30 and n == 24 + 48 * c
    if v == 1:
        return 1 <= c <= 24 and n == 16 + 48 * c
    if v == 7:
        return 1 <= c <= 28 and n == 24 + 52 * c
    if v == 9:
        fs = be16(w, 20)
        fl = be16(w, 22)
        return 1 <= c <= 64 and n >= 28 and (fs <= 1 or fs >= 256) and 4 <= fl <= n - 20
    return False


@njit(cache=True)
def match_sflow(w, n, sp, dp, d):
    """sFlow v2/v4/v5 datagram: version, agent address type (1 IPv4, 2
    IPv6) and a small sample count where the header puts it."""
    if n < 28:
        return False
    v = be32(w, 0)
    t = be32(w, 4)
    if v != 5 and v != 4 and v != 2:
        return False
    if t == 1:
        k = 24 if v == 5 else 20          # v5 has a sub-agent id
    elif t == 2:
        k = 36 if v == 5 else 32
        if n < 44:
            return False
    else:
        return False
    if k + 4 > 32:
        return True
    return be32(w, k) <= 512


@njit(cache=True)
def match_hsrp(w, n, sp, dp, d):
    """HSRP v0/v1 (20 bytes: version 0, opcode 0..2, a state of 0..16) or
    v2 (group state TLV type 1, length 40, version 2), on UDP 1985/2029
    (the port narrows a short binary header)."""
    if sp != 1985 and dp != 1985 and sp != 2029 and dp != 2029:
        return False
    if n == 20 and b(w, 0) == 0 and b(w, 1) <= 2:
        st = b(w, 2)
        return st == 0 or st == 1 or st == 2 or st == 4 or st == 8 or st == 16
    return n >= 42 and b(w, 0) == 1 and b(w, 1) == 40 and b(w, 2) == 2 and b(w, 3) <= 2


@njit(cache=True)
def match_ubntac2(w, n, sp, dp, d):
    """Ubiquiti discovery on UDP 10001: version 1 or 2, a command, and a
    16-bit length equal to the rest of the datagram (or the bare 4-byte
    request)."""
    if sp != 10001 and dp != 10001:
        return False
    v = b(w, 0)
    if v != 1 and v != 2:
        return False
    if n == 4:
        return b(w, 1) == 0 and be16(w, 2) == 0
    return n >= 8 and be16(w, 2) == n - 4 and 1 <= b(w, 4) <= 0x30


@njit(cache=True)
def match_natpmp(w, n, sp, dp, d):
    """NAT-PMP (and PCP's version 0 replies) on UDP 5351: version 0,
    request opcodes 0..2 with their fixed sizes, or a response (opcode
    +128) with a small result code. Short binary: the port narrows it."""
    if sp != 5351 and dp != 5351:
        return False
    if b(w, 0) != 0:
        return False
    op = b(w, 1)
    if op == 0:
        return n == 2
    if op == 1 or op == 2:
        return n == 12 and be16(w, 2) == 0
    if op == 128:
        return n == 12 and be16(w, 2) <= 5
    if op == 129 or op == 130:
        return n == 16 and be16(w, 2) <= 5
    return False


@njit(cache=True)
def match_diameter(w, n, sp, dp, d):
    """Diameter: version 1, a 24-bit length that is a multiple of 4 and equal
    to the segment (or longer, for a message split over segments), reserved
    flag bits clear, a command code in the IANA range."""
    if n < 20 or b(w, 0) != 1:
        return False
    ln = (b(w, 1) << 16) | be16(w, 2)
    if ln < 20 or ln & 3 or not (ln == n or (ln > n and n >= 1024)):
        return False
    if b(w, 4) & 0x0F:
        return False
    cc = (b(w, 5) << 16) | be16(w, 6)
    return 257 <= cc <= 8388700


@njit(cache=True)
def match_gtp(w, n, sp, dp, d):
    """GTP: v1 (version bits 001 and PT=1, length = payload - 8), v2-C
    (version 010, length = payload - 4), GTP' (PT=0, 6-byte header). The
    headers are short: ports 2123 (control), 2152 (user), 3386 (GTP')
    narrow them."""
    if n < 8:
        return False
    gc = sp == 2123 or dp == 2123
    gu = sp == 2152 or dp == 2152
    gp = sp == 3386 or dp == 3386
    if not (gc or gu or gp):
        return False
    f = b(w, 0)
    ver = f >> 5
    ln = be16(w, 2)
    if ver == 1 and f & 0x10:
        return ln == n - 8 and b(w, 1) != 0
    if ver == 2 and gc:
        return ln == n - 4 and b(w, 1) != 0
    if gp and (f & 0x10) == 0 and ver <= 2:
        return ln == n - 6 and b(w, 1) != 0
    return False


@njit(cache=True)
def match_teredo(w, n, sp, dp, d):
    """Teredo: an IPv6 header whose payload length fits the datagram, maybe
    after the origin indication (00 00 + port + address) or authentication
    (00 01) header."""
    o = 0
    if n >= 48 and b(w, 0) == 0 and b(w, 1) == 0:
        o = 8
    if b(w, o) >> 4 != 6 or n < o + 40:
        return False
    pl = be16(w, o + 4)
    nh = b(w, o + 6)
    return pl + 40 + o == n and (nh == 58 or nh == 17 or nh == 6 or nh == 59 or nh == 0)


@njit(cache=True)
def match_capwap(w, n, sp, dp, d):
    """CAPWAP: preamble version 0 type 0/1, a header length of at least 2
    words; the header is compact and ports 5246/5247 narrow it."""
    if n < 8 or not (5246 <= sp <= 5247 or 5246 <= dp <= 5247):
        return False
    if b(w, 0) > 1:
        return False
    hlen = (b(w, 1) >> 3) * 4
    return 8 <= hlen <= n


@njit(cache=True)
def match_bgp(w, n, sp, dp, d):
    """BGP: the all-ones 16-byte marker, a length of 19..4096 and a message
    type of 1..5."""
    if n < 19:
        return False
    if be32(w, 0) != 0xFFFFFFFF or be32(w, 4) != 0xFFFFFFFF or be32(w, 8) != 0xFFFFFFFF \
            or be32(w, 12) != 0xFFFFFFFF:
        return False
    ln = be16(w, 16)
    return 19 <= ln <= 4096 and 1 <= b(w, 18) <= 5


_R6 = lit("r6fnvWj8")


@njit(cache=True)
def match_dnscrypt(w, n, sp, dp, d):
    """DNSCrypt: the resolver's reply magic "r6fnvWj8", or a DNS query for
    its certificate ("2.dnscrypt-cert....") sent to any port."""
    if n >= 32 and head(w, 8) == _R6:
        return True
    if n < 40 or b(w, 12) != 1 or b(w, 13) != 0x32 or b(w, 14) != 13:
        return False
    return at(w, 15, 8) == _DNSCRYPT and at(w, 23, 5) == _CERT and be16(w, 4) == 1


@njit(cache=True)
def match_roughtime(w, n, sp, dp, d):
    """Roughtime: the "ROUGHTIM" framing, or the bare message of the older
    drafts (tag count, offsets, then known tags such as NONC/PAD/VER/SIG)."""
    if n >= 12 and head(w, 8) == _ROUGHTIM:
        return True
    if n < 16:
        return False
    c = le32(w, 0)
    if c < 1 or c > 16:
        return False
    k = 4 * c                              # count, c - 1 offsets, then the tags
    if k + 4 > 32:
        return False
    t = be32(w, k)
    return t == _NONC or t == _PADŸ or t == _VER or t == _SREP \
        or t == _SIG or t == _CERT2


@njit(cache=True)
def match_ripeatlas(w, n, sp, dp, d):
    """RIPE Atlas probes' UDP measurement payload "MGLNDD_"."""
    return n >= 8 and head(w, 7) == _MGLNDD


@njit(cache=True)
def match_ookla(w, n, sp, dp, d):
    """Ookla Speedtest's TCP protocol: the client's "HI" (alone or with a
    uuid) and the server's "HELLO <version>"."""
    if n == 3 and head(w, 3) == _HI:
        return True
    if n >= 20 and head(w, 3) == _HI2:
        return (lower(b(w, 3)) or digit(b(w, 3))) and b(w, 11) == 0x2D     # a uuid
    return n >= 9 and head(w, 6) == _HELLO and digit(b(w, 6)) and b(w, 7) == 0x2E


@njit(cache=True)
def match_avast(w, n, sp, dp, d):
    """Avast's binary update protocol: "NOSA" and a 16-bit length that fits."""
    ln = be16(w, 4)
    return n >= 16 and head(w, 4) == _NOSA and 16 <= ln and (ln <= n or n >= 1024)
