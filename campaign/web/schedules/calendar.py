"""The advocacy calendar pages: a month grid and a 12-month list of everything dated, the
organisation's events (add, edit, delete) and the secret ICS feed.

What the calendar shows is assembled in campaign/services/schedules/calendar_items.py; this module
parses requests, turns items into links and renders.
"""

from __future__ import annotations

import calendar as month_grid
from datetime import date, timedelta
from typing import Any

from babel.dates import get_day_names
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import format_date, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from campaign import clock
from campaign.extensions import db
from campaign.labels import label
from campaign.models import CalendarEvent, Notification, Role, Schedule
from campaign.models.calendar import EventKind
from campaign.scheduling.stored_text import read
from campaign.services.schedules import advocacy_calendar as calendar_service
from campaign.services.schedules.advocacy_calendar import BuiltinDayError, CalendarError
from campaign.services.schedules.calendar_items import (
    KIND_WORDS,
    Item,
    calendar_items,
    display_zone,
)
from campaign.services.schedules.cases import record_page_reveals
from campaign.services.schedules.schedule_runs import unacknowledged_trouble
from campaign.web.access import allow, may, public, signed_in_user
from campaign.web.statements.country_names import country_code

bp = Blueprint("calendar", __name__)

LIST_MONTHS = 12
NOTIFICATIONS_SHOWN = 20
# The kinds an organisation's event may have (built-in days have their own, UN days …).
EVENT_KINDS = (
    EventKind.SUMMIT.value,
    EventKind.DIALOGUE.value,
    EventKind.HRC_SESSION.value,
    EventKind.UPR_REVIEW.value,
    EventKind.OTHER.value,
)


def _event_kinds() -> dict[str, str]:
    """The kinds an event form offers, with their labels in the interface language."""
    return {kind: label(kind, "event_kind") for kind in EVENT_KINDS}


def _weekday_names() -> list[str]:
    """Monday to Sunday, abbreviated, in the interface language."""
    names = get_day_names("abbreviated", context="stand-alone", locale=get_locale())
    return [str(names[index]) for index in range(7)]


def url_of(item: Item) -> str:
    """Where an entry links: its campaign's schedule, its case, its event's line below."""
    if item.campaign_id is not None:
        return url_for("schedules.show", campaign_id=item.campaign_id)
    # The cases pages may not be installed yet; the calendar works without them.
    if item.case_id is not None and "cases.show" in current_app.view_functions:
        return url_for("cases.show", case_id=item.case_id)
    if item.event_id is not None:
        return f"#event-{item.event_id}"
    return ""


# --- pages ---------------------------------------------------------------------------------


# Months the calendar pages can show; anything else (a typo, 9999-12 whose "next month"
# does not exist) shows the current month.
YEARS_SHOWN = range(1900, 3000)


def _month_of(value: str, today: date) -> date:
    try:
        year, month = (int(part) for part in value.split("-"))
        if year in YEARS_SHOWN:
            return date(year, month, 1)
    except ValueError:
        pass
    return today.replace(day=1)


def _add_months(first: date, count: int) -> date:
    index = first.year * 12 + first.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def _notifications() -> list[tuple[Notification, str]]:
    """The latest reminders, each with its text in the reader's language."""
    query = (
        select(Notification)
        .order_by(Notification.created_at.desc(), Notification.id.desc())
        .limit(NOTIFICATIONS_SHOWN)
    )
    return [(note, read(note.text)) for note in db.session.scalars(query)]


def _render(form: dict[str, str] | None = None, error: str = "", field: str = "") -> Any:
    today = clock.today(display_zone())
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
    items = calendar_items(start, end, signed_in_user())
    by_day: dict[date, list[Item]] = {}
    for item in items:
        by_day.setdefault(item.on, []).append(item)
    events = list(
        db.session.scalars(
            select(CalendarEvent)
            .where(CalendarEvent.is_builtin.is_(False), CalendarEvent.starts_on >= start)
            .order_by(CalendarEvent.starts_on, CalendarEvent.id)
        )
    )
    feed_url = (
        url_for("calendar.feed", token=calendar_service.feed_token(), _external=True)
        if may(Role.ADMIN)
        else ""
    )
    page = render_template(
        "calendar/index.html",
        view=view,
        today=today,
        first=first,
        previous=_add_months(first, -1),
        following=_add_months(first, 1),
        weeks=weeks,
        by_day=by_day,
        items=items,
        url_of=url_of,
        start=start,
        end=end,
        kind_words=KIND_WORDS,
        weekday_names=_weekday_names(),
        notifications=_notifications(),
        events=events,
        event_kinds=_event_kinds(),
        format_span=calendar_service.format_span,
        may_edit=may(Role.EDITOR),
        feed_url=feed_url,
        form=form or {},
        error=error,
        field=field,
        zone=display_zone().key,
        run_trouble=unacknowledged_trouble(),
    )
    # Anniversaries name high-risk people in full for admins: audited once per page.
    if record_page_reveals(signed_in_user(), page="calendar"):
        db.session.commit()
    return page, (422 if error else 200)


@bp.route("/calendar/")
@allow(Role.VIEWER)
def index() -> Any:
    return _render()


def _parse_date(value: str, field: str) -> date:
    """A date of the form; `field` is "starts_on" or "ends_on"."""
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        if field == "starts_on":
            message = _l(
                "Starts on: '%(value)s' is not a date like 2027-04-03", value=value.strip()
            )
        else:
            message = _l("Ends on: '%(value)s' is not a date like 2027-04-03", value=value.strip())
        raise CalendarError(message, field) from None


def _parse_days(value: str) -> list[int]:
    days = []
    for part in value.replace(";", ",").split(","):
        if not part.strip():
            continue
        try:
            days.append(int(part.strip()))
        except ValueError:
            raise CalendarError(
                _l(
                    "Reminder: '%(value)s' is not a number of days (write 7, 1)", value=part.strip()
                ),
                "reminder_days",
            ) from None
    return days


def _event_input(form: dict[str, str]) -> dict[str, Any]:
    """The event form's fields as the calendar service takes them (add and edit alike)."""
    ends_text = form.get("ends_on", "").strip()
    # Each box holds a code from the datalist (or a name typed without choosing from it).
    countries = [
        country_code(text) for text in form.get("countries", "").replace(";", ",").split(",")
    ]
    return {
        "name": form.get("name", ""),
        "starts_on": _parse_date(form.get("starts_on", ""), "starts_on"),
        "ends_on": _parse_date(ends_text, "ends_on") if ends_text else None,
        "place": form.get("place", ""),
        "countries": [code for code in countries if code.strip()],
        "kind": form.get("kind", EventKind.OTHER.value),
        "reminder_days": _parse_days(form.get("reminder_days", "")),
        "notes": form.get("notes", ""),
    }


def _posted_form() -> dict[str, str]:
    form = {key: request.form.get(key, "") for key in request.form}
    # One box per country: kept as one comma-separated value, as the form shows it again.
    boxes = [text.strip() for text in request.form.getlist("countries") if text.strip()]
    form["countries"] = ", ".join(boxes)
    return form


@bp.route("/calendar/events", methods=["POST"])
@allow(Role.EDITOR)
def add_event() -> Any:
    form = _posted_form()
    try:
        event = calendar_service.add_event(**_event_input(form), created_by=signed_in_user())
    except CalendarError as error:
        db.session.rollback()
        return _render(form, str(error), error.field)
    db.session.commit()
    flash(_("Event %(name)s added to the calendar.", name=event.name), "success")
    month = event.starts_on.strftime("%Y-%m") if event.starts_on else ""
    return redirect(url_for("calendar.index", month=month))


# --- one event: its page, editing, deleting ----------------------------------------------------


def _event(event_id: int) -> CalendarEvent:
    event = db.session.get(CalendarEvent, event_id)
    if event is None:
        abort(404)
    return event


def _form_of(event: CalendarEvent) -> dict[str, str]:
    return {
        "name": event.name,
        "kind": event.kind,
        "starts_on": event.starts_on.isoformat() if event.starts_on else "",
        "ends_on": event.ends_on.isoformat() if event.ends_on else "",
        "place": event.place,
        "countries": ", ".join(event.countries or []),
        "notes": event.notes,
        "reminder_days": ", ".join(str(days) for days in calendar_service.reminder_days_of(event)),
    }


def _reminder_state(schedule: Schedule) -> str:
    """When the reminder goes (went), in the organisation's zone and the interface language."""
    zone = display_zone()
    if schedule.next_run_at is not None and schedule.is_enabled:
        when = schedule.next_run_at.astimezone(zone)
        return _(
            "next on %(date)s at %(time)s",
            date=format_date(when.date(), "d MMMM y"),
            time=f"{when:%H:%M}",
        )
    if schedule.last_fired_at is not None:
        sent = schedule.last_fired_at.astimezone(zone)
        return _("sent on %(date)s", date=format_date(sent.date(), "d MMMM y"))
    return _("its day has passed: it will not be sent")


def _render_event(
    event: CalendarEvent,
    form: dict[str, str] | None = None,
    error: str = "",
    field: str = "",
    status: int | None = None,
) -> Any:
    reminders = [
        (calendar_service.schedule_title(s), _reminder_state(s))
        for s in calendar_service.reminders_of(event)
    ]
    return render_template(
        "calendar/event.html",
        event=event,
        reminders=reminders,
        event_kinds=_event_kinds(),
        format_span=calendar_service.format_span,
        # A built-in day's day and month (2000: a leap year, so 29 February has a name too).
        builtin_on=(
            calendar_service.format_day(date(2000, event.month, event.day))
            if event.is_builtin and event.month and event.day
            else ""
        ),
        may_edit=may(Role.EDITOR) and not event.is_builtin,
        form=form or _form_of(event),
        error=error,
        field=field,
        zone=display_zone().key,
    ), (status or (422 if error else 200))


@bp.route("/calendar/events/<int:event_id>")
@allow(Role.VIEWER)
def show_event(event_id: int) -> Any:
    return _render_event(_event(event_id))


def _refused_builtin(event: CalendarEvent, error: BuiltinDayError) -> Any:
    """A built-in day cannot be changed by anyone: 403, with the reason on the page."""
    db.session.rollback()
    return _render_event(event, error=str(error), status=403)


@bp.route("/calendar/events/<int:event_id>", methods=["POST"])
@allow(Role.EDITOR)
def update_event(event_id: int) -> Any:
    event = _event(event_id)
    form = _posted_form()
    try:
        calendar_service.update_event(event, **_event_input(form), actor=signed_in_user())
    except BuiltinDayError as error:
        return _refused_builtin(_event(event_id), error)
    except CalendarError as error:
        db.session.rollback()
        return _render_event(_event(event_id), form, str(error), error.field)
    db.session.commit()
    flash(_("Event %(name)s saved; its reminders follow its dates.", name=event.name), "success")
    return redirect(url_for("calendar.show_event", event_id=event.id))


@bp.route("/calendar/events/<int:event_id>/delete", methods=["POST"])
@allow(Role.EDITOR)
def delete_event(event_id: int) -> Any:
    event = _event(event_id)
    name = event.name
    month = event.starts_on.strftime("%Y-%m") if event.starts_on else ""
    try:
        kept = calendar_service.delete_event(event, actor=signed_in_user())
    except BuiltinDayError as error:
        return _refused_builtin(_event(event_id), error)
    db.session.commit()
    if kept:
        message = _(
            "Event %(name)s deleted, with its reminders. Reminders already sent stay in the "
            "scheduler record.",
            name=name,
        )
    else:
        message = _("Event %(name)s deleted, with its reminders.", name=name)
    flash(message, "success")
    return redirect(url_for("calendar.index", month=month))


@bp.route("/calendar/feed-address", methods=["POST"])
@allow(Role.ADMIN)
def new_feed_address() -> Any:
    calendar_service.new_feed_address(signed_in_user())
    db.session.commit()
    flash(
        _(
            "The calendar feed has a new address; the old one no longer works. "
            "Give the new one to staff who subscribe."
        ),
        "success",
    )
    return redirect(url_for("calendar.index") + "#feed-heading")


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
