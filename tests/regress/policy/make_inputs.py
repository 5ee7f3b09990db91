#!/usr/bin/env python3
"""Build the input captures of the policy regress cases (Scapy; fixed times
and addresses, so the files are the same every time).

    .venv/bin/python tests/regress/policy/make_inputs.py

Each case folder gets its inputs; the cases' rules and expected outputs
live beside them (expected/ rewritten by amend.py).
"""

from pathlib import Path

from scapy.all import DNS, DNSQR, Dot1Q, Ether, ICMP, IP, IPv6, Raw, TCP, UDP, wrpcap
from scapy.layers.inet6 import ICMPv6EchoRequest

HERE = Path(__file__).resolve().parent
T0 = 1_700_000_000
LAN_MAC, WAN_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"


class Trace:
    def __init__(self):
        self.pk = []
        self.t = 0.0

    def add(self, p, dt=0.001):
        self.t += dt
        p.time = T0 + round(self.t, 6)
        self.pk.append(p)
        return p


def up(*layers):
    p = Ether(src=LAN_MAC, dst=WAN_MAC)
    for x in layers:
        p = p / x
    return p


def down(*layers):
    p = Ether(src=WAN_MAC, dst=LAN_MAC)
    for x in layers:
        p = p / x
    return p


def tcp_conv(tr, c, s, sport, dport, payload=b"", v6=False):
    L3 = IPv6 if v6 else IP
    tr.add(up(L3(src=c, dst=s), TCP(sport=sport, dport=dport, flags="S", seq=100)))
    tr.add(down(L3(src=s, dst=c), TCP(sport=dport, dport=sport, flags="SA", seq=500, ack=101)))
    tr.add(up(L3(src=c, dst=s), TCP(sport=sport, dport=dport, flags="A", seq=101, ack=501)))
    if payload:
        tr.add(up(L3(src=c, dst=s), TCP(sport=sport, dport=dport, flags="PA", seq=101, ack=501), Raw(payload)))
        tr.add(down(L3(src=s, dst=c), TCP(sport=dport, dport=sport, flags="A", seq=501, ack=101 + len(payload))))


def split(tr):
    """The packets from the LAN side and from the WAN side (by source MAC)."""
    lan = [p for p in tr.pk if p[Ether].src == LAN_MAC]
    wan = [p for p in tr.pk if p[Ether].src != LAN_MAC]
    return lan, wan


def basic():
    tr = Trace()
    tcp_conv(tr, "10.0.0.1", "192.0.2.1", 40000, 80, b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")
    tcp_conv(tr, "10.0.0.2", "192.0.2.9", 40001, 22)
    tcp_conv(tr, "172.16.0.5", "192.0.2.9", 40002, 22)
    tr.add(up(IP(src="10.0.0.1", dst="192.0.2.1"), ICMP(type=8, id=1, seq=1)))
    tr.add(down(IP(src="192.0.2.1", dst="10.0.0.1"), ICMP(type=0, id=1, seq=1)))
    tr.add(up(IP(src="10.0.0.3", dst="192.0.2.53"), UDP(sport=5353, dport=53), Raw(b"q" * 12)))
    tr.add(down(IP(src="192.0.2.53", dst="10.0.0.3"), UDP(sport=53, dport=5353), Raw(b"r" * 20)))
    tr.add(down(IP(src="198.51.100.7", dst="10.0.0.1"), TCP(sport=50000, dport=8080, flags="S")))
    tr.add(Ether(src=LAN_MAC, dst="ff:ff:ff:ff:ff:ff", type=0x0806) / Raw(b"\x00" * 28))
    return tr


def write(case, name, pkts):
    d = HERE / case
    d.mkdir(exist_ok=True)
    wrpcap(str(d / name), pkts)


def main():
    tr = basic()
    lan, wan = split(tr)
    write("run-two-ports", "lan.pcap", lan)
    write("run-two-ports", "wan.pcap", wan)
    write("run-route", "in.pcap", tr.pk)
    # reject: TCP v4/v6 (with and without ACK), UDP v4/v6, ICMP echo, and things never answered
    r = Trace()
    r.add(up(IP(src="10.0.0.1", dst="192.0.2.9"), TCP(sport=40000, dport=22, flags="S", seq=1000)))
    r.add(up(IP(src="10.0.0.1", dst="192.0.2.9"), TCP(sport=40001, dport=22, flags="PA", seq=2000, ack=3000), Raw(b"x" * 10)))
    r.add(up(IPv6(src="fd00::1", dst="2001:db8::9"), TCP(sport=40002, dport=22, flags="S", seq=7)))
    r.add(up(IP(src="10.0.0.1", dst="192.0.2.9"), UDP(sport=40003, dport=161), Raw(b"s" * 30)))
    r.add(up(IPv6(src="fd00::1", dst="2001:db8::9"), UDP(sport=40004, dport=161), Raw(b"s" * 30)))
    r.add(up(Dot1Q(vlan=7), IP(src="10.0.0.1", dst="192.0.2.9"), UDP(sport=40005, dport=161), Raw(b"v" * 8)))
    r.add(up(IP(src="10.0.0.1", dst="192.0.2.9"), ICMP(type=8, id=9, seq=1)))
    r.add(up(IP(src="10.0.0.1", dst="192.0.2.9"), TCP(sport=40006, dport=22, flags="R", seq=5)))      # RST: no answer
    r.add(up(IP(src="10.0.0.1", dst="224.0.0.251"), UDP(sport=5353, dport=161), Raw(b"m")))          # multicast: none
    r.add(up(IP(src="10.0.0.1", dst="192.0.2.9"), ICMP(type=3, code=3) / IP(src="192.0.2.9", dst="10.0.0.1") / UDP()))
    r.add(up(IP(src="10.0.0.1", dst="192.0.2.1"), TCP(sport=40007, dport=443, flags="S")))            # passed
    write("run-reject", "in.pcap", r.pk)
    # balance: 40 flows, both directions
    b = Trace()
    for k in range(40):
        c = f"10.0.{k // 250}.{k % 250 + 1}"
        tcp_conv(b, c, f"192.0.2.{k % 7 + 1}", 30000 + k, 443, b"y" * (k % 5 * 100))
    write("run-balance", "in.pcap", b.pk)
    # police: a UDP flow at 100 pps for 1 s and a second one, both to port 161
    p = Trace()
    for k in range(100):
        p.add(up(IP(src="10.0.0.1", dst="192.0.2.9"), UDP(sport=40000, dport=161), Raw(b"p" * 100)), dt=0.005)
        p.add(up(IP(src="10.0.0.2", dst="192.0.2.9"), UDP(sport=40001, dport=161), Raw(b"p" * 100)), dt=0.005)
    write("run-police", "in.pcap", p.pk)
    write("run-police-per-flow", "in.pcap", p.pk)
    # shape: 60 packets of 1000 bytes in 60 ms (8 Mbit/s) through a 1 Mbit/s shaper
    s = Trace()
    for k in range(60):
        s.add(up(IP(src="10.0.0.1", dst="192.0.2.9"), UDP(sport=40000, dport=9), Raw(b"s" * 958)), dt=0.001)
        if k % 10 == 0:
            s.add(up(IP(src="10.0.0.7", dst="192.0.2.9"), UDP(sport=40001, dport=7), Raw(b"n" * 50)), dt=0.0001)
    write("run-shape", "in.pcap", s.pk)
    # capture, count, log, tag
    write("run-capture-count-log", "in.pcap", tr.pk)
    # conditions: each rule routes to its own port
    c = Trace()
    tcp_conv(c, "10.0.0.1", "192.0.2.1", 40000, 80)                                     # flags S/SA -> syn
    c.add(up(Dot1Q(vlan=10), IP(src="10.0.0.2", dst="192.0.2.2"), UDP(sport=1, dport=2)))   # vlan
    c.add(up(IP(src="10.0.0.3", dst="192.0.2.3"), UDP(sport=3, dport=4), Raw(b"L" * 1200)))  # length
    c.add(up(IPv6(src="fd00::5", dst="2001:db8::5"), ICMPv6EchoRequest()))                   # inet6
    c.add(up(IP(src="10.9.9.9", dst="192.0.2.4"), UDP(sport=5, dport=6)))                     # table
    c.add(up(IP(src="10.0.0.4", dst="192.0.2.4"), UDP(sport=7, dport=5000)))                  # port range
    c.add(up(IP(src="10.0.0.4", dst="192.0.2.4"), UDP(sport=7, dport=9999)))                  # negated port
    c.add(up(IP(src="10.0.0.4", dst="192.0.2.4"), ICMP()))                                    # proto icmp + tagged
    c.add(up(IP(src="10.0.0.6", dst="192.0.2.6", proto=47) / Raw(b"\x00" * 8)))             # proto 47 -> rest
    c.add(up(IP(src="10.0.0.1", dst="192.0.2.1"), TCP(sport=40000, dport=80, flags="FA", seq=101, ack=501)))
    write("run-conditions", "in.pcap", c.pk)
    # applications: DNS (decided on its first packet), HTTP (after the handshake)
    a = Trace()
    a.add(up(IP(src="10.0.0.1", dst="192.0.2.53"), UDP(sport=33000, dport=53), DNS(id=1, rd=1, qd=DNSQR(qname="www.example.com"))))
    a.add(down(IP(src="192.0.2.53", dst="10.0.0.1"), UDP(sport=53, dport=33000), DNS(id=1, qr=1, qd=DNSQR(qname="www.example.com"))))
    tcp_conv(a, "10.0.0.1", "192.0.2.80", 40000, 80, b"GET / HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: x\r\n\r\n")
    a.add(down(IP(src="192.0.2.80", dst="10.0.0.1"), TCP(sport=80, dport=40000, flags="PA", seq=501, ack=200), Raw(b"HTTP/1.1 200 OK\r\n\r\n")))
    tcp_conv(a, "10.0.0.1", "192.0.2.81", 40001, 80, b"GET / HTTP/1.1\r\nHost: other.test\r\n\r\n")
    write("run-app", "in.pcap", a.pk)


if __name__ == "__main__":
    main()
