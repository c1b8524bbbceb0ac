"""Sign-on: partners add their names to a joint statement before it goes out.

A statement has at most one sign-on page (`SignOn`), reached without login at an
unguessable address. Each form sent there is a `Signature`: unconfirmed until the signer
follows the link e-mailed to them, then waiting for an editor, who approves it (it becomes
a `Signatory` of the statement, recorded in a new statement version), rejects it, or merges
it into another. Unconfirmed signatures never appear anywhere public.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from campaign.extensions import db
from campaign.models._types import UTCDateTime, utcnow


class SignatureStatus(enum.StrEnum):
    UNCONFIRMED = "unconfirmed"  # the signer has not followed the e-mailed link yet
    CONFIRMED = "confirmed"  # waiting for an editor
    APPROVED = "approved"  # a Signatory of the statement
    REJECTED = "rejected"
    MERGED = "merged"  # a duplicate folded into `merged_into_id`


class SignOnOrder(enum.StrEnum):
    ORGANISATIONS_FIRST = "organisations_first"  # organisations, then individuals
    CUSTOM = "custom"  # the editors' order (Signatory.position)


class SignOn(db.Model):  # type: ignore[name-defined]
    __tablename__ = "sign_ons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    statement_id: Mapped[int] = mapped_column(
        ForeignKey("statements.id", ondelete="CASCADE"), unique=True
    )
    # The public address's secret (secrets.token_urlsafe): the only key to the page.
    token: Mapped[str] = mapped_column(String(64), unique=True)
    is_open: Mapped[bool] = mapped_column(Boolean, default=True)
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # False: the page shows only how many have signed, not who.
    shows_names: Mapped[bool] = mapped_column(Boolean, default=True)
    ordering: Mapped[str] = mapped_column(String(20), default=SignOnOrder.ORGANISATIONS_FIRST.value)
    # Days before the deadline when invitees who have not signed get one reminder.
    reminder_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    consent_text: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Signature(db.Model):  # type: ignore[name-defined]
    __tablename__ = "signatures"
    # The same address signing the same name twice (a double click, two tabs) is one row.
    __table_args__ = (
        UniqueConstraint("sign_on_id", "email_key", "name_key", name="uq_signatures_signer"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sign_on_id: Mapped[int] = mapped_column(
        ForeignKey("sign_ons.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))  # SignatoryKind
    name: Mapped[str] = mapped_column(String(300))
    acronym: Mapped[str] = mapped_column(String(50), default="")
    role: Mapped[str] = mapped_column(String(200), default="")
    organisation: Mapped[str] = mapped_column(String(300), default="")
    country: Mapped[str] = mapped_column(String(100), default="")
    exile_country: Mapped[str] = mapped_column(String(100), default="")
    publish_as: Mapped[str] = mapped_column(String(20))  # PublishAs
    # Private: never shown on a public page, in a letter or in the audit log.
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), index=True)
    # The name folded for spotting the same organisation spelt twice (case, accents,
    # punctuation, "the", acronyms): equal keys are flagged for an editor to merge.
    name_key: Mapped[str] = mapped_column(String(300), index=True)
    language: Mapped[str] = mapped_column(String(10), default="en")
    # The signer asked to be told when the letter goes out (with its PDF).
    wants_notice: Mapped[bool] = mapped_column(Boolean, default=False)
    consented_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(
        String(20), default=SignatureStatus.UNCONFIRMED.value, index=True
    )
    # SHA-256 of the e-mailed confirmation token (the token itself is never stored).
    confirm_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    confirm_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # A later form for this unconfirmed signature that differs from it: held here until the
    # signer confirms the change by its own e-mailed link (SHA-256 and expiry below); the
    # first choice stands meanwhile, so a stranger cannot widen what is published.
    pending_change: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    change_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    change_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    moderated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    moderated_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    signatory_id: Mapped[int | None] = mapped_column(
        ForeignKey("signatories.id", ondelete="SET NULL"), nullable=True
    )
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("signatures.id", ondelete="SET NULL"), nullable=True
    )
    # When the signer was told the letter went out (None: not yet, or not asked).
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SignOnInvitation(db.Model):  # type: ignore[name-defined]
    __tablename__ = "sign_on_invitations"
    __table_args__ = (
        UniqueConstraint("sign_on_id", "contact_id", name="uq_sign_on_invitations_contact"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sign_on_id: Mapped[int] = mapped_column(
        ForeignKey("sign_ons.id", ondelete="CASCADE"), index=True
    )
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    invited_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
