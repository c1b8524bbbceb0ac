"""Answers written in the app to a reply: sent through the campaign's SMTP account, threaded.

An answer is recorded as SENDING before the SMTP conversation starts and never goes back to
a draft afterwards, the same rule as the delivery ledger: one that may have gone out is never
recorded as anything less.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from campaign.extensions import db
from campaign.models._types import UTCDateTime, utcnow


class AnswerStatus(enum.StrEnum):
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"  # refused before any data was accepted: certainly not delivered
    IN_DOUBT = "in_doubt"  # the connection broke after DATA: it may have gone out


class ReplyAnswer(db.Model):  # type: ignore[name-defined]
    __tablename__ = "reply_answers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    inbound_id: Mapped[int] = mapped_column(
        ForeignKey("inbound_messages.id", ondelete="CASCADE"), index=True
    )
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), nullable=True, index=True
    )
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL"), nullable=True, index=True
    )
    smtp_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("smtp_accounts.id", ondelete="SET NULL"), nullable=True
    )
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text, default="")
    body_text: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    in_reply_to: Mapped[str] = mapped_column(String(998), default="")
    references: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default=AnswerStatus.SENDING.value)
    error: Mapped[str] = mapped_column(Text, default="")
    # The exact message as handed to the SMTP server (evidence, like Delivery.message_blob).
    message_sha256: Mapped[str] = mapped_column(String(64), default="")
    message_blob: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    author = relationship("User")
