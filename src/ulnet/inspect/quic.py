"""QUIC Initial packets: remove the protection (RFC 9001 section 5) and read
the ClientHello's server name.

The keys of a client Initial are derived from its Destination Connection ID
and a salt fixed per version, so any observer can remove them. This runs in
Python with the ``cryptography`` package (AES-GCM, AES-ECB for the header
protection mask, HKDF) once per QUIC flow, on the client's first Initial
packets only, never per packet of the flow. CRYPTO frames are put back in
offset order; a ClientHello split over two Initials (post-quantum key
shares make it that long) is read once both have been seen.

Supported: QUIC v1 (RFC 9000), v2 (RFC 9369) and IETF drafts 23-34. Google
QUIC (Q0xx/T0xx) uses other framing and is not decrypted (no name).
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
SALT_V2 = bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9")
SALT_D29 = bytes.fromhex("afbfec289993d24c9e9786f19c6111e04390a899")
SALT_D23 = bytes.fromhex("c3eef712c72ebb5a11a7d2432bb46365bef9f502")
V2 = 0x6B3343CF


def _salt_and_labels(version: int):
    if version == 1:
        return SALT_V1, b"quic key", b"quic iv", b"quic hp"
    if version == V2:
        return SALT_V2, b"quicv2 key", b"quicv2 iv", b"quicv2 hp"
    if (version & 0xFFFFFF00) == 0xFF000000:
        d = version & 0xFF
        if 29 <= d <= 34:
            return SALT_D29, b"quic key", b"quic iv", b"quic hp"
        if 23 <= d <= 28:
            return SALT_D23, b"quic key", b"quic iv", b"quic hp"
    return None


def _hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def _expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    full = b"tls13 " + label
    info = struct.pack(">HB", length, len(full)) + full + b"\x00"
    out, block, k = b"", b"", 1
    while len(out) < length:
        block = hmac.new(secret, block + info + bytes([k]), hashlib.sha256).digest()
        out += block
        k += 1
    return out[:length]


def _varint(data: bytes, p: int):
    if p >= len(data):
        raise ValueError("varint past end")
    first = data[p]
    n = 1 << (first >> 6)
    if p + n > len(data):
        raise ValueError("varint past end")
    v = first & 0x3F
    for k in range(1, n):
        v = (v << 8) | data[p + k]
    return v, p + n


def initial_crypto(datagram: bytes) -> list[tuple[int, bytes]]:
    """CRYPTO frames (offset, data) of the first (client) Initial packet in a
    UDP datagram. Raises ValueError when it is not one or does not decrypt."""
    if len(datagram) < 7 or (datagram[0] & 0xC0) != 0xC0:
        raise ValueError("not a long header")
    version = struct.unpack_from(">I", datagram, 1)[0]
    params = _salt_and_labels(version)
    if params is None:
        raise ValueError(f"QUIC version {version:#x} not decryptable")
    salt, lkey, liv, lhp = params
    ptype = (datagram[0] >> 4) & 3
    if (version == V2 and ptype != 1) or (version != V2 and ptype != 0):
        raise ValueError("not an Initial packet")
    p = 5
    dcil = datagram[p]
    dcid = datagram[p + 1:p + 1 + dcil]
    p += 1 + dcil
    if p >= len(datagram):
        raise ValueError("cut short")
    scil = datagram[p]
    p += 1 + scil
    tlen, p = _varint(datagram, p)
    p += tlen
    length, p = _varint(datagram, p)
    pn_off = p
    if pn_off + 4 + 16 > len(datagram) or length < 20 or pn_off + length > len(datagram):
        raise ValueError("cut short")
    secret = _expand_label(_hkdf_extract(salt, dcid), b"client in", 32)
    key = _expand_label(secret, lkey, 16)
    iv = _expand_label(secret, liv, 12)
    hp = _expand_label(secret, lhp, 16)
    sample = datagram[pn_off + 4:pn_off + 20]
    enc = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    mask = enc.update(sample) + enc.finalize()
    first = datagram[0] ^ (mask[0] & 0x0F)
    pn_len = (first & 3) + 1
    pn_bytes = bytes(datagram[pn_off + k] ^ mask[1 + k] for k in range(pn_len))
    pn = int.from_bytes(pn_bytes, "big")
    header = bytes([first]) + datagram[1:pn_off] + pn_bytes
    nonce = bytes(a ^ b for a, b in zip(iv, pn.to_bytes(12, "big")))
    ct = datagram[pn_off + pn_len:pn_off + length]
    try:
        plain = AESGCM(key).decrypt(nonce, ct, header)
    except Exception as e:   # InvalidTag: not a client Initial of this DCID
        raise ValueError("does not decrypt") from e
    return _crypto_frames(plain)


def _crypto_frames(plain: bytes) -> list[tuple[int, bytes]]:
    out = []
    p = 0
    while p < len(plain):
        ft = plain[p]
        if ft == 0x00 or ft == 0x01:          # PADDING, PING
            p += 1
        elif ft == 0x06:                      # CRYPTO
            off, p = _varint(plain, p + 1)
            ln, p = _varint(plain, p)
            out.append((off, plain[p:p + ln]))
            p += ln
        elif ft in (0x02, 0x03):              # ACK: skip it
            _, p = _varint(plain, p + 1)
            _, p = _varint(plain, p)
            cnt, p = _varint(plain, p)
            _, p = _varint(plain, p)
            for _ in range(cnt):
                _, p = _varint(plain, p)
                _, p = _varint(plain, p)
            if ft == 0x03:
                for _ in range(3):
                    _, p = _varint(plain, p)
        elif ft == 0x1C:                      # CONNECTION_CLOSE
            break
        else:
            break
    return out


def assemble(pieces: list[tuple[int, bytes]]) -> bytes:
    """The contiguous CRYPTO stream from offset 0 (what is known of it)."""
    data = bytearray()
    for off, chunk in sorted(pieces):
        if off > len(data):
            break
        if off + len(chunk) > len(data):
            data += chunk[len(data) - off:]
    return bytes(data)
