"""Schedules: what fires when (send-at, follow-up steps, yearly campaigns, reminders), each
fire recorded once.

Every schedule keeps `next_run_at` (UTC). A tick claims a due fire by inserting a
`schedule_runs` row whose (schedule_id, due_at) is unique: two ticks, on one machine or
two, cannot both insert it, so nothing fires twice. After downtime, fires older than the
grace period are recorded as skipped (and shown), not sent late.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from campaign.extensions import db
from campaign.models._types import UTCDateTime, utcnow


class ScheduleKind(enum.StrEnum):
    SEND_AT = "send_at"  # launch a draft campaign at a local date and time
    FOLLOW_UP = "follow_up"  # a campaign step, N days after the previous letter
    YEARLY_CAMPAIGN = "yearly_campaign"  # a new campaign from a template campaign every year
    REMINDER = "reminder"  # tell staff, N days before an event or a case anniversary
    SIGN_ON_REMINDER = "sign_on_reminder"  # invitees who have not signed, before the deadline
    # System schedules, one each, made by the worker's tick when missing (decision 0088).
    RETENTION = "retention"  # remove data older than its retention period, daily
    BACKUP = "backup"  # queue the daily encrypted backup into the configured folder


class RunOutcome(enum.StrEnum):
    FIRED = "fired"
    SKIPPED = "skipped"  # due longer ago than the grace period: not done, and said so
    FAILED = "failed"  # the action raised: the reason is in `detail`


class FollowUpCondition(enum.StrEnum):
    NO_REPLY = "no_reply"
    NO_REPLY_NO_BOUNCE = "no_reply_no_bounce"
    OPENED_NO_REPLY = "opened_no_reply"


class SignatoriesFrom(enum.StrEnum):
    FIRST_LETTER = "first_letter"  # the frozen version of the campaign's statement
    STEP_STATEMENT = "step_statement"  # the follow-up statement's own signatories
    NONE = "none"


class Schedule(db.Model):  # type: ignore[name-defined]
    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(30), index=True)
    name: Mapped[str] = mapped_column(String(300), default="")
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=True, index=True
    )
    step_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaign_steps.id", ondelete="CASCADE"), nullable=True
    )
    event_id: Mapped[int | None] = mapped_column(
        ForeignKey("calendar_events.id", ondelete="CASCADE"), nullable=True
    )
    case_date_id: Mapped[int | None] = mapped_column(
        ForeignKey("case_dates.id", ondelete="CASCADE"), nullable=True
    )
    # IANA zone the rule's local times are in ("Europe/Paris").
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # The rule in local terms, e.g. {"at": "2027-06-26T09:00"} for send-at,
    # {"month": 6, "day": 26, "time": "09:00"} for yearly, {"days_before": 7} for reminders.
    rule: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    last_fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScheduleRun(db.Model):  # type: ignore[name-defined]
    """One fire of a schedule (or its skip); the unique key is what makes a fire happen once."""

    __tablename__ = "schedule_runs"
    __table_args__ = (UniqueConstraint("schedule_id", "due_at", name="uq_schedule_runs_due"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    schedule_id: Mapped[int] = mapped_column(
        ForeignKey("schedules.id", ondelete="CASCADE"), index=True
    )
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ran_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    outcome: Mapped[str] = mapped_column(String(20))
    # What it did, in words for staff ("37 letters queued", "skipped: 3 days late").
    detail: Mapped[str] = mapped_column(Text, default="")
    # The campaign a fire created or launched, when it did.
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="SET NULL"), nullable=True
    )


class CampaignStep(db.Model):  # type: ignore[name-defined]
    """A follow-up: N days after the previous letter, statement X to recipients who …"""

    __tablename__ = "campaign_steps"
    __table_args__ = (UniqueConstraint("campaign_id", "position", name="uq_campaign_steps_pos"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    # 1 for the first follow-up (deliveries.step), 2 for the next …
    position: Mapped[int] = mapped_column(Integer)
    statement_id: Mapped[int | None] = mapped_column(
        ForeignKey("statements.id", ondelete="SET NULL"), nullable=True
    )
    delay_days: Mapped[int] = mapped_column(Integer)
    condition: Mapped[str] = mapped_column(
        String(30), default=FollowUpCondition.NO_REPLY_NO_BOUNCE.value
    )
    # "" means "Re: " + the first letter's subject, so mail clients keep one thread.
    subject: Mapped[str] = mapped_column(Text, default="")
    # Whose signatures close the follow-up: SignatoriesFrom values.
    signatories_from: Mapped[str] = mapped_column(
        String(20), default=SignatoriesFrom.FIRST_LETTER.value
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
