#!/usr/bin/env python3
"""Build the small sample captures shipped in samples/ (deterministic).

    .venv/bin/python samples/make_samples.py

sample.pcap: a few seconds of ordinary traffic between made-up hosts in the
documentation ranges: a DNS lookup, an HTTP request/response over TCP, a TLS
ClientHello, ICMP echo, IPv6 UDP, an 802.1Q-tagged frame, a GRE tunnel, an
IP-in-IP packet, a fragmented datagram and an ARP frame.
"""

from __future__ import annotations

import os
import sys

from scapy.all import (ARP, DNS, DNSQR, DNSRR, GRE, ICMP, IP, IPv6, TCP, UDP, Dot1Q, Ether,
                       Raw, fragment, wrpcap)

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT, SERVER, RESOLVER = "192.0.2.10", "198.51.100.80", "192.0.2.53"
C6, S6 = "2001:db8::10", "2001:db8:1::53"
MAC_C, MAC_S = "02:00:00:00:00:0a", "02:00:00:00:00:50"


def eth(p, src=MAC_C, dst=MAC_S):
    return Ether(src=src, dst=dst) / p


def tcp_session(t0, sport, dport, req: bytes, resp: bytes):
    c, s = 1000, 5000
    pk = []
    t = t0
    def add(pkt, dt=0.01):
        nonlocal t
        t += dt
        pkt.time = t
        pk.append(pkt)
    add(eth(IP(src=CLIENT, dst=SERVER, id=1) / TCP(sport=sport, dport=dport, flags="S", seq=c)))
    add(eth(IP(src=SERVER, dst=CLIENT, id=2) / TCP(sport=dport, dport=sport, flags="SA", seq=s, ack=c + 1), MAC_S, MAC_C))
    add(eth(IP(src=CLIENT, dst=SERVER, id=3) / TCP(sport=sport, dport=dport, flags="A", seq=c + 1, ack=s + 1)))
    add(eth(IP(src=CLIENT, dst=SERVER, id=4) / TCP(sport=sport, dport=dport, flags="PA", seq=c + 1, ack=s + 1) / Raw(req)))
    add(eth(IP(src=SERVER, dst=CLIENT, id=5) / TCP(sport=dport, dport=sport, flags="PA", seq=s + 1, ack=c + 1 + len(req)) / Raw(resp), MAC_S, MAC_C))
    add(eth(IP(src=CLIENT, dst=SERVER, id=6) / TCP(sport=sport, dport=dport, flags="FA", seq=c + 1 + len(req), ack=s + 1 + len(resp))))
    add(eth(IP(src=SERVER, dst=CLIENT, id=7) / TCP(sport=dport, dport=sport, flags="FA", seq=s + 1 + len(resp), ack=c + 2 + len(req)), MAC_S, MAC_C))
    add(eth(IP(src=CLIENT, dst=SERVER, id=8) / TCP(sport=sport, dport=dport, flags="A", seq=c + 2 + len(req), ack=s + 2 + len(resp))))
    return pk


def client_hello(sni: str) -> bytes:
    name = sni.encode()
    sni_ext = (b"\x00\x00" + (len(name) + 5).to_bytes(2, "big") + (len(name) + 3).to_bytes(2, "big")
               + b"\x00" + len(name).to_bytes(2, "big") + name)
    alpn = b"\x00\x10\x00\x0b\x00\x09\x08http/1.1"
    exts = sni_ext + alpn
    body = (b"\x03\x03" + bytes(range(32)) + b"\x00" + b"\x00\x04\x13\x01\x13\x02" + b"\x01\x00"
            + len(exts).to_bytes(2, "big") + exts)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs


def build() -> list:
    t0 = 1700000000.0
    pk = []
    q = eth(IP(src=CLIENT, dst=RESOLVER, id=100) / UDP(sport=40000, dport=53) / DNS(id=7, rd=1, qd=DNSQR(qname="www.example.com")))
    q.time = t0
    r = eth(IP(src=RESOLVER, dst=CLIENT, id=101) / UDP(sport=53, dport=40000)
            / DNS(id=7, qr=1, rd=1, ra=1, qd=DNSQR(qname="www.example.com"),
                  an=DNSRR(rrname="www.example.com", rdata=SERVER)), MAC_S, MAC_C)
    r.time = t0 + 0.02
    pk += [q, r]
    pk += tcp_session(t0 + 0.1, 40001, 80, b"GET / HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: curl/8.0\r\n\r\n",
                      b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello")
    pk += tcp_session(t0 + 0.5, 40002, 443, client_hello("www.example.com"), b"\x16\x03\x03\x00\x02\x02\x00")
    for k in range(2):
        e = eth(IP(src=CLIENT, dst=SERVER, id=200 + k) / ICMP(type=8, id=9, seq=k) / Raw(b"ping" * 8))
        e.time = t0 + 1 + k
        a = eth(IP(src=SERVER, dst=CLIENT, id=300 + k) / ICMP(type=0, id=9, seq=k) / Raw(b"ping" * 8), MAC_S, MAC_C)
        a.time = t0 + 1 + k + 0.001
        pk += [e, a]
    v6 = eth(IPv6(src=C6, dst=S6) / UDP(sport=40003, dport=53) / DNS(id=8, rd=1, qd=DNSQR(qname="example.org", qtype="AAAA")))
    v6.time = t0 + 3
    vl = Ether(src=MAC_C, dst=MAC_S) / Dot1Q(vlan=42) / IP(src=CLIENT, dst=SERVER, id=400) / UDP(sport=40004, dport=123) / Raw(b"\x23" + b"\x00" * 47)
    vl.time = t0 + 3.1
    gre = eth(IP(src="203.0.113.1", dst="203.0.113.2", id=500) / GRE() / IP(src=CLIENT, dst=SERVER, id=501) / TCP(sport=40005, dport=22, flags="S"))
    gre.time = t0 + 3.2
    ipip = eth(IP(src="203.0.113.1", dst="203.0.113.2", id=600, proto=4) / IP(src=CLIENT, dst=SERVER, id=601) / UDP(sport=40006, dport=5060) / Raw(b"OPTIONS sip:x SIP/2.0\r\n\r\n"))
    ipip.time = t0 + 3.3
    frags = fragment(IP(src=CLIENT, dst=SERVER, id=700) / UDP(sport=40007, dport=9999) / Raw(b"x" * 1200), fragsize=600)
    for k, f in enumerate(frags):
        e = eth(f)
        e.time = t0 + 3.4 + k * 0.001
        pk.append(e)
    arp = Ether(src=MAC_C, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=CLIENT, pdst=SERVER, hwsrc=MAC_C)
    arp.time = t0 + 3.5
    pk += [v6, vl, gre, ipip, arp]
    pk.sort(key=lambda p: p.time)
    return pk


def main() -> int:
    wrpcap(os.path.join(HERE, "sample.pcap"), build())
    return 0


if __name__ == "__main__":
    sys.exit(main())
