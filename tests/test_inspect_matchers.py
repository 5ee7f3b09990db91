"""Matchers, one by one: a payload each must accept, near misses each must
refuse, and a fuzz that every matcher returns a bool and never raises on
random and truncated payloads of every length 0..64.

Matchers see only the first 32 payload bytes as words plus the payload
length (ulnet.inspect.words), so the cases below are short byte strings;
where the payload is longer than what is written, ``n`` gives the length
the packet had. Each case names the registry row: the test also proves the
row points at the matcher."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from ulnet.inspect.registry import APPS, matcher_function
from ulnet.inspect.words import load_words

MATCHERS = {}
for _a in APPS:
    if _a.matcher is not None and not isinstance(_a.transport, int):
        MATCHERS[_a.name] = matcher_function(_a.matcher)


def words(payload: bytes):
    """The matcher's view, typed as the kernel types it (a tuple of uint64:
    plain Python ints above 2**63 would not pass as numba integers)."""
    return tuple(np.uint64(x) for x in load_words(np.frombuffer(payload, dtype=np.uint8), 0, len(payload)))


def run(app, payload, n=None, sp=40000, dp=40001, d=0):
    if app not in MATCHERS:
        pytest.skip(f"{app} not in the registry")
    return MATCHERS[app](words(payload), len(payload) if n is None else n, sp, dp, d)


def pad(payload: bytes, n: int) -> bytes:
    return payload + bytes(n - len(payload))


# ---- builders ------------------------------------------------------------------------------

def tpkt(body: bytes) -> bytes:
    return struct.pack(">BBH", 3, 0, 4 + len(body)) + body


def cotp_dt(data: bytes) -> bytes:
    return tpkt(b"\x02\xf0\x80" + data)


def cotp_cr(params: bytes) -> bytes:
    body = b"\xe0\x00\x00\x01\x12\x00" + params
    return tpkt(bytes([len(body)]) + body)


def pg_startup(params: bytes) -> bytes:
    return struct.pack(">II", 8 + len(params), 0x30000) + params


def der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        ln = bytes([n])
    elif n < 0x100:
        ln = bytes([0x81, n])
    else:
        ln = struct.pack(">BH", 0x82, n)
    return bytes([tag]) + ln + body


def krb_as_req() -> bytes:
    body = der(0xA1, b"\x02\x01\x05") + der(0xA2, b"\x02\x01\x0a") + der(0xA4, der(0x30, bytes(40)))
    return der(0x6A, der(0x30, body))


NB_NAME = b"\x20" + b"EMFACNFCELEFFCFFFCCNEPFDFICACAAA" + b"\x00"


def rpc_call(prog: int, vers: int = 3, proc: int = 1) -> bytes:
    return struct.pack(">IIIIII", 0x5E1D0B94, 0, 2, prog, vers, proc) + bytes(32)


def tplink(js: bytes) -> bytes:
    key, out = 171, bytearray()
    for c in js:
        key ^= c
        out.append(key)
    return bytes(out)


# ---- positives and near misses: (application, payload, keyword arguments) -----------------

POSITIVE = [
    ("SSH", b"SSH-2.0-OpenSSH_9.6\r\n", {}),
    ("SSH", b"SSH-1.99-OpenSSH_4.3\n", {}),
    ("BitTorrent", b"\x13BitTorrent protocol" + bytes(8) + bytes(40), {}),
    ("BitTorrent", b"d1:ad2:id20:" + bytes(20) + b"e1:q4:ping1:t2:aa1:y1:qe", {}),
    ("BitTorrent", bytes([0x41, 0, 0x12, 0x34]) + b"\x10\xee\xb2\xf0" + bytes(8) + b"\xe7\xf5\x00\x00", {}),
    ("BitTorrent", struct.pack(">QII", 0x41727101980, 0, 0x1234), {}),
    ("BitTorrent", b"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\n", {}),
    ("Gnutella", b"GNUTELLA CONNECT/0.6\r\n", {}),
    ("Syncthing", struct.pack(">I", 0x2EA7D90B) + bytes(40), {}),
    ("BITCOIN", bytes.fromhex("f9beb4d9") + b"version\0\0\0\0\0" + bytes(16), {"n": 126}),
    ("Monero", bytes.fromhex("0121010101010101") + bytes(30), {}),
    ("Tailscale", b"TS\xf0\x9f\x92\xac" + bytes(40), {}),
    ("HAProxy", b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", {}),
    ("HAProxy", bytes.fromhex("0d0a0d0a000d0a515549540a") + b"\x21\x11\x00\x0c" + bytes(12), {}),
    ("HTTP2", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", {}),
    ("RSYNC", b"@RSYNCD: 31.0\n", {}),
    ("Git", b"0033git-upload-pack /project.git\0host=example.com\0", {}),
    ("Munin", b"# munin node at host.example.com\n", {}),
    ("CHECKMK", b"<<<check_mk>>>\nVersion: 2.2\n", {}),
    ("Zabbix", b"ZBXD\x01" + struct.pack("<Q", 10) + b"agent.ping", {}),
    ("TiVoConnect", b"tivoconnect=1\nswversion=1.0\n", {}),
    ("TiVoConnect", b"TiVoConnect=1\nswversion=1.0\n", {}),
    ("Spotify", b"SpotUdp0" + bytes(36), {}),
    ("Spotify", bytes.fromhex("00040000") + struct.pack(">H", 329) + bytes.fromhex("520f5002a001"), {"n": 329}),
    ("Source_Engine", b"\xff\xff\xff\xffTSource Engine Query\0", {}),
    ("RakNet", b"\x05" + bytes.fromhex("00ffff00fefefefefdfdfdfd12345678") + b"\x0a" + bytes(20), {}),
    ("RakNet", b"\x01" + bytes(8) + bytes.fromhex("00ffff00fefefefefdfdfdfd12345678") + bytes(8), {}),
    ("RakNet", b"\x7b" + bytes.fromhex("00ffff00fefefefefdfdfdfd12345678") + b"\x05" + bytes(20), {}),
    ("Yojimbo", b"\0NETCODE 1.02\0" + bytes(40), {}),
    ("Controller_Area_Network", b"ISO11898\x01\x02" + bytes(30), {}),
    ("EtherSIO", b"ESIO\x00\x01" + bytes(43), {}),
    ("RTPS", b"RTPS\x02\x01\x01\x01" + bytes(12), {}),
    ("Corba", b"GIOP\x01\x02\x00\x00" + struct.pack(">I", 200) + bytes(8), {}),
    ("Corba", b"MIOP\x10\x03" + bytes(30), {}),
    ("HL7", b"\x0bMSH|^~\\&|SENDING_APP|FAC|", {}),
    ("OpenWire", struct.pack(">I", 200) + b"\x01ActiveMQ" + bytes(10), {"n": 204}),
    ("FIX", b"8=FIX.4.2\x019=65\x0135=A\x0149=X\x01", {}),
    ("FIX", b"8=FIXT.1.1\x019=62\x0135=A\x01", {}),
    ("PPTP", pad(struct.pack(">HHIHH", 156, 1, 0x1A2B3C4D, 1, 0), 156), {}),
    ("Citrix", b"\x7f\x7fICA\x00", {}),
    ("VNC", b"RFB 003.008\n", {}),
    ("AVAST", pad(b"NOSA" + struct.pack(">H", 96), 96), {}),
    ("RipeAtlas", b"MGLNDD_10.0.0.1_1113", {}),
    ("BJNP", b"BJNP\x01\x01\x00\x00" + bytes(8), {}),
    ("TuyaLP", struct.pack(">IIII", 0x55AA, 0, 0x13, 172) + bytes(16), {"n": 188}),
    ("BGP", b"\xff" * 16 + struct.pack(">HB", 19, 4), {}),
    ("WhatsApp", b"ED\x00\x01", {}),
    ("WhatsApp", b"ED\x00\x01\x00\x00\x04\x08" + bytes(20), {}),
    ("WhatsApp", b"WA\x01\x05" + bytes(20), {}),
    ("Roughtime", struct.pack("<II", 2, 64) + b"NONCPAD\xff" + bytes(16), {"n": 1024}),
    ("Roughtime", b"ROUGHTIM" + bytes(24), {}),
    ("RTSP", b"OPTIONS rtsp://10.0.0.1:554/ RTSP/1.0\r\nCSeq: 1\r\n\r\n", {}),
    ("RTSP", b"SETUP rtsp://172.28.4.26:8554/trackID=1 RTSP/1.0\r\n", {}),
    ("RTSP", b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n", {}),
    ("SIP", b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP x\r\n", {}),
    ("SIP", b"REGISTER sips:example.com SIP/2.0\r\n", {}),
    ("SIP", b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x\r\n", {}),
    ("Nats", b'INFO {"server_id":"x","version":"2.9"}\r\n', {}),
    ("Nats", b'CONNECT {"verbose":false,"pedantic":false}\r\n', {}),
    ("SSDP", b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n", {}),
    ("SSDP", b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n", {}),
    ("SSDP", b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\n", {}),
    ("FTPS", b"AUTH TLS\r\n", {}),
    ("FTP_CONTROL", b"220 (vsFTPd 3.0.3)\r\n", {"sp": 21, "d": 1}),
    ("FTP_CONTROL", b"USER anonymous\r\n", {"dp": 21}),
    ("SMTP", b"220 mail.example.com ESMTP Postfix\r\n", {"sp": 25, "d": 1}),
    ("SMTP", b"220-xc90.websitewelcome.com ESMTP Exim 4.69\r\n", {"sp": 25, "d": 1}),
    ("SMTP", b"220 mx.example.net smtp service ready\r\n", {"sp": 10025, "d": 1}),
    ("SMTP", b"EHLO client.example.com\r\n", {"dp": 25}),
    ("POP3", b"+OK POP3 server ready\r\n", {"sp": 110, "d": 1}),
    ("POP3", b"CAPA\r\n", {}),
    ("POP3", b"USER bob\r\n", {"dp": 110}),
    ("IMAP", b"* OK IMAP4rev1 Server ready\r\n", {"sp": 143, "d": 1}),
    ("IMAP", b"* PREAUTH IMAP4rev1 server logged in\r\n", {"d": 1}),
    ("IMAP", b"a001 CAPABILITY\r\n", {}),
    ("IMAP", b". STARTTLS\r\n", {}),
    ("IMAP", b"C00000 LOGIN bob secret\r\n", {}),
    ("Usenet", b"200 news.example.com NNTP server ready\r\n", {"d": 1}),
    ("Usenet", b"MODE READER\r\n", {}),
    ("IRC", b"NICK alice\r\n", {}),
    ("IRC", b"USER alice 0 * :Alice Liddell\r\n", {}),
    ("IRC", b":irc.example.net NOTICE * :*** Looking up your hostname\r\n", {"d": 1}),
    ("IRC", b":irc.example.net 001 alice :Welcome\r\n", {"d": 1}),
    ("STOMP", b"CONNECT\naccept-version:1.2\nhost:x\n\n\0", {}),
    ("STOMP", b"STOMP\naccept-version:1.2\n\n\0", {}),
    ("STOMP", b"CONNECTED\nversion:1.2\n\n\0", {"d": 1}),
    ("MGCP", b"RQNT 1201 aaln/1@rgw.example.net MGCP 1.0\r\n", {}),
    ("Megaco", b"MEGACO/1 [10.0.0.1]:2944\r\nTransaction = 1 {", {}),
    ("Megaco", b"!/1 [10.23.1.42]:2944 P=555282713{C=-{", {}),
    ("Mining", b'{"id":1,"method":"mining.subscribe","params":[]}\n', {}),
    ("Mining", b'{"worker": "eth1.0", "jsonrpc": "2.0", "params": []}', {}),
    ("Mining", b'{"method":"login","params":{"login":"x"}}', {}),
    ("JSON-RPC", b'{"jsonrpc": "2.0", "method": "echo", "id": 1}', {}),
    ("RESP", b"*1\r\n$7\r\nCOMMAND\r\n", {}),
    ("RESP", b"*12\r\n$3\r\nSET\r\n", {}),
    ("Syslog", b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed", {}),
    ("Syslog", b"<165>1 2003-10-11T22:14:15.003Z host app - - msg", {}),
    ("Ookla", b"HI\n", {}),
    ("Ookla", b"HI 8e17cb65-c6b5-4b39-adcc-97006a1e4537\n", {}),
    ("Ookla", b"HELLO 2.9 (2.9.2) 2021-11-30.2159.ffae0e\n", {"d": 1}),
    ("ATG", b"\x01I20100\r\n", {}),
    ("Jabber", b"<?xml version='1.0'?><stream:stream to='example.com'>", {"dp": 5222}),
    ("Jabber", b"<presence to='chat@conference.example.com'/>", {"dp": 5222}),
    ("Jabber", b"</stream:stream>", {"dp": 5222}),
    ("WSD", b'<?xml version="1.0" encoding="utf-8"?><soap:Envelope>', {"dp": 3702}),
    ("DNScrypt", b"r6fnvWj8" + bytes(40), {"d": 1}),
    ("DNScrypt", struct.pack(">HHHHHH", 0x7F42, 0x0100, 1, 0, 0, 1) + b"\x012\x0ddnscrypt-cert\x07example\x03com\x00"
     + b"\x00\x10\x00\x01", {"dp": 443}),
    ("STUN", struct.pack(">HHI", 0x0001, 0, 0x2112A442) + bytes(12), {}),
    ("STUN", struct.pack(">HHI", 0x0101, 12, 0x2112A442) + bytes(12) + struct.pack(">HH", 0x20, 8) + bytes(8), {}),
    ("STUN", struct.pack(">HH", 0x0001, 8) + bytes(16) + struct.pack(">HHI", 3, 4, 0), {}),
    ("NetBIOS", struct.pack(">HHHHHH", 0x457F, 0x0110, 1, 0, 0, 0) + NB_NAME + b"\x00\x20\x00\x01", {}),
    ("NetBIOS", bytes([0x11, 0x02, 0, 12, 192, 168, 1, 41, 0, 138]) + struct.pack(">HH", 187, 0) + NB_NAME
     + bytes(16), {"n": 201}),
    ("NetBIOS", b"\x81\x00\x00\x44" + NB_NAME + NB_NAME, {}),
    ("NetBIOS", b"\x00\x00\x00\x85\xffSMB\x72" + bytes(40), {"n": 137}),
    ("SMBv23", b"\x00\x00\x00\xb0\xfeSMB" + struct.pack("<HH", 64, 0) + bytes(4) + struct.pack("<H", 0) + bytes(20),
     {"n": 180}),
    ("Kerberos", krb_as_req(), {"dp": 88}),
    ("Kerberos", struct.pack(">I", len(krb_as_req())) + krb_as_req(), {"dp": 88}),
    ("LDAP", bytes.fromhex("300c020101600702010304008000"), {}),
    ("LDAP", bytes.fromhex("304302010263210401610a01000a01030201000201000101") + bytes(45), {}),
    ("SNMP", der(0x30, b"\x02\x01\x01" + der(0x04, b"public") + der(0xA0, bytes(20))), {}),
    ("Service_Location_Protocol", pad(b"\x02\x01\x00\x00\x36\x20\x00\x00\x00\x00\x00\x01\x00\x02en\x00\x00\x00\x15", 54),
     {}),
    ("Service_Location_Protocol", pad(b"\x01\x06\x00\x2c\x00\x00en\x00\x03\x1e\xf7", 44), {}),
    ("NFS", rpc_call(100003), {}),
    ("NFS", rpc_call(100005, 1), {}),
    ("NFS", struct.pack(">I", 0x80000000 | len(rpc_call(100003))) + rpc_call(100003), {}),
    ("DCERPC", pad(bytes.fromhex("05000b031000000048000000") + bytes(4), 72), {}),
    ("H323", tpkt(b"\x08\x02\x77\xf4\x05" + bytes(20)), {}),
    ("H323", b"\x0e\x80\x46\x92" + bytes(20), {"dp": 1719}),
    ("RDP", bytes.fromhex("030000130ee00000000000010008000b000000"), {}),
    ("RDP", pad(b"\xff\xff\xff\xff\x00\x40\x18\x01", 1232), {}),
    ("S7CommPlus", cotp_dt(b"\x72\x01\x00\x20" + bytes(20)), {}),
    ("S7CommPlus", cotp_cr(b"\xc1\x02\x06\x20\xc2\x10SIMATIC-ROOT-HMI\xc0\x01\x0a"), {}),
    ("S7Comm", cotp_dt(b"\x32\x01\x00\x00\x02\x00\x00\x08\x00\x00\xf0\x00"), {}),
    ("S7Comm", tpkt(bytes.fromhex("11e00000000700c1020100c2020102c0010a")), {"dp": 102}),
    ("IPSec", bytes(range(1, 9)) + bytes(8) + b"\x21\x20\x22\x08" + struct.pack(">II", 0, 28), {"dp": 500}),
    ("IPSec", bytes(4) + bytes(range(1, 9)) + bytes(8) + b"\x01\x10\x02\x00" + struct.pack(">II", 0, 28), {"dp": 4500}),
    ("OpenVPN", b"\x38" + bytes(range(1, 9)) + b"\x00" + bytes(4), {}),
    ("OpenVPN", struct.pack(">H", 14) + b"\x38" + bytes(range(1, 9)) + b"\x00" + bytes(4), {}),
    ("OpenVPN", b"\x38" + bytes(range(1, 9)) + bytes(range(100, 120)) + b"\x00\x00\x00\x01" + bytes(9), {}),
    ("WireGuard", b"\x01\x00\x00\x00" + bytes(range(1, 29)), {"n": 148}),
    ("WireGuard", b"\x04\x00\x00\x00\x12\x34\x56\x78" + bytes(8) + bytes(range(16)), {}),
    ("L2TP", pad(b"\xc8\x02\x00\x14" + bytes(4) + b"\x00\x00\x00\x00", 20), {}),
    ("SOCKS", b"\x05\x01\x00", {}),
    ("SOCKS", b"\x05\x01\x00\x01\x5d\xb8\xd8\x77\x00\x50", {}),
    ("SOCKS", b"\x04\x01\x00\x50\x5d\xb8\xd8\x77\x00", {}),
    ("SOCKS", b"\x04\x01\x00\x50\x00\x00\x00\x01\x00www.example.com\x00", {}),
    ("PostgreSQL", struct.pack(">II", 8, 80877103), {}),
    ("PostgreSQL", pg_startup(b"user\0postgres\0database\0db\0\0"), {}),
    ("MySQL", b"\x4a\x00\x00\x00\x0a8.0.36\x00" + bytes(20), {"n": 78}),
    ("MySQL", b"\x6a\x00\x00\x00\x0a5.5.5-10.6.12-MariaDB\x00", {"n": 110}),
    ("MsSQL-TDS", b"\x12\x01\x00\x2f\x00\x00\x01\x00" + bytes(24), {"n": 47}),
    ("MsSQL-TDS", b"\x04\x01\x00\x22\x00\x33\x01\x00" + bytes(24), {"n": 34, "d": 1}),
    ("Oracle", struct.pack(">HHBBHHH", 212, 0, 1, 0, 0, 0x13B, 0x12C) + bytes(20), {"n": 212}),
    ("MongoDB", struct.pack("<iiii", 60, 1, 0, 2013) + bytes(16), {"n": 60}),
    ("Memcached", struct.pack(">BBHBBHII", 0x80, 0, 3, 0, 0, 0, 3, 0) + bytes(8) + b"key", {}),
    ("Memcached", b"stats\r\n", {"dp": 11211}),
    ("Cassandra", b"\x05\x00\x00\x00\x05\x00\x00\x00\x00", {}),
    ("Elasticsearch", b"ES" + struct.pack(">I", 261) + bytes(25), {"n": 267}),
    ("MQTT", b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04abcd", {}),
    ("MQTT", b"\x10\x12\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x04abcd", {}),
    ("AMQP", b"AMQP\x00\x00\x09\x01", {}),
    ("AMQP", b"\x01\x00\x01\x00\x00\x00\x21\x00\x3c\x00\x28" + bytes(20), {"n": 41}),
    ("Kafka", struct.pack(">IhhIh", 52, 18, 3, 3, 16) + b"console-producer" + bytes(10), {"n": 56}),
    ("SMPP", struct.pack(">IIII", 40, 2, 0, 1) + b"user\0password\0SMPP\0", {"n": 40}),
    ("Thrift", b"\x80\x01\x00\x01\x00\x00\x00\x04ping\x00\x00\x00\x01\x00", {}),
    ("Thrift", b"\x82\x81\x01\x09emitBatch\x1c\x1c", {}),
    ("OICQ", b"\x02\x3b\x0b\x00\x22\x56\x1f\x0c" + bytes(20), {"n": 52}),
    ("Diameter", b"\x01" + (112).to_bytes(3, "big") + b"\x80" + (257).to_bytes(3, "big") + bytes(24), {"n": 112}),
    ("Radius", b"\x01\x0b" + struct.pack(">H", 40) + bytes(16) + b"\x01\x06user", {"n": 40}),
    ("NetFlow", struct.pack(">HH", 5, 1) + bytes(20), {"n": 72}),
    ("NetFlow", struct.pack(">HH", 10, 180) + bytes(12) + struct.pack(">HH", 2, 100), {"n": 180}),
    ("NetFlow", struct.pack(">HH", 9, 2) + bytes(16) + struct.pack(">HH", 0, 40), {"n": 100}),
    ("sFlow", struct.pack(">IIIIIII", 5, 1, 0xAC152311, 1, 415, 1731000000, 1), {"n": 144}),
    ("Teredo", b"\x60\x00\x00\x00\x00\x08\x3a\xff" + bytes(24), {"n": 48}),
    ("XDMCP", b"\x00\x01\x00\x02\x00\x01\x00", {}),
    ("TeamViewer", b"\x17\x24\x0a\x20" + bytes(33), {}),
    ("TeamViewer", bytes(11) + b"\x17\x24\x47\x50" + bytes(20), {}),
    ("Telnet", b"\xff\xfd\x18\xff\xfd\x20\xff\xfd\x23", {}),
    ("Modbus", bytes.fromhex("000100000006010300000001"), {}),
    ("BACnet", bytes.fromhex("810b000c0120ffff00ff1008"), {}),
    ("DNP3", bytes.fromhex("056405c901000000aaaa"), {}),
    ("IEC60870", bytes.fromhex("680407000000"), {}),
    ("IEC60870", bytes.fromhex("680e00000200640106000d9100000014"), {}),
    ("IEC60870", bytes.fromhex("6804010042b9"), {}),
    ("EthernetIP", b"\x63\x00\x00\x00" + bytes(20), {}),
    ("EthernetIP", b"\x70\x00\x3a\x00" + bytes(4) + bytes(8) + bytes(8), {"n": 82}),
    ("CIP", bytes.fromhex("020002800800787b3a00e8cb5e04b1000c00"), {"n": 30}),
    ("HiSLIP", b"HS\x00\x00\x01\x00\x52\x53" + struct.pack(">Q", 7) + b"hislip0", {}),
    ("KNXnet_IP", bytes.fromhex("06100201000e08010a00000a0e57"), {}),
    ("IEEE-C37118", bytes.fromhex("aa41001200f100000000000000000005d7d0"), {}),
    ("BeckhoffADS", b"\x00\x00" + struct.pack("<I", 32) + bytes(16) + struct.pack("<HHI", 2, 4, 0) + bytes(8),
     {"n": 38}),
    ("IEC62056", bytes.fromhex("7ea0070321930f017e"), {}),
    ("SOMEIP", struct.pack(">IIIBBBB", 0x01010009, 1404, 5, 1, 1, 0x20, 0), {"n": 1412}),
    ("TPLINK_SHP", tplink(b'{"system":{"get_sysinfo":{}}}'), {}),
    ("TPLINK_SHP", struct.pack(">I", 29) + tplink(b'{"system":{"get_sysinfo":{}}}'), {}),
    ("CiscoSkinny", struct.pack("<III", 4, 0, 0), {}),
    ("CiscoSkinny", struct.pack("<IIII", 8, 0x14, 0x26, 1), {}),
    ("BFCP", b"\x20\x01\x00\x00" + struct.pack(">IHH", 1, 2, 0x504), {}),
    ("i3D", struct.pack(">II", 0x00010046, 0x0003CFA8) + bytes(24), {"n": 74}),
    ("Discord", struct.pack(">II", 0x00010046, 0x00024B18) + bytes(24), {"n": 74}),
    ("Discord", bytes.fromhex("1337cafea9010000"), {}),
    ("RMCP", bytes.fromhex("0600ff07000000000000000000092018c88100388e04b5"), {}),
    ("collectd", struct.pack(">HH", 0, 21) + b"devlap.fritz.box\0", {"n": 1343}),
    ("collectd", struct.pack(">HH", 0x0210, 1366) + b"\x00\x04user" + bytes(20), {"n": 1366}),
    ("RTMP", b"\x03\x00\x07\xaa\x57\x00\x00\x00\x00" + bytes(20), {"n": 1537}),
    ("MPEG_TS", b"\x47\x40\x00\x10" + bytes(28), {"n": 1316}),
    ("TFTP", b"\x00\x01file.txt\x00octet\x00", {"dp": 69}),
    ("TFTP", b"\x00\x03\x00\x01" + bytes(28), {"n": 516}),
    ("TFTP", b"\x00\x04\x00\x01", {}),
    ("TFTP", b"\x00\x05\x00\x01File not found\x00", {}),
    ("TFTP", b"\x00\x06blksize\x001468\x00", {}),
    ("DHCP", b"\x01\x01\x06\x00\x78\x54\x47\x0b" + bytes(24), {"n": 300, "sp": 68, "dp": 67}),
    ("DHCPV6", b"\x01\xd8\xe4\xfe\x00\x01\x00\x0e" + bytes(24), {"n": 52, "sp": 546, "dp": 547}),
    ("NTP", b"\x1b" + bytes(47), {"dp": 123}),
    ("NTP", b"\x97\x0e\x03\x2a\x00\x05\x00\x48" + bytes(24), {"n": 368, "sp": 123}),
    ("Dropbox", b'{"host_int": 413767116, "version": [1, 8], "port": 17500}', {"sp": 17500, "dp": 17500}),
    ("HSRP", b"\x00\x00\x10\x03\x0a\x50\x0a\x00cisco\x00\x00\x00\x0a\x1c\xa8\xfe", {"sp": 1985, "dp": 1985}),
    ("HSRP", b"\x01\x28\x02\x00\x05\x04\x03\x98" + bytes(24), {"n": 52, "sp": 1985, "dp": 1985}),
    ("UBNTAC2", b"\x01\x00\x00\x00", {"dp": 10001}),
    ("UBNTAC2", b"\x02\x06\x00\xab\x02\x00\x0a" + bytes(25), {"n": 175, "sp": 10001}),
    ("NAT-PMP", b"\x00\x00", {"dp": 5351}),
    ("NAT-PMP", b"\x00\x80\x00\x00\x00\x2b\x3a\xdd\x0a\xc9\xd5\xae", {"sp": 5351, "d": 1}),
    ("GTP", b"\x30\xff" + struct.pack(">HI", 92, 1) + bytes(24), {"n": 100, "dp": 2152}),
    ("GTP", b"\x2e\xf0\x00\xf4" + bytes(28), {"n": 250, "dp": 3386}),
    ("CAPWAP", b"\x00\x10\x42\x00" + bytes(28), {"n": 60, "dp": 5246}),
    ("IAX", bytes.fromhex("8004000000000001000006010b020002010c"), {"dp": 4569}),
    ("Mumble", bytes.fromhex("0000000003d72000fa76287e"), {"dp": 64738}),
    ("Mumble", bytes.fromhex("0001030403d72000fa76287e000000000000006400011940"), {"sp": 64738, "d": 1}),
    ("HART-IP", bytes.fromhex("010000000002000d0100007530"), {"dp": 5094}),
    ("FINS", b"FINS" + struct.pack(">III", 12, 0, 0) + bytes(8), {}),
    ("FINS", bytes.fromhex("8000020000000000007a010100cccccc0001"), {"dp": 9600}),
    ("COAP", b"\x40\x01\x00\x01\xb4test", {"dp": 5683}),
    ("COAP", b"\x60\x45\x00\x01\xff{}", {"sp": 5683, "d": 1}),
    ("OpenFlow", b"\x04\x00\x00\x08\x00\x00\x00\x01", {"dp": 6653}),
    ("RSH", b"1020\0", {"dp": 514}),
    ("RTP", b"\x80\x00\x00\x01\x00\x00\x00\xa0\x0e\xaf\x0e\xaf" + bytes(20), {"n": 172}),
    ("RTP", b"\x80\x6f\x4e\xb2\x8b\x39\x9c\xda\x0b\x86\x55\x19" + bytes(20), {"n": 55}),
    ("RTP", b"\x90\x78\x4a\x3d\x39\xea\x74\xe3\x00\x00\xac\xe3\xbe\xde\x00\x01" + bytes(16), {"n": 120}),
]

NEGATIVE = [
    ("SSH", b"SSH-X.0-OpenSSH\r\n", {}),
    ("SSH", b"SSL-2.0-OpenSSH\r\n", {}),
    ("BitTorrent", b"\x13BitTorrent protocxl" + bytes(48), {}),
    ("BitTorrent", b"d1:xd2:id20:" + bytes(40), {}),
    ("BitTorrent", bytes([0x41, 0, 0x12, 0x34]) + b"\x10\xee\xb2\xf0" + bytes(8) + b"\xe7\xf5\x00\x01", {}),
    ("Gnutella", b"GNUTELLX CONNECT/0.6\r\n", {}),
    ("Syncthing", struct.pack(">I", 0x2EA7D90C) + bytes(40), {}),
    ("BITCOIN", bytes.fromhex("f9beb4d8") + b"version\0\0\0\0\0" + bytes(16), {}),
    ("BITCOIN", bytes.fromhex("f9beb4d9") + b"VERSION\0\0\0\0\0" + bytes(16), {}),
    ("Monero", bytes.fromhex("0121010101010102") + bytes(30), {}),
    ("Tailscale", b"TS\xf0\x9f\x92\xad" + bytes(40), {}),
    ("HAProxy", b"PROXY TCP5 192.168.0.1 192.168.0.11 1 2\r\n", {}),
    ("HTTP2", b"PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n", {}),
    ("RSYNC", b"@RSYNCD:31.0\n   ", {}),
    ("Git", b"0033git-uplxad-pack /project.git\0", {}),
    ("Git", b"zz33git-upload-pack /project.git\0", {}),
    ("Munin", b"# munin nodes at host\n", {}),
    ("CHECKMK", b"<<<check_mx>>>\n", {}),
    ("Zabbix", b"ZBXD\x02" + bytes(12), {}),
    ("TiVoConnect", b"TiVoConnect:1\nswversion", {}),
    ("Spotify", b"SpotUdp1" + bytes(36), {}),
    ("Source_Engine", b"\xff\xff\xff\xfeTSource Engine Query\0", {}),
    ("RakNet", b"\x05" + bytes.fromhex("00ffff00fefefefefdfdfdfd12345679") + bytes(20), {}),
    ("Yojimbo", b"\0NETCODE 2.02\0" + bytes(40), {}),
    ("Controller_Area_Network", b"ISO11899\x01\x02" + bytes(30), {}),
    ("EtherSIO", b"ESIO\x05\x01" + bytes(43), {}),
    ("RTPS", b"RTPS\x09\x01\x01\x01" + bytes(12), {}),
    ("Corba", b"GIOP\x02\x00\x00\x00" + bytes(8), {}),
    ("HL7", b"\x0cMSH|^~\\&|", {}),
    ("OpenWire", struct.pack(">I", 200) + b"\x02ActiveMQ" + bytes(10), {}),
    ("FIX", b"8=FIX.4.2\x01X=65\x0135=A\x01", {}),
    ("FIX", b"8=O\x02\x019=0075\x01", {}),
    ("PPTP", pad(struct.pack(">HHIHH", 156, 1, 0x1A2B3C4E, 1, 0), 156), {}),
    ("Citrix", b"\x7f\x7fICB\x00", {}),
    ("VNC", b"RFB 003.008\r", {}),
    ("VNC", b"RFB 3.8\n    ", {}),
    ("AVAST", pad(b"NOSB" + struct.pack(">H", 96), 96), {}),
    ("RipeAtlas", b"MGLNDX_10.0.0.1_1113", {}),
    ("BJNP", b"BJNQ\x01\x01\x00\x00" + bytes(8), {}),
    ("TuyaLP", struct.pack(">IIII", 0x55AB, 0, 0x13, 172) + bytes(16), {"n": 188}),
    ("BGP", b"\xff" * 15 + b"\xfe" + struct.pack(">HB", 19, 4), {}),
    ("BGP", b"\xff" * 16 + struct.pack(">HB", 19, 7), {}),
    ("WhatsApp", b"ED\x00\x02", {}),
    ("WhatsApp", b"ED\x00\x01\x00\x00\x05\x08" + bytes(20), {}),
    ("Roughtime", struct.pack("<II", 2, 64) + b"NONXPAD\xff" + bytes(16), {"n": 1024}),
    ("RTSP", b"OPTIONS http://x/ HTTP/1.1\r\nHost: x\r\n", {}),
    ("SIP", b"INVITE http://example.com/ HTTP/1.1\r\n", {}),
    ("SIP", b"SIP/2.0 OK\r\nVia: x\r\n", {}),
    ("Nats", b"CONNECT example.com:443 HTTP/1.1\r\n", {}),
    ("SSDP", b"M-SEARCH / HTTP/1.1\r\nHOST: x\r\n", {}),
    ("SSDP", b"HTTP/1.1 404 Not Found\r\n", {}),
    ("FTPS", b"AUTH LOGIN\r\n", {}),
    ("FTP_CONTROL", b"220 mail.example.com ESMTP\r\n", {"sp": 25, "d": 1}),
    ("FTP_CONTROL", b"USER bob\r\n", {"dp": 110}),
    ("SMTP", b"220 (vsFTPd 3.0.3)\r\n", {"sp": 21, "d": 1}),
    ("SMTP", b"220 welcome\r\n", {"sp": 2121, "d": 1}),
    ("SMTP", b"EHLOX client\r\n", {}),
    ("POP3", b"USER bob\r\n", {"dp": 21}),
    ("POP3", b"+OKAY fine\r\n", {}),
    ("IMAP", b"*OK IMAP4rev1 ready\r\n", {"d": 1}),
    ("IMAP", b"a001 FETCH 1 BODY[]\r\n", {}),
    ("IMAP", b"GET / HTTP/1.1\r\n", {}),
    ("Usenet", b"200 OK\r\n", {"sp": 8080, "d": 1}),
    ("IRC", b"USER alice\r\n", {"dp": 21}),
    ("IRC", b"NICK \r\n  ", {}),
    ("STOMP", b"CONNECT example.com:443 HTTP/1.1\r\n", {}),
    ("MGCP", b"RQNTX 1201 aaln/1@rgw MGCP 1.0\r\n", {}),
    ("Megaco", b"!/x [10.23.1.42]:2944 P=1{", {}),
    ("Mining", b'{"id":1,"method":"eth_getWork","params":[]}', {}),
    ("JSON-RPC", b'{"json": "2.0", "method": "echo"}', {}),
    ("RESP", b"*1\n$7\nCOMMAND\n", {}),
    ("Syslog", b"<192>Oct 11 22:14:15 host x", {}),
    ("Syslog", b"<34 Oct 11 22:14:15 host x", {}),
    ("Ookla", b"HI!", {}),
    ("ATG", b"\x01I2010x\r\n", {}),
    ("Jabber", b"<?xml version='1.0'?><stream:stream to='example.com'>", {"dp": 80}),
    ("WSD", b'<?xml version="1.0" encoding="utf-8"?><soap:Envelope>', {"dp": 3703}),
    ("DNScrypt", struct.pack(">HHHHHH", 0x7F42, 0x0100, 1, 0, 0, 1) + b"\x012\x0ddnscrypx-cert\x07example\x00",
     {"dp": 443}),
    ("STUN", struct.pack(">HHI", 0x0001, 0, 0x2112A443) + bytes(12), {}),
    ("STUN", struct.pack(">HHI", 0x0001, 3, 0x2112A442) + bytes(15), {}),
    ("STUN", struct.pack(">HHI", 0xC001, 0, 0x2112A442) + bytes(12), {}),
    ("NetBIOS", struct.pack(">HHHHHH", 0x457F, 0x0110, 1, 0, 0, 0) + b"\x20" + b"emfacnfcelef" + bytes(24), {}),
    ("NetBIOS", b"\x81\x00\x00\x40" + NB_NAME + NB_NAME, {}),
    ("SMBv23", b"\x00\x00\x00\xb0\xfeSMB" + struct.pack("<HH", 65, 0) + bytes(26), {"n": 180}),
    ("Kerberos", krb_as_req().replace(b"\xa1\x03\x02\x01\x05", b"\xa1\x03\x02\x01\x04"), {"dp": 88}),
    ("LDAP", bytes.fromhex("300c020101200702010304008000"), {}),
    ("SNMP", der(0x30, b"\x02\x01\x02" + der(0x04, b"public") + der(0xA0, bytes(20))), {}),
    ("SNMP", der(0x30, b"\x02\x01\x01" + der(0x04, b"public") + der(0xA0, bytes(20))) + b"\x00", {}),
    ("Service_Location_Protocol", pad(b"\x02\x01\x00\x00\x37\x20\x00\x00\x00\x00\x00\x01\x00\x02en", 54), {}),
    ("NFS", rpc_call(100004), {}),
    ("NFS", rpc_call(100003, 9), {}),
    ("DCERPC", pad(bytes.fromhex("05000b030000000048000000") + bytes(4), 72), {}),
    ("H323", tpkt(b"\x08\x02\x77\xf4\x99" + bytes(20)), {}),
    ("RDP", bytes.fromhex("0300002f2ae00000000000436f6f6b69653a206d737473686173683d") + bytes(19), {}),
    ("RDP", pad(b"\xff\xff\xff\xff\x00\x40\x18\x00", 1232), {}),
    ("S7CommPlus", cotp_dt(b"\x32\x01\x00\x00\x02\x00\x00\x08\x00\x00\xf0\x00"), {}),
    ("S7Comm", tpkt(bytes.fromhex("11e00000000700c1020100c2020102c0010a")), {"dp": 103}),
    ("S7Comm", cotp_dt(b"\x72\x01\x00\x20" + bytes(20)), {}),
    ("IPSec", bytes(16) + b"\x21\x20\x22\x08" + struct.pack(">II", 0, 28), {"dp": 500}),
    ("IPSec", bytes(range(1, 9)) + bytes(8) + b"\x21\x20\x22\x08" + struct.pack(">II", 0, 29), {"dp": 500}),
    ("OpenVPN", b"\x38" + bytes(range(1, 9)) + b"\x00" + bytes(5), {}),
    ("OpenVPN", b"\x38" + bytes(range(1, 9)) + b"\x01" + bytes(4), {}),
    ("WireGuard", b"\x01\x00\x00\x00" + bytes(range(1, 29)), {"n": 149}),
    ("WireGuard", b"\x04\x00\x00\x00\x12\x34\x56\x78" + bytes(8) + bytes(range(16)), {"n": 33}),
    ("L2TP", pad(b"\xc8\x04\x00\x14" + bytes(8), 20), {}),
    ("SOCKS", b"\x05\x02\x00", {}),
    ("SOCKS", b"\x05\x01\x00\x01\x5d\xb8\xd8\x77\x00\x50\x00", {}),
    ("SOCKS", b"\x04\x01\x00\x1d\x00\x00\x01\x00\x00\x01\x02\x00", {}),
    ("PostgreSQL", struct.pack(">II", 8, 80877102), {}),
    ("PostgreSQL", struct.pack(">II", 9, 80877103) + b"\0", {}),
    ("MySQL", b"\x4a\x00\x00\x00\x098.0.36\x00" + bytes(20), {"n": 78}),
    ("MsSQL-TDS", b"\x12\x01\x00\x2f\x00\x00\x01\x01" + bytes(24), {"n": 47}),
    ("MsSQL-TDS", tpkt(b"\x2a\xe0" + bytes(41)), {}),
    ("Oracle", struct.pack(">HHBBHHH", 212, 0, 1, 0, 0, 200, 100) + bytes(20), {"n": 212}),
    ("MongoDB", struct.pack("<iiii", 60, 1, 0, 3000) + bytes(16), {"n": 60}),
    ("Memcached", b"stats\r\n", {"dp": 80}),
    ("Cassandra", b"\x05\x00\x00\x00\x05\x00\x00\x00\x01", {}),
    ("Elasticsearch", b"ES" + struct.pack(">I", 200) + bytes(25), {"n": 267}),
    ("MQTT", b"\x10\x10\x00\x04MQTT\x09\x02\x00\x3c\x00\x04abcd", {}),
    ("AMQP", b"\x01\x00\x01\x00\x00\x00\x21\x00\x0b\x00\x28" + bytes(20), {"n": 41}),
    ("Kafka", struct.pack(">IhhIh", 52, 200, 3, 3, 16) + b"console-producer" + bytes(10), {"n": 56}),
    ("SMPP", struct.pack(">IIII", 40, 0x77, 0, 1) + bytes(24), {"n": 40}),
    ("Thrift", b"\x80\x02\x00\x01\x00\x00\x00\x04ping\x00\x00\x00\x01\x00", {}),
    ("OICQ", b"\x02\x3b\x0c\x00\x22\x56\x1f\x0c" + bytes(20), {"n": 52}),
    ("Diameter", b"\x01" + (112).to_bytes(3, "big") + b"\x81" + (257).to_bytes(3, "big") + bytes(24), {"n": 112}),
    ("Radius", b"\x06\x0b" + struct.pack(">H", 40) + bytes(16) + b"\x01\x06user", {"n": 40}),
    ("NetFlow", struct.pack(">HH", 5, 1) + bytes(20), {"n": 73}),
    ("sFlow", struct.pack(">IIIIIII", 3, 1, 0xAC152311, 1, 415, 1731000000, 1), {"n": 144}),
    ("Teredo", b"\x45\x00\x00\x00\x00\x08\x3a\xff" + bytes(24), {"n": 48}),
    ("XDMCP", b"\x00\x01\x00\x02\x00\x05\x00", {}),
    ("TeamViewer", b"\x17\x25\x0a\x20" + bytes(33), {}),
    ("Telnet", b"\xff\xfd\x18\x00\xfd\x20", {}),
    ("Modbus", bytes.fromhex("000100010006010300000001"), {}),
    ("BACnet", bytes.fromhex("8120000c0120ffff00ff1008"), {}),
    ("DNP3", bytes.fromhex("056505c901000000aaaa"), {}),
    ("IEC60870", b"hello world, how are you doing today?", {}),
    ("IEC60870", bytes.fromhex("680409000000"), {}),
    ("EthernetIP", b"\x99\x00\x00\x00" + bytes(20), {}),
    ("CIP", bytes.fromhex("020003800800787b3a00e8cb5e04b1000c00"), {"n": 30}),
    ("HiSLIP", b"HS\x1e\x00\x01\x00\x52\x53" + struct.pack(">Q", 7) + b"hislip0", {}),
    ("KNXnet_IP", bytes.fromhex("06110201000e08010a00000a0e57"), {}),
    ("IEEE-C37118", bytes.fromhex("ab41001200f100000000000000000005d7d0"), {}),
    ("BeckhoffADS", b"\x00\x00" + struct.pack("<I", 32) + bytes(16) + struct.pack("<HHI", 2, 0x100, 0) + bytes(8),
     {"n": 38}),
    ("IEC62056", bytes.fromhex("7eb0070321930f017e"), {}),
    ("SOMEIP", struct.pack(">IIIBBBB", 0x01010009, 1404, 5, 2, 1, 0x20, 0), {"n": 1412}),
    ("TPLINK_SHP", b'{"system":{"get_sysinfo":{}}}', {}),
    ("CiscoSkinny", struct.pack("<III", 4, 0x20, 0), {}),
    ("BFCP", b"\x20\x00\x00\x00" + struct.pack(">IHH", 1, 2, 0x504), {}),
    ("i3D", struct.pack(">II", 0x00010046, 0x00024B18) + bytes(24), {"n": 74}),
    ("Discord", struct.pack(">II", 0x00010046, 0x00024B18) + bytes(24), {"n": 75}),
    ("RMCP", bytes.fromhex("0500ff07000000000000000000092018c88100388e04b5"), {}),
    ("collectd", struct.pack(">HH", 5, 21) + b"devlap.fritz.box\0", {"n": 1343}),
    ("collectd", struct.pack(">HHI", 0x0001, 12, 0x2112A442) + bytes(12), {"n": 32}),
    ("RTMP", b"\x06\x00\x07\xaa\x57\x00\x00\x00\x00" + bytes(20), {"n": 1537}),
    ("MPEG_TS", b"\x47\x40\x00\x10" + bytes(28), {"n": 1317}),
    ("TFTP", b"\x00\x01file.txt\x00octet\x00", {"dp": 70}),
    ("TFTP", b"\x00\x04\x00\x01\x00", {}),
    ("DHCP", b"\x01\x01\x06\x00\x78\x54\x47\x0b" + bytes(24), {"n": 300, "sp": 1068, "dp": 80}),
    ("DHCP", b"\x01\x01\x07\x00\x78\x54\x47\x0b" + bytes(24), {"n": 300, "sp": 68, "dp": 67}),
    ("DHCPV6", b"\x01\xd8\xe4\xfe\x00\x01\x00\x0e" + bytes(24), {"n": 52, "sp": 5460, "dp": 548}),
    ("NTP", b"\x1b" + bytes(46), {"dp": 123}),
    ("NTP", b"\x1b" + bytes(47), {"dp": 124}),
    ("Dropbox", b'{"host_int": 413767116, "version": [1, 8], "port": 17500}', {"sp": 17500, "dp": 17501}),
    ("HSRP", b"\x00\x00\x10\x03\x0a\x50\x0a\x00cisco\x00\x00\x00\x0a\x1c\xa8\xfe", {"sp": 1986, "dp": 1986}),
    ("UBNTAC2", b"\x03\x00\x00\x00", {"dp": 10001}),
    ("NAT-PMP", b"\x01\x00", {"dp": 5351}),
    ("GTP", b"\x30\xff" + struct.pack(">HI", 92, 1) + bytes(24), {"n": 100, "dp": 2153}),
    ("CAPWAP", b"\x02\x10\x42\x00" + bytes(28), {"n": 60, "dp": 5246}),
    ("IAX", bytes.fromhex("8004000000000001000000010b020002010c"), {"dp": 4569}),
    ("Mumble", bytes.fromhex("0000000003d72000fa76287e00"), {"dp": 64738}),
    ("HART-IP", bytes.fromhex("020000000002000d0100007530"), {"dp": 5094}),
    ("FINS", bytes.fromhex("4000020000000000007a010100cccccc0001"), {"dp": 9600}),
    ("FINS", b"FINS" + struct.pack(">III", 12, 9, 0) + bytes(8), {}),
    ("COAP", b"\x80\x01\x00\x01\xb4test", {"dp": 5683}),
    ("COAP", b"\x40\x1f\x00\x01\xb4test", {"dp": 5683}),
    ("OpenFlow", b"\x09\x00\x00\x08\x00\x00\x00\x01", {"dp": 6653}),
    ("RSH", b"10a0\0", {"dp": 514}),
    ("RTP", b"\x80\xc8\x00\x01" + bytes(28), {"n": 172}),
    ("RTP", b"\x82\x00\x00\x01\x00\x00\x00\xa0\x0e\xaf\x0e\xaf" + bytes(20), {"n": 172}),
    ("RTP", b"\x80\x00\x00\x01\x00\x00\x00\xa0\x0e\xaf\x0e\xaf" + bytes(20), {"n": 173}),
    ("RTP", b"\x90\x78\x4a\x3d\x39\xea\x74\xe3\x00\x00\xac\xe3\x12\x34\x00\x01" + bytes(16), {"n": 120}),
]


def _ids(cases):
    seen = {}
    out = []
    for app, _, _ in cases:
        seen[app] = seen.get(app, 0) + 1
        out.append(f"{app}-{seen[app]}")
    return out


@pytest.mark.parametrize("app,payload,kw", POSITIVE, ids=_ids(POSITIVE))
def test_matcher_accepts(app, payload, kw):
    assert run(app, payload, **kw) is True


@pytest.mark.parametrize("app,payload,kw", NEGATIVE, ids=_ids(NEGATIVE))
def test_matcher_refuses_near_miss(app, payload, kw):
    assert run(app, payload, **kw) is False


def test_every_matcher_has_a_positive_and_a_negative_case():
    mine = {a.name for a in APPS if a.matcher and a.matcher.split(":")[0] not in ("web", "network")}
    assert mine <= {c[0] for c in POSITIVE}, sorted(mine - {c[0] for c in POSITIVE})
    assert mine <= {c[0] for c in NEGATIVE}, sorted(mine - {c[0] for c in NEGATIVE})


# ---- robustness: any bytes, any length -------------------------------------------------------

ALL = sorted(MATCHERS.items())
PORTS = st.sampled_from([0, 21, 25, 53, 67, 68, 69, 102, 110, 123, 137, 138, 139, 514, 546, 547, 1719, 1985, 2152,
                         3386, 3702, 4569, 5094, 5351, 5683, 6653, 9600, 10001, 17500, 64738, 65535])


@settings(max_examples=300, deadline=None)
@given(data=st.binary(min_size=0, max_size=64), extra=st.integers(0, 3000), sp=PORTS, dp=PORTS,
       d=st.integers(0, 1))
def test_matchers_return_bool_on_random_payloads(data, extra, sp, dp, d):
    w = words(data)
    for n in (len(data), len(data) + extra):
        for name, f in ALL:
            r = f(w, n, sp, dp, d)
            assert r is True or r is False, (name, r)


@pytest.mark.parametrize("app,payload,kw", POSITIVE, ids=_ids(POSITIVE))
def test_matchers_on_every_truncation(app, payload, kw):
    """Every prefix (0..64 bytes) of a real-looking payload, with the length
    the prefix has and with the length the packet claimed: a bool, no
    exception (only the first 32 bytes are ever visible)."""
    if app not in MATCHERS:
        pytest.skip(f"{app} not in the registry")
    f = MATCHERS[app]
    full = pad(payload, 64)[:64] if len(payload) < 64 else payload[:64]
    sp, dp, d = kw.get("sp", 40000), kw.get("dp", 40001), kw.get("d", 0)
    for k in range(65):
        w = words(full[:k])
        for n in (k, kw.get("n", len(payload))):
            assert f(w, n, sp, dp, d) in (True, False)
