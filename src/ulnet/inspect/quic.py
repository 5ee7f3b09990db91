"""QUIC client Initial packets: the handshake inside, for its server name.

NAME
    ulnet.inspect.quic -- read the ClientHello (or gQUIC CHLO) of a QUIC
    client Initial

DESCRIPTION
    IETF QUIC protects Initial packets with keys derived from the client's
    Destination Connection ID and a salt fixed per version (RFC 9001 section
    5.2), so any observer can remove the protection: HKDF over the DCID,
    AES-ECB for the header-protection mask, AES-128-GCM for the payload
    (the ``cryptography`` package). The CRYPTO frames inside carry a TLS
    ClientHello. Google QUIC before version 46 has a public header and no
    encryption at all (a 12-byte hash, then STREAM frames on stream 1);
    Q046 has an IETF-like long header but the same clear frames; Q050 and
    T05x encrypt like IETF QUIC with their own salts and carry the
    handshake in frame type 0x08. Q0xx handshakes are a CHLO message (tag /
    value pairs: ``SNI``, ``UAID``), T05x and IETF ones a TLS ClientHello.

    This runs in Python, once per QUIC flow, on the client's first Initial
    packets only (see ulnet.inspect.Inspector), never per packet of the
    flow; the walk over the decrypted frames is a compiled kernel
    (ulnet.inspect.quic_frames). Every function here is bounded by the bytes it is given: a
    truncated or forged packet raises ValueError, never anything else
    (tests/test_inspect.py fuzzes them).

VERSIONS
    One row per version family in ``_VERSIONS`` below: which salt, which
    HKDF label prefix, which long-header packet type is an Initial, which
    frame carries the handshake. Salts are the published constants (RFC
    9001, RFC 9369, the IETF drafts, Chromium's Q050/T050/T051, mvfst's
    Facebook versions: the same table nDPI and Wireshark use).
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace

import numpy as np

from ulnet.inspect.quic_frames import crypto_frames

V1 = 0x00000001
V2 = 0x6B3343CF
Q046, Q050, T050, T051 = 0x51303436, 0x51303530, 0x54303530, 0x54303531
MVFST_22, MVFST_27, MVFST_EXP = 0xFACEB001, 0xFACEB002, 0xFACEB00E

_SALT = {
    "v1": bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"),    # RFC 9001, drafts 33-34
    "v2": bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"),    # RFC 9369
    "d29": bytes.fromhex("afbfec289993d24c9e9786f19c6111e04390a899"),   # drafts 29-32
    "d23": bytes.fromhex("c3eef712c72ebb5a11a7d2432bb46365bef9f502"),   # drafts 23-28, mvfst 27/exp
    "d22": bytes.fromhex("7fbcdb0e7c66bbe9193a96cd21519ebd7a02644a"),   # drafts <= 22, mvfst 22
    "q50": bytes.fromhex("504574efd066fe2f9d945cfcdbd3a7f0d3b56b45"),   # Google Q050
    "t50": bytes.fromhex("7ff579e5acd072915580304c43a2367c60488310"),   # Google T050
    "t51": bytes.fromhex("7a4edef4e7ccee5fa4506c19124fc8ccda6e033d"),   # Google T051
}


@dataclass(frozen=True)
class Version:
    """How to open a client Initial of one QUIC version."""
    salt: str            # key of _SALT, or "" for clear (gQUIC <= Q046)
    labels: bytes        # HKDF-Expand-Label prefix: b"quic " or b"quicv2 "
    initial_type: int    # long-header packet type bits of an Initial
    crypto_frame: int    # frame type carrying the handshake (0x06 IETF, 0x08 gQUIC 5x)
    handshake: str       # "tls" (ClientHello) or "chlo" (gQUIC crypto message)


_IETF = Version("v1", b"quic ", 0, 0x06, "tls")


@lru_cache(maxsize=512)
def version_info(v: int) -> Version | None:
    """The row for version ``v`` (None: not a version this module opens).
    Kept per version (bounded: a forged version is a new key): a frozen
    dataclass costs microseconds to build, and most Initials of a capture
    share a handful of versions."""
    if v == V1:
        return _IETF
    if v == V2:
        return Version("v2", b"quicv2 ", 1, 0x06, "tls")
    if (v >> 8) == 0xFF0000:                        # IETF drafts
        d = v & 0xFF
        salt = "d22" if d <= 22 else "d23" if d <= 28 else "d29" if d <= 32 else "v1"
        return Version(salt, b"quic ", 0, 0x06, "tls")
    if v == MVFST_22:
        return Version("d22", b"quic ", 0, 0x06, "tls")
    if v in (MVFST_27, MVFST_EXP):
        return Version("d23", b"quic ", 0, 0x06, "tls")
    if (v & 0x0F0F0F0F) == 0x0A0A0A0A:              # greased: forces version negotiation
        return Version("d29", b"quic ", 0, 0x06, "tls")
    if v == Q050:
        return Version("q50", b"quic ", 0, 0x08, "chlo")
    if v == T050:
        return Version("t50", b"quic ", 0, 0x08, "tls")
    if v == T051:
        return Version("t51", b"quic ", 0, 0x08, "tls")
    if is_gquic_clear(v):
        return Version("", b"", 0, 0, "chlo")
    return None


def is_gquic_clear(v: int) -> bool:
    """Google QUIC Q024..Q046: the handshake travels unencrypted."""
    if (v >> 16) != 0x5130:                         # "Q0"
        return False
    hi, lo = (v >> 8) & 0xFF, v & 0xFF
    if not (0x30 <= hi <= 0x39 and 0x30 <= lo <= 0x39):
        return False
    n = (hi - 0x30) * 10 + (lo - 0x30)
    return 24 <= n <= 46


@dataclass
class Initial:
    """The handshake bytes found in one client Initial."""
    version: int
    handshake: str                      # "tls" or "chlo"
    pieces: list[tuple[int, bytes]]     # (stream offset, data), as found; see open_initial
    plain: bytes = b""                  # the decrypted frames (encrypted versions only)
    crypto_type: int = 0                # their CRYPTO frame type


# ---- key schedule (RFC 9001 section 5) ------------------------------------------

def _hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.digest(salt, ikm, "sha256")


def _expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    """HKDF-Expand-Label (RFC 8446 7.1) with an empty context, length <= 32."""
    full = b"tls13 " + label
    return hmac.digest(secret, struct.pack(">HB", length, len(full)) + full + b"\x00\x01", "sha256")[:length]


_KEYS: dict[tuple[str, bytes, bytes], tuple] = {}


@lru_cache(maxsize=1)
def _crypto() -> SimpleNamespace:
    """cryptography's classes, imported with the first QUIC Initial: the
    import costs 35-45 ms, which every command that inspects would
    otherwise pay at start-up, QUIC or not."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    return SimpleNamespace(AESGCM=AESGCM, Cipher=Cipher, algorithms=algorithms, modes=modes,
                           InvalidTag=InvalidTag)


def _client_keys(ver: Version, dcid: bytes):
    """(AEAD, iv as an int, header-protection AES-ECB encryptor) of a client
    Initial with this destination connection id. Kept per connection id (a
    client sends several Initials): building the cipher objects costs more
    than using them (ECB 3.3 against 0.2 us)."""
    k = (ver.salt, ver.labels, dcid)
    got = _KEYS.get(k)
    if got is None:
        secret = _expand_label(_hkdf_extract(_SALT[ver.salt], dcid), b"client in", 32)
        key = _expand_label(secret, ver.labels + b"key", 16)
        iv = _expand_label(secret, ver.labels + b"iv", 12)
        hp = _expand_label(secret, ver.labels + b"hp", 16)
        c = _crypto()
        got = (c.AESGCM(key), int.from_bytes(iv, "big"), c.Cipher(c.algorithms.AES(hp), c.modes.ECB()).encryptor())
        if len(_KEYS) > 256:
            _KEYS.clear()
        _KEYS[k] = got
    return got


_VARINT_MASK = (0, 0x3F, 0x3FFF, 0, 0x3FFFFFFF, 0, 0, 0, 0x3FFFFFFFFFFFFFFF)


def _varint(data: bytes, p: int) -> tuple[int, int]:
    """QUIC variable-length integer at p (RFC 9000 16): (value, next p)."""
    try:
        first = data[p]
    except IndexError:
        raise ValueError("varint past the end") from None
    if first < 0x40:                      # one byte: most frame fields
        return first, p + 1
    n = 1 << (first >> 6)
    if p + n > len(data):
        raise ValueError("varint past the end")
    return int.from_bytes(data[p:p + n], "big") & _VARINT_MASK[n], p + n


# ---- packets ------------------------------------------------------------------------

def client_initial(datagram: bytes) -> Initial:
    """The handshake pieces of the first packet of a UDP datagram, when it is
    a client Initial of a version ``version_info`` knows. Raises ValueError
    otherwise (not QUIC, not an Initial, cut short, does not decrypt, its
    frames do not parse)."""
    ini = open_initial(datagram)
    if ini.plain:
        ini.pieces = _frames(ini.plain, ini.crypto_type)
    return ini


def open_initial(datagram: bytes) -> Initial:
    """client_initial without the frame walk of encrypted versions: their
    Initial comes with ``plain`` (the decrypted frames) and ``crypto_type``
    and no ``pieces``, for the inspection stage's kernel (quic_hello) to
    walk; unencrypted gQUIC comes with its pieces."""
    data = bytes(datagram)
    if len(data) < 14:
        raise ValueError("too short for QUIC")
    if data[0] & 0x80:
        return _long_header(data)
    return _gquic_public_header(data)


def initial_crypto(datagram: bytes) -> list[tuple[int, bytes]]:
    """CRYPTO frames (offset, data) of a client Initial carrying TLS.
    Raises ValueError when it is not one or does not decrypt."""
    ini = client_initial(datagram)
    if ini.handshake != "tls":
        raise ValueError("not a TLS handshake")
    return ini.pieces


def _long_header(data: bytes) -> Initial:
    version = struct.unpack_from(">I", data, 1)[0]
    ver = version_info(version)
    if ver is None:
        raise ValueError(f"QUIC version {version:#010x} not supported")
    if version == Q046:
        return _q046(data, version)
    if (data[0] & 0x40) == 0 and (version & 0x0F0F0F0F) != 0x0A0A0A0A:
        raise ValueError("fixed bit clear")
    if ((data[0] >> 4) & 3) != ver.initial_type:
        raise ValueError("not an Initial packet")
    p = 5
    dcil = data[p]
    if dcil == 0 or dcil > 20 or p + 1 + dcil >= len(data):
        raise ValueError("bad destination connection id")
    dcid = data[p + 1:p + 1 + dcil]
    p += 1 + dcil
    scil = data[p]
    if scil > 20:
        raise ValueError("bad source connection id")
    p += 1 + scil
    tlen, p = _varint(data, p)
    p += tlen
    length, p = _varint(data, p)
    pn_off = p
    if length < 20 or pn_off + length > len(data):
        raise ValueError("cut short")
    aead, iv, hp = _client_keys(ver, dcid)
    sample = data[pn_off + 4:pn_off + 20]
    if len(sample) < 16:
        raise ValueError("cut short")
    mask = hp.update(sample)        # ECB: one block in, one out, no state kept
    first = data[0] ^ (mask[0] & 0x0F)
    pn_len = (first & 3) + 1
    pn = int.from_bytes(data[pn_off:pn_off + pn_len], "big") ^ int.from_bytes(mask[1:1 + pn_len], "big")
    pn_bytes = pn.to_bytes(pn_len, "big")
    header = bytes([first]) + data[1:pn_off] + pn_bytes
    nonce = (iv ^ pn).to_bytes(12, "big")
    ct = data[pn_off + pn_len:pn_off + length]
    if len(ct) < 17:
        raise ValueError("cut short")
    try:
        plain = aead.decrypt(nonce, ct, header)
    except _crypto().InvalidTag:
        raise ValueError("does not decrypt (not a client Initial of this connection id)") from None
    return Initial(version, ver.handshake, [], plain, ver.crypto_frame)


_PIECES = np.zeros((256, 3), dtype=np.int64)    # crypto_frames' rows: offset, start, length


def _frames(plain: bytes, crypto_type: int) -> list[tuple[int, bytes]]:
    """Handshake pieces (offset, data) of the CRYPTO frames of decrypted
    frames (ulnet.inspect.quic_frames walks them)."""
    k = crypto_frames(np.frombuffer(plain, np.uint8), crypto_type, _PIECES)
    if k < 0:
        raise ValueError("a frame runs past the end of the packet")
    return [(off, plain[a:a + ln]) for off, a, ln in _PIECES[:k].tolist()]


def _gquic_public_header(data: bytes) -> Initial:
    """Q024..Q043: flags, 8-byte connection id, version, packet number, a
    12-byte message hash (and before Q034 a private-flags byte), frames."""
    flags = data[0]
    if not (flags & 0x01) or not (flags & 0x08) or (flags & 0xC2):
        raise ValueError("not a gQUIC client packet with a version and a connection id")
    p = 1 + 8
    if p + 4 > len(data):
        raise ValueError("cut short")
    version = struct.unpack_from(">I", data, p)[0]
    if not is_gquic_clear(version) or version >= Q046:
        raise ValueError("not a gQUIC public-header version")
    p += 4 + (1, 2, 4, 6)[(flags >> 4) & 3] + 12
    if version < 0x51303334:                  # Q033 and older: private flags
        p += 1
    return Initial(version, "chlo", _stream1(data, p, version))


def _q046(data: bytes, version: int) -> Initial:
    """Q046: long header with nibble-coded connection id lengths, a 4-byte
    packet number in clear, the 12-byte hash, frames."""
    if (data[0] & 0x30) != 0:
        raise ValueError("not an Initial packet")
    d, s = data[5] >> 4, data[5] & 0xF
    p = 6 + (d + 3 if d else 0) + (s + 3 if s else 0)
    p += (data[0] & 3) + 1 + 12
    return Initial(version, "chlo", _stream1(data, p, version))


def _stream1(data: bytes, p: int, version: int) -> list[tuple[int, bytes]]:
    """The first STREAM frame on stream 1 (the crypto stream), after
    PADDING bytes. Frame type 1FDOOOSS: fin, data length present, offset
    length, stream id length. Lengths are little-endian before Q039."""
    while p < len(data) and data[p] == 0:
        p += 1
    if p >= len(data) or (data[p] & 0x80) == 0:
        raise ValueError("no STREAM frame")
    ft = data[p]
    sid_len = (ft & 3) + 1
    ooo = (ft >> 2) & 7
    off_len = ooo + 1 if ooo else 0
    q = p + 1
    if q + sid_len + off_len + 2 > len(data):
        raise ValueError("cut short")
    sid = int.from_bytes(data[q:q + sid_len], "little" if version < 0x51303339 else "big")
    if sid != 1:
        raise ValueError("not the crypto stream")
    q += sid_len
    off = int.from_bytes(data[q:q + off_len], "little" if version < 0x51303339 else "big") if off_len else 0
    q += off_len
    if ft & 0x20:
        ln = int.from_bytes(data[q:q + 2], "little" if version < 0x51303339 else "big")
        q += 2
    else:
        ln = len(data) - q
    if q + ln > len(data):
        raise ValueError("STREAM frame past the end")
    return [(off, data[q:q + ln])]


# ---- handshake messages -----------------------------------------------------------

def assemble(pieces: list[tuple[int, bytes]]) -> bytes:
    """The contiguous handshake stream from offset 0 (what is known of it)."""
    data = bytearray()
    for off, chunk in sorted(pieces):
        if off > len(data):
            break
        if off + len(chunk) > len(data):
            data += chunk[len(data) - off:]
    return bytes(data)
