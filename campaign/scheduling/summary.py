"""A campaign's schedule in one sentence: "Scheduled for 26 June 2027, 09:00 Asia/Tashkent;
follow-up on 10 July" — for the campaign page and the campaigns list (decision 0046).

The instants come from the schedules themselves (a send-at's `next_run_at`, a yearly rule
through `recurrence.next_yearly`) and the follow-ups' days from the calendar
(`calendar_items`), so the sentence and the calendar cannot disagree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from flask_babel import format_time, ngettext
from flask_babel import gettext as _
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Campaign, CampaignStep, Schedule, ScheduleKind
from campaign.scheduling.recurrence import next_yearly
from campaign.scheduling.stored_text import day_text
from campaign.scheduling.timezones import ScheduleError, zone_of
from campaign.services.schedules.calendar_items import calendar_items
from campaign.services.sending.campaigns import LAUNCHABLE

# Follow-ups further than this after their letter are not looked up in the calendar.
FOLLOW_UP_HORIZON = timedelta(days=400)


@dataclass
class CampaignSchedule:
    """When a not-yet-launched campaign goes out, and its follow-ups."""

    first_send: datetime | None = None  # UTC
    zone: str = "UTC"
    is_yearly: bool = False
    follow_up_days: list[date] = field(default_factory=list)
    follow_up_delays: list[int] = field(default_factory=list)

    @property
    def is_scheduled(self) -> bool:
        return self.first_send is not None or bool(self.follow_up_delays)

    def text(self) -> str:
        """The sentence in the interface language; "" when nothing is scheduled."""
        parts: list[str] = []
        if self.first_send is not None:
            local = self.first_send.astimezone(zone_of(self.zone))
            words = {
                "date": day_text(local.date().isoformat(), with_year=True),
                # The zone's own wall-clock time, written the interface language's way.
                "time": format_time(local, "short", rebase=False),
                "zone": self.zone,
            }
            parts.append(
                _("Sent every year; next on %(date)s, %(time)s %(zone)s", **words)
                if self.is_yearly
                else _("Scheduled for %(date)s, %(time)s %(zone)s", **words)
            )
        else:
            parts.append(_("Not scheduled: it goes out when someone launches it"))
        if self.follow_up_days:
            year = (
                self.first_send.astimezone(zone_of(self.zone)).year
                if self.first_send is not None
                else None
            )
            days = ", ".join(
                day_text(d.isoformat(), with_year=d.year != year) for d in self.follow_up_days
            )
            parts.append(
                ngettext(
                    "follow-up on %(days)s",
                    "follow-ups on %(days)s",
                    len(self.follow_up_days),
                    days=days,
                )
            )
        elif self.follow_up_delays:
            parts.append(
                _("follow-up %(days)s days after the letter", days=self.follow_up_delays[0])
                if len(self.follow_up_delays) == 1
                else _(
                    "follow-ups %(days)s days after the letter",
                    days=", ".join(str(d) for d in self.follow_up_delays),
                )
            )
        # TRANSLATORS: between the parts of a schedule's sentence ("…, 09:00 UTC; follow-up …").
        return _("; ").join(parts)


def _first_send(schedule: Schedule, now: datetime) -> datetime | None:
    if schedule.kind == ScheduleKind.SEND_AT.value:
        return schedule.next_run_at
    if schedule.next_run_at is not None:
        return schedule.next_run_at
    rule = schedule.rule or {}
    try:
        return next_yearly(
            now, int(rule["month"]), int(rule["day"]), str(rule["time"]), schedule.timezone
        )
    except (KeyError, ValueError, ScheduleError):
        return None


def campaign_schedules(
    campaigns: Iterable[Campaign], *, now: datetime | None = None
) -> dict[int, CampaignSchedule]:
    """The schedule of each not-yet-launched campaign that has a send-at, a yearly rule or
    follow-ups (absent from the result: none of them)."""
    now = now or datetime.now(UTC)
    waiting = {c.id: c for c in campaigns if c.status in LAUNCHABLE}
    if not waiting:
        return {}
    found: dict[int, CampaignSchedule] = {}
    schedules = db.session.scalars(
        select(Schedule)
        .where(
            Schedule.campaign_id.in_(waiting),
            Schedule.is_enabled.is_(True),
            Schedule.kind.in_([ScheduleKind.SEND_AT.value, ScheduleKind.YEARLY_CAMPAIGN.value]),
        )
        .order_by(Schedule.id)
    )
    for schedule in schedules:
        assert schedule.campaign_id is not None
        first = _first_send(schedule, now)
        if first is None:
            continue
        current = found.get(schedule.campaign_id)
        if current is not None and current.first_send and current.first_send <= first:
            continue
        found[schedule.campaign_id] = CampaignSchedule(
            first_send=first,
            zone=schedule.timezone or "UTC",
            is_yearly=schedule.kind == ScheduleKind.YEARLY_CAMPAIGN.value,
        )
    delays: dict[int, list[int]] = defaultdict(list)
    for step in db.session.scalars(
        select(CampaignStep)
        .where(CampaignStep.campaign_id.in_(waiting))
        .order_by(CampaignStep.campaign_id, CampaignStep.position)
    ):
        delays[step.campaign_id].append(step.delay_days)
    for campaign_id, step_delays in delays.items():
        found.setdefault(campaign_id, CampaignSchedule()).follow_up_delays = step_delays
    _add_follow_up_days(found)
    return found


def _add_follow_up_days(found: dict[int, CampaignSchedule]) -> None:
    """The follow-ups' days as the calendar shows them (one calendar read for all)."""
    timed = {i: s for i, s in found.items() if s.first_send is not None and s.follow_up_delays}
    if not timed:
        return
    starts = [s.first_send for s in timed.values() if s.first_send is not None]
    start = min(starts).date()
    end = max(starts).date() + FOLLOW_UP_HORIZON
    for item in calendar_items(start, end, None):
        entry = timed.get(item.campaign_id) if item.campaign_id is not None else None
        if entry is None or item.kind != "follow-up":
            continue
        if len(entry.follow_up_days) < len(entry.follow_up_delays):
            entry.follow_up_days.append(item.on)


def campaign_schedule_text(campaign: Campaign) -> str:
    """The one sentence for `campaign`; "" when it is launched or nothing is scheduled."""
    found = campaign_schedules([campaign]).get(campaign.id)
    return found.text() if found is not None else ""
