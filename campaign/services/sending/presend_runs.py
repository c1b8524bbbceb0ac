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

from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext
from flask_babel.speaklater import LazyString
from sqlalchemy import Select, String, cast, func, literal, select, update
from sqlalchemy.dialects.postgresql import aggregate_order_by
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
# Letters read between two progress writes (and two commits) of a job, at most; fewer when
# letters are slow: a job writes its progress at least every BEAT_SECONDS (decision 0071).
CHUNK = 500
BEAT_SECONDS = 5.0
# A job is given this long, plus SECONDS_PER_LETTER a letter: the sandbox stops any one
# letter at RenderLimits.max_seconds (2 s), so a check making progress is not killed; if
# one is, the failure says the template is too slow, with the figures.
JOB_SECONDS = 600
SECONDS_PER_LETTER = 2
# A stored result lists this many recipients' problems; the rest are counted.
MAX_KEPT = 1000
_ACTIVE = (PresendStatus.QUEUED.value, PresendStatus.RUNNING.value)
# What `error` holds when the queue could not take the job (Redis away).
NOT_QUEUED = "not-queued"


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
    """The fingerprint of the check's result.

    The statement's version (its snapshot when it has none yet); every recipient's id and
    last edit (updated_at), streamed in id order and hashed here: any change of membership
    or of any one contact changes it (sums and maxima could be collided, and an edit
    committed after a check with an older updated_at would hide behind a max); the
    salutation rules and settings, the country names and the installation settings (count
    and last edit of each); the check's own version.
    """
    digest = hashlib.sha256(f"{CHECK_VERSION}|{campaign.statement_id}|".encode())
    statement = db.session.get(Statement, campaign.statement_id) if campaign.statement_id else None
    if statement is not None:
        source = letter_source(statement)
        digest.update(f"v{source.version}|".encode())
        if not source.version:  # no version yet: the letters follow the text as it is
            digest.update(json.dumps(source.snapshot, sort_keys=True, default=str).encode())
    audience, count = _audience_digest(recipients)
    digest.update(audience.encode())
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
    return Dependencies(digest.hexdigest(), count)


def _audience_digest(recipients: Select[Any]) -> tuple[str, int]:
    """A digest of every recipient's (id, updated_at), in id order: PostgreSQL hashes them
    itself (md5 over string_agg); elsewhere they are streamed and hashed here (~0.2 s of
    CPU for 100,000 recipients on SQLite, decision 0071)."""
    if db.session.get_bind().dialect.name == "postgresql":
        pairs = recipients.with_only_columns(
            (cast(Contact.id, String) + ":" + cast(Contact.updated_at, String)).label("pair"),
            Contact.id.label("id"),
        ).order_by(None)
        inner = pairs.subquery()
        hashed, count = db.session.execute(
            select(
                func.md5(
                    func.string_agg(inner.c.pair, aggregate_order_by(literal(","), inner.c.id))
                ),
                func.count(),
            )
        ).one()
        return f"pg:{hashed}", int(count or 0)
    digest = hashlib.sha256()
    rows = db.session.execute(
        recipients.with_only_columns(Contact.id, cast(Contact.updated_at, String))
        .order_by(Contact.id)
        .execution_options(yield_per=10_000)
    )
    count = 0
    for part in rows.partitions():
        count += len(part)
        digest.update(repr([tuple(row) for row in part]).encode())
    return f"py:{digest.hexdigest()}", count


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
    # A request gave up checking these very letters (INLINE_SECONDS): the job's to run.
    is_slow: bool = False

    @property
    def is_stale(self) -> bool:
        """Queued or running, but silent for longer than STALE_AFTER: nothing finishes it."""
        run = self.run
        if run is None or run.status not in _ACTIVE:
            return False
        return (run.heartbeat_at or run.queued_at) < self.now - STALE_AFTER

    @property
    def is_running(self) -> bool:
        """Queued or running, and not stale."""
        return self.run is not None and self.run.status in _ACTIVE and not self.is_stale

    @property
    def is_waiting(self) -> bool:
        """Queued, no worker has taken it yet."""
        return self.is_running and self.run is not None and self.run.status == "queued"

    @property
    def failure(self) -> str:
        """Why the last run stopped, in the reader's language ("" when it did not fail)."""
        if not self.is_failed or self.run is None:
            return ""
        return failure_text(self.run.error, stale=self.is_stale)

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


def failure_text(error: str, *, stale: bool = False) -> str:
    """A failed run's stored `error` in words (the details are in the worker's log)."""
    if error == NOT_QUEUED:
        return str(_NOT_QUEUED)
    if stale or not error:
        return str(
            _l(
                "the check stopped answering before the end (no worker took it, or its "
                "worker was stopped)"
            )
        )
    return read(error)


_NOT_QUEUED = _l(
    "the check could not be queued: the job queue (Redis) does not answer. Try again in a "
    "moment; if it goes on, tell whoever runs this installation"
)


def state(campaign: Campaign, recipients: Select[Any]) -> CheckState:
    """The campaign's check: its stored result if current, or its progress."""
    deps = dependencies(campaign, recipients)
    run = latest_run(campaign.id)
    report = None
    if run is not None and run.result is not None and run.fingerprint == deps.fingerprint:
        report = from_json(run.result)
    slow = run is not None and run.slow_for == deps.fingerprint
    return CheckState(run, deps.recipients, report, _now(), slow)


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


def job_timeout(letters: int) -> int:
    """The RQ timeout of a check of `letters`: JOB_SECONDS, and SECONDS_PER_LETTER each."""
    return JOB_SECONDS + SECONDS_PER_LETTER * letters


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
        # The check reads ~1,000 letters a second: only a template slower than
        # SECONDS_PER_LETTER a letter is stopped, and the failure says so.
        job_timeout=job_timeout(deps.recipients),
    )
    return run


def not_queued(campaign_id: int, key: str) -> None:
    """The queue did not take run `key` (Redis away): it is marked failed, not left queued
    for nobody; flush. The caller commits."""
    table = PresendRun.__table__
    db.session.execute(
        update(table)
        .where(
            table.c.campaign_id == campaign_id,
            table.c.run_key == key,
            table.c.status == PresendStatus.QUEUED.value,
        )
        .values(status=PresendStatus.FAILED.value, error=NOT_QUEUED, finished_at=_now())
    )


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
        if too_slow(campaign.id, deps):
            raise CheckTooLong()
        stream = _within(recipients, time.monotonic() + seconds)
    try:
        report = presend.check_audience(statement, stream, rules=current_rule_set())
    except CheckTooLong:
        # Remembered (when the caller commits): later visits go straight to the job.
        _row(campaign.id).slow_for = deps.fingerprint
        db.session.flush()
        raise
    key = uuid.uuid4().hex
    run = _row(campaign.id)
    run.run_key = key
    db.session.flush()
    _store(campaign.id, deps, report, key=key, actor=actor)
    return report


def too_slow(campaign_id: int, deps: Dependencies) -> bool:
    """Whether a request already gave up checking these very letters (INLINE_SECONDS)."""
    run = latest_run(campaign_id)
    return run is not None and run.slow_for == deps.fingerprint


def _within(recipients: Select[Any], deadline: float) -> Iterator[Contact]:
    """The recipients, until `deadline`: checked before each letter (one letter of a slow
    template costs at most the sandbox's own bound, RenderLimits.max_seconds, past it)."""
    query = recipients.order_by(Contact.id).execution_options(yield_per=CHUNK)
    for contact in db.session.scalars(query):
        if time.monotonic() > deadline:
            raise CheckTooLong()
        yield contact


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
        # Each chunk is sized to last about BEAT_SECONDS at the pace of the one before
        # (at most CHUNK letters): the progress and heartbeat are written on time whatever
        # the template's speed, and a commit falls between chunks only.
        done, size = 0, 1
        while done < len(ids):
            part = ids[done : done + size]
            began = time.monotonic()
            yield from db.session.scalars(
                select(Contact).where(Contact.id.in_(part)).order_by(Contact.id)
            ).all()
            done += len(part)
            _beat(campaign_id, key, done)
            commit()
            each = (time.monotonic() - began) / len(part)
            size = max(1, min(CHUNK, int(BEAT_SECONDS / each) if each > 0 else CHUNK))

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


def mark_failed(
    campaign_id: int, key: str, error: BaseException, *, timed_out: bool = False
) -> None:
    """Record that run `key` stopped, in words for people (the error's kind at most: its
    text, SQL included, goes to the log only); flush. The caller commits. `timed_out`:
    the job ran out of its time, which names the pace of the letters."""
    table = PresendRun.__table__
    run = latest_run(campaign_id)
    message: LazyString
    if timed_out and run is not None:
        message = lazy_ngettext(
            "the check was stopped after %(seconds)s seconds with %(num)d letter read: the "
            "letter's template takes more than %(limit)s seconds a letter. Simplify it "
            "(loops, long texts) and start the check again",
            "the check was stopped after %(seconds)s seconds with %(num)d letters read: the "
            "letter's template takes more than %(limit)s seconds a letter. Simplify it "
            "(loops, long texts) and start the check again",
            run.checked,
            seconds=job_timeout(run.total),
            limit=SECONDS_PER_LETTER,
        )
    else:
        message = _l(
            "the check stopped on an unexpected error (%(kind)s); the worker's log has the details",
            kind=error.__class__.__name__,
        )
    db.session.execute(
        update(table)
        .where(table.c.campaign_id == campaign_id, table.c.run_key == key)
        .values(status=PresendStatus.FAILED.value, error=dump(message), finished_at=_now())
    )
