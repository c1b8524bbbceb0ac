"""The advocacy calendar (built-in days and the organisation's events) and cases."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Column, Date, ForeignKey, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from campaign.extensions import db
from campaign.models._types import UTCDateTime, utcnow


class EventKind(enum.StrEnum):
    UN_DAY = "un_day"
    OBSERVANCE = "observance"
    REGIONAL_ANNIVERSARY = "regional_anniversary"
    SUMMIT = "summit"
    DIALOGUE = "dialogue"  # a human-rights dialogue
    HRC_SESSION = "hrc_session"
    UPR_REVIEW = "upr_review"
    OTHER = "other"


class CalendarEvent(db.Model):  # type: ignore[name-defined]
    __tablename__ = "calendar_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(30), default=EventKind.OTHER.value)
    # Built-in days recur every year on (month, day); the organisation's events have dates.
    is_builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    month: Mapped[int | None] = mapped_column(Integer, nullable=True)
    day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    starts_on: Mapped[date | None] = mapped_column(Date, nullable=True, index=True)
    ends_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    place: Mapped[str] = mapped_column(String(300), default="")
    # ISO 3166 alpha-2 codes of the countries concerned.
    countries: Mapped[list[str]] = mapped_column(JSON, default=list)
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CaseStatus(enum.StrEnum):
    DETAINED = "detained"
    CHARGED = "charged"
    SENTENCED = "sentenced"
    RELEASED = "released"
    DECEASED = "deceased"
    DEPORTED = "deported"
    MISSING = "missing"
    OTHER = "other"


class CaseDateKind(enum.StrEnum):
    ARREST = "arrest"
    CHARGE = "charge"
    SENTENCE = "sentence"
    DEATH = "death"
    DEPORTATION = "deportation"
    RELEASE = "release"
    OTHER = "other"


campaign_cases = Table(
    "campaign_cases",
    db.metadata,
    Column("campaign_id", ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
    Column("case_id", ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True),
)


class Case(db.Model):  # type: ignore[name-defined]
    """A person the organisation defends."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # For people at high risk the real name is shown to admins only; letters and pages use
    # the pseudonym.
    name: Mapped[str] = mapped_column(String(300))
    pseudonym: Mapped[str] = mapped_column(String(300), default="")
    is_high_risk: Mapped[bool] = mapped_column(Boolean, default=False)
    country: Mapped[str] = mapped_column(String(2), default="")
    status: Mapped[str] = mapped_column(String(20), default=CaseStatus.OTHER.value)
    summary: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    dates = relationship(
        "CaseDate", order_by="(CaseDate.on, CaseDate.id)", cascade="all, delete-orphan"
    )


def letter_name(case: Case) -> str:
    """The name safe anywhere staff or letters see it: the pseudonym for people at high risk.

    Beside the model because the calendar, the cases and the schedules all name a case.
    """
    return case.pseudonym if case.is_high_risk else case.name


class CaseDate(db.Model):  # type: ignore[name-defined]
    __tablename__ = "case_dates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    on: Mapped[date] = mapped_column(Date)
    legal_reference: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(Text, default="")
    # Remind staff (and/or schedule a campaign) on each anniversary of this date.
    is_anniversary_marked: Mapped[bool] = mapped_column(Boolean, default=False)


class Notification(db.Model):  # type: ignore[name-defined]
    """A reminder shown to staff in the app (and e-mailed to them)."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    link: Mapped[str] = mapped_column(String(500), default="")
    schedule_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("schedule_runs.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    emailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
