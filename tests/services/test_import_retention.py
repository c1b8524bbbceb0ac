"""Contact files are kept no longer than needed: they can hold at-risk people's details."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from campaign.extensions import db
from campaign.models import ContactImport, ImportStatus, Role
from campaign.services.contacts import importing

HEADER = "given_name,family_name,email\n"
MAPPING = {"given_name": "given_name", "family_name": "family_name", "email": "email"}


def _queued_import(tmp_path: Path, text: str) -> ContactImport:
    path = tmp_path / "upload.csv"
    path.write_text(HEADER + text, encoding="utf-8")
    record = ContactImport(
        original_filename="contacts.csv",
        stored_path=str(path),
        status=ImportStatus.QUEUED.value,
        mapping=MAPPING,
    )
    db.session.add(record)
    db.session.commit()
    return record


def test_the_upload_is_deleted_once_the_import_has_run(app: Flask, tmp_path: Path) -> None:
    from workers import context, jobs

    record = _queued_import(tmp_path, "Anna,Muster,a@example.org\nBad,Row,nope\n")
    context.set_app(app)
    jobs.import_contacts(record.id)
    db.session.expire_all()
    done = db.session.get(ContactImport, record.id)
    assert done is not None and done.status == "finished"
    assert not Path(done.stored_path).exists()
    # The rejected rows stay downloadable for a while, so they can be corrected.
    assert Path(done.rejects_path).exists()


def test_the_upload_is_deleted_when_the_import_fails(app: Flask, tmp_path: Path) -> None:
    from workers import context, jobs

    record = _queued_import(tmp_path, "Anna,Muster,a@example.org\n")
    record.mapping = {"nonexistent column": "email"}
    db.session.commit()
    context.set_app(app)
    jobs.import_contacts(record.id)
    db.session.expire_all()
    failed = db.session.get(ContactImport, record.id)
    assert failed is not None and failed.status == "failed"
    assert not Path(failed.stored_path).exists()


def test_old_rejects_files_and_abandoned_uploads_are_purged(app: Flask, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    rejects = tmp_path / "old-rejects.csv"
    rejects.write_text("line,column,reason\n2,email,bad\n")
    recent_rejects = tmp_path / "recent-rejects.csv"
    recent_rejects.write_text("line,column,reason\n2,email,bad\n")
    abandoned = tmp_path / "abandoned.csv"
    abandoned.write_text(HEADER)
    db.session.add_all(
        [
            ContactImport(
                original_filename="old.csv",
                stored_path=str(tmp_path / "gone.csv"),
                status=ImportStatus.FINISHED.value,
                rejects_path=str(rejects),
                finished_at=now - timedelta(days=importing.REJECTS_KEPT_DAYS, hours=1),
            ),
            ContactImport(
                original_filename="recent.csv",
                stored_path=str(tmp_path / "gone2.csv"),
                status=ImportStatus.FINISHED.value,
                rejects_path=str(recent_rejects),
                finished_at=now - timedelta(days=1),
            ),
            ContactImport(
                original_filename="never-started.csv",
                stored_path=str(abandoned),
                status=ImportStatus.UPLOADED.value,
                created_at=now - timedelta(hours=importing.UNSTARTED_KEPT_HOURS + 1),
            ),
        ]
    )
    db.session.commit()
    assert importing.purge_old_import_files(now=now) == 2
    db.session.commit()
    assert not rejects.exists() and recent_rejects.exists() and not abandoned.exists()
    never_started = (
        db.session.query(ContactImport).filter_by(original_filename="never-started.csv").one()
    )
    assert never_started.status == "failed"
    assert "Upload it again" in never_started.error


def test_visiting_the_import_page_purges_expired_files(
    app: Flask,
    client: FlaskClient,
    login,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    rejects = tmp_path / "old-rejects.csv"
    rejects.write_text("line,column,reason\n")
    db.session.add(
        ContactImport(
            original_filename="old.csv",
            stored_path=str(tmp_path / "gone.csv"),
            status=ImportStatus.FINISHED.value,
            rejects_path=str(rejects),
            finished_at=datetime.now(UTC) - timedelta(days=30),
        )
    )
    db.session.commit()
    login(Role.EDITOR)
    assert client.get("/imports/").status_code == 200
    assert not rejects.exists()
