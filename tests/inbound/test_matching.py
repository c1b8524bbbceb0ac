"""Matching reads only what it needs of a stored letter, and the ledger shows its effects."""

from __future__ import annotations

import tracemalloc
import zlib
from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy import update

from campaign.extensions import db
from campaign.models import Delivery
from campaign.services.replies.intake import record_inbound
from tests.inbound.helpers import SENT_AT, SUBJECT, corpus, delivery, sent_campaign

OTHER_SUBJECT = "Joint letter on civic space"


def _letter(subject: str, *, padding: int = 0) -> bytes:
    # A long header section (many References, a big DKIM signature) before the Subject.
    references = "\r\n".join(f" <earlier.{n}@hro.example.org>" for n in range(padding))
    return (
        f"From: office@hro.example.org\r\nTo: ana@example.org\r\n"
        f"References:{references or ' <first@hro.example.org>'}\r\n"
        f"Subject: {subject}\r\nMessage-ID: <letter.ana@hro.example.org>\r\n\r\n"
        "Your Excellency,\r\n"
    ).encode()


def _answer(subject: str, number: int = 1) -> bytes:
    """A reply from Ana with no thread headers: only her address and the subject match."""
    return (
        f"From: Ana <ana@example.org>\r\nTo: office@hro.example.org\r\n"
        f"Subject: RE : {subject}\r\nMessage-ID: <weak.{number}@example.org>\r\n"
        "Date: Mon, 3 Mar 2025 16:00:00 +0000\r\n\r\nThank you, we will consider it.\r\n"
    ).encode()


def _store_letter(delivery_id: int, blob: bytes) -> None:
    row = db.session.get(Delivery, delivery_id)
    assert row is not None
    row.message_blob = blob
    db.session.commit()


def test_the_weak_match_reads_the_subject_of_the_letter_as_sent(app: Flask) -> None:
    deliveries = sent_campaign()
    # The letter went out under another subject than the statement's, after 30 kB of headers.
    letter = _letter(OTHER_SUBJECT, padding=1000)
    assert len(letter) > 30_000
    _store_letter(deliveries["ana@example.org"], zlib.compress(letter))

    record = record_inbound(_answer(OTHER_SUBJECT)).message
    db.session.commit()

    assert (record.kind, record.delivery_id) == ("reply", deliveries["ana@example.org"])
    assert (record.match_method, record.is_weak_match) == ("sender_subject", True)


def test_a_stored_letter_that_will_not_inflate_gives_way_to_the_statement_subject(
    app: Flask,
) -> None:
    deliveries = sent_campaign()
    _store_letter(deliveries["ana@example.org"], b"not zlib at all " + _letter(OTHER_SUBJECT))

    other = record_inbound(_answer(OTHER_SUBJECT, 1)).message
    statement = record_inbound(_answer(SUBJECT, 2)).message
    db.session.commit()

    assert (other.kind, other.delivery_id) == ("unmatched", None)
    assert (statement.kind, statement.delivery_id) == ("reply", deliveries["ana@example.org"])


def test_a_delivery_the_session_holds_shows_the_reply_and_the_bounce_at_once(
    app: Flask,
) -> None:
    deliveries = sent_campaign()
    ana = db.session.get(Delivery, deliveries["ana@example.org"])
    assert ana is not None and ana.replied_at is None and ana.status == "sent"

    record_inbound(corpus("reply_in_reply_to.eml"))
    record_inbound(corpus("postfix_dsn.eml"))

    # The same object, not read again by the test: the session shows what was written.
    assert ana.replied_at is not None
    assert (ana.status, ana.reason) == ("bounced", "hard_bounce")


def test_a_weak_match_is_shown_but_not_counted_as_an_answer(app: Flask) -> None:
    deliveries = sent_campaign()

    record = record_inbound(corpus("reply_rewritten_headers.eml")).message
    db.session.commit()

    assert (record.delivery_id, record.is_weak_match) == (deliveries["chen@example.com"], True)
    # Chen stays among the non-responders until a person confirms the match.
    assert delivery(deliveries["chen@example.com"]).replied_at is None


def test_the_earliest_reply_wins_whichever_is_recorded_first(app: Flask) -> None:
    deliveries = sent_campaign()
    first = corpus("reply_in_reply_to.eml")
    later = first.replace(b"Mon, 3 Mar 2025 15:42:10", b"Tue, 4 Mar 2025 09:00:00").replace(
        b"<CAF+reply.ana.1@mail.example.org>", b"<CAF+reply.ana.2@mail.example.org>"
    )

    # The later answer arrives first (a mailbox polled late, an upload of older mail).
    record_inbound(later)
    db.session.commit()
    record_inbound(first)
    db.session.commit()

    replied_at = delivery(deliveries["ana@example.org"]).replied_at
    assert replied_at == datetime(2025, 3, 3, 15, 42, 10, tzinfo=UTC)


def test_a_weak_match_ignores_a_letter_not_yet_sent_when_the_answer_was_written(
    app: Flask,
) -> None:
    deliveries = sent_campaign()
    ana = deliveries["ana@example.org"]
    db.session.execute(
        update(Delivery).where(Delivery.id == ana).values(sent_at=SENT_AT + timedelta(days=30))
    )
    db.session.commit()

    record = record_inbound(_answer(SUBJECT)).message
    db.session.commit()

    assert (record.kind, record.delivery_id) == ("unmatched", None)


def test_a_stored_letter_is_never_inflated_whole_to_read_its_subject(app: Flask) -> None:
    deliveries = sent_campaign()
    # 40 MB that inflate from a few kB and never reach a blank line.
    bomb = zlib.compress(b"X-Padding: " + b"a" * 40_000_000, 9)
    _store_letter(deliveries["ana@example.org"], bomb)

    tracemalloc.start()
    try:
        other = record_inbound(_answer(OTHER_SUBJECT, 1)).message
        statement = record_inbound(_answer(SUBJECT, 2)).message
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    db.session.commit()

    assert (other.kind, other.delivery_id) == ("unmatched", None)
    assert (statement.kind, statement.delivery_id) == ("reply", deliveries["ana@example.org"])
    assert peak < 10_000_000
