"""Admin salutation rules and settings, merged over the built-in tables when letters render."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from campaign.extensions import db
from campaign.models._types import UTCDateTime, utcnow


class SalutationRule(db.Model):  # type: ignore[name-defined]
    """One admin cell of the salutation or closing table; same key as a built-in replaces it."""

    __tablename__ = "salutation_rules"
    __table_args__ = (UniqueConstraint("language", "kind", "role_type", "gender", "style"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Primary language subtag ("de"), never a region.
    language: Mapped[str] = mapped_column(String(3))
    kind: Mapped[str] = mapped_column(String(10), default="salutation")
    # A contact role_type or "*" (the language's default).
    role_type: Mapped[str] = mapped_column(String(30))
    gender: Mapped[str] = mapped_column(String(10), default="*")
    style: Mapped[str] = mapped_column(String(20), default="*")
    # Tried in order: the first whose name parts the contact has wins.
    texts: Mapped[list[str]] = mapped_column(JSON)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def role(self) -> str:
        return self.role_type

    @property
    def text(self) -> list[str]:
        return list(self.texts)


class SalutationSetting(db.Model):  # type: ignore[name-defined]
    """The chosen value of a named setting of the rules file (absent: the file's default)."""

    __tablename__ = "salutation_settings"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(String(100))
    updated_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
