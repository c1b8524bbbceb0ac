"""`write_backup` and `restore_backup`: a SQLite installation restored row for row, its
instance files with it; every bad input refused in words, nothing written (decision 0087)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Campaign, CampaignStatus, Contact, Delivery
from campaign.services.backups import hold as holds
from campaign.services.backups.archive import BackupError, write_backup
from campaign.services.backups.restore import RestoreError, restore_backup
from campaign.services.backups.snapshot import code_revisions, database_revision
from tests import servers
from tests.backups.helpers import (
    archive_as_of,
    close,
    installation,
    make_identity,
    rewrite_archive,
    rows_of,
    tables_with_rows,
)
from tests.factories import CampaignFactory, ContactFactory

# The archive is engine-neutral; these tests make it from SQLite (the drill: test_drill.py).
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

SECRET = "0123456789abcdef" * 4 + "\n"


def _source_data(app: Flask) -> int:
    """Contacts, a campaign half sent (its ledger), and the instance's files."""
    ContactFactory(email="lone.reader@example.org", given_name="Lone")
    campaign: Any = CampaignFactory(
        name="Release the defenders",
        recipients=["envoy1@embassy.example", "envoy2@embassy.example"],
        launched=True,
    )
    db.session.commit()
    instance = Path(app.instance_path)
    (instance / "secret_key").write_text(SECRET)
    (instance / "secret_key").chmod(0o600)
    (instance / "erasure_key").write_text("e" * 64 + "\n")
    (instance / "attachments" / "7").mkdir(parents=True, exist_ok=True)
    (instance / "attachments" / "7" / "annex.pdf").write_bytes(b"%PDF-1.4 annex")
    (instance / "devmail").mkdir(exist_ok=True)
    (instance / "devmail" / "letter.eml").write_bytes(b"Subject: dev\r\n\r\nnot archived")
    (instance / "uploads").mkdir(exist_ok=True)
    (instance / "uploads" / "contacts.csv").write_bytes(b"email\r\nupload@example.org\r\n")
    return int(campaign.id)


@pytest.fixture
def target(
    request: pytest.FixtureRequest, tmp_path: Path, redis_server: servers.RedisServer
) -> Iterator[Flask]:
    """A second installation to restore into: a migrated, empty SQLite file (the restore then
    needs no migration), or for a test that asks for `fresh_target` a file not made yet."""
    database = tmp_path / "copy" / "restored.sqlite3"
    database.parent.mkdir(parents=True)
    if "fresh_target" not in request.fixturenames:
        shutil.copyfile(request.getfixturevalue("sqlite_template"), database)
    app = installation(tmp_path / "copy", redis_server.url, f"sqlite:///{database}")
    yield app
    close(app)


@pytest.fixture
def fresh_target() -> None:
    """Asked for by a test whose `target` is a database file not made yet (see `target`)."""


def test_a_backup_restores_into_an_empty_database_row_for_row(
    app: Flask, fresh_target: None, target: Flask, tmp_path: Path
) -> None:
    campaign_id = _source_data(app)
    identity, public = make_identity(tmp_path)
    archive = tmp_path / "backup.age"
    shown: list[tuple[int, int]] = []

    manifest = write_backup(archive, [public], progress=lambda d, t: shown.append((d, t)))

    # Encrypted: no address, no secret readable in the file; readable by its owner alone.
    raw = archive.read_bytes()
    assert raw.startswith(b"age-encryption.org/v1")
    assert b"envoy1@embassy.example" not in raw and SECRET.encode() not in raw
    assert archive.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "backup.age.partial").exists()
    assert manifest.size_bytes == len(raw)
    assert manifest.schema_revision == code_revisions()[0]
    assert manifest.table_counts["contacts"] == 3 and manifest.table_counts["deliveries"] == 2
    assert shown[-1] == (sum(manifest.table_counts.values()),) * 2
    # The secrets and the statement's annex; never the dev mailbox, nor uploads unasked.
    assert sorted(f["path"] for f in manifest.files) == [
        "attachments/7/annex.pdf",
        "erasure_key",
        "secret_key",
    ]

    with target.app_context():
        result = restore_backup(archive, identity)
        assert result.rows == sum(manifest.table_counts.values())
        campaign = db.session.get(Campaign, campaign_id)
        assert campaign is not None
        # It was sending: restored paused, saying why, its two letters still queued.
        assert campaign.status == CampaignStatus.PAUSED.value
        assert "restore" in campaign.status_reason
        statuses = db.session.scalars(
            select(Delivery.status).where(Delivery.campaign_id == campaign_id)
        )
        assert sorted(statuses) == ["queued", "queued"]
        assert holds.sending_is_held()
        # The restored database takes new rows after the restored ids.
        new = Contact(email="after@example.org", email_key="after@example.org")
        db.session.add(new)
        db.session.flush()
        assert new.id == 4
        db.session.rollback()

    for table in db.metadata.sorted_tables:
        before, after = rows_of(app, table.name), rows_of(target, table.name)
        if table.name in ("audit_events", "installation_settings"):
            after = after[: len(before)]  # the restore adds its own (the hold, the pause)
        if table.name == "campaigns":  # paused by the restore (above), and so updated
            for row, was in zip(after, before, strict=True):
                row.update(status="sending", status_reason="", updated_at=was["updated_at"])
        assert after == before, table.name

    copied = Path(target.instance_path)
    assert (copied / "secret_key").read_text() == SECRET
    assert (copied / "secret_key").stat().st_mode & 0o777 == 0o600
    assert (copied / "attachments" / "7" / "annex.pdf").read_bytes() == b"%PDF-1.4 annex"
    assert not (copied / "devmail").exists() and not (copied / "uploads").exists()


def test_uploads_go_in_only_when_asked(app: Flask, tmp_path: Path) -> None:
    _source_data(app)
    _identity, public = make_identity(tmp_path)
    manifest = write_backup(tmp_path / "with.age", [public], include_uploads=True)
    assert "uploads/contacts.csv" in {f["path"] for f in manifest.files}
    assert manifest.includes_uploads


def _mount_tmpfs(folder: Path, *options: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        servers.service_missing("tmpfs", "mounting a small file system needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        servers.service_missing("tmpfs", done.stderr.strip())


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 kB file system: the disk that fills during the backup."""
    folder = tmp_path / "small-disk"
    _mount_tmpfs(folder, "size=64k", "mode=0700")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "read-only"
    _mount_tmpfs(folder, "size=64k", "ro")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_leaves_no_file_and_says_so(
    app: Flask, small_disk: Path, tmp_path: Path
) -> None:
    _source_data(app)
    # More than the disk holds, and not compressible: encrypted it stays as large.
    (Path(app.instance_path) / "attachments" / "7" / "big.pdf").write_bytes(os.urandom(200_000))
    _identity, public = make_identity(tmp_path)
    with pytest.raises(BackupError) as refused:
        write_backup(small_disk / "backup.age", [public])
    assert "is full" in str(refused.value) and str(small_disk / "backup.age") in str(refused.value)
    assert list(small_disk.iterdir()) == []  # neither the archive nor a .partial


def test_an_unwritable_folder_is_named(app: Flask, read_only_folder: Path, tmp_path: Path) -> None:
    _identity, public = make_identity(tmp_path)
    with pytest.raises(BackupError) as refused:
        write_backup(read_only_folder / "backup.age", [public])
    assert f"{read_only_folder} cannot be written to" in str(refused.value)
    with pytest.raises(BackupError, match="does not exist"):
        write_backup(tmp_path / "no-such-folder" / "backup.age", [public])


def test_no_or_a_wrong_public_key_is_refused_before_anything_is_written(
    app: Flask, tmp_path: Path
) -> None:
    with pytest.raises(BackupError, match="no public key"):
        write_backup(tmp_path / "a.age", [])
    with pytest.raises(BackupError, match="not an age public key"):
        write_backup(tmp_path / "a.age", ["age1notakey"])
    assert list(tmp_path.glob("a.age*")) == []


@pytest.fixture
def archive(app: Flask, tmp_path: Path) -> tuple[Path, Path, str]:
    """A good archive of a small installation: (archive, identity file, public key)."""
    _source_data(app)
    identity, public = make_identity(tmp_path)
    path = tmp_path / "backup.age"
    write_backup(path, [public])
    return path, identity, public


def _refused(target: Flask, archive: Path, identity: Path) -> str:
    with target.app_context():
        with pytest.raises(RestoreError) as refused:
            restore_backup(archive, identity)
        db.session.remove()
    return str(refused.value)


def _nothing_restored(target: Flask) -> None:
    assert tables_with_rows(target) == []
    assert not (Path(target.instance_path) / "secret_key").exists()
    assert not (Path(target.instance_path) / "attachments").exists()


def test_a_truncated_archive_is_refused_and_nothing_written(
    archive: tuple[Path, Path, str], target: Flask, tmp_path: Path
) -> None:
    path, identity, _public = archive
    cut = tmp_path / "cut.age"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    assert "damaged or incomplete" in _refused(target, cut, identity)
    _nothing_restored(target)
    # Cut at the very end (the last chunk's tag): found too, though the tar looks whole.
    cut.write_bytes(path.read_bytes()[:-10])
    assert "damaged or incomplete" in _refused(target, cut, identity)
    _nothing_restored(target)


def test_a_corrupted_archive_is_refused_and_nothing_written(
    archive: tuple[Path, Path, str], target: Flask, tmp_path: Path
) -> None:
    path, identity, _public = archive
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    bad = tmp_path / "bad.age"
    bad.write_bytes(bytes(damaged))
    message = _refused(target, bad, identity)
    assert "damaged or incomplete" in message and str(bad) in message
    _nothing_restored(target)
    not_age = tmp_path / "notes.txt"
    not_age.write_text("just some notes\n")
    assert "not a readable backup" in _refused(target, not_age, identity)


def test_the_wrong_identity_is_refused(
    archive: tuple[Path, Path, str], target: Flask, tmp_path: Path
) -> None:
    path, _identity, _public = archive
    other, _other_public = make_identity(tmp_path)
    assert "was not encrypted to this identity" in _refused(target, path, other)
    empty = tmp_path / "empty-identity.txt"
    empty.write_text("# nothing here\n")
    assert "holds no age identity" in _refused(target, path, empty)
    _nothing_restored(target)


def test_an_archive_from_a_newer_schema_is_refused_naming_both_revisions(
    archive: tuple[Path, Path, str], target: Flask, tmp_path: Path
) -> None:
    path, identity, public = archive
    newer = tmp_path / "newer.age"
    rewrite_archive(path, newer, identity, public, schema_revision="0099", app_version="9.0")
    message = _refused(target, newer, identity)
    head = code_revisions()[0]
    assert "0099" in message and f"newer than this code's {head}" in message and "9.0" in message
    _nothing_restored(target)


def test_a_database_with_data_is_refused_unless_replaced(
    archive: tuple[Path, Path, str], target: Flask
) -> None:
    path, identity, _public = archive
    with target.app_context():
        ContactFactory(email="already.here@example.org")
        db.session.commit()
    message = _refused(target, path, identity)
    assert "already holds data (" in message and "contacts" in message and "--replace" in message
    with target.app_context():
        assert db.session.scalars(select(Contact.email)).all() == ["already.here@example.org"]
        assert not holds.sending_is_held()
        restore_backup(path, identity, replace=True)
        emails = set(db.session.scalars(select(Contact.email)))
        assert "already.here@example.org" not in emails
        assert "lone.reader@example.org" in emails


def test_a_fresh_instance_folders_own_key_is_set_aside_for_the_backups(
    archive: tuple[Path, Path, str], target: Flask
) -> None:
    """`campaign restore` into a new instance folder: the command's own start made a random
    `secret_key` there; the empty database needs none of it, so the backup's key takes its
    place (without it the restored SMTP passwords could not be read) and the new one is
    kept aside, not lost."""
    path, identity, _public = archive
    own = Path(target.instance_path) / "secret_key"
    own.parent.mkdir(parents=True, exist_ok=True)
    own.write_text("another-key\n")
    assert tables_with_rows(target) == []
    with target.app_context():
        restore_backup(path, identity)
    assert own.read_text() == SECRET
    assert (own.parent / "secret_key.before-restore").read_text() == "another-key\n"


def test_a_database_in_use_is_refused(
    archive: tuple[Path, Path, str], target: Flask, tmp_path: Path
) -> None:
    path, identity, _public = archive
    database = tmp_path / "copy" / "restored.sqlite3"
    other = sqlite3.connect(database, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another program writing
        message = _refused(target, path, identity)
    finally:
        other.close()
    assert f"the database {database} is in use by another program" in message


def test_an_archive_of_the_previous_schema_is_migrated_forward(
    archive: tuple[Path, Path, str], fresh_target: None, target: Flask, tmp_path: Path
) -> None:
    from alembic.script import ScriptDirectory
    from flask_migrate import upgrade

    from campaign.config import MIGRATIONS_DIR

    path, identity, public = archive
    head = code_revisions()[0]
    previous = ScriptDirectory(str(MIGRATIONS_DIR)).get_revision(head).down_revision
    assert isinstance(previous, str)
    # What the previous version's database looks like: migrated to that revision.
    shape = installation(
        tmp_path / "shape", target.config["REDIS_URL"], f"sqlite:///{tmp_path / 'shape.sqlite3'}"
    )
    with shape.app_context():
        upgrade(revision=previous)
    older = tmp_path / "older.age"
    archive_as_of(path, older, identity, public, previous, shape)
    close(shape)

    with target.app_context():
        result = restore_backup(older, identity)
        assert result.manifest.schema_revision == previous
        with db.engine.connect() as connection:
            assert database_revision(connection) == head  # migrated forward after the load
        assert "lone.reader@example.org" in set(db.session.scalars(select(Contact.email)))
        assert holds.sending_is_held()
