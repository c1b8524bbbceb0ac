"""The scheduler's record read back: recent fires, skips and failures, and the trouble (skipped
or failed runs) nobody has acknowledged yet, for the runs page and the calendar's banner.

Issue 6 asks that a catch-up after downtime reports *in the app* what it skipped. The rows
are the tick's own `schedule_runs`; nothing here changes them. "Acknowledged" needs no
column: an editor's acknowledgement is an audit event holding the newest run id seen, so
the banner counts only the skipped or failed runs after it, for everyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import AuditEvent, Campaign, Schedule, ScheduleRun
from campaign.models.schedule import RunOutcome
from campaign.scheduling.stored_text import read
from campaign.scheduling.timezones import ScheduleError, local_label
from campaign.services.accounts.audit import record_event
from campaign.services.schedules.advocacy_calendar import schedule_titles

ACKNOWLEDGE_ACTION = "schedule_runs.acknowledge"
TROUBLE = (RunOutcome.SKIPPED.value, RunOutcome.FAILED.value)
OUTCOMES = tuple(outcome.value for outcome in RunOutcome)


@dataclass(frozen=True)
class RunRow:
    run: ScheduleRun
    schedule: Schedule
    campaign: Campaign | None
    due_local: str  # in the schedule's own zone, as its rule was written
    title: str  # the schedule's name in the reader's language
    detail: str  # what happened, in the reader's language

    @property
    def stands_out(self) -> bool:
        return self.run.outcome in TROUBLE


@dataclass(frozen=True)
class Trouble:
    """Skipped or failed runs nobody has acknowledged yet (for the calendar's banner)."""

    count: int
    since: datetime | None


def _acknowledged_through() -> int:
    """The newest run id an editor has acknowledged (0 when none has)."""
    event = db.session.scalar(
        select(AuditEvent)
        .where(AuditEvent.action == ACKNOWLEDGE_ACTION)
        .order_by(AuditEvent.id.desc())
        .limit(1)
    )
    return int((event.detail or {}).get("through_run_id", 0)) if event else 0


def unacknowledged_trouble() -> Trouble:
    """How many runs were skipped or failed since the last acknowledgement, and since when."""
    through = _acknowledged_through()
    count, since = db.session.execute(
        select(func.count(ScheduleRun.id), func.min(ScheduleRun.ran_at)).where(
            ScheduleRun.outcome.in_(TROUBLE), ScheduleRun.id > through
        )
    ).one()
    return Trouble(int(count or 0), since)


def acknowledge_trouble() -> Trouble:
    """Record that an editor has seen every run so far; return the trouble acknowledged."""
    newest = db.session.scalar(select(func.max(ScheduleRun.id))) or 0
    trouble = unacknowledged_trouble()
    record_event(
        ACKNOWLEDGE_ACTION,
        target_type="schedule_runs",
        detail={"through_run_id": int(newest), "skipped_or_failed": trouble.count},
    )
    return trouble


def _due_local(run: ScheduleRun, schedule: Schedule) -> str:
    try:
        return local_label(run.due_at, schedule.timezone)
    except ScheduleError:  # a zone since removed from the system's database
        return ""


def recent_runs(outcome: str, limit: int) -> list[RunRow]:
    """The latest `limit` runs by due time, newest first; only those of `outcome` if given."""
    query = (
        select(ScheduleRun, Schedule, Campaign)
        .join(Schedule, Schedule.id == ScheduleRun.schedule_id)
        .outerjoin(
            Campaign, Campaign.id == func.coalesce(ScheduleRun.campaign_id, Schedule.campaign_id)
        )
        .order_by(ScheduleRun.due_at.desc(), ScheduleRun.id.desc())
        .limit(limit)
    )
    if outcome:
        query = query.where(ScheduleRun.outcome == outcome)
    found = db.session.execute(query).all()
    titles = schedule_titles([schedule for _run, schedule, _campaign in found])
    return [
        RunRow(
            run,
            schedule,
            campaign,
            _due_local(run, schedule),
            titles[schedule.id],
            read(run.detail),
        )
        for run, schedule, campaign in found
    ]
