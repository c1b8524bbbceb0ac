"""Contact imports: an uploaded file's journey through mapping, preview and import."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from campaign.extensions import db
from campaign.models._types import UTCDateTime, utcnow


class ImportStatus(enum.StrEnum):
    UPLOADED = "uploaded"
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


class ContactImport(db.Model):  # type: ignore[name-defined]
    __tablename__ = "contact_imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    original_filename: Mapped[str] = mapped_column(String(300))
    # Path of the uploaded file inside the instance folder.
    stored_path: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20), default=ImportStatus.UPLOADED.value)
    # Column mapping: file header -> contact field ("" = ignore).
    mapping: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    on_duplicate: Mapped[str] = mapped_column(String(10), default="skip")
    list_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact_lists.id", ondelete="SET NULL"), nullable=True
    )
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    imported_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_count: Mapped[int] = mapped_column(Integer, default=0)
    skipped_count: Mapped[int] = mapped_column(Integer, default=0)
    rejected_count: Mapped[int] = mapped_column(Integer, default=0)
    # Path of the rejects CSV (line, column, reason + the original cells), if any.
    rejects_path: Mapped[str] = mapped_column(String(500), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When a worker claimed the import (queued -> running).
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The RQ job's timeout, scaled to the file; an import silent for longer is dead.
    job_timeout_seconds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ImportMapping(db.Model):  # type: ignore[name-defined]
    """A column mapping remembered for files with the same set of headers."""

    __tablename__ = "import_mappings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Sorted, lower-cased headers joined by "|", hashed to a fixed length.
    header_signature: Mapped[str] = mapped_column(String(64), unique=True)
    mapping: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
