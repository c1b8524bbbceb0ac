"""The daily backup (decision 0088): queued by its system schedule, written by a worker into the
configured folder, rotated to the newest N, recorded; a failure shown; the 48-hour warning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyrage
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Role, Schedule, ScheduleRun
from campaign.models.schedule import RunOutcome, ScheduleKind
from campaign.queue import get_queue
from campaign.scheduling.registry import ensure_system_schedules
from campaign.scheduling.stored_text import read
from campaign.scheduling.tick import tick
from campaign.services.backups import archive, scheduled
from tests.pages import element_text, text_of

IDENTITY, PUBLIC_KEY = archive.new_identity()
NOW = datetime(2027, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    made = tmp_path / "backups"
    made.mkdir()
    return made


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], folder: Path) -> dict[str, Any]:
    return {
        **app_overrides,
        "BACKUP_FOLDER": str(folder),
        "BACKUP_RECIPIENTS": PUBLIC_KEY,
        "BACKUP_KEEP": 2,
    }


def _identity() -> Any:
    secret = next(line for line in IDENTITY.splitlines() if line.startswith("AGE-SECRET-KEY-"))
    return pyrage.x25519.Identity.from_str(secret)


def _old_archive(folder: Path, stamp: str) -> Path:
    path = folder / f"campaign-backup-{stamp}.age"
    path.write_bytes(b"an older backup")
    return path


def test_the_daily_backup_is_queued_written_rotated_and_recorded(
    app: Flask, folder: Path, fixed_clock: Any
) -> None:
    from workers import jobs
    from workers.context import set_app

    oldest = _old_archive(folder, "20270226T013000Z")
    older = _old_archive(folder, "20270227T013000Z")
    newer = _old_archive(folder, "20270228T013000Z")
    other = folder / "notes.txt"
    other.write_text("not ours")
    look_alike = folder / "campaign-backup-by-hand.age"
    look_alike.write_bytes(b"kept")

    fixed_clock(NOW)
    ensure_system_schedules(NOW, db.session.commit)
    schedule = db.session.scalars(
        select(Schedule).where(Schedule.kind == ScheduleKind.BACKUP.value)
    ).one()
    # 02:30 in Paris, before the retention run.
    assert schedule.next_run_at == datetime(2027, 3, 2, 1, 30, tzinfo=UTC)
    due = schedule.next_run_at
    fixed_clock(due)
    report = tick(due)
    backup_lines = [line for line in report.lines if line.kind == ScheduleKind.BACKUP.value]
    assert [line.detail for line in backup_lines] == [
        "Backup queued: a worker is writing it to the backup folder."
    ]
    # The tick wrote nothing: the backup is a job for a worker.
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [oldest.name, older.name, newer.name, other.name, look_alike.name]
    )
    [job] = [j for j in get_queue().jobs if j.func_name == scheduled.JOB]
    assert job.args[0] == schedule.id

    set_app(app)
    jobs.run_scheduled_backup(*job.args)
    db.session.expire_all()

    written = folder / "campaign-backup-20270302T013000Z.age"
    # The newest two kept (today's and yesterday's); what is not named as ours is left alone.
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [written.name, newer.name, other.name, look_alike.name]
    )
    decrypted = pyrage.decrypt(written.read_bytes(), [_identity()])
    assert len(decrypted) > 0
    last = scheduled.last_backup()
    assert last is not None and last.ok and last.file == written.name
    assert last.size == written.stat().st_size and last.ok_at == due
    [run] = db.session.scalars(
        select(ScheduleRun).where(ScheduleRun.schedule_id == schedule.id)
    ).all()
    assert run.outcome == RunOutcome.FIRED.value
    assert read(run.detail).startswith(f"Backup written: {written.name}, ")
    assert read(run.detail).endswith("; 2 older backups removed.")


def test_a_failed_backup_is_recorded_and_shown(
    app: Flask, folder: Path, client: FlaskClient, login: Any, fixed_clock: Any
) -> None:
    fixed_clock(NOW)
    good = scheduled.run_scheduled_backup(NOW - timedelta(hours=5))
    assert good is not None and good.ok
    db.session.commit()
    folder.rename(folder.with_name("moved"))  # the disk was unmounted, say

    failed = scheduled.run_scheduled_backup(NOW)
    db.session.commit()
    assert failed is not None and not failed.ok
    assert not list(folder.parent.glob("moved/*.partial"))
    assert failed.ok_at == NOW - timedelta(hours=5)  # the last good one is still known

    login(Role.ADMIN)
    page = text_of(client.get("/privacy/backups/"))
    assert "The backup failed:" in element_text(page, "backup-last-try")
    assert "does not exist" in element_text(page, "backup-last-try")
    assert "5 hours ago" in element_text(page, "backup-last-good")
    # The start page tells admins too.
    home = text_of(client.get("/"))
    assert "The backup failed:" in element_text(home, "backup-warning")


@pytest.mark.parametrize(
    ("hours", "warned"),
    [(47, False), (49, True)],
)
def test_the_warning_comes_after_48_hours_without_a_good_backup(
    app: Flask, client: FlaskClient, login: Any, fixed_clock: Any, hours: int, warned: bool
) -> None:
    fixed_clock(NOW)
    scheduled.run_scheduled_backup(NOW)
    db.session.commit()
    fixed_clock(NOW + timedelta(hours=hours))

    login(Role.ADMIN)
    home = text_of(client.get("/"))
    page = text_of(client.get("/privacy/backups/"))
    assert ('id="backup-warning"' in home) is warned
    assert ('id="backup-warning"' in page) is warned
    if warned:
        assert "The last good backup is 49 hours old" in element_text(home, "backup-warning")
    assert "campaign-backup-20270301T120000Z.age" in element_text(page, "backup-archives")
    assert "the newest 2 backups" in element_text(page, "backup-keep")


def test_only_admins_see_backups_and_their_warning(
    app: Flask, client: FlaskClient, login: Any, fixed_clock: Any
) -> None:
    fixed_clock(NOW)  # configured, and no backup ever made: admins are warned
    login(Role.EDITOR)
    assert client.get("/privacy/backups/").status_code == 403
    assert 'id="backup-warning"' not in text_of(client.get("/"))


def test_the_page_says_how_to_configure_backups(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    app.config["BACKUP_FOLDER"] = ""  # the keys alone are not enough
    login(Role.ADMIN)
    page = text_of(client.get("/privacy/backups/"))
    words = element_text(page, "backups-not-configured")
    assert "CAMPAIGN_BACKUP_FOLDER" in words and "CAMPAIGN_BACKUP_RECIPIENTS" in words
    assert "docs/deploy.md" in words
    # The start page tells admins, and links the backups page.
    home = text_of(client.get("/"))
    assert "Daily backups are not configured" in element_text(home, "backup-warning")
    assert 'href="/privacy/backups/"' in home
    # Nothing is scheduled while it is not configured.
    ensure_system_schedules(NOW, db.session.commit)
    assert scheduled.backup_schedule() is None


def test_the_workers_tick_makes_both_daily_schedules_once(app: Flask) -> None:
    from workers import jobs
    from workers.context import set_app

    set_app(app)
    jobs.run_scheduler()
    jobs.run_scheduler()  # the next minute: nothing more is made
    db.session.expire_all()
    kinds = sorted(db.session.scalars(select(Schedule.kind)))
    assert kinds == [ScheduleKind.BACKUP.value, ScheduleKind.RETENTION.value]
    assert all(s.next_run_at is not None for s in db.session.scalars(select(Schedule)))


# --- review findings (decision 0088, "After review") -------------------------------------------


def test_a_file_stamped_in_the_future_never_rotates_todays_backup_away(
    app: Flask, folder: Path, fixed_clock: Any
) -> None:
    fixed_clock(NOW)
    ahead = _old_archive(folder, "20300101T000000Z")  # a clock once set years ahead
    older = _old_archive(folder, "20270228T013000Z")
    oldest = _old_archive(folder, "20270227T013000Z")

    record = scheduled.run_scheduled_backup(NOW)

    written = folder / "campaign-backup-20270301T120000Z.age"
    assert record is not None and record.ok and written.is_file()
    assert ahead.exists() and older.exists() and not oldest.exists()


def test_the_backup_just_written_is_kept_even_when_keep_is_reached_by_others(
    app: Flask, folder: Path, fixed_clock: Any
) -> None:
    fixed_clock(NOW)
    # Named after the run (a clock a few hours ahead last night): newer than today's by name.
    _old_archive(folder, "20270301T180000Z")
    _old_archive(folder, "20270301T170000Z")
    record = scheduled.run_scheduled_backup(NOW)
    assert record is not None and record.ok
    assert (folder / "campaign-backup-20270301T120000Z.age").is_file()


def test_a_link_named_as_a_backup_is_neither_listed_nor_followed(
    app: Flask, folder: Path, tmp_path: Path, fixed_clock: Any
) -> None:
    fixed_clock(NOW)
    precious = tmp_path / "precious.db"
    precious.write_bytes(b"somebody else's data")
    (folder / "campaign-backup-20200101T000000Z.age").symlink_to(precious)
    assert scheduled.kept_archives(folder) == []
    _old_archive(folder, "20270228T013000Z")
    _old_archive(folder, "20270227T013000Z")
    scheduled.run_scheduled_backup(NOW)
    assert precious.read_bytes() == b"somebody else's data"
    assert (folder / "campaign-backup-20200101T000000Z.age").is_symlink()


def test_a_backup_that_never_finished_is_shown_and_its_leftover_removed(
    app: Flask, folder: Path, client: FlaskClient, login: Any, fixed_clock: Any
) -> None:
    fixed_clock(NOW)
    assert scheduled.run_scheduled_backup(NOW - timedelta(hours=30)) is not None
    # Last night's job was queued, started, and its worker was killed mid-way.
    leftover = folder / "campaign-backup-20270301T013000Z.age.partial"
    leftover.write_bytes(b"half a backup")
    scheduled._note_moment("queued_at", NOW - timedelta(hours=10, minutes=1))
    scheduled._note_moment("started_at", NOW - timedelta(hours=10))
    db.session.commit()

    login(Role.ADMIN)
    home = text_of(client.get("/"))
    assert "never finished" in element_text(home, "backup-interrupted")
    assert "never finished" in element_text(
        text_of(client.get("/privacy/backups/")), "backup-interrupted"
    )

    record = scheduled.run_scheduled_backup(NOW)  # tonight's run
    db.session.commit()
    assert record is not None and record.ok
    assert not leftover.exists()
    assert 'id="backup-interrupted"' not in text_of(client.get("/"))


def test_a_failure_is_read_in_each_admins_language(app: Flask, folder: Path) -> None:
    from flask_babel import force_locale

    folder.rmdir()
    record = scheduled.run_scheduled_backup(NOW)
    assert record is not None and not record.ok
    with app.test_request_context(), force_locale("fr"):
        words = read(record.error)
    assert words.startswith("La sauvegarde a échoué\xa0: le dossier ") and "n’existe pas" in words


def test_the_start_page_never_lists_the_backup_folder(
    app: Flask, client: FlaskClient, login: Any, fixed_clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixed_clock(NOW)

    def hung(folder: Path) -> list[scheduled.Archive]:  # a network disk that does not answer
        raise AssertionError("the start page listed the backup folder")

    monkeypatch.setattr(scheduled, "kept_archives", hung)
    login(Role.ADMIN)
    home = client.get("/")
    assert home.status_code == 200
    assert "No backup has worked yet" in element_text(text_of(home), "backup-warning")


def test_an_old_failure_is_not_shown_once_backups_are_switched_off(
    app: Flask, folder: Path, client: FlaskClient, login: Any
) -> None:
    folder.rmdir()
    scheduled.run_scheduled_backup(NOW)
    db.session.commit()
    app.config["BACKUP_FOLDER"] = ""
    assert not scheduled.backup_status(NOW).has_failed
    login(Role.ADMIN)
    home = text_of(client.get("/"))
    assert 'id="backup-failure"' not in home
    assert "Daily backups are not configured" in element_text(home, "backup-warning")
