"""A bulk change over many contacts (tags, role, language, risk, lists), run as a job.

The selection is stored as the contact ids, resolved when the edit was confirmed, so the job
changes exactly the contacts whose count the user saw.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from campaign.extensions import db
from campaign.models._types import UTCDateTime, utcnow


class BulkEditStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ContactBulkEdit(db.Model):  # type: ignore[name-defined]
    __tablename__ = "contact_bulk_edits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    # What to change, e.g. {"add_tags": [...], "role_type": "ambassador", "add_list": 3}.
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    contact_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    # How the selection was described to the user ("filter: tag=press", "12 selected").
    selection_label: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default=BulkEditStatus.QUEUED.value)
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The running job's heartbeat (set when claimed and after each batch): a running edit
    # not updated for a while lost its worker, and the reconciler queues it again.
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
