"""The IMAP side of the poller: connect to a mailbox and turn server failures into words."""

from __future__ import annotations

import contextlib
import imaplib
import socket
import ssl
from collections.abc import Callable
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from imapclient.imap4 import IMAP4WithTimeout
from imapclient.tls import IMAP4_TLS

from campaign.models import ImapMailbox, ImapSecurity
from campaign.secret_box import SecretUnreadable, decrypt_secret
from campaign.tls import (
    TlsFailure,
    TlsProblem,
    client_context,
    detail_of,
    is_loopback_host,
    mailbox_paused,
    problem_of,
)

__all__ = ["CLEAR_TEXT_REFUSED", "MailboxUnavailable", "connect", "is_loopback_host"]

TIMEOUT_SECONDS = 30


# Completes "Security: …" in the form's error and "host:port: security …" in a poll's.
CLEAR_TEXT_REFUSED = (
    "none sends the password in clear, so it is allowed only for a server on this machine "
    "(127.0.0.1, ::1, localhost): choose ssl or starttls"
)


class MailboxUnavailable(Exception):
    """The server could not be reached, refused the login or the folder: worth retrying later.

    Unless `pauses`: a secure connection could not be made (a certificate refused, no
    STARTTLS), which waiting does not fix, so the mailbox stops being polled; `reason` is
    then a lazy string, read in each reader's language.
    """

    def __init__(
        self, reason: str | LazyString, *, pauses: bool = False, phase: str = "connect"
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.pauses = pauses
        # Where it failed: connect, tls, login (a connection test reports it step by step).
        self.phase = "tls" if pauses else phase

    def __str__(self) -> str:
        return str(self.reason)


def _said(error: BaseException) -> str:
    """What the server said, as text: imaplib gives its greeting as bytes."""
    said = error.args[0] if error.args else error
    if isinstance(said, bytes):
        said = said.decode("utf-8", "replace")
    return " ".join(str(said).split())[:300]


def _shut(client: IMAPClient) -> None:
    # After a failed TLS handshake the socket is already closed: closing it again raises.
    with contextlib.suppress(IMAPClientError, OSError):
        client.shutdown()


def _insecure(where: str, problem: TlsProblem, detail: str = "") -> MailboxUnavailable:
    return MailboxUnavailable(mailbox_paused(problem, where, detail), pauses=True)


class _WatchedClient(IMAPClient):
    """An IMAPClient that hands its imaplib connection to `opened` as soon as the socket is
    made, before the greeting is read: a caller's watchdog can cut a server that drips its
    answers for ever (imaplib reads until the answer ends; the timeout is per read only).
    Relies on IMAPClient._create_IMAP4 and imaplib's _create_socket (imapclient 3.x)."""

    def __init__(self, *args: Any, opened: Callable[[imaplib.IMAP4], None], **kwargs: Any):
        self._opened = opened
        super().__init__(*args, **kwargs)

    def _create_IMAP4(self) -> imaplib.IMAP4:
        opened = self._opened
        base: Any = IMAP4_TLS if self.ssl else IMAP4WithTimeout

        class Watched(base):
            def _create_socket(self, timeout: float | None = None) -> socket.socket:
                made: socket.socket = super()._create_socket(timeout)
                opened(self)
                return made

        connect_timeout = getattr(self._timeout, "connect", None)
        if self.ssl:
            return Watched(self.host, self.port, self.ssl_context, connect_timeout)
        return Watched(self.host, self.port, connect_timeout)


def connect(
    mailbox: ImapMailbox,
    *,
    timeout: float = TIMEOUT_SECONDS,
    opened: Callable[[imaplib.IMAP4], None] | None = None,
) -> IMAPClient:
    """Return a logged-in client for `mailbox`, or raise MailboxUnavailable saying why.

    `opened` is given the imaplib connection as soon as its socket exists, before the
    greeting (a caller's watchdog shuts its `sock` down at an overall deadline).
    """
    where = f"{mailbox.host}:{mailbox.port}"
    if mailbox.security == ImapSecurity.NONE.value and not is_loopback_host(mailbox.host):
        # Rows saved before the form refused this still never send a password in clear.
        # Never sent: a refusal of these settings, said under the login step.
        raise MailboxUnavailable(
            _l(
                "%(server)s: security none sends the password in clear, so it is allowed only "
                "for a server on this machine (127.0.0.1, ::1, localhost): choose ssl or starttls",
                server=where,
            ),
            phase="login",
        )
    try:
        # Before any socket is opened: a password we cannot read leaves nothing to close.
        password = decrypt_secret(mailbox.password_encrypted)
    except SecretUnreadable:
        raise MailboxUnavailable(
            _l(
                "the stored password cannot be read (was CAMPAIGN_SECRET_KEY changed?): "
                "enter it again"
            ),
            phase="password",
        ) from None
    try:
        # Only a connection that uses TLS needs the authorities (a bad CAMPAIGN_TLS_CA_FILE
        # must not stop a mailbox on this machine that uses none).
        uses_tls = mailbox.security != ImapSecurity.NONE.value
        context = client_context() if uses_tls else None
        options: dict[str, Any] = {
            "port": mailbox.port,
            "ssl": mailbox.security == ImapSecurity.SSL.value,
            "ssl_context": context,
            "timeout": timeout,
        }
        if opened is None:
            client = IMAPClient(mailbox.host, **options)
        else:
            client = _WatchedClient(mailbox.host, opened=opened, **options)
    except TlsFailure as error:
        raise _insecure(where, error.problem, error.detail) from None
    except IMAPClientError as error:
        # The greeting was not OK ("* BYE too many connections"): an outage, tried again.
        raise MailboxUnavailable(
            _l("%(server)s refused the connection: %(answer)s", server=where, answer=_said(error))
        ) from None
    except TimeoutError:
        raise MailboxUnavailable(
            _l(
                "no answer from %(server)s within %(seconds)s s",
                server=where,
                seconds=f"{timeout:g}",
            )
        ) from None
    except ssl.SSLError as error:
        problem = problem_of(error)
        if problem is not None:
            raise _insecure(where, problem, detail_of(error)) from None
        raise MailboxUnavailable(
            _l("TLS with %(server)s failed: %(error)s", server=where, error=error.reason or error)
        ) from None
    except OSError as error:
        raise MailboxUnavailable(
            _l(
                "cannot connect to %(server)s: %(error)s",
                server=where,
                error=error.strerror or error.__class__.__name__,
            )
        ) from None
    try:
        if mailbox.security == ImapSecurity.STARTTLS.value:
            if not client.has_capability("STARTTLS"):
                # Never log in without it: the password would cross the network in clear.
                _shut(client)
                raise _insecure(where, TlsProblem.NO_STARTTLS)
            client.starttls(context or client_context())
        client.login(mailbox.username, password)
    except LoginError:
        _shut(client)
        # Neither the server's text (it may echo what we sent) nor the login name (often an
        # address, and this message is logged) goes in; the mailbox page shows the login.
        raise MailboxUnavailable(
            _l("%(server)s refused the login: check the user name and password", server=where),
            phase="login",
        ) from None
    except ssl.SSLError as error:
        _shut(client)
        problem = problem_of(error)
        if problem is not None:
            raise _insecure(where, problem, detail_of(error)) from None
        raise MailboxUnavailable(
            _l(
                "STARTTLS with %(server)s failed: %(error)s",
                server=where,
                error=error.reason or error,
            ),
            phase="tls",
        ) from None
    except (IMAPClientError, OSError) as error:
        _shut(client)
        raise MailboxUnavailable(
            _l("%(server)s failed during login: %(error)s", server=where, error=error),
            phase="login",
        ) from None
    return client
