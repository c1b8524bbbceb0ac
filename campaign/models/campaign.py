"""Campaigns: a statement version sent to an audience from a sender through an SMTP account."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from campaign.extensions import db
from campaign.models._types import UTCDateTime, utcnow


class CampaignStatus(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    FINISHED = "finished"
    CANCELLED = "cancelled"


class Campaign(db.Model):  # type: ignore[name-defined]
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    # RESTRICT: a statement that a campaign uses cannot be deleted from under it.
    statement_id: Mapped[int] = mapped_column(
        ForeignKey("statements.id", ondelete="RESTRICT"), index=True
    )
    # Frozen at launch: every recipient gets the same version, whatever is edited later.
    statement_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("statement_versions.id", ondelete="RESTRICT"), nullable=True
    )
    # {"include": ["list:3", "segment:2"], "exclude": ["list:5"]}
    audience: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    from_address: Mapped[str] = mapped_column(String(400), default="")
    reply_to: Mapped[str] = mapped_column(String(400), default="")
    # NULL: the default account from the CAMPAIGN_MAIL_* settings.
    smtp_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("smtp_accounts.id", ondelete="RESTRICT"), nullable=True
    )
    is_pdf_attached: Mapped[bool] = mapped_column(Boolean, default=False)
    # Files stored with the statement (statement_attachments ids) attached to every letter.
    attached_file_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    # RFC 8058 one-click unsubscribe headers; off is allowed for one-to-one letters.
    has_list_unsubscribe: Mapped[bool] = mapped_column(Boolean, default=True)
    is_open_tracking: Mapped[bool] = mapped_column(Boolean, default=False)
    is_click_tracking: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default=CampaignStatus.DRAFT.value, index=True)
    # Why the campaign is paused, cancelled or finished early, in words for staff.
    status_reason: Mapped[str] = mapped_column(Text, default="")
    # Launched despite pre-send errors (recorded in the audit log too).
    is_presend_overridden: Mapped[bool] = mapped_column(Boolean, default=False)
    # Temporary failures are retried until this many hours after launch.
    give_up_hours: Mapped[int] = mapped_column(Integer, default=120)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    launched_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # When a scheduled campaign launches (UTC; its schedule keeps the local time and zone).
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # A yearly campaign's instance points at the template campaign it was made from.
    template_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="SET NULL"), nullable=True
    )
    launched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    statement = relationship("Statement")
    statement_version = relationship("StatementVersion")
    smtp_account = relationship("SmtpAccount")
