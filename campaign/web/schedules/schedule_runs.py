"""The scheduler's record: every fire, skip and failure, newest first, for staff to read.

Issue 6 asks that a catch-up after downtime reports *in the app* what it skipped. The
rows are the tick's own `schedule_runs`; this page only reads them. "Acknowledged" needs
no column: an editor's acknowledgement is an audit event holding the newest run id seen,
so the calendar's banner counts only the skipped or failed runs after it, for everyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.labels import choices
from campaign.models import AuditEvent, Campaign, Role, Schedule, ScheduleRun
from campaign.models.schedule import RunOutcome
from campaign.scheduling.stored_text import read
from campaign.scheduling.timezones import ScheduleError, local_label
from campaign.services.accounts.audit import record_event
from campaign.services.schedules.advocacy_calendar import schedule_titles
from campaign.web.access import allow

bp = Blueprint("schedule_runs", __name__)

ACKNOWLEDGE_ACTION = "schedule_runs.acknowledge"
PAGE_SIZE = 200
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
    through = _acknowledged_through()
    count, since = db.session.execute(
        select(func.count(ScheduleRun.id), func.min(ScheduleRun.ran_at)).where(
            ScheduleRun.outcome.in_(TROUBLE), ScheduleRun.id > through
        )
    ).one()
    return Trouble(int(count or 0), since)


def _due_local(run: ScheduleRun, schedule: Schedule) -> str:
    try:
        return local_label(run.due_at, schedule.timezone)
    except ScheduleError:  # a zone since removed from the system's database
        return ""


def _rows(outcome: str) -> list[RunRow]:
    query = (
        select(ScheduleRun, Schedule, Campaign)
        .join(Schedule, Schedule.id == ScheduleRun.schedule_id)
        .outerjoin(
            Campaign, Campaign.id == func.coalesce(ScheduleRun.campaign_id, Schedule.campaign_id)
        )
        .order_by(ScheduleRun.due_at.desc(), ScheduleRun.id.desc())
        .limit(PAGE_SIZE)
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


@bp.route("/schedules/runs")
@allow(Role.VIEWER)
def index() -> Any:
    outcome = request.args.get("outcome", "")
    if outcome not in OUTCOMES:
        outcome = ""
    return render_template(
        "schedule_runs/index.html",
        rows=_rows(outcome),
        outcome=outcome,
        outcome_words=dict(choices("run_outcome")),
        trouble=unacknowledged_trouble(),
        may_acknowledge=bool(current_user.role_enum.includes(Role.EDITOR)),
        page_size=PAGE_SIZE,
    )


@bp.route("/schedules/runs/acknowledge", methods=["POST"])
@allow(Role.EDITOR)
def acknowledge() -> Any:
    newest = db.session.scalar(select(func.max(ScheduleRun.id))) or 0
    trouble = unacknowledged_trouble()
    record_event(
        ACKNOWLEDGE_ACTION,
        target_type="schedule_runs",
        detail={"through_run_id": int(newest), "skipped_or_failed": trouble.count},
    )
    db.session.commit()
    flash(
        ngettext(
            "Acknowledged %(num)d skipped or failed fire.",
            "Acknowledged %(num)d skipped or failed fires.",
            trouble.count,
        ),
        "success",
    )
    return redirect(url_for("schedule_runs.index"))
