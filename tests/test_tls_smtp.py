"""Sending over TLS as production does: STARTTLS (587) and implicit TLS (465), verified.

Real TLS-speaking aiosmtpd servers (tests/fault_smtp.py) hold certificates from a CA made
for the run (tests/tls_ca.py); the client trusts that CA through CAMPAIGN_TLS_CA_FILE, on
top of the system's, and never turns verification off. An expired certificate, one for
another host name, one from an unknown CA and a server without STARTTLS each pause the
campaign with the reason in words (English and French), and the server receives neither
a login nor a letter: nothing falls back to clear text.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_babel import force_locale
from sqlalchemy import select

from campaign.config import Config, ConfigError
from campaign.extensions import db
from campaign.models import AuditEvent, Campaign, CampaignStatus, Delivery, Role, SmtpAccount
from campaign.scheduling.stored_text import read
from campaign.services.sending import batches as sending
from campaign.smtp import Outcome, SmtpConnection, SmtpSettings
from campaign.tls import TlsProblem
from tests.factories import CampaignFactory
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


def launch_letters(count: int = 2, account: SmtpAccount | None = None) -> Campaign:
    """A launched campaign of `count` letters (through `account`, or the default one)."""
    campaign: Campaign = CampaignFactory(
        statement__body="{{ salutation }}\n\nFree them.\n",
        recipients=[f"p{n}@example.net" for n in range(count)],
        from_address="Human Rights Office <office@example.org>",
        smtp_account=account,
        launched=True,
        commit=True,
    )
    return campaign


def send_letters(campaign: Campaign) -> Campaign:
    sending.send_batch(campaign.id, worker="test-worker", commit=db.session.commit)
    db.session.expire_all()
    sent = db.session.get(Campaign, campaign.id)
    assert sent is not None
    return sent


def statuses(campaign: Campaign) -> list[str]:
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
    campaign = send_letters(launch_letters(2))
    assert campaign.status == CampaignStatus.FINISHED, campaign.status_reason
    assert sorted(statuses(campaign)) == ["sent", "sent"]
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
    campaign = send_letters(launch_letters(2))
    assert campaign.status == CampaignStatus.PAUSED
    where = f"{server.host}:{server.port}"
    in_english = _reason(app, campaign.status_reason, "en")
    assert f"the certificate of {where} {english}" in in_english
    assert "no letter goes out in clear text" in in_english
    assert PASSWORD not in campaign.status_reason
    in_french = _reason(app, campaign.status_reason, "fr")
    assert where in in_french and french in in_french
    # The rows wait for a resume; the server saw neither a login nor a letter.
    assert statuses(campaign) == ["queued", "queued"]
    assert server.messages == [] and server.logins == []


def test_a_server_without_starttls_pauses_the_campaign_before_any_login(
    app: Flask, servers_started: list[FaultSmtpServer]
) -> None:
    server = _server(None, "starttls")  # clear text only: it offers no STARTTLS
    servers_started.append(server)
    _use(app, server, "starttls")
    campaign = send_letters(launch_letters(2))
    assert campaign.status == CampaignStatus.PAUSED
    where = f"{server.host}:{server.port}"
    assert f"{where} does not offer STARTTLS; no letter goes out in clear text" in _reason(
        app, campaign.status_reason, "en"
    )
    assert "ne propose pas STARTTLS" in _reason(app, campaign.status_reason, "fr")
    assert statuses(campaign) == ["queued", "queued"]
    assert server.messages == [] and server.logins == []
    assert server.sessions == 1  # it connected once, asked, and went away


def test_a_plain_text_server_on_the_ssl_port_pauses_the_campaign(
    app: Flask, servers_started: list[FaultSmtpServer]
) -> None:
    server = _server(None, "ssl")
    servers_started.append(server)
    _use(app, server, "ssl")
    campaign = send_letters(launch_letters(1))
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
    campaign = send_letters(launch_letters(1))
    assert campaign.status == CampaignStatus.PAUSED
    reason = _reason(app, campaign.status_reason, "en")
    assert "CAMPAIGN_TLS_CA_FILE cannot be read" in reason and str(missing) in reason
    assert server.messages == []


def test_a_starttls_the_server_refuses_pauses_the_campaign_in_words(
    app: Flask, certificates: dict[str, Any], servers_started: list[FaultSmtpServer]
) -> None:
    server = _server(certificates["good"], "starttls")
    servers_started.append(server)
    server.fail(502, "5.5.1 STARTTLS not available here", stage="starttls", times=None)
    _use(app, server, "starttls")
    campaign = send_letters(launch_letters(2))
    assert campaign.status == CampaignStatus.PAUSED
    where = f"{server.host}:{server.port}"
    in_english = _reason(app, campaign.status_reason, "en")
    assert f"{where} refused STARTTLS (502 5.5.1 STARTTLS not available here)" in in_english
    assert "no letter goes out in clear text" in in_english
    in_french = _reason(app, campaign.status_reason, "fr")
    assert "a refusé STARTTLS" in in_french and "aucune lettre" in in_french
    assert statuses(campaign) == ["queued", "queued"]
    assert server.messages == [] and server.logins == []


def test_a_campaign_paused_after_errors_in_a_row_says_so_in_the_readers_language(
    app: Flask, certificates: dict[str, Any], servers_started: list[FaultSmtpServer]
) -> None:
    server = _server(certificates["good"], "starttls")
    servers_started.append(server)
    server.fail(451, "4.3.0 Try again later", stage="rcpt", times=None)
    _use(app, server, "starttls")
    app.config["SEND_ERROR_THRESHOLD"] = 2
    campaign = send_letters(launch_letters(3))
    assert campaign.status == CampaignStatus.PAUSED
    in_english = _reason(app, campaign.status_reason, "en")
    assert "paused after 2 messages in a row failed" in in_english
    assert "451 4.3.0 Try again later" in in_english
    in_french = _reason(app, campaign.status_reason, "fr")
    assert "mise en pause après 2 messages en échec d’affilée" in in_french
    assert "451 4.3.0 Try again later" in in_french


def test_a_login_the_server_refuses_pauses_the_campaign_in_the_readers_language(
    app: Flask, certificates: dict[str, Any], servers_started: list[FaultSmtpServer]
) -> None:
    server = _server(certificates["good"], "ssl")
    servers_started.append(server)
    _use(app, server, "ssl")
    app.config["MAIL_PASSWORD"] = "not-the-password"
    campaign = send_letters(launch_letters(1))
    assert campaign.status == CampaignStatus.PAUSED
    assert "the SMTP server refused the login (535" in _reason(app, campaign.status_reason, "en")
    assert "a refusé la connexion au compte (535" in _reason(app, campaign.status_reason, "fr")


def test_the_audit_log_shows_a_pause_reason_in_words(
    app: Flask,
    client: Any,
    login: Any,
    certificates: dict[str, Any],
    servers_started: list[FaultSmtpServer],
) -> None:
    server = _server(certificates["expired"], "ssl")
    servers_started.append(server)
    _use(app, server, "ssl")
    campaign = send_letters(launch_letters(1))
    assert campaign.status == CampaignStatus.PAUSED
    event = db.session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "campaign.pause", AuditEvent.target_id == str(campaign.id)
        )
    ).one()
    reason = event.detail["reason"]
    assert reason.startswith(f"the certificate of {server.host}:{server.port} has expired")
    login(Role.ADMIN)
    page = client.get("/audit/?action=campaign.pause").get_data(as_text=True)
    assert f"the certificate of {server.host}:{server.port} has expired" in page
    assert "&#34;msg&#34;" not in page and '"msg":' not in page


def _config(**settings: Any) -> Config:
    return Config(SECRET_KEY="a-long-random-production-key-for-this-test", **settings)


def test_the_app_does_not_start_with_a_ca_file_it_cannot_use(
    certificates: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(TLS_CA_FILE=str(certificates["ca"].ca_file)).check_safe_to_start()
    _config(TLS_CA_FILE="").check_safe_to_start()
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    unreadable = tmp_path / "locked.pem"
    unreadable.write_bytes(certificates["ca"].ca_file.read_bytes())
    unreadable.chmod(0)
    monkeypatch.chdir(certificates["ca"].ca_file.parent)
    cases = {
        str(tmp_path / "missing.pem"): "does not exist",
        str(not_pem): "holds no PEM certificate",
        certificates["ca"].ca_file.name: "must be an absolute path",
        str(tmp_path): "is not a file",
    }
    if os.geteuid() != 0:  # root reads any file
        cases[str(unreadable)] = "cannot be read"
    for path, words in cases.items():
        with pytest.raises(ConfigError, match="CAMPAIGN_TLS_CA_FILE") as raised:
            _config(TLS_CA_FILE=path).check_safe_to_start()
        assert words in str(raised.value) and path in str(raised.value)
