"""An admin's correction of a country's name in one language (protocol data)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from campaign.extensions import db
from campaign.models._types import UTCDateTime, utcnow


class CountryNameOverride(db.Model):  # type: ignore[name-defined]
    __tablename__ = "country_names"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # ISO 3166-1 alpha-2, EU / UN, or a code the installation adds (e.g. XK).
    code: Mapped[str] = mapped_column(String(8))
    language: Mapped[str] = mapped_column(String(16))
    short_name: Mapped[str] = mapped_column(String(200))
    formal_name: Mapped[str] = mapped_column(String(300), default="")
    note: Mapped[str] = mapped_column(String(500), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (UniqueConstraint("code", "language", name="uq_country_names_code_language"),)
