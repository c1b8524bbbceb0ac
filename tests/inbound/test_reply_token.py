"""A reply sent to a letter's signed reply address finds its letter without thread headers."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from campaign.extensions import db
from campaign.inbound.reply_token import reply_token
from campaign.services.replies.intake import record_inbound
from tests.inbound.helpers import corpus, delivery, sent_campaign

REPLY_ADDRESS = "replies@hro.example.org"


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    return {**app_overrides, "REPLY_ADDRESS": REPLY_ADDRESS}


def _addressed(sample: str, token: str) -> bytes:
    return corpus(sample).replace(b"TOKEN", token.encode())


def test_a_token_in_to_matches_a_reply_that_has_no_thread_headers(app: Flask) -> None:
    deliveries = sent_campaign()
    ana = deliveries["ana@example.org"]

    record = record_inbound(_addressed("reply_token_no_thread.eml", reply_token(ana))).message
    db.session.commit()

    # A colleague at the embassy answered, on another subject: only the token can tell.
    assert (record.kind, record.delivery_id) == ("reply", ana)
    assert (record.match_method, record.is_weak_match) == ("reply_token", False)
    assert delivery(ana).replied_at is not None
    others = [delivery(i).replied_at for address, i in deliveries.items() if i != ana]
    assert others == [None] * (len(deliveries) - 1)


def test_a_token_in_delivered_to_matches_a_blind_copy(app: Flask) -> None:
    deliveries = sent_campaign()
    ben = deliveries["ben@example.net"]

    record = record_inbound(_addressed("reply_token_delivered_to.eml", reply_token(ben))).message
    db.session.commit()

    assert (record.kind, record.delivery_id, record.match_method) == ("reply", ben, "reply_token")


@pytest.mark.parametrize(
    "forge",
    [
        # Someone else's delivery id with ana's signature, a guessed signature, garbage.
        lambda ids: reply_token(ids["ana@example.org"]).replace(
            reply_token(ids["ana@example.org"]).split("-")[0],
            reply_token(ids["ben@example.net"]).split("-")[0],
        ),
        lambda ids: reply_token(ids["ana@example.org"]).split("-")[0] + "-000000000000",
        lambda ids: "zzzzzzzzzzzzzzzzzzzzzzzzzzzzz-" + "f" * 500,
    ],
    ids=["swapped id", "guessed signature", "garbage"],
)
def test_a_forged_token_attaches_the_mail_to_no_letter(app: Flask, forge: Any) -> None:
    deliveries = sent_campaign()

    record = record_inbound(_addressed("reply_token_no_thread.eml", forge(deliveries))).message
    db.session.commit()

    assert (record.kind, record.delivery_id, record.match_method) == ("unmatched", None, "")
    assert all(delivery(i).replied_at is None for i in deliveries.values())


def test_thread_headers_still_come_before_the_token(app: Flask) -> None:
    deliveries = sent_campaign()
    raw = _addressed("reply_token_no_thread.eml", reply_token(deliveries["ben@example.net"]))
    raw = raw.replace(b"MIME-Version", b"In-Reply-To: <letter.ana@hro.example.org>\nMIME-Version")

    record = record_inbound(raw).message
    db.session.commit()

    assert (record.delivery_id, record.match_method) == (
        deliveries["ana@example.org"],
        "in_reply_to",
    )


def test_the_token_comes_before_a_weak_sender_and_subject_match(app: Flask) -> None:
    deliveries = sent_campaign()
    # Chen writes from his own address with our subject, but to the address of Dana's letter
    # (a colleague forwarded it to him): the signed address is the stronger evidence.
    raw = (
        _addressed("reply_token_no_thread.eml", reply_token(deliveries["dana@example.org"]))
        .replace(b"assistant@embassy.example", b"chen@example.com")
        .replace(b"Your correspondence of 3 March", b"Re: Release the defenders")
    )

    record = record_inbound(raw).message
    db.session.commit()

    assert (record.delivery_id, record.match_method, record.is_weak_match) == (
        deliveries["dana@example.org"],
        "reply_token",
        False,
    )


def test_an_auto_reply_to_the_token_address_is_threaded_but_not_an_answer(app: Flask) -> None:
    deliveries = sent_campaign()
    eve = deliveries["eve@example.org"]
    raw = _addressed("reply_token_no_thread.eml", reply_token(eve)).replace(
        b"MIME-Version", b"Auto-Submitted: auto-replied\nMIME-Version"
    )

    record = record_inbound(raw).message
    db.session.commit()

    assert (record.kind, record.delivery_id) == ("auto_reply", eve)
    assert record.match_method == "reply_token"
    assert delivery(eve).replied_at is None


def test_tokens_are_ignored_when_no_reply_address_is_configured(app: Flask) -> None:
    deliveries = sent_campaign()
    raw = _addressed("reply_token_no_thread.eml", reply_token(deliveries["ana@example.org"]))
    app.config["REPLY_ADDRESS"] = ""

    record = record_inbound(raw).message
    db.session.commit()

    assert (record.kind, record.delivery_id) == ("unmatched", None)
