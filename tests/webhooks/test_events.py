"""Events recorded where things happen (replies intake, bounces, sign-on confirmation and
moderation) arrive once each, signed, with payloads that carry ids and no text."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Delivery, WebhookEvent
from campaign.services.replies.intake import record_inbound
from campaign.services.sign_on import moderation, signatures
from campaign.services.webhooks.payloads import FIELDS
from tests import servers
from tests.inbound.helpers import corpus, sent_campaign
from tests.sign_on.test_signing import (
    PUBLIC_URL,
    deliver,
    link_token,
    make_sign_on,
    organisation_form,
    submit,
)
from tests.webhooks.helpers import add_endpoint, allow_hosts, run_queued_jobs, verified
from tests.webhooks.receiver import Receiver


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    return {
        **app_overrides,
        "MAIL_SERVER": "localhost",
        "MAIL_PORT": servers.free_port(),
        "PUBLIC_URL": PUBLIC_URL,
    }


def _received(secret: str, receiver: Receiver) -> list[dict[str, Any]]:
    return [verified(secret, request) for request in receiver.requests]


def test_a_reply_and_a_hard_bounce_each_arrive_once_without_their_text(
    app: Flask, receiver: Receiver
) -> None:
    allow_hosts("127.0.0.1")
    _endpoint, secret = add_endpoint(receiver.url())
    letters = sent_campaign()
    record_inbound(corpus("reply_in_reply_to.eml"))
    db.session.commit()
    record_inbound(corpus("postfix_dsn.eml"))
    db.session.commit()
    # The same messages again (a second poll): stored once, reported once.
    record_inbound(corpus("reply_in_reply_to.eml"))
    record_inbound(corpus("postfix_dsn.eml"))
    db.session.commit()
    run_queued_jobs(app)

    events = _received(secret, receiver)
    assert [e["type"] for e in events] == ["reply.received", "delivery.bounced"]
    reply, bounce = (e["data"] for e in events)
    ana = db.session.get(Delivery, letters["ana@example.org"])
    assert ana is not None
    assert reply["delivery_id"] == ana.id and reply["campaign_id"] == ana.campaign_id
    assert reply["contact_id"] == ana.contact_id and reply["received_at"].endswith("Z")
    assert isinstance(reply["reply_id"], int)
    # Never the reply's words (nor its sender's address: the contact id says who).
    raw = receiver.requests[0].body.decode()
    assert "ambassador" not in raw and "ana@example.org" not in raw
    assert set(reply) == {"reply_id", "delivery_id", "campaign_id", "contact_id", "received_at"}
    # Exactly the fields documented (Webhooks page, README) for each type.
    for event in events:
        assert set(event["data"]) == {name for name, _meaning in FIELDS[event["type"]]}
    assert (bounce["delivery_id"], bounce["email"]) == (ana.id, "ana@example.org")
    assert bounce["reason"] == "hard_bounce" and bounce["message_id"] == ana.message_id


def test_a_signature_confirmed_then_approved_arrives_once_each_without_the_signer(
    app: Flask, receiver: Receiver
) -> None:
    allow_hosts("127.0.0.1")
    _endpoint, secret = add_endpoint(receiver.url(), ("signature.confirmed", "signature.approved"))
    sign_on = make_sign_on()
    result = submit(sign_on, organisation_form())
    [message] = deliver(app, "signature_confirmation", result.signature_id)
    token = link_token(message)
    signatures.confirm_signature(token)
    db.session.commit()
    signatures.confirm_signature(token)  # the link followed twice: confirmed once
    db.session.commit()
    signature = signatures.check_link(token)
    assert signature is not None
    moderation.approve(signature.signature)
    db.session.commit()
    run_queued_jobs(app)

    events = _received(secret, receiver)
    assert [e["type"] for e in events] == ["signature.confirmed", "signature.approved"]
    confirmed, approved = (e["data"] for e in events)
    assert confirmed["signature_id"] == approved["signature_id"] == result.signature_id
    assert confirmed["sign_on_id"] == sign_on.id and confirmed["signatory_id"] is None
    assert isinstance(approved["signatory_id"], int)
    # The statement, to read its signatures through /api/v1/statements/{id}/sign-on/signatures.
    assert confirmed["statement_id"] == approved["statement_id"] == sign_on.statement_id
    for event in events:
        assert set(event["data"]) == {name for name, _meaning in FIELDS[event["type"]]}
    # A co-signer may be a target: neither name nor address leaves with the event.
    for request in receiver.requests:
        text = request.body.decode()
        assert "ahrca" not in text.lower() and "@" not in text
    assert len(db.session.scalars(select(WebhookEvent)).all()) == 2
    assert all(json.loads(r.body)["timestamp"].endswith("Z") for r in receiver.requests)
