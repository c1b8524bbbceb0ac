"""The daily backup: a system schedule queues it, a worker writes it into the configured folder,
keeps the newest CAMPAIGN_BACKUP_KEEP and records the last one for the admins' page.

The tick never makes the backup itself (it would hold the scheduler for minutes): the
"backup" schedule's fire enqueues the job `workers.jobs.run_scheduled_backup`, which calls
`run_scheduled_backup` here. The archive is P1's (`archive.write_backup`, encrypted to
CAMPAIGN_BACKUP_RECIPIENTS); what happened is kept in the installation setting
"backup_last" and on the schedule's run row (decision 0088).
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from sqlalchemy import update

from campaign import clock
from campaign.extensions import db
from campaign.models import InstallationSetting, Schedule, ScheduleRun
from campaign.models.schedule import RunOutcome, ScheduleKind
from campaign.queue import enqueue_after_commit
from campaign.scheduling.stored_text import Text, dump, joined, lazy_ngettext
from campaign.services.backups import archive
from campaign.services.privacy.retention import (
    ensure_daily_schedule,
    follows_zone,
    system_schedule,
)

log = logging.getLogger(__name__)

SETTING = "backup_last"
# Only files with exactly this name are ever rotated away: whatever else is in the folder
# (another program's files, a backup renamed by hand) is left alone.
ARCHIVE_NAME = re.compile(r"\Acampaign-backup-(\d{8}T\d{6}Z)\.age\Z")
# What archive.write_backup writes before renaming it: left behind by a job that died.
PARTIAL_NAME = re.compile(r"\Acampaign-backup-(\d{8}T\d{6}Z)\.age\.partial\Z")
# A name stamped further ahead than this is not trusted as "newest" (a clock set wrong, a
# file copied in): it is neither counted among the kept nor removed, and the run says so.
FUTURE_SLACK = timedelta(days=1)
STAMP = "%Y%m%dT%H%M%SZ"
# When the daily backup is queued, in the organisation's time zone (before retention's run).
RUN_AT = "02:30"
# Past this age without a good backup, admins are warned on the backups and start pages.
STALE_AFTER = timedelta(hours=48)
JOB = "workers.jobs.run_scheduled_backup"
# RQ's limit for one backup job: generous, a large database on a slow disk takes a while.
JOB_TIMEOUT_SECONDS = 6 * 3600
DEPLOY_SECTION = "docs/deploy.md, section 6, “Backups and restore”"


@dataclass(frozen=True)
class BackupSettings:
    folder: Path | None  # CAMPAIGN_BACKUP_FOLDER; None when unset
    recipients: list[str]  # CAMPAIGN_BACKUP_RECIPIENTS' public keys
    keep: int  # CAMPAIGN_BACKUP_KEEP, at least 1

    @property
    def is_configured(self) -> bool:
        return self.folder is not None and bool(self.recipients)


def backup_settings() -> BackupSettings:
    """The daily backup's configuration (both the folder and the keys are needed)."""
    keep = max(1, int(current_app.config["BACKUP_KEEP"]))  # Config types and defaults it
    return BackupSettings(archive.backup_folder(), archive.configured_recipients(), keep)


@dataclass(frozen=True)
class BackupRecord:
    """The last daily backup tried, and the last one that worked (they may differ)."""

    at: datetime
    ok: bool
    file: str
    size: int
    error: str
    ok_at: datetime | None
    ok_file: str
    ok_size: int
    # When the last job was queued and started: later than `at`, a run has not finished.
    queued_at: datetime | None = None
    started_at: datetime | None = None

    def pending_since(self) -> datetime | None:
        """When the run that has not finished (yet) was queued or started, else None."""
        moments = [moment for moment in (self.queued_at, self.started_at) if moment is not None]
        latest = max(moments) if moments else None
        return latest if latest is not None and latest > self.at else None

    def age(self, now: datetime) -> timedelta | None:
        """How old the last good backup is at `now`; None when none ever worked."""
        return None if self.ok_at is None else now - self.ok_at


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _stored() -> dict[str, object]:
    row = db.session.get(InstallationSetting, SETTING)
    if row is None or not row.value:
        return {}
    try:
        data = json.loads(row.value)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _store(data: dict[str, object]) -> None:
    row = db.session.get(InstallationSetting, SETTING)
    if row is None:
        row = InstallationSetting(name=SETTING)
        db.session.add(row)
    row.value = json.dumps(data)
    db.session.flush()


def _note_moment(key: str, at: datetime) -> None:
    data = _stored()
    data[key] = at.isoformat()
    _store(data)


def last_backup() -> BackupRecord | None:
    """What the last daily backup did, or None when none has run (nor was queued)."""
    data = _stored()
    queued_at = _parse_time(data.get("queued_at"))
    started_at = _parse_time(data.get("started_at"))
    at = _parse_time(data.get("at"))
    if at is None:
        pending = [moment for moment in (queued_at, started_at) if moment is not None]
        if not pending:
            return None
        # Queued or started, never finished: a record "before the epoch" that did nothing.
        return BackupRecord(
            at=datetime.min.replace(tzinfo=UTC),
            ok=True,
            file="",
            size=0,
            error="",
            ok_at=None,
            ok_file="",
            ok_size=0,
            queued_at=queued_at,
            started_at=started_at,
        )
    return BackupRecord(
        at=at,
        ok=bool(data.get("ok")),
        file=str(data.get("file") or ""),
        size=int(str(data.get("size") or 0)),
        error=str(data.get("error") or ""),
        ok_at=_parse_time(data.get("ok_at")),
        ok_file=str(data.get("ok_file") or ""),
        ok_size=int(str(data.get("ok_size") or 0)),
        queued_at=queued_at,
        started_at=started_at,
    )


def _record(at: datetime, *, ok: bool, file: str, size: int, error: Text = "") -> BackupRecord:
    before = last_backup()
    if before is not None and before.ok_at is None and not before.file:
        before = None  # only queued before: nothing worked yet
    data = _stored()
    record = BackupRecord(
        at=at,
        ok=ok,
        file=file,
        size=size,
        # Kept as a message and its values (stored_text): each admin reads it in their language.
        error=dump(error) if error else "",
        ok_at=at if ok else (before.ok_at if before else None),
        ok_file=file if ok else (before.ok_file if before else ""),
        ok_size=size if ok else (before.ok_size if before else 0),
    )
    data.update(
        {
            "at": record.at.isoformat(),
            "ok": record.ok,
            "file": record.file,
            "size": record.size,
            "error": record.error,
            "ok_at": record.ok_at.isoformat() if record.ok_at else "",
            "ok_file": record.ok_file,
            "ok_size": record.ok_size,
        }
    )
    _store(data)
    return record


@dataclass(frozen=True)
class Archive:
    name: str
    size: int
    made_at: datetime  # from the name's UTC stamp


def kept_archives(folder: Path) -> list[Archive]:
    """The daily backups in `folder`, newest first (only files named as this module names
    them)."""
    found: list[Archive] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for path in entries:
        matched = ARCHIVE_NAME.match(path.name)
        if matched is None:
            continue
        try:
            # lstat: a symbolic link with a backup's name is not a backup (nor followed).
            found_stat = path.lstat()
        except OSError:
            continue
        if not stat.S_ISREG(found_stat.st_mode):
            continue
        size = found_stat.st_size
        made_at = datetime.strptime(matched.group(1), STAMP).replace(tzinfo=UTC)
        found.append(Archive(path.name, size, made_at))
    return sorted(found, key=lambda archive: archive.name, reverse=True)


@dataclass(frozen=True)
class Rotation:
    removed: list[str]
    future: list[str]  # stamped more than a day ahead of now: left alone


def rotate(folder: Path, keep: int, *, written: str = "", now: datetime | None = None) -> Rotation:
    """Delete the daily backups beyond the newest `keep`. The one just `written` is never
    deleted, and names stamped more than a day after `now` are left alone (and reported)."""
    now = now or clock.now()
    archives = kept_archives(folder)
    future = [old.name for old in archives if old.made_at > now + FUTURE_SLACK]
    ordered = [old for old in archives if old.name not in future]
    removed = []
    for old in ordered[keep:]:
        if old.name == written:
            continue
        try:
            (folder / old.name).unlink()
        except FileNotFoundError:
            continue
        except OSError:
            log.warning("the daily backup could not remove an older backup")
            continue
        removed.append(old.name)
    if future:
        log.warning("%d backup(s) in the backup folder are stamped in the future", len(future))
    return Rotation(removed, future)


def remove_stale_partials(folder: Path, now: datetime, mine: str) -> int:
    """Remove what a backup job that died left half-written (regular files named as ours,
    older than a job may run; never a symbolic link, never the file being written now)."""
    removed = 0
    try:
        entries = list(folder.iterdir())
    except OSError:
        return 0
    limit = now - timedelta(seconds=JOB_TIMEOUT_SECONDS)
    for path in entries:
        matched = PARTIAL_NAME.match(path.name)
        if matched is None or path.name == mine:
            continue
        made_at = datetime.strptime(matched.group(1), STAMP).replace(tzinfo=UTC)
        if made_at > limit:
            continue
        try:
            if not stat.S_ISREG(path.lstat().st_mode):
                continue
            path.unlink()
        except OSError:
            continue
        removed += 1
    return removed


def _folder_problem(folder: Path) -> Text | None:
    """Why the folder cannot take a backup, in the reader's language when read (the common
    cases, checked here so that the page says them in each admin's language)."""
    if not folder.is_dir():
        return _l("the folder %(folder)s does not exist", folder=str(folder))
    if not os.access(folder, os.W_OK | os.X_OK):
        return _l("the folder %(folder)s cannot be written to", folder=str(folder))
    return None


def _error_text(error: Exception) -> Text:
    """A BackupError's words: its stored (lazy) form when archive gives one, else its text
    as written in the worker (decision 0088)."""
    stored = getattr(error, "stored", None)
    if isinstance(stored, str | LazyString) and stored:
        return stored
    return str(error)


def megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f}"


def run_scheduled_backup(
    now: datetime | None = None,
    *,
    schedule_id: int | None = None,
    due_at: datetime | None = None,
    commit: Callable[[], None] | None = None,
) -> BackupRecord | None:
    """Write today's backup, keep the newest N, record how it went (flushed; the job commits).

    None when backups are not configured. With the schedule's fire (`schedule_id`, `due_at`)
    its run row is updated to say what was written, or why not (a failure is a failed run,
    shown on the scheduler record and the backups page). `commit` makes the start known
    before the writing begins, so that a job that dies shows as interrupted.
    """
    settings = backup_settings()
    if not settings.is_configured:
        return None
    assert settings.folder is not None
    now = now or clock.now()
    name = f"campaign-backup-{now.astimezone(UTC).strftime(STAMP)}.age"
    _note_moment("started_at", now)
    if commit is not None:
        commit()
    remove_stale_partials(settings.folder, now, name + ".partial")
    problem = _folder_problem(settings.folder)
    try:
        if problem is not None:
            raise archive.BackupError(str(problem))
        manifest = archive.write_backup(settings.folder / name, settings.recipients)
    except archive.BackupError as error:
        failure: Text = _l(
            "The backup failed: %(error)s",
            error=problem if problem is not None else _error_text(error),
        )
        _note_run(schedule_id, due_at, failure, failed=True)
        return _record(now, ok=False, file=name, size=0, error=failure)
    except Exception as error:  # recorded, so that a bug shows on the page, not only in logs
        log.exception("the daily backup failed")
        failure = _l(
            "The backup failed: an unexpected error (%(error)s)", error=type(error).__name__
        )
        _note_run(schedule_id, due_at, failure, failed=True)
        return _record(now, ok=False, file=name, size=0, error=failure)
    rotation = rotate(settings.folder, settings.keep, written=name, now=now)
    if not (settings.folder / name).is_file():
        failure = _l(
            "The backup failed: %(file)s was written but is no longer in the folder.", file=name
        )
        _note_run(schedule_id, due_at, failure, failed=True)
        return _record(now, ok=False, file=name, size=0, error=failure)
    done: Text = lazy_ngettext(
        "Backup written: %(file)s, %(size)s MB; %(num)d older backup removed.",
        "Backup written: %(file)s, %(size)s MB; %(num)d older backups removed.",
        len(rotation.removed),
        file=name,
        size=megabytes(manifest.size_bytes),
    )
    if rotation.future:
        done = joined(
            " ",
            [
                done,
                lazy_ngettext(
                    "%(num)d file in the folder is stamped in the future (%(names)s): left "
                    "alone; check this machine's clock, then remove it by hand.",
                    "%(num)d files in the folder are stamped in the future (%(names)s): left "
                    "alone; check this machine's clock, then remove them by hand.",
                    len(rotation.future),
                    names=", ".join(rotation.future),
                ),
            ],
        )
    _note_run(schedule_id, due_at, done, failed=False)
    return _record(now, ok=True, file=name, size=manifest.size_bytes)


def _note_run(
    schedule_id: int | None, due_at: datetime | None, detail: Text, *, failed: bool
) -> None:
    if schedule_id is None or due_at is None:
        return
    values: dict[str, str] = {"detail": dump(detail)}
    if failed:
        values["outcome"] = RunOutcome.FAILED.value
    db.session.execute(
        update(ScheduleRun)
        .where(ScheduleRun.schedule_id == schedule_id, ScheduleRun.due_at == due_at)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


# --- the system schedule ----------------------------------------------------------------------


def backup_schedule() -> Schedule | None:
    return system_schedule(ScheduleKind.BACKUP.value)


def ensure_backup_schedule(now: datetime, commit: Callable[[], None]) -> None:
    """The tick's after-hook: the daily backup schedule exists and runs while backups are
    configured, and is switched off while they are not (it would fail every day)."""
    schedule = backup_schedule()
    configured = backup_settings().is_configured
    if configured:
        if (
            schedule is not None
            and schedule.is_enabled
            and schedule.next_run_at is not None
            and follows_zone(schedule)
        ):
            return
        schedule = ensure_daily_schedule(ScheduleKind.BACKUP.value, "Daily backup", RUN_AT, now)
        if schedule is None:  # another tick is making it
            return
        schedule.is_enabled = True
    elif schedule is not None and schedule.is_enabled:
        schedule.is_enabled = False
    else:
        return
    db.session.flush()
    commit()


def fire_backup(schedule: Schedule, due_at: datetime, now: datetime) -> tuple[Text, None]:
    """The daily fire (registered with the tick): queue the backup job, never make it here."""
    if not backup_settings().is_configured:
        return _l("Backups are not configured: nothing was done."), None
    enqueue_after_commit(
        db.session(),
        JOB,
        schedule.id,
        due_at.isoformat(),
        # One job per fire: a tick that ran twice queues it once.
        job_id=f"campaign-backup-{schedule.id}-{due_at.astimezone(UTC).strftime(STAMP)}",
        job_timeout=JOB_TIMEOUT_SECONDS,
    )
    # Known before the job runs: a job Redis refused, or that no worker took, shows on the
    # page as not finished once it is older than a job may run.
    _note_moment("queued_at", now)
    return _l("Backup queued: a worker is writing it to the backup folder."), None


# --- what the pages show ----------------------------------------------------------------------


@dataclass(frozen=True)
class BackupStatus:
    settings: BackupSettings
    last: BackupRecord | None
    archives: list[Archive]
    age: timedelta | None  # of the last good backup
    is_stale: bool  # configured, and no good backup in the last 48 hours
    has_failed: bool  # configured, and the last try failed
    # Configured, and a run queued or started longer ago than a job may run never finished
    # (its worker died, or it was never taken): when it was queued or started.
    interrupted_since: datetime | None = None


def backup_status(now: datetime | None = None, *, with_archives: bool = True) -> BackupStatus:
    """What the backups page and the start page's notice need (the start page passes
    `with_archives=False`: it never lists the folder, which may hang on a network disk)."""
    now = now or clock.now()
    settings = backup_settings()
    last = last_backup()
    archives = (
        kept_archives(settings.folder) if with_archives and settings.folder is not None else []
    )
    age = last.age(now) if last is not None else None
    configured = settings.is_configured
    stale = configured and (age is None or age > STALE_AFTER)
    pending = last.pending_since() if last is not None else None
    interrupted = (
        pending
        if configured
        and pending is not None
        and now - pending > timedelta(seconds=JOB_TIMEOUT_SECONDS)
        else None
    )
    return BackupStatus(
        settings,
        last,
        archives,
        age,
        stale,
        has_failed=configured and last is not None and bool(last.file) and not last.ok,
        interrupted_since=interrupted,
    )


def hours_old(age: timedelta) -> int:
    return int(age.total_seconds() // 3600)
