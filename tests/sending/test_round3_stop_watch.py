"""The stop flag without a round trip a letter (decision 0082): Redis tells the batch when a
pause or cancel raises it, and the batch still stops before its next letter, also when the
tracking connection is lost."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from flask import Flask

from campaign.extensions import db
from campaign.models import Campaign
from campaign.queue import get_redis
from campaign.services.sending import batches as sending
from campaign.services.sending import campaigns
from campaign.services.sending.stop_watch import CLIENT_NAME
from tests.fault_smtp import FaultSmtpServer
from tests.services.test_sending import PUBLIC_URL, _launch, _send


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], fault_smtp: FaultSmtpServer) -> dict[str, Any]:
    return {
        **app_overrides,
        "MAIL_SERVER": fault_smtp.host,
        "MAIL_PORT": fault_smtp.port,
        "MAIL_TIMEOUT": 10,
        "PUBLIC_URL": PUBLIC_URL,
        "QUEUE_NAME": f"test-{uuid.uuid4().hex[:12]}",
    }


def _elsewhere(app: Flask, action: Any, campaign_id: int) -> None:
    """Staff press Pause or Cancel in another request (its own thread, session, commit)."""

    def press() -> None:
        with app.app_context():
            assert action(db.session.get(Campaign, campaign_id))
            db.session.commit()
            db.session.remove()

    thread = threading.Thread(target=press)
    thread.start()
    thread.join(timeout=30)


def _exists_calls() -> int:
    stats = get_redis().info("commandstats")
    return int(stats.get("cmdstat_exists", {}).get("calls", 0))


def test_a_pause_while_a_letter_is_built_stops_that_letter(
    app: Flask, fault_smtp: FaultSmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign, _ = _launch(12)
    original = sending.compose_letter
    built = {"n": 0}

    def compose(*args: Any, **kwargs: Any) -> Any:
        built["n"] += 1
        if built["n"] == 3:
            _elsewhere(app, campaigns.pause_campaign, campaign.id)
        return original(*args, **kwargs)

    monkeypatch.setattr(sending, "compose_letter", compose)
    result = _send(campaign.id)
    # The third letter was being built when the pause was recorded: it did not go.
    assert len(fault_smtp.messages) == 2 and result.sent == 2
    counts = campaigns.status_counts(campaign.id)
    assert (counts["sent"], counts["queued"]) == (2, 10)


def test_a_cancel_after_the_tracking_connection_was_cut_still_stops_the_next_letter(
    app: Flask, fault_smtp: FaultSmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from campaign import smtp

    campaign, _ = _launch(12)
    original = smtp.SmtpConnection.send

    def send(self: smtp.SmtpConnection, *args: Any, **kwargs: Any) -> smtp.SendOutcome:
        outcome = original(self, *args, **kwargs)
        redis = get_redis()
        if len(fault_smtp.messages) == 1:
            # The watch's connection is cut (a Redis restart, a proxy's idle timeout).
            watches = [c for c in redis.client_list() if c.get("name") == CLIENT_NAME]
            assert watches, "the batch watches the flag on a connection of its own"
            for client in watches:
                redis.client_kill_filter(_id=client["id"])
        if len(fault_smtp.messages) == 3:
            _elsewhere(app, campaigns.cancel_campaign, campaign.id)
        return outcome

    monkeypatch.setattr(smtp.SmtpConnection, "send", send)
    _send(campaign.id)
    assert len(fault_smtp.messages) == 3
    counts = campaigns.status_counts(campaign.id)
    assert (counts["sent"], counts["cancelled"]) == (3, 9)


def test_redis_is_asked_for_the_flag_once_a_batch_not_once_a_letter(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    campaign, _ = _launch(12)
    before = _exists_calls()
    result = _send(campaign.id)
    assert result.sent == 12
    assert _exists_calls() - before <= 2
