"""Outgoing webhooks: endpoints an admin registers, the events the application records, and
one delivery per event and endpoint (issue 17).

Events are recorded in the same transaction as what they report, so an event exists if and
only if the thing happened; deliveries are then sent by RQ jobs, at least once, in event
order per endpoint, and retried with backoff for up to three days.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from campaign.extensions import db
from campaign.models._types import UTCDateTime, utcnow


class WebhookEventType(enum.StrEnum):
    REPLY_RECEIVED = "reply.received"
    DELIVERY_BOUNCED = "delivery.bounced"
    DELIVERY_FAILED = "delivery.failed"
    CAMPAIGN_FINISHED = "campaign.finished"
    SIGNATURE_CONFIRMED = "signature.confirmed"
    SIGNATURE_APPROVED = "signature.approved"
    CONTACT_UNSUBSCRIBED = "contact.unsubscribed"


class WebhookDeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its turn or its next attempt
    DELIVERING = "delivering"  # a job is sending it now
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # gave up after three days of attempts


class WebhookEndpoint(db.Model):  # type: ignore[name-defined]
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(200), default="")
    # The WebhookEventType values this endpoint receives.
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The Standard Webhooks secret ("whsec_" + base64), Fernet-encrypted (campaign/secret_box).
    secret_encrypted: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookEvent(db.Model):  # type: ignore[name-defined]
    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The `webhook-id` header: the same for every attempt, so receivers can drop repeats.
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(50), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(db.Model):  # type: ignore[name-defined]
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[int] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(
        String(20), default=WebhookDeliveryStatus.PENDING.value, index=True
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The endpoint's HTTP status, or None when no answer came (refused, timeout, blocked).
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The job working on it and until when (a lost job's delivery is taken back after it).
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    endpoint = relationship("WebhookEndpoint")
    event = relationship("WebhookEvent")
