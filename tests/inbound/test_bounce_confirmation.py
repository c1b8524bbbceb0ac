"""A bounce changes the ledger only when it proves which letter bounced; anyone can forge text."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from campaign.extensions import db
from campaign.inbound.reply_token import reply_token
from campaign.models import AuditEvent, Delivery
from campaign.services.contacts.suppressions import find_suppression, is_suppressed
from campaign.services.replies.intake import record_inbound
from tests.factories import CampaignFactory
from tests.inbound.helpers import SENT_AT, corpus, delivery, sent_campaign

REPLY_ADDRESS = "replies@hro.example.org"


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    return {**app_overrides, "REPLY_ADDRESS": REPLY_ADDRESS}


def _forged_bounce(*, sent_to: str = "office@hro.example.org") -> bytes:
    """qmail's wording, written by an attacker: no DSN, no null path, none of our ids."""
    return (
        "From: MAILER-DAEMON@evil.example\r\n"
        f"To: {sent_to}\r\n"
        "Subject: failure notice\r\n"
        "Date: Wed, 5 Mar 2025 08:40:12 +0000\r\n"
        "Message-ID: <forged.1@evil.example>\r\n\r\n"
        "Hi. This is the qmail-send program at mx.example.org.\r\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
        "<dana@example.org>:\r\n"
        "Sorry, no mailbox here by that name. (#5.1.1)\r\n"
    ).encode()


def _launch_again_to(address: str) -> int:
    """A second campaign to the same contact, launched (queued) but not sent: its id."""
    campaign = CampaignFactory(
        name="Second letter",
        statement__subject="Another letter",
        statement__body="Text.\n",
        recipients=[address],  # the contact that has it
        from_address="Human Rights Office <office@hro.example.org>",
        launched=True,
        commit=True,
    )
    queued = db.session.query(Delivery).filter_by(campaign_id=campaign.id).one()
    assert queued.sent_at is None
    return queued.id


def test_a_forged_bounce_naming_a_contact_is_linked_for_checking_and_changes_nothing(
    app: Flask,
) -> None:
    deliveries = sent_campaign()
    dana = deliveries["dana@example.org"]
    queued = _launch_again_to("dana@example.org")

    result = record_inbound(_forged_bounce())
    db.session.commit()

    record = result.message
    assert (record.kind, record.bounce_kind) == ("bounce", "hard")
    assert list(result.recipients) == ["dana@example.org"]
    # Shown beside the letter actually sent to Dana (not the newer one still queued),
    # marked for a person to check.
    assert record.delivery_id == dana != queued
    assert (record.match_method, record.is_weak_match) == ("bounced_recipient", True)
    # Dana can still be written to.
    assert delivery(dana).status == "sent"
    assert delivery(queued).status == "queued"
    assert not is_suppressed("dana@example.org")


def test_an_address_only_bounce_before_the_letter_was_sent_is_linked_to_nothing(
    app: Flask,
) -> None:
    deliveries = sent_campaign()
    dana = deliveries["dana@example.org"]
    db.session.execute(
        update(Delivery).where(Delivery.id == dana).values(sent_at=SENT_AT + timedelta(days=30))
    )
    db.session.commit()

    record = record_inbound(_forged_bounce()).message
    db.session.commit()

    assert (record.kind, record.delivery_id) == ("bounce", None)


def test_a_bounce_to_the_letters_signed_reply_address_is_confirmed(app: Flask) -> None:
    deliveries = sent_campaign()
    dana = deliveries["dana@example.org"]
    token_address = f"replies+{reply_token(dana)}@hro.example.org"

    record = record_inbound(_forged_bounce(sent_to=token_address)).message
    db.session.commit()

    assert (record.delivery_id, record.match_method, record.is_weak_match) == (
        dana,
        "reply_token",
        False,
    )
    assert (delivery(dana).status, delivery(dana).reason) == ("bounced", "hard_bounce")
    assert is_suppressed("dana@example.org")


def test_a_quoted_qmail_bounce_still_bounces_and_suppresses(app: Flask) -> None:
    deliveries = sent_campaign()

    record = record_inbound(corpus("qmail_failure.eml")).message
    db.session.commit()

    assert (record.match_method, record.is_weak_match) == ("bounced_message", False)
    assert delivery(deliveries["dana@example.org"]).status == "bounced"
    assert is_suppressed("dana@example.org")


@pytest.mark.parametrize("keeps_original_recipient", [True, False])
def test_a_bounce_from_an_expanded_alias_bounces_the_quoted_letter(
    app: Flask, keeps_original_recipient: bool
) -> None:
    deliveries = sent_campaign()
    ana = deliveries["ana@example.org"]
    raw = corpus("postfix_dsn.eml").replace(
        b"Final-Recipient: rfc822; ana@example.org",
        b"Final-Recipient: rfc822; a.lima@mailhost.example.net",
    )
    if not keeps_original_recipient:
        raw = raw.replace(b"Original-Recipient: rfc822;ana@example.org\n", b"")

    result = record_inbound(raw)
    db.session.commit()

    # The address we wrote to is reported when the report names it (Original-Recipient).
    reported = "ana@example.org" if keeps_original_recipient else "a.lima@mailhost.example.net"
    assert list(result.recipients) == [reported]
    assert result.message.delivery_id == ana
    assert (delivery(ana).status, delivery(ana).reason) == ("bounced", "hard_bounce")
    # The address we wrote to is the one not to write to again.
    assert is_suppressed("ana@example.org")
    assert not is_suppressed("a.lima@mailhost.example.net")


def test_a_hard_bounce_puts_the_address_on_the_list_once_and_audits_it_masked(
    app: Flask,
) -> None:
    deliveries = sent_campaign()
    campaign_id = delivery(deliveries["ana@example.org"]).campaign_id

    record_inbound(corpus("postfix_dsn.eml"))
    # The same report again, from another relay (other bytes): nothing more is added.
    record_inbound(corpus("postfix_dsn.eml").replace(b"id 4Zx1y2", b"id 4Zx1y3"))
    db.session.commit()

    entry = find_suppression("ANA@example.org")
    assert entry is not None
    assert (entry.reason, entry.campaign_id, entry.note, entry.created_by_id) == (
        "hard_bounce",
        campaign_id,
        "Hard bounce received",
        None,
    )
    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "suppression.add")
    ).all()
    assert [(e.target_id, e.actor_id, e.detail) for e in events] == [
        (
            str(entry.id),
            None,
            {"email": "a***@example.org", "reason": "hard_bounce", "campaign_id": campaign_id},
        )
    ]
