"""Test letters: a campaign's letter as one contact would get it, sent to staff only.

Sent through the campaign's SMTP account (so the relay, its DKIM signature and its limits
on the From address are tried for real), with "[Test]" before the subject and no
unsubscribe or tracking headers. It is not a delivery: no ledger row, not counted in any
figure; the audit log records who sent which contact's letter to whom (decision 0046).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from types import SimpleNamespace
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select

from campaign.dkim import DkimSigningError
from campaign.extensions import db
from campaign.letters.letter import render_letter
from campaign.mail import (
    MessageError,
    SendError,
    encode_address,
    make_message_id,
    message_id_domain,
    send_message,
)
from campaign.models import AuditEvent, Campaign, Contact, Statement, User
from campaign.services.accounts.audit import record_event
from campaign.services.schedules.cases import cases_context
from campaign.services.sending import campaigns as campaign_service
from campaign.services.sending.smtp_accounts import settings_for
from campaign.services.statements import files as statement_files
from campaign.services.statements.complete_letters import ComposedLetter, compose_letter
from campaign.services.statements.salutation_rules import current_rule_set
from campaign.services.statements.statements import letter_source
from campaign.smtp import Outcome, SmtpConnection

SUBJECT_PREFIX = "[Test] "
# The contact picker offers this many recipients of the audience.
MAX_CHOICES = 200
# At most this many staff receive one test.
MAX_RECIPIENTS = 10
# A person sends at most this many test letters an hour (counted in the audit log): a
# test goes through the real relay and spends its daily quota.
TESTS_PER_HOUR = 10
AUDIT_ACTION = "campaign.test_letter"
# The preview's test of a statement (send_preview_test_letter below): the same rule.
PREVIEW_AUDIT_ACTION = "letter.test_send"


class TestLetterError(ValueError):
    """The test letter cannot be sent; the message says why, in words. `audited`: the
    attempt is in the audit log (the caller commits it rather than rolling back)."""

    __test__ = False  # not a pytest class

    def __init__(self, message: str, *, audited: bool = False) -> None:
        super().__init__(message)
        self.audited = audited


@dataclass(frozen=True)
class TestLetterResult:
    __test__ = False

    sent_to: list[str]
    subject: str


def contact_choices(campaign: Campaign) -> list[tuple[int, str]]:
    """(id, "Name <address>") of the campaign's first recipients, to pick the letter's reader."""
    try:
        query = campaign_service.recipients_query(campaign)
    except campaign_service.CampaignError:
        return []
    contacts = db.session.scalars(
        query.order_by(Contact.family_name, Contact.id).limit(MAX_CHOICES)
    )
    return [(c.id, contact_label(c)) for c in contacts]


def contact_label(contact: Any) -> str:
    name = " ".join(p for p in (contact.given_name, contact.family_name) if p)
    return f"{name or contact.organisation or contact.email} <{contact.email}>"


def staff_choices() -> list[User]:
    """Active staff accounts, who may receive a test letter."""
    return list(
        db.session.scalars(
            select(User).where(User.is_active_account.is_(True)).order_by(User.email)
        )
    )


def _recipient(campaign: Campaign, contact_id: int | None) -> Contact | None:
    """The contact, if the campaign would write to them (the audience, not suppressed)."""
    if contact_id is None:
        return None
    try:
        query = campaign_service.recipients_query(campaign)
    except campaign_service.CampaignError:
        return None
    return db.session.scalar(query.where(Contact.id == contact_id))


def refuse_too_many(actor: User | None) -> None:
    """TestLetterError when `actor` sent TESTS_PER_HOUR tests (campaign or preview) this hour."""
    if actor is None:
        return  # a script: no person to limit
    since = datetime.now(UTC) - timedelta(hours=1)
    sent = db.session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(
            AuditEvent.action.in_((AUDIT_ACTION, PREVIEW_AUDIT_ACTION)),
            AuditEvent.actor_id == actor.id,
            AuditEvent.at >= since,
        )
    )
    if (sent or 0) >= TESTS_PER_HOUR:
        raise TestLetterError(
            _(
                "You sent %(num)d test letters in the last hour, the most allowed: try again later",
                num=TESTS_PER_HOUR,
            )
        )


def send_test_letter(
    campaign: Campaign, contact_id: int | None, user_ids: Sequence[int], *, actor: User
) -> TestLetterResult:
    """Send the letter `contact_id` would get to the chosen staff; raise TestLetterError.

    Each colleague's copy names them in To (no Cc: a reply-all must not reach the contact)
    and the contact in an X-Test-For header; the letter is merged and attached as the
    campaign sends it (its cases, its chosen files).
    """
    contact = _recipient(campaign, contact_id)
    if contact is None:
        raise TestLetterError(
            _("Contact: choose whose letter to send as a test among the campaign's recipients")
        )
    users = [u for u in staff_choices() if u.id in set(user_ids)]
    if not users:
        raise TestLetterError(_("Send to: choose yourself or at least one colleague"))
    if len(users) > MAX_RECIPIENTS:
        raise TestLetterError(
            _("Send to: at most %(num)d people receive one test letter", num=MAX_RECIPIENTS)
        )
    refuse_too_many(actor)
    statement = db.session.get(Statement, campaign.statement_id)
    if statement is None or not statement.texts:
        raise TestLetterError(_("Statement: it has no text to send"))
    source = letter_source(statement)
    rules = current_rule_set()
    reader = SimpleNamespace(
        **{column.key: getattr(contact, column.key) for column in Contact.__table__.columns}
    )
    cases = cases_context(campaign)
    try:
        files = statement_files.campaign_files(campaign, None)
    except statement_files.FileMissing as missing:
        raise TestLetterError(str(missing.message)) from None
    rendered = render_letter(source, reader, rules=rules, cases=cases)
    subject = SUBJECT_PREFIX + rendered.subject
    settings = settings_for(campaign.smtp_account)
    messages = []
    for user in users:
        try:
            recipient = encode_address(user.email, field="To")
        except MessageError as error:
            raise TestLetterError(str(error)) from None
        composed = compose_letter(
            source,
            reader,
            rules=rules,
            sender=campaign.from_address,
            reply_to=campaign.reply_to or None,
            message_id=make_message_id(message_id_domain(campaign.from_address)),
            attach_pdf=campaign.is_pdf_attached,
            fixed_subject=subject,
            cases=cases,
            files=files,
            to=(user.display_name or "", user.email),
            extra_headers={"X-Test-For": contact_label(contact)},
        )
        if composed.message is None:
            errors = [p.message for p in composed.letter.problems if p.severity == "error"]
            raise TestLetterError(
                _(
                    "The letter cannot be built: %(reason)s",
                    reason="; ".join(str(e) for e in errors) or composed.error,
                )
            )
        data = composed.message
        if settings.dkim_signer is not None:
            try:
                data = settings.dkim_signer.sign(data)
            except DkimSigningError as problem:
                raise TestLetterError(str(problem)) from None
        messages.append((user, recipient, data))
    envelope_from = parseaddr(campaign.from_address)[1]
    sent_to: list[str] = []
    failed = ""
    try:
        with SmtpConnection(settings, helo_name=message_id_domain(campaign.from_address)) as smtp:
            for user, recipient, data in messages:
                outcome = smtp.send(envelope_from, recipient, data)
                if outcome.kind != Outcome.SENT:
                    failed = f"{user.email}: {outcome.summary}"
                    raise TestLetterError(
                        _(
                            "The mail server did not take the test for %(address)s: %(reply)s",
                            address=user.email,
                            reply=outcome.summary,
                        ),
                        audited=True,
                    )
                sent_to.append(user.email)
    finally:
        # Recorded whatever happened at the relay: what left, and why the rest did not; a
        # failed test counts toward the hourly limit too (it spent the relay's quota).
        detail: dict[str, object] = {"contact_id": contact.id, "sent_to": sent_to}
        detail["subject"] = subject
        if failed:
            detail["failed"] = failed
        record_event(
            AUDIT_ACTION,
            target_type="campaign",
            target_id=campaign.id,
            actor=actor,
            detail=detail,
        )
        db.session.flush()
    return TestLetterResult(sent_to, subject)


class LetterNotSent(RuntimeError):
    """A test letter could not be built or sent; the message says why."""


def send_preview_test_letter(
    statement: Any,
    contact: object,
    *,
    to: str,
    language: str | None = None,
    cases: list[dict[str, Any]] | None = None,
    actor: Any = None,
) -> ComposedLetter:
    """The preview's test: send `contact`'s letter of `statement` (no campaign yet) to `to`
    only (a member of staff) and record it in the audit log.

    The rule of a campaign's test letter (send_test_letter above): "[Test]" before the
    subject, the member of staff in To (a reply-all must not reach the contact), the contact
    named in X-Test-For, and the same hourly limit per person. `cases` is the
    `{% for case in cases %}` data the preview merged, so the test shows the same.
    """
    try:
        refuse_too_many(actor)
    except TestLetterError as error:
        raise LetterNotSent(str(error)) from None
    subject = render_letter(
        letter_source(statement), contact, language=language, cases=cases or []
    ).subject
    composed = compose_letter(
        statement,
        contact,
        language=language,
        cases=cases or [],
        fixed_subject=SUBJECT_PREFIX + subject,
        to=("", to),
        extra_headers={"X-Test-For": contact_label(contact)},
    )
    if composed.message is None:
        raise LetterNotSent(composed.error)
    try:
        send_message(
            composed.message, sender=str(current_app.config["MAIL_DEFAULT_SENDER"]), recipients=[to]
        )
    except SendError as error:
        raise LetterNotSent(str(error)) from None
    record_event(
        PREVIEW_AUDIT_ACTION,
        target_type="statement",
        actor=actor,
        target_id=composed.letter.statement_id,
        detail={"contact_id": composed.letter.contact_id, "language": composed.letter.language},
    )
    return composed
