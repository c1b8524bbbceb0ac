"""A bounce for a copy (Cc) address is about that address, never the contact's own."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Contact, Delivery
from campaign.services.contacts.suppressions import find_suppression, is_suppressed
from campaign.services.replies.intake import record_inbound
from tests.inbound.helpers import corpus, delivery, sent_campaign


def _only_the_failed_cc() -> bytes:
    """The usual report (NOTIFY=FAILURE): only the failed Cc, nothing about Ana."""
    raw = corpus("dsn_mixed_outcomes.eml")
    start = raw.index(b"Original-Recipient: rfc822;ana@example.org")
    raw = raw[:start] + raw[raw.index(b"Final-Recipient: rfc822; registry@") :]
    return (
        raw[: raw.index(b"Final-Recipient: rfc822; press@")]
        + raw[raw.index(b"--=_mixed_4Zy7\nContent-Type: text/rfc822") :]
    )


def _give_ana_copies(deliveries: dict[str, int], copies: str) -> None:
    contact_id = db.session.scalar(
        select(Delivery.contact_id).where(Delivery.id == deliveries["ana@example.org"])
    )
    contact = db.session.get(Contact, contact_id)
    assert contact is not None
    contact.cc_emails = copies
    db.session.commit()


def test_a_failed_copy_address_does_not_bounce_the_contact(app: Flask) -> None:
    deliveries = sent_campaign()
    _give_ana_copies(deliveries, "registry@embassy.example press@embassy.example")
    raw = _only_the_failed_cc()
    assert b"Action: delivered" not in raw

    result = record_inbound(raw)
    db.session.commit()

    # Recorded as the address that failed, linked to Ana's letter for a person to see...
    assert result.recipients == {"registry@embassy.example": "hard"}
    ana = delivery(deliveries["ana@example.org"])
    assert result.message.delivery_id == ana.id
    # ... but Ana's letter reached her: not bounced, and she stays writable.
    assert ana.status == "sent"
    assert not is_suppressed("ana@example.org")
    # The copy address itself is gone: it is on the list, noted as a copy of Ana's letter.
    entry = find_suppression("registry@embassy.example")
    assert entry is not None and entry.reason == "hard_bounce"
    assert "ana@example.org" in entry.note
    assert not is_suppressed("press@embassy.example")


def test_a_copy_named_in_the_quoted_letter_is_not_taken_for_an_alias(app: Flask) -> None:
    # The contact's copy addresses changed since (or were never stored): the quoted letter's
    # own Cc header still shows the reported address was another recipient, not Ana's alias.
    deliveries = sent_campaign()

    record_inbound(_only_the_failed_cc())
    db.session.commit()

    ana = delivery(deliveries["ana@example.org"])
    assert ana.status == "sent"
    assert not is_suppressed("ana@example.org")
    # Not one of the copies we write to now: nothing to put on the list on a quote's word.
    assert not is_suppressed("registry@embassy.example")
