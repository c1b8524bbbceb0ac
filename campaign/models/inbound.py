"""Inbound mail: every message received (reply, auto-reply, bounce or unmatched), stored once."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from campaign.extensions import db
from campaign.models._types import UTCDateTime, utcnow


class InboundKind(enum.StrEnum):
    BOUNCE = "bounce"
    AUTO_REPLY = "auto_reply"
    REPLY = "reply"
    UNMATCHED = "unmatched"


class BounceKind(enum.StrEnum):
    HARD = "hard"
    SOFT = "soft"


class MatchMethod(enum.StrEnum):
    NONE = ""
    IN_REPLY_TO = "in_reply_to"
    REFERENCES = "references"
    REPLY_TOKEN = "reply_token"  # noqa: S105 (a method name, not a secret)
    BOUNCED_MESSAGE = "bounced_message"  # the original Message-ID quoted inside a bounce
    BOUNCED_RECIPIENT = "bounced_recipient"  # the address a bounce reports
    SENDER_SUBJECT = "sender_subject"
    MANUAL = "manual"  # attached or confirmed by a person in the replies inbox


class InboundMessage(db.Model):  # type: ignore[name-defined]
    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # "file", "upload" or "imap:<mailbox id>".
    source: Mapped[str] = mapped_column(String(120), default="file")
    # Dedupe key: SHA-256 of the raw bytes for files; mailbox, UIDVALIDITY and UID for IMAP.
    source_key: Mapped[str] = mapped_column(String(255), unique=True)
    message_id: Mapped[str] = mapped_column(String(998), default="", index=True)
    in_reply_to: Mapped[str] = mapped_column(String(998), default="")
    from_address: Mapped[str] = mapped_column(String(320), default="", index=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    # The Date header when it is a date, else when we received the message.
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(20), default=InboundKind.UNMATCHED.value, index=True)
    bounce_kind: Mapped[str | None] = mapped_column(String(10), nullable=True)
    # Every address the bounce reports, matched to a delivery or not.
    bounce_recipients: Mapped[list[str]] = mapped_column(JSON, default=list)
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL"), nullable=True, index=True
    )
    match_method: Mapped[str] = mapped_column(String(30), default="")
    # Matched by sender and subject only: a person should confirm it.
    is_weak_match: Mapped[bool] = mapped_column(Boolean, default=False)
    # What was odd or refused while reading it ("too many parts", "unknown charset" ...).
    problems: Mapped[list[str]] = mapped_column(JSON, default=list)
    # A capped plain-text excerpt; the raw message itself is not kept here.
    text: Mapped[str] = mapped_column(Text, default="")
    raw_size: Mapped[int] = mapped_column(Integer, default=0)
    # The raw message, zlib-compressed (NULL when it was over the size cap): what a person
    # may download, and what the HTML view is read from. Never rendered by the server.
    raw_blob: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # The first HTML part as received (capped); sanitised with nh3 only when shown.
    html: Mapped[str] = mapped_column(Text, default="")
    # [{"filename": ..., "content_type": ..., "size": ...}] -- listed, never opened.
    attachments: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    # The DMARC result from a trusted Authentication-Results header: pass, fail, none or "".
    dmarc: Mapped[str] = mapped_column(String(20), default="")
    # The From domain could not be verified (DMARC failed): shown with a warning.
    is_unverified: Mapped[bool] = mapped_column(Boolean, default=False)
    # Triage by staff.
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    handled_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    assigned_to_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    delivery = relationship("Delivery")
    handled_by = relationship("User", foreign_keys=[handled_by_id])
    assigned_to = relationship("User", foreign_keys=[assigned_to_id])
    notes = relationship(
        "InboundNote",
        order_by="(InboundNote.created_at, InboundNote.id)",
        cascade="all, delete-orphan",
    )


class InboundNote(db.Model):  # type: ignore[name-defined]
    """A colleague's note on an inbound message ("called the embassy", "forwarded to X")."""

    __tablename__ = "inbound_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    inbound_id: Mapped[int] = mapped_column(
        ForeignKey("inbound_messages.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    author = relationship("User")
