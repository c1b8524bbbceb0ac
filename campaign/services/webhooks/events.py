"""Record a webhook event in the caller's transaction, with one delivery per endpoint wanting it.

Called by the services where things happen (replies intake, bounces, the send loop, the
campaign's end, sign-on confirmation and moderation, unsubscribe). An event is written only
when an enabled endpoint wants its type, so an installation without webhooks pays one small
query per event and nothing more. Payloads carry ids and times, an e-mail address only where
the receiver needs it (an unsubscribe, a bounce), never a letter's or a reply's text: a
co-signer may be a target, and a chat channel is no place for their words (decision 0068).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from campaign import clock
from campaign.extensions import db
from campaign.models import (
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEvent,
    WebhookEventType,
)
from campaign.queue import WEBHOOKS, enqueue_after_commit

DELIVER_JOB = "workers.jobs.deliver_webhooks"
# A job starts no new attempt once it has run this long (seconds) and hands the rest to the
# next job, queued behind whatever else waits: a worker is never held much longer than this.
JOB_BUDGET_SECONDS = 30.0
DELIVERIES_PER_JOB = 20
# RQ's limit for one delivery job: the budget, then one last attempt (DNS included, at most
# delivery.TOTAL_TIMEOUT), with room to spare.
DELIVER_JOB_TIMEOUT = 120

Payload = dict[str, Any]


def rfc3339(moment: datetime | None) -> str | None:
    """`moment` as RFC 3339 in UTC with a Z ("2026-12-07T14:31:02Z"), None for None."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def endpoints_wanting(event_type: str) -> list[int]:
    """Ids of the enabled endpoints that receive `event_type`, oldest first."""
    rows = db.session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.event_types)
        .where(WebhookEndpoint.enabled.is_(True))
        .order_by(WebhookEndpoint.id)
    )
    return [row.id for row in rows if event_type in (row.event_types or [])]


def is_wanted(event_type: str) -> bool:
    """Whether any enabled endpoint receives `event_type` (callers skip building payloads)."""
    return bool(endpoints_wanting(event_type))


def record_webhook_event(
    event_type: WebhookEventType | str, payload: Payload | Callable[[], Payload]
) -> WebhookEvent | None:
    """Record one event and its deliveries (flushed, sent after the caller commits).

    `payload` may be a function, called only when an endpoint wants the event. Returns None
    (and writes nothing) when no enabled endpoint wants this type.
    """
    kind = WebhookEventType(event_type).value
    endpoint_ids = endpoints_wanting(kind)
    if not endpoint_ids:
        return None
    data = payload() if callable(payload) else payload
    now = clock.now()
    event = WebhookEvent(
        message_id="msg_" + secrets.token_urlsafe(18), type=kind, payload=data, created_at=now
    )
    db.session.add(event)
    db.session.flush()
    for endpoint_id in endpoint_ids:
        db.session.add(
            WebhookDelivery(
                endpoint_id=endpoint_id,
                event_id=event.id,
                status=WebhookDeliveryStatus.PENDING.value,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
        enqueue_delivery_job(endpoint_id)
    db.session.flush()
    return event


def enqueue_delivery_job(endpoint_id: int) -> None:
    """Queue (after commit) the endpoint's delivery job, on the webhooks queue: workers take it
    only when no sending job waits."""
    enqueue_after_commit(
        db.session(), DELIVER_JOB, endpoint_id, job_timeout=DELIVER_JOB_TIMEOUT, queue=WEBHOOKS
    )
