"""Testing an SMTP account or an IMAP mailbox says step by step what worked, and sends nothing.

Real servers: aiosmtpd (tests/fault_smtp.py) with certificates from a CA made for the run
(tests/tls_ca.py), and Dovecot. Good settings, a wrong password, a port nobody listens on,
a certificate the client refuses, a relay that refuses the From, a folder that is missing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, ImapMailbox, Role, SmtpAccount
from campaign.services import mailboxes
from campaign.services.connection_tests import (
    check_mailbox_connection,
    check_smtp_connection,
)
from campaign.services.smtp_accounts import AccountFields, create_account
from tests import servers
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


def _account(server_port: int, password: str = PASSWORD, security: str = "starttls") -> SmtpAccount:
    account = create_account(
        AccountFields(
            name=f"Relay {uuid.uuid4().hex[:6]}",
            host="127.0.0.1",
            port=server_port,
            security=security,
            username=USER,
            password=password,
        )
    )
    db.session.commit()
    return account


def _steps(report: Any) -> list[tuple[str, bool, str]]:
    return [(step.name, step.is_ok, step.detail) for step in report.steps]


def test_a_good_smtp_account_passes_every_step_and_nothing_is_sent(
    app: Flask, relay: FaultSmtpServer
) -> None:
    account = _account(relay.port)
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
    report = check_smtp_connection(_account(relay.port, password="wrong-password-9"), "")
    steps = _steps(report)
    assert not report.is_ok
    assert steps[-1][0] == f"Log in as {USER}" and steps[-1][1] is False
    assert "the server refused the login: 535" in steps[-1][2]
    assert all(ok for _name, ok, _detail in steps[:-1])  # connected and secured first


def test_a_port_nobody_listens_on_says_so(app: Flask) -> None:
    report = check_smtp_connection(_account(servers.free_port()), "")
    name, ok, detail = _steps(report)[-1]
    assert name.startswith("Connect to 127.0.0.1:") and not ok
    assert "nothing answers on 127.0.0.1:" in detail and "connection refused" in detail


def test_a_certificate_for_another_host_is_named_and_no_password_is_sent(
    app: Flask, certificates: dict[str, Any]
) -> None:
    server = FaultSmtpServer(starttls=certificates["wrong_host"].server_context()).start()
    try:
        server.require_auth(USER, PASSWORD)
        report = check_smtp_connection(_account(server.port), "")
        name, ok, detail = _steps(report)[-1]
        assert name == "Secure the connection (STARTTLS)" and not ok
        assert f"the certificate of 127.0.0.1:{server.port} is for another host name" in detail
        assert server.logins == []
    finally:
        server.stop()


def test_a_relay_refusing_the_from_is_quoted(app: Flask, relay: FaultSmtpServer) -> None:
    relay.fail(553, "5.7.1 Sender address rejected: not owned by user office", stage="mail")
    report = check_smtp_connection(_account(relay.port), "someone@elsewhere.example")
    name, ok, detail = _steps(report)[-1]
    assert name == "Ask the server to accept mail from someone@elsewhere.example" and not ok
    assert detail == (
        "the relay refuses this From: 553 5.7.1 Sender address rejected: not owned by user office"
    )
    assert relay.messages == []


def test_the_smtp_page_and_the_command_test_an_account(
    app: Flask, client: FlaskClient, login: Any, relay: FaultSmtpServer
) -> None:
    account = _account(relay.port)
    login(Role.ADMIN)
    listing = client.get("/smtp-accounts/").get_data(as_text=True)
    assert f"/smtp-accounts/{account.id}/test" in listing
    response = client.post(
        f"/smtp-accounts/{account.id}/test", data={"sender": "office@example.org"}
    )
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "The connection works; no message was sent." in page
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
