"""Mail and news: SMTP, POP3, IMAP, NNTP (Usenet).

Text protocols whose server speaks first: the greeting decides the flow.
"220" opens SMTP and FTP alike (FTP is matched first, see files.py). A
session that turns to TLS (STARTTLS, STLS) is SMTPS, POPS, IMAPS for
nDPI: the inspector's upgrade pass (ulnet.inspect.UPGRADES) renames the
flow when the TLS handshake follows.
"""

from ulnet.jit import njit

from ulnet.inspect.matchers._common import at, has, lower, upper
from ulnet.inspect.words import b, head, lit

_220S, _220D = lit("220 "), lit("220-")
_EHLO, _HELO = lit("EHLO "), lit("HELO ")
_SMTP, _smtp = lit("SMTP"), lit("smtp")

_CAPA = lit("CAPA\r")
_APOP = lit("APOP ")
_STLS = lit("STLS\r")
_USER = lit("USER ")
_AUTH = lit("AUTH ")
_AUTH2 = lit("AUTH\r")
_MODE_REA = lit("MODE REA")
_K200 = lit("200 ")
_K201 = lit("201 ")
_AUTHINFO = lit("AUTHINFO")
_STAR_OK = lit("* OK ")
_STAR_PRE = lit("* PREAUT")
_I_CAPA = lit("CAPABILI")
_I_LOGIN = lit("LOGIN ")
_I_STARTTLS = lit("STARTTLS")
_I_AUTH = lit("AUTHENTI")


@njit(cache=True)
def _smtp_port(p):
    return p == 25 or p == 465 or p == 587 or p == 2525


@njit(cache=True)
def match_smtp(w, n, sp, dp, d):
    """The client's "EHLO "/"HELO ", or the server's "220" greeting when it
    names SMTP or comes from a mail port (25, 465, 587, 2525); never on the
    FTP control port."""
    if n < 6 or sp == 21 or dp == 21:
        return False
    h5 = head(w, 5)
    if h5 == _EHLO or h5 == _HELO:
        return True
    h4 = head(w, 4)
    if h4 != _220S and h4 != _220D:
        return False
    return _smtp_port(sp) or _smtp_port(dp) or has(w, n, _SMTP, 4) or has(w, n, _smtp, 4)


_OK = lit("+OK")


@njit(cache=True)
def _pop_port(p):
    return p == 110 or p == 995


@njit(cache=True)
def match_pop3(w, n, sp, dp, d):
    """The server's "+OK" greeting, the client's CAPA/APOP/STLS, or
    USER/AUTH on the POP3 port (USER alone is FTP's too)."""
    if n < 5:
        return False
    if head(w, 3) == _OK:
        c = b(w, 3)
        return c == 0x20 or c == 0x0D
    h5 = head(w, 5)
    if h5 == _CAPA or h5 == _APOP or h5 == _STLS:
        return True
    if h5 == _USER or h5 == _AUTH or h5 == _AUTH2:
        return _pop_port(sp) or _pop_port(dp)
    return False


_NNTP = lit("NNTP")


@njit(cache=True)
def match_usenet(w, n, sp, dp, d):
    """NNTP: the server's "200 "/"201 " greeting naming NNTP or from port
    119/563, or the client's MODE READER / AUTHINFO."""
    if n < 6:
        return False
    h4 = head(w, 4)
    if h4 == _K200 or h4 == _K201:
        return sp == 119 or sp == 563 or dp == 119 or dp == 563 or has(w, n, _NNTP, 4)
    if head(w, 8) == _MODE_REA:
        return True
    return head(w, 8) == _AUTHINFO and b(w, 8) == 0x20


@njit(cache=True)
def match_imap(w, n, sp, dp, d):
    """IMAP: the server's "* OK " / "* PREAUTH" greeting, or a client
    command with its tag: CAPABILITY, LOGIN, STARTTLS, AUTHENTICATE."""
    if n < 6:
        return False
    if head(w, 5) == _STAR_OK or (n >= 10 and head(w, 8) == _STAR_PRE and b(w, 8) == 0x48):
        return True
    k = 0
    while k < 12:
        c = b(w, k)
        if not (lower(c) or upper(c) or 0x30 <= c <= 0x39 or c == 0x2E):
            break
        k += 1
    if k == 0 or k == 12 or b(w, k) != 0x20:
        return False
    k += 1
    return at(w, k, 8) == _I_CAPA or at(w, k, 6) == _I_LOGIN or at(w, k, 8) == _I_STARTTLS or at(w, k, 8) == _I_AUTH
