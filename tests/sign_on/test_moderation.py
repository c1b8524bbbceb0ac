"""Editors' moderation of sign-on signatures: approve, reject, correct (the signer is told),
merge duplicates and order the list (campaign/services/sign_on/moderation.py)."""

from __future__ import annotations

import itertools
import mailbox
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from campaign.devmail import DevmailSink
from campaign.extensions import db
from campaign.models import (
    AuditEvent,
    Role,
    Signatory,
    Signature,
    SignatureStatus,
    SignOn,
    SignOnOrder,
    Statement,
)
from campaign.services.sending.notices import send_notice
from campaign.services.sign_on import moderation as sign_on_moderation
from campaign.services.sign_on import pages as sign_on
from campaign.services.sign_on.moderation import ModerationError
from campaign.services.statements import statements
from tests import servers
from tests.conftest import make_user

BODY = "{{ salutation }}\n\nWe call for the release of the defenders.\n\n{{ signatories }}\n"
AHRCA = "Association for Human Rights in Central Asia"
_SIGNERS = itertools.count(1)


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    return {**app_overrides, "MAIL_SERVER": "localhost", "MAIL_PORT": servers.free_port()}


@pytest.fixture
def page(app: Flask) -> SignOn:
    statement = statements.create_statement(
        "Free the defenders", language="en", subject="Release them", body=BODY
    )
    opened = sign_on.open_sign_on(statement)
    db.session.commit()
    return opened


def add_signature(
    page: SignOn,
    name: str,
    *,
    email: str = "",
    status: SignatureStatus = SignatureStatus.CONFIRMED,
    kind: str = "organisation",
    acronym: str = "",
    language: str = "en",
    publish_as: str = "full",
    country: str = "",
) -> Signature:
    email = email or f"signer{next(_SIGNERS)}@example.org"
    signature = Signature(
        sign_on_id=page.id,
        kind=kind,
        name=name,
        acronym=acronym,
        country=country,
        publish_as=publish_as,
        email=email,
        email_key=sign_on.email_key(email),
        name_key=sign_on.name_key(name),
        language=language,
        status=status.value,
    )
    db.session.add(signature)
    db.session.commit()
    return signature


def statement_of(page: SignOn) -> Statement:
    statement = db.session.get(Statement, page.statement_id)
    assert statement is not None
    return statement


def test_approving_makes_a_signatory_in_a_new_statement_version(page: SignOn) -> None:
    editor = make_user(Role.EDITOR)
    signature = add_signature(page, AHRCA, acronym="AHRCA", country="Uzbekistan")
    statement = statement_of(page)
    before = statements.latest_version(statement)
    assert before is not None

    signatory = sign_on_moderation.approve(signature, actor=editor)
    db.session.commit()

    assert signature.status == SignatureStatus.APPROVED.value
    assert signature.signatory_id == signatory.id
    assert signature.moderated_by_id == editor.id and signature.moderated_at is not None
    assert [(s.name, s.acronym, s.country) for s in statement.signatories] == [
        (AHRCA, "AHRCA", "Uzbekistan")
    ]
    after = statements.latest_version(statement)
    assert after is not None and after.number == before.number + 1
    assert [s["name"] for s in after.snapshot["signatories"]] == [AHRCA]
    assert [p.name for p in sign_on.public_signatories(page)] == [AHRCA]
    # The audit log says who approved which row, never the signer's name or address.
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "signature.approve")
    ).one()
    assert event.target_id == str(signature.id) and event.actor_id == editor.id
    assert AHRCA not in str(event.detail) and signature.email not in str(event.detail)


def test_a_campaign_launched_before_keeps_its_frozen_version(page: SignOn) -> None:
    statement = statement_of(page)
    frozen = statements.latest_version(statement)
    assert frozen is not None
    sign_on_moderation.approve(add_signature(page, "Later Signer NGO"))
    db.session.commit()
    # The version a launch froze is unchanged; the approval is the next one.
    db.session.refresh(frozen)
    assert frozen.snapshot["signatories"] == []
    latest = statements.latest_version(statement)
    assert latest is not None and latest.number == frozen.number + 1


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (SignatureStatus.UNCONFIRMED, "not confirmed by the signer yet"),
        (SignatureStatus.APPROVED, "approved already"),
        (SignatureStatus.REJECTED, "rejected already"),
        (SignatureStatus.MERGED, "merged into another"),
    ],
)
def test_only_a_confirmed_signature_can_be_approved(
    page: SignOn, status: SignatureStatus, words: str
) -> None:
    signature = add_signature(page, "Unsure Org", status=status)
    with pytest.raises(ModerationError, match=words):
        sign_on_moderation.approve(signature)
    db.session.rollback()
    assert statement_of(page).signatories == []


def test_unconfirmed_signatures_never_reach_the_public_list(page: SignOn) -> None:
    add_signature(page, "Ghost Org", status=SignatureStatus.UNCONFIRMED)
    add_signature(page, "Waiting Org")  # confirmed, not approved yet
    sign_on_moderation.approve(add_signature(page, "Approved Org"))
    db.session.commit()
    assert [p.name for p in sign_on.public_signatories(page)] == ["Approved Org"]


def test_rejecting_an_approved_signature_takes_it_off_the_list(page: SignOn) -> None:
    waiting = add_signature(page, "Spam Org")
    approved = add_signature(page, "Mistake Org")
    sign_on_moderation.approve(approved)
    db.session.commit()
    sign_on_moderation.reject(waiting)
    sign_on_moderation.reject(approved)
    db.session.commit()
    assert waiting.status == approved.status == SignatureStatus.REJECTED.value
    assert statement_of(page).signatories == []
    assert sign_on.public_signatories(page) == []


# --- corrections -----------------------------------------------------------------------------


def _received(app: Flask) -> list[EmailMessage]:
    config = app.config["CAMPAIGN_CONFIG"]
    found = []
    for raw in mailbox.Maildir(config.devmail_path, create=False):
        parsed = message_from_bytes(raw.as_bytes(), policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        found.append(parsed)
    return found


def _send_edit_notices(app: Flask, signature: Signature) -> int:
    config = app.config["CAMPAIGN_CONFIG"]
    with DevmailSink(config.devmail_path, config.MAIL_SERVER, config.MAIL_PORT):
        return send_notice("signature_edited", signature.id, commit=db.session.commit)


def test_correcting_a_typo_tells_the_signer_before_and_after(app: Flask, page: SignOn) -> None:
    signature = add_signature(
        page, "Asociation for Human Rights", email="office@ahr.example.org", language="fr"
    )
    sign_on_moderation.approve(signature)
    db.session.commit()
    values = {**sign_on_moderation.signer_fields(signature), "name": "Association for Human Rights"}

    changed = sign_on_moderation.edit(signature, values)
    db.session.commit()

    assert changed == [("name", "Asociation for Human Rights", "Association for Human Rights")]
    assert [s.name for s in statement_of(page).signatories] == ["Association for Human Rights"]
    assert signature.name_key == sign_on.name_key("Association for Human Rights")
    assert _send_edit_notices(app, signature) == 1
    [message] = _received(app)
    assert message["To"] == "office@ahr.example.org"
    # French typography: no-break spaces before the colon and inside the quotes.
    assert (
        message["Subject"] == "Votre signature de «\u00a0Free the defenders\u00a0» a été corrigée"
    )
    expected = (
        "Nom\u00a0: «\u00a0Asociation for Human Rights\u00a0» "
        "→ «\u00a0Association for Human Rights\u00a0»"
    )
    # The text is wrapped at 72 (format=flowed; this indented line on fixed lines).
    assert expected in " ".join(message.get_content().split(" \n")).replace("\n   ", " ")
    # The job running twice (RQ may) e-mails nobody a second time.
    assert _send_edit_notices(app, signature) == 0
    assert len(_received(app)) == 1


def test_a_correction_in_russian_names_the_field_in_russian(app: Flask, page: SignOn) -> None:
    signature = add_signature(
        page, "Мемориал", email="info@memo.example.org", language="ru", country="Russia"
    )
    values = {**sign_on_moderation.signer_fields(signature), "country": "Россия"}
    sign_on_moderation.edit(signature, values)
    db.session.commit()
    assert _send_edit_notices(app, signature) == 1
    [message] = _received(app)
    assert message["Subject"] == "Ваша подпись под «Free the defenders» исправлена"
    assert "Страна: «Russia» → «Россия»" in message.get_content()


def test_a_rolled_back_correction_tells_nobody(app: Flask, page: SignOn) -> None:
    signature = add_signature(page, "Typo Org")
    values = {**sign_on_moderation.signer_fields(signature), "name": "Typed Org"}
    sign_on_moderation.edit(signature, values)
    db.session.rollback()
    assert _send_edit_notices(app, signature) == 0
    assert signature.name == "Typo Org"


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("name", "   ", "Name: give your organisation's name"),
        ("acronym", "A" * 51, "Acronym: at most 50 characters"),
        ("country", "Fr\u202eance", "Country: contains an invisible control character"),
        ("publish_as", "everyone", "Publish my signature: choose"),
        ("kind", "robot", "Signing as: choose an organisation or an individual"),
    ],
)
def test_a_bad_correction_names_the_field_and_changes_nothing(
    page: SignOn, field: str, value: str, words: str
) -> None:
    signature = add_signature(page, "Good Org")
    values = {**sign_on_moderation.signer_fields(signature), field: value}
    with pytest.raises(ModerationError, match=words) as caught:
        sign_on_moderation.edit(signature, values)
    assert caught.value.field == field
    db.session.rollback()
    assert sign_on_moderation.signer_fields(signature)[field] != value


def test_line_breaks_in_a_correction_become_spaces(page: SignOn) -> None:
    signature = add_signature(page, "Good Org")
    values = {**sign_on_moderation.signer_fields(signature), "name": "Good\r\nBcc: x@evil.example"}
    sign_on_moderation.edit(signature, values)
    db.session.commit()
    assert signature.name == "Good Bcc: x@evil.example"


# --- duplicates ------------------------------------------------------------------------------


def test_the_same_organisation_spelt_twice_is_flagged_and_merged(page: SignOn) -> None:
    first = add_signature(page, AHRCA, acronym="AHRCA")
    second = add_signature(page, "association for human-rights in central asia.")
    third = add_signature(page, "Assoc. HR Central Asia", acronym="ahrca")
    add_signature(page, "Unrelated Org", acronym="UO")
    add_signature(page, AHRCA, status=SignatureStatus.UNCONFIRMED, email="x@example.org")
    for signature in (first, second, third):
        sign_on_moderation.approve(signature)
    db.session.commit()

    [group] = sign_on_moderation.duplicate_groups(page)
    assert [s.id for s in group.signatures] == [first.id, second.id, third.id]
    assert any("AHRCA" in reason for reason in group.reasons)
    assert any("same name" in reason for reason in group.reasons)

    removed_id = second.signatory_id
    sign_on_moderation.merge(second, first)
    sign_on_moderation.merge(third, first)
    db.session.commit()

    assert second.status == third.status == SignatureStatus.MERGED.value
    assert second.merged_into_id == first.id and second.signatory_id is None
    assert db.session.get(Signatory, removed_id) is None
    assert [s.name for s in statement_of(page).signatories] == [AHRCA]
    assert sign_on_moderation.duplicate_groups(page) == []


def test_a_merge_needs_two_moderated_signatures(page: SignOn) -> None:
    kept = add_signature(page, "Kept Org")
    ghost = add_signature(page, "Kept Org", status=SignatureStatus.UNCONFIRMED, email="g@x.org")
    with pytest.raises(ModerationError, match="not confirmed"):
        sign_on_moderation.merge(ghost, kept)
    with pytest.raises(ModerationError, match="keep another one"):
        sign_on_moderation.merge(kept, ghost)
    with pytest.raises(ModerationError, match="itself"):
        sign_on_moderation.merge(kept, kept)


# --- custom order ----------------------------------------------------------------------------


def test_custom_order_moves_signatories(page: SignOn) -> None:
    names = ["First Org", "Jane Doe", "Second Org"]
    kinds = ["organisation", "individual", "organisation"]
    for name, kind in zip(names, kinds, strict=True):
        sign_on_moderation.approve(add_signature(page, name, kind=kind))
    db.session.commit()
    statement = statement_of(page)
    assert [p.name for p in sign_on.public_signatories(page)] == [
        "First Org",
        "Second Org",
        "Jane Doe",
    ]
    jane = next(s for s in statement.signatories if s.name == "Jane Doe")
    with pytest.raises(ModerationError, match="custom order") as caught:
        sign_on_moderation.move(page, jane, -1)
    assert caught.value.field == "ordering"

    # The custom order starts from the order shown (organisations first, as the letters
    # printed it), not from the order of approval.
    page.ordering = SignOnOrder.CUSTOM.value
    assert sign_on_moderation.move(page, jane, -1)
    db.session.commit()
    assert [p.name for p in sign_on.public_signatories(page)] == [
        "First Org",
        "Jane Doe",
        "Second Org",
    ]
    assert sign_on_moderation.move(page, jane, -1)
    db.session.commit()
    assert [p.name for p in sign_on.public_signatories(page)] == [
        "Jane Doe",
        "First Org",
        "Second Org",
    ]
    assert not sign_on_moderation.move(page, jane, -1)  # already first
