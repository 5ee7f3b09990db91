"""Peer to peer and crypto currencies: BitTorrent (peer wire, DHT, uTP,
trackers, local discovery), Gnutella, Syncthing, Bitcoin, Monero, mining
pools (stratum)."""

from ulnet.jit import njit

from ulnet.inspect.matchers._common import at, has, lower
from ulnet.inspect.words import b, be16, be32, head, lit

_BT1, _BT2, _COL = lit("BitTorre"), lit("nt proto"), lit("col")

_D1 = lit("d1:")
_BT_SEARC = lit("BT-SEARC")
_H = lit("H *")
_D2_ID20 = lit("d2:id20:")
_GNUTELLA = lit("GNUTELLA")
_WORKER = lit('{"worker')
_X = lit('":')
_METHOD = lit('{"method')
_LOGIN = lit(':"login"')


@njit(cache=True)
def match_bittorrent(w, n, sp, dp, d):
    """BitTorrent: the peer-wire handshake ("\\x13BitTorrent protocol"),
    a DHT KRPC message (bencoded "d1:ad2:id20:" / "d1:rd2:id20:"), a uTP SYN
    (type 4 version 1, zero timestamp difference and ack), the UDP
    tracker's connect magic, or local service discovery "BT-SEARCH *"."""
    if n >= 20 and b(w, 0) == 19 and at(w, 1, 8) == _BT1 and at(w, 9, 8) == _BT2 and at(w, 17, 3) == _COL:
        return True
    if n >= 12 and head(w, 3) == _D1:
        t = b(w, 3)
        return (t == 0x61 or t == 0x72) and at(w, 4, 8) == _D2_ID20
    if n >= 20 and b(w, 0) == 0x41 and b(w, 1) <= 2 and be32(w, 8) == 0 and be16(w, 18) == 0:
        return n == 20 or b(w, 1) != 0
    if n == 16 and be32(w, 0) == 0x417 and be32(w, 4) == 0x27101980 and be32(w, 8) == 0:
        return True
    return n >= 20 and head(w, 8) == _BT_SEARC and at(w, 8, 3) == _H


@njit(cache=True)
def match_gnutella(w, n, sp, dp, d):
    """Gnutella handshake "GNUTELLA CONNECT/0.x" / "GNUTELLA/0.6 200"."""
    return n >= 16 and head(w, 8) == _GNUTELLA and (b(w, 8) == 0x20 or b(w, 8) == 0x2F)


@njit(cache=True)
def match_syncthing(w, n, sp, dp, d):
    """Syncthing: the announcement/hello magic 0x2EA7D90B (and the older
    local discovery magic 0x9D79BC40)."""
    if n < 8:
        return False
    m = be32(w, 0)
    return m == 0x2EA7D90B or m == 0x9D79BC40


@njit(cache=True)
def match_bitcoin(w, n, sp, dp, d):
    """Bitcoin P2P message header: network magic (main, testnet3, regtest,
    signet) and a lower-case command name."""
    if n < 24:
        return False
    m = be32(w, 0)
    if m != 0xF9BEB4D9 and m != 0x0B110907 and m != 0xFABFB5DA and m != 0x0A03CF40:
        return False
    return lower(b(w, 4)) and lower(b(w, 5))


@njit(cache=True)
def match_monero(w, n, sp, dp, d):
    """Monero's levin protocol: the 8-byte signature 0x0121010101010101."""
    return n >= 33 and be32(w, 0) == 0x01210101 and be32(w, 4) == 0x01010101


_MINING = lit("mining.")


@njit(cache=True)
def match_mining(w, n, sp, dp, d):
    """Mining pool stratum (JSON over TCP): a call of a "mining." method,
    the Ethereum proxy's {"worker": ...}, or the Monero/ZCash {"method":
    "login" ...}."""
    if n < 20 or b(w, 0) != 0x7B:
        return False
    if head(w, 8) == _WORKER and at(w, 8, 2) == _X:
        return True
    if head(w, 8) == _METHOD and at(w, 9, 8) == _LOGIN:
        return True
    return has(w, n, _MINING, 7)
