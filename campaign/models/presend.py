"""The pre-send check of a campaign's letters as a job: its progress and its stored result."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from campaign.extensions import db
from campaign.models._types import UTCDateTime, utcnow


class PresendStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class PresendRun(db.Model):  # type: ignore[name-defined]
    """The latest pre-send check of one campaign (one row a campaign, decision 0071).

    `run_key` names the run that may write the row: a check started again (or run in a
    request) takes a new key, and a job whose key is no longer the row's stops. The result
    is current while `fingerprint` equals what the letters depend on now.
    """

    __tablename__ = "presend_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), unique=True
    )
    status: Mapped[str] = mapped_column(String(20), default=PresendStatus.QUEUED.value)
    run_key: Mapped[str] = mapped_column(String(32), default="")
    # What the stored result depends on (statement version, audience, rules), hashed.
    fingerprint: Mapped[str] = mapped_column(String(64), default="")
    total: Mapped[int] = mapped_column(Integer, default=0)
    checked: Mapped[int] = mapped_column(Integer, default=0)
    # The report (PresendReport, its first problems) as JSON; kept while a new run goes.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
    # The fingerprint of letters a web request gave up checking (too slow for a request):
    # while it holds, pages go straight to the job's button without rendering.
    slow_for: Mapped[str] = mapped_column(String(64), default="")
    started_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Moved on at every batch of letters: a run silent for longer than STALE_AFTER is dead.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
