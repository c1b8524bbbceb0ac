"""Recording inbound mail against a sent campaign: kinds, matches and the ledger's changes."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import InboundMessage
from campaign.services.contacts.suppressions import find_suppression, is_suppressed
from campaign.services.replies.intake import record_inbound
from tests.inbound.helpers import corpus, delivery, sent_campaign

# sample → (kind, bounce, the recipient whose delivery it concerns)
BOUNCES = {
    "postfix_dsn.eml": ("hard", "ana@example.org"),
    "exim_failed.eml": ("hard", "ben@example.net"),
    "sendmail_dsn.eml": ("hard", "chen@example.com"),
    "qmail_failure.eml": ("hard", "dana@example.org"),
    "exchange_o365.eml": ("hard", "eve@example.org"),
    "gmail_failure.eml": ("hard", "frank@gmail.example"),
    "yahoo_failure.eml": ("hard", "hank@yahoo.example"),
    "gmail_delay.eml": ("soft", "grace@example.org"),
}
AUTO_REPLIES = {
    "ooo_en_outlook.eml": "ana@example.org",
    "ooo_fr.eml": "ben@example.net",
    "ooo_ru.eml": "chen@example.com",
    "ooo_de.eml": "eve@example.org",
    "ack_return_path.eml": "dana@example.org",
}


@pytest.mark.parametrize("sample", sorted(BOUNCES))
def test_a_bounce_marks_its_delivery_and_a_hard_one_suppresses_the_address(
    app: Flask, sample: str
) -> None:
    deliveries = sent_campaign()
    severity, address = BOUNCES[sample]

    result = record_inbound(corpus(sample))
    db.session.commit()

    record = result.message
    assert (record.kind, record.bounce_kind) == ("bounce", severity)
    assert list(result.recipients) == [address]
    assert record.delivery_id == deliveries[address]
    row = delivery(deliveries[address])
    if severity == "hard":
        assert (row.status, row.reason) == ("bounced", "hard_bounce")
        suppression = find_suppression(address)
        assert suppression is not None and suppression.reason == "hard_bounce"
    else:
        assert row.status == "sent"
        assert not is_suppressed(address)
    assert row.replied_at is None
    # Nobody else's delivery moved.
    others = [delivery(i).status for a, i in deliveries.items() if a != address]
    assert set(others) == {"sent"}


@pytest.mark.parametrize("sample", sorted(AUTO_REPLIES))
def test_an_auto_reply_is_threaded_but_not_counted_as_an_answer(app: Flask, sample: str) -> None:
    deliveries = sent_campaign()

    record = record_inbound(corpus(sample)).message
    db.session.commit()

    address = AUTO_REPLIES[sample]
    assert record.kind == "auto_reply"
    assert record.delivery_id == deliveries[address]
    assert record.bounce_kind is None
    row = delivery(deliveries[address])
    assert row.replied_at is None
    assert row.status == "sent"


def test_a_reply_threads_by_in_reply_to_and_marks_the_delivery_replied(app: Flask) -> None:
    deliveries = sent_campaign()

    record = record_inbound(corpus("reply_in_reply_to.eml")).message
    db.session.commit()

    assert (record.kind, record.match_method, record.is_weak_match) == (
        "reply",
        "in_reply_to",
        False,
    )
    assert record.delivery_id == deliveries["ana@example.org"]
    assert record.from_address == "ana@example.org"
    assert "ambassador will raise" in record.text
    assert delivery(deliveries["ana@example.org"]).replied_at is not None


def test_a_reply_with_only_references_finds_our_letter_among_other_ids(app: Flask) -> None:
    deliveries = sent_campaign()

    record = record_inbound(corpus("reply_references_only.eml")).message
    db.session.commit()

    assert (record.kind, record.match_method) == ("reply", "references")
    assert record.delivery_id == deliveries["ben@example.net"]
    assert delivery(deliveries["ben@example.net"]).replied_at is not None


def test_rewritten_thread_headers_fall_back_to_a_weak_sender_and_subject_match(
    app: Flask,
) -> None:
    deliveries = sent_campaign()

    record = record_inbound(corpus("reply_rewritten_headers.eml")).message
    db.session.commit()

    assert (record.kind, record.match_method, record.is_weak_match) == (
        "reply",
        "sender_subject",
        True,
    )
    assert record.delivery_id == deliveries["chen@example.com"]


def test_a_message_matching_nothing_is_unmatched_and_changes_nothing(app: Flask) -> None:
    deliveries = sent_campaign()

    record = record_inbound(corpus("reply_unmatched.eml")).message
    db.session.commit()

    assert (record.kind, record.delivery_id, record.match_method) == ("unmatched", None, "")
    assert all(delivery(i).replied_at is None for i in deliveries.values())


def test_a_hostile_html_reply_is_recorded_without_its_script(app: Flask) -> None:
    deliveries = sent_campaign()

    record = record_inbound(corpus("reply_hostile_html.eml")).message
    db.session.commit()

    assert record.kind == "reply"
    assert record.delivery_id == deliveries["dana@example.org"]
    assert "Please see our answer" in record.text
    assert "document.cookie" not in record.text


def test_a_bounce_for_an_address_we_never_wrote_to_suppresses_nobody(app: Flask) -> None:
    sent_campaign()
    raw = (
        corpus("postfix_dsn.eml")
        .replace(b"ana@example.org", b"stranger@elsewhere.example")
        .replace(b"<letter.ana@hro.example.org>", b"<forged@spammer.example>")
    )

    result = record_inbound(raw)
    db.session.commit()

    assert (result.message.kind, result.message.bounce_kind) == ("bounce", "hard")
    assert list(result.recipients) == ["stranger@elsewhere.example"]
    assert result.message.delivery_id is None
    assert not is_suppressed("stranger@elsewhere.example")


def test_the_same_message_twice_is_stored_once_and_changes_nothing_more(app: Flask) -> None:
    deliveries = sent_campaign()
    raw = corpus("reply_in_reply_to.eml")
    first = record_inbound(raw)
    db.session.commit()
    replied_at = delivery(deliveries["ana@example.org"]).replied_at

    again = record_inbound(raw)
    db.session.commit()

    assert first.is_new and not again.is_new
    assert again.message.id == first.message.id
    assert db.session.scalar(select(func.count()).select_from(InboundMessage)) == 1
    assert delivery(deliveries["ana@example.org"]).replied_at == replied_at


def test_a_later_reply_keeps_the_first_reply_time(app: Flask) -> None:
    deliveries = sent_campaign()
    record_inbound(corpus("reply_in_reply_to.eml"))
    db.session.commit()
    first = delivery(deliveries["ana@example.org"]).replied_at

    later = (
        corpus("reply_in_reply_to.eml")
        .replace(b"Mon, 3 Mar 2025 15:42:10", b"Tue, 4 Mar 2025 09:00:00")
        .replace(b"<CAF+reply.ana.1@mail.example.org>", b"<CAF+reply.ana.2@mail.example.org>")
    )
    record_inbound(later)
    db.session.commit()

    assert delivery(deliveries["ana@example.org"]).replied_at == first
    assert db.session.scalar(select(func.count()).select_from(InboundMessage)) == 2


def test_a_bounce_lists_the_returned_letter_and_keeps_its_ledger_effect(app: Flask) -> None:
    deliveries = sent_campaign()

    record = record_inbound(corpus("sendmail_dsn.eml")).message
    db.session.commit()

    # Staff see what came back as one attached message, and the hard bounce still applies.
    assert record.attachments == [
        {"filename": "Release the defenders.eml", "content_type": "message/rfc822", "size": 290}
    ]
    assert record.html == ""
    assert delivery(deliveries["chen@example.com"]).status == "bounced"
    assert (record.dmarc, record.is_unverified) == ("", False)
