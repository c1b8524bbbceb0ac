"""Retention: how long each kind of stored data is kept, and the daily removal of what is older.

An administrator sets a period in days per kind (0 keeps that kind forever); the periods are
an installation setting (one JSON row), so they change without a restart. The scheduler's
system schedule of kind "retention" (made by the tick's after-hook when missing, never by a
migration) applies them once a day, in batches, and its run row says what it removed in the
reader's language. Decision 0088 gives the defaults and what each kind keeps regardless.

The audit log is append-only for the rest of the application (campaign/models/audit.py
refuses ORM updates and deletes); old entries are removed here only, with a Core DELETE,
and the removal itself is recorded as one new entry.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    ColumnElement,
    and_,
    delete,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from campaign import clock
from campaign.extensions import db
from campaign.models import (
    AuditEvent,
    Case,
    ContactImport,
    Delivery,
    InboundMessage,
    InboundNote,
    InstallationSetting,
    ReplyAnswer,
    Schedule,
    ScheduleRun,
    TrackingEvent,
    User,
    campaign_cases,
)
from campaign.models.calendar import CaseStatus
from campaign.models.contact_import import ImportStatus
from campaign.models.delivery import FINAL
from campaign.models.inbound import InboundKind
from campaign.models.reply_answer import AnswerStatus
from campaign.models.schedule import ScheduleKind
from campaign.scheduling.recurrence import occurrence_in, parse_time
from campaign.scheduling.stored_text import Text, joined, labelled, lazy_ngettext
from campaign.scheduling.timezones import zone_of
from campaign.services.accounts.audit import record_event

log = logging.getLogger(__name__)


class RetentionKind(enum.StrEnum):
    INBOUND = "inbound"  # received mail: replies, auto-replies, bounces, unmatched
    TRACKING = "tracking"  # open and click events
    AUDIT = "audit"  # audit log entries
    EVIDENCE = "evidence"  # the stored copy of each message sent (the ledger row stays)
    IMPORT_FILES = "import_files"  # rejects files of imports and uploads left behind


# Days kept by default (decision 0088, docs/privacy.md "How long we keep things").
DEFAULT_DAYS: dict[str, int] = {
    RetentionKind.INBOUND.value: 730,
    RetentionKind.TRACKING.value: 365,
    RetentionKind.AUDIT.value: 730,
    RetentionKind.EVIDENCE.value: 730,
    RetentionKind.IMPORT_FILES.value: 7,
}
# The shortest period an admin may set (0 aside): the audit log must outlive what it
# records, or an admin could set it to a day and erase the trace of what they just did.
# Received mail and the copies of sent letters are evidence in a dispute (what an official
# answered, what exactly we sent): at least 30 days, so a slip of the keyboard ("1") cannot
# wipe last month's record overnight (decision 0088).
MINIMUM_DAYS: dict[str, int] = {
    RetentionKind.AUDIT.value: 90,
    RetentionKind.INBOUND.value: 30,
    RetentionKind.EVIDENCE.value: 30,
}
MAXIMUM_DAYS = 3650  # ten years; longer is "keep forever" (0)
KINDS: tuple[str, ...] = tuple(kind.value for kind in RetentionKind)

SETTING = "retention_periods"
# Rows removed per statement, and at most per kind and run: a backlog (a first run on a
# years-old installation) is worked off over a few nights instead of one long transaction.
BATCH = 1000
MAX_PER_RUN = 100_000
# Cases still pursued: the replies about them are kept past the period (officials'
# answers are the record of the advocacy while it goes on). Only a release or a
# deportation closes a case here: a death (often in custody) opens years of pursuit for
# accountability, and "other" says nothing either way, so it keeps (decision 0088).
OPEN_CASE_STATUSES = (
    CaseStatus.DETAINED.value,
    CaseStatus.CHARGED.value,
    CaseStatus.SENTENCED.value,
    CaseStatus.MISSING.value,
    CaseStatus.DECEASED.value,
    CaseStatus.OTHER.value,
)
# Replies nobody has handled yet are kept whatever their age: someone still has to read them.
WAITING_KINDS = (InboundKind.REPLY.value, InboundKind.UNMATCHED.value)
# Bounces and auto-replies matched to a letter are counted on the campaign's dashboard (soft
# bounces and auto-replies only there): past the period their content goes, a stub stays.
STUB_KINDS = (InboundKind.BOUNCE.value, InboundKind.AUTO_REPLY.value)
# Answers whose sending is not settled: the message row is their record (it may have gone).
UNSETTLED_ANSWERS = (AnswerStatus.SENDING.value, AnswerStatus.IN_DOUBT.value)
# Audit entries that are state as well as history (read back by the application): the
# newest of each group per target is kept; the DKIM key history (selectors an account ever
# published, checked against reuse) is kept whole. None names a person.
KEPT_NEWEST_ACTIONS: tuple[tuple[str, ...], ...] = (
    ("schedule_runs.acknowledge",),
    ("mailbox.enable", "mailbox.disable"),
)
KEPT_ACTIONS = ("smtp_account.dkim_key", "smtp_account.dkim_key_remove")
AUDIT_ACTION = "privacy.retention"
SETTINGS_AUDIT_ACTION = "privacy.retention_periods"

# When the daily run fires, in the organisation's time zone (CAMPAIGN_TIMEZONE).
RUN_AT = "03:30"


class RetentionError(ValueError):
    """The periods were refused; `errors` gives each field's problem in words."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


# --- the periods ------------------------------------------------------------------------------


def retention_periods() -> dict[str, int]:
    """Each kind's period in days (0: kept forever): the admin's setting, else the default."""
    periods = dict(DEFAULT_DAYS)
    row = db.session.get(InstallationSetting, SETTING)
    if row is not None and row.value:
        try:
            stored = json.loads(row.value)
        except ValueError:
            stored = {}
        if isinstance(stored, dict):
            for kind in KINDS:
                value = stored.get(kind)
                if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    periods[kind] = value
    return periods


def kept_days(kind: RetentionKind | str) -> int:
    """The period of one kind in days (0: kept forever)."""
    return retention_periods()[str(kind)]


def minimum_days(kind: str) -> int:
    return MINIMUM_DAYS.get(kind, 1)


def check_periods(form: Mapping[str, str]) -> dict[str, int]:
    """The periods read from a form's text; RetentionError with each field's problem."""
    from campaign.labels import label

    periods: dict[str, int] = {}
    errors: dict[str, str] = {}
    for kind in KINDS:
        raw = (form.get(kind) or "").strip()
        name = label(kind, "retention_kind")
        if not raw:
            errors[kind] = _("%(kind)s: enter a number of days (0 keeps it forever).", kind=name)
            continue
        if not raw.isascii() or not raw.isdigit():
            errors[kind] = _(
                "%(kind)s: “%(value)s” is not a whole number of days (0 keeps it forever).",
                kind=name,
                value=raw[:20],
            )
            continue
        days = int(raw)
        if days and not minimum_days(kind) <= days <= MAXIMUM_DAYS:
            errors[kind] = _(
                "%(kind)s: %(days)d days is outside %(low)d to %(high)d (or 0 to keep it forever).",
                kind=name,
                days=days,
                low=minimum_days(kind),
                high=MAXIMUM_DAYS,
            )
            continue
        periods[kind] = days
    if errors:
        raise RetentionError(errors)
    return periods


def save_periods(form: Mapping[str, str], actor: User | None) -> dict[str, int]:
    """Check and store the periods from a form (flushed, audited); RetentionError if refused."""
    periods = check_periods(form)
    before = retention_periods()
    changed = {
        kind: [before[kind], periods[kind]] for kind in KINDS if before[kind] != periods[kind]
    }
    if not changed:
        return periods
    row = db.session.get(InstallationSetting, SETTING)
    if row is None:
        row = InstallationSetting(name=SETTING)
        db.session.add(row)
    row.value = json.dumps(periods, sort_keys=True)
    row.updated_by_id = actor.id if actor is not None else None
    record_event(
        SETTINGS_AUDIT_ACTION,
        target_type="installation_setting",
        target_id=SETTING,
        actor=actor,
        detail={"changed": changed},
    )
    db.session.flush()
    return periods


# --- what is removed --------------------------------------------------------------------------


@dataclass
class RetentionReport:
    """What one run removed, per kind; `unfinished`: kinds that hit the per-run cap;
    `failed`: kinds that could not be applied this run (their error's name; nothing of that
    kind was changed, the others were)."""

    removed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    unfinished: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.removed.values())


def _remove_rows(
    table: Any, id_column: Any, condition: ColumnElement[bool], *, clear: dict[str, Any] | None
) -> tuple[int, bool]:
    """Delete (or, with `clear`, update) the rows meeting `condition` in id order, BATCH at a
    time, at most MAX_PER_RUN. Returns (rows, whether some are left for the next run).

    The write re-checks `condition` (a reply marked unhandled between the read and the write
    stays) and the count is of the rows written, not of the ids read."""
    done = 0
    read = 0
    after = 0
    while read < MAX_PER_RUN:
        # From the last id on: rows already removed (or cleared) are not read again, which
        # PostgreSQL would otherwise do until a vacuum (dead rows stay in the index).
        ids = list(
            db.session.scalars(
                select(id_column)
                .where(condition, id_column > after)
                .order_by(id_column)
                .limit(min(BATCH, MAX_PER_RUN - read))
            )
        )
        if not ids:
            return done, False
        chosen = and_(id_column.in_(ids), condition)
        if clear is None:
            result = db.session.execute(delete(table).where(chosen))
        else:
            result = db.session.execute(update(table).where(chosen).values(**clear))
        done += max(int(getattr(result, "rowcount", 0) or 0), 0)
        read += len(ids)
        after = ids[-1]
    left = (
        db.session.scalar(select(id_column).where(condition, id_column > after).limit(1))
        is not None
    )
    return done, left


def _inbound_condition(cutoff: datetime) -> ColumnElement[bool]:
    """Received mail past the period that nothing still needs (the stubbing of bounces and
    auto-replies narrows it further)."""
    about_open_case = exists(
        select(1)
        .select_from(Delivery)
        .join(campaign_cases, campaign_cases.c.campaign_id == Delivery.campaign_id)
        .join(Case, Case.id == campaign_cases.c.case_id)
        .where(Delivery.id == InboundMessage.delivery_id, Case.status.in_(OPEN_CASE_STATUSES))
    )
    waiting = and_(InboundMessage.kind.in_(WAITING_KINDS), InboundMessage.handled_at.is_(None))
    # Its age is that of the newest thing written to it: an answer sent yesterday to a reply
    # of two years ago keeps both, and an answer whose sending is unsettled (it may have
    # gone out) is never removed with its reply.
    recent_answer = exists(
        select(1).where(
            ReplyAnswer.inbound_id == InboundMessage.id,
            or_(
                ReplyAnswer.status.in_(UNSETTLED_ANSWERS),
                func.coalesce(ReplyAnswer.sent_at, ReplyAnswer.created_at) >= cutoff,
            ),
        )
    )
    recent_note = exists(
        select(1).where(
            InboundNote.inbound_id == InboundMessage.id, InboundNote.created_at >= cutoff
        )
    )
    return and_(
        InboundMessage.created_at < cutoff,
        not_(waiting),
        not_(about_open_case),
        not_(recent_answer),
        not_(recent_note),
    )


def _counted_on_dashboard() -> ColumnElement[bool]:
    return and_(InboundMessage.kind.in_(STUB_KINDS), InboundMessage.delivery_id.is_not(None))


def _remove_inbound(cutoff: datetime) -> tuple[int, bool]:
    """Replies and unmatched mail go (their notes and answers with them, ON DELETE CASCADE;
    the ledger's replied_at stays, so reply counts hold). Bounces and auto-replies matched to
    a letter lose their content and keep a stub (kind, bounce kind, letter, dates), so the
    campaign's funnel (soft bounces, auto-replies) does not change."""
    table = InboundMessage.__table__
    condition = _inbound_condition(cutoff)
    deleted, deleted_left = _remove_rows(
        table, table.c.id, and_(condition, not_(_counted_on_dashboard())), clear=None
    )
    has_content = or_(
        table.c.subject != "",
        table.c.text != "",
        table.c.html != "",
        table.c.from_address != "",
        table.c.message_id != "",
        table.c.raw_blob.is_not(None),
    )
    stubbed, stubbed_left = _remove_rows(
        table,
        table.c.id,
        # The cheap test first: stubs left by earlier nights are passed over without the
        # subqueries (SQLite evaluates the terms in order).
        and_(has_content, _counted_on_dashboard(), condition),
        clear={
            "subject": "",
            "text": "",
            "html": "",
            "from_address": "",
            "message_id": "",
            "in_reply_to": "",
            "raw_blob": None,
            "attachments": [],
            "bounce_recipients": [],
            "problems": [],
        },
    )
    return deleted + stubbed, deleted_left or stubbed_left


def _remove_tracking(cutoff: datetime) -> tuple[int, bool]:
    """Past the period an open or click loses who and how (network address, browser, time of
    day: the date stays); the event itself stays, so every count on the campaign's page
    (opens, clicks, unique clicks, clicks per link) holds (decision 0088)."""
    table = TrackingEvent.__table__
    condition = and_(
        table.c.occurred_at < cutoff, or_(table.c.ip_prefix != "", table.c.user_agent != "")
    )
    return _remove_rows(
        table,
        table.c.id,
        condition,
        clear={"ip_prefix": "", "user_agent": "", "occurred_at": _day_of(table.c.occurred_at)},
    )


def _day_of(column: Any) -> Any:
    """SQL for the UTC midnight starting the day of a UTCDateTime `column`, as each engine
    stores it (PostgreSQL: timestamptz; SQLite: "YYYY-MM-DD HH:MM:SS.ffffff" in UTC)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.timezone("UTC", func.date_trunc("day", func.timezone("UTC", column)))
    return func.substr(column, 1, 10).concat(" 00:00:00.000000")


def _kept_audit_ids() -> list[int]:
    kept: list[int] = []
    for actions in KEPT_NEWEST_ACTIONS:
        kept.extend(
            db.session.scalars(
                select(func.max(AuditEvent.id))
                .where(AuditEvent.action.in_(actions))
                .group_by(AuditEvent.target_type, AuditEvent.target_id)
            )
        )
    return kept


def _remove_audit(cutoff: datetime) -> tuple[int, bool]:
    table = AuditEvent.__table__
    condition = and_(table.c.at < cutoff, table.c.action.not_in(KEPT_ACTIONS))
    kept = _kept_audit_ids()
    if kept:
        condition = and_(condition, table.c.id.not_in(kept))
    # A Core DELETE: the ORM's append-only guard (before_delete) is for the rest of the app.
    return _remove_rows(table, table.c.id, condition, clear=None)


def _remove_evidence(cutoff: datetime) -> tuple[int, bool]:
    """The stored copies of sent letters and answers; their SHA-256 and the rows stay."""
    deliveries = Delivery.__table__
    # A campaign with a follow-up still to come reads its first letters' subjects from them:
    # one still scheduled, or follow-up letters already in the ledger and not yet sent. Read
    # once per run as campaign ids (few): a correlated EXISTS per candidate row took minutes
    # on 200,000 letters of one campaign, and kept each batch's write from using the key.
    scheduled = select(Schedule.campaign_id).where(
        Schedule.campaign_id.is_not(None),
        Schedule.kind == ScheduleKind.FOLLOW_UP.value,
        Schedule.is_enabled.is_(True),
        Schedule.next_run_at.is_not(None),
    )
    unsent = select(deliveries.c.campaign_id).where(
        deliveries.c.step > 0,
        deliveries.c.status.not_in([status.value for status in FINAL]),
    )
    needed = sorted(
        {
            int(campaign_id)
            for campaign_id in db.session.scalars(scheduled.union(unsent))
            if campaign_id is not None
        }
    )
    follow_up_needs = deliveries.c.campaign_id.in_(needed) if needed else false()
    letters, letters_left = _remove_rows(
        deliveries,
        deliveries.c.id,
        and_(
            deliveries.c.message_blob.is_not(None),
            deliveries.c.status.in_([status.value for status in FINAL]),
            func.coalesce(deliveries.c.sent_at, deliveries.c.updated_at) < cutoff,
            not_(follow_up_needs),
        ),
        # updated_at keeps its meaning (the last change of status), not this clean-up.
        clear={"message_blob": None, "updated_at": deliveries.c.updated_at},
    )
    answers = ReplyAnswer.__table__
    replies, replies_left = _remove_rows(
        answers,
        answers.c.id,
        and_(
            answers.c.message_blob.is_not(None),
            answers.c.status.in_([AnswerStatus.SENT.value, AnswerStatus.FAILED.value]),
            func.coalesce(answers.c.sent_at, answers.c.created_at) < cutoff,
        ),
        clear={"message_blob": None},
    )
    return letters + replies, letters_left or replies_left


def _uploads_folder() -> Path:
    return Path(current_app.instance_path) / "uploads"


def _remove_import_files(cutoff: datetime) -> tuple[int, bool]:
    """Rejects files past the period, uploads of ended imports left behind, and any other
    file in the uploads folder older than the period that no running import needs."""
    removed = 0
    ended = (ImportStatus.FINISHED.value, ImportStatus.FAILED.value)
    expired = select(ContactImport).where(
        ContactImport.rejects_path != "", ContactImport.finished_at < cutoff
    )
    for record in db.session.scalars(expired):
        path = Path(record.rejects_path)
        try:
            if path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
        except OSError:  # not ours to delete (yet): kept on the record, the next run retries
            log.warning("retention: a rejects file could not be removed (import %s)", record.id)
            continue
        record.rejects_path = ""
    in_use: set[Path] = set()
    for record in db.session.scalars(select(ContactImport)):
        if record.status not in ended:
            in_use.add(Path(record.stored_path).resolve())
        if record.rejects_path:
            in_use.add(Path(record.rejects_path).resolve())
    folder = _uploads_folder()
    if folder.is_dir():
        limit = cutoff.timestamp()
        for path in folder.iterdir():
            try:
                if not path.is_file() or path.resolve() in in_use:
                    continue
                if path.stat().st_mtime < limit:
                    path.unlink()
                    removed += 1
            except OSError:  # gone meanwhile, or not ours to delete: the next run sees it
                continue
    db.session.flush()
    return removed, False


_REMOVERS: dict[str, Callable[[datetime], tuple[int, bool]]] = {
    RetentionKind.INBOUND.value: _remove_inbound,
    RetentionKind.TRACKING.value: _remove_tracking,
    RetentionKind.AUDIT.value: _remove_audit,
    RetentionKind.EVIDENCE.value: _remove_evidence,
    RetentionKind.IMPORT_FILES.value: _remove_import_files,
}


def apply_retention(now: datetime) -> RetentionReport:
    """Remove what is older than each kind's period at `now`; flush. Nothing newer is touched.

    Each kind in its own savepoint: one that fails (a database error, say) is undone and
    named in the report; the others are applied."""
    periods = retention_periods()
    report = RetentionReport()
    for kind in KINDS:
        days = periods[kind]
        if days == 0:
            continue
        try:
            with db.session.begin_nested():
                removed, left = _REMOVERS[kind](now - timedelta(days=days))
        except Exception as error:  # one kind's failure must not stop the others
            log.exception("retention of %s failed", kind)
            report.failed[kind] = type(error).__name__
            continue
        report.removed[kind] = removed
        if left:
            report.unfinished.add(kind)
    if report.total:
        # One entry says what went, the audit entries removed included (written after the
        # removal, so it is never itself among them).
        record_event(
            AUDIT_ACTION,
            target_type="retention",
            detail={
                "removed": {kind: count for kind, count in report.removed.items() if count},
                "failed": sorted(report.failed),
                "periods": {kind: periods[kind] for kind in KINDS},
            },
        )
    db.session.flush()
    return report


def _counted(kind: str, count: int) -> Text:
    if kind == RetentionKind.INBOUND.value:
        return lazy_ngettext("%(num)d received message", "%(num)d received messages", count)
    if kind == RetentionKind.TRACKING.value:
        return lazy_ngettext(
            "the network address, browser and time of day of %(num)d tracking event",
            "the network address, browser and time of day of %(num)d tracking events",
            count,
        )
    if kind == RetentionKind.AUDIT.value:
        return lazy_ngettext("%(num)d audit entry", "%(num)d audit entries", count)
    if kind == RetentionKind.EVIDENCE.value:
        return lazy_ngettext(
            "the stored copy of %(num)d sent message",
            "the stored copies of %(num)d sent messages",
            count,
        )
    return lazy_ngettext("%(num)d import file", "%(num)d import files", count)


def report_text(report: RetentionReport) -> Text:
    """What a run removed, in the reader's language when read ("Removed 12 received messages,
    340 tracking events"); kinds that hit the per-run cap are named as carrying on."""
    parts = [_counted(kind, count) for kind, count in report.removed.items() if count]
    if not parts:
        text: Text = _l("Nothing was older than its retention period.")
    else:
        text = _l("Removed %(what)s.", what=joined(", ", parts))
    if report.unfinished:
        text = joined(
            " ",
            [text, _l("More is due for removal; the next daily run carries on.")],
        )
    for kind, error in sorted(report.failed.items()):
        text = joined(
            " ",
            [
                text,
                _l(
                    "%(kind)s could not be applied (%(error)s): nothing of it was removed; "
                    "the next daily run tries again.",
                    kind=labelled(kind, "retention_kind"),
                    error=error,
                ),
            ],
        )
    return text


# --- the daily system schedule ----------------------------------------------------------------


def next_daily(after: datetime, at: str, zone: str) -> datetime:
    """The first `at` (local "HH:MM" in `zone`) strictly after `after`, in UTC."""
    at_time: time = parse_time(at)
    today: date = after.astimezone(zone_of(zone)).date()
    for offset in range(-1, 3):
        day = today + timedelta(days=offset)
        candidate = occurrence_in(day.year, day.month, day.day, at_time, zone)
        if candidate > after:
            return candidate
    raise AssertionError("a daily rule fires every day")  # pragma: no cover


def next_daily_run(schedule: Schedule, due_at: datetime) -> datetime:
    """A daily system schedule's next run: after its due time and after now, so that after
    days of downtime it runs once, not once for every day missed."""
    after = max(due_at, clock.now())
    return next_daily(after, str((schedule.rule or {}).get("time", RUN_AT)), schedule.timezone)


def _claim(name: str) -> bool:
    """Insert the installation setting `name` unless it exists (one statement, no race: of
    two ticks at once, one inserts, the other waits for it and inserts nothing)."""
    table = InstallationSetting.__table__
    make = (
        postgresql.insert if db.session.get_bind().dialect.name == "postgresql" else sqlite.insert
    )
    result = db.session.execute(
        make(table)
        .values(name=name, value="", updated_at=clock.now())
        .on_conflict_do_nothing(index_elements=[table.c.name])
        .returning(table.c.name)
    )
    return result.first() is not None


def system_schedule(kind: str) -> Schedule | None:
    return db.session.scalar(
        select(Schedule).where(Schedule.kind == kind).order_by(Schedule.id).limit(1)
    )


def ensure_daily_schedule(kind: str, name: str, at: str, now: datetime) -> Schedule | None:
    """The system schedule of `kind` (one per installation), made when missing, re-armed when
    it has no next run, moved to CAMPAIGN_TIMEZONE when that changed; flushed. None when
    another tick is making it at this moment (the next tick finds it).

    Making it is claimed first (the installation setting "system_schedule:<kind>", inserted
    on no conflict): two overlapping ticks never make two schedules, which would queue two
    backups a night."""
    zone = str(current_app.config["TIMEZONE"]) or "UTC"
    schedule = system_schedule(kind)
    if schedule is None:
        claim = f"system_schedule:{kind}"
        if not _claim(claim):
            schedule = system_schedule(kind)  # made (and committed) by the claim's holder
            if schedule is None:
                row = db.session.get(InstallationSetting, claim)
                made = row.value if row is not None else ""
                if not made:
                    return None  # being made by another tick right now
                # The schedule it made was deleted since: take the claim over, once.
                taken = db.session.execute(
                    update(InstallationSetting)
                    .where(InstallationSetting.name == claim, InstallationSetting.value == made)
                    .values(value="")
                    .execution_options(synchronize_session=False)
                )
                if int(getattr(taken, "rowcount", 0) or 0) != 1:
                    return None
        if schedule is None:
            schedule = Schedule(kind=kind, name=name, timezone=zone, rule={"time": at})
            db.session.add(schedule)
            db.session.flush()
            db.session.execute(
                update(InstallationSetting)
                .where(InstallationSetting.name == claim)
                .values(value=str(schedule.id))
                .execution_options(synchronize_session=False)
            )
    if schedule.timezone != zone:
        # The organisation moved (CAMPAIGN_TIMEZONE changed): the daily run follows it.
        schedule.timezone = zone
        schedule.next_run_at = None
    if schedule.next_run_at is None:
        schedule.next_run_at = next_daily(
            now, str((schedule.rule or {}).get("time", at)), schedule.timezone or zone
        )
    db.session.flush()
    return schedule


def follows_zone(schedule: Schedule) -> bool:
    """Whether a system schedule's time zone is still CAMPAIGN_TIMEZONE."""
    return schedule.timezone == (str(current_app.config["TIMEZONE"]) or "UTC")


def retention_schedule() -> Schedule | None:
    return db.session.scalar(
        select(Schedule)
        .where(Schedule.kind == ScheduleKind.RETENTION.value)
        .order_by(Schedule.id)
        .limit(1)
    )


def ensure_retention_schedule(now: datetime, commit: Callable[[], None]) -> None:
    """The tick's after-hook: make the daily retention schedule when it is missing."""
    found = retention_schedule()
    if found is not None and found.next_run_at is not None and follows_zone(found):
        return
    if ensure_daily_schedule(ScheduleKind.RETENTION.value, "Retention", RUN_AT, now) is not None:
        commit()


def fire_retention(schedule: Schedule, due_at: datetime, now: datetime) -> tuple[Text, None]:
    """The daily run (registered with the tick): apply the periods, say what went; a run in
    which some kind failed is a failed run (what the other kinds removed stands)."""
    from campaign.scheduling.tick import ActionFailed

    report = apply_retention(now)
    if report.failed:
        raise ActionFailed(report_text(report))
    return report_text(report), None


def last_run() -> ScheduleRun | None:
    """The retention schedule's latest run, for the admin page."""
    return db.session.scalar(
        select(ScheduleRun)
        .join(Schedule, Schedule.id == ScheduleRun.schedule_id)
        .where(Schedule.kind == ScheduleKind.RETENTION.value)
        .order_by(ScheduleRun.due_at.desc(), ScheduleRun.id.desc())
        .limit(1)
    )
