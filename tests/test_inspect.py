"""Inspection: matchers, extractors and the QUIC pass, against slow twins,
nDPI's conventions, hand-built packets, corpus captures and fuzzed input.

Every extractor and matcher is bounded by the payload it is given: the
fuzz tests run once more in a subprocess with NUMBA_BOUNDSCHECK=1 (a read
past the payload array raises IndexError there), each payload in an array
of exactly its own length. A malformed TLS or QUIC handshake yields no
name and never an exception.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import CORPUS, LIBPEAK, ROOT, run_python, run_ulnet
from _captures import Rec, ether, ipv4_udp, pcap_bytes

import ulnet
from ulnet.counters import new_counters
from ulnet.flow import FlowTable
from ulnet.flow import _kernels as FK
from ulnet.inspect import Inspector, quic
from ulnet.inspect import _kernels as K
from ulnet.inspect._dispatch import dispatch
from ulnet.inspect.matchers import network, web
from ulnet.inspect.registry import APPS, ID, NAMES
from ulnet.inspect.words import load_words

NDPI = CORPUS / "ndpi" / "pcap"
BOUNDSCHECK = os.environ.get("NUMBA_BOUNDSCHECK") == "1"
FUZZ = settings(max_examples=150 if BOUNDSCHECK else 300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---- builders ------------------------------------------------------------------------

def _u16(v):
    return struct.pack(">H", v)


def _ext(t, body):
    return _u16(t) + _u16(len(body)) + body


def client_hello(sni=b"www.example.com", alpn=b"h2", session=b"", extra=b"", record=True) -> bytes:
    """A TLS 1.2/1.3 ClientHello (with its record header when ``record``)."""
    exts = extra
    if sni is not None:
        entry = b"\x00" + _u16(len(sni)) + sni
        exts += _ext(0, _u16(len(entry)) + entry)
    if alpn is not None:
        proto = bytes([len(alpn)]) + alpn
        exts += _ext(16, _u16(len(proto)) + proto)
    body = (b"\x03\x03" + bytes(range(32)) + bytes([len(session)]) + session + _u16(4) + b"\x13\x01\x13\x02"
            + b"\x01\x00" + _u16(len(exts)) + exts)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + _u16(len(hs)) + hs if record else hs


def dns_name(labels) -> bytes:
    return b"".join(bytes([len(x)]) + x for x in labels) + b"\x00"


def dns_msg(labels=(b"www", b"example", b"com"), qtype=1, flags=0x0100, qd=1, an=0, ns=0, ar=0, tail=b"",
            tid=0x1234) -> bytes:
    return struct.pack(">HHHHHH", tid, flags, qd, an, ns, ar) + dns_name(labels) + _u16(qtype) + _u16(1) + tail


def http_request(host=b"www.example.com:8080", ua=b"curl/8", method=b"GET", first=b" / HTTP/1.1") -> bytes:
    lines = [method + first]
    if host is not None:
        lines.append(b"Host: " + host)
    if ua is not None:
        lines.append(b"User-Agent: " + ua)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def dhcp_request(hostname=b"laptop", extra=b"") -> bytes:
    bootp = b"\x01\x01\x06\x00" + bytes(232) + b"\x63\x82\x53\x63"
    opts = b"\x35\x01\x03" + extra + (b"\x0c" + bytes([len(hostname)]) + hostname if hostname is not None else b"")
    return bootp + opts + b"\xff"


# ---- QUIC Initial, protected here with cryptography's own HKDF (an independent twin of
# ulnet.inspect.quic's key schedule) ------------------------------------------------------

def _hkdf_label(secret, label, length):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
    full = b"tls13 " + label
    info = _u16(length) + bytes([len(full)]) + full + b"\x00"
    return HKDFExpand(hashes.SHA256(), length, info).derive(secret)


def quic_initial(crypto_frames: bytes, dcid=bytes(range(8)), scid=b"\x01\x02\x03\x04", version=1, pn=0,
                 pad_to=1200, salt=quic._SALT["v1"], labels=b"quic ") -> bytes:
    """A protected client Initial carrying ``crypto_frames`` (RFC 9001 5.2-5.4)."""
    import hmac
    import hashlib
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    initial = hmac.new(salt, dcid, hashlib.sha256).digest()
    secret = _hkdf_label(initial, b"client in", 32)
    key, iv, hp = (_hkdf_label(secret, labels + b"key", 16), _hkdf_label(secret, labels + b"iv", 12),
                   _hkdf_label(secret, labels + b"hp", 16))
    pn_len = 2
    ptype = 1 if version == quic.V2 else 0
    head = struct.pack(">BI", 0xC0 | (ptype << 4) | (pn_len - 1), version) + bytes([len(dcid)]) + dcid + \
        bytes([len(scid)]) + scid + b"\x00"
    fixed = len(head) + 2 + pn_len + 16
    payload = crypto_frames + bytes(max(0, pad_to - fixed - len(crypto_frames)))
    length = pn_len + len(payload) + 16
    header = head + _u16(0x4000 | length) + pn.to_bytes(pn_len, "big")
    nonce = bytes(a ^ b for a, b in zip(iv, pn.to_bytes(12, "big")))
    ct = AESGCM(key).encrypt(nonce, payload, header)
    sample = ct[4 - pn_len:4 - pn_len + 16]
    enc = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    mask = enc.update(sample) + enc.finalize()
    out = bytearray(header + ct)
    out[0] ^= mask[0] & 0x0F
    for k in range(pn_len):
        out[len(header) - pn_len + k] ^= mask[1 + k]
    return bytes(out)


def crypto_frame(offset: int, data: bytes) -> bytes:
    def vi(v):
        return (0x80000000 | v).to_bytes(4, "big")
    return b"\x06" + vi(offset) + vi(len(data)) + data


# ---- slow twins ------------------------------------------------------------------------

def ref_client_hello(m: bytes):
    """(ok, sni, alpn) as tls_client_hello reads a handshake message, in plain Python."""
    if len(m) < 39 or m[0] != 1:
        return False, None, None
    hend = min(len(m), 4 + int.from_bytes(m[1:4], "big"))
    q = 38
    if q >= hend:
        return False, None, None
    q += 1 + m[q]
    if q + 2 > hend:
        return False, None, None
    q += 2 + int.from_bytes(m[q:q + 2], "big")
    if q + 1 > hend:
        return False, None, None
    q += 1 + m[q]
    if q + 2 > hend:
        return False, None, None
    xend = min(hend, q + 2 + int.from_bytes(m[q:q + 2], "big"))
    q += 2
    sni = alpn = None
    while q + 4 <= xend:
        et, el = int.from_bytes(m[q:q + 2], "big"), int.from_bytes(m[q + 2:q + 4], "big")
        body = m[q + 4:q + 4 + el]
        if q + 4 + el > xend:
            break
        if et == 0 and el >= 5 and body[2] == 0:
            nl = int.from_bytes(body[3:5], "big")
            if 5 + nl <= el:
                sni = body[5:5 + nl]
        elif et == 16 and el >= 3 and 3 + body[2] <= el:
            alpn = body[3:3 + body[2]]
        q += 4 + el
    return True, sni, alpn


def _text(raw: bytes, lower=True) -> str:
    out = []
    for c in raw:
        if not 0x20 <= c <= 0x7E:
            out.append("?")
        else:
            ch = chr(c)
            out.append(ch.lower() if lower else ch)
    return "".join(out)


def ref_dns_name(msg: bytes):
    """The name _dns stores for one message, or None (nDPI's conventions)."""
    if len(msg) < 12:
        return None
    qd, an = int.from_bytes(msg[4:6], "big"), int.from_bytes(msg[6:8], "big")
    if qd == 0 and an == 0:
        return None
    q, labels = 12, []
    for _ in range(128):
        if q >= len(msg):
            return None
        n = msg[q]
        if n == 0:
            break
        if n > 63 or q + 1 + n >= len(msg):
            return None
        labels.append(msg[q + 1:q + 1 + n])
        q += 1 + n
    else:
        return None
    if not labels:
        return None

    def conv(c):
        ch = chr(c).lower()
        if ch.isascii() and (ch.isalnum() or ch in "-_"):
            return ch
        return "_" if 0x20 <= c <= 0x7E else "?"
    name = ".".join("".join(conv(c) for c in lab) for lab in labels)
    return name[-FK.M_NAME_MAX:]


def ref_http_host(payload: bytes):
    """The Host header value as _http keeps it (None: no Host line before the blank line)."""
    for line in payload.split(b"\n"):
        if line in (b"", b"\r") or line[:1] in (b"\r",):
            return None
        if line[:5].lower() == b"host:":
            v = line[5:]
            for stop in (b"\r", b"\x00"):
                v = v.split(stop)[0]
            v = v.strip(b" \t")
            v = v[:v.index(b"]") + 1] if v[:1] == b"[" and b"]" in v else v.split(b":")[0]
            return _text(v[-FK.M_NAME_MAX:]) if v else None
    return None


# ---- kernel harness: one flow entry, its metadata slot ----------------------------------

class Slot:
    """A one-flow table to run the extractors against."""

    def __init__(self):
        self.t = FlowTable(max_flows=2, meta_slots=2)
        self.counters = np.zeros(256, dtype=np.int64)

    def _field(self, field, width):
        ms = (int(self.t.F[0, FK.F_APP]) >> FK.A_META_SHIFT) - 1
        if ms < 0:
            return None
        m = int(self.t.META[ms, field])
        return self.t.META[ms, field + 1:field + 1 + min(m, width)].tobytes().decode("latin-1") if m else None

    @property
    def name(self):
        return self._field(FK.M_NAME, FK.M_NAME_MAX)

    @property
    def ua(self):
        return self._field(FK.M_UA, FK.M_UA_MAX)

    @property
    def closed(self):
        return (int(self.t.F[0, FK.F_APP]) >> FK.A_DONE_SHIFT) & 3 == 3

    def args(self):
        t = self.t
        return (t.F, 0, t.META, t.MFREE, t.S, self.counters)

    def dns(self, msg, tcp=False):
        buf = np.frombuffer(msg, dtype=np.uint8)
        K._dns(buf, 2 if tcp else 0, len(buf), *self.args())

    def http(self, payload):
        buf = np.frombuffer(payload, dtype=np.uint8)
        K._http(buf, 0, len(buf), *self.args())

    def dhcp(self, payload):
        buf = np.frombuffer(payload, dtype=np.uint8)
        K._dhcp(buf, 0, len(buf), *self.args())


def kernel_hello(m: bytes):
    buf = np.frombuffer(m, dtype=np.uint8)
    out = np.zeros(4, dtype=np.int64)
    ok = K.tls_client_hello(buf, 0, len(buf), out)
    s_off, s_len, a_off, a_len = out.tolist()
    assert s_off == -1 or 0 <= s_off <= s_off + s_len <= len(m)
    assert a_off == -1 or 0 <= a_off <= a_off + a_len <= len(m)
    return bool(ok), (m[s_off:s_off + s_len] if s_off >= 0 else None), (m[a_off:a_off + a_len] if a_off >= 0 else None)


def words(payload: bytes):
    """The matchers' view of a payload (uint64 words: Python ints would
    type as int64 or uint64 by value)."""
    return tuple(np.uint64(x) for x in load_words(np.frombuffer(payload, dtype=np.uint8), 0, len(payload)))


def match(payload: bytes, sp=40000, dp=443, d=0, l4=6) -> str:
    return NAMES[dispatch(words(payload), len(payload), sp, dp, d, l4)]


# ---- TLS -------------------------------------------------------------------------------

def test_client_hello_sni_and_alpn():
    assert kernel_hello(client_hello(record=False)) == (True, b"www.example.com", b"h2")
    assert kernel_hello(client_hello(sni=None, alpn=None, record=False)) == (True, None, None)
    assert match(client_hello()) == "TLS"


def test_client_hello_cut_short_keeps_what_came_before_the_cut():
    m = client_hello(sni=b"a.example", alpn=b"h2", record=False)
    cut = m.index(b"a.example") + len(b"a.example")
    assert kernel_hello(m[:cut]) == (True, b"a.example", None)
    assert kernel_hello(m[:cut - 1])[1] is None


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_client_hello_random(data):
    assert kernel_hello(data) == ref_client_hello(data)
    assert kernel_hello(b"\x01" + data) == ref_client_hello(b"\x01" + data)


@FUZZ
@given(st.binary(min_size=0, max_size=60), st.one_of(st.none(), st.binary(max_size=40)),
       st.binary(max_size=32), st.integers(0, 400), st.lists(st.tuples(st.integers(0, 399), st.integers(0, 255)),
                                                             max_size=4))
def test_fuzz_client_hello_cut_and_flipped(sni, alpn, session, cut, flips):
    m = bytearray(client_hello(sni=sni, alpn=alpn, session=session, record=False))
    for pos, val in flips:
        if pos < len(m):
            m[pos] = val
    m = bytes(m[:cut])
    assert kernel_hello(m) == ref_client_hello(m)


# ---- HTTP ------------------------------------------------------------------------------

def test_http_host_without_port_user_agent_and_close():
    s = Slot()
    s.http(http_request(host=b"WWW.Example.COM:8080", ua=b"Mozilla/5.0 (X11)"))
    assert (s.name, s.ua, s.closed) == ("www.example.com", "Mozilla/5.0 (X11)", True)


def test_http_host_ends_at_nul_and_v6_literal_keeps_brackets():
    s = Slot()
    s.http(http_request(host=b"%s\x002.20.3.5"))
    assert s.name == "%s"
    s = Slot()
    s.http(http_request(host=b"[2001:db8::1]:8080"))
    assert s.name == "[2001:db8::1]"


def test_http_host_in_a_later_segment_and_not_in_the_body():
    s = Slot()
    s.http(b"POST / HTTP/1.1\r\n")
    assert s.name is None and not s.closed
    s.http(b"Connection: keep-alive\r\nHost: ocsp.digicert.com\r\n\r\n")
    assert s.name == "ocsp.digicert.com" and s.closed
    s = Slot()
    s.http(b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\nHost: body.example\r\n")
    assert s.name is None


@pytest.mark.parametrize("payload,app", [
    (b"GET / HTTP/1.1\r\n", "HTTP"),
    (b"PROPFIND /dav/ HTTP/1.1\r\n", "HTTP"),
    (b"PROPPATCH /dav/x HTTP/1.1\r\n", "HTTP"),
    (b"MKCOL /dav/new/ HTTP/1.1\r\n", "HTTP"),
    (b"HTTP/1.1 207 Multi-Status\r\n", "HTTP"),
    (b"OPTIONS rtsp://10.2.2.2:8554/x RTSP/1.0\r\n", "!HTTP"),        # RTSP's, if a matcher claims it
    (b"OPTIONS sip:bob@example.com SIP/2.0\r\n", "!HTTP"),
    (b"CONNECT www.example.com:443 HTTP/1.1\r\n", "HTTP_Connect"),
    (b'CONNECT {"verbose":false,"pedantic":false}\r\n', "!HTTP_Connect"),      # NATS
    (b"GETX / HTTP/1.1\r\n", "!HTTP"),
])
def test_http_matchers(payload, app):
    got = match(payload, sp=40000, dp=8080)
    if app.startswith("!"):
        assert got != app[1:]
        w = words(payload)
        assert not web.match_http(w, len(payload), 40000, 8080, 0)
        assert not web.match_http_connect(w, len(payload), 40000, 8080, 0)
    else:
        assert got == app


def test_http_proxy_matcher():
    p = b"POST http://a.example/x HTTP/1.1\r\n"
    assert web.match_http_proxy(words(p), len(p), 1, 80, 0)
    p = b"POST /x HTTP/1.1\r\nHost: a\r\n"
    assert not web.match_http_proxy(words(p), len(p), 1, 80, 0)


@pytest.mark.parametrize("capture", ["esp.pcapng", "ah.pcapng"])
def test_ipsec_is_ike_and_esp_or_ah(capture):
    # nDPI: the IKE exchange on UDP 500 and the ESP or AH flow are all IPSec
    if not (NDPI / capture).exists():
        pytest.skip("corpus capture missing")
    got = sorted((f.protocol, f.application_name, f.application_confidence) for f in ulnet.flows(str(NDPI / capture)))
    assert got == sorted([(17, "IPSec", "payload"), (50 if capture == "esp.pcapng" else 51, "IPSec", "protocol")])


def test_http_proxy_flow_has_its_host():
    # KakaoTalk_talk.pcap: "POST http://hkminorshort.weixin.qq.com/..." to port 80 (nDPI: HTTP_Proxy.QQ)
    if not (NDPI / "KakaoTalk_talk.pcap").exists():
        pytest.skip("corpus capture missing")
    got = {(f.dst_port, f.requested_server_name) for f in ulnet.flows(str(NDPI / "KakaoTalk_talk.pcap"))
           if f.application_name == "HTTP_Proxy" and f.application_confidence == "payload"}
    assert got == {(80, "hkminorshort.weixin.qq.com")}


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_http_random(data):
    s = Slot()
    s.http(data)
    assert s.name == ref_http_host(data)


@FUZZ
@given(st.one_of(st.none(), st.binary(max_size=80)), st.one_of(st.none(), st.binary(max_size=80)),
       st.integers(0, 300))
def test_fuzz_http_cut(host, ua, cut):
    p = http_request(host=host, ua=ua)[:cut]
    s = Slot()
    s.http(p)
    assert s.name == ref_http_host(p)


# ---- DNS -------------------------------------------------------------------------------

def test_dns_name_conventions():
    s = Slot()
    s.dns(dns_msg((b"WWW", b"allyourba\x04\x05\x06arebelongto", b"cn")))
    assert s.name == "www.allyourba???arebelongto.cn"
    s.dns(dns_msg((b"h4sicn03*2qaa", b"4s2fgaaaa==-", b"test", b"txt")))
    assert s.name == "h4sicn03_2qaa.4s2fgaaaa__-.test.txt"          # the last message wins
    long = tuple(b"x%02d" % k + bytes(60) .replace(b"\x00", b"a") for k in range(5)) + (b"example", b"org")
    s.dns(dns_msg(long))
    assert len(s.name) == FK.M_NAME_MAX and s.name.endswith(".example.org")   # the tail is kept


def test_dns_response_closes_unless_error_without_records():
    s = Slot()
    s.dns(dns_msg(flags=0x0100))
    assert not s.closed
    s.dns(dns_msg(flags=0x8183))                  # NXDOMAIN, no records: the resolver may answer again
    assert not s.closed
    s.dns(dns_msg(flags=0x8183, ns=1))
    assert s.closed
    s = Slot()
    s.dns(dns_msg(flags=0x8180))                  # no error, no records
    assert s.closed


def test_dns_inverse_query_compressed_name_and_tcp():
    s = Slot()
    s.dns(struct.pack(">HHHHHH", 1, 0x0900, 0, 1, 0, 0) + dns_name((b"216", b"58", b"202", b"4")) + bytes(10))
    assert s.name == "216.58.202.4"
    s = Slot()
    s.dns(struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\x03www\xc0\x0c" + bytes(4))
    assert s.name is None
    s = Slot()
    m = dns_msg()
    s.dns(_u16(len(m)) + m, tcp=True)
    assert s.name == "www.example.com"
    assert (int(s.t.META[0, FK.M_QTYPE]) << 8 | int(s.t.META[0, FK.M_QTYPE + 1])) == 1


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_dns_random(data):
    s = Slot()
    s.dns(data)
    assert s.name == ref_dns_name(data)


@FUZZ
@given(st.lists(st.binary(min_size=1, max_size=63), min_size=1, max_size=8), st.integers(0, 600),
       st.lists(st.tuples(st.integers(0, 599), st.integers(0, 255)), max_size=3))
def test_fuzz_dns_cut_and_flipped(labels, cut, flips):
    m = bytearray(dns_msg(tuple(labels)))
    for pos, val in flips:
        if pos < len(m):
            m[pos] = val
    m = bytes(m[:cut])
    s = Slot()
    s.dns(m)
    assert s.name == ref_dns_name(m)
    s = Slot()
    s.dns(_u16(len(m)) + m, tcp=True)
    assert s.name == ref_dns_name(m)


def test_dns_matcher_inverse_query_and_garbled_counts():
    inv = struct.pack(">HHHHHH", 1, 0x0900, 0, 1, 0, 0) + dns_name((b"1", b"2", b"3", b"4")) + bytes(10)
    assert match(inv, dp=53, l4=17) == "DNS"
    assert match(dns_msg(ar=207), dp=53, l4=17) == "DNS"
    assert match(dns_msg(), dp=54, l4=17) == "Unknown"
    assert match(dns_msg(flags=0x0140), dp=53, l4=17) == "Unknown"      # Z bit


# ---- DHCP ------------------------------------------------------------------------------

def test_dhcp_host_name_keeps_case():
    s = Slot()
    s.dhcp(dhcp_request(b"Laptop-7"))
    assert s.name == "Laptop-7" and s.closed
    s = Slot()
    s.dhcp(dhcp_request(None))
    assert s.name is None


@FUZZ
@given(st.binary(max_size=80), st.one_of(st.none(), st.binary(max_size=60)), st.integers(0, 400))
def test_fuzz_dhcp_options(extra, hostname, cut):
    p = dhcp_request(hostname, extra=extra)[:cut]
    Slot().dhcp(p)
    Slot().dhcp(bytes(240) + extra)


# ---- every matcher, through the dispatcher --------------------------------------------

@FUZZ
@given(st.binary(max_size=80), st.sampled_from([6, 17]), st.integers(0, 65535), st.integers(0, 65535),
       st.integers(0, 1), st.integers(0, 1500))
def test_fuzz_dispatch_bounded(data, l4, sp, dp, d, n):
    # n beyond the bytes given: the matchers only see 32 bytes and n; nothing else to read
    w = words(data)
    r = dispatch(w, len(data), sp, dp, d, l4)
    assert 0 <= r < len(NAMES)
    r = dispatch(w, max(n, len(data)), sp, dp, d, l4)
    assert 0 <= r < len(NAMES)


def _reference_dispatch():
    """The dispatcher as the registry defines it: every matcher of the
    transport, in registry order, called as it is (no call-site tests)."""
    from ulnet.inspect.registry import matcher_function
    table = [(a.transport, matcher_function(a.matcher), i) for i, a in enumerate(APPS, start=1)
             if a.matcher and not isinstance(a.transport, int)]

    def ref(w, n, sp, dp, d, l4):
        for tr, f, i in table:
            if (tr in ("tcp", "both") if l4 == 6 else tr in ("udp", "both")) and f(w, n, sp, dp, d):
                return i
        return 0
    return ref, [f for _tr, f, _i in table]


def _corpus_payloads(limit=1500):
    """(first 32 bytes, length, sport, dport, IP protocol) of distinct
    payloads from every seventh corpus capture."""
    from ulnet.batch.columns import H_DPORT, H_PAYLOAD, H_PAYLOAD_LEN, H_PROTO, H_SPORT
    from ulnet.pipeline import Pipeline
    from ulnet.sources import CaptureError
    seen = {}
    for path in sorted(NDPI.glob("*"))[::7]:
        try:
            for b in Pipeline([str(path)]):
                for i in range(b.n):
                    h = b.hdr[i]
                    if h[H_PROTO] in (6, 17) and h[H_PAYLOAD_LEN] > 0 and h[H_PAYLOAD] >= 0:
                        p = int(b.off[i] + h[H_PAYLOAD])
                        m = int(h[H_PAYLOAD_LEN])
                        key = (b.buf[p:p + min(m, 32)].tobytes(), m, int(h[H_SPORT]), int(h[H_DPORT]), int(h[H_PROTO]))
                        seen.setdefault(key, None)
                if len(seen) >= limit:
                    return list(seen)
        except CaptureError:
            pass
    return list(seen)


_REF, _MATCHER_FUNCS = _reference_dispatch()
_PAYLOADS = _corpus_payloads()


def _guards():
    """The call-site tests the generator copies, as text (those it copies)."""
    from ulnet.inspect.gen_dispatch import call_guard
    return [g for g in map(call_guard, _MATCHER_FUNCS) if g]


_GUARDS = _guards()


def test_dispatch_is_the_registry_in_order():
    """The generated dispatcher (with its call-site tests) answers as every
    matcher called in registry order, on real payloads (both directions),
    each also claimed at lengths next to the bounds those tests name: the
    copied tests change no answer."""
    import re
    cuts = sorted({int(k) for g in _GUARDS for k in re.findall(r"\bn [<>=!]+ (\d+)", g)})
    assert len(_PAYLOADS) > 1000 and len(cuts) > 20
    decided = 0
    for head, m, sp, dp, l4 in _PAYLOADS:
        w = words(head)
        for d in (0, 1):
            for n in {m, max(len(head), cuts[(m + d) % len(cuts)] - 1), max(len(head), cuts[(m + d) % len(cuts)])}:
                got = dispatch(w, n, sp, dp, d, l4)
                assert got == _REF(w, n, sp, dp, d, l4), (head.hex(), n, sp, dp, d, l4)
                decided += got != 0
    assert decided > 500


def _guard_numbers():
    """Every number the dispatcher's call-site tests compare with, and its
    neighbours (lengths and ports on both sides of each bound)."""
    import re
    nums = {int(x) for g in _GUARDS for x in re.findall(r"\d+", g)}
    return sorted({v + e for v in nums for e in (-1, 0, 1) if 0 <= v + e <= 65535})


_GUARD_NUMBERS = _guard_numbers()


@FUZZ
@given(st.sampled_from(_PAYLOADS), st.lists(st.tuples(st.integers(0, 31), st.integers(0, 255)), max_size=3),
       st.one_of(st.integers(0, 1500), st.sampled_from(_GUARD_NUMBERS)), st.integers(0, 1),
       st.one_of(st.none(), st.sampled_from(_GUARD_NUMBERS)), st.one_of(st.none(), st.sampled_from(_GUARD_NUMBERS)))
def test_fuzz_dispatch_is_the_registry_in_order(case, edits, n, d, sp2, dp2):
    """Real payloads with a few bytes changed, any length, and ports moved to
    either side of the bounds the call-site tests name."""
    head, _m, sp, dp, l4 = case
    sp = sp if sp2 is None else sp2
    dp = dp if dp2 is None else dp2
    b = bytearray(head)
    for k, v in edits:
        if k < len(b):
            b[k] = v
    w = words(bytes(b))
    n = max(n, len(b))
    assert dispatch(w, n, sp, dp, d, l4) == _REF(w, n, sp, dp, d, l4)


def test_gen_dispatch_call_guard():
    """What the generator copies to a call site: the leading part of the
    matcher's first statement that reads only n, sp, dp, d and numbers."""
    from ulnet.inspect.gen_dispatch import call_guard

    def a(w, n, sp, dp, d):
        """doc"""
        if n < 12 or sp == 1 or b(w, 0) != 3:       # noqa: F821
            return False
        return True

    def a1(w, n, sp, dp, d):
        if n <= 7:
            return False
        return True

    def c(w, n, sp, dp, d):
        if b(w, 0) == 1 or n < 12:                  # noqa: F821  (reads the payload first: nothing)
            return False
        return True

    def e(w, n, sp, dp, d):
        if n < 12:
            return True
        return False

    def f(w, n, sp, dp, d):
        if n < LIMIT:                               # noqa: F821  (a name, not a number)
            return False
        return True

    def g(w, n, sp, dp, d):
        return n >= 8 and sp != 5 and head(w, 8) == 7   # noqa: F821

    def h(w, n, sp, dp, d):
        return head(w, 8) == 7 and n >= 8           # noqa: F821

    def k(w, n, sp, dp, d):
        x = n
        return x > 3
    assert [call_guard(x) for x in (a, a1, c, e, f, g, h, k)] == [
        "not (n < 12 or sp == 1)", "n > 7", None, None, None, "n >= 8 and sp != 5", None, None]


def test_dispatch_module_is_generated_from_the_registry():
    from ulnet.inspect import gen_dispatch
    assert gen_dispatch.OUT.read_text() == gen_dispatch.render(), "run python -m ulnet.inspect.gen_dispatch"


# ---- DTLS and QUIC matchers ------------------------------------------------------------

@pytest.mark.parametrize("hexhead,n,app", [
    ("16fefd000000000000000000560100004a0000000000", 99, "DTLS"),       # ClientHello, DTLS 1.2
    ("160100000000000000000000560100004a0000000000", 99, "DTLS"),       # Cisco AnyConnect (01 00)
    ("17fefd00010000000c1acd016db244fe961a4f876f", 378, "DTLS"),         # application data, epoch 1
    ("17fefd00000000000c1acd016db244fe961a4f876f", 378, "Unknown"),      # application data in epoch 0
    ("17fefd00010000000c1acd7fffb244fe961a4f876f", 378, "Unknown"),      # record longer than the datagram
])
def test_dtls_matcher(hexhead, n, app):
    payload = bytes.fromhex(hexhead)
    payload += bytes(n - len(payload))
    assert match(payload, sp=54107, dp=443, l4=17) == app


def test_quic_matcher_header_checks():
    ch = client_hello(record=False)
    good = quic_initial(crypto_frame(0, ch))
    assert match(good, dp=443, l4=17) == "QUIC"
    assert match(good, dp=443, l4=17, d=1) != "QUIC"                     # only the client's Initial
    assert match(good[:1199], dp=443, l4=17) != "QUIC"                   # not padded to 1200
    short_dcid = quic_initial(crypto_frame(0, ch), dcid=b"\x01\x02\x03")
    assert match(short_dcid, dp=443, l4=17) != "QUIC"                    # a first Initial's DCID >= 8 bytes
    handshake = bytearray(good)
    handshake[0] = (handshake[0] & 0xCF) | 0x20
    assert match(bytes(handshake), dp=443, l4=17) != "QUIC"
    bad_version = good[:1] + b"\x12\x34\x56\x78" + good[5:]
    assert match(bad_version, dp=443, l4=17) != "QUIC"


# ---- QUIC decryption -------------------------------------------------------------------

def test_quic_v1_and_v2_initials_decrypt():
    ch = client_hello(sni=b"quic.example", record=False)
    for version, salt, labels in ((1, quic._SALT["v1"], b"quic "), (quic.V2, quic._SALT["v2"], b"quicv2 "),
                                  (0xFF00001D, quic._SALT["d29"], b"quic "),
                                  (0xFACEB002, quic._SALT["d23"], b"quic ")):
        ini = quic.client_initial(quic_initial(crypto_frame(0, ch), version=version, salt=salt, labels=labels))
        assert ini.handshake == "tls" and quic.assemble(ini.pieces) == ch


def test_quic_wrong_key_does_not_decrypt():
    pkt = bytearray(quic_initial(crypto_frame(0, client_hello(record=False))))
    pkt[-1] ^= 1
    with pytest.raises(ValueError):
        quic.client_initial(bytes(pkt))


def _frames_oracle(plain: bytes, crypto_type: int):
    """RFC 9000's frame walk written plainly (the Python loop that
    ulnet.inspect.quic_frames replaced): pieces, or None where it raises."""
    def varint(p):
        if p >= len(plain):
            raise ValueError
        n = 1 << (plain[p] >> 6)
        if p + n > len(plain):
            raise ValueError
        return int.from_bytes(plain[p:p + n], "big") & ((1 << (8 * n - 2)) - 1), p + n
    out, p = [], 0
    try:
        while p < len(plain):
            ft = plain[p]
            if ft in (0, 1):
                p += 1
            elif ft == crypto_type:
                off, p = varint(p + 1)
                ln, p = varint(p)
                if p + ln > len(plain) or len(out) == 256:
                    raise ValueError
                out.append((off, plain[p:p + ln]))
                p += ln
            elif ft in (2, 3):
                fields = []
                p += 1
                for _ in range(4):
                    v, p = varint(p)
                    fields.append(v)
                if fields[2] > len(plain):
                    raise ValueError
                for _ in range(2 * fields[2] + (3 if ft == 3 else 0)):
                    _, p = varint(p)
            else:
                break
    except ValueError:
        return None
    return out


def _quic_varint(v: int) -> bytes:
    for n, tag in ((1, 0), (2, 0x40), (4, 0x80), (8, 0xC0)):
        if v < 1 << (8 * n - 2):
            return (v | (tag << (8 * n - 8))).to_bytes(n, "big")
    raise AssertionError(v)


_FRAME = st.one_of(
    st.builds(lambda k: bytes(k), st.integers(1, 30)),                                # PADDING
    st.just(b"\x01"),                                                                  # PING
    st.builds(lambda off, data: b"\x06" + _quic_varint(off) + _quic_varint(len(data)) + data,
              st.integers(0, 1 << 40), st.binary(max_size=60)),                        # CRYPTO
    st.builds(lambda ecn, vals: (b"\x03" if ecn else b"\x02") + b"".join(_quic_varint(v) for v in vals),
              st.booleans(), st.lists(st.integers(0, 1 << 20), min_size=4, max_size=12)),   # ACK (ranges may mismatch)
    st.binary(max_size=12),                                                             # anything
)


@FUZZ
@given(st.lists(_FRAME, max_size=25), st.integers(0, 40), st.sampled_from([6, 8]))
def test_quic_frames_kernel_matches_the_plain_walk(frames, cut, crypto_type):
    """The compiled frame walk gives the pieces a plain walk gives, and
    raises ValueError exactly where it fails, on well-formed, cut and
    garbled frame sequences."""
    plain = b"".join(frames)
    plain = plain[:len(plain) - cut] if cut < len(plain) else plain
    want = _frames_oracle(plain, crypto_type)
    if want is None:
        with pytest.raises(ValueError):
            quic._frames(plain, crypto_type)
    else:
        assert quic._frames(plain, crypto_type) == want


def chlo_tags(msg: bytes, want=None) -> dict[bytes, bytes]:
    """Tag -> value of a gQUIC CHLO, in plain Python (the reading the stage
    did before chlo_meta): stops at the first inconsistent entry."""
    if len(msg) < 8 or msg[:4] != b"CHLO":
        return {}
    n = int.from_bytes(msg[4:6], "little")
    base, prev, out = 8 + 8 * n, 0, {}
    for k in range(n):
        e = 8 + 8 * k
        if e + 8 > len(msg):
            break
        end = int.from_bytes(msg[e + 4:e + 8], "little")
        if end < prev or base + end > len(msg):
            break
        tag = bytes(msg[e:e + 4])
        if want is None or tag in want:
            out[tag] = bytes(msg[base + prev:base + end])
        prev = end
    return out


def tls_complete(stream: bytes) -> bool:
    """Whether a TLS handshake stream holds its first message whole (what
    the stage asked of an assembled stream before quic_hello)."""
    return len(stream) >= 4 and len(stream) >= 4 + int.from_bytes(stream[1:4], "big")


def _chlo_msg(entries, count=None):
    end, head = 0, b""
    for tag, v in entries:
        end += len(v)
        head += tag + struct.pack("<I", end)
    n = len(entries) if count is None else count
    return b"CHLO" + struct.pack("<HH", n, 0) + head + b"".join(v for _, v in entries)


def _meta_after(fn):
    """(F, META) of a one-flow table after fn(table, counters)."""
    t = FlowTable(16)
    fn(t, new_counters())
    return t.F[0].copy(), t.META.copy()


def _chlo_oracle(msg):
    """The stage's former CHLO reading: chlo_tags, then _slot/_put."""
    def go(t, c):
        tags = chlo_tags(msg, (b"SNI\0", b"UAID"))
        sni, ua = tags.get(b"SNI\0", b""), tags.get(b"UAID", b"")
        if not sni and not ua:
            return
        ms = K._slot(t.F, 0, t.META, t.MFREE, t.S, c)
        if sni:
            K._put(t.META, ms, FK.M_NAME, FK.M_NAME_MAX, np.frombuffer(sni, np.uint8), 0, len(sni), True, True)
        if ua:
            K._put(t.META, ms, FK.M_UA, FK.M_UA_MAX, np.frombuffer(ua, np.uint8), 0, len(ua), False)
    return _meta_after(go)


def _chlo_kernel(msg):
    arr = np.frombuffer(msg, np.uint8)
    return _meta_after(lambda t, c: K.chlo_meta(arr, 0, len(arr), t.F, 0, t.META, t.MFREE, t.S, c))


def test_chlo_meta():
    vals = [(b"PAD\x00", b"---"), (b"SNI\x00", b"WWW.Example.com"), (b"UAID", b"Chrome/99")]
    msg = _chlo_msg(vals)
    assert chlo_tags(msg) == dict(vals)
    F, META = _chlo_kernel(msg)
    ms = (int(F[FK.F_APP]) >> FK.A_META_SHIFT) - 1
    assert ms >= 0
    assert META[ms, FK.M_NAME + 1:FK.M_NAME + 1 + META[ms, FK.M_NAME]].tobytes() == b"www.example.com"
    assert META[ms, FK.M_UA + 1:FK.M_UA + 1 + META[ms, FK.M_UA]].tobytes() == b"Chrome/99"
    for bad in (msg[:20], b"SHLO" + msg[4:], b""):
        F, META = _chlo_kernel(bad)
        assert (int(F[FK.F_APP]) >> FK.A_META_SHIFT) == 0 and not META.any()


_TAG = st.sampled_from([b"SNI\x00", b"UAID", b"PAD\x00", b"VER\x00", b"SNI\x01", b"UAIE"])


@FUZZ
@given(st.lists(st.tuples(_TAG, st.binary(max_size=40)), max_size=8), st.integers(0, 3), st.integers(0, 200),
       st.integers(-2, 2))
def test_chlo_meta_matches_the_plain_reading(entries, bump, cut, extra):
    """The kernel writes the flow's metadata as chlo_tags + _put did, on
    well-formed, cut, mis-counted and non-monotonic CHLOs."""
    msg = bytearray(_chlo_msg(entries, max(0, len(entries) + extra)))
    if bump and len(entries) > 1:                   # an end offset out of order
        q = 8 + 8 * (bump % len(entries)) + 4
        if q + 4 <= len(msg):
            msg[q:q + 4] = struct.pack("<I", 0)
    msg = bytes(msg[:len(msg) - cut] if cut < len(msg) else msg)
    want, got = _chlo_oracle(msg), _chlo_kernel(msg)
    assert np.array_equal(want[0], got[0]) and np.array_equal(want[1], got[1])


@FUZZ
@given(st.data())
def test_quic_hello_joins_pieces_as_assemble_did(data):
    """A ClientHello cut into pieces (overlapping, repeated, in any order)
    spread over one to three Initials: after each, the stage's kernel
    (quic_hello through Inspector._read_initial) says the hello is whole
    exactly when the pieces assembled so far hold it, and the flow's
    metadata is what hello_meta gives on the assembled stream."""
    ch = client_hello(sni=data.draw(st.sampled_from([b"a.example", b"Split.Example.ORG", b"x" * 300])),
                      alpn=b"h3", extra=_ext(0xFFAA, bytes(data.draw(st.integers(0, 2000)))), record=False)
    pieces = []
    for _ in range(data.draw(st.integers(1, 12))):
        a = data.draw(st.integers(0, len(ch) - 1))
        pieces.append((a, ch[a:a + data.draw(st.integers(1, len(ch)))]))
    if data.draw(st.booleans()):
        pieces.append((0, ch[:data.draw(st.integers(1, len(ch)))]))
    packets = [[] for _ in range(data.draw(st.integers(1, 3)))]
    for pc in pieces:
        packets[data.draw(st.integers(0, len(packets) - 1))].append(pc)
    insp, table, counters = Inspector(), FlowTable(16), new_counters()
    seen = []
    for pk in packets:
        plain = b"".join(crypto_frame(o, d) + b"\x01" + bytes(3) for o, d in pk)
        done = insp._read_initial(table, 0, counters, 7, quic.Initial(1, "tls", [], plain or bytes(4), 6))
        seen += pk
        stream = quic.assemble(seen)
        assert done == tls_complete(stream)
        want = _meta_after(lambda t, c: K.hello_meta(np.frombuffer(stream, np.uint8), 0, len(stream), t.F, 0,
                                                     t.META, t.MFREE, t.S, c, np.zeros(4, np.int64)))
        ms = (int(table.F[0, FK.F_APP]) >> FK.A_META_SHIFT) - 1
        wms = (int(want[0][FK.F_APP]) >> FK.A_META_SHIFT) - 1
        assert (ms >= 0) == (wms >= 0)
        if ms >= 0:
            assert np.array_equal(table.META[ms], want[1][wms])
        if done:
            assert 7 not in insp._quic_pieces and not insp._qhave.any()
            break
        assert 7 in insp._quic_pieces and not insp._qhave.any()


def _flows(tmp_path, datagrams, sport=50000, dport=443, name="t.pcap"):
    recs = [Rec(ether(ipv4_udp(s, d, a, b, payload), 0x0800), ts=(k + 1) * 1000)
            for k, (s, d, a, b, payload) in enumerate(datagrams)]
    path = tmp_path / name
    path.write_bytes(pcap_bytes(recs))
    return list(ulnet.flows(str(path)))


def test_quic_client_hello_split_over_two_initials(tmp_path):
    ch = client_hello(sni=b"split.example", alpn=b"h3", extra=_ext(0xFFAA, bytes(1500)), record=False)
    half = 900
    c = ("10.0.0.1", "10.0.0.2", 50000, 443)
    first = quic_initial(crypto_frame(0, ch[:half]), pn=0)
    second = quic_initial(crypto_frame(half, ch[half:]), pn=1, pad_to=1200)
    server = ("10.0.0.2", "10.0.0.1", 443, 50000, b"\xc0" + bytes(100))
    for order in ([first, second], [second, first]):
        f, = _flows(tmp_path, [c + (order[0],), server, c + (order[1],)])
        assert (f.application_name, f.requested_server_name, f.alpn) == ("QUIC", "split.example", "h3")
        assert f.dpi_packets == 2


def test_quic_malformed_handshakes_yield_no_name(tmp_path):
    c = ("10.0.0.1", "10.0.0.2", 50000, 443)
    garbage = quic_initial(b"\x06" + b"\xff" * 40)                     # CRYPTO with a length past the end
    f, = _flows(tmp_path, [c + (garbage,)])
    assert f.application_name == "QUIC" and f.requested_server_name == ""
    broken = bytearray(quic_initial(crypto_frame(0, client_hello(record=False))))
    broken[100] ^= 0xFF                                                # does not decrypt any more
    f, = _flows(tmp_path, [c + (bytes(broken),)])
    assert f.application_name == "QUIC" and f.requested_server_name == ""


def _udp_payloads(path: Path, limit=20):
    """The first UDP payloads of a capture (through ulnet's own reader and decoder)."""
    from ulnet.batch.columns import H_PAYLOAD, H_PAYLOAD_LEN, H_PROTO
    from ulnet.pipeline import Pipeline
    out = []
    for b in Pipeline([str(path)]):
        for i in range(b.n):
            if b.hdr[i, H_PROTO] == 17 and b.hdr[i, H_PAYLOAD] >= 0 and b.hdr[i, H_PAYLOAD_LEN] > 0:
                p = int(b.off[i] + b.hdr[i, H_PAYLOAD])
                out.append(b.buf[p:p + int(b.hdr[i, H_PAYLOAD_LEN])].tobytes())
        if len(out) >= limit:
            break
    return out[:limit]


QUIC_SAMPLES = ["quic-29.pcap", "quic-v2.pcapng", "quic_t51.pcap", "quic_q50.pcap", "quic046.pcap", "quic.pcap",
                "quic-mvfst-exp.pcap", "quic_frags_ch_out_of_order_same_packet_craziness.pcapng"]


@pytest.fixture(scope="module")
def quic_datagrams():
    got = []
    for name in QUIC_SAMPLES:
        if (NDPI / name).exists():
            got += [p for p in _udp_payloads(NDPI / name, 6) if len(p) >= 1200]
    if not got:
        pytest.skip("no QUIC captures in the corpus")
    return got


@FUZZ
@given(st.data())
def test_fuzz_quic_initials_cut_and_flipped(quic_datagrams, data):
    d = bytearray(data.draw(st.sampled_from(quic_datagrams)))
    for pos, val in data.draw(st.lists(st.tuples(st.integers(0, len(d) - 1), st.integers(0, 255)), max_size=3)):
        d[pos] = val
    d = bytes(d[:data.draw(st.integers(0, len(d)))])
    try:
        ini = quic.client_initial(d)
    except ValueError:
        return
    stream = quic.assemble(ini.pieces)
    _chlo_kernel(stream)
    tls_complete(stream)
    kernel_hello(stream)
    try:
        Inspector()._read_initial(FlowTable(16), 0, new_counters(), 1, quic.open_initial(d))
    except ValueError:
        pass


@FUZZ
@given(st.binary(max_size=1400))
def test_fuzz_quic_random(data):
    for d in (data, b"\xc3" + struct.pack(">I", 1) + data, b"\x0d" + bytes(8) + b"Q043" + data):
        try:
            quic.client_initial(d)
        except ValueError:
            pass


# ---- the whole kernel over a batch of hostile payloads ---------------------------------

@FUZZ
@given(st.lists(st.tuples(st.binary(max_size=120), st.sampled_from([6, 17]),
                          st.sampled_from([53, 80, 443, 5353, 5355, 8080, 1234]), st.integers(0, 1),
                          st.integers(0, 2)), min_size=1, max_size=12))
def test_fuzz_inspect_batch(pkts):
    """inspect_batch + extractors over payloads laid end to end in one
    buffer (the last one ends the array), three flows, mixed directions."""
    from ulnet.batch.columns import H_PAYLOAD, H_PAYLOAD_LEN, H_PROTO, H_SPORT, H_DPORT, N_HDR
    n = len(pkts)
    buf = np.frombuffer(b"".join(p for p, *_ in pkts) or b"\x00", dtype=np.uint8)
    off = np.zeros(n, dtype=np.int64)
    hdr = np.full((n, N_HDR), -1, dtype=np.int64)
    pos = 0
    for i, (p, l4, port, d, flow) in enumerate(pkts):
        off[i] = pos
        hdr[i, H_PAYLOAD] = 0
        hdr[i, H_PAYLOAD_LEN] = len(p)
        hdr[i, H_PROTO] = l4
        hdr[i, H_SPORT], hdr[i, H_DPORT] = (40000, port) if d == 0 else (port, 40000)
        pos += len(p)
    fentry = np.array([f for *_, f in pkts], dtype=np.int64)
    fdir = np.array([d for *_, d, _ in pkts], dtype=np.int64)
    t = FlowTable(max_flows=4, meta_slots=4)
    insp = Inspector()
    xapp = np.zeros(n, dtype=np.int64)
    papp = np.zeros(n, dtype=np.int64)
    counters = np.zeros(256, dtype=np.int64)
    K.inspect_batch(buf, off, hdr, fentry, fdir, 0, n, t.F, t.META, t.MFREE, t.S, insp.max_dpi, counters,
                    xapp, papp, insp._keep_open, insp._upgrade, insp._ids, insp._sni)
    assert ((papp >= 0) & (papp < len(NAMES))).all()
    dpi = (t.F[:3, FK.F_APP] >> FK.A_DPI_SHIFT) & 0xFF
    assert ((dpi & 0xF) <= insp.max_dpi).all() and ((dpi >> 4) <= insp.max_dpi).all()


def test_fuzz_canary_boundscheck_is_on():
    """Under NUMBA_BOUNDSCHECK=1 a read past an array raises: the check the
    fuzz tests rely on is really there."""
    if not BOUNDSCHECK:      # check it in a child that has the switch on
        code = ("import numpy as np\nfrom numba import njit\n@njit\ndef past(a, k):\n    return a[k]\n"
                "try:\n    past(np.zeros(4, dtype=np.uint8), 4)\nexcept IndexError:\n    print('raised')\n")
        p = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, NUMBA_BOUNDSCHECK="1"),
                           capture_output=True, text=True, timeout=300)
        assert p.stdout.strip() == "raised", p.stderr
        return
    from numba import njit

    @njit
    def past(a, k):
        return a[k]
    with pytest.raises(IndexError):
        past(np.zeros(4, dtype=np.uint8), 4)


# the kernel-level tests (no whole pipeline: it would compile every stage with bounds checks)
BOUNDED_TESTS = ("fuzz or test_client_hello or test_http_host or test_dns_name or test_dns_response "
                 "or test_dns_inverse or test_dhcp")


def test_kernels_bounded_under_boundscheck(tmp_path):
    """The fuzz tests above, once more with every numba kernel compiled with
    bounds checking: an extractor that reads past its payload fails."""
    if BOUNDSCHECK:
        pytest.skip("already running with NUMBA_BOUNDSCHECK=1")
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"),
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, "-m", "pytest", "-x", "-p", "no:cacheprovider", __file__,
                        "-k", BOUNDED_TESTS],
                       cwd=ROOT / "tests", env=env, capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    assert " passed" in p.stdout


# ---- flows: nDPI's conventions, end to end ---------------------------------------------

def _dns_flow(tmp_path, msgs):
    c, s = ("10.0.0.1", "10.0.0.53", 40000, 53), ("10.0.0.53", "10.0.0.1", 53, 40000)
    return _flows(tmp_path, [(c if not (m[2] & 0x80) else s) + (m,) for m in msgs], name="dns.pcap")


def test_dns_flow_name_is_the_responses_question(tmp_path):
    q = dns_msg((b"query", b"example"), tid=7)
    r = dns_msg((b"answer", b"example"), flags=0x8180, an=1, tid=7)
    later = dns_msg((b"later", b"example"), tid=8)
    f, = _dns_flow(tmp_path, [q, r, later])
    assert (f.application_name, f.requested_server_name, f.dpi_packets) == ("DNS", "answer.example", 2)


def test_dns_flow_queries_only_last_within_max_dpi(tmp_path):
    msgs = [dns_msg((b"q%d" % k, b"example"), tid=k) for k in range(6)]
    f, = _dns_flow(tmp_path, msgs)
    assert (f.requested_server_name, f.dpi_packets) == ("q3.example", 4)


def test_http_flow_seen_from_the_response(tmp_path):
    from _captures import ether as eth
    import ulnet.inspect  # noqa: F401

    def tcp(src, dst, sp, dp, seq, payload, flags=0x18):
        a = bytes(int(x) for x in src.split("."))
        b = bytes(int(x) for x in dst.split("."))
        seg = struct.pack(">HHIIBBHHH", sp, dp, seq, 0, 5 << 4, flags, 65535, 0, 0) + payload
        return eth(struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), 1, 0, 64, 6, 0, a, b) + seg, 0x0800)
    recs = [Rec(tcp("10.0.0.80", "10.0.0.1", 80, 40000, 1, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 1000),
            Rec(tcp("10.0.0.1", "10.0.0.80", 40000, 80, 1, http_request(host=b"late.example")), 2000)]
    path = tmp_path / "http.pcap"
    path.write_bytes(pcap_bytes(recs))
    f, = ulnet.flows(str(path))
    assert (f.application_name, f.requested_server_name, f.user_agent) == ("HTTP", "late.example", "curl/8")


def test_stun_then_dtls_is_dtls(tmp_path):
    """An upgrade (UPGRADES in ulnet.inspect): STUN, then a DTLS handshake on
    the same flow, is DTLS (WebRTC), as nDPI names it."""
    if not {"STUN", "DTLS"} <= set(ID):
        pytest.skip("STUN or DTLS not in the registry")
    stun = struct.pack(">HHI", 0x0001, 0, 0x2112A442) + bytes(range(12))
    hello = bytes.fromhex("16fefd000000000000000000560100004a0000000000") + bytes(99 - 22)
    c, s = ("10.0.0.1", "10.0.0.2", 50000, 3478), ("10.0.0.2", "10.0.0.1", 3478, 50000)
    f, = _flows(tmp_path, [c + (stun,)], name="stun.pcap")
    if f.application_name != "STUN":
        pytest.skip("the STUN matcher does not take this binding request")
    f, = _flows(tmp_path, [c + (stun,), s + (stun[:1] + b"\x01" + stun[2:],), c + (hello,)], name="stun2.pcap")
    assert (f.application_name, f.application_confidence) == ("DTLS", "payload")


@pytest.mark.parametrize("capture,name", [
    ("dns-invalid-chars.pcap", "www.allyourbasesare???ongto.cn"),
    ("quic-29.pcap", "localhost"),
    ("quic-v2.pcapng", "test"),
    ("quic_t51.pcap", "www.google.com"),
    ("quic_q50.pcap", "www.googletagmanager.com"),
    ("quic046.pcap", "i.ytimg.com"),
    ("quic-mvfst-exp.pcap", "video.fmct2-3.fna.fbcdn.net"),
    ("crawler_false_positive.pcapng", "ocsp.digicert.com"),
])
def test_corpus_names(capture, name):
    if not (NDPI / capture).exists():
        pytest.skip("corpus capture missing")
    names = {f.requested_server_name for f in ulnet.flows(str(NDPI / capture))}
    assert name in names


BATCH_CAPTURES = ["quic_frags_ch_out_of_order_same_packet_craziness.pcapng", "dns_exfiltration.pcap",
                  "webdav.pcap", "quic.pcap", "http-lines-split.pcap"]


@pytest.mark.parametrize("capture", BATCH_CAPTURES)
def test_inspection_independent_of_batch_size(capture):
    if not (NDPI / capture).exists():
        pytest.skip("corpus capture missing")
    outs = [run_ulnet("flows", "--format", "jsonl", "--batch-size", bs, NDPI / capture, check=True).stdout
            for bs in (1, 7, 256)]
    assert outs[0] and outs[0] == outs[1] == outs[2]
    rows = [json.loads(x) for x in outs[0].splitlines()]
    assert any(r["application_confidence"] == "payload" for r in rows)


# ---- libpeak's peek goldens, app column included -----------------------------------------

PEEK_GOLDEN = [("test.pcap", "expected-peek-test_pcap.txt"), ("test_be.pcap", "expected-peek-test_pcap_swap.txt"),
               ("test.erf", "expected-peek-test_erf.txt")]


@pytest.mark.parametrize("capture,expected", PEEK_GOLDEN)
def test_peek_goldens_pass_completely(capture, expected):
    """The whole line, app column included (libpeak decides SMTP on the
    server's banner and NetBIOS on its name query: those matchers must
    exist for this to pass)."""
    out = run_ulnet("peek", LIBPEAK / capture, check=True).stdout.decode().splitlines()
    want = (LIBPEAK / expected).read_text().splitlines()
    assert out == want


# ---- registry ---------------------------------------------------------------------------

def test_keep_open_and_extractor_ids_name_registry_apps():
    from ulnet.inspect import KEEP_OPEN
    names = {a.name for a in APPS}
    assert {"TLS", "HTTP", "DNS", "QUIC"} <= names
    assert set(KEEP_OPEN) - names <= {"MDNS", "LLMNR"}


def test_apps_command_lists_the_registry():
    p = run_ulnet("apps", "--format", "json", check=True)
    rows = json.loads(p.stdout)
    assert [r["name"] for r in rows] == [a.name for a in APPS]
    assert all(r["category"] for r in rows)
    text = run_ulnet("apps", check=True).stdout.decode()
    assert "TLS" in text and "Web" in text


@pytest.mark.parametrize("hexval,value", [("c2197c5eff14e88c", 151288809941952652), ("9d7f3e7d", 494878333),
                                          ("7bbd", 15293), ("25", 37), ("4025", 37)])
def test_quic_varint_rfc9000_examples(hexval, value):
    data = bytes.fromhex(hexval)
    assert quic._varint(b"\xff" + data, 1) == (value, 1 + len(data))


@pytest.mark.parametrize("data", [b"", b"\x40", b"\xc0\x00\x00", b"\x80\x01"])
def test_quic_varint_cut_short_is_an_error(data):
    with pytest.raises(ValueError):
        quic._varint(data, 0)


LAZY_MATCHERS = r"""
import sys
from ulnet.inspect import _dispatch
lazy = not _dispatch._LOADED if hasattr(_dispatch, "_LOADED") else "web_match_tls" not in vars(_dispatch)
if sys.argv[1] == "recompile":
    # what a stale or damaged cache entry does: the dispatcher must compile,
    # and the matchers it calls were not imported at start
    from numba.core.caching import NullCache
    from ulnet.inspect import _kernels as K
    _dispatch.dispatch._cache = NullCache()
    K.inspect_batch._cache = NullCache()
import ulnet
df = ulnet.flows(sys.argv[2]).to_arrow()
imported = any(m.startswith("ulnet.inspect.matchers.") for m in sys.modules)
print(lazy, "web_match_tls" in vars(_dispatch), imported, df.column("application_name").to_pylist())
"""


@pytest.mark.parametrize("mode", ["cached", "recompile"])
def test_matchers_imported_only_to_compile(mode):
    """With a fresh cache the dispatcher loads without importing its ~180
    matchers or their modules (start-up: ulnet.jit rebuilds the matchers'
    environments without importing them); when it has to compile anyway
    they are imported then, and the applications found are the same."""
    sample = str(ROOT / "samples" / "sample.pcap")
    want = [r.application_name for r in ulnet.flows(sample)]
    p = subprocess.run([sys.executable, "-c", LAZY_MATCHERS, mode, sample], capture_output=True, text=True,
                       timeout=600, cwd=str(ROOT))
    assert p.returncode == 0, p.stderr[-3000:]
    lazy, loaded, imported, apps = p.stdout.strip().split(" ", 3)
    assert lazy == "True"                  # the test session warmed the cache
    assert loaded == imported == ("True" if mode == "recompile" else "False")
    assert eval(apps) == want and "TLS" in want


@pytest.mark.parametrize("capture, wanted", [("samples/sample.pcap", False), ("quic-29.pcap", True)])
def test_quic_crypto_is_imported_only_for_an_initial(capture, wanted):
    """cryptography (35-45 ms of imports) loads with the first IETF QUIC
    Initial to decrypt, not with every command that inspects."""
    path = ROOT / capture if capture.startswith("samples/") else CORPUS / "ndpi" / "pcap" / capture
    code = f"""
import sys
from ulnet.cli.main import main
rc = main(["flows", {str(path)!r}, "-o", "/dev/null", "--stats"])
print("RESULT", rc, "cryptography" in sys.modules, file=sys.stderr)
"""
    out = run_python(code)
    rc, loaded = out.stderr.split("RESULT")[-1].split()
    assert rc == "0" and loaded == str(wanted), out.stderr
    assert ("inspect.quic.decrypted" in out.stderr) == wanted, out.stderr
