"""Reading the ledger: progress figures, rate and ETA, filtered pages, evidence of each message."""

from __future__ import annotations

import hashlib
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Campaign, Delivery, DeliveryStatus
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.sending import campaigns, ledger
from campaign.services.sending.campaigns import AudienceSpec
from campaign.services.statements import statements

BODY = "{{ salutation }}\n\nOur letter.\n\n{{ closing }}\n"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def launched(app: Flask) -> Campaign:
    statement = statements.create_statement("Letter", language="en", subject="S", body=BODY)
    audience = lists.create_list("Press")
    ids = [create_contact({"family_name": "X", "email": f"r{i}@example.org"}).id for i in range(10)]
    lists.add_contacts(audience, ids)
    campaign = campaigns.create_campaign(statement, audience=AudienceSpec((f"list:{audience.id}",)))
    campaigns.launch_campaign(campaign)
    campaign.launched_at = NOW - timedelta(hours=1)
    db.session.commit()
    return campaign


def _row(campaign: Campaign, email: str) -> Delivery:
    return db.session.scalars(
        select(Delivery).where(Delivery.campaign_id == campaign.id, Delivery.email == email)
    ).one()


def _mark(campaign: Campaign, email: str, status: DeliveryStatus, **values: Any) -> Delivery:
    row = _row(campaign, email)
    row.status = status.value
    for key, value in values.items():
        setattr(row, key, value)
    db.session.flush()
    return row


def test_the_rate_counts_the_last_thirty_seconds_and_sets_the_eta(launched: Campaign) -> None:
    for i, age in enumerate((1, 10, 29, 31, 600)):
        _mark(
            launched, f"r{i}@example.org", DeliveryStatus.SENT, sent_at=NOW - timedelta(seconds=age)
        )
    progress = ledger.campaign_progress(launched, now=NOW)
    assert (progress.total, progress.sent, progress.remaining) == (10, 5, 5)
    assert progress.sent_recently == 3
    assert progress.rate_per_minute == pytest.approx(6.0)
    # Five left at 0.1 per second.
    assert progress.eta_seconds == 50
    assert progress.to_json()["eta"] == "50 s"
    assert progress.percent == 50


def test_just_after_launch_the_rate_is_taken_over_the_seconds_since(launched: Campaign) -> None:
    launched.launched_at = NOW - timedelta(seconds=2)
    for i in range(4):
        _mark(
            launched, f"r{i}@example.org", DeliveryStatus.SENT, sent_at=NOW - timedelta(seconds=1)
        )
    progress = ledger.campaign_progress(launched, now=NOW)
    # Four letters in two seconds, not four in thirty: six left take three seconds.
    assert progress.rate_per_second == pytest.approx(2.0)
    assert progress.eta_seconds == 3


def test_a_paused_or_stalled_campaign_has_no_eta(launched: Campaign) -> None:
    assert ledger.campaign_progress(launched, now=NOW).eta_seconds is None  # nothing sent yet
    _mark(launched, "r0@example.org", DeliveryStatus.SENT, sent_at=NOW)
    campaigns.pause_campaign(launched, reason="the relay refused our password (535)")
    progress = ledger.campaign_progress(launched, now=NOW)
    assert progress.eta_seconds is None
    assert progress.status == "paused"
    assert progress.status_reason == "the relay refused our password (535)"


def test_failures_and_bounces_are_counted_apart_and_retries_as_remaining(
    launched: Campaign,
) -> None:
    _mark(launched, "r0@example.org", DeliveryStatus.FAILED)
    _mark(launched, "r1@example.org", DeliveryStatus.BOUNCED)
    _mark(launched, "r2@example.org", DeliveryStatus.DEFERRED)
    _mark(launched, "r3@example.org", DeliveryStatus.IN_DOUBT)
    _mark(launched, "r4@example.org", DeliveryStatus.SENDING)
    progress = ledger.campaign_progress(launched, now=NOW)
    # A bounce is neither sent nor failed: its own figure, as on the dashboard (decision 0046).
    assert (progress.failed, progress.bounced) == (1, 1)
    assert (progress.deferred, progress.in_doubt) == (1, 1)
    assert progress.remaining == 8  # 5 queued, sending, deferred, in doubt
    assert progress.processed == 2


def test_a_cancelled_campaign_has_ended_with_nothing_remaining(launched: Campaign) -> None:
    _mark(launched, "r0@example.org", DeliveryStatus.SENT, sent_at=NOW)
    campaigns.cancel_campaign(launched)
    progress = ledger.campaign_progress(launched, now=NOW)
    assert progress.is_ended and progress.remaining == 0 and progress.eta_seconds == 0
    assert (progress.sent, progress.cancelled, progress.percent) == (1, 9, 100)


def test_sent_and_totals_per_campaign(launched: Campaign) -> None:
    _mark(launched, "r0@example.org", DeliveryStatus.SENT, sent_at=NOW)
    assert ledger.sent_and_totals([launched.id, 999]) == {launched.id: (1, 10)}
    assert ledger.sent_and_totals([]) == {}


def test_a_page_filters_by_status_and_a_literal_address_fragment(launched: Campaign) -> None:
    _mark(launched, "r3@example.org", DeliveryStatus.BOUNCED)
    bounced = ledger.ledger_page(launched.id, status="bounced")
    assert [r.delivery.email for r in bounced.items] == ["r3@example.org"]
    assert bounced.items[0].contact is not None and bounced.items[0].contact.family_name == "X"
    assert ledger.ledger_page(launched.id, search="R1@").total == 1
    assert ledger.ledger_page(launched.id, search="_").total == 0  # not a wildcard
    # An unknown status is no filter rather than an empty page.
    assert ledger.ledger_page(launched.id, status="nonsense").total == 10


def test_pages_are_clamped_to_those_that_exist(launched: Campaign) -> None:
    last = ledger.ledger_page(launched.id, page=7, per_page=4)
    assert (last.page, last.pages, len(last.items)) == (3, 3, 2)
    assert last.has_previous and not last.has_next
    first = ledger.ledger_page(launched.id, page=0, per_page=4)
    assert first.page == 1 and not first.has_previous


MESSAGE = (
    b"From: us@example.org\r\nTo: r0@example.org\r\nSubject: =?utf-8?q?Lettre_=C3=A0_vous?=\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    b"Bonjour \xc3\xa0 vous.\r\n"
    b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=l.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n"
)


def test_evidence_decodes_headers_text_and_attachments_and_verifies_the_hash(
    launched: Campaign,
) -> None:
    row = _mark(
        launched,
        "r0@example.org",
        DeliveryStatus.SENT,
        message_blob=zlib.compress(MESSAGE),
        message_sha256=hashlib.sha256(MESSAGE).hexdigest(),
    )
    evidence = ledger.delivery_evidence(row)
    assert evidence.is_verified is True
    assert evidence.raw == MESSAGE
    assert ("Subject", "Lettre à vous") in evidence.headers
    assert evidence.text.strip() == "Bonjour à vous."
    assert [(a.filename, a.content_type, a.size) for a in evidence.attachments] == [
        ("l.pdf", "application/pdf", 5)
    ]
    assert evidence.message_id == row.message_id


def test_evidence_that_does_not_match_its_hash_is_not_verified(launched: Campaign) -> None:
    row = _mark(
        launched,
        "r0@example.org",
        DeliveryStatus.SENT,
        message_blob=zlib.compress(MESSAGE + b"tampered"),
        message_sha256=hashlib.sha256(MESSAGE).hexdigest(),
    )
    assert ledger.delivery_evidence(row).is_verified is False


@pytest.mark.parametrize(
    ("status", "values", "expected"),
    [
        (DeliveryStatus.QUEUED, {}, "Not sent yet"),
        (DeliveryStatus.SENT, {"message_sha256": "ab" * 32}, "Only the SHA-256"),
        (DeliveryStatus.SUPPRESSED, {}, "Nothing was sent"),
        (DeliveryStatus.BOUNCED, {}, "Nothing was accepted"),
        (DeliveryStatus.SENT, {"message_blob": b"not zlib"}, "The stored message could not"),
    ],
)
def test_missing_evidence_says_why(
    launched: Campaign, status: DeliveryStatus, values: dict[str, Any], expected: str
) -> None:
    row = _mark(launched, "r0@example.org", status, **values)
    evidence = ledger.delivery_evidence(row)
    assert evidence.raw is None and evidence.is_verified is None
    assert evidence.missing_reason.startswith(expected)


def test_durations_read_naturally() -> None:
    assert ledger.format_duration(None) == "—"
    assert ledger.format_duration(12) == "12 s"
    assert ledger.format_duration(250) == "4 min 10 s"
    assert ledger.format_duration(7500) == "2 h 05 min"
