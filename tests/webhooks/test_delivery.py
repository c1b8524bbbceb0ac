"""Webhook delivery against a real HTTPS receiver on 127.0.0.1: signed, in order, retried with
backoff, given up after three days; slow, failing, redirecting and private endpoints."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from campaign import clock
from campaign.extensions import db
from campaign.models import AuditEvent, WebhookDelivery, WebhookEvent
from campaign.queue import WEBHOOKS, get_queue
from campaign.services.webhooks import delivery as webhook_delivery
from campaign.services.webhooks import endpoints
from campaign.services.webhooks.endpoints import WebhookInputError
from campaign.services.webhooks.events import record_webhook_event
from tests import servers
from tests.webhooks.helpers import (
    add_endpoint,
    allow_hosts,
    deliveries,
    run_queued_jobs,
    verified,
)
from tests.webhooks.receiver import Receiver


def _event(n: int, kind: str = "campaign.finished") -> None:
    record_webhook_event(kind, {"campaign_id": n})
    db.session.commit()


def _make_due() -> None:
    db.session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.status == "pending")
        .values(next_attempt_at=clock.now() - timedelta(seconds=1))
    )
    db.session.commit()


def _reconcile(app: Flask) -> int:
    """What the reconciler does for webhooks: enqueue endpoints with due work, then run."""
    webhook_delivery.requeue_due()
    db.session.commit()
    return run_queued_jobs(app)


def test_an_event_arrives_signed_and_the_reference_verifier_accepts_it(
    app: Flask, receiver: Receiver
) -> None:
    allow_hosts("127.0.0.1")
    _endpoint, secret = add_endpoint(receiver.url())
    _event(7)
    assert run_queued_jobs(app) == 1

    [received] = receiver.requests
    payload = verified(secret, received)
    assert payload["type"] == "campaign.finished"
    assert payload["data"] == {"campaign_id": 7}
    assert payload["timestamp"].endswith("Z")
    event = db.session.scalars(select(WebhookEvent)).one()
    assert received.headers["webhook-id"] == event.message_id
    assert received.headers["content-type"] == "application/json"
    [row] = deliveries()
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 1, 204)
    assert row.delivered_at is not None and row.claimed_until is None


def test_nothing_is_recorded_when_no_enabled_endpoint_wants_the_type(
    app: Flask, receiver: Receiver
) -> None:
    assert record_webhook_event("campaign.finished", {"campaign_id": 1}) is None
    endpoint, _secret = add_endpoint(receiver.url(), ("reply.received",))
    assert record_webhook_event("campaign.finished", {"campaign_id": 1}) is None
    endpoints.set_enabled(endpoint, False)
    assert record_webhook_event("reply.received", {"reply_id": 1}) is None
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == 0


def test_a_500_is_retried_with_backoff_and_later_events_wait_their_turn(
    app: Flask, receiver: Receiver
) -> None:
    allow_hosts("127.0.0.1")
    _endpoint, secret = add_endpoint(receiver.url())
    receiver.answers = [500]
    _event(1)
    _event(2)
    run_queued_jobs(app)

    first, second = deliveries()
    assert (first.status, first.attempts, first.last_status_code) == ("pending", 1, 500)
    assert first.last_error == "http_status: 500"
    assert first.next_attempt_at is not None and first.last_attempt_at is not None
    assert first.next_attempt_at - first.last_attempt_at == timedelta(seconds=5)
    # The second event waits behind the first: it was not even tried.
    assert (second.status, second.attempts) == ("pending", 0)
    assert len(receiver.requests) == 1
    # Not due yet: the reconciler finds nothing to do.
    assert _reconcile(app) == 0

    _make_due()
    assert _reconcile(app) == 1
    first, second = deliveries()
    assert (first.status, first.attempts, second.status, second.attempts) == (
        "delivered",
        2,
        "delivered",
        1,
    )
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert ids[0] == ids[1] != ids[2]  # the same message id on every attempt, then the next
    assert [json.loads(b)["data"]["campaign_id"] for b in receiver.bodies()] == [1, 1, 2]
    for received in receiver.requests:
        verified(secret, received)


def test_a_slow_endpoint_times_out_and_is_retried(
    app: Flask, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhook_delivery, "TOTAL_TIMEOUT", 1.0)
    allow_hosts("127.0.0.1")
    add_endpoint(receiver.url())
    receiver.answers = [("slow", 5)]
    _event(1)
    run_queued_jobs(app)
    [row] = deliveries()
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, None)
    # Stored without words (the page says it in the reader's language).
    assert row.last_error == "timeout: 127.0.0.1 (answer)"


def _cells(page: str, css_class: str) -> dict[int, str]:
    """Each delivery row's cell of that class, by delivery id, tags removed."""
    found = {}
    for delivery_id, cell in re.findall(
        rf'<tr data-delivery="(\d+)".*?<td class="{css_class}">(.*?)</td>', page, re.S
    ):
        found[int(delivery_id)] = re.sub(r"<[^>]+>", "", cell).strip()
    return found


def test_delivery_errors_read_in_the_admin_s_language_and_a_blocked_one_points_to_the_allow_list(
    app: Flask, client: FlaskClient, login: Any, receiver: Receiver
) -> None:
    admin = login()
    admin.language = "fr"
    db.session.commit()
    blocked, _secret = add_endpoint(receiver.url("localhost"))
    closed_port = servers.free_port()
    refused, _secret = add_endpoint(f"https://127.0.0.1:{closed_port}/hook")
    allow_hosts("127.0.0.1")
    _event(1)
    run_queued_jobs(app)
    rows = {row.endpoint_id: row for row in deliveries()}
    assert rows[refused.id].last_error == "connect: 127.0.0.1 (ECONNREFUSED)"
    assert rows[blocked.id].last_error.startswith("blocked_address: localhost → 127.0.0.1")

    page = client.get(f"/webhooks/{refused.id}").get_data(as_text=True)
    [error] = _cells(page, "delivery-error").values()
    assert error == "127.0.0.1 a refusé la connexion\u00a0: rien ne répond sur ce port."
    assert "Connection refused" not in page and "ECONNREFUSED" not in page

    page = client.get(f"/webhooks/{blocked.id}").get_data(as_text=True)
    [error] = _cells(page, "delivery-error").values()
    assert error.startswith(
        "localhost mène à une adresse privée, de bouclage ou lien-local (127.0.0.1"
    )
    assert "«\u00a0Hôtes autorisés sur des adresses privées\u00a0»" in error
    assert 'href="/webhooks/#allowed-hosts"' in page


def test_a_delivery_waiting_behind_an_earlier_one_says_so_even_after_a_resend(
    app: Flask, client: FlaskClient, login: Any, receiver: Receiver
) -> None:
    login()
    allow_hosts("127.0.0.1")
    endpoint, _secret = add_endpoint(receiver.url())
    receiver.answers = [500, 204]
    _event(1)
    _event(2)
    run_queued_jobs(app)
    first, second = deliveries()
    assert (first.status, second.status) == ("pending", "pending")

    # Resent, the second gets a next attempt "now" — yet it still waits behind the first.
    client.post(f"/webhooks/deliveries/{second.id}/resend")
    db.session.expire_all()
    assert second.next_attempt_at is not None and second.next_attempt_at <= clock.now()
    cells = _cells(client.get(f"/webhooks/{endpoint.id}").get_data(as_text=True), "next-attempt")
    assert cells[second.id] == "After the earlier events"
    assert cells[first.id] not in {"After the earlier events", "Due now", "—"}  # a time

    _make_due()
    cells = _cells(client.get(f"/webhooks/{endpoint.id}").get_data(as_text=True), "next-attempt")
    assert (cells[first.id], cells[second.id]) == ("Due now", "After the earlier events")

    endpoints.set_enabled(endpoint, False)
    db.session.commit()
    cells = _cells(client.get(f"/webhooks/{endpoint.id}").get_data(as_text=True), "next-attempt")
    assert set(cells.values()) == {"When the endpoint is enabled"}


def test_a_redirect_to_127_0_0_1_is_a_failure_and_is_not_followed(
    app: Flask, receiver: Receiver
) -> None:
    allow_hosts("127.0.0.1")
    add_endpoint(receiver.url())
    receiver.answers = [("redirect", receiver.url(path="/elsewhere"))]
    _event(1)
    run_queued_jobs(app)
    [row] = deliveries()
    assert (row.status, row.last_status_code) == ("pending", 302)
    assert row.last_error.startswith("redirect: 302")
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_a_name_resolving_to_loopback_is_refused_at_connect_time_unless_allowed(
    app: Flask, receiver: Receiver
) -> None:
    # Allowed at save time (a public name could resolve anywhere later), refused at connect.
    add_endpoint(receiver.url("localhost"))
    _event(1)
    run_queued_jobs(app)
    [row] = deliveries()
    assert row.status == "pending" and row.last_status_code is None
    assert row.last_error.startswith("blocked_address: localhost")
    assert "127.0.0.1" in row.last_error
    assert receiver.requests == []

    # Allowing the address does not allow a name that resolves to it: hosts are named.
    allow_hosts("127.0.0.1")
    _make_due()
    _reconcile(app)
    assert receiver.requests == []

    allow_hosts("localhost")
    _make_due()
    _reconcile(app)
    [row] = deliveries()
    assert row.status == "delivered"
    assert len(receiver.requests) == 1
    assert receiver.requests[0].headers["host"] == f"localhost:{receiver.port}"


def test_private_link_local_and_mapped_addresses_are_blocked() -> None:
    for address in (
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 (an address checked, not bound)
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "ff02::1",
    ):
        assert webhook_delivery.is_blocked_address(address), address
    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"):
        assert not webhook_delivery.is_blocked_address(address), address


def test_credentials_or_plain_http_in_the_url_are_refused_at_save(app: Flask) -> None:
    for url in (
        "https://user:secret@hooks.example.org/x",
        "https://user@hooks.example.org/x",
        "http://hooks.example.org/x",
        "ftp://hooks.example.org/x",
        "https:///x",
        "not a url",
    ):
        with pytest.raises(WebhookInputError) as refused:
            endpoints.create_endpoint(url, ["reply.received"])
        assert refused.value.field == "url", url
    with pytest.raises(WebhookInputError) as refused:
        endpoints.create_endpoint("https://hooks.example.org/x", [])
    assert refused.value.field == "event_types"


def test_after_three_days_of_failures_the_delivery_fails_and_the_next_event_goes(
    app: Flask, receiver: Receiver
) -> None:
    allow_hosts("127.0.0.1")
    add_endpoint(receiver.url())
    _event(1)
    _event(2)
    receiver.answers = [500]
    # Attempt 12 failed long ago; the 13th, three days after the first, is the last.
    first = deliveries()[0]
    db.session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == first.id)
        .values(attempts=12, next_attempt_at=clock.now() - timedelta(seconds=1))
    )
    db.session.commit()
    run_queued_jobs(app)
    first, second = deliveries()
    assert (first.status, first.attempts, first.next_attempt_at) == ("failed", 13, None)
    assert second.status == "delivered"
    assert [json.loads(b)["data"]["campaign_id"] for b in receiver.bodies()] == [1, 2]


def test_the_retry_schedule_spans_three_days() -> None:
    waits = []
    attempts = 1
    while (wait := webhook_delivery.next_delay(attempts)) is not None:
        waits.append(wait)
        attempts += 1
    assert waits[:6] == [
        timedelta(seconds=5),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=5),
        timedelta(hours=10),
    ]
    assert sum(waits, timedelta()) == timedelta(days=3)
    assert attempts == 13


def test_a_claim_lost_with_its_worker_is_taken_back_by_the_reconciler(
    app: Flask, receiver: Receiver
) -> None:
    allow_hosts("127.0.0.1")
    add_endpoint(receiver.url())
    _event(1)
    # A worker claimed it and died: the row says "delivering", its job is gone from Redis.
    db.session.execute(
        update(WebhookDelivery).values(
            status="delivering", claimed_until=clock.now() - timedelta(seconds=1)
        )
    )
    db.session.commit()
    get_queue(WEBHOOKS).empty()
    assert _reconcile(app) == 1
    [row] = deliveries()
    assert row.status == "delivered" and len(receiver.requests) == 1


def test_resend_from_the_page_sends_the_same_message_again_and_is_audited(
    app: Flask,
    client,
    login,
    receiver: Receiver,  # type: ignore[no-untyped-def]
) -> None:
    admin = login()
    allow_hosts("127.0.0.1")
    endpoint, secret = add_endpoint(receiver.url())
    _event(1)
    run_queued_jobs(app)
    [row] = deliveries()
    page = client.get(f"/webhooks/{endpoint.id}").get_data(as_text=True)
    assert "Delivered" in page and "HTTP 204" in page and "Campaign finished" in page

    response = client.post(f"/webhooks/deliveries/{row.id}/resend")
    assert response.status_code == 302
    [row] = deliveries()
    assert (row.status, row.attempts) == ("pending", 0)
    audit = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "webhook.resend"))
    assert [(e.actor_id, e.target_id) for e in audit] == [(admin.id, str(row.id))]
    run_queued_jobs(app)
    first, again = receiver.requests
    assert first.headers["webhook-id"] == again.headers["webhook-id"]
    verified(secret, again)
    assert deliveries()[0].status == "delivered"


def test_a_job_sends_a_bounded_number_then_hands_the_rest_to_the_next_job(
    app: Flask, receiver: Receiver
) -> None:
    allow_hosts("127.0.0.1")
    endpoint, _secret = add_endpoint(receiver.url())
    for n in range(3):
        _event(n)
    get_queue(WEBHOOKS).empty()
    report = webhook_delivery.deliver_webhooks(endpoint.id, commit=db.session.commit, limit=2)
    assert report.delivered == 2
    assert [d.status for d in deliveries()] == ["delivered", "delivered", "pending"]
    assert run_queued_jobs(app) == 1  # the job it queued for the rest
    assert [d.status for d in deliveries()] == ["delivered"] * 3
    assert [json.loads(b)["data"]["campaign_id"] for b in receiver.bodies()] == [0, 1, 2]
