"""Signing a statement: the form's checks, the e-mailed link, confirming, abuse limits."""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from campaign.devmail import DevmailSink
from campaign.extensions import db
from campaign.letters.flowed import unflow
from campaign.models import Signature, SignatureStatus, SignOn, Statement
from campaign.services.sending.notices import send_notice
from campaign.services.sign_on import signatures
from campaign.services.sign_on.pages import as_signatory_values, open_sign_on, update_settings
from campaign.services.statements import statements
from tests import servers

PUBLIC_URL = "https://sign.example.org"
LINK = re.compile(re.escape(PUBLIC_URL) + r"/sign/confirm/([A-Za-z0-9_-]+)")


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    return {
        **app_overrides,
        "MAIL_SERVER": "localhost",
        "MAIL_PORT": servers.free_port(),
        "PUBLIC_URL": PUBLIC_URL,
    }


# --- helpers shared with test_public_page ----------------------------------------------------


def make_sign_on(**settings: Any) -> SignOn:
    """A statement in English, French and Russian with an open sign-on page."""
    statement = statements.create_statement(
        "Joint letter ahead of the summit",
        language="en",
        subject="Ahead of the summit",
        body="{{ salutation }}\n\nWe, the undersigned, call for **action**.\n\n{{ closing }}\n\n"
        "{{ signatories }}",
    )
    statements.set_text(
        statement,
        language="fr",
        subject="Avant le sommet",
        body="{{ salutation }}\n\nNous, soussignés, demandons des **actes**.",
    )
    statements.set_text(
        statement, language="ru", subject="Перед саммитом", body="Мы, нижеподписавшиеся, просим."
    )
    sign_on = open_sign_on(statement)
    if settings:
        values: dict[str, Any] = {
            "is_open": sign_on.is_open,
            "deadline": sign_on.deadline,
            "shows_names": sign_on.shows_names,
            "ordering": sign_on.ordering,
            "reminder_days": None,
            "consent_text": sign_on.consent_text,
            **settings,
        }
        update_settings(sign_on, **values)
    db.session.commit()
    return sign_on


def organisation_form(**changes: str) -> dict[str, str]:
    return {
        "kind": "organisation",
        "name": "Association for Human Rights in Central Asia",
        "acronym": "AHRCA",
        "country": "France",
        "exile_country": "",
        "publish_as": "full",
        "email": "contact@ahrca.example.org",
        "consent": "yes",
        **changes,
    }


def individual_form(**changes: str) -> dict[str, str]:
    return {
        "kind": "individual",
        "name": "Dilnoza Karimova",
        "role": "lawyer",
        "organisation": "Bar of Tashkent",
        "country": "Uzbekistan",
        "publish_as": "full",
        "email": "dilnoza@example.org",
        "consent": "yes",
        "wants_notice": "yes",
        **changes,
    }


def submit(
    sign_on: SignOn, form: dict[str, str], *, language: str = "en", **kwargs: Any
) -> signatures.SubmitResult:
    result = signatures.submit_signature(
        sign_on, form, language=language, client_ip=kwargs.pop("client_ip", "203.0.113.7"), **kwargs
    )
    db.session.commit()
    return result


def deliver(app: Flask, kind: str, target_id: int) -> list[EmailMessage]:
    """Run the notice job as the worker would and return what reached the mail sink."""
    config = app.config["CAMPAIGN_CONFIG"]
    with DevmailSink(config.devmail_path, config.MAIL_SERVER, config.MAIL_PORT):
        send_notice(kind, target_id, commit=db.session.commit)
    return mailbox_messages(app)


def mailbox_messages(app: Flask) -> list[EmailMessage]:
    path = app.config["CAMPAIGN_CONFIG"].devmail_path
    if not path.exists():
        return []
    return [
        email.message_from_bytes(bytes(m), policy=email.policy.default)  # type: ignore[misc]
        for m in mailbox.Maildir(path, create=False)
    ]


def link_token(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    found = LINK.search(body.get_content())
    assert found, body.get_content()
    return found.group(1)


def signature_count() -> int:
    return int(db.session.scalar(select(func.count()).select_from(Signature)) or 0)


# --- the e-mailed link ------------------------------------------------------------------------


def test_a_signature_is_unconfirmed_until_its_emailed_link_is_followed(app: Flask) -> None:
    sign_on = make_sign_on()
    result = submit(sign_on, organisation_form())
    assert result.outcome == signatures.SubmitOutcome.NEW
    signature = db.session.get(Signature, result.signature_id)
    assert signature is not None and signature.status == SignatureStatus.UNCONFIRMED.value
    [message] = deliver(app, "signature_confirmation", signature.id)
    assert message["To"] == "contact@ahrca.example.org"
    assert message["Subject"] == "Confirm your signature: Joint letter ahead of the summit"
    token = link_token(message)
    # Only the link's digest is stored, never the link itself.
    assert token not in (signature.confirm_hash or "")
    check = signatures.confirm_signature(token)
    db.session.commit()
    assert check.state == signatures.LinkState.VALID
    db.session.refresh(signature)
    assert signature.status == SignatureStatus.CONFIRMED.value
    assert signature.confirmed_at is not None


def test_the_email_is_in_the_signers_language_and_says_what_happens_next(app: Flask) -> None:
    sign_on = make_sign_on()
    french = submit(sign_on, individual_form(), language="fr")
    russian = submit(sign_on, organisation_form(email="ru@example.org"), language="ru")
    other = submit(sign_on, organisation_form(email="de@example.org"), language="de")
    assert french.signature_id and russian.signature_id and other.signature_id
    deliver(app, "signature_confirmation", french.signature_id)
    deliver(app, "signature_confirmation", russian.signature_id)
    by_address = {m["To"]: m for m in deliver(app, "signature_confirmation", other.signature_id)}
    fr = by_address["dilnoza@example.org"]
    assert fr["Subject"].startswith("Confirmez votre signature")
    # Read as a mail client does: the text part is format=flowed (wrapped at 72).
    assert "les organisateurs la vérifient" in unflow(fr.get_body(("plain",)).get_content())
    assert by_address["ru@example.org"]["Subject"].startswith("Подтвердите")
    assert by_address["de@example.org"]["Subject"].startswith("Confirm your signature")


def test_a_reused_link_says_already_confirmed_and_an_expired_one_says_sign_again(
    app: Flask,
) -> None:
    sign_on = make_sign_on()
    first = submit(sign_on, organisation_form())
    assert first.signature_id
    token = link_token(deliver(app, "signature_confirmation", first.signature_id)[0])
    signatures.confirm_signature(token)
    db.session.commit()
    again = signatures.confirm_signature(token)
    assert again.state == signatures.LinkState.USED

    late = submit(sign_on, individual_form())
    assert late.signature_id
    mails = deliver(app, "signature_confirmation", late.signature_id)
    late_token = link_token(next(m for m in mails if m["To"] == "dilnoza@example.org"))
    with pytest.raises(signatures.ConfirmationError, match=r"expired\. Sign again"):
        signatures.confirm_signature(late_token, now=datetime.now(UTC) + timedelta(hours=49))
    with pytest.raises(signatures.ConfirmationError, match="not valid"):
        signatures.confirm_signature("x" * 43)


def test_signing_again_before_confirming_sends_a_fresh_link_and_the_old_one_stops(
    app: Flask,
) -> None:
    sign_on = make_sign_on()
    first = submit(sign_on, organisation_form())
    assert first.signature_id
    old = link_token(deliver(app, "signature_confirmation", first.signature_id)[0])
    # Same address, same organisation spelt differently: the same signer, one row; the new
    # spelling waits for the signer's confirmation of the change (test_resubmission.py).
    respelt = submit(
        sign_on, organisation_form(name="association for human-rights in Central Asia.")
    )
    assert respelt.outcome == signatures.SubmitOutcome.CHANGE_PENDING
    assert respelt.signature_id == first.signature_id
    # The same form again (the first e-mail got lost): a fresh link, the old one stops.
    second = submit(sign_on, organisation_form())
    assert second.outcome == signatures.SubmitOutcome.RESENT
    assert second.signature_id == first.signature_id
    assert signature_count() == 1
    mails = deliver(app, "signature_confirmation", first.signature_id)
    tokens = {link_token(m) for m in mails}
    assert len(mails) == 2
    with pytest.raises(signatures.ConfirmationError, match="not valid"):
        signatures.confirm_signature(old)
    [new] = tokens - {old}
    assert signatures.confirm_signature(new).state == signatures.LinkState.VALID


def test_signing_again_after_confirming_stores_nothing_and_tells_the_address_owner(
    app: Flask,
) -> None:
    sign_on = make_sign_on()
    first = submit(sign_on, organisation_form())
    assert first.signature_id
    signatures.confirm_signature(
        link_token(deliver(app, "signature_confirmation", first.signature_id)[0])
    )
    db.session.commit()
    again = submit(sign_on, organisation_form())
    assert again.outcome == signatures.SubmitOutcome.ALREADY_SIGNED
    assert signature_count() == 1
    mails = deliver(app, "signature_already_signed", first.signature_id)
    assert any(m["Subject"].startswith("You have already signed") for m in mails)
    # A confirmed signature's link e-mail is not sent again.
    assert send_notice("signature_confirmation", first.signature_id, commit=db.session.commit) == 0


# --- bad input --------------------------------------------------------------------------------


def test_a_10000_character_name_is_refused_naming_the_field_and_its_limit(app: Flask) -> None:
    sign_on = make_sign_on()
    with pytest.raises(signatures.SignatureInputError) as refused:
        submit(sign_on, organisation_form(name="A" * 10_000, acronym="B" * 10_000))
    assert refused.value.errors["name"] == "Name: at most 300 characters (this one has 10,000)"
    assert refused.value.errors["acronym"].startswith("Acronym: at most 50 characters")
    assert signature_count() == 0


def test_every_missing_or_wrong_field_is_named(app: Flask) -> None:
    sign_on = make_sign_on()
    form = individual_form(
        kind="individual", name="  ", email="not an address", publish_as="organisation_only"
    )
    form["organisation"] = ""
    del form["consent"]
    with pytest.raises(signatures.SignatureInputError) as refused:
        submit(sign_on, form)
    assert set(refused.value.errors) == {"name", "email", "organisation", "consent"}
    assert refused.value.errors["email"].startswith("E-mail: 'not an address' is not a valid")


def test_line_breaks_in_a_name_collapse_and_cannot_add_a_mail_header(app: Flask) -> None:
    sign_on = make_sign_on()
    result = submit(sign_on, individual_form(name="Eve\r\nBcc: victim@example.org\r\n\r\nhi"))
    assert result.signature_id
    signature = db.session.get(Signature, result.signature_id)
    assert signature is not None and signature.name == "Eve Bcc: victim@example.org hi"
    [message] = deliver(app, "signature_confirmation", result.signature_id)
    assert message["Bcc"] is None
    assert message.get_all("To") == ["dilnoza@example.org"]
    [received] = mailbox.Maildir(app.config["CAMPAIGN_CONFIG"].devmail_path, create=False)
    assert received.get_all("Delivered-To") == ["dilnoza@example.org"]
    # In the e-mail's address itself a line break is simply refused.
    with pytest.raises(signatures.SignatureInputError) as refused:
        submit(sign_on, individual_form(email="eve@example.org\r\nBcc: victim@example.org"))
    assert set(refused.value.errors) == {"email"}


def test_invisible_control_characters_are_refused(app: Flask) -> None:
    sign_on = make_sign_on()
    with pytest.raises(signatures.SignatureInputError) as refused:
        submit(sign_on, organisation_form(name="Real\u202eeman"))
    assert "invisible control character" in refused.value.errors["name"]


def test_after_the_deadline_or_when_closed_nothing_is_stored(app: Flask) -> None:
    sign_on = make_sign_on(deadline=datetime.now(UTC) + timedelta(days=1))
    later = datetime.now(UTC) + timedelta(days=2)
    with pytest.raises(signatures.SignOnClosed, match="deadline to sign this statement has passed"):
        submit(sign_on, organisation_form(), now=later)
    sign_on.is_open = False
    db.session.commit()
    with pytest.raises(signatures.SignOnClosed, match="closed for signatures"):
        submit(sign_on, organisation_form())
    assert signature_count() == 0


def test_the_honeypot_is_answered_as_accepted_and_stores_nothing(app: Flask) -> None:
    sign_on = make_sign_on()
    result = submit(sign_on, organisation_form(website="http://spam.example"))
    assert result.outcome == signatures.SubmitOutcome.IGNORED
    assert signature_count() == 0


# --- rate limits ------------------------------------------------------------------------------


def test_rate_limits_per_address_per_network_and_per_page(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_on = make_sign_on()
    monkeypatch.setattr(signatures, "PER_EMAIL_PER_HOUR", 2)
    monkeypatch.setattr(signatures, "PER_NETWORK_PER_HOUR", 3)
    monkeypatch.setattr(signatures, "PER_SIGN_ON_PER_HOUR", 4)
    submit(sign_on, organisation_form(name="One"))
    submit(sign_on, organisation_form(name="Two"))
    with pytest.raises(signatures.SigningTooOften, match=r"e-mail address .* too often") as limited:
        submit(sign_on, organisation_form(name="Three"))
    assert 0 < limited.value.retry_after <= 3600
    submit(sign_on, individual_form(), client_ip="203.0.113.200")
    with pytest.raises(signatures.SigningTooOften, match="from your network"):
        submit(sign_on, individual_form(email="x@example.org"), client_ip="203.0.113.9")
    submit(sign_on, individual_form(email="y@example.org"), client_ip="198.51.100.1")
    with pytest.raises(signatures.SigningTooOften, match="unusual number"):
        submit(sign_on, individual_form(email="z@example.org"), client_ip="192.0.2.1")
    assert signature_count() == 4


def test_networks_are_ipv4_slash_24_and_ipv6_slash_48() -> None:
    assert signatures.client_network("203.0.113.77") == "203.0.113.0/24"
    assert signatures.client_network("::ffff:203.0.113.9") == "203.0.113.0/24"
    assert signatures.client_network("2001:db8:1:2::1") == "2001:db8:1::/48"
    assert signatures.client_network("") == "unknown"


# --- what the public may see ------------------------------------------------------------------


def approve(signature: Signature) -> None:
    """What an editor's approval does (the moderation service is someone else's)."""
    sign_on = db.session.get(SignOn, signature.sign_on_id)
    assert sign_on is not None
    statement = db.session.get(Statement, sign_on.statement_id)
    assert statement is not None
    signatory = statements.add_signatory(statement, as_signatory_values(signature))
    signature.status = SignatureStatus.APPROVED.value
    signature.signatory_id = signatory.id
    db.session.commit()
