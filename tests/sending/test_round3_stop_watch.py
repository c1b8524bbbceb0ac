"""The stop flag without a round trip a letter (decision 0082): Redis tells the batch when a
pause or cancel raises it, and the batch still stops before its next letter, also when the
tracking connection is lost."""

from __future__ import annotations

import logging
import threading
import types
import uuid
from typing import Any

import pytest
from flask import Flask
from redis import ConnectionPool, Redis
from rq.timeouts import JobTimeoutException

from campaign.extensions import db
from campaign.models import Campaign
from campaign.queue import get_redis
from campaign.services.sending import batches as sending
from campaign.services.sending import campaigns, stop_watch
from campaign.services.sending.stop_watch import CLIENT_NAME, StopWatch
from tests.fault_smtp import FaultSmtpServer
from tests.services.test_sending import _launch, _send, sending_overrides


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], fault_smtp: FaultSmtpServer) -> dict[str, Any]:
    return sending_overrides(app_overrides, fault_smtp)


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


def test_the_job_timeout_while_the_watch_closes_is_not_swallowed(app: Flask) -> None:
    """RQ's JobTimeoutException is an Exception: a close that swallowed it would leave the
    batch running with no timeout at all."""
    watch = StopWatch("k")

    def timed_out() -> None:
        raise JobTimeoutException("the job's time ran out while the watch closed")

    watch.connection = types.SimpleNamespace(disconnect=timed_out)
    with pytest.raises(JobTimeoutException):
        watch.close()
    assert watch.connection is None


def test_tracking_refused_is_warned_once_a_process_not_once_a_batch(
    app: Flask, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A user whose ACL forbids CLIENT (as a proxy or a managed Redis may): every batch
    falls back to asking Redis each letter, and the operator is told once, as a warning."""
    admin = get_redis()
    user = f"no-client-{uuid.uuid4().hex[:8]}"
    admin.acl_setuser(
        user, enabled=True, passwords=["+secret"], keys=["*"], commands=["+@all", "-client"]
    )
    try:
        pool = admin.connection_pool
        kwargs = {**pool.connection_kwargs, "username": user, "password": "secret"}
        restricted = Redis(
            connection_pool=ConnectionPool(connection_class=pool.connection_class, **kwargs)
        )
        assert restricted.ping()
        monkeypatch.setattr(stop_watch, "get_redis", lambda: restricted)
        monkeypatch.setattr(stop_watch, "_refusal_told", False, raising=False)
        caplog.set_level(logging.INFO, logger=stop_watch.__name__)
        for _batch in range(3):
            with StopWatch("a-key") as watch:
                assert watch.is_up() is None  # unknown: the batch asks Redis itself
        told = [r for r in caplog.records if r.name == stop_watch.__name__]
        assert [r.levelno for r in told] == [logging.WARNING]
        assert "every letter" in told[0].getMessage()
    finally:
        admin.acl_deluser(user)
