"""Databases and data stores: PostgreSQL, MySQL/MariaDB, Microsoft SQL
Server (TDS), Oracle (TNS), MongoDB, Redis (RESP), Memcached, Cassandra
(CQL), Elasticsearch transport."""

from ulnet.jit import njit

from ulnet.inspect.matchers._common import digit
from ulnet.inspect.words import b, be16, be32, head, le32, lit

_GET = lit("get ")
_SET = lit("set ")
_ADD = lit("add ")
_GETS = lit("gets")
_STAT = lit("STAT")
_VALU = lit("VALU")
_INCR = lit("incr")
_DECR = lit("decr")
_STATS = lit("stats")
_VERSI = lit("versi")
_DELET = lit("delet")
_TOUCH = lit("touch")
_ES = lit("ES")


@njit(cache=True)
def match_postgresql(w, n, sp, dp, d):
    """PostgreSQL startup packet: a length equal to the packet, then protocol
    3.0 (or 2.0) or the SSL / GSSAPI encryption / cancel request codes."""
    if n < 8 or be32(w, 0) != n:
        return False
    c = be32(w, 4)
    if c == 0x04D2162F or c == 0x04D21630:          # SSLRequest, GSSENCRequest
        return n == 8
    if c == 0x04D2162E:                             # CancelRequest
        return n == 16
    return (c == 0x00030000 or c == 0x00020000) and n >= 16 and 0x61 <= b(w, 8) <= 0x7A


@njit(cache=True)
def match_mysql(w, n, sp, dp, d):
    """MySQL/MariaDB server greeting: 3-byte length = payload - 4, sequence
    0, protocol 10, a server version starting with a digit and a dot."""
    if n < 20:
        return False
    ln = b(w, 0) | (b(w, 1) << 8) | (b(w, 2) << 16)
    if ln != n - 4 or b(w, 3) != 0 or b(w, 4) != 10:
        return False
    return digit(b(w, 5)) and (b(w, 6) == 0x2E or (digit(b(w, 6)) and b(w, 7) == 0x2E))


@njit(cache=True)
def match_mssql_tds(w, n, sp, dp, d):
    """TDS packet header: a known type (SQL batch, RPC, response, login,
    pre-login, ...), a status of 0/1/8/9, a packet length equal to the
    segment (or longer, for a large message split over segments), packet
    number 0/1 and window 0; clients send SPID 0."""
    if n < 9:
        return False
    t = b(w, 0)
    if not (1 <= t <= 4 or t == 6 or t == 7 or 0x0E <= t <= 0x12):
        return False
    s = b(w, 1)
    if s != 0 and s != 1 and s != 8 and s != 9:
        return False
    ln = be16(w, 2)
    if ln < 9 or not (ln == n or (ln > n and n >= 1000)) or b(w, 6) > 1 or b(w, 7) != 0:
        return False
    return t == 4 or be16(w, 4) == 0


@njit(cache=True)
def match_oracle(w, n, sp, dp, d):
    """Oracle TNS CONNECT: packet length equal to the segment, zero packet
    checksum, type 1, a TNS version of 300..319."""
    if n < 34 or be16(w, 0) != n or be16(w, 2) != 0 or b(w, 4) != 1 or b(w, 5) != 0:
        return False
    v = be16(w, 8)
    return 300 <= v <= 319 and be16(w, 10) <= v


@njit(cache=True)
def match_mongodb(w, n, sp, dp, d):
    """MongoDB wire protocol: little-endian message length equal to the
    segment and a known opcode (OP_REPLY, OP_QUERY .. OP_MSG)."""
    if n < 16 or le32(w, 0) != n:
        return False
    op = le32(w, 12)
    return op == 1 or op == 2004 or op == 2013 or op == 2012 or 2001 <= op <= 2007 or op == 2010 or op == 2011


@njit(cache=True)
def match_resp(w, n, sp, dp, d):
    """Redis (RESP): a command array "*<count>\\r\\n$<len>\\r\\n"."""
    if n < 8 or b(w, 0) != 0x2A or not digit(b(w, 1)):
        return False
    k = 2
    if digit(b(w, k)):
        k += 1
    return b(w, k) == 0x0D and b(w, k + 1) == 0x0A and b(w, k + 2) == 0x24 and digit(b(w, k + 3))


@njit(cache=True)
def _mc_port(sp, dp):
    return sp == 11211 or dp == 11211


@njit(cache=True)
def match_memcached(w, n, sp, dp, d):
    """Memcached: binary protocol (request magic 0x80 / response 0x81, a
    known opcode, zero data type, body length = payload - 24), or a text
    command (get, set, stats, ...) on port 11211 (text commands are common
    words: the port narrows them)."""
    m = b(w, 0)
    if (m == 0x80 or m == 0x81) and n >= 24:
        return b(w, 1) <= 0x48 and b(w, 5) == 0 and be32(w, 8) == n - 24
    if not _mc_port(sp, dp) or n < 5:
        return False
    h4 = head(w, 4)
    if h4 == _GET or h4 == _SET or h4 == _ADD or h4 == _GETS \
            or h4 == _STAT or h4 == _VALU or h4 == _INCR or h4 == _DECR:
        return True
    h5 = head(w, 5)
    return h5 == _STATS or h5 == _VERSI or h5 == _DELET or h5 == _TOUCH


@njit(cache=True)
def match_cassandra(w, n, sp, dp, d):
    """Cassandra CQL native protocol frame: version 3..5 (requests) or
    0x83..0x85 (responses), flags < 0x20, an opcode of 0..16, a body length
    equal to the rest of the segment."""
    if n < 9:
        return False
    v = b(w, 0) & 0x7F
    if v < 3 or v > 5 or b(w, 1) >= 0x20 or b(w, 4) > 16:
        return False
    return be32(w, 5) == n - 9


@njit(cache=True)
def match_elasticsearch(w, n, sp, dp, d):
    """Elasticsearch transport protocol: "ES", a message length equal to the
    rest of the segment, then the request id."""
    if n < 19 or head(w, 2) != _ES:
        return False
    ln = be32(w, 2)
    return ln == n - 6 or (ln > n - 6 and n >= 1024)
