"""Network services: DNS and its multicast relatives."""

from ulnet.jit import njit

from ulnet.inspect.words import b, be16


@njit(cache=True)
def _dns_header_ok(w, n, o):
    """A plausible DNS header at offset o (0 for UDP, 2 for TCP): a known
    opcode, the Z bit clear, a query with 1..16 questions (an inverse query:
    none, and an answer), a response with at most 128 questions that says
    something, and a first label of at most 63 bytes. Section counts past
    the question are not checked: like nDPI, a query with a garbled count
    on the DNS port is still DNS."""
    if n < o + 12:
        return False
    flags = be16(w, o + 2)
    qr = flags >> 15
    opcode = (flags >> 11) & 0xF
    if opcode > 5 or opcode == 3:      # QUERY, IQUERY, STATUS, NOTIFY, UPDATE
        return False
    if flags & 0x0040:                 # Z bit must be zero
        return False
    qd = be16(w, o + 4)
    an = be16(w, o + 6)
    ns = be16(w, o + 8)
    ar = be16(w, o + 10)
    if qr == 0:
        if opcode == 1:               # inverse query (RFC 1035 6.4, obsolete): no question, an answer
            if qd != 0 or an == 0:
                return False
        elif qd == 0 or qd > 16:
            return False
    else:
        if qd > 128:
            return False
        if qd == 0 and an == 0 and ns == 0 and ar == 0 and (flags & 0xF) == 0:
            return False
    if (qd or an) and n > o + 12 and o + 12 < 32:
        lab = b(w, o + 12)
        if lab > 63:
            return False
    return True


@njit(cache=True)
def _dns_any(w, n, sp, dp, proto_tcp):
    if proto_tcp:
        return n >= 14 and be16(w, 0) >= 12 and _dns_header_ok(w, n, 2)
    return _dns_header_ok(w, n, 0)


@njit(cache=True)
def match_dns(w, n, sp, dp, d):
    """DNS header (opcode, Z bit, section counts, first label) on port 53,
    UDP or TCP (TCP: the 2-byte length prefix is checked too)."""
    if sp != 53 and dp != 53:
        return False
    # UDP and TCP look the same here but for the length prefix: try both
    return _dns_header_ok(w, n, 0) or (n >= 14 and be16(w, 0) == n - 2 and _dns_header_ok(w, n, 2))


@njit(cache=True)
def match_mdns(w, n, sp, dp, d):
    """DNS header on UDP port 5353 (multicast DNS)."""
    return (sp == 5353 or dp == 5353) and _dns_header_ok(w, n, 0)


@njit(cache=True)
def match_llmnr(w, n, sp, dp, d):
    """DNS header on UDP port 5355 (link-local multicast name resolution)."""
    return (sp == 5355 or dp == 5355) and _dns_header_ok(w, n, 0)
