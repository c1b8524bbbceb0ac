"""The advocacy calendar: a month grid and a 12-month list of everything dated, and its ICS feed.

What shows: the built-in days (every year), the organisation's events, scheduled sends
(send-at and the yearly campaigns' next runs), follow-up steps' due dates, staff reminders
and case anniversaries. Instants are shown on the day they fall in the organisation's zone
(CAMPAIGN_TIMEZONE), as staff read their diary there.
"""

from __future__ import annotations

import calendar as month_grid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import (
    CalendarEvent,
    Campaign,
    CampaignStep,
    Case,
    CaseDate,
    Notification,
    Role,
    Schedule,
    ScheduleKind,
)
from campaign.models.calendar import EventKind
from campaign.scheduling.recurrence import occurrence_in, parse_time
from campaign.scheduling.timezones import ScheduleError
from campaign.services import calendar as calendar_service
from campaign.services.calendar import CalendarError
from campaign.services.cases import display_name
from campaign.services.followups import CONDITION_WORDS, schedule_of, steps_of
from campaign.web.access import allow, public
from campaign.web.schedule_runs import unacknowledged_trouble

bp = Blueprint("calendar", __name__)

LIST_MONTHS = 12
NOTIFICATIONS_SHOWN = 20
EVENT_KIND_LABELS = {
    EventKind.SUMMIT.value: "Summit",
    EventKind.DIALOGUE.value: "Human-rights dialogue",
    EventKind.HRC_SESSION.value: "Human Rights Council session",
    EventKind.UPR_REVIEW.value: "UPR review",
    EventKind.OTHER.value: "Other",
}


@dataclass(frozen=True)
class Item:
    """One labelled entry of the calendar on one day."""

    on: date
    kind: str  # css class and the word shown before the label
    label: str
    url: str = ""
    time: str = ""  # "09:00" for timed entries, local to the organisation


KIND_WORDS = {
    "day": "Day",
    "event": "Event",
    "send": "Send",
    "follow-up": "Follow-up",
    "reminder": "Reminder",
    "anniversary": "Anniversary",
}


def _zone() -> ZoneInfo:
    try:
        return calendar_service.organisation_zone()
    except CalendarError:
        return ZoneInfo("UTC")


def _years(start: date, end: date) -> range:
    return range(start.year, end.year + 1)


def _builtin_items(start: date, end: date) -> list[Item]:
    items = []
    query = select(CalendarEvent).where(CalendarEvent.is_builtin.is_(True))
    for event in db.session.scalars(query):
        if not (event.month and event.day):
            continue
        for year in _years(start, end):
            on = calendar_service.date_in_year(year, event.month, event.day)
            if start <= on <= end:
                items.append(Item(on, "day", event.name))
    return items


def _event_items(start: date, end: date) -> list[Item]:
    query = select(CalendarEvent).where(
        CalendarEvent.is_builtin.is_(False),
        CalendarEvent.starts_on.is_not(None),
        CalendarEvent.starts_on <= end,
    )
    items = []
    for event in db.session.scalars(query):
        assert event.starts_on is not None
        last = event.ends_on or event.starts_on
        if last < start:
            continue
        span = calendar_service.format_span(event.starts_on, event.ends_on)
        place = f", {event.place}" if event.place else ""
        label = f"{event.name} ({span}{place})"
        # A multi-day event shows on each of its days, as a printed diary does.
        day = max(event.starts_on, start)
        while day <= min(last, end):
            items.append(Item(day, "event", label, url=f"#event-{event.id}"))
            day += timedelta(days=1)
    return items


def _campaign_url(campaign_id: int | None) -> str:
    if campaign_id is None:
        return ""
    return url_for("schedules.show", campaign_id=campaign_id)


def _instant_item(when: datetime, kind: str, label: str, url: str, zone: ZoneInfo) -> Item:
    local = when.astimezone(zone)
    return Item(local.date(), kind, label, url=url, time=local.strftime("%H:%M"))


def _step_items(campaign: Campaign, base: datetime | None, zone: ZoneInfo) -> list[Item]:
    """A campaign's follow-up steps: their due time when known, else counted from `base`."""
    items = []
    due = base
    for step in steps_of(campaign):
        schedule = schedule_of(step)
        if schedule is not None and schedule.last_fired_at is not None:
            due = schedule.last_fired_at
            continue
        if schedule is not None and schedule.next_run_at is not None:
            due = schedule.next_run_at
        elif due is not None:
            due = due + timedelta(days=step.delay_days)
        else:
            break
        items.append(_instant_item(due, "follow-up", _step_label(campaign, step), "", zone))
    return [
        Item(item.on, item.kind, item.label, _campaign_url(campaign.id), item.time)
        for item in items
    ]


def _step_label(campaign: Campaign, step: CampaignStep) -> str:
    who = CONDITION_WORDS.get(step.condition, step.condition)
    return f"{campaign.name}: follow-up {step.position} to recipients {who}"


def _yearly_runs(schedule: Schedule, start: date, end: date) -> list[datetime]:
    """The yearly campaign's runs from its next one on, that fall in [start, end]."""
    if schedule.next_run_at is None:
        return []
    rule = schedule.rule or {}
    try:
        at = parse_time(str(rule["time"]))
        runs = [
            occurrence_in(year, int(rule["month"]), int(rule["day"]), at, schedule.timezone)
            for year in range(start.year - 1, end.year + 2)
        ]
    except (KeyError, ValueError, ScheduleError):
        return [schedule.next_run_at]
    return [run for run in runs if run >= schedule.next_run_at]


def _schedule_items(start: date, end: date, zone: ZoneInfo) -> list[Item]:
    items: list[Item] = []
    query = select(Schedule).where(Schedule.is_enabled.is_(True)).order_by(Schedule.id)
    seen_follow_ups: set[int] = set()
    for schedule in db.session.scalars(query):
        campaign = db.session.get(Campaign, schedule.campaign_id) if schedule.campaign_id else None
        url = _campaign_url(schedule.campaign_id)
        if schedule.kind == ScheduleKind.SEND_AT.value and campaign and schedule.next_run_at:
            items.append(
                _instant_item(schedule.next_run_at, "send", f"{campaign.name} is sent", url, zone)
            )
            items.extend(_step_items(campaign, schedule.next_run_at, zone))
            seen_follow_ups.add(campaign.id)
        elif schedule.kind == ScheduleKind.YEARLY_CAMPAIGN.value and campaign:
            for run in _yearly_runs(schedule, start - timedelta(days=400), end):
                label = f"{campaign.name} (yearly) is sent"
                items.append(_instant_item(run, "send", label, url, zone))
                items.extend(_step_items(campaign, run, zone))
            seen_follow_ups.add(campaign.id)
        elif schedule.kind == ScheduleKind.REMINDER.value and schedule.next_run_at:
            items.append(_instant_item(schedule.next_run_at, "reminder", schedule.name, "", zone))
    # Follow-ups of launched campaigns (their send is past; their steps are due).
    query_steps = select(Schedule).where(
        Schedule.kind == ScheduleKind.FOLLOW_UP.value,
        Schedule.is_enabled.is_(True),
        Schedule.next_run_at.is_not(None),
        Schedule.last_fired_at.is_(None),
    )
    for schedule in db.session.scalars(query_steps):
        if schedule.campaign_id in seen_follow_ups or schedule.next_run_at is None:
            continue
        step = db.session.get(CampaignStep, schedule.step_id) if schedule.step_id else None
        campaign = db.session.get(Campaign, schedule.campaign_id)
        if step is None or campaign is None:
            continue
        label = _step_label(campaign, step)
        url = _campaign_url(campaign.id)
        items.append(_instant_item(schedule.next_run_at, "follow-up", label, url, zone))
    return [item for item in items if start <= item.on <= end]


def _anniversary_items(start: date, end: date) -> list[Item]:
    items = []
    query = select(CaseDate).where(CaseDate.is_anniversary_marked.is_(True))
    viewer = current_user._get_current_object()
    for case_date in db.session.scalars(query):
        case = db.session.get(Case, case_date.case_id)
        if case is None:
            continue
        for year in _years(start, end):
            years = year - case_date.on.year
            on = calendar_service.date_in_year(year, case_date.on.month, case_date.on.day)
            if years < 1 or not start <= on <= end:
                continue
            moved = " — marked on 28 February this year" if on.day != case_date.on.day else ""
            label = (
                f"{case_date.kind.capitalize()} of {display_name(case, viewer)} "
                f"({calendar_service.format_day(case_date.on, with_year=True)}, "
                f"{years} {'year' if years == 1 else 'years'}){moved}"
            )
            items.append(Item(on, "anniversary", label))
    return items


def calendar_items(start: date, end: date) -> list[Item]:
    """Everything dated between `start` and `end` (inclusive), by day then time."""
    zone = _zone()
    items = (
        _builtin_items(start, end)
        + _event_items(start, end)
        + _schedule_items(start, end, zone)
        + _anniversary_items(start, end)
    )
    return sorted(items, key=lambda item: (item.on, item.time or "", item.kind, item.label))


# --- pages ---------------------------------------------------------------------------------


def _month_of(value: str, today: date) -> date:
    try:
        year, month = (int(part) for part in value.split("-"))
        return date(year, month, 1)
    except ValueError:
        return today.replace(day=1)


def _add_months(first: date, count: int) -> date:
    index = first.year * 12 + first.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def _notifications() -> list[Notification]:
    query = (
        select(Notification)
        .order_by(Notification.created_at.desc(), Notification.id.desc())
        .limit(NOTIFICATIONS_SHOWN)
    )
    return list(db.session.scalars(query))


def _may(role: Role) -> bool:
    return bool(current_user.role_enum.includes(role))


def _render(form: dict[str, str] | None = None, error: str = "", field: str = "") -> Any:
    today = datetime.now(UTC).astimezone(_zone()).date()
    view = "list" if request.args.get("view") == "list" else "month"
    first = _month_of(request.args.get("month", ""), today)
    if view == "list":
        # Through the end of the 12th month after this one: a yearly send due in 11 months
        # shows with the follow-up two weeks after it.
        start = today
        end = _add_months(today.replace(day=1), LIST_MONTHS + 1) - timedelta(days=1)
        weeks: list[list[date]] = []
    else:
        weeks = month_grid.Calendar(firstweekday=0).monthdatescalendar(first.year, first.month)
        start, end = weeks[0][0], weeks[-1][-1]
    items = calendar_items(start, end)
    by_day: dict[date, list[Item]] = {}
    for item in items:
        by_day.setdefault(item.on, []).append(item)
    events = list(
        db.session.scalars(
            select(CalendarEvent)
            .where(CalendarEvent.is_builtin.is_(False), CalendarEvent.starts_on >= start)
            .order_by(CalendarEvent.starts_on)
        )
    )
    feed_url = (
        url_for("calendar.feed", token=calendar_service.feed_token(), _external=True)
        if _may(Role.ADMIN)
        else ""
    )
    return render_template(
        "calendar/index.html",
        view=view,
        today=today,
        first=first,
        previous=_add_months(first, -1),
        following=_add_months(first, 1),
        weeks=weeks,
        by_day=by_day,
        items=items,
        start=start,
        end=end,
        kind_words=KIND_WORDS,
        notifications=_notifications(),
        events=events,
        event_kinds=EVENT_KIND_LABELS,
        format_span=calendar_service.format_span,
        may_edit=_may(Role.EDITOR),
        feed_url=feed_url,
        form=form or {},
        error=error,
        field=field,
        zone=_zone().key,
        run_trouble=unacknowledged_trouble(),
    ), (422 if error else 200)


@bp.route("/calendar/")
@allow(Role.VIEWER)
def index() -> Any:
    return _render()


def _field_of(message: str) -> str:
    """The form field a service message is about, from its "Field: …" opening."""
    opening = message.split(":", 1)[0].strip().lower()
    return {
        "name": "name",
        "dates": "ends_on",
        "kind": "kind",
        "country": "countries",
        "reminder": "reminder_days",
    }.get(opening, "")


def _parse_date(value: str, label: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise CalendarError(f"{label}: {value.strip()!r} is not a date like 2027-04-03") from None


def _parse_days(value: str) -> list[int]:
    days = []
    for part in value.replace(";", ",").split(","):
        if not part.strip():
            continue
        try:
            days.append(int(part.strip()))
        except ValueError:
            raise CalendarError(
                f"Reminder: {part.strip()!r} is not a number of days (write 7, 1)"
            ) from None
    return days


@bp.route("/calendar/events", methods=["POST"])
@allow(Role.EDITOR)
def add_event() -> Any:
    form = {key: request.form.get(key, "") for key in request.form}
    try:
        starts_on = _parse_date(form.get("starts_on", ""), "Starts on")
        ends_text = form.get("ends_on", "").strip()
        ends_on = _parse_date(ends_text, "Ends on") if ends_text else None
        countries = [c for c in form.get("countries", "").replace(";", ",").split(",") if c.strip()]
        event = calendar_service.add_event(
            form.get("name", ""),
            starts_on,
            ends_on,
            place=form.get("place", ""),
            countries=countries,
            kind=form.get("kind", EventKind.OTHER.value),
            reminder_days=_parse_days(form.get("reminder_days", "")),
            notes=form.get("notes", ""),
            created_by=current_user._get_current_object(),
        )
    except CalendarError as error:
        db.session.rollback()
        message = str(error)
        field = _field_of(message)
        if message.startswith("Starts on"):
            field = "starts_on"
        elif message.startswith("Ends on"):
            field = "ends_on"
        return _render(form, message, field)
    db.session.commit()
    flash(f"Event {event.name} added to the calendar.", "success")
    month = event.starts_on.strftime("%Y-%m") if event.starts_on else ""
    return redirect(url_for("calendar.index", month=month))


@bp.route("/calendar.ics")
@public
def feed() -> Any:
    """The calendar for staff diaries; the token is the only key, so a wrong one finds nothing."""
    token = request.args.get("token", "")
    if not token or not calendar_service.check_feed_token(token):
        abort(404)
    events = db.session.scalars(select(CalendarEvent).order_by(CalendarEvent.id))
    schedules = db.session.scalars(
        select(Schedule).where(Schedule.is_enabled.is_(True)).order_by(Schedule.id)
    )
    body = calendar_service.ics_feed(events, schedules)
    return Response(
        body,
        mimetype="text/calendar",
        headers={"Content-Disposition": 'inline; filename="advocacy-calendar.ics"'},
    )
