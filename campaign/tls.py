"""TLS to the mail servers this program connects to: whom it trusts, and why a server was refused.

SMTP (campaign/smtp.py) and IMAP (campaign/inbound/imap.py) build their contexts here: the
system's certificate authorities, plus those of CAMPAIGN_TLS_CA_FILE when an installation
runs its own (a private relay, a test CA). Verification is never turned off. A server whose
certificate is refused, or that does not offer the STARTTLS the settings ask for, stops the
work (a campaign pauses, a mailbox stops being polled) with the reason in words: waiting
would not fix it, and it may be someone in the middle.
"""

from __future__ import annotations

import enum
import ipaddress
import ssl

from flask import current_app, has_app_context
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString


class TlsProblem(enum.StrEnum):
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    WRONG_HOST = "wrong_host"
    UNTRUSTED = "untrusted"
    REFUSED = "refused"  # any other reason OpenSSL refused the certificate
    NO_STARTTLS = "no_starttls"
    STARTTLS_REFUSED = "starttls_refused"  # offered, but the command got a 5xx reply
    HANDSHAKE = "handshake"  # no TLS spoken on that port, or no protocol in common
    CA_FILE = "ca_file"  # CAMPAIGN_TLS_CA_FILE cannot be read
    # Security "none" with a login to a server on another machine: the password would cross
    # the network in clear, so nothing is even connected.
    CLEAR_TEXT = "clear_text"


class TlsFailure(Exception):
    """A secure connection could not be made; `problem` says why, `detail` is OpenSSL's text."""

    def __init__(self, problem: TlsProblem, detail: str = "") -> None:
        super().__init__(f"{problem.value}: {detail}" if detail else problem.value)
        self.problem = problem
        self.detail = detail


# OpenSSL's X509_V_ERR_* codes.
_BY_VERIFY_CODE = {
    9: TlsProblem.NOT_YET_VALID,
    10: TlsProblem.EXPIRED,
    2: TlsProblem.UNTRUSTED,  # unable to get issuer certificate
    18: TlsProblem.UNTRUSTED,  # self-signed
    19: TlsProblem.UNTRUSTED,  # self-signed certificate in the chain
    20: TlsProblem.UNTRUSTED,  # unable to get local issuer certificate
    21: TlsProblem.UNTRUSTED,  # unable to verify the first certificate
    62: TlsProblem.WRONG_HOST,  # host name mismatch
    64: TlsProblem.WRONG_HOST,  # IP address mismatch
}


def is_loopback_host(host: str) -> bool:
    """Whether `host` names this machine, where a clear-text login crosses no network."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def client_context(ca_file_setting: str = "TLS_CA_FILE") -> ssl.SSLContext:
    """A verifying client context: the system's authorities and CAMPAIGN_TLS_CA_FILE's (or
    those of the setting named, e.g. WEBHOOK_CA_FILE)."""
    context = ssl.create_default_context()
    ca_file = str(current_app.config.get(ca_file_setting) or "") if has_app_context() else ""
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as error:
            detail = getattr(error, "strerror", None) or getattr(error, "reason", None)
            raise TlsFailure(TlsProblem.CA_FILE, f"{ca_file}: {detail or error}") from None
    return context


def problem_of(error: BaseException) -> TlsProblem | None:
    """What a TLS error says about the server; None for a connection that merely dropped."""
    if isinstance(error, TlsFailure):
        return error.problem
    if isinstance(error, ssl.SSLCertVerificationError):
        return _BY_VERIFY_CODE.get(error.verify_code, TlsProblem.REFUSED)
    if isinstance(error, ssl.SSLEOFError | ssl.SSLZeroReturnError | ssl.SSLSyscallError):
        return None  # the peer went away mid-handshake: an outage, tried again later
    if isinstance(error, ssl.SSLError):
        return TlsProblem.HANDSHAKE
    return None


def detail_of(error: BaseException) -> str:
    """OpenSSL's own words for the log and the ledger: "certificate has expired"."""
    if isinstance(error, TlsFailure):
        return error.detail
    if isinstance(error, ssl.SSLCertVerificationError):
        return str(error.verify_message or error.reason or error)
    if isinstance(error, ssl.SSLError):
        return str(error.reason or error)
    return str(error)


def explain(problem: TlsProblem, server: str, detail: str = "") -> LazyString:
    """Why the connection to `server` ("host:port") was not made, in the reader's language."""
    if problem == TlsProblem.EXPIRED:
        return _l("the certificate of %(server)s has expired", server=server)
    if problem == TlsProblem.NOT_YET_VALID:
        return _l(
            "the certificate of %(server)s is not valid yet (is this machine's clock right?)",
            server=server,
        )
    if problem == TlsProblem.WRONG_HOST:
        return _l("the certificate of %(server)s is for another host name", server=server)
    if problem == TlsProblem.UNTRUSTED:
        return _l(
            "the certificate of %(server)s is not signed by an authority this installation "
            "trusts (a private one can be added with CAMPAIGN_TLS_CA_FILE)",
            server=server,
        )
    if problem == TlsProblem.NO_STARTTLS:
        return _l("%(server)s does not offer STARTTLS", server=server)
    if problem == TlsProblem.STARTTLS_REFUSED:
        return _l("%(server)s refused STARTTLS (%(detail)s)", server=server, detail=detail)
    if problem == TlsProblem.CLEAR_TEXT:
        return _l(
            "the SMTP account's security is “none” but it logs in to %(server)s, which is not "
            "this machine: the password would cross the network in clear",
            server=server,
        )
    if problem == TlsProblem.HANDSHAKE:
        return _l(
            "no secure connection could be made with %(server)s (%(detail)s): check the "
            "security setting (SSL or STARTTLS) and the port",
            server=server,
            detail=detail,
        )
    if problem == TlsProblem.CA_FILE:
        return _l(
            "the certificate authorities of CAMPAIGN_TLS_CA_FILE cannot be read (%(detail)s)",
            detail=detail,
        )
    return _l(
        "the certificate of %(server)s was refused (%(detail)s)", server=server, detail=detail
    )


def campaign_paused(problem: TlsProblem, server: str, detail: str = "") -> LazyString:
    """A campaign's pause reason for a TLS failure with its SMTP server."""
    if problem == TlsProblem.CLEAR_TEXT:
        return _l(
            "%(problem)s. Nothing was sent. Choose STARTTLS or SSL for the account (the default "
            "account: CAMPAIGN_MAIL_USE_TLS or CAMPAIGN_MAIL_USE_SSL), or a relay that needs no "
            "login, then resume",
            problem=explain(problem, server, detail),
        )
    return _l(
        "%(problem)s; no letter goes out in clear text. Resume once the server or the SMTP "
        "account's security setting is fixed",
        problem=explain(problem, server, detail),
    )


def mailbox_paused(problem: TlsProblem, server: str, detail: str = "") -> LazyString:
    """A mailbox's reason for no longer being polled after a TLS failure."""
    return _l(
        "%(problem)s; the password was not sent. Polling is paused: enable the mailbox again "
        "once the server or its security setting is fixed",
        problem=explain(problem, server, detail),
    )
