"""A contact moved to the trash gets no letter, whatever state its row was in (decision 0048)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Contact, Delivery, DeliveryStatus
from campaign.services.contacts.contacts import delete_contact
from campaign.services.sending import batches as sending
from tests.fault_smtp import FaultSmtpServer
from tests.services.test_sending import _launch, _rows, app_overrides  # noqa: F401


def _trash(contact_id: int | None) -> None:
    contact = db.session.get(Contact, contact_id)
    assert contact is not None
    delete_contact(contact)
    db.session.commit()


def test_a_row_handed_back_after_its_contact_was_trashed_is_cancelled_not_claimed(
    app: object,
) -> None:
    campaign, rows = _launch(2)
    claimed = sending.claim_deliveries(campaign.id, "claim-1", 10)
    db.session.commit()
    assert len(claimed) == 2
    _trash(rows[0].contact_id)  # trashed while its row is in a worker's batch
    # The batch stops (pause, daily limit, time used, Ctrl-C): its rows go back.
    sending._release("claim-1", status=DeliveryStatus.QUEUED.value, note="", next_attempt_at=None)
    db.session.commit()

    again = sending.claim_deliveries(campaign.id, "claim-2", 10)
    db.session.commit()

    assert again == [rows[1].id]
    trashed_row = _rows(campaign.id)[0]
    assert (trashed_row.status, trashed_row.reason) == ("cancelled", "contact_deleted")
    assert trashed_row.next_attempt_at is None


def test_an_in_doubt_row_of_a_trashed_contact_stays_in_doubt_and_is_not_retried(
    app: object,
) -> None:
    campaign, rows = _launch(1)
    row = db.session.get(Delivery, rows[0].id)
    assert row is not None
    row.status, row.possible_duplicates, row.reason = DeliveryStatus.IN_DOUBT.value, 1, ""
    row.next_attempt_at = datetime.now(UTC)
    db.session.commit()

    _trash(row.contact_id)

    assert sending.claim_deliveries(campaign.id, "claim-3", 10) == []
    db.session.commit()
    after = _rows(campaign.id)[0]
    # It may have reached the server: never written down as less, but final now.
    assert (after.status, after.reason) == ("in_doubt", "contact_deleted")
    assert after.next_attempt_at is None


def test_a_contact_trashed_during_a_batch_gets_no_letter(
    app: object, fault_smtp: FaultSmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign, rows = _launch(3)
    # The batch reads its stop list before every letter (not every 50), so the test can
    # trash a contact between two letters without waiting.
    monkeypatch.setattr(sending, "RECHECK_MESSAGES", 0)
    last_id = rows[2].contact_id

    def should_stop() -> bool:
        if not fault_smtp.messages:
            _trash(last_id)  # staff delete the third contact while the first letter goes
        return False

    sending.send_batch(
        campaign.id, worker="test-worker", commit=db.session.commit, should_stop=should_stop
    )

    assert len(fault_smtp.messages) == 2
    statuses = [(r.status, r.reason) for r in _rows(campaign.id)]
    assert statuses == [("sent", ""), ("sent", ""), ("cancelled", "contact_deleted")]
    assert db.session.scalar(select(Delivery.id).where(Delivery.status == "queued")) is None
