"""Polling IMAP over TLS as production does: IMAPS (993) and STARTTLS (143), verified.

Real Dovecot servers (tests/servers.py) with certificates from a CA made for the run
(tests/tls_ca.py), trusted through CAMPAIGN_TLS_CA_FILE. An expired certificate, one for
another host name, one from an unknown CA and a server without STARTTLS each stop the
mailbox's polling with the reason in words (English and French, on the mailboxes page and
in the "Poll now" answer), and Dovecot's own log shows that no login was ever attempted.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import force_locale

from campaign.extensions import db
from campaign.models import ImapMailbox, Role
from campaign.scheduling.stored_text import read
from campaign.services.replies import mailboxes
from tests import servers
from tests.tls_ca import CertificateAuthority


@pytest.fixture(scope="module")
def tls_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Four Dovecots: a good certificate, an expired one, another host's, an unknown CA's."""
    ca = CertificateAuthority.create(tmp_path_factory.mktemp("tls-ca"))
    stranger = CertificateAuthority.create(tmp_path_factory.mktemp("other-ca"), "Nobody's CA")
    certificates = {
        "good": ca.issue("good"),
        "expired": ca.issue("expired", expired=True),
        "wrong_host": ca.issue("wrong-host", hosts=("mail.example.net",)),
        "untrusted": stranger.issue("stranger"),
    }
    started: dict[str, Any] = {"ca": ca}
    try:
        for name, certificate in certificates.items():
            started[name] = servers.start_dovecot(tls=(certificate.cert_file, certificate.key_file))
        yield started
    finally:
        # All four told to stop first: each Dovecot takes a second to shut down.
        for name in certificates:
            if name in started:
                started[name].process.terminate()
        for name in certificates:
            if name in started:
                started[name].stop()


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], tls_servers: dict[str, Any]) -> dict[str, Any]:
    return {**app_overrides, "TLS_CA_FILE": str(tls_servers["ca"].ca_file)}


def _mailbox(server: servers.DovecotServer, security: str) -> ImapMailbox:
    user = f"replies{uuid.uuid4().hex[:8]}"
    server.add_user(user, f"{user}-secret")
    mailbox = mailboxes.add_mailbox(
        f"Replies {user[-8:]}",
        host=server.host,
        port=server.tls_port if security == "ssl" and server.tls_port else server.port,
        security=security,
        username=user,
        password=f"{user}-secret",
    )
    db.session.commit()
    return mailbox


def _logins(server: servers.DovecotServer, user: str, *, settle: float = 0.0) -> list[str]:
    """Dovecot's log lines of `user`'s logins (the fixture's own set-up logins included)."""
    time.sleep(settle)  # the log process writes a moment after the login
    log = server.directory / "dovecot.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return [line for line in text.splitlines() if f"Login: user=<{user}>" in line]


def _message() -> bytes:
    message = EmailMessage()
    message["From"] = "Ambassador <amb@embassy.example>"
    message["To"] = "office@hro.example.org"
    message["Subject"] = "Re: Release the defenders"
    message["Message-ID"] = f"<{uuid.uuid4().hex}@embassy.example>"
    message.set_content("We have read your letter.")
    return bytes(message)


def _read(stored: str, language: str) -> str:
    with force_locale(language):
        return read(stored)


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_a_mailbox_is_polled_over_tls_from_a_server_a_private_ca_vouches_for(
    app: Flask, tls_servers: dict[str, Any], security: str
) -> None:
    server = tls_servers["good"]
    mailbox = _mailbox(server, security)
    server.deliver(mailbox.username, _message())
    before = len(_logins(server, mailbox.username, settle=0.2))
    report = mailboxes.poll_mailbox(mailbox, commit=db.session.commit)
    assert report.errors == [] and report.fetched == 1
    assert mailbox.is_enabled and mailbox.last_error == ""
    # Dovecot saw the poller's login over TLS (its log says "TLS" for IMAPS and STARTTLS).
    deadline = time.monotonic() + 5
    while len(_logins(server, mailbox.username)) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    (login,) = _logins(server, mailbox.username)[before:]
    assert ", TLS," in login


@pytest.mark.parametrize(
    ("certificate", "security", "english", "french"),
    [
        ("expired", "ssl", "has expired", "a expiré"),
        ("expired", "starttls", "has expired", "a expiré"),
        ("wrong_host", "ssl", "is for another host name", "est établi pour un autre nom d’hôte"),
        ("untrusted", "starttls", "is not signed by an authority", "n’est pas signé par une"),
    ],
)
def test_a_refused_certificate_pauses_the_mailbox_before_the_password_is_sent(
    app: Flask,
    tls_servers: dict[str, Any],
    security: str,
    certificate: str,
    english: str,
    french: str,
) -> None:
    server = tls_servers[certificate]
    mailbox = _mailbox(server, security)
    server.deliver(mailbox.username, _message())
    before = _logins(server, mailbox.username, settle=0.2)
    report = mailboxes.poll_mailbox(mailbox, commit=db.session.commit)
    db.session.refresh(mailbox)
    assert not mailbox.is_enabled  # not polled again until staff enable it
    assert report.fetched == 0 and len(report.errors) == 1
    where = f"{server.host}:{mailbox.port}"
    in_english = _read(mailbox.last_error, "en")
    assert f"the certificate of {where} {english}" in in_english
    assert "the password was not sent" in in_english
    assert "enable the mailbox again" in in_english
    in_french = _read(mailbox.last_error, "fr")
    assert where in in_french and french in in_french
    assert _logins(server, mailbox.username, settle=0.2) == before
    assert mailbox not in mailboxes.due_mailboxes()


def test_a_server_without_starttls_pauses_the_mailbox_before_any_login(
    app: Flask, imap_server: servers.DovecotServer
) -> None:
    # The shared Dovecot speaks clear text only: it offers no STARTTLS.
    mailbox = _mailbox(imap_server, "starttls")
    before = _logins(imap_server, mailbox.username, settle=0.2)
    report = mailboxes.poll_mailbox(mailbox, commit=db.session.commit)
    db.session.refresh(mailbox)
    assert not mailbox.is_enabled
    where = f"{imap_server.host}:{imap_server.port}"
    assert report.errors == [
        f"{where} does not offer STARTTLS; the password was not sent. Polling is paused: "
        "enable the mailbox again once the server or its security setting is fixed"
    ]
    assert "ne propose pas STARTTLS" in _read(mailbox.last_error, "fr")
    assert _logins(imap_server, mailbox.username, settle=0.2) == before


def test_poll_now_and_the_mailboxes_page_say_why_polling_stopped(
    app: Flask, client: FlaskClient, login: Any, tls_servers: dict[str, Any]
) -> None:
    login(Role.ADMIN)
    server = tls_servers["expired"]
    mailbox = _mailbox(server, "ssl")
    where = f"{server.host}:{server.tls_port}"
    page = client.post(f"/mailboxes/{mailbox.id}/poll", follow_redirects=True).get_data(
        as_text=True
    )
    assert f"Poll failed: the certificate of {where} has expired" in page
    assert f"{mailbox.name} is not polled:" in page
    # The stored reason is read in the reader's language, not kept in the poller's.
    french = client.get("/mailboxes/", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert f"le certificat de {where} a expiré" in french


def test_a_bad_ca_file_does_not_stop_a_mailbox_that_uses_no_tls(
    app: Flask, imap_server: servers.DovecotServer, tmp_path: Path
) -> None:
    # A server on this machine in clear text needs no authority: a CA file set wrong
    # after start-up (start-up refuses it) must not stop it.
    app.config["TLS_CA_FILE"] = str(tmp_path / "no-such-ca.pem")
    mailbox = _mailbox(imap_server, "none")
    imap_server.deliver(mailbox.username, _message())
    report = mailboxes.poll_mailbox(mailbox, commit=db.session.commit)
    assert report.errors == [] and report.fetched == 1
    assert mailbox.is_enabled and mailbox.last_error == ""


@pytest.fixture
def bye_server() -> Iterator[tuple[str, int]]:
    """A server that greets every connection with "* BYE" (too busy) and hangs up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            with connection:
                connection.sendall(b"* BYE Too many connections from your address\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    host, port = listener.getsockname()[:2]
    yield str(host), int(port)
    # shutdown() wakes the thread's accept() at once; close() alone leaves it waiting.
    with contextlib.suppress(OSError):
        listener.shutdown(socket.SHUT_RDWR)
    listener.close()
    thread.join(timeout=2)


def test_a_server_that_says_bye_at_once_is_a_mailbox_failure_with_backoff(
    app: Flask, bye_server: tuple[str, int]
) -> None:
    host, port = bye_server
    mailbox = mailboxes.add_mailbox(
        "Busy", host=host, port=port, security="none", username="u", password="p"
    )
    db.session.commit()
    report = mailboxes.poll_mailbox(mailbox, commit=db.session.commit)
    db.session.refresh(mailbox)
    (error,) = report.errors
    assert f"{host}:{port}" in error and "Too many connections" in error
    assert mailbox.failures == 1 and mailbox.is_enabled
    assert mailbox.next_poll_at is not None and mailbox not in mailboxes.due_mailboxes()
    assert "Too many connections" in read(mailbox.last_error)


def test_enabling_a_paused_mailbox_clears_its_error_and_only_a_failure_shows_the_banner(
    app: Flask, client: FlaskClient, login: Any, tls_servers: dict[str, Any]
) -> None:
    login(Role.ADMIN)
    server = tls_servers["expired"]
    paused = _mailbox(server, "ssl")
    mailboxes.poll_mailbox(paused, commit=db.session.commit)
    assert f"{paused.name} is not polled:" in client.get("/mailboxes/").get_data(as_text=True)
    client.post(f"/mailboxes/{paused.id}/enabled", data={"enabled": "1"})
    db.session.expire_all()
    assert paused.is_enabled and paused.last_error == "" and paused.failures == 0
    response = client.get("/mailboxes/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert f'<tr data-name="{paused.name}"' in page  # still listed, without its banner
    assert "has expired" not in page and f"{paused.name} is not polled:" not in page

    # Disabled by staff after an ordinary failure: its last error stays in the table, but
    # no banner says polling was stopped by it.
    quiet = _mailbox(tls_servers["good"], "ssl")
    quiet.failures = 1
    quiet.last_error = "imap.example.org:993 refused the connection"
    db.session.commit()
    client.post(f"/mailboxes/{quiet.id}/enabled", data={"enabled": "0"})
    page = client.get("/mailboxes/").get_data(as_text=True)
    assert f"{quiet.name} is not polled:" not in page
    assert "refused the connection" in page  # the table's "Last error" column
