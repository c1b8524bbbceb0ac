"""Opt-in open and click tracking: the links recorded at send time and the hits on them."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from campaign.extensions import db
from campaign.models._types import UTCDateTime, utcnow


class TrackingKind(enum.StrEnum):
    OPEN = "open"
    CLICK = "click"


class TrackedLink(db.Model):  # type: ignore[name-defined]
    """A URL a campaign's letters link to; a click redirects only to one of these."""

    __tablename__ = "tracked_links"
    __table_args__ = (UniqueConstraint("campaign_id", "url_sha256", name="uq_tracked_links_url"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(Text)
    # URLs can be longer than an index allows: uniqueness goes through their hash.
    url_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TrackingEvent(db.Model):  # type: ignore[name-defined]
    """One accepted open or click, written from the Redis buffer in batches."""

    __tablename__ = "tracking_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(10))
    link_id: Mapped[int | None] = mapped_column(
        ForeignKey("tracked_links.id", ondelete="SET NULL"), nullable=True
    )
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Never a full address: IPv4 /24 or IPv6 /48 ("192.0.2.0/24"), or "".
    ip_prefix: Mapped[str] = mapped_column(String(50), default="")
    user_agent: Mapped[str] = mapped_column(String(200), default="")
    # Unique per hit, so a batch written twice (a flusher killed after its commit) is
    # stored once.
    hit_key: Mapped[str] = mapped_column(String(64), unique=True)
