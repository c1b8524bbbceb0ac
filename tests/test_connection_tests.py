"""Testing an SMTP account or an IMAP mailbox says step by step what worked, and sends nothing.

Real servers: aiosmtpd (tests/fault_smtp.py) with certificates from a CA made for the run
(tests/tls_ca.py), and Dovecot. Good settings, a wrong password, a port nobody listens on,
a certificate the client refuses, a relay that refuses the From, a folder that is missing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import force_locale
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, ImapMailbox, Role
from campaign.services.replies import mailboxes
from campaign.services.sending import connection_tests
from campaign.services.sending.connection_tests import (
    check_mailbox_connection,
    check_smtp_connection,
)
from campaign.services.sending.smtp_accounts import AccountFields, create_account
from tests import servers
from tests.factories import SmtpAccountFactory
from tests.fault_smtp import FaultSmtpServer
from tests.tls_ca import CertificateAuthority

USER, PASSWORD = "office", "relay-password-7Qx"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    ca = CertificateAuthority.create(tmp_path_factory.mktemp("tls-ca"))
    return {
        "ca": ca,
        "good": ca.issue("good"),
        "wrong_host": ca.issue("wrong-host", hosts=("mail.example.net",)),
    }


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], certificates: dict[str, Any]) -> dict[str, Any]:
    return {**app_overrides, "TLS_CA_FILE": str(certificates["ca"].ca_file)}


@pytest.fixture
def relay(certificates: dict[str, Any]) -> Iterator[FaultSmtpServer]:
    server = FaultSmtpServer(starttls=certificates["good"].server_context()).start()
    server.require_auth(USER, PASSWORD)
    yield server
    server.stop()


class RelayAccountFactory(SmtpAccountFactory):
    """An account with the login the `relay` fixture requires."""

    username = USER
    password = PASSWORD


def _steps(report: Any) -> list[tuple[str, bool, str]]:
    return [(step.name, step.is_ok, step.detail) for step in report.steps]


def test_a_good_smtp_account_passes_every_step_and_nothing_is_sent(
    app: Flask, relay: FaultSmtpServer
) -> None:
    account = RelayAccountFactory(server=relay, commit=True)
    report = check_smtp_connection(account, "office@example.org")
    db.session.commit()
    names = [name for name, _ok, _detail in _steps(report)]
    assert names == [
        "Look up 127.0.0.1",
        f"Connect to 127.0.0.1:{relay.port}",
        "Secure the connection (STARTTLS)",
        f"Log in as {USER}",
        "Ask the server to accept mail from office@example.org",
    ]
    assert report.is_ok, _steps(report)
    assert relay.logins == [USER]
    assert relay.messages == []  # MAIL FROM then RSET: no recipient, no message
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "smtp_account.test")
    ).one()
    assert event.detail["ok"] is True
    assert PASSWORD not in json.dumps(event.detail)


def test_a_wrong_password_says_the_login_was_refused(app: Flask, relay: FaultSmtpServer) -> None:
    report = check_smtp_connection(
        RelayAccountFactory(server=relay, password="wrong-password-9", commit=True), ""
    )
    steps = _steps(report)
    assert not report.is_ok
    assert steps[-1][0] == f"Log in as {USER}" and steps[-1][1] is False
    assert "the server refused the login: 535" in steps[-1][2]
    assert all(ok for _name, ok, _detail in steps[:-1])  # connected and secured first


def test_a_port_nobody_listens_on_says_so(app: Flask) -> None:
    report = check_smtp_connection(RelayAccountFactory(port=servers.free_port(), commit=True), "")
    name, ok, detail = _steps(report)[-1]
    assert name.startswith("Connect to 127.0.0.1:") and not ok
    assert "nothing answers on 127.0.0.1:" in detail and "connection refused" in detail


def test_a_certificate_for_another_host_is_named_and_no_password_is_sent(
    app: Flask, certificates: dict[str, Any]
) -> None:
    server = FaultSmtpServer(starttls=certificates["wrong_host"].server_context()).start()
    try:
        server.require_auth(USER, PASSWORD)
        report = check_smtp_connection(RelayAccountFactory(server=server, commit=True), "")
        name, ok, detail = _steps(report)[-1]
        assert name == "Secure the connection (STARTTLS)" and not ok
        assert f"the certificate of 127.0.0.1:{server.port} is for another host name" in detail
        assert server.logins == []
    finally:
        server.stop()


def test_a_relay_refusing_the_from_is_quoted(app: Flask, relay: FaultSmtpServer) -> None:
    relay.fail(553, "5.7.1 Sender address rejected: not owned by user office", stage="mail")
    report = check_smtp_connection(
        RelayAccountFactory(server=relay, commit=True), "someone@elsewhere.example"
    )
    name, ok, detail = _steps(report)[-1]
    assert name == "Ask the server to accept mail from someone@elsewhere.example" and not ok
    assert detail == (
        "the relay refuses this From: 553 5.7.1 Sender address rejected: not owned by user office"
    )
    assert relay.messages == []


def test_the_smtp_page_and_the_command_test_an_account(
    app: Flask, client: FlaskClient, login: Any, relay: FaultSmtpServer
) -> None:
    account = RelayAccountFactory(server=relay, commit=True)
    login(Role.ADMIN)
    listing = client.get("/smtp-accounts/").get_data(as_text=True)
    assert f"/smtp-accounts/{account.id}/test" in listing
    response = client.post(
        f"/smtp-accounts/{account.id}/test", data={"sender": "office@example.org"}
    )
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "The connection works; no message was sent." in page
    # The plain-text setting in words, not a label in brackets ("(None (plain text))").
    assert "secures the connection with STARTTLS" in page
    plain = RelayAccountFactory(server=relay, security="none", commit=True)
    form = client.get(f"/smtp-accounts/{plain.id}/test").get_data(as_text=True)
    assert "without encryption (plain text)" in form and "(None (" not in form
    assert "Ask the server to accept mail from office@example.org" in page
    assert PASSWORD not in page

    runner = app.test_cli_runner()
    result = runner.invoke(args=["test-smtp", account.name, "--from", "office@example.org"])
    assert result.exit_code == 0, result.output
    assert "[worked] Log in as office" in result.output
    bad = runner.invoke(args=["test-smtp", "no such account"])
    assert bad.exit_code == 1 and "no SMTP account named no such account" in bad.output
    assert relay.messages == []


# --- IMAP -----------------------------------------------------------------------------------


def _mailbox(server: servers.DovecotServer, *, password: str = "", folder: str = "INBOX") -> Any:
    user = f"replies{uuid.uuid4().hex[:8]}"
    server.add_user(user, f"{user}-secret")
    mailbox = mailboxes.add_mailbox(
        f"Replies {user[-8:]}",
        host=server.host,
        port=server.port,
        security="none",
        username=user,
        password=password or f"{user}-secret",
        folder=folder,
    )
    db.session.commit()
    return mailbox


def test_a_good_mailbox_opens_its_folder(app: Flask, imap_server: servers.DovecotServer) -> None:
    mailbox = _mailbox(imap_server)
    report = check_mailbox_connection(mailbox)
    db.session.commit()
    assert report.is_ok, _steps(report)
    assert [name for name, _ok, _d in _steps(report)][-2:] == [
        f"Log in as {mailbox.username}",
        "Open the folder INBOX",
    ]
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "mailbox.test")).one()
    assert "secret" not in json.dumps(event.detail)


def test_mailbox_failures_name_the_step(app: Flask, imap_server: servers.DovecotServer) -> None:
    refused = check_mailbox_connection(_mailbox(imap_server, password="not-the-password"))
    assert _steps(refused)[-1][0].startswith("Log in as") and not refused.steps[-1].is_ok
    assert "refused the login" in refused.steps[-1].detail

    missing = check_mailbox_connection(_mailbox(imap_server, folder="Replies/Nowhere"))
    assert missing.steps[-1].name == "Open the folder Replies/Nowhere"
    assert "the folder Replies/Nowhere does not exist" in missing.steps[-1].detail

    moved = _mailbox(imap_server)
    moved.port = servers.free_port()
    unreachable = check_mailbox_connection(moved)
    assert "nothing answers on 127.0.0.1:" in unreachable.steps[-1].detail


def test_a_mailbox_certificate_refused_is_named(
    app: Flask, certificates: dict[str, Any], client: FlaskClient, login: Any
) -> None:
    wrong = certificates["wrong_host"]
    server = servers.start_dovecot(tls=(wrong.cert_file, wrong.key_file))
    try:
        user = f"replies{uuid.uuid4().hex[:8]}"
        server.add_user(user, "mailbox-secret-1")
        mailbox = mailboxes.add_mailbox(
            "Replies TLS",
            host=server.host,
            port=server.tls_port,
            security="ssl",
            username=user,
            password="mailbox-secret-1",
        )
        db.session.commit()
        login(Role.ADMIN)
        assert f"/mailboxes/{mailbox.id}/test" in client.get("/mailboxes/").get_data(as_text=True)
        response = client.post(f"/mailboxes/{mailbox.id}/test")
        assert response.status_code == 302
        page = client.get(response.headers["Location"]).get_data(as_text=True)
        assert "The connection does not work." in page
        assert "is for another host name" in page
        result = app.test_cli_runner().invoke(args=["test-mailbox", "Replies TLS"])
        assert result.exit_code == 1
        assert "[FAILED] Connect to" not in result.output  # it connected; TLS failed
        assert "is for another host name" in result.output
        assert db.session.get(ImapMailbox, mailbox.id) is not None
    finally:
        server.stop()


# --- bounded time, bad From, no secrets (review) ----------------------------------------------


class _DrippingServer:
    """A server that greets, then answers by dripping a continuation line every 0.2 s and
    never ends its answer (for 8 s at most, then it hangs up)."""

    def __init__(self, greeting: bytes, drip: bytes, *, on_command: bool = False) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._greeting, self._drip, self._on_command = greeting, drip, on_command
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by stop()
                return
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.sendall(self._greeting)
            if self._on_command:
                conn.recv(4096)
            for _n in range(40):
                if self._stop.wait(0.2):
                    return
                conn.sendall(self._drip)

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()


class _PlainSmtp(_DrippingServer):
    """An old SMTP server: EHLO without SMTPUTF8, 250 to everything else."""

    def __init__(self) -> None:
        self.heard: list[bytes] = []
        super().__init__(b"", b"")

    def _talk(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError), conn.makefile("rb") as lines:
            conn.sendall(b"220 old.example.org ready\r\n")
            for line in lines:
                self.heard.append(line)
                conn.sendall(b"221 bye\r\n" if line.startswith(b"QUIT") else b"250 ok\r\n")


def test_a_server_that_never_ends_its_answer_is_cut_at_the_deadline(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection_tests, "OVERALL_SECONDS", 1)
    smtp = _DrippingServer(b"220-slow.example.org hello\r\n", b"220-still here\r\n")
    imap = _DrippingServer(
        b"* OK [CAPABILITY IMAP4rev1] ready\r\n", b"* OK still thinking\r\n", on_command=True
    )
    try:
        report = check_smtp_connection(
            RelayAccountFactory(port=smtp.port, security="none", commit=True), "office@example.org"
        )
        name, ok, detail = _steps(report)[-1]
        assert name == f"Connect to 127.0.0.1:{smtp.port}" and not ok
        assert "did not finish within the 1 s a test may take" in detail

        user = f"replies{uuid.uuid4().hex[:8]}"
        mailbox = mailboxes.add_mailbox(
            f"Slow {user[-8:]}",
            host="127.0.0.1",
            port=imap.port,
            security="none",
            username=user,
            password="slow-secret",
        )
        db.session.commit()
        slow = check_mailbox_connection(mailbox)
        # imaplib asks CAPABILITY right after the greeting: the drip is in the connect step.
        assert slow.steps[-1].name == f"Connect to 127.0.0.1:{imap.port}", _steps(slow)
        assert not slow.steps[-1].is_ok
        assert "did not finish within the 1 s a test may take" in slow.steps[-1].detail
        assert slow.failed_code == "connect"
    finally:
        smtp.stop()
        imap.stop()


def test_a_from_that_is_not_one_plain_address_is_a_failed_step(
    app: Flask, client: FlaskClient, login: Any, relay: FaultSmtpServer
) -> None:
    account = RelayAccountFactory(server=relay, commit=True)
    broken = check_smtp_connection(account, "office@example.org\r\nRCPT TO:<x@example.net>")
    assert _steps(broken) == [
        (
            "Check the From address",
            False,
            "the From contains a line break or another control character",
        )
    ]
    two = check_smtp_connection(account, "a@example.org, b@example.org")
    assert "the From must be one plain address" in two.steps[-1].detail

    # aiosmtpd offers SMTPUTF8: the address is asked as UTF-8 (it used to raise).
    accented = check_smtp_connection(account, "josé@exämple.org")
    assert _steps(accented)[-1][:2] == ("Ask the server to accept mail from josé@exämple.org", True)
    assert relay.messages == []
    plain = _PlainSmtp()
    try:
        old = create_account(
            AccountFields(name="Old relay", host="127.0.0.1", port=plain.port, security="none")
        )
        db.session.commit()
        ascii_only = check_smtp_connection(old, "josé@exämple.org")
        name, ok, detail = _steps(ascii_only)[-1]
        assert name == "Ask the server to accept mail from josé@exämple.org" and not ok
        assert "the server does not offer SMTPUTF8: use an ASCII address" in detail
        assert not any(line.startswith(b"MAIL") for line in plain.heard)
    finally:
        plain.stop()

    login(Role.ADMIN)
    response = client.post(
        f"/smtp-accounts/{account.id}/test", data={"sender": "office@example.org\nX: y"}
    )
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "the From contains a line break" in page
    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "smtp_account.test").order_by(AuditEvent.id)
    ).all()
    assert [event.detail["failed"] for event in events] == [
        "sender",
        "sender",
        "",
        "from",
        "sender",
    ]
    result = app.test_cli_runner().invoke(args=["test-smtp", account.name, "--from", "a\rb@c.org"])
    assert result.exit_code == 1 and "the From contains a line break" in result.output


def test_no_password_in_the_audit_or_the_log_and_the_failed_step_is_a_code(
    app: Flask,
    relay: FaultSmtpServer,
    imap_server: servers.DovecotServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    check_smtp_connection(RelayAccountFactory(server=relay, commit=True), "office@example.org")
    check_smtp_connection(
        RelayAccountFactory(server=relay, password="wrong-password-9", commit=True), ""
    )
    mailbox = _mailbox(imap_server)
    check_mailbox_connection(mailbox)
    check_mailbox_connection(_mailbox(imap_server, password="not-the-password"))
    db.session.commit()
    events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    details = [event.detail for event in events if event.action.endswith(".test")]
    assert [detail["failed"] for detail in details] == ["", "login", "", "login"]
    for secret in (PASSWORD, "wrong-password-9", f"{mailbox.username}-secret", "not-the-password"):
        assert secret not in json.dumps(details)
        assert secret not in caplog.text


def test_an_unreadable_mailbox_password_is_its_own_step_and_failures_are_translated(
    app: Flask, imap_server: servers.DovecotServer
) -> None:
    mailbox = _mailbox(imap_server)
    mailbox.password_encrypted = "not-a-sealed-secret"
    report = check_mailbox_connection(mailbox)
    assert [(s.name, s.is_ok, s.code) for s in report.steps][1:] == [
        ("Read the stored password", False, "password")
    ]
    moved = _mailbox(imap_server)
    moved.port = servers.free_port()
    with force_locale("fr"):
        unreachable = check_mailbox_connection(moved)
    assert unreachable.steps[-1].code == "connect"
    assert "connection refused" not in unreachable.steps[-1].detail.lower()
    assert unreachable.steps[-1].detail.startswith("rien ne répond")
