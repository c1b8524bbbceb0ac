"""No password crosses the network in clear text to an SMTP server (decision 0036).

Security "none" with a login is allowed only for a server on this machine (127.0.0.1, ::1,
localhost), as for IMAP mailboxes: the SMTP accounts page refuses to save anything else, a
campaign whose account (the default CAMPAIGN_MAIL_* one, or a row saved before the rule)
would log in in clear pauses before it connects, and a single message (a test letter, a
notice) is refused with the reason. A relay that takes mail without a login (it trusts
this machine's address) may still be used in clear text.

The "remote" server is a real SMTP server listening on an address of this machine that is
not loopback, so the client treats it as another machine and the server can tell whether
a login or a letter ever reached it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import force_locale
from sqlalchemy import select

from campaign.extensions import db
from campaign.mail import SendError, send_message
from campaign.models import CampaignStatus, Role, SmtpAccount, User
from campaign.scheduling.stored_text import read
from campaign.secret_box import encrypt_secret
from tests.fault_smtp import FaultSmtpServer
from tests.test_tls_smtp import launch_letters, send_letters, statuses

USER, PASSWORD = "office", "relay-password-in-clear"
Login = Callable[[Role], User]


def _address_off_loopback() -> str:
    """An address of this machine that is not loopback: a stand-in for another machine."""
    found: list[str] = []
    with (
        contextlib.suppress(OSError),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe,
    ):
        probe.connect(("192.0.2.123", 9))  # a UDP "connect" sends nothing; it picks a route
        found.append(probe.getsockname()[0])
    with contextlib.suppress(OSError):
        found.extend(socket.gethostbyname_ex(socket.gethostname())[2])
    for address in found:
        ip = ipaddress.ip_address(address)
        if ip.is_loopback or ip.is_unspecified:
            continue
        with contextlib.suppress(OSError), socket.socket() as sock:
            sock.bind((address, 0))
            return address
    pytest.skip("this machine has no address other than loopback to listen on")


@pytest.fixture
def remote_server() -> Iterator[FaultSmtpServer]:
    server = FaultSmtpServer()
    server.host = _address_off_loopback()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    return {
        **app_overrides,
        "PUBLIC_URL": "https://campaign.example.org",
        "QUEUE_NAME": f"test-{uuid.uuid4().hex[:12]}",
    }


def _use(app: Flask, server: FaultSmtpServer, *, username: str = USER) -> None:
    """The default account in clear text (no CAMPAIGN_MAIL_USE_TLS/SSL), pointed at `server`."""
    app.config.update(
        MAIL_SERVER=server.host,
        MAIL_PORT=server.port,
        MAIL_USE_TLS=False,
        MAIL_USE_SSL=False,
        MAIL_USERNAME=username,
        MAIL_PASSWORD=PASSWORD if username else "",
        MAIL_TIMEOUT=5,
    )


def _send_one() -> None:
    """One message through the default account, as a test letter or a notice goes."""
    message = b"Subject: test\r\n\r\nHi\r\n"
    send_message(message, sender="office@example.org", recipients=["a@example.net"])


def _read(stored: str, language: str) -> str:
    with force_locale(language):
        return read(stored)


def _form(**changes: str) -> dict[str, str]:
    form = {
        "name": "Office relay",
        "host": "smtp.example.org",
        "port": "25",
        "security": "none",
        "username": "office@rights.example",
        "password": PASSWORD,
        "per_second": "",
        "per_minute": "",
        "per_day": "",
        "max_connections": "",
    }
    form.update(changes)
    return form


def test_an_smtp_account_that_would_log_in_in_clear_to_another_machine_is_not_saved(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    login(Role.ADMIN)
    response = client.post("/smtp-accounts/new", data=_form())
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "sends the password in clear" in page
    assert "127.0.0.1, ::1, localhost" in page
    assert PASSWORD not in page
    assert db.session.scalar(select(SmtpAccount)) is None
    french = client.post(
        "/smtp-accounts/new", data=_form(), headers={"Accept-Language": "fr"}
    ).get_data(as_text=True)
    assert "envoie le mot de passe en clair" in french


@pytest.mark.parametrize(
    "changes",
    [
        {"host": "127.0.0.1"},  # a relay on this machine: the login crosses no network
        {"host": "localhost"},
        {"username": "", "password": ""},  # a relay that trusts this machine's address
        {"security": "starttls", "port": "587"},
    ],
)
def test_accounts_that_send_no_password_across_the_network_in_clear_are_saved(
    client: FlaskClient, login: Login, app: Flask, changes: dict[str, str]
) -> None:
    login(Role.ADMIN)
    response = client.post("/smtp-accounts/new", data=_form(**changes))
    assert response.status_code == 302, response.get_data(as_text=True)
    assert db.session.scalar(select(SmtpAccount)) is not None


def test_a_campaign_does_not_log_in_in_clear_to_another_machine(
    app: Flask, remote_server: FaultSmtpServer
) -> None:
    remote_server.require_auth(USER, PASSWORD)
    _use(app, remote_server)
    campaign = send_letters(launch_letters(2))
    assert campaign.status == CampaignStatus.PAUSED
    where = f"{remote_server.host}:{remote_server.port}"
    in_english = _read(campaign.status_reason, "en")
    assert where in in_english and "the password would cross the network in clear" in in_english
    assert "CAMPAIGN_MAIL_USE_TLS" in in_english
    in_french = _read(campaign.status_reason, "fr")
    assert where in in_french and "en clair" in in_french
    # Nothing was even connected: no login, no letter; the rows wait for a resume.
    assert statuses(campaign) == ["queued", "queued"]
    assert remote_server.logins == [] and remote_server.messages == []
    assert remote_server.sessions == 0


def test_an_account_saved_before_the_rule_does_not_log_in_in_clear_either(
    app: Flask, remote_server: FaultSmtpServer
) -> None:
    remote_server.require_auth(USER, PASSWORD)
    account = SmtpAccount(
        name="Old relay",
        host=remote_server.host,
        port=remote_server.port,
        security="none",
        username=USER,
        password_encrypted=encrypt_secret(PASSWORD),
    )
    db.session.add(account)
    db.session.commit()
    campaign = send_letters(launch_letters(1, account))
    assert campaign.status == CampaignStatus.PAUSED
    assert "in clear" in _read(campaign.status_reason, "en")
    assert remote_server.logins == [] and remote_server.sessions == 0


def test_a_single_message_is_not_sent_with_a_login_in_clear_to_another_machine(
    app: Flask, remote_server: FaultSmtpServer
) -> None:
    remote_server.require_auth(USER, PASSWORD)
    _use(app, remote_server)
    with pytest.raises(SendError, match="in clear") as raised:
        _send_one()
    assert f"{remote_server.host}:{remote_server.port}" in str(raised.value)
    assert PASSWORD not in str(raised.value)
    assert remote_server.logins == [] and remote_server.messages == []
    assert remote_server.sessions == 0


def test_a_relay_that_takes_mail_without_a_login_may_be_used_in_clear(
    app: Flask, remote_server: FaultSmtpServer
) -> None:
    _use(app, remote_server, username="")
    campaign = send_letters(launch_letters(2))
    assert campaign.status == CampaignStatus.FINISHED, campaign.status_reason
    assert len(remote_server.messages) == 2 and remote_server.logins == []
    _send_one()
    assert len(remote_server.messages) == 3


def test_a_login_in_clear_to_a_server_on_this_machine_still_works(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    fault_smtp.require_auth(USER, PASSWORD)
    _use(app, fault_smtp)  # 127.0.0.1
    campaign = send_letters(launch_letters(1))
    assert campaign.status == CampaignStatus.FINISHED, campaign.status_reason
    assert fault_smtp.logins == [USER] and len(fault_smtp.messages) == 1
