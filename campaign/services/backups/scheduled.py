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
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from campaign import clock
from campaign.extensions import db
from campaign.models import InstallationSetting, Schedule, ScheduleRun
from campaign.models.schedule import RunOutcome, ScheduleKind
from campaign.queue import enqueue_after_commit
from campaign.scheduling.stored_text import Text, dump, lazy_ngettext
from campaign.services.backups import archive
from campaign.services.privacy.retention import ensure_daily_schedule

log = logging.getLogger(__name__)

SETTING = "backup_last"
# Only files with exactly this name are ever rotated away: whatever else is in the folder
# (another program's files, a backup renamed by hand) is left alone.
ARCHIVE_NAME = re.compile(r"\Acampaign-backup-(\d{8}T\d{6}Z)\.age\Z")
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
    folder = str(current_app.config.get("BACKUP_FOLDER") or "").strip()
    try:
        keep = int(current_app.config.get("BACKUP_KEEP") or 7)
    except (TypeError, ValueError):
        keep = 7
    return BackupSettings(
        Path(folder) if folder else None, archive.configured_recipients(), max(1, keep)
    )


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


def last_backup() -> BackupRecord | None:
    """What the last daily backup did, or None when none has run."""
    row = db.session.get(InstallationSetting, SETTING)
    if row is None or not row.value:
        return None
    try:
        data = json.loads(row.value)
    except ValueError:
        return None
    at = _parse_time(data.get("at")) if isinstance(data, dict) else None
    if at is None:
        return None
    return BackupRecord(
        at=at,
        ok=bool(data.get("ok")),
        file=str(data.get("file") or ""),
        size=int(data.get("size") or 0),
        error=str(data.get("error") or ""),
        ok_at=_parse_time(data.get("ok_at")),
        ok_file=str(data.get("ok_file") or ""),
        ok_size=int(data.get("ok_size") or 0),
    )


def _record(at: datetime, *, ok: bool, file: str, size: int, error: Text = "") -> BackupRecord:
    before = last_backup()
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
    row = db.session.get(InstallationSetting, SETTING)
    if row is None:
        row = InstallationSetting(name=SETTING)
        db.session.add(row)
    row.value = json.dumps(
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
    db.session.flush()
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
            if not path.is_file():
                continue
            size = path.stat().st_size
        except OSError:
            continue
        made_at = datetime.strptime(matched.group(1), STAMP).replace(tzinfo=UTC)
        found.append(Archive(path.name, size, made_at))
    return sorted(found, key=lambda archive: archive.name, reverse=True)


def rotate(folder: Path, keep: int) -> list[str]:
    """Delete the daily backups beyond the newest `keep`; the names deleted."""
    removed = []
    for old in kept_archives(folder)[keep:]:
        try:
            (folder / old.name).unlink()
        except FileNotFoundError:
            continue
        removed.append(old.name)
    return removed


def megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f}"


def run_scheduled_backup(
    now: datetime | None = None, *, schedule_id: int | None = None, due_at: datetime | None = None
) -> BackupRecord | None:
    """Write today's backup, keep the newest N, record how it went (flushed; the job commits).

    None when backups are not configured. With the schedule's fire (`schedule_id`, `due_at`)
    its run row is updated to say what was written, or why not (a failure is a failed run,
    shown on the scheduler record and the backups page).
    """
    settings = backup_settings()
    if not settings.is_configured:
        return None
    assert settings.folder is not None
    now = now or clock.now()
    name = f"campaign-backup-{now.astimezone(UTC).strftime(STAMP)}.age"
    try:
        manifest = archive.write_backup(settings.folder / name, settings.recipients)
    except archive.BackupError as error:
        failure: Text = _l("The backup failed: %(error)s", error=str(error))
        _note_run(schedule_id, due_at, failure, failed=True)
        return _record(now, ok=False, file=name, size=0, error=failure)
    except Exception as error:  # recorded, so that a bug shows on the page, not only in logs
        log.exception("the daily backup failed")
        failure = _l(
            "The backup failed: an unexpected error (%(error)s)", error=type(error).__name__
        )
        _note_run(schedule_id, due_at, failure, failed=True)
        return _record(now, ok=False, file=name, size=0, error=failure)
    removed = rotate(settings.folder, settings.keep)
    done = lazy_ngettext(
        "Backup written: %(file)s, %(size)s MB; %(num)d older backup removed.",
        "Backup written: %(file)s, %(size)s MB; %(num)d older backups removed.",
        len(removed),
        file=name,
        size=megabytes(manifest.size_bytes),
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
    return db.session.scalar(
        select(Schedule)
        .where(Schedule.kind == ScheduleKind.BACKUP.value)
        .order_by(Schedule.id)
        .limit(1)
    )


def ensure_backup_schedule(now: datetime, commit: Callable[[], None]) -> None:
    """The tick's after-hook: the daily backup schedule exists and runs while backups are
    configured, and is switched off while they are not (it would fail every day)."""
    schedule = backup_schedule()
    configured = backup_settings().is_configured
    if configured:
        if schedule is not None and schedule.is_enabled and schedule.next_run_at is not None:
            return
        schedule = ensure_daily_schedule(ScheduleKind.BACKUP.value, "Daily backup", RUN_AT, now)
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
    return _l("Backup queued: a worker is writing it to the backup folder."), None


# --- what the pages show ----------------------------------------------------------------------


@dataclass(frozen=True)
class BackupStatus:
    settings: BackupSettings
    last: BackupRecord | None
    archives: list[Archive]
    age: timedelta | None  # of the last good backup
    is_stale: bool  # configured, and no good backup in the last 48 hours
    has_failed: bool  # the last try failed


def backup_status(now: datetime | None = None) -> BackupStatus:
    """What the backups page and the start page's notice need."""
    now = now or clock.now()
    settings = backup_settings()
    last = last_backup()
    archives = kept_archives(settings.folder) if settings.folder is not None else []
    age = last.age(now) if last is not None else None
    stale = settings.is_configured and (age is None or age > STALE_AFTER)
    return BackupStatus(
        settings,
        last,
        archives,
        age,
        stale,
        has_failed=last is not None and not last.ok,
    )


def hours_old(age: timedelta) -> int:
    return int(age.total_seconds() // 3600)
