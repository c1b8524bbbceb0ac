"""DKIM (issue 14, item 6): keys made or imported, the record printed, every message signed.

Signatures are verified with dkimpy against the TXT record the command printed, through a
local DNS function (no network). Letters go through the real sending engine to the
aiosmtpd sink; what is verified is what arrived.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dkim as dkimpy
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign import dkim
from campaign.extensions import db
from campaign.mail import SendError, send_message
from campaign.models import AuditEvent, Campaign, CampaignStatus, Delivery, Role, SmtpAccount, User
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.sending import batches as sending
from campaign.services.sending import campaigns, notices, smtp_accounts
from campaign.services.sending.campaigns import AudienceSpec
from campaign.services.statements import statements
from tests.factories import CampaignFactory, SmtpAccountFactory
from tests.fault_smtp import FaultSmtpServer

Login = Callable[[Role], User]
FROM = "Human Rights Office <office@example.org>"
# The letters the relay signs (a name with accents, a body the tampering test changes):
# `CampaignFactory(**LETTER, recipients=..., smtp_account=account, launched=True)`.
LETTER: dict[str, Any] = {
    "name": "Défenseurs 2026",
    "statement__title": "Joint letter",
    "statement__subject": "Release the defenders",
    "statement__body": "{{ salutation }}\n\nRelease the defenders.\n\n{{ closing }}\n",
    "from_address": FROM,
}


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


def dns_from_record(printed: str) -> Callable[..., bytes]:
    """A DNS TXT lookup answering from the zone line the command printed."""
    name = re.search(r"^(\S+)\s+IN\s+TXT", printed, re.M)
    assert name is not None, printed
    strings = re.findall(r'"([^"]*)"', printed[name.end() :])
    assert all(len(s) <= 255 for s in strings)
    value = "".join(strings).encode()

    def lookup(qname: bytes, timeout: int = 5) -> bytes:
        return value if qname.decode().rstrip(".") == name.group(1).rstrip(".") else b""

    return lookup


def _cli(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["dkim-key", *args])


def _send_all(campaign_id: int) -> None:
    for _ in range(20):
        result = sending.send_batch(campaign_id, worker="test", commit=db.session.commit)
        if not result.has_more:
            return


# --- the command and its bad inputs --------------------------------------------------------


def test_the_command_makes_a_key_stores_it_encrypted_and_prints_the_record(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    account = SmtpAccountFactory(name="Relay", server=fault_smtp, security="none", commit=True)
    result = _cli(app, "Relay", "--selector", "s2026", "--domain", "Example.org")
    assert result.exit_code == 0, result.output
    assert 's2026._domainkey.example.org. IN TXT ( "v=DKIM1; k=rsa; p=MIIBIjAN' in result.output
    db.session.refresh(account)
    assert (account.dkim_domain, account.dkim_selector, account.dkim_algorithm) == (
        "example.org",
        "s2026",
        "rsa",
    )
    assert "PRIVATE KEY" not in account.dkim_private_key_encrypted
    signer = smtp_accounts.account_signer(account)
    assert signer is not None and isinstance(signer.key, rsa.RSAPrivateKey)
    assert signer.key.key_size == 2048
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "smtp_account.dkim_key")
    ).one()
    assert event.detail["selector"] == "s2026" and "PRIVATE" not in str(event.detail)


def _pem(key: Any) -> str:
    return str(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    )


@pytest.mark.parametrize(
    ("args", "content", "message"),
    [
        (["--selector", "s.2026"], None, "Selector: “s.2026” holds a dot or a space"),
        (["--selector", "s 2026"], None, "Selector: “s 2026” holds a dot or a space"),
        (["--domain", "localhost"], None, "Domain: “localhost” is not an internet domain"),
        ([], "not a key at all\n", "is not a PEM private key"),
        ([], "rsa1024", "an RSA key of 1024 bits is refused: keys under 2048 bits"),
        ([], "ec", "DKIM signs with RSA or Ed25519 keys only"),
        ([], "locked", "is protected by a passphrase"),
    ],
)
def test_bad_keys_and_selectors_are_refused_and_nothing_is_stored(
    app: Flask,
    fault_smtp: FaultSmtpServer,
    tmp_path: Path,
    args: list[str],
    content: str | None,
    message: str,
) -> None:
    account = SmtpAccountFactory(name="Relay", server=fault_smtp, security="none", commit=True)
    if content is not None:
        path = tmp_path / "key.pem"
        if content == "rsa1024":
            weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
            content = _pem(weak)
        elif content == "ec":
            content = _pem(ec.generate_private_key(ec.SECP256R1()))
        elif content == "locked":
            content = (
                rsa.generate_private_key(public_exponent=65537, key_size=2048)
                .private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.BestAvailableEncryption(b"secret"),
                )
                .decode()
            )
        path.write_text(content)
        args = [*args, "--key-file", str(path)]
    result = _cli(app, "Relay", "--domain", "example.org", *args)
    assert result.exit_code != 0
    assert message in result.output
    if content is not None:
        assert str(tmp_path / "key.pem") in result.output  # the file is named
    db.session.expire_all()
    stored = db.session.get(SmtpAccount, account.id)
    assert stored is not None and stored.dkim_private_key_encrypted == ""
    assert stored.dkim_selector == "" and stored.dkim_domain == ""


def test_an_imported_ed25519_key_signs_and_verifies(
    app: Flask, fault_smtp: FaultSmtpServer, tmp_path: Path
) -> None:
    SmtpAccountFactory(name="Relay", server=fault_smtp, security="none", commit=True)
    path = tmp_path / "ed.pem"
    path.write_text(dkim.generate_key("ed25519"))
    result = _cli(
        app, "Relay", "--selector", "ed1", "--domain", "example.org", "--key-file", str(path)
    )
    assert result.exit_code == 0, result.output
    assert "k=ed25519; p=" in result.output
    account = db.session.scalars(select(SmtpAccount)).one()
    campaign = CampaignFactory(
        **LETTER,
        recipients=[f"p{n}@example.net" for n in range(3)],
        smtp_account=account,
        launched=True,
        commit=True,
    )
    _send_all(campaign.id)
    received = fault_smtp.messages
    assert len(received) == 3
    dns = dns_from_record(result.output)
    for message in received:
        assert b"a=ed25519-sha256" in message.raw
        assert dkimpy.verify(message.raw, dnsfunc=dns)


# --- letters and notices, as they arrive ---------------------------------------------------


def test_a_hundred_letters_arrive_signed_and_a_changed_body_fails(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    account = SmtpAccountFactory(name="Relay", server=fault_smtp, security="none", commit=True)
    result = _cli(app, "Relay", "--selector", "letters", "--domain", "example.org")
    assert result.exit_code == 0, result.output
    dns = dns_from_record(result.output)
    campaign = CampaignFactory(
        **LETTER,
        recipients=[f"p{n}@example.net" for n in range(100)],
        smtp_account=account,
        launched=True,
        commit=True,
    )
    _send_all(campaign.id)
    received = fault_smtp.messages
    assert len(received) == 100
    rows = db.session.scalars(select(Delivery).where(Delivery.campaign_id == campaign.id)).all()
    assert {row.status for row in rows} == {"sent"}
    for message in received:
        assert dkimpy.verify(message.raw, dnsfunc=dns), message.raw[:600]
        head = message.raw.split(b"\r\n\r\n", 1)[0].decode()
        signed = re.search(r"h=([^;]+);", head.replace("\r\n ", ""))
        assert signed is not None
        names = signed.group(1).replace(" ", "").split(":")
        for header in (
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "list-unsubscribe",
            "list-unsubscribe-post",
            "list-id",
            "feedback-id",
            "content-type",
            "mime-version",
        ):
            assert header in names, (header, names)
        assert names.count("from") == 2 and names.count("subject") == 2
    raw = received[0].raw
    tampered = raw.replace(b"Release the defenders.", b"Release the defenders!", 1)
    assert tampered != raw
    assert not dkimpy.verify(tampered, dnsfunc=dns)
    added = raw.replace(b"\r\nSubject:", b"\r\nSubject: Win a prize\r\nSubject:", 1)
    assert not dkimpy.verify(added, dnsfunc=dns)


def test_ten_notices_arrive_signed_with_the_default_accounts_key(
    app: Flask, fault_smtp: FaultSmtpServer, tmp_path: Path
) -> None:
    key_out = tmp_path / "default.pem"
    result = _cli(app, "default", "--selector", "notices", "--key-out", str(key_out))
    assert result.exit_code == 0, result.output
    assert "CAMPAIGN_DKIM_DOMAIN=example.org" in result.output
    assert oct(key_out.stat().st_mode & 0o777) == "0o600"
    app.config.update(
        DKIM_DOMAIN="example.org", DKIM_SELECTOR="notices", DKIM_PRIVATE_KEY_FILE=str(key_out)
    )
    dns = dns_from_record(result.output)
    for n in range(10):
        message = notices.build_message(
            f"signer{n}@example.net",
            ["Confirm your signature", "Confirmez votre signature", "Подтвердите подпись"][n % 3],
            f"Please confirm: https://campaign.example.org/s/{n}\n",
            language=["en", "fr", "ru"][n % 3],
        )
        send_message(message, sender=FROM, recipients=[f"signer{n}@example.net"])
    received = fault_smtp.messages
    assert len(received) == 10
    assert all(dkimpy.verify(m.raw, dnsfunc=dns) for m in received)


def test_a_key_that_cannot_be_used_stops_the_mail_instead_of_sending_it_unsigned(
    app: Flask, fault_smtp: FaultSmtpServer, tmp_path: Path
) -> None:
    # The default account: its key file gone.
    app.config.update(
        DKIM_DOMAIN="example.org",
        DKIM_SELECTOR="gone",
        DKIM_PRIVATE_KEY_FILE=str(tmp_path / "missing.pem"),
    )
    with pytest.raises(SendError, match="not sent: CAMPAIGN_DKIM_PRIVATE_KEY_FILE"):
        send_message(
            notices.build_message("a@example.net", "Hello", "Text\n"),
            sender=FROM,
            recipients=["a@example.net"],
        )
    # An account whose stored key no longer decrypts (SECRET_KEY changed): paused, unsent.
    account = SmtpAccountFactory(name="Relay", server=fault_smtp, security="none", commit=True)
    assert _cli(app, "Relay", "--selector", "old", "--domain", "example.org").exit_code == 0
    db.session.refresh(account)
    account.dkim_private_key_encrypted = "gAAAAA" + account.dkim_private_key_encrypted[6:][::-1]
    db.session.commit()
    campaign = CampaignFactory(
        **LETTER,
        recipients=[f"p{n}@example.net" for n in range(2)],
        smtp_account=account,
        launched=True,
        commit=True,
    )
    _send_all(campaign.id)
    assert fault_smtp.messages == []
    db.session.expire_all()
    stored = db.session.get(Campaign, campaign.id)
    assert stored is not None and stored.status == CampaignStatus.PAUSED
    assert "DKIM" in stored.status_reason


def test_the_launch_check_warns_when_the_key_does_not_align_with_from(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    account = SmtpAccountFactory(name="Relay", server=fault_smtp, security="none", commit=True)
    assert _cli(app, "Relay", "--selector", "s1", "--domain", "other.example").exit_code == 0
    statement = statements.create_statement("T", language="en", subject="S", body="Hi\n")
    contact_list = lists.create_list("L")
    lists.add_contacts(
        contact_list, [create_contact({"email": "x@example.net", "family_name": "X"}).id]
    )
    campaign = campaigns.create_campaign(
        statement,
        audience=AudienceSpec((f"list:{contact_list.id}",)),
        from_address=FROM,
        smtp_account=account,
    )
    warnings = [str(w) for w in campaigns.check_campaign(campaign).warnings]
    assert any("signs for other.example" in w and "example.org" in w for w in warnings), warnings
    # Aligned (the same domain, or a sub-domain of it): no warning.
    assert _cli(app, "Relay", "--selector", "s2", "--domain", "mail.example.org").exit_code == 0
    warnings = [str(w) for w in campaigns.check_campaign(campaign).warnings]
    assert not any("DKIM" in w for w in warnings), warnings


# --- the account page ------------------------------------------------------------------------


def test_only_admins_see_or_change_a_key(
    client: FlaskClient, login: Login, app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    account = SmtpAccountFactory(name="Relay", server=fault_smtp, security="none", commit=True)
    login(Role.SENDER)
    assert client.get(f"/smtp-accounts/{account.id}/dkim").status_code == 403
    form = {"selector": "s1", "domain": "example.org", "algorithm": "rsa"}
    assert client.post(f"/smtp-accounts/{account.id}/dkim", data=form).status_code == 403
    assert client.post(f"/smtp-accounts/{account.id}/dkim/remove").status_code == 403
    db.session.refresh(account)
    assert account.dkim_private_key_encrypted == ""


def test_the_account_page_shows_the_record_never_the_key_and_admins_manage_it(
    client: FlaskClient, login: Login, app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    account = SmtpAccountFactory(name="Relay", server=fault_smtp, security="none", commit=True)
    login(Role.ADMIN)
    bad = client.post(
        f"/smtp-accounts/{account.id}/dkim",
        data={"selector": "a.b", "domain": "example.org", "algorithm": "rsa"},
    )
    assert bad.status_code == 422 and "holds a dot or a space" in bad.get_data(as_text=True)
    made = client.post(
        f"/smtp-accounts/{account.id}/dkim",
        data={"selector": "web1", "domain": "example.org", "algorithm": "ed25519"},
    )
    assert made.status_code == 302
    page = client.get(f"/smtp-accounts/{account.id}/dkim").get_data(as_text=True)
    db.session.refresh(account)
    info = smtp_accounts.dkim_key_info(account)
    assert info is not None
    assert "web1._domainkey.example.org" in page and info.record_value in page
    assert "PRIVATE KEY" not in page
    assert "DKIM: web1" in client.get("/smtp-accounts/").get_data(as_text=True)
    removed = client.post(f"/smtp-accounts/{account.id}/dkim/remove")
    assert removed.status_code == 302
    db.session.refresh(account)
    assert account.dkim_private_key_encrypted == "" and account.dkim_selector == ""
    actions = [
        e.action
        for e in db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.target_type == "smtp_account")
            .order_by(AuditEvent.id)
        )
    ]
    assert actions[-2:] == ["smtp_account.dkim_key", "smtp_account.dkim_key_remove"]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\r\n",
        b"\r\n\r\n\r\n",
        b"a  b\t\tc \r\n",
        b"line \t \r\n \r\n\t\r\n",
        b"no end  ",
        b"x\r\n\r\n  \r\ny\r\n\r\n",
        b"\t lead\r\n  ",
    ],
)
def test_the_quick_body_canonicalisation_is_dkimpys(body: bytes) -> None:
    from dkim.canonicalization import Relaxed

    assert dkim.relaxed_body(body) == Relaxed.canonicalize_body(body)
