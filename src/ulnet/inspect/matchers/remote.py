"""Remote access: SSH, Telnet, RDP (TCP and UDP), VNC, TeamViewer, Citrix
ICA, rsh, XDMCP."""

from ulnet.jit import njit

from ulnet.inspect.matchers._common import at, digit, digits
from ulnet.inspect.words import b, be16, be32, head, lit

_SSH = lit("SSH-")
_RFB = lit("RFB ")
_ICA = lit(b"ICA\x00")
_CGP_01 = lit("CGP/01")


@njit(cache=True)
def match_ssh(w, n, sp, dp, d):
    """SSH identification string "SSH-1.x-" / "SSH-2.0-"."""
    return n >= 8 and head(w, 4) == _SSH and digit(b(w, 4)) and b(w, 5) == 0x2E


@njit(cache=True)
def match_telnet(w, n, sp, dp, d):
    """Telnet option negotiation: IAC followed by WILL/WONT/DO/DONT (or a
    subnegotiation) and an option code, the next command again an IAC."""
    if n < 3 or b(w, 0) != 0xFF:
        return False
    c = b(w, 1)
    if c == 0xFA:
        return n >= 6 and b(w, 2) <= 50
    if c < 0xFB or b(w, 2) > 50:
        return False
    return n == 3 or b(w, 3) == 0xFF


@njit(cache=True)
def match_rdp(w, n, sp, dp, d):
    """RDP: over TCP, the client's TPKT + X.224 connection request whose
    user data is the RDP negotiation request (type 1, length 8); over UDP,
    the SYN datagram of RDP-UDP (no source ack, the SYN flag, padded to 1232
    bytes). A request that opens with the "Cookie: mstshash=" carries its
    requested protocols beyond the visible bytes: such clients ask for TLS,
    and the flow is left to the TLS handshake that follows (nDPI names
    those flows TLS as well)."""
    if n == 1232 and be32(w, 0) == 0xFFFFFFFF and be16(w, 6) & 1:
        return True
    if n < 19 or b(w, 0) != 3 or b(w, 1) != 0 or be16(w, 2) != n or b(w, 4) != n - 5:
        return False
    return b(w, 5) == 0xE0 and b(w, 11) == 1 and be16(w, 13) == 0x0800


@njit(cache=True)
def match_vnc(w, n, sp, dp, d):
    """VNC/RFB protocol version "RFB 003.008\\n" (12 bytes)."""
    return n == 12 and head(w, 4) == _RFB and digits(w, 4, 3) and b(w, 7) == 0x2E \
        and digits(w, 8, 3) and b(w, 11) == 0x0A


@njit(cache=True)
def match_teamviewer(w, n, sp, dp, d):
    """TeamViewer: its 0x17 0x24 (or the older 0x11 0x30) command magic at
    the start of a TCP message, at byte 11 of its UDP datagrams."""
    if n < 13:
        return False
    h = be16(w, 0)
    if h == 0x1724 or h == 0x1130:
        return b(w, 2) != 0
    return b(w, 0) == 0 and b(w, 11) == 0x17 and b(w, 12) == 0x24


@njit(cache=True)
def match_citrix(w, n, sp, dp, d):
    """Citrix ICA: the "\\x7f\\x7fICA\\x00" detection string, or CGP "\\x1aCGP/01"."""
    if n >= 6 and be16(w, 0) == 0x7F7F and at(w, 2, 4) == _ICA:
        return True
    return n >= 8 and b(w, 0) == 0x1A and at(w, 1, 6) == _CGP_01


@njit(cache=True)
def match_rsh(w, n, sp, dp, d):
    """rsh: the client's first message is the stderr port number as a
    NUL-terminated decimal string, to TCP 514 (a few digits: the port
    narrows it)."""
    if dp != 514 or n < 2 or n > 6 or b(w, n - 1) != 0:
        return False
    return digits(w, 0, n - 1)


@njit(cache=True)
def match_xdmcp(w, n, sp, dp, d):
    """XDMCP: version 1, an opcode of 1..14 and a length equal to the rest
    of the datagram."""
    return n >= 6 and be16(w, 0) == 1 and 1 <= be16(w, 2) <= 14 and be16(w, 4) == n - 6
