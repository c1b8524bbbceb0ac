"""Webhook delivery never holds up sending for long: its own queue, taken after the sending
queue; a time budget per job; a bounded DNS lookup; no attempt past the deadline. And the
endpoint's address, which may hold a chat's token in its path, never in clear in the audit
log or a stored error (review A, points 11 and 12)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from campaign.extensions import db
from campaign.models import AuditEvent, WebhookEndpoint
from campaign.queue import WEBHOOKS, enqueue_after_commit, get_queue, get_redis
from campaign.services.webhooks import delivery as webhook_delivery
from campaign.services.webhooks import endpoints
from campaign.services.webhooks.events import DELIVER_JOB, record_webhook_event
from campaign.web.webhooks import error_text
from tests import servers
from tests.burst_worker import app_for, run_worker, worker_settings
from tests.webhooks.helpers import add_endpoint, allow_hosts, deliveries, run_queued_jobs
from tests.webhooks.receiver import Receiver

SLACK_LIKE = "https://hooks.example/services/T000/B000/XXXXSECRETTOKEN"


def note_job(key: str, label: str) -> None:
    """A job that notes its label in a Redis list, in the order the worker ran it."""
    from workers.context import job_context

    with job_context():
        get_redis().rpush(key, label)


def _event(n: int) -> None:
    record_webhook_event("campaign.finished", {"campaign_id": n})
    db.session.commit()


def test_delivery_jobs_wait_on_the_webhooks_queue_not_the_sending_one(
    app: Flask, receiver: Receiver
) -> None:
    get_queue().empty()
    add_endpoint(receiver.url())
    _event(1)
    assert [job.func_name for job in get_queue(WEBHOOKS).jobs] == [DELIVER_JOB]
    assert get_queue().jobs == []
    assert get_queue(WEBHOOKS).name == f"{app.config['QUEUE_NAME']}-webhooks"


def test_the_worker_takes_the_sending_queue_first_then_webhooks(
    tmp_path: Path, sqlite_template: Path, redis_server: servers.RedisServer
) -> None:
    settings = worker_settings(tmp_path, sqlite_template, redis_server)
    app = app_for(settings)
    key = f"noted-{tmp_path.name}"
    with app.app_context():
        # The webhook job is queued first, yet the letter's job runs before it.
        enqueue_after_commit(db.session(), f"{__name__}.note_job", key, "webhook", queue=WEBHOOKS)
        enqueue_after_commit(db.session(), f"{__name__}.note_job", key, "sending")
        db.session.commit()
        finished = run_worker(settings, "--burst", "--log-level", "WARNING")
        assert finished.returncode == 0, finished.stderr
        redis = get_redis()
        assert redis.lrange(key, 0, -1) == [b"sending", b"webhook"], finished.stderr
        assert get_queue(WEBHOOKS).count == 0
        redis.delete(key)
        db.session.remove()
        db.engine.dispose()
        redis.close()


def test_a_job_past_its_time_budget_hands_the_rest_to_a_job_at_the_back_of_the_queue(
    app: Flask, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhook_delivery, "JOB_BUDGET_SECONDS", 0.0)
    allow_hosts("127.0.0.1")
    endpoint, _secret = add_endpoint(receiver.url())
    for n in range(3):
        _event(n)
    get_queue(WEBHOOKS).empty()
    report = webhook_delivery.deliver_webhooks(endpoint.id, commit=db.session.commit)
    # One delivery (a job always makes progress), then the worker is free again.
    assert report.delivered == 1
    assert [d.status for d in deliveries()] == ["delivered", "pending", "pending"]
    assert [job.func_name for job in get_queue(WEBHOOKS).jobs] == [DELIVER_JOB]
    assert run_queued_jobs(app) == 3  # one delivery per job, each queuing the next
    assert [d.status for d in deliveries()] == ["delivered"] * 3


def test_a_job_s_rq_timeout_covers_its_budget_and_one_last_attempt() -> None:
    from campaign.services.webhooks import events

    assert events.JOB_BUDGET_SECONDS + webhook_delivery.TOTAL_TIMEOUT < events.DELIVER_JOB_TIMEOUT
    assert webhook_delivery.DNS_TIMEOUT <= webhook_delivery.TOTAL_TIMEOUT


@pytest.fixture
def slow_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A name whose name server answers only after 5 s ("not found"); other names as usual."""
    real = socket.getaddrinfo
    released = threading.Event()
    host = "slow-dns.example"

    def getaddrinfo(name: Any, *args: Any, **kwargs: Any) -> Any:
        if name == host:
            released.wait(5)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield host
    released.set()


def test_a_name_server_that_does_not_answer_is_waited_for_a_bounded_time(
    app: Flask, slow_dns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhook_delivery, "DNS_TIMEOUT", 0.2)
    add_endpoint(f"https://{slow_dns}/hook")
    _event(1)
    run_queued_jobs(app)
    [row] = deliveries()
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error == f"dns: {slow_dns} (timeout)"
    assert error_text(row.last_error) == (
        f"The name server gave no answer for {slow_dns} this time."
    )


def test_no_address_is_tried_once_the_attempt_s_time_is_up(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhook_delivery, "TOTAL_TIMEOUT", 0.0)
    closed_port = servers.free_port()
    with pytest.raises(webhook_delivery.SendFailure) as failed:
        webhook_delivery.post(
            f"https://127.0.0.1:{closed_port}/hook", b"{}", {}, allowed=frozenset({"127.0.0.1"})
        )
    # Not "connect … ECONNREFUSED": the address was not even tried.
    assert str(failed.value) == "timeout: 127.0.0.1 (connect)"


def test_the_audit_log_keeps_the_endpoint_s_host_not_the_token_in_its_path(app: Flask) -> None:
    endpoint, _secret = endpoints.create_endpoint(SLACK_LIKE, ["reply.received"])
    endpoints.update_endpoint(
        endpoint, "https://hooks.example/services/T111/B111/OTHERTOKEN?x=1", ["reply.received"]
    )
    endpoints.delete_endpoint(endpoint)
    db.session.commit()
    audit = list(
        db.session.scalars(
            select(AuditEvent).where(AuditEvent.action.like("webhook.%")).order_by(AuditEvent.id)
        )
    )
    assert [(e.action, e.detail["url"]) for e in audit] == [
        ("webhook.create", "https://hooks.example/services/…"),
        ("webhook.update", "https://hooks.example/services/…"),
        ("webhook.delete", "https://hooks.example/services/…"),
    ]
    for event in audit:
        assert "TOKEN" not in str(event.detail) and "T000" not in str(event.detail)


def test_stored_errors_never_hold_a_path_s_token_or_query(app: Flask, receiver: Receiver) -> None:
    allow_hosts("127.0.0.1")
    redirecting, _secret = add_endpoint(receiver.url())
    receiver.answers = [("redirect", receiver.url(path="/services/T000/B000/XXXXSECRETTOKEN"))]
    _event(1)
    run_queued_jobs(app)
    # An address stored before the checks (or edited in the database) that cannot be used.
    stored, _secret = add_endpoint("https://hooks.example/x")
    db.session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == stored.id)
        .values(url="http://hooks.example/T000/B000/XXXXSECRETTOKEN?token=YYYY")
    )
    db.session.commit()
    _event(2)
    run_queued_jobs(app)
    errors = {row.endpoint_id: row.last_error for row in deliveries() if row.last_error}
    assert errors[redirecting.id] == f"redirect: 302 → https://127.0.0.1:{receiver.port}/services/…"
    assert errors[stored.id] == "invalid_url: http://hooks.example/…"
    for text in errors.values():
        assert "SECRETTOKEN" not in text and "YYYY" not in text
