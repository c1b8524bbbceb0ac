"""IMAP mailboxes the poller reads replies from, with their UIDVALIDITY/UID checkpoints."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from campaign.extensions import db
from campaign.models._types import UTCDateTime, utcnow


class ImapSecurity(enum.StrEnum):
    SSL = "ssl"
    STARTTLS = "starttls"
    NONE = "none"


class ImapMailbox(db.Model):  # type: ignore[name-defined]
    __tablename__ = "imap_mailboxes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=993)
    security: Mapped[str] = mapped_column(String(10), default=ImapSecurity.SSL.value)
    username: Mapped[str] = mapped_column(String(320), default="")
    # Fernet ciphertext (campaign.secret_box); never shown back or logged.
    password_encrypted: Mapped[str] = mapped_column(Text, default="")
    folder: Mapped[str] = mapped_column(String(255), default="INBOX")
    # Where handled mail is moved; empty leaves it in place (the UID checkpoint still holds).
    processed_folder: Mapped[str] = mapped_column(String(255), default="Processed")
    # Checkpoint: UIDs are only comparable within one UIDVALIDITY of the folder. Both are
    # unsigned 32-bit numbers in IMAP, beyond PostgreSQL's INTEGER.
    uidvalidity: Mapped[int] = mapped_column(BigInteger, default=0)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    # Consecutive failed polls; reset by the next successful one.
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # None means "due now".
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
