"""File transfer: FTP control (and its AUTH TLS upgrade), TFTP, rsync, git."""

from ulnet.jit import njit

from ulnet.inspect.matchers._common import at, has
from ulnet.inspect.words import b, be16, head, lit

_FTP = lit("FTP")

_K220 = lit("220 ")
_2202 = lit("220-")
_USER = lit("USER ")
_AUTH = lit("AUTH ")
_TLS = lit("TLS")
_SSL = lit("SSL")
_RSYNCD = lit("@RSYNCD:")
_GIT = lit("git-")
_UPLOAD = lit("upload")
_RECEIV = lit("receiv")


@njit(cache=True)
def match_ftp_control(w, n, sp, dp, d):
    """FTP control: a "220" greeting that names FTP, or the client's USER on
    port 21. A bare "220" on port 21 is left open: the client's first
    command then tells plain FTP (USER) from FTPS (AUTH TLS)."""
    if n < 6:
        return False
    h4 = head(w, 4)
    if h4 == _K220 or h4 == _2202:
        return has(w, n, _FTP, 3)
    return (sp == 21 or dp == 21) and head(w, 5) == _USER


@njit(cache=True)
def match_ftps(w, n, sp, dp, d):
    """Explicit FTP over TLS: the client's "AUTH TLS" / "AUTH SSL" (RFC 4217;
    SMTP and POP3 ask for TLS with STARTTLS/STLS instead)."""
    if n < 10 or head(w, 5) != _AUTH:
        return False
    t = at(w, 5, 3)
    return t == _TLS or t == _SSL


@njit(cache=True)
def match_tftp(w, n, sp, dp, d):
    """TFTP: read/write request (a printable file name, port 69), a full
    512-byte data block, an acknowledgement (exactly 4 bytes), an error
    with a code of 0..8, or an option acknowledgement."""
    if n < 4 or b(w, 0) != 0:
        return False
    op = b(w, 1)
    if op == 1 or op == 2:
        c = b(w, 2)
        return (sp == 69 or dp == 69) and 0x21 <= c < 0x7F and n <= 512
    if op == 3:
        return n == 516
    if op == 4:
        return n == 4
    if op == 5:
        return n >= 5 and be16(w, 2) <= 8 and (n == 5 or 0x20 <= b(w, 4) < 0x7F)
    if op == 6:                          # option acknowledgement: "blksize", "tsize", ...
        return n >= 8 and 0x61 <= b(w, 2) <= 0x7A and 0x61 <= b(w, 3) <= 0x7A
    return False


@njit(cache=True)
def match_rsync(w, n, sp, dp, d):
    """rsync daemon greeting "@RSYNCD: "."""
    return n >= 12 and head(w, 8) == _RSYNCD and b(w, 8) == 0x20


@njit(cache=True)
def _hex(c):
    return 0x30 <= c <= 0x39 or 0x61 <= c <= 0x66


@njit(cache=True)
def match_git(w, n, sp, dp, d):
    """git:// protocol request: a 4-hex-digit pkt-line length, then
    git-upload-pack / git-receive-pack / git-upload-archive."""
    if n < 20 or not (_hex(b(w, 0)) and _hex(b(w, 1)) and _hex(b(w, 2)) and _hex(b(w, 3))):
        return False
    if at(w, 4, 4) != _GIT:
        return False
    t = at(w, 8, 6)
    return t == _UPLOAD or t == _RECEIV
