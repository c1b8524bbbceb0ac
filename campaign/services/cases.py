"""Cases: the people the organisation defends, their key dates and anniversary reminders.

A high-risk person's real name is for admins only: everyone else, every letter, every
reminder and every e-mail to staff uses the pseudonym (`letter_name`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Case, CaseDate, Role, Schedule, ScheduleKind, User
from campaign.models.calendar import CaseDateKind, CaseStatus, campaign_cases
from campaign.services.calendar import (
    LEAP_DAY_NOTE,
    CalendarError,
    check_country,
    check_reminder_days,
    country_name,
    days_phrase,
    format_day,
    next_reminder_run,
    organisation_zone,
)

# Anniversary reminders, in days before the date, when the caller does not say.
DEFAULT_ANNIVERSARY_REMINDERS = (7,)


class CaseError(CalendarError):
    """A case or case date cannot be saved as given; the message says why."""


def _choice(label: str, value: str, allowed: type[CaseStatus] | type[CaseDateKind]) -> str:
    try:
        return allowed(value.strip().lower()).value
    except ValueError:
        names = ", ".join(item.value for item in allowed)
        raise CaseError(f"{label}: {value!r} is not one of {names}") from None


def _country(code: str) -> str:
    try:
        return check_country(code) if code.strip() else ""
    except CalendarError as error:
        raise CaseError(str(error)) from None


def create_case(
    name: str,
    pseudonym: str = "",
    is_high_risk: bool = False,
    country: str = "",
    status: str = CaseStatus.OTHER.value,
    *,
    summary: str = "",
) -> Case:
    cleaned_name = " ".join(name.split())
    cleaned_pseudonym = " ".join(pseudonym.split())
    if not cleaned_name:
        raise CaseError("Name: give the person's name (a pseudonym is shown where needed)")
    if is_high_risk and not cleaned_pseudonym:
        raise CaseError(
            "Pseudonym: a person at high risk needs one; only admins will see the real name"
        )
    if is_high_risk and cleaned_pseudonym.casefold() == cleaned_name.casefold():
        raise CaseError("Pseudonym: it must differ from the real name")
    case = Case(
        name=cleaned_name,
        pseudonym=cleaned_pseudonym,
        is_high_risk=is_high_risk,
        country=_country(country),
        status=_choice("Status", status, CaseStatus),
        summary=summary,
    )
    db.session.add(case)
    db.session.flush()
    return case


def anniversary_note(on: date) -> str:
    """What staff should know about when this date's anniversary fires ("" if nothing)."""
    return LEAP_DAY_NOTE if (on.month, on.day) == (2, 29) else ""


def add_case_date(
    case: Case,
    kind: str,
    on: date,
    legal_reference: str = "",
    source: str = "",
    mark_anniversary: bool = False,
    *,
    reminder_days: Sequence[int] = DEFAULT_ANNIVERSARY_REMINDERS,
    created_by: User | None = None,
) -> CaseDate:
    """A key date (arrest, sentence …); marked as an anniversary, it reminds staff yearly."""
    if on > date.today():
        raise CaseError(f"Date: {on.isoformat()} is in the future; record dates that happened")
    case_date = CaseDate(
        case_id=case.id,
        kind=_choice("Kind", kind, CaseDateKind),
        on=on,
        legal_reference=legal_reference.strip(),
        source=source.strip(),
        is_anniversary_marked=mark_anniversary,
    )
    db.session.add(case_date)
    db.session.flush()
    if mark_anniversary:
        for days_before in sorted(set(reminder_days)):
            add_anniversary_reminder(case_date, days_before, created_by=created_by)
    return case_date


def add_anniversary_reminder(
    case_date: CaseDate, days_before: int, *, created_by: User | None = None
) -> Schedule:
    [days_before] = check_reminder_days([days_before])
    case = db.session.get(Case, case_date.case_id)
    who = letter_name(case) if case is not None else "a case"
    note = anniversary_note(case_date.on)
    when = format_day(case_date.on, with_year=True)
    name = (
        f"Anniversary of the {case_date.kind} of {who} ({when}), "
        f"{days_phrase(days_before, before=True)}"
    )
    schedule = Schedule(
        kind=ScheduleKind.REMINDER.value,
        # The note is in the name so that every list of schedules (CLI, pages) says it.
        name=f"{name} — {note}" if note else name,
        case_date_id=case_date.id,
        timezone=organisation_zone().key,
        rule={"days_before": days_before},
        created_by_id=created_by.id if created_by else None,
    )
    db.session.add(schedule)
    db.session.flush()
    schedule.next_run_at = next_reminder_run(schedule, datetime.now(UTC))
    return schedule


def letter_name(case: Case) -> str:
    """The name safe anywhere staff or letters see it: the pseudonym for people at high risk."""
    return case.pseudonym if case.is_high_risk else case.name


def display_name(case: Case, viewer: User | None) -> str:
    """The real name of a high-risk person for admins only; the pseudonym for everyone else."""
    if case.is_high_risk and viewer is not None and viewer.role_enum.includes(Role.ADMIN):
        return case.name
    return letter_name(case)


def linked_cases(campaign: Any) -> list[Case]:
    query = (
        select(Case)
        .join(campaign_cases, campaign_cases.c.case_id == Case.id)
        .where(campaign_cases.c.campaign_id == campaign.id)
        .order_by(Case.id)
    )
    return list(db.session.scalars(query))


def link_case(campaign: Any, case: Case) -> None:
    """Link `case` to `campaign` (its letters can then merge it); linking twice is harmless."""
    already = db.session.execute(
        select(campaign_cases).where(
            campaign_cases.c.campaign_id == campaign.id, campaign_cases.c.case_id == case.id
        )
    ).first()
    if already is None:
        db.session.execute(campaign_cases.insert().values(campaign_id=campaign.id, case_id=case.id))


def cases_context(campaign: Any) -> list[dict[str, Any]]:
    """The merge data of `{% for case in cases %}` in a campaign's letters.

    Names are the letter-safe ones (pseudonym when high risk): a letter leaves the
    organisation, so an admin's view never decides what it says.
    """
    return [
        {
            "name": letter_name(case),
            "country": case.country,
            "country_name": country_name(case.country) if case.country else "",
            "status": case.status,
            "dates": [
                {
                    "kind": item.kind,
                    "on": item.on,
                    "on_text": format_day(item.on, with_year=True),
                    "legal_reference": item.legal_reference,
                    "source": item.source,
                }
                for item in case.dates
            ],
        }
        for case in linked_cases(campaign)
    ]
