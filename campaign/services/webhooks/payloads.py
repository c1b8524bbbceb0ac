"""What each webhook event carries (decision 0068): ids and times, an address only where needed.

Never a letter's or a reply's text, nor a signer's name or address: the reader of a chat
channel or a partner's system needs to know that something happened and where to look;
the API (with its own scopes) gives the rest to whoever may read it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import Campaign, Delivery, Signature
from campaign.services.webhooks.events import Payload, rfc3339


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
        return {
            "signature_id": signature_id,
            "sign_on_id": signature.sign_on_id if signature else None,
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
