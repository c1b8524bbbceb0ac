"""Unsubscribe links (RFC 8058) and the suppression list every send honours."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app
from sqlalchemy import select, update

from campaign.extensions import db
from campaign.mail import organisation_name
from campaign.models import (
    Campaign,
    Contact,
    Delivery,
    DeliveryStatus,
    Statement,
    Suppression,
    SuppressionReason,
    WebhookEventType,
)
from campaign.services.contacts.suppressions import find_suppression, mask_email, suppress_address
from campaign.services.webhooks import payloads as webhook_payloads
from campaign.services.webhooks.events import is_wanted, record_webhook_event

DEFAULT_PUBLIC_URL = "http://127.0.0.1:5000"
# secrets.token_urlsafe output; anything else cannot be a token, so no query is spent on it.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")

log = logging.getLogger(__name__)


def public_url() -> str:
    return (str(current_app.config.get("PUBLIC_URL") or "") or DEFAULT_PUBLIC_URL).rstrip("/")


def unsubscribe_url(token: str) -> str:
    """The https link of a delivery's List-Unsubscribe header (its token is opaque)."""
    return f"{public_url()}/u/{token}"


@dataclass(frozen=True)
class UnsubscribeTarget:
    """What the confirmation page may show: the sender and a masked address, nothing else;
    and what its language is chosen from (the contact's languages, the letter's)."""

    delivery: Delivery
    organisation: str
    masked_email: str
    is_suppressed: bool
    contact_languages: tuple[str, ...] = ()  # the recipient's, best first
    letter_languages: tuple[str, ...] = ()  # the statement's, its first language first


def find_target(token: str) -> UnsubscribeTarget | None:
    """The delivery an unsubscribe token belongs to, or None for any unknown or malformed one."""
    if not _TOKEN.fullmatch(token):
        return None
    delivery = db.session.scalar(select(Delivery).where(Delivery.unsubscribe_token == token))
    if delivery is None:
        return None
    campaign = db.session.get(Campaign, delivery.campaign_id)
    sender = campaign.from_address if campaign is not None else None
    contact = db.session.get(Contact, delivery.contact_id) if delivery.contact_id else None
    statement = db.session.get(Statement, campaign.statement_id) if campaign is not None else None
    return UnsubscribeTarget(
        delivery=delivery,
        organisation=organisation_name(sender),
        masked_email=mask_email(delivery.email),
        is_suppressed=find_suppression(delivery.email) is not None,
        contact_languages=tuple(contact.language_list) if contact is not None else (),
        letter_languages=tuple(statement.languages) if statement is not None else (),
    )


def unsubscribe(target: UnsubscribeTarget) -> Suppression:
    """Put the delivery's address on the suppression list (idempotent) and stop its queued mail.

    Letters still waiting in any campaign for the same contact are marked suppressed at once,
    so nobody gets another letter after saying stop, even from a campaign already sending.
    """
    delivery = target.delivery
    wanted = is_wanted(WebhookEventType.CONTACT_UNSUBSCRIBED)
    # Only a new entry is news: a second click, or an address suppressed before, is not.
    was_suppressed = wanted and find_suppression(delivery.email) is not None
    suppression = suppress_address(
        delivery.email,
        SuppressionReason.UNSUBSCRIBED,
        campaign_id=delivery.campaign_id,
        is_address_checked=False,
    )
    if delivery.contact_id is not None:
        db.session.execute(
            update(Delivery)
            .where(
                Delivery.contact_id == delivery.contact_id,
                Delivery.status.in_([DeliveryStatus.QUEUED.value, DeliveryStatus.DEFERRED.value]),
            )
            .values(
                status=DeliveryStatus.SUPPRESSED.value,
                reason="unsubscribed",
                updated_at=datetime.now(UTC),
            )
        )
    db.session.flush()
    if wanted and not was_suppressed:
        record_webhook_event(
            WebhookEventType.CONTACT_UNSUBSCRIBED,
            webhook_payloads.unsubscribe_event(delivery.id, suppression.id, suppression.created_at),
        )
    log.info("unsubscribed %s (campaign %s)", target.masked_email, delivery.campaign_id)
    return suppression
