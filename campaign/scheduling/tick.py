"""The tick: fire every schedule that is due, each fire claimed once, late ones skipped and said so.

A fire is claimed by inserting its `schedule_runs` row, unique on (schedule, due time):
a second tick, here or on another machine, finds the row taken and does nothing. The
claim, the action's writes and the schedule's advance commit together, one fire at a time,
so a crash loses at most the fire in hand, which the next tick then runs.

What each kind of schedule does is not known here: the app's `Registry`, built in one
place (campaign/scheduling/registry.py) and installed by create_app, says it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, current_app
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from campaign.extensions import db
from campaign.models.schedule import RunOutcome, Schedule, ScheduleRun
from campaign.scheduling.stored_text import Text, dump, lazy_ngettext
from campaign.scheduling.timezones import local_label
from campaign.services.backups.hold import sending_is_held

log = logging.getLogger(__name__)

# What a kind of schedule does when it fires: (schedule, due_at, now) -> (detail, campaign id).
# The detail is a lazy string (stored_text) so that staff read it in their language; plain
# text is kept as it is.
Action = Callable[[Schedule, datetime, datetime], tuple[Text, int | None]]
# When a kind fires next after `due_at`.
NextRun = Callable[[Schedule, datetime], datetime | None]
# Called when a fire did not happen: skipped as too late, or broken by an unexpected error.
OnMissed = Callable[[Schedule, datetime, Text], None]
# Work after the tick's fires, given its `now` and the commit.
AfterTick = Callable[[datetime, Callable[[], None]], object]
# Where create_app keeps the registry in app.extensions.
EXTENSION = "campaign.tick"


@dataclass(frozen=True)
class Kind:
    """What the tick does with one kind of schedule."""

    fire: Action
    # When it fires next after `due_at`; None: it fires once.
    next_run: NextRun | None = None
    # Undo what the schedule promised (a "scheduled" status, say) and say why, so nothing is
    # left promising a send that won't come.
    on_missed: OnMissed | None = None
    # Fires however late it is: past the grace period a follow-up still serves (the people
    # are still waiting for it), a launch timed for a summit does not.
    late_ok: bool = False


@dataclass(frozen=True)
class Registry:
    """Every kind of schedule the tick fires, by ScheduleKind value, and the work that must
    wait until the fires are committed (run at the end of every tick: e-mail cannot be
    rolled back, so it is sent only for what the database kept)."""

    kinds: Mapping[str, Kind]
    after_tick: tuple[AfterTick, ...] = ()


def install(app: Flask, registry: Registry) -> None:
    """Make `registry` the one the tick reads in `app` (create_app calls it)."""
    app.extensions[EXTENSION] = registry


def registry() -> Registry:
    """The current app's registry."""
    found: Registry = current_app.extensions[EXTENSION]
    return found


class ActionFailed(Exception):
    """The action could not do its work; its writes so far stand (it left them consistent)."""

    def __init__(self, detail: Text, campaign_id: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.campaign_id = campaign_id


@dataclass(frozen=True)
class TickLine:
    schedule_id: int
    kind: str
    name: str
    due_at: datetime
    outcome: str
    detail: str  # in the words of whoever runs the tick (English from the CLI)
    campaign_id: int | None


@dataclass
class TickReport:
    lines: list[TickLine] = field(default_factory=list)

    def count(self, outcome: RunOutcome) -> int:
        return sum(1 for line in self.lines if line.outcome == outcome.value)

    @property
    def summary(self) -> str:
        parts = [
            gettext("%(num)d fired", num=self.count(RunOutcome.FIRED)),
            gettext("%(num)d skipped", num=self.count(RunOutcome.SKIPPED)),
        ]
        if self.count(RunOutcome.FAILED):
            parts.append(gettext("%(num)d failed", num=self.count(RunOutcome.FAILED)))
        return ", ".join(parts)


_runs: Table = ScheduleRun.__table__
_CLAIM: dict[str, Insert] = {
    name: dialect.insert(_runs)
    .on_conflict_do_nothing(index_elements=["schedule_id", "due_at"])
    .returning(_runs.c.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def grace() -> timedelta:
    return timedelta(hours=float(current_app.config["SCHEDULER_GRACE_HOURS"]))


def lateness(due_at: datetime, now: datetime) -> Text:
    """How late a fire is, in words ("3 days late", "7 hours late"), read when shown."""
    late = now - due_at
    if late >= timedelta(days=1):
        return lazy_ngettext("%(num)d day late", "%(num)d days late", late.days)
    hours = int(late.total_seconds() // 3600)
    return lazy_ngettext("%(num)d hour late", "%(num)d hours late", hours)


def _claim(schedule_id: int, due_at: datetime) -> int | None:
    statement = _CLAIM[db.session.get_bind().dialect.name]
    values: dict[str, Any] = {
        "schedule_id": schedule_id,
        "due_at": due_at,
        "ran_at": datetime.now(UTC),
        "outcome": RunOutcome.FAILED.value,
        "detail": "interrupted",
    }
    return db.session.execute(statement, values).scalar()


def _run(
    kind: Kind, schedule: Schedule, due_at: datetime, now: datetime
) -> tuple[str, Text, int | None]:
    if due_at < now - grace() and not kind.late_ok:
        detail = _l(
            "due %(when)s, %(late)s: not sent",
            when=local_label(due_at, schedule.timezone),
            late=lateness(due_at, now),
        )
        _not_fired(kind, schedule, due_at, detail)
        return RunOutcome.SKIPPED.value, detail, None
    try:
        with db.session.begin_nested():
            try:
                detail, campaign_id = kind.fire(schedule, due_at, now)
            except ActionFailed as failure:
                return RunOutcome.FAILED.value, failure.detail, failure.campaign_id
    except Exception as error:  # one broken schedule must not stop the others
        log.exception("schedule %s failed at %s", schedule.id, due_at)
        # The action's writes were rolled back with its savepoint; what it promised was not.
        _not_fired(
            kind,
            schedule,
            due_at,
            _l("an unexpected error stopped it (%(error)s)", error=str(error)),
        )
        return RunOutcome.FAILED.value, _l("error: %(error)s", error=str(error)), None
    return RunOutcome.FIRED.value, detail, campaign_id


def _not_fired(kind: Kind, schedule: Schedule, due_at: datetime, detail: Text) -> None:
    missed = kind.on_missed
    if missed is None:
        return
    try:
        with db.session.begin_nested():
            missed(schedule, due_at, detail)
    except Exception:  # the run row still records the failure
        log.exception("schedule %s: undoing the missed fire at %s failed", schedule.id, due_at)


def _fire_one(kind: Kind, schedule: Schedule, now: datetime) -> TickLine | None:
    """Claim and run the schedule's next due fire; None if another tick holds it."""
    due_at = schedule.next_run_at
    assert due_at is not None
    run_id = _claim(schedule.id, due_at)
    if run_id is None:
        return None
    outcome, detail, campaign_id = _run(kind, schedule, due_at, now)
    db.session.execute(
        update(_runs)
        .where(_runs.c.id == run_id)
        .values(outcome=outcome, detail=dump(detail), campaign_id=campaign_id)
    )
    if kind.next_run is not None:
        schedule.next_run_at = kind.next_run(schedule, due_at)
    elif schedule.next_run_at is not None and schedule.next_run_at <= due_at:
        # Fired once, unless the action itself set a later run (a follow-up's next sweep).
        schedule.next_run_at = None
    if outcome == RunOutcome.FIRED.value:
        schedule.last_fired_at = now
    db.session.flush()
    return TickLine(
        schedule.id, schedule.kind, schedule.name, due_at, outcome, str(detail), campaign_id
    )


def tick(now: datetime, *, commit: Callable[[], None] | None = None) -> TickReport:
    """Fire what is due at `now`, committing after each fire; report every fire and skip."""
    kinds = registry().kinds
    commit = commit or db.session.commit
    report = TickReport()
    if sending_is_held():
        # A copy restored from a backup fires nothing until an admin confirms (0087): its
        # schedules are last week's, and the original may still be running them.
        log.info("the tick fires nothing: the restore hold stands")
        return report
    due_ids = list(
        db.session.scalars(
            select(Schedule.id)
            .where(
                Schedule.is_enabled.is_(True),
                Schedule.next_run_at <= now,
                Schedule.kind.in_(list(kinds)),
            )
            .order_by(Schedule.next_run_at, Schedule.id)
        )
    )
    for schedule_id in due_ids:
        # A yearly schedule down for years catches up one year (one run row) at a time.
        while True:
            schedule = db.session.get(Schedule, schedule_id, populate_existing=True)
            if schedule is None or not schedule.is_enabled:
                break
            if schedule.next_run_at is None or schedule.next_run_at > now:
                break
            line = _fire_one(kinds[schedule.kind], schedule, now)
            commit()
            if line is None:
                break  # another tick has this fire, and will carry on after it
            report.lines.append(line)
    for after in registry().after_tick:
        try:
            after(now, commit)
        except Exception:  # the fires stand; the hook tries again at the next tick
            log.exception("after the tick: %s failed", getattr(after, "__name__", after))
            db.session.rollback()
    return report
