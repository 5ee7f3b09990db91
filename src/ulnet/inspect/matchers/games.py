"""Game networking: Valve's Source engine queries, RakNet, netcode.io
(Yojimbo), i3D-hosted game servers."""

from ulnet.jit import njit

from ulnet.inspect.matchers._common import at
from ulnet.inspect.words import b, be16, be32, lit

_TSOURCE = lit("TSource ")
_ENGINE = lit("Engine")
_NETCODE = lit("NETCODE ")
_K1_0 = lit("1.0")


@njit(cache=True)
def match_source_engine(w, n, sp, dp, d):
    """Source engine server queries: the connectionless prefix 0xFFFFFFFF
    then "TSource Engine Query"."""
    return n >= 25 and be32(w, 0) == 0xFFFFFFFF and at(w, 4, 8) == _TSOURCE and at(w, 12, 6) == _ENGINE


@njit(cache=True)
def _raknet_magic(w, k):
    """RakNet's offline-message magic (00ffff00 fefefefe fdfdfdfd 12345678)
    at k, as far as it is visible."""
    if be32(w, k) != 0x00FFFF00 or be32(w, k + 4) != 0xFEFEFEFE:
        return False
    if k + 12 <= 32 and be32(w, k + 8) != 0xFDFDFDFD:
        return False
    return k + 16 > 32 or be32(w, k + 12) == 0x12345678


@njit(cache=True)
def match_raknet(w, n, sp, dp, d):
    """RakNet offline messages: the magic right after the message id (open
    connection request/reply 1/2, ids 5..8, and the games' own ids),
    unconnected ping (1/2) with it after the time, pong (0x1c) after time
    and GUID."""
    if n < 17:
        return False
    if _raknet_magic(w, 1):
        return True
    t = b(w, 0)
    if t == 1 or t == 2:
        return n >= 25 and _raknet_magic(w, 9)
    if t == 0x1C:
        return n >= 35 and _raknet_magic(w, 17)
    return False


@njit(cache=True)
def match_yojimbo(w, n, sp, dp, d):
    """netcode.io (Yojimbo) connection request: prefix 0, "NETCODE 1.0x"."""
    return n >= 13 and b(w, 0) == 0 and at(w, 1, 8) == _NETCODE and at(w, 9, 3) == _K1_0


@njit(cache=True)
def match_i3d(w, n, sp, dp, d):
    """i3D.net game servers, as nDPI recognises them: the voice IP discovery
    exchange (00 01/00 02, length 70) or RTP (0x90 0x78/0x67) carrying the
    SSRC 0x0003cfa8/0x0003cfa9 its servers use."""
    if n < 74:
        return False
    t = be32(w, 0)
    if (t == 0x00010046 or t == 0x00020046) and be32(w, 4) == 0x0003CFA8:
        return True
    h = be16(w, 0)
    return (h == 0x9078 or h == 0x9067) and be32(w, 8) == 0x0003CFA9 and be32(w, 12) == 0xBEDE0003
