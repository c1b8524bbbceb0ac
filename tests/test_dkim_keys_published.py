"""DKIM after review (issue 14, item 6): a published key is never overwritten, the record is
shown as DNS web panels want it, Ed25519 is explained, alignment follows the Public Suffix
List, and messages with LF-only heads still get a valid signature."""

from __future__ import annotations

import html
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dkim as dkimpy
import pytest
from flask import Flask
from flask.testing import FlaskClient

from campaign import dkim
from campaign.extensions import db
from campaign.labels import label
from campaign.models import Campaign, CampaignStatus, Role, SmtpAccount, User
from campaign.scheduling import stored_text
from campaign.services.sending import smtp_accounts
from tests.factories import CampaignFactory, SmtpAccountFactory
from tests.fault_smtp import FaultSmtpServer
from tests.test_dkim import FROM, LETTER, _cli, _send_all

Login = Callable[[Role], User]


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], fault_smtp: FaultSmtpServer) -> dict[str, Any]:
    return {
        **app_overrides,
        "MAIL_SERVER": fault_smtp.host,
        "MAIL_PORT": fault_smtp.port,
        "MAIL_TIMEOUT": 10,  # no stall tested: a loaded 3-worker run can take > 1 s
        "MAIL_DEFAULT_SENDER": FROM,
        "PUBLIC_URL": "https://campaign.example.org",
        "QUEUE_NAME": f"test-{uuid.uuid4().hex[:12]}",
    }


def _make(client: FlaskClient, account: SmtpAccount, selector: str, algorithm: str = "rsa") -> Any:
    return client.post(
        f"/smtp-accounts/{account.id}/dkim",
        data={"selector": selector, "domain": "example.org", "algorithm": algorithm},
    )


def _record(account: SmtpAccount) -> str:
    db.session.refresh(account)
    info = smtp_accounts.dkim_key_info(account)
    assert info is not None
    return info.record_value


# --- a published key is never overwritten ----------------------------------------------------


def test_a_new_key_under_the_live_or_an_earlier_selector_is_refused(
    client: FlaskClient, login: Login, app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    account = SmtpAccountFactory(name="Relay", server=fault_smtp, security="none", commit=True)
    login(Role.ADMIN)
    assert _make(client, account, "web1").status_code == 302
    live = _record(account)
    again = _make(client, account, "web1")
    text = html.unescape(again.get_data(as_text=True))
    assert again.status_code == 422
    assert "web1" in text and "published record would no longer match" in text
    assert _record(account) == live
    # An earlier selector of the account (from the audit log) is refused as well.
    assert _make(client, account, "web2").status_code == 302
    earlier = _make(client, account, "WEB1")
    assert earlier.status_code == 422
    assert "was used before" in html.unescape(earlier.get_data(as_text=True))
    assert _record(account) != live
    # The command says the same and stores nothing.
    result = _cli(app, "Relay", "--selector", "web2", "--domain", "example.org")
    assert result.exit_code != 0 and "published record would no longer match" in result.output


# --- the record as DNS panels want it ---------------------------------------------------------


def test_the_page_shows_host_type_and_the_plain_value_of_an_rsa_record(
    client: FlaskClient, login: Login, app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    account = SmtpAccountFactory(name="Relay", server=fault_smtp, security="none", commit=True)
    login(Role.ADMIN)
    assert _make(client, account, "web1").status_code == 302
    page = client.get(f"/smtp-accounts/{account.id}/dkim").get_data(as_text=True)
    value = _record(account)
    assert len(value) > 255  # an RSA record: the zone line splits it, the plain value must not
    assert '<code id="dkim-host">web1._domainkey</code>' in page
    assert "web1._domainkey.example.org" in page
    assert '<code id="dkim-type">TXT</code>' in page
    assert f'id="dkim-value">{value}</' in page
    assert 'id="dkim-record"' in page  # the zone-file line stays, as an alternative


# --- Ed25519 explained ------------------------------------------------------------------------


def test_ed25519_is_explained_and_an_ed25519_only_account_is_warned(
    client: FlaskClient, login: Login, app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    with app.test_request_context():
        text = str(label("ed25519", "dkim_algorithm"))
    assert "add an RSA key" not in text and "Gmail" in text
    account = SmtpAccountFactory(name="Relay", server=fault_smtp, security="none", commit=True)
    login(Role.ADMIN)
    response = client.get(f"/smtp-accounts/{account.id}/dkim")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<h1>DKIM key of the SMTP account" in page and 'id="dkim-key"' in page
    assert 'id="dkim-ed25519-warning"' not in page
    assert _make(client, account, "ed1", "ed25519").status_code == 302
    page = html.unescape(client.get(f"/smtp-accounts/{account.id}/dkim").get_data(as_text=True))
    assert 'id="dkim-ed25519-warning"' in page and "Gmail" in page and "RSA" in page


# --- alignment by the Public Suffix List ------------------------------------------------------


@pytest.mark.parametrize(
    ("signing", "sender", "expected"),
    [
        ("mail.example.org", "news.example.org", True),
        ("example.org", "news.example.org", True),
        ("example.org", "example.org", True),
        ("a.ngo.co.uk", "ngo.co.uk", True),
        ("co.uk", "ngo.co.uk", False),
        ("ngo.co.uk", "other.co.uk", False),
        ("example.org", "example.org.evil.com", False),
        ("a.github.io", "b.github.io", False),
    ],
)
def test_alignment_is_relaxed_dmarc_by_organisational_domain(
    signing: str, sender: str, expected: bool
) -> None:
    assert dkim.aligned(signing, sender) is expected


@pytest.mark.parametrize("domain", ["co.uk", "github.io", "gov.uk."])
def test_a_public_suffix_is_refused_as_signing_domain(app: Flask, domain: str) -> None:
    with pytest.raises(dkim.DkimError, match="public suffix"):
        dkim.check_domain(domain)


# --- signatures of LF-only heads ----------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_a_message_with_lf_headers_and_a_crlf_body_signs_validly(algorithm: str) -> None:
    signer = dkim.signer_from_pem("example.org", "s1", dkim.generate_key(algorithm))
    record = dkim.record_value(signer.algorithm, signer.public_b64).encode()
    message = b"From: a@example.org\nTo: b@example.net\nSubject: x\n\nline\r\n\r\nmore text\r\n"
    assert dkimpy.verify(signer.sign(message), dnsfunc=lambda name, timeout=5: record)


# --- words, not codes ---------------------------------------------------------------------------


def test_messages_say_things_in_words(
    app: Flask, fault_smtp: FaultSmtpServer, tmp_path: Path
) -> None:
    with app.test_request_context():
        app.config["DKIM_DOMAIN"] = "other.example"
        problem = smtp_accounts.dkim_alignment_problem(None, FROM)
        assert problem is not None and "CAMPAIGN_MAIL_" not in str(problem)
        assert "default account" in str(problem)
        with pytest.raises(dkim.DkimError) as raised:
            dkim.check_selector("a;b")
        assert "'a;b'" not in str(raised.value) and "“a;b”" in str(raised.value)
    app.config["DKIM_DOMAIN"] = ""
    # A key that cannot be read pauses the campaign with a reason kept as a message, so
    # that staff read it in their own language.
    account = SmtpAccountFactory(name="Relay", server=fault_smtp, security="none", commit=True)
    assert _cli(app, "Relay", "--selector", "old", "--domain", "example.org").exit_code == 0
    db.session.refresh(account)
    account.dkim_private_key_encrypted = "gAAAAA" + account.dkim_private_key_encrypted[6:][::-1]
    db.session.commit()
    campaign = CampaignFactory(
        **LETTER,
        recipients=["p0@example.net"],
        smtp_account=account,
        launched=True,
        commit=True,
    )
    _send_all(campaign.id)
    db.session.expire_all()
    stored = db.session.get(Campaign, campaign.id)
    assert stored is not None and stored.status == CampaignStatus.PAUSED
    assert stored.status_reason.startswith('{"msg":')
    with app.test_request_context():
        assert "DKIM" in str(stored_text.read(stored.status_reason))


def test_removing_a_key_asks_first_and_says_when_to_delete_the_record(
    client: FlaskClient, login: Login, app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    account = SmtpAccountFactory(name="Relay", server=fault_smtp, security="none", commit=True)
    login(Role.ADMIN)
    assert _make(client, account, "web1").status_code == 302
    page = html.unescape(client.get(f"/smtp-accounts/{account.id}/dkim").get_data(as_text=True))
    assert "data-confirm=" in page
    assert "delete its DNS record" in page


def test_the_key_file_import_says_to_delete_the_plaintext_file(
    app: Flask, fault_smtp: FaultSmtpServer, tmp_path: Path
) -> None:
    SmtpAccountFactory(name="Relay", server=fault_smtp, security="none", commit=True)
    key_file = tmp_path / "key.pem"
    key_file.write_text(dkim.generate_key("rsa"))
    result = _cli(app, "Relay", "--selector", "imp1", "--key-file", str(key_file))
    assert result.exit_code == 0, result.output
    assert "delete" in result.output and str(key_file) in result.output


def test_to_date_and_message_id_are_oversigned() -> None:
    signer = dkim.signer_from_pem("example.org", "s1", dkim.generate_key("ed25519"))
    message = (
        b"From: a@example.org\r\nTo: b@example.net\r\nSubject: x\r\n"
        b"Date: Mon, 07 Dec 2026 02:38:48 +0000\r\nMessage-ID: <x@example.org>\r\n\r\nbody\r\n"
    )
    signed = signer.sign(message)
    head = signed.split(b"\r\n\r\n")[0].replace(b"\r\n", b"")
    h_tag = head.split(b"h=")[1].split(b";")[0].replace(b" ", b"").lower().split(b":")
    for name in (b"from", b"to", b"subject", b"date", b"message-id"):
        assert h_tag.count(name) == 2, h_tag
    record = dkim.record_value(signer.algorithm, signer.public_b64).encode()
    assert dkimpy.verify(signed, dnsfunc=lambda name, timeout=5: record)
    # A second To added on the way breaks the signature.
    tampered = signed.replace(b"\r\n\r\nbody", b"\r\nTo: c@example.net\r\n\r\nbody")
    assert not dkimpy.verify(tampered, dnsfunc=lambda name, timeout=5: record)
