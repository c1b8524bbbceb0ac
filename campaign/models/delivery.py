"""The delivery ledger: one row per (campaign, contact, step), the record of who was sent what."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from campaign.extensions import db
from campaign.models._types import UTCDateTime, utcnow


class DeliveryStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"  # claimed by a worker until lease_until
    SENT = "sent"
    DEFERRED = "deferred"  # a temporary failure; retried at next_attempt_at
    FAILED = "failed"  # permanent: the reason column says why
    BOUNCED = "bounced"  # the server refused the address for good (5.1.x)
    SUPPRESSED = "suppressed"  # on the suppression list when the campaign launched
    IN_DOUBT = "in_doubt"  # the connection dropped after the message; retried, same Message-ID
    CANCELLED = "cancelled"


# Rows a worker may claim (when next_attempt_at has come).
CLAIMABLE = (DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED, DeliveryStatus.IN_DOUBT)
# Rows that will not change any more.
FINAL = (
    DeliveryStatus.SENT,
    DeliveryStatus.FAILED,
    DeliveryStatus.BOUNCED,
    DeliveryStatus.SUPPRESSED,
    DeliveryStatus.CANCELLED,
)


class Delivery(db.Model):  # type: ignore[name-defined]
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("campaign_id", "contact_id", "step", name="uq_deliveries_recipient_step"),
        Index("ix_deliveries_claim", "campaign_id", "status", "next_attempt_at"),
        # Bounces and weak reply matches look deliveries up by address, whatever its case.
        Index("ix_deliveries_email_lower", func.lower(text("email"))),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), nullable=True, index=True
    )
    # 0 is the letter itself; follow-ups count up from 1.
    step: Mapped[int] = mapped_column(Integer, default=0)
    # The address at launch: what the ledger says was written to, even if the contact changes.
    email: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.QUEUED.value)
    # Fixed when the row is created; every retry reuses it, so duplicates are recognisable.
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    # Opaque random token of the RFC 8058 unsubscribe link.
    unsubscribe_token: Mapped[str] = mapped_column(String(64), unique=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Sends whose outcome was unknown (drop after the final dot, lost worker) and were retried.
    possible_duplicates: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claimed_by: Mapped[str] = mapped_column(String(100), default="")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_reply: Mapped[str] = mapped_column(Text, default="")
    # Machine-readable reason for a final status other than sent (hard_bounce, expired, ...).
    reason: Mapped[str] = mapped_column(String(40), default="")
    language: Mapped[str] = mapped_column(String(20), default="")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When the recipient first answered in person (auto-replies and bounces do not count).
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # First open / first click, only when the campaign tracks them (written in batches).
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Evidence: SHA-256 of the exact bytes sent, and the bytes themselves (zlib).
    message_sha256: Mapped[str] = mapped_column(String(64), default="")
    message_blob: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
