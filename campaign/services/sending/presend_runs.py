"""The pre-send check as a job: run off the request, its result stored and reused while current.

A campaign's check renders every recipient's letter: 100,000 of them take a minute, so the
page and the JSON API never run it for a large audience; they start a job (one a campaign)
that writes its progress every batch and stores the result with a fingerprint of what the
letters depend on. The draft page, the confirmation and the launch reuse a stored result
while the fingerprint is the same (decision 0071). Callers pass the campaign's recipients
query (campaigns.recipients_query): this module sits below campaigns.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Select, cast, func, literal, select, update
from sqlalchemy.exc import IntegrityError

from campaign.extensions import db
from campaign.letters.types import LetterProblem
from campaign.models import (
    Campaign,
    Contact,
    CountryNameOverride,
    InstallationSetting,
    PresendRun,
    PresendStatus,
    SalutationRule,
    SalutationSetting,
    Statement,
    User,
)
from campaign.scheduling.stored_text import dump, read
from campaign.services.statements import presend
from campaign.services.statements.presend import ContactProblem, PresendReport, TextProblem
from campaign.services.statements.salutation_rules import current_rule_set
from campaign.services.statements.statements import letter_source

log = logging.getLogger(__name__)

JOB = "workers.jobs.check_letters"
# Changed when the check itself reads letters differently: results stored before are stale.
CHECK_VERSION = "0071.1"
# A web request checks at most this many letters itself (about half a second at the
# check's pace); more go to a job. Within INLINE_SECONDS too: a slow template gives up.
INLINE_LIMIT = 1000
INLINE_SECONDS = 3.0
# A queued or running check that has not moved for this long is dead (a killed worker, no
# worker at all): the page stops showing it as running and offers to start it again.
STALE_AFTER = timedelta(minutes=5)
# Letters read between two progress writes (and two commits) of a job.
CHUNK = 500
# A stored result lists this many recipients' problems; the rest are counted.
MAX_KEPT = 1000
_ACTIVE = (PresendStatus.QUEUED.value, PresendStatus.RUNNING.value)
# The second sum of the recipients' ids spreads each id over 32 bits (Knuth's multiplier),
# so that two audiences of the same size and sum of ids still differ.
_SPREAD = literal(2654435761, BigInteger)
_PRIME = literal(4294967291, BigInteger)


class CheckTooLong(Exception):
    """The check in a request ran past INLINE_SECONDS: it is the job's to run."""


class _Superseded(Exception):
    """The row names another run now (started again, or run in a request): this one stops."""


def _now() -> datetime:
    return datetime.now(UTC)


# --- what the result depends on -------------------------------------------------------------


@dataclass(frozen=True)
class Dependencies:
    """What the letters depend on now, hashed, and how many recipients there are."""

    fingerprint: str
    recipients: int


def dependencies(campaign: Campaign, recipients: Select[Any]) -> Dependencies:
    """The fingerprint of the check's result, read in three aggregate queries.

    The statement's version (its snapshot when it has none yet); who the recipients are
    (count, two sums of their ids) and their last edit (max updated_at); the salutation
    rules and settings, the country names and the installation settings (count and last
    edit of each); the check's own version.
    """
    digest = hashlib.sha256(f"{CHECK_VERSION}|{campaign.statement_id}|".encode())
    statement = db.session.get(Statement, campaign.statement_id) if campaign.statement_id else None
    if statement is not None:
        source = letter_source(statement)
        digest.update(f"v{source.version}|".encode())
        if not source.version:  # no version yet: the letters follow the text as it is
            digest.update(json.dumps(source.snapshot, sort_keys=True, default=str).encode())
    ids = (
        recipients.with_only_columns(Contact.id.label("id"), Contact.updated_at.label("edited"))
        .order_by(None)
        .subquery()
    )
    count, total, mixed, edited = db.session.execute(
        select(
            func.count(),
            func.sum(ids.c.id),
            func.sum((cast(ids.c.id, BigInteger) * _SPREAD) % _PRIME),
            func.max(ids.c.edited),
        ).select_from(ids)
    ).one()
    digest.update(f"a{count}|{total}|{mixed}|{edited}|".encode())
    rules = db.session.execute(
        select(
            *(
                part
                for model in (
                    SalutationRule,
                    SalutationSetting,
                    CountryNameOverride,
                    InstallationSetting,
                )
                for part in (
                    select(func.count()).select_from(model).scalar_subquery(),
                    select(func.max(model.updated_at)).scalar_subquery(),
                )
            )
        )
    ).one()
    digest.update("|".join(str(value) for value in rules).encode())
    return Dependencies(digest.hexdigest(), int(count or 0))


# --- the stored result ------------------------------------------------------------------------


def to_json(report: PresendReport) -> dict[str, Any]:
    """The report as stored: its figures, the text's problems and the first MAX_KEPT
    recipients' problems; messages as stored texts, read in each reader's language."""
    rest = report.problems[MAX_KEPT:]
    rest_errors = sum(1 for item in rest if item.problem.severity == "error")
    return {
        "statement_id": report.statement_id,
        "statement_version": report.statement_version,
        "checked": report.checked,
        "contacts_with_errors": report.contacts_with_errors,
        "languages": dict(report.languages),
        "codes": dict(report.codes),
        "unlisted_errors": report.unlisted_errors + rest_errors,
        "unlisted_warnings": report.unlisted_warnings + len(rest) - rest_errors,
        "text_problems": [
            [p.statement_id, p.title, p.language, p.line, *_problem(p.problem)]
            for p in report.text_problems
        ],
        "problems": [
            [p.contact_id, p.email, p.name, p.language, *_problem(p.problem)]
            for p in report.problems[:MAX_KEPT]
        ],
    }


def _problem(problem: LetterProblem) -> list[str]:
    return [problem.severity, problem.code, dump(problem.message)]


def from_json(data: dict[str, Any]) -> PresendReport:
    """The report `to_json` stored, its messages in the current language."""
    report = PresendReport(int(data["statement_id"]), int(data["statement_version"]))
    report.checked = int(data["checked"])
    report.contacts_with_errors = int(data["contacts_with_errors"])
    report.languages.update(data.get("languages") or {})
    report.codes.update(data.get("codes") or {})
    report.unlisted_errors = int(data.get("unlisted_errors") or 0)
    report.unlisted_warnings = int(data.get("unlisted_warnings") or 0)
    for statement_id, title, language, line, severity, code, message in data["text_problems"]:
        report.text_problems.append(
            TextProblem(
                statement_id, title, language, line, LetterProblem(severity, code, read(message))
            )
        )
    for contact_id, email, name, language, severity, code, message in data["problems"]:
        report.problems.append(
            ContactProblem(
                contact_id, email, name, language, LetterProblem(severity, code, read(message))
            )
        )
    return report


def latest_run(campaign_id: int) -> PresendRun | None:
    return db.session.scalar(select(PresendRun).where(PresendRun.campaign_id == campaign_id))


@dataclass
class CheckState:
    """Where a campaign's check stands, for the draft page and the API."""

    run: PresendRun | None
    recipients: int
    report: PresendReport | None  # the stored result, when it is current
    now: datetime

    @property
    def is_stale(self) -> bool:
        """Queued or running, but silent for longer than STALE_AFTER: nothing finishes it."""
        run = self.run
        if run is None or run.status not in _ACTIVE:
            return False
        return (run.heartbeat_at or run.queued_at) < self.now - STALE_AFTER

    @property
    def is_running(self) -> bool:
        return self.run is not None and self.run.status in _ACTIVE and not self.is_stale

    @property
    def is_failed(self) -> bool:
        return self.run is not None and (self.run.status == PresendStatus.FAILED or self.is_stale)

    @property
    def is_outdated(self) -> bool:
        """A result is stored, but the letters changed since."""
        return self.report is None and self.run is not None and self.run.result is not None

    @property
    def checked(self) -> int:
        return self.run.checked if self.run is not None else 0

    @property
    def total(self) -> int:
        return self.run.total if self.run is not None and self.run.total else self.recipients

    @property
    def percent(self) -> int:
        if self.report is not None:
            return 100
        return min(100, self.checked * 100 // self.total) if self.total else 0

    @property
    def age(self) -> timedelta | None:
        """How old the stored result is."""
        if self.run is None or self.run.finished_at is None or self.run.result is None:
            return None
        return max(timedelta(0), self.now - self.run.finished_at)


def state(campaign: Campaign, recipients: Select[Any]) -> CheckState:
    """The campaign's check: its stored result if current, or its progress."""
    deps = dependencies(campaign, recipients)
    run = latest_run(campaign.id)
    report = None
    if run is not None and run.result is not None and run.fingerprint == deps.fingerprint:
        report = from_json(run.result)
    return CheckState(run, deps.recipients, report, _now())


def current_report(
    campaign: Campaign, recipients: Select[Any], deps: Dependencies | None = None
) -> PresendReport | None:
    """The stored result while nothing it depends on changed; None otherwise."""
    deps = deps or dependencies(campaign, recipients)
    run = latest_run(campaign.id)
    if run is None or run.result is None or run.fingerprint != deps.fingerprint:
        return None
    return from_json(run.result)


# --- running it -------------------------------------------------------------------------------


def _row(campaign_id: int) -> PresendRun:
    """The campaign's row, made if missing (two first checks at once: one row, one wins)."""
    run = latest_run(campaign_id)
    if run is not None:
        return run
    try:
        with db.session.begin_nested():
            run = PresendRun(campaign_id=campaign_id, status=PresendStatus.DONE.value)
            db.session.add(run)
    except IntegrityError:
        run = latest_run(campaign_id)
        assert run is not None
    return run


def start(campaign: Campaign, recipients: Select[Any], *, actor: User | None = None) -> PresendRun:
    """Queue the check of `campaign` as a job (when the caller commits); flush.

    One job a campaign: while one is queued or running (and not stale) this returns it and
    queues nothing, whoever asks. A stale one is replaced: its key changes, so if it wakes
    up it stops at its next batch.
    """
    run = _row(campaign.id)
    now = _now()
    key = uuid.uuid4().hex
    deps = dependencies(campaign, recipients)
    table = PresendRun.__table__
    moved = db.session.execute(
        update(table)
        .where(
            table.c.id == run.id,
            (table.c.status.not_in(_ACTIVE))
            | (func.coalesce(table.c.heartbeat_at, table.c.queued_at) < now - STALE_AFTER),
        )
        .values(
            status=PresendStatus.QUEUED.value,
            run_key=key,
            total=deps.recipients,
            checked=0,
            error="",
            started_by_id=actor.id if actor is not None else None,
            queued_at=now,
            heartbeat_at=None,
        )
    )
    db.session.refresh(run)
    if int(getattr(moved, "rowcount", 0) or 0) != 1:
        return run  # someone else's run is under way
    from campaign.queue import enqueue_after_commit

    enqueue_after_commit(
        db.session(),
        JOB,
        campaign.id,
        key,
        job_id=f"presend-{campaign.id}-{key}",
        # About 1,000 letters a second at the least, and room for a slow template.
        job_timeout=600 + deps.recipients // 100,
    )
    return run


def _store(
    campaign_id: int,
    deps: Dependencies,
    report: PresendReport,
    *,
    key: str,
    actor: User | None = None,
) -> bool:
    """Write the result on the row if `key` still names the run; flush. False if not."""
    table = PresendRun.__table__
    now = _now()
    values: dict[str, Any] = {
        "status": PresendStatus.DONE.value,
        "fingerprint": deps.fingerprint,
        "total": report.checked,
        "checked": report.checked,
        "result": to_json(report),
        "error": "",
        "heartbeat_at": now,
        "finished_at": now,
    }
    if actor is not None:
        values["started_by_id"] = actor.id
    moved = db.session.execute(
        update(table)
        .where(table.c.campaign_id == campaign_id, table.c.run_key == key)
        .values(**values)
    )
    db.session.expire_all()
    return int(getattr(moved, "rowcount", 0) or 0) == 1


def run_here(
    campaign: Campaign,
    recipients: Select[Any],
    *,
    contacts: Iterable[Contact] | None = None,
    deps: Dependencies | None = None,
    seconds: float | None = None,
    actor: User | None = None,
) -> PresendReport:
    """Check every letter in this process and store the result (flushed, not committed).

    `contacts` streams the recipients another way (the CLI's progress line); `seconds`
    bounds the time (CheckTooLong past it: a request hands the check to the job). A job
    of the campaign still running finds its key taken and stops.
    """
    deps = deps or dependencies(campaign, recipients)
    statement = db.session.get(Statement, campaign.statement_id)
    stream: Iterable[Contact] | Select[Any] = contacts if contacts is not None else recipients
    if seconds is not None:
        stream = _within(recipients, time.monotonic() + seconds)
    report = presend.check_audience(statement, stream, rules=current_rule_set())
    key = uuid.uuid4().hex
    run = _row(campaign.id)
    run.run_key = key
    db.session.flush()
    _store(campaign.id, deps, report, key=key, actor=actor)
    return report


def _within(recipients: Select[Any], deadline: float) -> Iterator[Contact]:
    query = recipients.order_by(Contact.id).execution_options(yield_per=CHUNK)
    for done, contact in enumerate(db.session.scalars(query), 1):
        yield contact
        if done % 50 == 0 and time.monotonic() > deadline:
            raise CheckTooLong()


def claim(campaign_id: int, key: str) -> bool:
    """Take the queued run `key` for this worker (queued -> running); False if it is not
    (started again since, taken by another delivery of the job). The caller commits."""
    table = PresendRun.__table__
    moved = db.session.execute(
        update(table)
        .where(
            table.c.campaign_id == campaign_id,
            table.c.run_key == key,
            table.c.status == PresendStatus.QUEUED.value,
        )
        .values(status=PresendStatus.RUNNING.value, heartbeat_at=_now(), checked=0)
    )
    return int(getattr(moved, "rowcount", 0) or 0) == 1


def run_job(
    campaign_id: int,
    key: str,
    recipients_of: Callable[[Campaign], Select[Any]],
    *,
    commit: Callable[[], None],
) -> bool:
    """The job's body: check every letter in batches of CHUNK, writing the progress and
    committing after each, then store the result. False when the run was superseded."""
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        return False
    recipients = recipients_of(campaign)
    deps = dependencies(campaign, recipients)
    statement = db.session.get(Statement, campaign.statement_id)
    if statement is None:
        raise LookupError(f"campaign {campaign_id} has no statement")
    ids = list(db.session.scalars(recipients.with_only_columns(Contact.id).order_by(Contact.id)))

    def chunks() -> Iterator[Contact]:
        for start in range(0, len(ids), CHUNK):
            part = ids[start : start + CHUNK]
            yield from db.session.scalars(
                select(Contact).where(Contact.id.in_(part)).order_by(Contact.id)
            ).all()
            _beat(campaign_id, key, start + len(part))
            commit()

    try:
        _beat(campaign_id, key, 0, total=len(ids))
        commit()
        report = presend.check_audience(statement, chunks(), rules=current_rule_set())
    except _Superseded:
        db.session.rollback()
        log.info("pre-send check of campaign %s: started again; this run ends", campaign_id)
        return False
    stored = _store(campaign_id, deps, report, key=key)
    commit()
    return stored


def _beat(campaign_id: int, key: str, checked: int, *, total: int | None = None) -> None:
    table = PresendRun.__table__
    values: dict[str, Any] = {"checked": checked, "heartbeat_at": _now()}
    if total is not None:
        values["total"] = total
    moved = db.session.execute(
        update(table)
        .where(table.c.campaign_id == campaign_id, table.c.run_key == key)
        .values(**values)
    )
    if int(getattr(moved, "rowcount", 0) or 0) != 1:
        raise _Superseded()


def mark_failed(campaign_id: int, key: str, error: BaseException) -> None:
    """Record why run `key` stopped (its kind and words); flush. The caller commits."""
    table = PresendRun.__table__
    db.session.execute(
        update(table)
        .where(table.c.campaign_id == campaign_id, table.c.run_key == key)
        .values(
            status=PresendStatus.FAILED.value,
            error=f"{error.__class__.__name__}: {error}"[:500],
            finished_at=_now(),
        )
    )
