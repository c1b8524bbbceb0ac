"""Delivery status reports read as RFC 3464 allows: comments on Action and Status, the
Original-Recipient as the address we wrote to, and each recipient of a report on its own."""

from __future__ import annotations

import pytest
from flask import Flask

from campaign.extensions import db
from campaign.inbound.classify import classify
from campaign.inbound.parsing import dsn_address, parse_message
from campaign.services.contacts.suppressions import is_suppressed
from campaign.services.replies.intake import record_inbound
from tests.inbound.helpers import corpus, delivery, sent_campaign


def test_an_action_with_a_comment_and_a_status_with_text_is_a_hard_bounce(app: Flask) -> None:
    deliveries = sent_campaign()

    result = record_inbound(corpus("dsn_action_comment.eml"))
    db.session.commit()

    # "Action: failed (Bad destination mailbox address)" with "Status: 5.1.1 (bad destination)"
    assert (result.kind, result.bounce_kind) == ("bounce", "hard")
    assert result.recipients == {"ben@example.net": "hard"}
    ben = delivery(deliveries["ben@example.net"])
    assert (ben.status, ben.reason) == ("bounced", "hard_bounce")
    assert is_suppressed("ben@example.net")


@pytest.mark.parametrize(
    ("action", "status", "code", "severity"),
    [
        (b"failed (Bad destination mailbox address)", b"5.1.1 (bad destination)", "5.1.1", "hard"),
        (b"Failed", b"(permanent failure) 5.1.1", "5.1.1", "hard"),
        (b"failed(bad destination)", b"5.1.1", "5.1.1", "hard"),
        (b"error", b"5.1.1", "5.1.1", "hard"),  # OpenSMTPD's non-standard action
        (b"delayed (retrying)", b"4.4.1 (no answer from host)", "4.4.1", "soft"),
        (b"failed (queue expired)", b"4.4.7 (delivery time expired)", "4.4.7", "soft"),
        # A code inside a comment is not the status, even when it comes first.
        (b"failed", b"(was 5.1.1 yesterday) 4.4.7", "4.4.7", "soft"),
        (b"failed", b"(note (nested 5.1.1)) 4.4.7", "4.4.7", "soft"),
    ],
)
def test_action_and_status_are_read_through_their_comments(
    action: bytes, status: bytes, code: str, severity: str
) -> None:
    raw = (
        corpus("dsn_action_comment.eml")
        .replace(b"Action: failed (Bad destination mailbox address)", b"Action: " + action)
        .replace(b"Status: 5.1.1 (bad destination)", b"Status: " + status)
    )
    parsed = parse_message(raw)
    assert [(r.address, r.status) for r in parsed.dsn] == [("ben@example.net", code)]
    assert classify(parsed).recipients == {"ben@example.net": severity}


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("rfc822; Ana@Example.ORG", "ana@example.org"),
        ("RFC822;<ana@example.org>", "ana@example.org"),
        ("rfc822; Ana Lima <ana@example.org> (the alias)", "ana@example.org"),
        ("utf-8; \\x{E9}lise@example.org", "\u00e9lise@example.org"),
        ("x400; /C=FR/ADMD=ATLAS/PRMD=HRO/S=Lima/", ""),
        ("rfc822; not an address", ""),
        ("", ""),
    ],
)
def test_a_recipient_field_gives_its_address(value: str, address: str) -> None:
    assert dsn_address(value) == address


@pytest.mark.parametrize("original", ["rfc822;ana@example.org", "RFC822; <Ana@Example.org>"])
def test_the_original_recipient_is_reported_not_the_rewritten_final_one(
    app: Flask, original: str
) -> None:
    deliveries = sent_campaign()
    raw = corpus("postfix_dsn.eml").replace(
        b"Final-Recipient: rfc822; ana@example.org",
        b"Final-Recipient: rfc822; a.lima@mailhost.example.net",
    )
    raw = raw.replace(
        b"Original-Recipient: rfc822;ana@example.org", b"Original-Recipient: " + original.encode()
    )

    result = record_inbound(raw)
    db.session.commit()

    # The address we wrote to is the one reported, bounced and put on the list.
    assert result.recipients == {"ana@example.org": "hard"}
    assert result.message.bounce_recipients == ["ana@example.org"]
    assert delivery(deliveries["ana@example.org"]).status == "bounced"
    assert is_suppressed("ana@example.org")
    assert not is_suppressed("a.lima@mailhost.example.net")


def test_each_recipient_of_a_mixed_report_has_its_own_outcome(app: Flask) -> None:
    deliveries = sent_campaign()

    result = record_inbound(corpus("dsn_mixed_outcomes.eml"))
    db.session.commit()

    # Delivered to Ana, failed for one Cc, delayed for the other.
    assert result.recipients == {
        "registry@embassy.example": "hard",
        "press@embassy.example": "soft",
    }
    assert result.bounce_kind == "hard"
    ana = delivery(deliveries["ana@example.org"])
    assert result.message.delivery_id == ana.id
    # The letter reached the address we wrote to: it did not bounce.
    assert ana.status == "sent"
    assert not is_suppressed("ana@example.org")
    assert {delivery(i).status for i in deliveries.values()} == {"sent"}


def test_a_report_of_one_failed_cc_does_not_bounce_the_delivered_letter(app: Flask) -> None:
    deliveries = sent_campaign()
    raw = corpus("dsn_mixed_outcomes.eml")
    raw = (
        raw[: raw.index(b"Final-Recipient: rfc822; press@")]
        + raw[raw.index(b"--=_mixed_4Zy7\nContent-Type: text/rfc822") :]
    )

    result = record_inbound(raw)
    db.session.commit()

    assert result.recipients == {"registry@embassy.example": "hard"}
    ana = delivery(deliveries["ana@example.org"])
    assert ana.status == "sent"
    assert not is_suppressed("ana@example.org")


def test_a_report_that_everything_was_delivered_bounces_nothing(app: Flask) -> None:
    deliveries = sent_campaign()
    raw = corpus("dsn_mixed_outcomes.eml")
    raw = (
        raw[: raw.index(b"Final-Recipient: rfc822; registry@")]
        + raw[raw.index(b"--=_mixed_4Zy7\nContent-Type: text/rfc822") :]
    )

    result = record_inbound(raw)
    db.session.commit()

    assert result.recipients == {}
    assert {delivery(i).status for i in deliveries.values()} == {"sent"}
    assert not is_suppressed("ana@example.org")
