"""Sending over TLS as production does: STARTTLS (587) and implicit TLS (465), verified.

Real TLS-speaking aiosmtpd servers (tests/fault_smtp.py) hold certificates from a CA made
for the run (tests/tls_ca.py); the client trusts that CA through CAMPAIGN_TLS_CA_FILE, on
top of the system's, and never turns verification off. An expired certificate, one for
another host name, one from an unknown CA and a server without STARTTLS each pause the
campaign with the reason in words (English and French), and the server receives neither
a login nor a letter: nothing falls back to clear text.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_babel import force_locale
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Campaign, CampaignStatus, Delivery
from campaign.scheduling.stored_text import read
from campaign.services import campaigns, lists, sending, statements
from campaign.services.campaigns import AudienceSpec
from campaign.services.contacts import create_contact
from campaign.services.smtp_accounts import SmtpSettings
from campaign.smtp import Outcome, SmtpConnection
from campaign.tls import TlsProblem
from tests.fault_smtp import FaultSmtpServer
from tests.tls_ca import CertificateAuthority, ServerCertificate

USER, PASSWORD = "office", "relay-password"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    ca = CertificateAuthority.create(tmp_path_factory.mktemp("tls-ca"))
    stranger = CertificateAuthority.create(tmp_path_factory.mktemp("other-ca"), "Nobody's CA")
    return {
        "ca": ca,
        "good": ca.issue("good"),
        "expired": ca.issue("expired", expired=True),
        "wrong_host": ca.issue("wrong-host", hosts=("mail.example.net",)),
        "untrusted": stranger.issue("stranger"),
    }


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], certificates: dict[str, Any]) -> dict[str, Any]:
    return {
        **app_overrides,
        "TLS_CA_FILE": str(certificates["ca"].ca_file),
        "PUBLIC_URL": "https://campaign.example.org",
        "QUEUE_NAME": f"test-{uuid.uuid4().hex[:12]}",
    }


def _server(certificate: ServerCertificate | None, security: str) -> FaultSmtpServer:
    if certificate is None:  # a server that speaks only clear text
        server = FaultSmtpServer()
    elif security == "starttls":
        server = FaultSmtpServer(starttls=certificate.server_context())
    else:
        server = FaultSmtpServer(implicit_tls=certificate.server_context())
    server.start()
    server.require_auth(USER, PASSWORD)
    return server


@pytest.fixture
def servers_started() -> Iterator[list[FaultSmtpServer]]:
    started: list[FaultSmtpServer] = []
    yield started
    for server in started:
        server.stop()


def _use(app: Flask, server: FaultSmtpServer, security: str) -> None:
    """Point the default SMTP account at `server` as production settings would."""
    app.config.update(
        MAIL_SERVER=server.host,
        MAIL_PORT=server.port,
        MAIL_USE_TLS=security == "starttls",
        MAIL_USE_SSL=security == "ssl",
        MAIL_USERNAME=USER,
        MAIL_PASSWORD=PASSWORD,
        MAIL_TIMEOUT=5,
    )


def _launch(count: int = 2) -> Campaign:
    statement = statements.create_statement(
        "Joint letter", language="en", subject="S", body="{{ salutation }}\n\nFree them.\n"
    )
    contact_list = lists.create_list(f"List {uuid.uuid4().hex[:6]}")
    ids = [
        create_contact({"email": f"p{n}@example.net", "family_name": f"P{n}"}).id
        for n in range(count)
    ]
    lists.add_contacts(contact_list, ids)
    campaign = campaigns.create_campaign(
        statement,
        audience=AudienceSpec((f"list:{contact_list.id}",)),
        from_address="Human Rights Office <office@example.org>",
    )
    assert campaigns.launch_campaign(campaign)
    db.session.commit()
    return campaign


def _send(campaign: Campaign) -> Campaign:
    sending.send_batch(campaign.id, worker="test-worker", commit=db.session.commit)
    db.session.expire_all()
    sent = db.session.get(Campaign, campaign.id)
    assert sent is not None
    return sent


def _statuses(campaign: Campaign) -> list[str]:
    return list(
        db.session.scalars(select(Delivery.status).where(Delivery.campaign_id == campaign.id))
    )


def _reason(app: Flask, stored: str, language: str) -> str:
    with force_locale(language):
        return read(stored)


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_letters_go_out_over_tls_to_a_server_whose_certificate_a_private_ca_signed(
    app: Flask, certificates: dict[str, Any], servers_started: list[FaultSmtpServer], security: str
) -> None:
    server = _server(certificates["good"], security)
    servers_started.append(server)
    _use(app, server, security)
    campaign = _send(_launch(2))
    assert campaign.status == CampaignStatus.FINISHED, campaign.status_reason
    assert sorted(_statuses(campaign)) == ["sent", "sent"]
    # One connection for the batch, logged in once the channel was secure.
    assert len(server.messages) == 2 and server.logins == [USER]


@pytest.mark.parametrize(
    ("certificate", "security", "english", "french"),
    [
        ("expired", "starttls", "has expired", "a expiré"),
        ("expired", "ssl", "has expired", "a expiré"),
        ("wrong_host", "starttls", "is for another host name", "est établi pour un autre nom"),
        ("untrusted", "ssl", "is not signed by an authority", "n’est pas signé par une"),
    ],
)
def test_a_refused_certificate_pauses_the_campaign_and_nothing_goes_out_in_clear(
    app: Flask,
    certificates: dict[str, Any],
    servers_started: list[FaultSmtpServer],
    security: str,
    certificate: str,
    english: str,
    french: str,
) -> None:
    server = _server(certificates[certificate], security)
    servers_started.append(server)
    _use(app, server, security)
    campaign = _send(_launch(2))
    assert campaign.status == CampaignStatus.PAUSED
    where = f"{server.host}:{server.port}"
    in_english = _reason(app, campaign.status_reason, "en")
    assert f"the certificate of {where} {english}" in in_english
    assert "no letter goes out in clear text" in in_english
    assert PASSWORD not in campaign.status_reason
    in_french = _reason(app, campaign.status_reason, "fr")
    assert where in in_french and french in in_french
    # The rows wait for a resume; the server saw neither a login nor a letter.
    assert _statuses(campaign) == ["queued", "queued"]
    assert server.messages == [] and server.logins == []


def test_a_server_without_starttls_pauses_the_campaign_before_any_login(
    app: Flask, servers_started: list[FaultSmtpServer]
) -> None:
    server = _server(None, "starttls")  # clear text only: it offers no STARTTLS
    servers_started.append(server)
    _use(app, server, "starttls")
    campaign = _send(_launch(2))
    assert campaign.status == CampaignStatus.PAUSED
    where = f"{server.host}:{server.port}"
    assert f"{where} does not offer STARTTLS; no letter goes out in clear text" in _reason(
        app, campaign.status_reason, "en"
    )
    assert "ne propose pas STARTTLS" in _reason(app, campaign.status_reason, "fr")
    assert _statuses(campaign) == ["queued", "queued"]
    assert server.messages == [] and server.logins == []
    assert server.sessions == 1  # it connected once, asked, and went away


def test_a_plain_text_server_on_the_ssl_port_pauses_the_campaign(
    app: Flask, servers_started: list[FaultSmtpServer]
) -> None:
    server = _server(None, "ssl")
    servers_started.append(server)
    _use(app, server, "ssl")
    campaign = _send(_launch(1))
    assert campaign.status == CampaignStatus.PAUSED
    reason = _reason(app, campaign.status_reason, "en")
    assert "no secure connection could be made" in reason
    assert "check the security setting (SSL or STARTTLS) and the port" in reason
    assert server.messages == [] and server.logins == []


def test_verification_stays_on_without_the_private_ca(
    app: Flask, certificates: dict[str, Any], servers_started: list[FaultSmtpServer]
) -> None:
    # The system's authorities alone do not know the test CA: its certificate is refused.
    app.config["TLS_CA_FILE"] = ""
    server = _server(certificates["good"], "starttls")
    servers_started.append(server)
    settings = SmtpSettings(
        key="t", name="t", host=server.host, port=server.port, security="starttls",
        username=USER, password=PASSWORD, timeout=5,
    )  # fmt: skip
    outcome = SmtpConnection(settings).send("office@example.org", "a@example.net", b"Hi\r\n")
    assert outcome.kind == Outcome.AUTH_FAILED and outcome.tls == TlsProblem.UNTRUSTED
    assert server.messages == [] and server.logins == []


def test_an_unreadable_ca_file_pauses_the_campaign_with_its_name(
    app: Flask, certificates: dict[str, Any], servers_started: list[FaultSmtpServer], tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-ca.pem"
    app.config["TLS_CA_FILE"] = str(missing)
    server = _server(certificates["good"], "ssl")
    servers_started.append(server)
    _use(app, server, "ssl")
    campaign = _send(_launch(1))
    assert campaign.status == CampaignStatus.PAUSED
    reason = _reason(app, campaign.status_reason, "en")
    assert "CAMPAIGN_TLS_CA_FILE cannot be read" in reason and str(missing) in reason
    assert server.messages == []
