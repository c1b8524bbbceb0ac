"""What the calendar shows between two days: built-in days, events, sends, follow-ups,
reminders and case anniversaries, each as an `Item` on the day it falls.

Instants are placed on the day they fall in the organisation's zone (CAMPAIGN_TIMEZONE), as
staff read their diary there. Rows are loaded in batches (one query per kind of row, never
one per row), so a page costs the same few queries whether it shows 3 entries or 300.
Items name what they link to (a campaign, a case, an event) by id; the page makes the URL.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from sqlalchemy import or_, select

from campaign.extensions import db
from campaign.labels import label
from campaign.models import (
    CalendarEvent,
    Campaign,
    CampaignStep,
    Case,
    CaseDate,
    Schedule,
    ScheduleKind,
    User,
)
from campaign.scheduling.recurrence import occurrence_in, parse_time
from campaign.scheduling.timezones import ScheduleError
from campaign.services.schedules import advocacy_calendar as calendar_service
from campaign.services.schedules.advocacy_calendar import CalendarError
from campaign.services.schedules.cases import display_name
from campaign.services.sending.followups import CONDITION_WORDS

# The word shown before an entry, by its kind (also its CSS class).
KIND_WORDS = {
    "day": _l("Day"),
    "event": _l("Event"),
    "send": _l("Send"),
    "follow-up": _l("Follow-up"),
    "reminder": _l("Reminder"),
    "anniversary": _l("Anniversary"),
}


@dataclass(frozen=True)
class Item:
    """One labelled entry of the calendar on one day."""

    on: date
    kind: str  # css class and the word shown before the label
    label: str
    time: str = ""  # "09:00" for timed entries, local to the organisation
    campaign_id: int | None = None  # sends and follow-ups link to the campaign's schedule
    case_id: int | None = None  # anniversaries link to the case
    event_id: int | None = None  # events link to their entry on the page


def display_zone() -> ZoneInfo:
    """The organisation's zone; UTC when CAMPAIGN_TIMEZONE is not a zone (the page still shows)."""
    try:
        return calendar_service.organisation_zone()
    except CalendarError:
        return ZoneInfo("UTC")


def calendar_items(start: date, end: date, viewer: User | None) -> list[Item]:
    """Everything dated between `start` and `end` (inclusive), by day then time.

    `viewer` decides how high-risk people are named (real names for admins only). The
    labels are in the interface language.
    """
    zone = display_zone()
    items = (
        _builtin_items(start, end)
        + _event_items(start, end)
        + _schedule_items(start, end, zone)
        + _anniversary_items(start, end, viewer)
    )
    return sorted(items, key=lambda item: (item.on, item.time or "", item.kind, item.label))


def _years(start: date, end: date) -> range:
    return range(start.year, end.year + 1)


# --- the calendar's own days and events ------------------------------------------------------


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
            items.append(Item(day, "event", label, event_id=event.id))
            day += timedelta(days=1)
    return items


# --- schedules: sends, follow-up steps, reminders ------------------------------------------


@dataclass(frozen=True)
class _Rows:
    """The campaigns, steps and step schedules the enabled schedules refer to, loaded at once."""

    campaigns: dict[int, Campaign]
    steps_by_campaign: dict[int, list[CampaignStep]]
    steps: dict[int, CampaignStep]
    step_schedules: dict[int, Schedule]  # follow-up schedule of each step, by step id


def _load_rows(schedules: Iterable[Schedule]) -> _Rows:
    campaign_ids = {s.campaign_id for s in schedules if s.campaign_id is not None}
    step_ids = {s.step_id for s in schedules if s.step_id is not None}
    campaigns: dict[int, Campaign] = {}
    if campaign_ids:
        query = select(Campaign).where(Campaign.id.in_(campaign_ids))
        campaigns = {campaign.id: campaign for campaign in db.session.scalars(query)}
    steps: dict[int, CampaignStep] = {}
    if campaign_ids or step_ids:
        query_steps = (
            select(CampaignStep)
            .where(or_(CampaignStep.campaign_id.in_(campaign_ids), CampaignStep.id.in_(step_ids)))
            .order_by(CampaignStep.campaign_id, CampaignStep.position)
        )
        steps = {step.id: step for step in db.session.scalars(query_steps)}
    steps_by_campaign: dict[int, list[CampaignStep]] = defaultdict(list)
    for step in steps.values():
        steps_by_campaign[step.campaign_id].append(step)
    step_schedules: dict[int, Schedule] = {}
    if steps:
        # Disabled ones too: a step's schedule says when it fired even after it stopped.
        query_schedules = (
            select(Schedule)
            .where(
                Schedule.kind == ScheduleKind.FOLLOW_UP.value,
                Schedule.step_id.in_(list(steps)),
            )
            .order_by(Schedule.id.desc())
        )
        for schedule in db.session.scalars(query_schedules):
            assert schedule.step_id is not None
            step_schedules[schedule.step_id] = schedule  # the oldest wins, as it always did
    return _Rows(campaigns, dict(steps_by_campaign), steps, step_schedules)


def _instant_item(
    when: datetime, kind: str, label: str, zone: ZoneInfo, campaign_id: int | None = None
) -> Item:
    local = when.astimezone(zone)
    return Item(local.date(), kind, label, time=local.strftime("%H:%M"), campaign_id=campaign_id)


def _step_label(campaign: Campaign, step: CampaignStep) -> str:
    found = CONDITION_WORDS.get(step.condition)
    who = str(found) if found is not None else label(step.condition, "follow_up_condition")
    return _(
        "%(campaign)s: follow-up %(position)d to recipients %(who)s",
        campaign=campaign.name,
        position=step.position,
        who=who,
    )


def _step_items(
    campaign: Campaign, base: datetime | None, zone: ZoneInfo, rows: _Rows
) -> list[Item]:
    """A campaign's follow-up steps: their due time when known, else counted from `base`."""
    items = []
    due = base
    for step in rows.steps_by_campaign.get(campaign.id, []):
        schedule = rows.step_schedules.get(step.id)
        if schedule is not None and schedule.last_fired_at is not None:
            due = schedule.last_fired_at
            continue
        if schedule is not None and schedule.next_run_at is not None:
            due = schedule.next_run_at
        elif due is not None:
            due = due + timedelta(days=step.delay_days)
        else:
            break
        items.append(
            _instant_item(due, "follow-up", _step_label(campaign, step), zone, campaign.id)
        )
    return items


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
    query = select(Schedule).where(Schedule.is_enabled.is_(True)).order_by(Schedule.id)
    schedules = list(db.session.scalars(query))
    rows = _load_rows(schedules)
    items: list[Item] = []
    seen_follow_ups: set[int] = set()
    titles = calendar_service.schedule_titles(
        [s for s in schedules if s.kind == ScheduleKind.REMINDER.value and s.next_run_at]
    )
    for schedule in schedules:
        campaign = rows.campaigns.get(schedule.campaign_id) if schedule.campaign_id else None
        if schedule.kind == ScheduleKind.SEND_AT.value and campaign and schedule.next_run_at:
            text = _("%(campaign)s is sent", campaign=campaign.name)
            items.append(_instant_item(schedule.next_run_at, "send", text, zone, campaign.id))
            items.extend(_step_items(campaign, schedule.next_run_at, zone, rows))
            seen_follow_ups.add(campaign.id)
        elif schedule.kind == ScheduleKind.YEARLY_CAMPAIGN.value and campaign:
            # Anniversary-anchored yearly sends (case_date_id set) keep their date in the
            # rule as every yearly schedule does, so they land on the anniversary here too.
            for run in _yearly_runs(schedule, start - timedelta(days=400), end):
                text = _("%(campaign)s (yearly) is sent", campaign=campaign.name)
                items.append(_instant_item(run, "send", text, zone, campaign.id))
                items.extend(_step_items(campaign, run, zone, rows))
            seen_follow_ups.add(campaign.id)
        elif schedule.kind == ScheduleKind.REMINDER.value and schedule.next_run_at:
            title = titles[schedule.id]
            items.append(_instant_item(schedule.next_run_at, "reminder", title, zone))
    # Follow-ups of launched campaigns (their send is past; their steps are due).
    for schedule in schedules:
        if (
            schedule.kind != ScheduleKind.FOLLOW_UP.value
            or schedule.next_run_at is None
            or schedule.last_fired_at is not None
            or schedule.campaign_id in seen_follow_ups
        ):
            continue
        step = rows.steps.get(schedule.step_id) if schedule.step_id else None
        campaign = rows.campaigns.get(schedule.campaign_id) if schedule.campaign_id else None
        if step is None or campaign is None:
            continue
        text = _step_label(campaign, step)
        items.append(_instant_item(schedule.next_run_at, "follow-up", text, zone, campaign.id))
    return [item for item in items if start <= item.on <= end]


# --- case anniversaries ---------------------------------------------------------------------


def _anniversary_items(start: date, end: date, viewer: User | None) -> list[Item]:
    items = []
    query = (
        select(CaseDate, Case)
        .join(Case, Case.id == CaseDate.case_id)
        .where(CaseDate.is_anniversary_marked.is_(True))
    )
    for case_date, case in db.session.execute(query):
        for year in _years(start, end):
            years = year - case_date.on.year
            on = calendar_service.date_in_year(year, case_date.on.month, case_date.on.day)
            if years < 1 or not start <= on <= end:
                continue
            text = ngettext(
                "%(kind)s of %(who)s (%(date)s, %(num)d year)",
                "%(kind)s of %(who)s (%(date)s, %(num)d years)",
                years,
                kind=label(case_date.kind, "case_date_kind"),
                who=display_name(case, viewer),
                date=calendar_service.format_day(case_date.on, with_year=True),
            )
            if on.day != case_date.on.day:
                text = _("%(text)s — marked on 28 February this year", text=text)
            items.append(Item(on, "anniversary", text, case_id=case.id))
    return items
