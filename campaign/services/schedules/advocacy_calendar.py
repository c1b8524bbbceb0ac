"""The advocacy calendar: built-in days, the organisation's events, staff reminders, ICS feed.

Reminders are `Schedule` rows of kind "reminder" (rule {"days_before": N}) that fire at
09:00 in the organisation's zone (CAMPAIGN_TIMEZONE) N days before an event or a case
anniversary. The scheduler's tick claims each fire once and calls `fire_reminder`, which
writes a `Notification` and e-mails the staff. An organisation's event fires once;
built-in days and case anniversaries recur every year, so `fire_reminder` moves
`next_run_at` to the next year's date itself (`next_reminder_run` says when).
"""

from __future__ import annotations

import calendar as month_names
import csv
import hashlib
import hmac
import io
import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app
from flask_babel import force_locale, gettext, lazy_ngettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from campaign.extensions import db
from campaign.i18n import current_language, supported
from campaign.labels import label
from campaign.letters.countries import load_country_names
from campaign.models import (
    CalendarEvent,
    Campaign,
    CampaignStep,
    Case,
    CaseDate,
    InstallationSetting,
    Notification,
    Role,
    Schedule,
    ScheduleKind,
    ScheduleRun,
    User,
)
from campaign.models.calendar import EventKind, letter_name
from campaign.scheduling.stored_text import (
    Text,
    day,
    day_text,
    dump,
    labelled,
    lowered,
    read,
    span,
    span_text,
)
from campaign.services.accounts.audit import record_event

log = logging.getLogger(__name__)

# Reminders reach staff at the start of their working day, in the organisation's zone.
REMINDER_TIME = time(9, 0)
# A reminder further ahead than this is almost certainly a typing error (3650 for 365).
_MAX_DAYS_BEFORE = 366
LEAP_DAY_NOTE = _l("fires on 28 February in years without 29 February")


class CalendarError(ValueError):
    """An event or reminder cannot be made as asked; the message says why, `field` where.

    The message is lazy: read in the language of whoever reads it.
    """

    def __init__(self, message: Text, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class BuiltinDayError(CalendarError):
    """Built-in days come with the app (campaign/data/calendar.csv); nobody edits them."""


# --- dates and zones ---------------------------------------------------------------------


def organisation_zone() -> ZoneInfo:
    name = str(current_app.config.get("TIMEZONE") or "UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CalendarError(
            _l(
                "CAMPAIGN_TIMEZONE: '%(zone)s' is not a known time zone (use one like "
                "Europe/Paris)",
                zone=name,
            )
        ) from None


def date_in_year(year: int, month: int, day: int) -> date:
    """(month, day) in `year`; 29 February is kept on 28 February in other years."""
    if (month, day) == (2, 29) and not month_names.isleap(year):
        day = 28
    return date(year, month, day)


def reminder_instant(on: date, days_before: int, zone: ZoneInfo) -> datetime:
    """09:00 local, `days_before` days before `on`, as UTC (DST-correct: the zone decides)."""
    local = datetime.combine(on - timedelta(days=days_before), REMINDER_TIME, tzinfo=zone)
    return local.astimezone(UTC)


def check_country(code: str) -> str:
    """A code the country table knows (ISO 3166 alpha-2, EU / UN, an admin's), upper-cased."""
    cleaned = code.strip().upper()
    if len(cleaned) == 2 and cleaned.isascii() and load_country_names().knows(cleaned):
        return cleaned
    raise CalendarError(
        _l("Country: '%(code)s' is not a country code such as FR, UZ or EU", code=code.strip()),
        "countries",
    )


def country_name(code: str, language: str | None = None) -> str:
    """A country code as the protocol table names it (campaign/letters/countries.py) in
    `language`, by default the interface language ("UZ" → "Узбекистан"); the code itself
    when no layer of the table knows it."""
    if not code:
        return ""
    return load_country_names().short(code, language or current_language()) or code


def format_day(on: date, *, with_year: bool = False) -> str:
    """ "3 April" ("3 April 2027") in the interface language ("3 avril", "3 апреля")."""
    return day_text(on.isoformat(), with_year)


def format_span(starts_on: date, ends_on: date | None) -> str:
    """ "3 April", "3–4 April", "30 March – 2 April" (en dashes, as printed calendars do)."""
    return span_text(starts_on.isoformat(), ends_on.isoformat() if ends_on else "")


# --- built-in days -----------------------------------------------------------------------


def builtin_days() -> list[dict[str, str | int]]:
    """The rows of campaign/data/calendar.csv: month, day, name, kind."""
    text = resources.files("campaign.data").joinpath("calendar.csv").read_text("utf-8")
    rows: list[dict[str, str | int]] = []
    for record in csv.DictReader(io.StringIO(text)):
        month, day = (int(part) for part in record["month_day"].split("-"))
        rows.append(
            {"month": month, "day": day, "name": record["name"].strip(), "kind": record["kind"]}
        )
    return rows


def load_builtin_days() -> int:
    """Add the built-in days not in the database yet (by date and name); return how many.

    Running it again adds nothing, and a day an admin renamed is not brought back twice
    only if its date and name still match: the file is the source, not a sync target.
    """
    existing = {
        (event.month, event.day, event.name)
        for event in db.session.scalars(
            select(CalendarEvent).where(CalendarEvent.is_builtin.is_(True))
        )
    }
    added = 0
    for row in builtin_days():
        if (row["month"], row["day"], row["name"]) in existing:
            continue
        db.session.add(
            CalendarEvent(
                name=row["name"],
                kind=row["kind"],
                is_builtin=True,
                month=row["month"],
                day=row["day"],
            )
        )
        added += 1
    db.session.flush()
    return added


# --- the organisation's events and their reminders ------------------------------------------


def check_reminder_days(reminder_days: Iterable[int]) -> list[int]:
    days = sorted(set(reminder_days))
    for value in days:
        if not 0 <= value <= _MAX_DAYS_BEFORE:
            raise CalendarError(
                _l(
                    "Reminder: %(days)d days before is not possible (0 to %(most)d days)",
                    days=value,
                    most=_MAX_DAYS_BEFORE,
                ),
                "reminder_days",
            )
    return days


@dataclass(frozen=True)
class EventFields:
    """An event's fields once checked: what add_event and update_event write."""

    name: str
    kind: str
    starts_on: date
    ends_on: date | None
    place: str
    countries: list[str]
    notes: str
    reminder_days: list[int]


def check_event_fields(
    name: str,
    starts_on: date,
    ends_on: date | None = None,
    place: str = "",
    countries: Sequence[str] = (),
    kind: str = EventKind.SUMMIT.value,
    reminder_days: Sequence[int] = (),
    notes: str = "",
) -> EventFields:
    """Check everything before anything is written; the message opens with the field's name."""
    cleaned_name = " ".join(name.split())
    if not cleaned_name:
        raise CalendarError(_l("Name: give the event a name"), "name")
    if ends_on is not None and ends_on < starts_on:
        raise CalendarError(
            _l(
                "Dates: the event ends (%(ends)s) before it starts (%(starts)s)",
                ends=day(ends_on, with_year=True),
                starts=day(starts_on, with_year=True),
            ),
            "ends_on",
        )
    try:
        kind = EventKind(kind).value
    except ValueError:
        allowed = ", ".join(k.value for k in EventKind)
        raise CalendarError(
            _l("Kind: '%(kind)s' is not one of %(allowed)s", kind=kind, allowed=allowed), "kind"
        ) from None
    codes: list[str] = []
    for code in countries:
        checked = check_country(code)
        if checked not in codes:
            codes.append(checked)
    days = check_reminder_days(reminder_days)
    return EventFields(cleaned_name, kind, starts_on, ends_on, place.strip(), codes, notes, days)


def add_event(
    name: str,
    starts_on: date,
    ends_on: date | None = None,
    place: str = "",
    countries: Sequence[str] = (),
    kind: str = EventKind.SUMMIT.value,
    reminder_days: Sequence[int] = (),
    *,
    notes: str = "",
    created_by: User | None = None,
) -> CalendarEvent:
    """An event of the organisation (a summit, a dialogue …) with reminders N days before."""
    fields = check_event_fields(
        name, starts_on, ends_on, place, countries, kind, reminder_days, notes
    )
    event = CalendarEvent(
        name=fields.name,
        kind=fields.kind,
        is_builtin=False,
        starts_on=fields.starts_on,
        ends_on=fields.ends_on,
        place=fields.place,
        countries=fields.countries,
        notes=fields.notes,
    )
    db.session.add(event)
    db.session.flush()
    for days_before in fields.reminder_days:
        add_reminder(event, days_before, created_by=created_by)
    record_event(
        "calendar.event.create",
        target_type="calendar_event",
        target_id=event.id,
        actor=created_by,
        detail={
            "starts_on": event.starts_on.isoformat() if event.starts_on else None,
            "reminder_days": fields.reminder_days,
        },
    )
    return event


def _refuse_builtin(event: CalendarEvent, doing: str) -> None:
    """`doing` is "edited" or "deleted"."""
    if not event.is_builtin:
        return
    if doing == "deleted":
        message = _l(
            "%(name)s is a built-in day of the calendar: it cannot be deleted. Add your own "
            "event for that day instead.",
            name=event.name,
        )
    else:
        message = _l(
            "%(name)s is a built-in day of the calendar: it cannot be edited. Add your own "
            "event for that day instead.",
            name=event.name,
        )
    raise BuiltinDayError(message)


def reminders_of(event: CalendarEvent) -> list[Schedule]:
    """The event's reminder schedules (one whose day has passed is disabled), oldest first."""
    return list(
        db.session.scalars(
            select(Schedule)
            .where(Schedule.event_id == event.id, Schedule.kind == ScheduleKind.REMINDER.value)
            .order_by(Schedule.id)
        )
    )


def reminder_days_of(event: CalendarEvent) -> list[int]:
    """The days before the event its staff are reminded (those past included)."""
    return sorted({int(s.rule.get("days_before", 0)) for s in reminders_of(event)})


def _with_history(schedules: Sequence[Schedule]) -> set[int]:
    """Ids of the schedules that have fired (or been skipped) at least once."""
    if not schedules:
        return set()
    query = select(ScheduleRun.schedule_id).where(
        ScheduleRun.schedule_id.in_([s.id for s in schedules])
    )
    return set(db.session.scalars(query.distinct()))


def _retire(schedules: Sequence[Schedule]) -> list[int]:
    """Remove reminders; one that has fired is disabled and unlinked instead; return its id.

    Deleting a schedule deletes its runs (schedule_runs.schedule_id cascades), and with them
    what the scheduler record and the notifications say happened. A kept one is unlinked from
    its event so that the event's reminders are exactly the days asked, and so that deleting
    the event (schedules.event_id cascades too) does not take it along.
    """
    fired = _with_history(schedules)
    kept = []
    for schedule in schedules:
        if schedule.id not in fired:
            db.session.delete(schedule)
            continue
        schedule.is_enabled = False
        schedule.next_run_at = None
        schedule.event_id = None
        kept.append(schedule.id)
    db.session.flush()
    return kept


def _sync_reminders(event: CalendarEvent, days: Sequence[int], actor: User | None) -> None:
    """Make the event's reminders match `days`, each one's next run following the dates."""
    wanted = set(days)
    current: dict[int, Schedule] = {}
    unwanted = []
    for schedule in reminders_of(event):
        days_before = int(schedule.rule.get("days_before", 0))
        if days_before in wanted and days_before not in current:
            current[days_before] = schedule
        else:
            unwanted.append(schedule)
    _retire(unwanted)
    now = datetime.now(UTC)
    for days_before in sorted(wanted):
        kept = current.get(days_before)
        if kept is None:
            add_reminder(event, days_before, created_by=actor)
            continue
        kept.name = _reminder_name(event, days_before)
        kept.next_run_at = next_reminder_run(kept, now)
        # As add_reminder: a reminder day already past is kept disabled, not fired late.
        kept.is_enabled = kept.next_run_at is not None
    db.session.flush()


def update_event(
    event: CalendarEvent,
    name: str,
    starts_on: date,
    ends_on: date | None = None,
    place: str = "",
    countries: Sequence[str] = (),
    kind: str = EventKind.SUMMIT.value,
    reminder_days: Sequence[int] = (),
    *,
    notes: str = "",
    actor: User | None = None,
) -> CalendarEvent:
    """Change an organisation's event; its reminders follow its dates and the days asked."""
    _refuse_builtin(event, "edited")
    fields = check_event_fields(
        name, starts_on, ends_on, place, countries, kind, reminder_days, notes
    )
    before = {
        "starts_on": event.starts_on.isoformat() if event.starts_on else None,
        "ends_on": event.ends_on.isoformat() if event.ends_on else None,
        "reminder_days": reminder_days_of(event),
    }
    changed = [
        key
        for key in ("name", "kind", "starts_on", "ends_on", "place", "countries", "notes")
        if getattr(event, key) != getattr(fields, key)
    ]
    event.name = fields.name
    event.kind = fields.kind
    event.starts_on = fields.starts_on
    event.ends_on = fields.ends_on
    event.place = fields.place
    event.countries = fields.countries
    event.notes = fields.notes
    db.session.flush()
    _sync_reminders(event, fields.reminder_days, actor)
    record_event(
        "calendar.event.update",
        target_type="calendar_event",
        target_id=event.id,
        actor=actor,
        detail={
            "changed": changed,
            "before": before,
            "starts_on": fields.starts_on.isoformat(),
            "ends_on": fields.ends_on.isoformat() if fields.ends_on else None,
            "reminder_days": fields.reminder_days,
        },
    )
    return event


def delete_event(event: CalendarEvent, *, actor: User | None = None) -> list[int]:
    """Delete an organisation's event and its reminders; return the ids of reminders kept.

    A reminder that already fired is kept, disabled and unlinked, so the scheduler record
    and the notifications it wrote still read as they did.
    """
    _refuse_builtin(event, "deleted")
    reminders = reminders_of(event)
    kept = _retire(reminders)
    record_event(
        "calendar.event.delete",
        target_type="calendar_event",
        target_id=event.id,
        actor=actor,
        detail={
            "starts_on": event.starts_on.isoformat() if event.starts_on else None,
            "reminders_deleted": len(reminders) - len(kept),
            "reminders_kept_disabled": kept,
        },
    )
    db.session.delete(event)
    db.session.flush()
    return kept


def add_reminder(
    event: CalendarEvent, days_before: int, *, created_by: User | None = None
) -> Schedule:
    """Remind staff `days_before` days before `event` (every year for a built-in day)."""
    [days_before] = check_reminder_days([days_before])
    zone = organisation_zone()
    schedule = Schedule(
        kind=ScheduleKind.REMINDER.value,
        name=_reminder_name(event, days_before),
        event_id=event.id,
        timezone=zone.key,
        rule={"days_before": days_before},
        created_by_id=created_by.id if created_by else None,
    )
    db.session.add(schedule)
    db.session.flush()
    schedule.next_run_at = next_reminder_run(schedule, datetime.now(UTC))
    if schedule.next_run_at is None:
        schedule.is_enabled = False  # the event's reminder day has passed already
    return schedule


def reminder_title(event: CalendarEvent, days_before: int) -> Text:
    """ "Reminder: EU–Central Asia summit, 7 days before", read in the reader's language."""
    return _l(
        "Reminder: %(event)s, %(when)s",
        event=event.name,
        when=days_phrase(days_before, before=True),
    )


def stored_name(title: Text) -> str:
    """A schedule's stored name: in English, whoever made it (the CLI, the feed and the
    scheduler's record read it; pages show the schedule's title in the reader's language)."""
    with force_locale("en"):
        return str(title)[:300]


def _reminder_name(event: CalendarEvent, days_before: int) -> str:
    return stored_name(reminder_title(event, days_before))


def days_phrase(days: int, *, before: bool = False) -> Text:
    """ "in 7 days", "tomorrow", "today"; with `before`, "7 days before", "on the day"."""
    if days == 0:
        return _l("on the day") if before else _l("today")
    if before:
        return lazy_ngettext("%(num)d day before", "%(num)d days before", days)
    if days == 1:
        return _l("tomorrow")
    return lazy_ngettext("in %(num)d day", "in %(num)d days", days)


# --- when a reminder fires ---------------------------------------------------------------


def _anchor(schedule: Schedule) -> tuple[CalendarEvent | None, CaseDate | None]:
    event = db.session.get(CalendarEvent, schedule.event_id) if schedule.event_id else None
    case_date = db.session.get(CaseDate, schedule.case_date_id) if schedule.case_date_id else None
    return event, case_date


def _yearly_date(event: CalendarEvent | None, case_date: CaseDate | None) -> tuple[int, int]:
    if case_date is not None:
        return case_date.on.month, case_date.on.day
    assert event is not None and event.month and event.day
    return event.month, event.day


def next_reminder_run(schedule: Schedule, after: datetime) -> datetime | None:
    """The first fire of a reminder strictly after `after`; None when it will not fire again.

    A dated event fires once; a built-in day or a case anniversary every year (29 February
    falls on 28 February in other years).
    """
    event, case_date = _anchor(schedule)
    days_before = int(schedule.rule.get("days_before", 0))
    zone = ZoneInfo(schedule.timezone or "UTC")
    if event is not None and not event.is_builtin:
        if event.starts_on is None:
            return None
        fire = reminder_instant(event.starts_on, days_before, zone)
        return fire if fire > after else None
    if event is None and case_date is None:
        return None
    month, day = _yearly_date(event, case_date)
    local_year = after.astimezone(zone).year
    # The reminder may fall in the year before the day (a 7-day reminder of 2 January).
    for year in range(local_year, local_year + 3):
        fire = reminder_instant(date_in_year(year, month, day), days_before, zone)
        if fire > after:
            return fire
    raise AssertionError("a yearly reminder fires every year")  # pragma: no cover


def anniversary_title(case_date: CaseDate, who: Text, days_before: int) -> Text:
    """ "Anniversary of the arrest of Prisoner A (14 March 2019), 7 days before"."""
    title = _l(
        "Anniversary of the %(kind)s of %(who)s (%(date)s), %(when)s",
        kind=lowered(labelled(case_date.kind, "case_date_kind")),
        who=who,
        date=day(case_date.on, with_year=True),
        when=days_phrase(days_before, before=True),
    )
    # The note is in the title so that every list of schedules (CLI, pages) says it.
    if (case_date.on.month, case_date.on.day) == (2, 29):
        return _l("%(title)s — %(note)s", title=title, note=LEAP_DAY_NOTE)
    return title


def _rows_by_id(model: Any, ids: Iterable[int | None]) -> dict[int, Any]:
    wanted = {value for value in ids if value is not None}
    if not wanted:
        return {}
    rows: list[Any] = list(db.session.scalars(select(model).where(model.id.in_(wanted))))
    return {row.id: row for row in rows}


def schedule_titles(schedules: Sequence[Schedule]) -> dict[int, str]:
    """Each schedule's name in the reader's language, by id: reminders and follow-ups are
    named anew from what they point at; other schedules (and one whose anchor is gone) by
    their stored name. A few queries whatever the number of schedules."""
    events = _rows_by_id(CalendarEvent, (s.event_id for s in schedules))
    case_dates = _rows_by_id(CaseDate, (s.case_date_id for s in schedules))
    cases = _rows_by_id(Case, (d.case_id for d in case_dates.values()))
    follow_ups = [s for s in schedules if s.kind == ScheduleKind.FOLLOW_UP.value]
    steps = _rows_by_id(CampaignStep, (s.step_id for s in follow_ups))
    campaigns = _rows_by_id(Campaign, (step.campaign_id for step in steps.values()))
    titles = {}
    for schedule in schedules:
        title = schedule.name
        days_before = int((schedule.rule or {}).get("days_before", 0))
        if schedule.kind == ScheduleKind.REMINDER.value:
            case_date = case_dates.get(schedule.case_date_id or 0)
            event = events.get(schedule.event_id or 0)
            if case_date is not None:
                case = cases.get(case_date.case_id)
                who = letter_name(case) if case is not None else gettext("a case")
                title = str(anniversary_title(case_date, who, days_before))
            elif event is not None:
                title = str(reminder_title(event, days_before))
        elif schedule.kind == ScheduleKind.FOLLOW_UP.value:
            step = steps.get(schedule.step_id or 0)
            campaign = campaigns.get(step.campaign_id) if step is not None else None
            if step is not None and campaign is not None:
                title = gettext(
                    "%(campaign)s: follow-up %(position)d",
                    campaign=campaign.name,
                    position=step.position,
                )
        elif schedule.kind in (ScheduleKind.RETENTION.value, ScheduleKind.BACKUP.value):
            title = label(schedule.kind, "schedule_kind")  # the system's own, one of each
        titles[schedule.id] = title
    return titles


def schedule_title(schedule: Schedule) -> str:
    """One schedule's name in the reader's language (see schedule_titles)."""
    return schedule_titles([schedule])[schedule.id]


def reminder_text(schedule: Schedule, due_at: datetime) -> Text:
    """What staff read: "EU–Central Asia summit in 7 days (Samarkand, 3–4 April)".

    A lazy string: the notification keeps it as a message (stored_text), read in each
    reader's language, and each member of staff gets the e-mail in theirs.
    """
    event, case_date = _anchor(schedule)
    days_before = int(schedule.rule.get("days_before", 0))
    zone = ZoneInfo(schedule.timezone or "UTC")
    on = due_at.astimezone(zone).date() + timedelta(days=days_before)
    when = days_phrase(days_before)
    if case_date is not None:
        case = db.session.get(Case, case_date.case_id)
        who: Text = letter_name(case) if case is not None else _l("a case")
        years = on.year - case_date.on.year
        moved = (on.month, on.day) != (case_date.on.month, case_date.on.day)
        text = _l(
            "Anniversary %(when)s: %(kind)s of %(who)s (%(date)s, %(years)s)",
            when=when,
            kind=lowered(labelled(case_date.kind, "case_date_kind")),
            who=who,
            date=day(case_date.on, with_year=True),
            years=lazy_ngettext("%(num)d year", "%(num)d years", years),
        )
        return _l("%(text)s — marked on 28 February this year", text=text) if moved else text
    if event is None:
        return _l("%(name)s (its event was deleted)", name=schedule.name)
    if event.is_builtin:
        return _l("%(event)s %(when)s (%(day)s)", event=event.name, when=when, day=day(on))
    if event.starts_on is not None and event.place:
        return _l(
            "%(event)s %(when)s (%(place)s, %(days)s)",
            event=event.name,
            when=when,
            place=event.place,
            days=span(event.starts_on, event.ends_on),
        )
    if event.starts_on is not None:
        return _l(
            "%(event)s %(when)s (%(days)s)",
            event=event.name,
            when=when,
            days=span(event.starts_on, event.ends_on),
        )
    if event.place:
        return _l("%(event)s %(when)s (%(place)s)", event=event.name, when=when, place=event.place)
    return _l("%(event)s %(when)s", event=event.name, when=when)


def staff_to_remind() -> list[User]:
    """Active accounts of editors and above (viewers only read)."""
    users = db.session.scalars(select(User).where(User.is_active_account.is_(True))).all()
    return [user for user in users if user.may(Role.EDITOR)]


def _reminder_language(user: User) -> str:
    return supported(getattr(user, "language", "")) or "en"


def reminder_email(stored: str, user: User) -> tuple[str, str]:
    """(subject, body) of a reminder e-mail in the interface language of `user` (else English)."""
    with force_locale(_reminder_language(user)):
        text = read(stored)
        subject = gettext("Reminder: %(text)s", text=text)
        body = gettext(
            "%(text)s\n\nThis reminder comes from the advocacy calendar of the campaign app.\n",
            text=text,
        )
    return subject, body


def _email_staff(stored: str, recipients: Sequence[User]) -> list[str]:
    """Send the reminder to each member of staff separately, each in their own language;
    return the addresses that failed. `stored` is the notification's text (stored_text)."""
    from campaign.mail import SendError, build_notice, send_message

    sender = str(current_app.config["MAIL_DEFAULT_SENDER"])
    failed = []
    for user in recipients:
        subject, body = reminder_email(stored, user)
        # Built like every notice (CRLF line ends, Content-Language, format=flowed).
        message = build_notice(
            user.email, subject, body, sender=sender, language=_reminder_language(user)
        )
        try:
            send_message(message, sender=sender, recipients=[user.email])
        except SendError:
            failed.append(user.email)
    return failed


def fire_reminder(schedule: Schedule, due_at: datetime, now: datetime) -> tuple[Text, None]:
    """The scheduler's action for kind "reminder": a notification in the app.

    The e-mail to staff goes after the tick has committed (email_reminders): sent from
    inside the fire, a crash or failed commit after it would send it again at the next tick.
    """
    text = reminder_text(schedule, due_at)
    run_id = db.session.scalar(
        select(ScheduleRun.id).where(
            ScheduleRun.schedule_id == schedule.id, ScheduleRun.due_at == due_at
        )
    )
    db.session.add(Notification(text=dump(text), schedule_run_id=run_id, created_at=now))
    db.session.flush()
    detail = lazy_ngettext(
        "%(text)s — shown in the app, e-mailed to %(num)d staff",
        "%(text)s — shown in the app, e-mailed to %(num)d staff",
        len(staff_to_remind()),
        text=text,
    )
    return detail, None


# Reminders older than this are not e-mailed any more (after a long outage the in-app
# notice is enough; a week-old "in 7 days" mail would mislead).
EMAIL_REMINDERS_WITHIN = timedelta(days=1)


def email_reminders(now: datetime, commit: Callable[[], None]) -> int:
    """E-mail staff each committed, not yet e-mailed reminder, once; return how many.

    Each notification is claimed (emailed_at set and committed) before its mail goes: a
    crash in between costs that e-mail, never sends it twice, and the notice stays in the app.
    """
    pending = db.session.scalars(
        select(Notification.id)
        .where(
            Notification.emailed_at.is_(None),
            Notification.schedule_run_id.is_not(None),
            Notification.created_at >= now - EMAIL_REMINDERS_WITHIN,
        )
        .order_by(Notification.id)
    ).all()
    emailed = 0
    for notification_id in pending:
        result = db.session.execute(
            update(Notification)
            .where(Notification.id == notification_id, Notification.emailed_at.is_(None))
            .values(emailed_at=now)
        )
        claimed = int(getattr(result, "rowcount", 0) or 0)
        commit()
        notification = db.session.get(Notification, notification_id)
        if not claimed or notification is None:
            continue  # another tick has it
        staff = staff_to_remind()
        failed = _email_staff(notification.text, staff)
        if failed:
            log.warning(
                "reminder %s: e-mail to %d of %d staff failed",
                notification_id,
                len(failed),
                len(staff),
            )
        emailed += 1
    return emailed


# --- the ICS feed ------------------------------------------------------------------------


# The installation setting whose value is mixed into the feed's secret: replacing it makes
# a new address and retires the old one, without touching SECRET_KEY (which also keeps
# stored passwords readable and reply addresses valid).
FEED_NONCE_SETTING = "calendar_feed_nonce"


def _feed_nonce() -> str:
    setting = db.session.get(InstallationSetting, FEED_NONCE_SETTING)
    return setting.value if setting is not None else ""


def feed_token(secret_key: str | None = None) -> str:
    """The secret of /calendar.ics: an HMAC of the installation's SECRET_KEY and nonce.

    Derived, not the key itself, so a leaked feed address reveals nothing that signs
    sessions; `new_feed_address` retires it.
    """
    key = (secret_key or str(current_app.config["SECRET_KEY"])).encode()
    message = b"campaign calendar feed v1" + _feed_nonce().encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:40]


def check_feed_token(token: str, secret_key: str | None = None) -> bool:
    return hmac.compare_digest(token.encode(), feed_token(secret_key).encode())


def new_feed_address(actor: User | None = None) -> str:
    """Retire the feed's address (a leak, someone leaving) and return the new token."""
    setting = db.session.get(InstallationSetting, FEED_NONCE_SETTING)
    if setting is None:
        setting = InstallationSetting(name=FEED_NONCE_SETTING)
        db.session.add(setting)
    setting.value = secrets.token_hex(16)
    setting.updated_by_id = actor.id if actor else None
    db.session.flush()
    record_event("calendar.feed_address_replaced", target_type="calendar", actor=actor)
    return feed_token()


def ics_feed(
    events: Iterable[CalendarEvent],
    schedules: Iterable[Schedule] = (),
    *,
    now: datetime | None = None,
) -> bytes:
    """An iCalendar file: built-in days yearly, the organisation's events, timed schedules."""
    from icalendar import Calendar, Event

    stamp = now or datetime.now(UTC)
    feed = Calendar()
    feed.add("prodid", "-//campaign//advocacy calendar//EN")
    feed.add("version", "2.0")
    feed.add("x-wr-calname", gettext("Advocacy calendar"))
    for item in events:
        entry = Event()
        entry.add("uid", f"event-{item.id}@campaign")
        entry.add("dtstamp", stamp)
        entry.add("summary", item.name)
        if item.is_builtin and item.month and item.day:
            first = date_in_year(stamp.year, item.month, item.day)
            entry.add("dtstart", first)
            entry.add("dtend", first + timedelta(days=1))
            if (item.month, item.day) == (2, 29):
                # The last day of February: 29th in leap years, 28th otherwise, as reminders.
                entry.add("rrule", {"freq": "yearly", "bymonth": 2, "bymonthday": -1})
            else:
                entry.add("rrule", {"freq": "yearly"})
        elif item.starts_on is not None:
            entry.add("dtstart", item.starts_on)
            entry.add("dtend", (item.ends_on or item.starts_on) + timedelta(days=1))
            if item.place:
                entry.add("location", item.place)
        else:
            continue
        if item.countries:
            entry.add(
                "description",
                gettext(
                    "Countries: %(codes)s",
                    codes=", ".join(country_name(code) for code in item.countries),
                ),
            )
        entry.add("categories", [item.kind])
        feed.add_component(entry)
    for schedule in schedules:
        if schedule.next_run_at is None or not schedule.is_enabled:
            continue
        entry = Event()
        entry.add("uid", f"schedule-{schedule.id}@campaign")
        entry.add("dtstamp", stamp)
        entry.add("summary", schedule.name or schedule.kind.replace("_", " "))
        entry.add("dtstart", schedule.next_run_at.astimezone(UTC))
        entry.add("dtend", schedule.next_run_at.astimezone(UTC) + timedelta(minutes=30))
        entry.add("categories", [schedule.kind])
        feed.add_component(entry)
    return feed.to_ical()
