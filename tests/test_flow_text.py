"""Text columns of flow records (ulnet.flow.text.Texts: Arrow's string
layout, built by kernels) against the plain Python formatting."""

from __future__ import annotations

import ipaddress
import random

import numpy as np

from ulnet.addr import from_text, to_text
from ulnet.flow.text import address_array, as_list, meta_array, take_names


def test_addresses_mixed_versions():
    rng = random.Random(7)
    texts, vers = [], []
    for _ in range(2000):
        if rng.random() < 0.8:
            texts.append(str(ipaddress.IPv4Address(rng.getrandbits(32))))
            vers.append(4)
        else:
            texts.append(str(ipaddress.IPv6Address(rng.getrandbits(128) >> rng.choice((0, 64, 100)))))
            vers.append(6)
    texts += ["0.0.0.0", "255.255.255.255", "10.0.0.1", "::", "::1"]
    vers += [4, 4, 4, 6, 6]
    hl = [from_text(t) for t in texts]
    hi = np.array([h for h, _ in hl], dtype=np.uint64)
    lo = np.array([l for _, l in hl], dtype=np.uint64)
    got = address_array(hi, lo, np.array(vers)).to_pylist()
    # the per-address formatter (inet_ntop, which writes ::a.b.c.d for the
    # deprecated IPv4-compatible range) is the reference
    assert got == [to_text(int(h), int(l), v) for h, l, v in zip(hi, lo, vers)]
    assert [g for g, t in zip(got, texts) if g != t and not g.startswith("::")] == []


def test_ipv6_text_edge_cases():
    """Zero runs (longest, first of equal, at either end, a single zero
    group kept), embedded IPv4 forms: the kernel against inet_ntop."""
    texts = ["::", "::1", "1::", "1::1", "::2:3", "1:0:0:2:0:0:0:3", "1:0:0:2:0:0:3:4", "1:0:2:3:4:5:6:7",
             "0:1:2:3:4:5:6:0", "::ffff:1.2.3.4", "::1.2.3.4", "::ffff:0:1.2.3.4", "::fffe:1.2.3.4",
             "::0.0.1.0", "::0.1.0.0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::ff00:42:8329",
             "fe80::a:b:c:d", "0:0:1::", "1:2:3:4:5:6:7:0", "1:0:0:0:1:0:0:0", "::ffff:0.0.0.0"]
    rng = random.Random(11)
    for _ in range(5000):       # groups mostly zero: every shape of zero runs
        groups = [rng.choice((0, 0, 0, 0xFFFF, rng.getrandbits(16), rng.getrandbits(4))) for _ in range(8)]
        texts.append(str(ipaddress.IPv6Address(sum(g << (112 - 16 * k) for k, g in enumerate(groups)))))
    hl = [from_text(t) for t in texts]
    hi = np.array([h for h, _ in hl], dtype=np.uint64)
    lo = np.array([l for _, l in hl], dtype=np.uint64)
    got = address_array(hi, lo, np.full(len(texts), 6)).to_pylist()
    assert got == [to_text(int(h), int(l), 6) for h, l in zip(hi, lo)]


def test_empty_chunk():
    z = np.zeros(0, dtype=np.uint64)
    assert address_array(z, z, np.zeros(0, dtype=np.int64)).to_pylist() == []
    assert meta_array(np.zeros((0, 64), dtype=np.uint8), 0, 40).to_pylist() == []


def test_meta_names_utf8_and_invalid():
    META = np.zeros((4, 64), dtype=np.uint8)
    names = [b"www.example.com", "b\u00fccher.de".encode(), b"bad\xff\xfename", b"x" * 60]
    for k, b in enumerate(names):
        META[k, 0] = len(b)
        META[k, 1:1 + min(len(b), 63)] = np.frombuffer(b[:63], dtype=np.uint8)
    got = meta_array(META, 0, 40).to_pylist()          # width 40 cuts the last one
    assert got == ["www.example.com", "b\u00fccher.de", "bad\ufffd\ufffdname", "x" * 40]
    META[2] = 0
    assert meta_array(META, 0, 40).to_pylist()[2] == ""


def test_meta_names_split_character():
    """Each name invalid, their concatenation valid ("a\u00fcb" cut inside
    the \u00fc): checked per name, as Arrow's validation did."""
    META = np.zeros((3, 64), dtype=np.uint8)
    for k, b in enumerate((b"a\xc3", b"", b"\xbcb")):
        META[k, 0] = len(b)
        META[k, 1:1 + len(b)] = np.frombuffer(b, dtype=np.uint8)
    assert meta_array(META, 0, 40).to_pylist() == ["a\ufffd", "", "\ufffdb"]


def test_texts_to_arrow_and_indexing():
    import pyarrow as pa
    names = ["", "www.example.com", "b\u00fccher.de", "\u65e5\u672c"]
    META = np.zeros((4, 64), dtype=np.uint8)
    for k, t in enumerate(names):
        b = t.encode()
        META[k, 0] = len(b)
        META[k, 1:1 + len(b)] = np.frombuffer(b, dtype=np.uint8)
    col = meta_array(META, 0, 40)
    assert len(col) == 4 and [col[k] for k in range(4)] == names and col[-1] == names[-1]
    assert col.to_arrow().equals(pa.array(names, type=pa.string()))
    assert as_list(col) == names


def test_take_names_and_as_list():
    assert take_names(("a", "bb", "ccc"), np.array([2, 0, 0, 1])).to_pylist() == ["ccc", "a", "a", "bb"]
    assert as_list(np.array([1, 2])) == [1, 2] and as_list(["x"]) == ["x"]
