"""Cases: the people the organisation defends, their key dates and anniversary reminders.

A high-risk person's real name is for admins only: everyone else, every letter, every
reminder and every e-mail to staff uses the pseudonym (`letter_name`). Audit events about
cases hold ids and field names, never names: the audit log is read by admins today but is
a record that outlives who may read it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from babel import Locale, UnknownLocaleError
from flask import g, has_request_context
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, delete, false, func, or_, select

from campaign.extensions import db
from campaign.models import (
    Campaign,
    CampaignStatus,
    Case,
    CaseDate,
    Notification,
    Role,
    Schedule,
    ScheduleKind,
    ScheduleRun,
    User,
)
from campaign.models.calendar import CaseDateKind, CaseStatus, campaign_cases
from campaign.models.calendar import letter_name as letter_name
from campaign.scheduling import stored_text
from campaign.scheduling.stored_text import Text, day, labelled
from campaign.services.accounts.audit import record_event
from campaign.services.schedules.advocacy_calendar import (
    LEAP_DAY_NOTE,
    CalendarError,
    anniversary_title,
    check_country,
    check_reminder_days,
    country_name,
    format_day,
    next_reminder_run,
    organisation_zone,
    stored_name,
)
from campaign.services.statements.statements import letter_source

# Anniversary reminders, in days before the date, when the caller does not say.
DEFAULT_ANNIVERSARY_REMINDERS = (7,)
CASES_PER_PAGE = 50
# Letters of these campaigns have not gone out yet, so linking a case changes no letter sent.
LINKABLE_STATUSES = (CampaignStatus.DRAFT.value, CampaignStatus.SCHEDULED.value)


class CaseError(CalendarError):
    """A case or case date cannot be saved as given; the message says why."""


def _choice(field: str, value: str, allowed: type[CaseStatus] | type[CaseDateKind]) -> str:
    """The code of a status (`field` "status") or a date's kind (`field` "kind")."""
    try:
        return allowed(value.strip().lower()).value
    except ValueError:
        names = ", ".join(item.value for item in allowed)
        if field == "status":
            message = _l("Status: '%(value)s' is not one of %(names)s", value=value, names=names)
        else:
            message = _l("Kind: '%(value)s' is not one of %(names)s", value=value, names=names)
        raise CaseError(message, field) from None


def _country(code: str) -> str:
    try:
        return check_country(code) if code.strip() else ""
    except CalendarError as error:
        raise CaseError(error.message, "country") from None


def _reminder_days(days: Iterable[int]) -> list[int]:
    try:
        return check_reminder_days(days)
    except CalendarError as error:
        raise CaseError(error.message, "reminder_days") from None


def _identity(
    name: str, pseudonym: str, is_high_risk: bool, *, knows_name: bool = True
) -> tuple[str, str]:
    """The cleaned (name, pseudonym), or CaseError naming the field that is wrong.

    The pseudonym is compared with the real name only for someone who knows it (`knows_name`:
    an admin, or the author giving both in one form): for anyone else "it must differ from
    the real name" would answer a guess.
    """
    cleaned_name = " ".join(name.split())
    cleaned_pseudonym = " ".join(pseudonym.split())
    if not cleaned_name:
        raise CaseError(
            _l("Name: give the person's name (a pseudonym is shown where needed)"), "name"
        )
    if is_high_risk and not cleaned_pseudonym:
        raise CaseError(
            _l("Pseudonym: a person at high risk needs one; only admins will see the real name"),
            "pseudonym",
        )
    if knows_name and is_high_risk and _alike(cleaned_pseudonym, cleaned_name):
        raise CaseError(_l("Pseudonym: it must differ from the real name"), "pseudonym")
    return cleaned_name, cleaned_pseudonym


def _alike(pseudonym: str, name: str) -> bool:
    return pseudonym.casefold() == name.casefold()


def _check_date(on: date) -> None:
    if on > date.today():
        raise CaseError(
            _l(
                "Date: %(date)s is in the future; record dates that happened",
                date=day(on, with_year=True),
            ),
            "on",
        )


def create_case(
    name: str,
    pseudonym: str = "",
    is_high_risk: bool = False,
    country: str = "",
    status: str = CaseStatus.OTHER.value,
    *,
    summary: str = "",
    actor: User | None = None,
) -> Case:
    cleaned_name, cleaned_pseudonym = _identity(name, pseudonym, is_high_risk)
    case = Case(
        name=cleaned_name,
        pseudonym=cleaned_pseudonym,
        is_high_risk=is_high_risk,
        country=_country(country),
        status=_choice("status", status, CaseStatus),
        summary=summary.strip(),
    )
    db.session.add(case)
    db.session.flush()
    record_event(
        "case.create",
        target_type="case",
        target_id=case.id,
        actor=actor,
        detail={"high_risk": case.is_high_risk},
    )
    return case


def may_see_real_name(viewer: User | None) -> bool:
    """Admins only: the real name of a high-risk person is never shown to anyone else."""
    return viewer is not None and viewer.may(Role.ADMIN)


def update_case(
    case: Case,
    *,
    name: str | None,
    pseudonym: str,
    is_high_risk: bool,
    country: str,
    status: str,
    summary: str,
    actor: User | None,
) -> list[str]:
    """Change a case; returns the names of the fields that changed.

    `name=None` keeps the stored name: an editor's form for a high-risk case has no name
    field. Only an admin may change a high-risk person's name or pseudonym, or lift the high
    risk (which would show the real name to everyone). A non-admin's new pseudonym for a
    high-risk person is refused whatever it is, without comparing it with anything: a
    right guess of the real name would otherwise become the name everyone reads.
    """
    admin = may_see_real_name(actor)
    hidden = case.is_high_risk and not admin
    if hidden:
        if not is_high_risk:
            raise CaseError(
                _l("High risk: only an administrator can lift it, as it shows the real name"),
                "is_high_risk",
            )
        if " ".join(pseudonym.split()) != case.pseudonym:
            raise CaseError(
                _l("Pseudonym: only an administrator can change it for a person at high risk"),
                "pseudonym",
            )
        name = None  # never taken from a non-admin for a high-risk person
    cleaned_name, cleaned_pseudonym = _identity(
        case.name if name is None else name, pseudonym, is_high_risk, knows_name=not hidden
    )
    values = {
        "name": cleaned_name,
        "pseudonym": cleaned_pseudonym,
        "is_high_risk": is_high_risk,
        "country": _country(country),
        "status": _choice("status", status, CaseStatus),
        "summary": summary.strip(),
    }
    old_letter_name = letter_name(case)
    changed = [field for field, value in values.items() if getattr(case, field) != value]
    for field in changed:
        setattr(case, field, values[field])
    db.session.flush()
    if letter_name(case) != old_letter_name:
        _rename_reminders(case, old_letter_name)
    if changed:
        record_event(
            "case.update",
            target_type="case",
            target_id=case.id,
            actor=actor,
            detail={"fields": changed},
        )
    return changed


def record_reveal(viewer: User | None, shown: Sequence[Case], *, page: str) -> None:
    """Audit that an admin was shown the real names of these high-risk people (ids only)."""
    hidden = [case.id for case in shown if case.is_high_risk]
    if not hidden or not may_see_real_name(viewer):
        return
    one = len(hidden) == 1 and page != "list"
    record_event(
        "case.reveal",
        target_type="case",
        target_id=hidden[0] if one else "",
        actor=viewer,
        detail={"page": page} if one else {"page": page, "case_ids": hidden},
    )


def _reminders_of(case_dates: Iterable[CaseDate]) -> list[Schedule]:
    ids = [item.id for item in case_dates]
    if not ids:
        return []
    query = select(Schedule).where(Schedule.case_date_id.in_(ids)).order_by(Schedule.id)
    return list(db.session.scalars(query))


def _rename_reminders(case: Case, old_letter_name: str) -> None:
    """The letter-safe name changed: reminder names and past reminder texts follow.

    A case just marked high-risk must not keep its real name in the schedule list, the
    calendar, the in-app reminders or the scheduler record (each run's detail repeats the
    reminder's text), which every viewer reads. E-mails already sent stay sent.
    """
    reminders = _reminders_of(case.dates)
    for schedule in reminders:
        case_date = db.session.get(CaseDate, schedule.case_date_id)
        if case_date is not None:
            days_before = int((schedule.rule or {}).get("days_before", 0))
            schedule.name = _reminder_name(case_date, days_before)
    if not reminders or not old_letter_name:
        return
    runs = list(
        db.session.scalars(
            select(ScheduleRun).where(
                ScheduleRun.schedule_id.in_([schedule.id for schedule in reminders])
            )
        )
    )
    notes = select(Notification).where(Notification.schedule_run_id.in_([run.id for run in runs]))
    # Stored texts hold the name as the value "who" of their message; texts written before
    # messages were stored (plain English) only where they name the person ("… arrest of
    # Prisoner A (14 March 2019, …"), so a short pseudonym does not rewrite other words.
    new_name = letter_name(case)
    old, new = f" of {old_letter_name} (", f" of {new_name} ("

    def renamed(stored: str) -> str:
        changed = stored_text.rename(stored, "who", old_letter_name, new_name)
        return changed if changed != stored else stored.replace(old, new)

    for note in db.session.scalars(notes):
        note.text = renamed(note.text)
    for run in runs:
        run.detail = renamed(run.detail or "")


def anniversary_note(on: date) -> Text:
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
    # Everything is checked before the first write: nothing half-saved on a bad input.
    _check_date(on)
    checked_kind = _choice("kind", kind, CaseDateKind)
    days = _reminder_days(reminder_days) if mark_anniversary else []
    case_date = CaseDate(
        case_id=case.id,
        kind=checked_kind,
        on=on,
        legal_reference=legal_reference.strip(),
        source=source.strip(),
        is_anniversary_marked=mark_anniversary,
    )
    db.session.add(case_date)
    db.session.flush()
    for days_before in days:
        add_anniversary_reminder(case_date, days_before, created_by=created_by)
    record_event(
        "case.date_add",
        target_type="case",
        target_id=case.id,
        actor=created_by,
        detail={"case_date_id": case_date.id, "kind": checked_kind, "marked": mark_anniversary},
    )
    return case_date


def _reminder_name(case_date: CaseDate, days_before: int) -> str:
    case = db.session.get(Case, case_date.case_id)
    who = letter_name(case) if case is not None else _l("a case")
    return stored_name(anniversary_title(case_date, who, days_before))


def add_anniversary_reminder(
    case_date: CaseDate, days_before: int, *, created_by: User | None = None
) -> Schedule:
    [days_before] = check_reminder_days([days_before])
    schedule = Schedule(
        kind=ScheduleKind.REMINDER.value,
        name=_reminder_name(case_date, days_before),
        case_date_id=case_date.id,
        timezone=organisation_zone().key,
        rule={"days_before": days_before},
        created_by_id=created_by.id if created_by else None,
    )
    db.session.add(schedule)
    db.session.flush()
    schedule.next_run_at = next_reminder_run(schedule, datetime.now(UTC))
    return schedule


def reminder_days_of(case_date: CaseDate) -> list[int]:
    """The days before the anniversary on which staff are reminded, smallest first."""
    return sorted(
        int((schedule.rule or {}).get("days_before", 0)) for schedule in _reminders_of([case_date])
    )


def _remove_reminders(case_date: CaseDate, keep: Iterable[int] = ()) -> int:
    """Delete the date's reminder schedules except those `keep` days before; returns how many.

    Deleted explicitly rather than left to the foreign key's ON DELETE CASCADE: the session
    would otherwise hold stale Schedule rows, and SQLite enforces the cascade only with its
    foreign_keys pragma on. Their runs go with them (schedule_runs cascade); notifications
    already shown stay, unlinked from the run (SET NULL).
    """
    kept = set(keep)
    doomed = [
        schedule.id
        for schedule in _reminders_of([case_date])
        if int((schedule.rule or {}).get("days_before", 0)) not in kept
    ]
    if doomed:
        db.session.execute(
            delete(Schedule)
            .where(Schedule.id.in_(doomed))
            .execution_options(synchronize_session="fetch")
        )
    return len(doomed)


def update_case_date(
    case_date: CaseDate,
    *,
    kind: str,
    on: date,
    legal_reference: str,
    source: str,
    mark_anniversary: bool,
    reminder_days: Sequence[int],
    actor: User | None,
) -> None:
    """Change a key date; its reminders follow the marking, the reminder days and the date."""
    _check_date(on)
    checked_kind = _choice("kind", kind, CaseDateKind)
    days = _reminder_days(reminder_days) if mark_anniversary else []
    moved = (case_date.on, case_date.kind) != (on, checked_kind)
    case_date.kind = checked_kind
    case_date.on = on
    case_date.legal_reference = legal_reference.strip()
    case_date.source = source.strip()
    case_date.is_anniversary_marked = mark_anniversary
    db.session.flush()
    _remove_reminders(case_date, keep=days)
    existing = set(reminder_days_of(case_date))
    if moved:
        now = datetime.now(UTC)
        for schedule in _reminders_of([case_date]):
            schedule.name = _reminder_name(case_date, int(schedule.rule.get("days_before", 0)))
            schedule.next_run_at = next_reminder_run(schedule, now)
    for days_before in days:
        if days_before not in existing:
            add_anniversary_reminder(case_date, days_before, created_by=actor)
    record_event(
        "case.date_update",
        target_type="case",
        target_id=case_date.case_id,
        actor=actor,
        detail={"case_date_id": case_date.id, "marked": mark_anniversary, "reminder_days": days},
    )


def remove_case_date(case_date: CaseDate, *, actor: User | None) -> int:
    """Delete a key date and its anniversary reminders; returns how many reminders went."""
    removed = _remove_reminders(case_date)
    case_id, case_date_id = case_date.case_id, case_date.id
    case = db.session.get(Case, case_id)
    if case is not None and case_date in case.dates:
        case.dates.remove(case_date)  # delete-orphan: the row goes at the flush
    else:
        db.session.delete(case_date)
    db.session.flush()
    record_event(
        "case.date_remove",
        target_type="case",
        target_id=case_id,
        actor=actor,
        detail={"case_date_id": case_date_id, "reminders_removed": removed},
    )
    return removed


def display_name(case: Case, viewer: User | None) -> str:
    """The real name of a high-risk person for admins only; the pseudonym for everyone else.

    Each real name given out during a request is noted, for `record_page_reveals` to audit
    once when the page is made (the calendar, a campaign's schedule, a case's pages).
    """
    if case.is_high_risk and may_see_real_name(viewer):
        if has_request_context():
            revealed: dict[int, Case] = g.setdefault("revealed_cases", {})
            revealed[case.id] = case
        return case.name
    return letter_name(case)


def record_page_reveals(viewer: User | None, *, page: str) -> bool:
    """Audit the high-risk people whose real names this request has shown (one event, ids
    only); True if there were any. Call it once the page is rendered."""
    revealed: dict[int, Case] = g.pop("revealed_cases", {}) if has_request_context() else {}
    if not revealed:
        return False
    record_reveal(viewer, sorted(revealed.values(), key=lambda case: case.id), page=page)
    return True


@dataclass(frozen=True)
class CasePage:
    cases: list[Case]
    total: int
    page: int
    pages: int


def list_cases(
    viewer: User | None,
    *,
    country: str = "",
    status: str = "",
    q: str = "",
    page: int = 1,
    per_page: int = CASES_PER_PAGE,
) -> CasePage:
    """Cases by name, filtered; the words in `q` never match a real name the viewer may not see.

    Searching a high-risk person's real name would otherwise tell a non-admin which
    pseudonym hides them.
    """
    query = cases_query(viewer, country=country, status=status, q=q)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(1, math.ceil(total / per_page))
    page = min(max(1, page), pages)
    ordered = query.order_by(
        func.lower(func.coalesce(func.nullif(Case.pseudonym, ""), Case.name)), Case.id
    )
    # Ordered by the pseudonym where there is one, so the order reveals nothing either.
    found = db.session.scalars(ordered.offset((page - 1) * per_page).limit(per_page))
    return CasePage(list(found), total, page, pages)


def cases_query(
    viewer: User | None, *, country: str = "", status: str = "", q: str = ""
) -> Select[Case]:
    """The cases the filter finds, unordered; `q` never matches a real name the viewer may
    not see (list_cases, and the JSON API with no viewer at all)."""
    query = select(Case)
    if country.strip():
        query = query.where(Case.country == country.strip().upper())
    if status.strip():
        query = query.where(Case.status == status.strip().lower())
    words = q.strip().lower()
    if words:
        escaped = words.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        name_hit = func.lower(Case.name).like(pattern, escape="\\")
        visible_name = (
            name_hit if may_see_real_name(viewer) else (name_hit & Case.is_high_risk.is_(false()))
        )
        query = query.where(
            or_(
                visible_name,
                func.lower(Case.pseudonym).like(pattern, escape="\\"),
            )
        )
    return query


def linked_cases(campaign: Any) -> list[Case]:
    query = (
        select(Case)
        .join(campaign_cases, campaign_cases.c.case_id == Case.id)
        .where(campaign_cases.c.campaign_id == campaign.id)
        .order_by(Case.id)
    )
    return list(db.session.scalars(query))


def linked_campaigns(case: Case) -> list[Campaign]:
    query = (
        select(Campaign)
        .join(campaign_cases, campaign_cases.c.campaign_id == Campaign.id)
        .where(campaign_cases.c.case_id == case.id)
        .order_by(Campaign.id.desc())
    )
    return list(db.session.scalars(query))


def linkable_campaigns(case: Case) -> list[Campaign]:
    """Campaigns whose letters have not gone out yet and that do not merge this case already."""
    linked = select(campaign_cases.c.campaign_id).where(campaign_cases.c.case_id == case.id)
    query = (
        select(Campaign)
        .where(Campaign.status.in_(LINKABLE_STATUSES), Campaign.id.not_in(linked))
        .order_by(Campaign.id.desc())
    )
    return list(db.session.scalars(query))


def _check_linkable(campaign: Campaign) -> None:
    if campaign.status not in LINKABLE_STATUSES:
        raise CaseError(
            _l(
                "Campaign: %(name)s is %(status)s; only a draft or scheduled campaign's cases "
                "can change (its letters would no longer match those sent)",
                name=campaign.name,
                status=stored_text.lowered(labelled(campaign.status, "campaign_status")),
            ),
            "campaign_id",
        )


def link_case(campaign: Any, case: Case, *, actor: User | None = None) -> None:
    """Link `case` to `campaign` (its letters can then merge it); linking twice is harmless."""
    already = db.session.execute(
        select(campaign_cases).where(
            campaign_cases.c.campaign_id == campaign.id, campaign_cases.c.case_id == case.id
        )
    ).first()
    if already is not None:
        return
    _check_linkable(campaign)
    db.session.execute(campaign_cases.insert().values(campaign_id=campaign.id, case_id=case.id))
    record_event(
        "case.link",
        target_type="case",
        target_id=case.id,
        actor=actor,
        detail={"campaign_id": campaign.id},
    )


def unlink_case(campaign: Campaign, case: Case, *, actor: User | None) -> bool:
    """Stop merging `case` into `campaign`'s letters; False when it was not linked."""
    link = (campaign_cases.c.campaign_id == campaign.id) & (campaign_cases.c.case_id == case.id)
    if db.session.execute(select(campaign_cases).where(link)).first() is None:
        return False
    _check_linkable(campaign)
    db.session.execute(campaign_cases.delete().where(link))
    record_event(
        "case.unlink",
        target_type="case",
        target_id=case.id,
        actor=actor,
        detail={"campaign_id": campaign.id},
    )
    return True


def _letters_language(campaign: Any) -> str | None:
    """The one language every letter of `campaign` is written in, or None when its
    statement has several (each recipient's letter then chooses its own)."""
    statement = getattr(campaign, "statement_version", None) or getattr(campaign, "statement", None)
    if statement is None:
        return None
    languages = letter_source(statement).languages
    return languages[0] if len(languages) == 1 else None


def cases_context(campaign: Any, language: str | None = None) -> list[dict[str, Any]]:
    """The merge data of `{% for case in cases %}` in a campaign's letters.

    Names are the letter-safe ones (pseudonym when high risk): a letter leaves the
    organisation, so an admin's view never decides what it says. Country names (from the
    protocol table) and dates are in `language`, else in the letters' language when the
    campaign's statement has only one, else in the current (interface) language.
    """
    language = language or _letters_language(campaign)
    if language is None:
        return _cases_context(campaign, None)
    try:
        locale = Locale.parse(language.replace("-", "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        return _cases_context(campaign, language)  # names still follow it; dates cannot
    with force_locale(locale):
        return _cases_context(campaign, language)


def _cases_context(campaign: Any, language: str | None) -> list[dict[str, Any]]:
    return [
        {
            "name": letter_name(case),
            "country": case.country,
            "country_name": country_name(case.country, language) if case.country else "",
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
