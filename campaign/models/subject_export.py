"""Access-request exports: one export of everything stored about one person, as a job."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from campaign.extensions import db
from campaign.models._types import UTCDateTime, utcnow


class SubjectExportStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    EXPIRED = "expired"  # the file was removed (its time ran out, or an admin removed it)


class SubjectExport(db.Model):  # type: ignore[name-defined]
    """One export (decision 0089). The ZIP is a file in the instance folder's private/exports
    folder, named by `file_name`, mode 0600; it is removed when `expires_at` passes.

    `email` is the address being exported, kept only while the job needs it: it is emptied
    when the export finishes or fails, so this table does not become a second list of the
    people who asked. `email_hash` stays: only the instance's erasure key can test an
    address against it.
    """

    __tablename__ = "subject_exports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The download address's secret (secrets.token_urlsafe).
    token: Mapped[str] = mapped_column(String(64), unique=True)
    # The run allowed to write the row: a job whose key is no longer the row's stops.
    run_key: Mapped[str] = mapped_column(String(32), default="")
    status: Mapped[str] = mapped_column(String(20), default=SubjectExportStatus.QUEUED.value)
    # The contact page the export was asked from (none for a signer who is not a contact).
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), nullable=True, index=True
    )
    email: Mapped[str] = mapped_column(String(320), default="")
    # The keyed hash of the address's key (erased_addresses.hashed_key: HMAC-SHA256 under the
    # instance's erasure key), kept after `email` is emptied so that erasing the person finds
    # and removes their finished exports (subject_export.exports_for_key).
    email_hash: Mapped[str] = mapped_column(String(80), default="", server_default="", index=True)
    # The language of the README in the ZIP: the interface language of whoever asked.
    language: Mapped[str] = mapped_column(String(8), default="en")
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    is_empty: Mapped[bool] = mapped_column(Boolean, default=False)
    file_name: Mapped[str] = mapped_column(String(255), default="")
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    requested_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    downloaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
