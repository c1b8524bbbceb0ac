"""Events of the send loop and the unsubscribe link: a letter bounced and one failed at the
SMTP server, the campaign finished, a recipient unsubscribed — each arrives once, signed."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Delivery
from campaign.services.sending import batches as sending
from campaign.services.sending.unsubscribe import find_target, unsubscribe
from campaign.services.webhooks.payloads import FIELDS
from tests.factories import CampaignFactory
from tests.fault_smtp import FaultSmtpServer
from tests.webhooks.helpers import add_endpoint, allow_hosts, run_queued_jobs, verified
from tests.webhooks.receiver import Receiver


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], fault_smtp: FaultSmtpServer) -> dict[str, Any]:
    return {
        **app_overrides,
        "MAIL_SERVER": fault_smtp.host,
        "MAIL_PORT": fault_smtp.port,
        "MAIL_TIMEOUT": 10,  # no stall tested: a loaded 3-worker run can take > 1 s
        "PUBLIC_URL": "https://campaign.example.org",
        "QUEUE_NAME": f"test-{uuid.uuid4().hex[:12]}",
    }


def test_bounced_failed_finished_and_unsubscribed_arrive_once_each(
    app: Flask, receiver: Receiver, fault_smtp: FaultSmtpServer
) -> None:
    allow_hosts("127.0.0.1")
    _endpoint, secret = add_endpoint(receiver.url())
    campaign = CampaignFactory(
        statement__body="{{ salutation }}\n\nRelease the defenders.\n\n{{ closing }}\n",
        recipients=["gone@example.net", "refused@example.net", "reader@example.net"],
        from_address="Human Rights Office <office@example.org>",
        launched=True,
        commit=True,
    )
    fault_smtp.fail(550, "5.1.1 No such user here", stage="rcpt", match="gone@example.net")
    fault_smtp.fail(554, "5.7.1 Refused by policy", stage="data", match="refused@example.net")
    sending.send_batch(campaign.id, worker="test-worker", commit=db.session.commit)
    sending.finish_if_done(campaign.id)
    db.session.commit()
    rows = {
        row.email: row
        for row in db.session.scalars(select(Delivery).where(Delivery.campaign_id == campaign.id))
    }
    reader = rows["reader@example.net"]
    target = find_target(reader.unsubscribe_token)
    assert target is not None
    unsubscribe(target)
    db.session.commit()
    again = find_target(reader.unsubscribe_token)
    assert again is not None
    unsubscribe(again)  # a second click: nothing new to tell
    db.session.commit()
    run_queued_jobs(app)

    events = [verified(secret, request) for request in receiver.requests]
    by_type = {e["type"]: e["data"] for e in events}
    assert sorted(e["type"] for e in events) == [
        "campaign.finished",
        "contact.unsubscribed",
        "delivery.bounced",
        "delivery.failed",
    ]
    bounced, failed = by_type["delivery.bounced"], by_type["delivery.failed"]
    assert (bounced["delivery_id"], bounced["email"]) == (
        rows["gone@example.net"].id,
        "gone@example.net",
    )
    assert failed["delivery_id"] == rows["refused@example.net"].id
    assert failed["reason"] == "rejected" and "email" not in failed
    finished = by_type["campaign.finished"]
    assert finished["campaign_id"] == campaign.id and finished["finished_at"].endswith("Z")
    assert finished["deliveries"] == {"bounced": 1, "failed": 1, "sent": 1}
    unsubscribed = by_type["contact.unsubscribed"]
    assert (unsubscribed["email"], unsubscribed["delivery_id"]) == ("reader@example.net", reader.id)
    assert unsubscribed["contact_id"] == reader.contact_id
    # Each carries exactly the fields the Webhooks page and the README document for it.
    for kind, data in by_type.items():
        assert set(data) == {name for name, _meaning in FIELDS[kind]}, kind
    # Never the letter's text.
    assert not any(b"Release the defenders" in r.body for r in receiver.requests)
    # The order recorded is the order received (one endpoint, one at a time).
    assert [e["type"] for e in events][-1] == "contact.unsubscribed"
