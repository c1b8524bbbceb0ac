"""Making schedules: validate the local rule, store it with its next run in UTC. Flushes only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from sqlalchemy import select

from campaign import clock
from campaign.extensions import db
from campaign.models import Campaign, CampaignStatus, Case, CaseDate, User
from campaign.models.calendar import letter_name
from campaign.models.schedule import Schedule, ScheduleKind
from campaign.scheduling.recurrence import check_month_day, next_yearly, parse_time, yearly_note
from campaign.scheduling.stored_text import labelled, lowered
from campaign.scheduling.timezones import ScheduleError, to_utc, zone_of
from campaign.services.accounts.audit import record_event
from campaign.services.sending.campaigns import LAUNCHABLE


def create_send_at(
    campaign: Campaign,
    local: str,
    zone: str,
    *,
    now: datetime | None = None,
    actor: User | None = None,
    pacing: dict[str, Any] | None = None,
) -> Schedule:
    """Schedule a draft campaign's launch at `local` in `zone` (replacing an earlier send-at).

    `pacing` (from `pacing.pacing_rule`) is kept in the rule for the launch to read.
    """
    now = now or clock.now()
    if campaign.status not in LAUNCHABLE:
        raise ScheduleError(
            _l(
                "the campaign is %(status)s; only a draft can be scheduled",
                status=lowered(labelled(campaign.status, "campaign_status")),
            )
        )
    send_at = to_utc(local, zone, not_before=now)
    tz = zone_of(zone).key
    schedule = db.session.scalar(
        select(Schedule).where(
            Schedule.kind == ScheduleKind.SEND_AT.value,
            Schedule.campaign_id == campaign.id,
            Schedule.is_enabled.is_(True),
        )
    )
    if schedule is None:
        schedule = Schedule(kind=ScheduleKind.SEND_AT.value, campaign_id=campaign.id)
        db.session.add(schedule)
    schedule.name = campaign.name
    schedule.timezone = tz
    rule: dict[str, Any] = {"at": send_at.astimezone(zone_of(tz)).strftime("%Y-%m-%dT%H:%M")}
    if pacing:
        rule["pacing"] = pacing
    schedule.rule = rule
    schedule.next_run_at = send_at
    schedule.created_by_id = actor.id if actor else None
    campaign.status = CampaignStatus.SCHEDULED.value
    campaign.send_at = send_at
    campaign.status_reason = ""
    db.session.flush()
    record_event(
        "campaign.schedule",
        target_type="campaign",
        target_id=campaign.id,
        actor=actor,
        detail={
            "send_at": send_at.isoformat(),
            "local": local,
            "timezone": tz,
            **({"pacing": pacing} if pacing else {}),
        },
    )
    return schedule


def cancel_send_at(campaign: Campaign, *, actor: User | None = None) -> bool:
    """Turn off the campaign's send-at (it goes back to draft); audited. False: it had none.

    A launch by hand calls it first: its letters then leave at once (the send-at's pacing
    goes with it) and the home page and the calendar no longer list the date."""
    found = list(
        db.session.scalars(
            select(Schedule).where(
                Schedule.kind == ScheduleKind.SEND_AT.value,
                Schedule.campaign_id == campaign.id,
                Schedule.is_enabled.is_(True),
            )
        )
    )
    for schedule in found:
        schedule.is_enabled = False
        schedule.next_run_at = None
    if campaign.status == CampaignStatus.SCHEDULED.value:
        campaign.status = CampaignStatus.DRAFT.value
    had_date = campaign.send_at is not None
    campaign.send_at = None
    db.session.flush()
    if not found and not had_date:
        return False
    record_event("campaign.unschedule", target_type="campaign", target_id=campaign.id, actor=actor)
    return True


def anniversary_words(case_date: CaseDate, name: str) -> LazyString:
    """ "the anniversary of the arrest of Prisoner J." with the name the caller may show."""
    return _l(
        "the anniversary of the %(kind)s of %(name)s",
        kind=lowered(labelled(case_date.kind, "case_date_kind")),
        name=name,
    )


def _refuse_a_second_repeat(campaign: Campaign, month: int, day: int) -> None:
    """One repeat per campaign and day: a second (a double submit, a re-run command, a new
    time for the same day) would launch two copies in one year."""
    for rule, zone in db.session.execute(
        select(Schedule.rule, Schedule.timezone).where(
            Schedule.campaign_id == campaign.id,
            Schedule.kind == ScheduleKind.YEARLY_CAMPAIGN.value,
            Schedule.is_enabled.is_(True),
        )
    ):
        if (int(rule.get("month", 0)), int(rule.get("day", 0))) == (month, day):
            raise ScheduleError(
                _l(
                    "Date: '%(name)s' already repeats every year on this day (at %(time)s "
                    "%(zone)s); stop that repeat first to change it",
                    name=campaign.name,
                    time=str(rule.get("time")),
                    zone=zone,
                ),
                "day",
            )


def create_yearly(
    campaign: Campaign,
    month: int,
    day: int,
    time: str,
    zone: str,
    *,
    now: datetime | None = None,
    actor: User | None = None,
    case_date: CaseDate | None = None,
) -> Schedule:
    """Every year on `month`/`day` at `time` in `zone`, a copy of `campaign` is launched.

    With `case_date` the date is that case date's anniversary (the caller's month and day
    are ignored) and each year's copy gets the case linked, so its letters can merge it.
    """
    now = now or clock.now()
    name = campaign.name
    if case_date is not None:
        month, day = case_date.on.month, case_date.on.day
        case = db.session.get(Case, case_date.case_id)
        # Schedule names are shown to everyone (CLI, scheduler record): the letter-safe name.
        who = letter_name(case) if case is not None else "a case"
        # Stored in English: the CLI and the scheduler record read it (pages name it anew).
        with force_locale("en"):
            name = f"{campaign.name} on {anniversary_words(case_date, who)}"
            note = yearly_note(month, day)
            name = f"{name} — {note}" if note else name
    check_month_day(month, day)
    at = parse_time(time)
    tz = zone_of(zone).key
    _refuse_a_second_repeat(campaign, month, day)
    schedule = Schedule(
        kind=ScheduleKind.YEARLY_CAMPAIGN.value,
        name=name[:300],
        campaign_id=campaign.id,
        case_date_id=case_date.id if case_date is not None else None,
        timezone=tz,
        rule={"month": month, "day": day, "time": at.strftime("%H:%M")},
        next_run_at=next_yearly(now, month, day, at, tz),
        created_by_id=actor.id if actor else None,
    )
    db.session.add(schedule)
    db.session.flush()
    record_event(
        "schedule.create",
        target_type="schedule",
        target_id=schedule.id,
        actor=actor,
        detail={
            "kind": schedule.kind,
            "campaign": campaign.id,
            **schedule.rule,
            "timezone": tz,
            **({"case_date": case_date.id} if case_date is not None else {}),
        },
    )
    return schedule
