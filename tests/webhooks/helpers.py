"""Endpoints made through the service, and the delivery jobs run as a worker would run them."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask
from sqlalchemy import select
from standardwebhooks import Webhook

from campaign.extensions import db
from campaign.models import WebhookDelivery, WebhookEndpoint
from campaign.queue import WEBHOOKS, get_queue
from campaign.services.webhooks import endpoints
from campaign.services.webhooks.events import DELIVER_JOB
from tests.webhooks.receiver import Received
from workers import context, jobs

ALL_TYPES = (
    "reply.received",
    "delivery.bounced",
    "delivery.failed",
    "campaign.finished",
    "signature.confirmed",
    "signature.approved",
    "contact.unsubscribed",
)


def add_endpoint(url: str, types: tuple[str, ...] = ALL_TYPES) -> tuple[WebhookEndpoint, str]:
    endpoint, secret = endpoints.create_endpoint(url, types, "test receiver")
    db.session.commit()
    return endpoint, secret


def allow_hosts(*hosts: str) -> None:
    endpoints.set_allowed_hosts("\n".join(hosts))
    db.session.commit()


def run_queued_jobs(app: Flask) -> int:
    """Run every queued delivery job once, as a worker would (RQ's queue, then the job)."""
    context.set_app(app)
    ran = 0
    queue = get_queue(WEBHOOKS)
    while True:
        waiting = [job for job in queue.jobs if job.func_name == DELIVER_JOB]
        if not waiting:
            break
        for job in waiting:
            job.delete()
            jobs.deliver_webhooks(*job.args)
            ran += 1
    db.session.expire_all()
    return ran


def deliveries() -> list[WebhookDelivery]:
    db.session.expire_all()
    return list(db.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def verified(secret: str, received: Received) -> dict[str, Any]:
    """The event, as the reference library's verifier accepts it (it raises otherwise)."""
    headers = {
        name: received.headers[name]
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
    }
    payload: dict[str, Any] = Webhook(secret).verify(received.body, headers)
    assert payload == json.loads(received.body)
    return payload
