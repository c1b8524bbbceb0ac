"""What each webhook event carries (decision 0068): ids and times, an address only where needed.

Never a letter's or a reply's text, nor a signer's name or address: the reader of a chat
channel or a partner's system needs to know that something happened and where to look;
the API (with its own scopes) gives the rest to whoever may read it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import Campaign, Delivery, Signature, SignOn, WebhookEventType
from campaign.services.webhooks.events import Payload, rfc3339

# What `data` holds for each event type, for the Webhooks page and the README (a test builds
# every payload and checks that its keys are exactly these). Ids are those of /api/v1.
_DELIVERY = (
    ("delivery_id", _l("the letter in the campaign's ledger (GET /campaigns/{id}/deliveries)")),
    ("campaign_id", _l("the campaign")),
    ("contact_id", _l("the contact written to")),
    ("step", _l("0 for the letter, 1, 2 … for its follow-ups")),
    ("message_id", _l("the letter's Message-ID")),
    ("reason", _l("why it ended so, a code (or null)")),
    ("occurred_at", _l("when (RFC 3339, UTC)")),
)
_SIGNATURE = (
    ("signature_id", _l("the signature")),
    ("sign_on_id", _l("the sign-on page")),
    ("statement_id", _l("its statement (GET /statements/{id}/sign-on/signatures)")),
    ("signatory_id", _l("the signatory in the directory, or null")),
    ("occurred_at", _l("when (RFC 3339, UTC)")),
)
FIELDS: dict[str, tuple[tuple[str, Any], ...]] = {
    WebhookEventType.REPLY_RECEIVED.value: (
        ("reply_id", _l("the reply (GET /replies/{id}); its text is not sent")),
        ("delivery_id", _l("the letter answered")),
        ("campaign_id", _l("the campaign")),
        ("contact_id", _l("the contact who answered")),
        ("received_at", _l("when (RFC 3339, UTC)")),
    ),
    WebhookEventType.DELIVERY_BOUNCED.value: (
        *_DELIVERY,
        ("email", _l("the address that bounced, to remove it elsewhere too")),
    ),
    WebhookEventType.DELIVERY_FAILED.value: _DELIVERY,
    WebhookEventType.CAMPAIGN_FINISHED.value: (
        ("campaign_id", _l("the campaign")),
        ("name", _l("its name")),
        ("finished_at", _l("when (RFC 3339, UTC)")),
        ("deliveries", _l('the number of letters by ledger status, as {"sent": 120, …}')),
    ),
    WebhookEventType.SIGNATURE_CONFIRMED.value: _SIGNATURE,
    WebhookEventType.SIGNATURE_APPROVED.value: _SIGNATURE,
    WebhookEventType.CONTACT_UNSUBSCRIBED.value: (
        ("contact_id", _l("the contact")),
        ("email", _l("the address, to stop writing to it elsewhere too")),
        ("campaign_id", _l("the campaign whose letter held the link")),
        ("delivery_id", _l("that letter")),
        ("suppression_id", _l("the suppression recorded (GET /suppressions)")),
        ("unsubscribed_at", _l("when (RFC 3339, UTC)")),
    ),
}


def delivery_event(delivery_id: int, at: datetime, *, email: bool) -> Callable[[], Payload]:
    """delivery.bounced (with the address, to be removed from other systems), delivery.failed
    (without it)."""

    def build() -> Payload:
        delivery = db.session.get(Delivery, delivery_id)
        data: Payload = {"delivery_id": delivery_id, "occurred_at": rfc3339(at)}
        if delivery is not None:
            data.update(
                campaign_id=delivery.campaign_id,
                contact_id=delivery.contact_id,
                step=delivery.step,
                message_id=delivery.message_id,
                reason=delivery.reason or None,
            )
            if email:
                data["email"] = delivery.email
        return data

    return build


def reply_event(inbound_id: int, delivery_id: int, received_at: datetime) -> Callable[[], Payload]:
    """reply.received: which letter was answered and when; the reply itself stays here."""

    def build() -> Payload:
        delivery = db.session.get(Delivery, delivery_id)
        return {
            "reply_id": inbound_id,
            "delivery_id": delivery_id,
            "campaign_id": delivery.campaign_id if delivery else None,
            "contact_id": delivery.contact_id if delivery else None,
            "received_at": rfc3339(received_at),
        }

    return build


def campaign_event(campaign_id: int, finished_at: datetime) -> Callable[[], Payload]:
    """campaign.finished: the campaign and its ledger's figures by status."""

    def build() -> Payload:
        campaign = db.session.get(Campaign, campaign_id)
        counts = db.session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.campaign_id == campaign_id)
            .group_by(Delivery.status)
        )
        return {
            "campaign_id": campaign_id,
            "name": campaign.name if campaign else None,
            "finished_at": rfc3339(finished_at),
            "deliveries": {status: int(count) for status, count in counts},
        }

    return build


def signature_event(signature_id: int, at: datetime) -> Callable[[], Payload]:
    """signature.confirmed / signature.approved: ids only (a co-signer may be a target)."""

    def build() -> Payload:
        signature = db.session.get(Signature, signature_id)
        sign_on = db.session.get(SignOn, signature.sign_on_id) if signature else None
        return {
            "signature_id": signature_id,
            "sign_on_id": signature.sign_on_id if signature else None,
            "statement_id": sign_on.statement_id if sign_on else None,
            "signatory_id": signature.signatory_id if signature else None,
            "occurred_at": rfc3339(at),
        }

    return build


def unsubscribe_event(delivery_id: int, suppression_id: int, at: datetime) -> Callable[[], Payload]:
    """contact.unsubscribed: the address (other systems must stop writing to it too)."""

    def build() -> Payload:
        delivery = db.session.get(Delivery, delivery_id)
        return {
            "contact_id": delivery.contact_id if delivery else None,
            "email": delivery.email if delivery else None,
            "campaign_id": delivery.campaign_id if delivery else None,
            "delivery_id": delivery_id,
            "suppression_id": suppression_id,
            "unsubscribed_at": rfc3339(at),
        }

    return build
