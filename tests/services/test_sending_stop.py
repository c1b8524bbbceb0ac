"""A worker asked to stop (Ctrl-C, a deploy) ends its batch after the letter in hand."""

from __future__ import annotations

from typing import Any

from campaign.extensions import db
from campaign.models import CampaignStatus, DeliveryStatus
from campaign.services.sending import batches as sending
from tests.fault_smtp import FaultSmtpServer
from tests.services.test_sending import _launch, _rows, _status, app_overrides  # noqa: F401


def test_a_stop_between_letters_gives_the_rest_back_at_once(
    app: object, fault_smtp: FaultSmtpServer
) -> None:
    campaign, _ = _launch(5)
    asked: list[int] = []

    def should_stop() -> bool:
        asked.append(1)
        return len(fault_smtp.messages) >= 2  # the worker was told to stop after two

    result = sending.send_batch(
        campaign.id, worker="test-worker", commit=db.session.commit, should_stop=should_stop
    )
    assert len(fault_smtp.messages) == 2
    assert result.released == 3 and result.has_more
    statuses = sorted(row.status for row in _rows(campaign.id))
    # Queued again now, not held by the claim until its lease runs out.
    assert statuses == [DeliveryStatus.QUEUED.value] * 3 + [DeliveryStatus.SENT.value] * 2
    assert all(row.lease_until is None for row in _rows(campaign.id) if row.status == "queued")
    assert _status(campaign.id).status == CampaignStatus.SENDING  # not paused, not failed

    # The next worker sends the rest.
    sending.send_batch(campaign.id, worker="test-worker", commit=db.session.commit)
    assert len(fault_smtp.messages) == 5


def test_a_stop_during_the_pace_wait_sends_nothing_more(
    app: Any, fault_smtp: FaultSmtpServer
) -> None:
    # Two letters a minute: after the first, the worker waits 30 s for the pace.
    app.config["MAIL_RATE_PER_MINUTE"] = 2
    campaign, _ = _launch(3)
    asked_after_first: list[int] = []

    def should_stop() -> bool:
        if not fault_smtp.messages:
            return False
        asked_after_first.append(1)
        # The check before the second letter says "go on"; the stop comes during its wait.
        return len(asked_after_first) > 1

    result = sending.send_batch(
        campaign.id, worker="test-worker", commit=db.session.commit, should_stop=should_stop
    )
    assert len(fault_smtp.messages) == 1  # the paced letter was not sent after the stop
    assert result.released == 2 and result.has_more
    statuses = sorted(row.status for row in _rows(campaign.id))
    assert statuses == [DeliveryStatus.QUEUED.value] * 2 + [DeliveryStatus.SENT.value]
    assert _status(campaign.id).status == CampaignStatus.SENDING
