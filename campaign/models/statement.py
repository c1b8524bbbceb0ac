"""Statements: the texts letters are merged from, per language, with versions and signatories."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from campaign.extensions import db
from campaign.models._types import UTCDateTime, utcnow


class StatementStatus(enum.StrEnum):
    DRAFT = "draft"
    FINAL = "final"


class SignatoryKind(enum.StrEnum):
    ORGANISATION = "organisation"
    INDIVIDUAL = "individual"


class PublishAs(enum.StrEnum):
    FULL = "full"
    ORGANISATION_ONLY = "organisation_only"
    WITHHELD = "withheld"


class Statement(db.Model):  # type: ignore[name-defined]
    __tablename__ = "statements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(10), default=StatementStatus.DRAFT.value)
    # Attach a PDF of the letter to every message sent from this statement.
    is_pdf_attached: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    texts: Mapped[list[StatementText]] = relationship(
        back_populates="statement", cascade="all, delete-orphan", order_by="StatementText.id"
    )
    signatories: Mapped[list[Signatory]] = relationship(
        back_populates="statement", cascade="all, delete-orphan", order_by="Signatory.position"
    )
    versions: Mapped[list[StatementVersion]] = relationship(
        back_populates="statement",
        cascade="all, delete-orphan",
        order_by="StatementVersion.number",
    )

    @property
    def languages(self) -> list[str]:
        """Languages with a text, in the order they were added (the first is the fallback)."""
        return [text.language for text in self.texts]

    def text_for(self, language: str) -> StatementText | None:
        return next((t for t in self.texts if t.language == language), None)


class StatementText(db.Model):  # type: ignore[name-defined]
    """The subject line and Markdown body of a statement in one language (both templates)."""

    __tablename__ = "statement_texts"
    __table_args__ = (UniqueConstraint("statement_id", "language"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    statement_id: Mapped[int] = mapped_column(
        ForeignKey("statements.id", ondelete="CASCADE"), index=True
    )
    # A BCP 47 tag: en, fr, ru, pt-BR...
    language: Mapped[str] = mapped_column(String(35))
    subject: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    statement: Mapped[Statement] = relationship(back_populates="texts")


class StatementVersion(db.Model):  # type: ignore[name-defined]
    """An immutable snapshot of a statement; a campaign keeps the version it sent."""

    __tablename__ = "statement_versions"
    __table_args__ = (UniqueConstraint("statement_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    statement_id: Mapped[int] = mapped_column(
        ForeignKey("statements.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    # What changed, in words ("fr body replaced", "signatory added").
    change_summary: Mapped[str] = mapped_column(String(500), default="")
    # title, status, texts {lang: {subject, body}}, signatories [...]
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)

    statement: Mapped[Statement] = relationship(back_populates="versions")


class Signatory(db.Model):  # type: ignore[name-defined]
    __tablename__ = "signatories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    statement_id: Mapped[int] = mapped_column(
        ForeignKey("statements.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20), default=SignatoryKind.ORGANISATION.value)
    # Organisation name, or the individual's full name.
    name: Mapped[str] = mapped_column(String(300))
    acronym: Mapped[str] = mapped_column(String(50), default="")
    # An individual's role ("lawyer", "journalist") and organisation.
    role: Mapped[str] = mapped_column(String(200), default="")
    organisation: Mapped[str] = mapped_column(String(300), default="")
    country: Mapped[str] = mapped_column(String(100), default="")
    # "based in exile in …": the country an organisation works from in exile.
    exile_country: Mapped[str] = mapped_column(String(100), default="")
    publish_as: Mapped[str] = mapped_column(String(20), default=PublishAs.FULL.value)
    # The signer's name, role and organisation per letter language, as editors gave them:
    # {"ru": {"name": "…", "role": "…", "organisation": "…"}}; the country needs none (the
    # protocol table names it in every language).
    translations: Mapped[dict[str, dict[str, str]]] = mapped_column(
        JSON, default=dict, server_default="{}"
    )
    # Optional heading the signatory is listed under ("Organisations", "Individuals"...).
    group_label: Mapped[str] = mapped_column(String(100), default="")
    position: Mapped[int] = mapped_column(Integer, default=0)

    statement: Mapped[Statement] = relationship(back_populates="signatories")


class StatementAttachment(db.Model):  # type: ignore[name-defined]
    __tablename__ = "statement_attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    statement_id: Mapped[int] = mapped_column(
        ForeignKey("statements.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(300))
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    # Inside the instance folder; never served directly.
    stored_path: Mapped[str] = mapped_column(String(500))
    # The letter language this file belongs to; "" for a file sent with every language.
    language: Mapped[str] = mapped_column(String(35), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
