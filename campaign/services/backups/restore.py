"""Restore an archive (archive.py) into the configured database, which must be empty.

Two passes over the encrypted file: the first decrypts and checks everything (age's
authentication, every table's and file's SHA-256 and row count, the schema revision)
and writes nothing; only then the second loads. The target is migrated to the archive's
revision, the rows go in parents first (a column pointing at a table not loaded yet is
filled in afterwards), PostgreSQL's sequences are moved past the ids, the counts are
checked, the schema migrated to this code's head, and the restore hold placed
(hold.py): the copy sends nothing until an admin confirms. Decision 0087.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import tarfile
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from dataclasses import replace as changed
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import (
    Connection,
    MetaData,
    Table,
    Text,
    bindparam,
    cast,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import (
    DataError,
    IntegrityError,
    OperationalError,
    SAWarning,
    SQLAlchemyError,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

from campaign.extensions import db
from campaign.models.search_key import sync_search_index
from campaign.services.backups import hold as holds
from campaign.services.backups.archive import (
    FORMAT_VERSION,
    MANIFEST,
    SECRET_FILES,
    BackupError,
    Manifest,
    decrypted,
    read_identities,
)
from campaign.services.backups.snapshot import (
    code_revisions,
    database_revision,
    decoders,
    is_backed_up,
)

ROWS_PER_INSERT = 1000
SETTINGS_TABLE = "installation_settings"
STAGING_PREFIX = ".restore-"


class RestoreError(Exception):
    """A restore refused or failed, in words for whoever asked."""


@dataclass
class RestoreResult:
    manifest: Manifest
    rows: int
    files: list[str] = field(default_factory=list)
    hold: holds.RestoreHold | None = None


Progress = Callable[[str, int, int], None]


def _member_table(name: str) -> str | None:
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == "tables" and parts[2].endswith(".jsonl"):
        return parts[1]
    return None


def _member_file(name: str) -> str | None:
    """The instance-relative path of a files/ member, or None; never outside the folder."""
    if not name.startswith("files/"):
        return None
    relative = PurePosixPath(name[len("files/") :])
    if relative.is_absolute() or not relative.parts or ".." in relative.parts:
        raise RestoreError(
            _("the archive holds a file outside the instance folder: %(name)s", name=name)
        )
    return relative.as_posix()


def _tar_members(stream: IO[bytes]) -> Iterator[tuple[tarfile.TarInfo, bytes | IO[bytes]]]:
    with (
        gzip.GzipFile(fileobj=stream, mode="rb") as unzipped,
        tarfile.open(fileobj=unzipped, mode="r|") as tar,
    ):
        for member in tar:
            if not member.isfile():
                continue
            handle = tar.extractfile(member)
            assert handle is not None
            yield member, handle


def verify_archive(path: Path, identities: list[Any], progress: Progress | None = None) -> Manifest:
    """Decrypt the whole archive and check it against its manifest; write nothing."""
    tables: dict[str, tuple[Any, int]] = {}
    files: dict[str, tuple[str, int]] = {}
    manifest_raw: bytes | None = None
    done = 0
    try:
        with decrypted(path, identities) as stream:
            for member, handle in _tar_members(stream):
                assert not isinstance(handle, bytes)
                table = _member_table(member.name)
                if table is not None:
                    data = handle.read()
                    sha, rows = tables.get(table) or (hashlib.sha256(), 0)
                    sha.update(data)
                    added = data.count(b"\n")
                    tables[table] = (sha, rows + added)
                    done += added
                    if progress:
                        progress("check", done, 0)
                elif member.name == MANIFEST:
                    manifest_raw = handle.read()
                else:
                    relative = _member_file(member.name)
                    if relative is None:
                        continue
                    sha = hashlib.sha256()
                    size = 0
                    while chunk := handle.read(1024 * 1024):
                        sha.update(chunk)
                        size += len(chunk)
                    files[relative] = (sha.hexdigest(), size)
            _drain(stream)
    except BackupError as error:
        raise RestoreError(str(error)) from None
    except (tarfile.TarError, EOFError, OSError, zlib.error):
        raise RestoreError(_damaged(path)) from None
    if manifest_raw is None:
        raise RestoreError(_damaged(path))
    try:
        manifest = Manifest.from_json(manifest_raw)
    except (ValueError, KeyError, TypeError):
        raise RestoreError(_damaged(path)) from None
    if manifest.format_version > FORMAT_VERSION:
        raise RestoreError(
            _(
                "%(path)s was made by a newer version of this application (%(version)s, "
                "archive format %(format)d): install it or a later one to restore it",
                path=path,
                version=manifest.app_version,
                format=manifest.format_version,
            )
        )
    for entry in manifest.tables:
        found = tables.get(entry["name"])
        if found is None or found[0].hexdigest() != entry["sha256"] or found[1] != entry["rows"]:
            raise RestoreError(
                _(
                    "%(path)s does not match its manifest (table %(table)s): it was changed "
                    "after it was made; nothing was restored",
                    path=path,
                    table=entry["name"],
                )
            )
    for entry in manifest.files:
        got = files.get(entry["path"])
        if got is None or got != (entry["sha256"], entry["size"]):
            raise RestoreError(
                _(
                    "%(path)s does not match its manifest (file %(file)s): it was changed "
                    "after it was made; nothing was restored",
                    path=path,
                    file=entry["path"],
                )
            )
    return manifest


def _drain(stream: IO[bytes]) -> None:
    """Read to the end: age checks the last chunk only there (a cut in the tar's padding)."""
    while stream.read(1024 * 1024):
        pass


def _damaged(path: Path) -> str:
    return _(
        "%(path)s is damaged or incomplete (cut short or changed): it cannot be read; "
        "nothing was restored",
        path=path,
    )


def check_revision(manifest: Manifest) -> None:
    """Refuse an archive from a schema this code does not know (a newer version's)."""
    head, known = code_revisions()
    if manifest.schema_revision not in known:
        raise RestoreError(
            _(
                "the backup's database is at schema revision %(archive)s, newer than this "
                "code's %(head)s (it was made by version %(version)s): install that version "
                "or a later one, then restore",
                archive=manifest.schema_revision,
                head=head,
                version=manifest.app_version,
            )
        )


def _database_name() -> str:
    url = db.engine.url
    if url.get_backend_name() == "sqlite":
        return str(url.database or "")
    return str(url.render_as_string(hide_password=True))


def check_not_in_use() -> None:
    """Refuse a database another program is using (the web app, a worker)."""
    engine = db.engine
    name = _database_name()
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if not database or database == ":memory:" or not Path(database).exists():
            return
        probe = sqlite3.connect(database, timeout=1, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
        except sqlite3.OperationalError:
            raise RestoreError(
                _(
                    "the database %(name)s is in use by another program (it is locked): "
                    "stop the web app, the workers and the scheduler first",
                    name=name,
                )
            ) from None
        finally:
            probe.close()
        return
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            others = connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                )
            ).scalar()
        if others:
            raise RestoreError(
                _(
                    "the database %(name)s is in use: %(count)d other session(s) are "
                    "connected to it (the web app, workers?); stop them first",
                    name=name,
                    count=int(others),
                )
            )


def tables_with_rows(connection: Connection) -> list[str]:
    """The target's tables that hold a row (the migration marker and search index aside)."""
    found = []
    for name in sorted(inspect(connection).get_table_names()):
        if not is_backed_up(name):
            continue
        quoted = connection.dialect.identifier_preparer.quote(name)
        if connection.exec_driver_sql(f"SELECT 1 FROM {quoted} LIMIT 1").first():  # noqa: S608
            found.append(name)
    return found


def _wipe(connection: Connection) -> None:
    """Drop every table (and PostgreSQL's sequences and types) of the target."""
    inspector = inspect(connection)
    quote = connection.dialect.identifier_preparer.quote
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        for (trigger,) in connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        ).all():
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {quote(trigger)}")
        names = [
            row[0]
            for row in connection.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                "AND sql LIKE 'CREATE VIRTUAL%'"
            ).all()
        ]
        for name in names:  # the search index's FTS5 table drops its own shadow tables
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {quote(name)}")
        for name in inspect(connection).get_table_names():
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {quote(name)}")
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        return
    for name in inspector.get_table_names():
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {quote(name)} CASCADE")
    if connection.dialect.name == "postgresql":
        for name in inspector.get_sequence_names():
            connection.exec_driver_sql(f"DROP SEQUENCE IF EXISTS {quote(name)} CASCADE")
        for enum in inspector.get_enums():  # type: ignore[attr-defined]
            connection.exec_driver_sql(f"DROP TYPE IF EXISTS {quote(enum['name'])} CASCADE")


def _migrate(revision: str) -> None:
    from flask_migrate import upgrade

    db.session.remove()
    upgrade(revision=revision)
    db.engine.dispose()


class _JsonText(TypeDecorator[str]):
    """A JSON column written from its JSON text (the archive's), cast by the server."""

    impl = Text
    cache_ok = True

    def __init__(self, target: TypeEngine[Any]) -> None:
        super().__init__()
        self.target = target

    def bind_expression(self, bindvalue: Any) -> Any:
        return cast(bindvalue, self.target)


def _json_text(reflected: TypeEngine[Any], connection: Connection) -> TypeEngine[Any]:
    if connection.dialect.name == "sqlite":
        return Text()  # SQLite keeps JSON as its text
    return _JsonText(reflected)


class _Loader:
    """Inserts the archive's rows table by table, parents first."""

    def __init__(self, connection: Connection, manifest: Manifest, hold_json: str) -> None:
        self.connection = connection
        self.specs = {entry["name"]: entry for entry in manifest.tables}
        metadata = MetaData()
        with warnings.catch_warnings():
            # Expression indexes (lower(email)) are not reflected: only the columns are needed.
            warnings.simplefilter("ignore", SAWarning)
            metadata.reflect(connection)
        self.tables = {name: t for name, t in metadata.tables.items() if is_backed_up(name)}
        missing = [name for name in self.specs if name not in self.tables]
        if missing:
            raise RestoreError(
                _(
                    "the database after migration has no table %(tables)s that the backup "
                    "holds: the migrations and the archive disagree",
                    tables=", ".join(missing),
                )
            )
        settings = self.tables.get(SETTINGS_TABLE)
        if settings is None:
            raise RestoreError(
                _(
                    "the database after migration has no table %(tables)s that the backup "
                    "holds: the migrations and the archive disagree",
                    tables=SETTINGS_TABLE,
                )
            )
        # The hold goes in before any row, in the same transaction: no moment in which the
        # rows are there and the hold is not (a kill, a failed migration after the load).
        connection.execute(
            settings.insert(),
            {"name": holds.SETTING, "value": hold_json, "updated_at": datetime.now(UTC)},
        )
        self.settings = settings
        self.hold_json = hold_json
        self.skipped_holds = 0
        self.last: str | None = None
        # A step after the rows (their count, the id sequences, the search index, the
        # commit): what a failure names instead of the last table loaded.
        self.step = ""
        self.loaded: set[str] = set()
        self.deferred: list[tuple[Table, str, list[dict[str, Any]]]] = []
        self.current: str | None = None
        self.batch: list[dict[str, Any]] = []
        self.rows: dict[str, int] = {}
        self.sha: dict[str, Any] = {}

    def start(self, name: str) -> None:
        self.finish()
        if name not in self.specs:
            raise RestoreError(
                _(
                    "the archive holds rows of the table %(table)s, which its manifest does "
                    "not name: it is damaged; nothing was restored",
                    table=name,
                )
            )
        if name in self.loaded:
            raise RestoreError(_("the archive holds the rows of %(table)s twice", table=name))
        table = self.tables[name]
        spec = self.specs[name]
        self.current = name
        self.last = name
        self.table = table
        self.columns: list[str] = list(spec["columns"])
        unknown = [c for c in self.columns if c not in table.columns]
        if unknown:
            raise RestoreError(
                _(
                    "the table %(table)s has no column %(columns)s that the backup holds",
                    table=name,
                    columns=", ".join(unknown),
                )
            )
        for named, kind in zip(self.columns, spec["kinds"], strict=True):
            if kind == "json":
                table.c[named].type = _json_text(table.c[named].type, self.connection)
        self.decode = [(i, d) for i, d in enumerate(decoders(list(spec["kinds"]))) if d is not None]
        self.primary = [c.name for c in table.primary_key.columns]
        # Pointers to a table not loaded yet (or to this one): written after every table is in.
        self.later: list[tuple[str, list[dict[str, Any]]]] = []
        for constraint in table.foreign_key_constraints:
            target = constraint.referred_table.name
            if target in self.loaded and target != name:
                continue
            for column in constraint.columns:
                if column.nullable and column.name in self.columns and self.primary:
                    values: list[dict[str, Any]] = []
                    self.later.append((column.name, values))
                    self.deferred.append((table, column.name, values))
        self.rows[name] = 0
        self.sha[name] = hashlib.sha256()

    def add(self, data: bytes) -> int:
        self.sha[self.current or ""].update(data)
        added = 0
        columns = self.columns
        for line in data.splitlines():
            values = json.loads(line)
            for index, decode in self.decode:
                if values[index] is not None:
                    values[index] = decode(values[index])
            row = dict(zip(columns, values, strict=True))
            added += 1
            if self.current == SETTINGS_TABLE and row.get("name") == holds.SETTING:
                # A backup of a held copy: this restore's own hold (written first) stands,
                # and keeps what the earlier hold stopped (to list, and to turn on again).
                self.skipped_holds += 1
                self._carry_over(row.get("value"))
                continue
            for column, later in self.later:
                if row[column] is not None:
                    later.append(
                        {**{f"pk_{p}": row[p] for p in self.primary}, "value": row[column]}
                    )
                    row[column] = None
            self.batch.append(row)
            if len(self.batch) >= ROWS_PER_INSERT:
                self._insert()
        self.rows[self.current or ""] += added
        return added

    def _carry_over(self, earlier_json: Any) -> None:
        if not earlier_json:
            return
        earlier = holds.RestoreHold.from_json(str(earlier_json))
        hold = changed(
            holds.RestoreHold.from_json(self.hold_json),
            paused_campaigns=earlier.paused_campaigns,
            unscheduled_campaigns=earlier.unscheduled_campaigns,
            disabled_schedules=earlier.disabled_schedules,
        )
        self.hold_json = hold.to_json()
        self.connection.execute(
            self.settings.update()
            .where(self.settings.c.name == holds.SETTING)
            .values(value=self.hold_json)
        )

    def _insert(self) -> None:
        if self.batch:
            self.connection.execute(self.table.insert(), self.batch)
            self.batch = []

    def finish(self) -> None:
        if self.current is not None:
            self._insert()
            self.loaded.add(self.current)
            self.current = None

    def complete(self, manifest: Manifest) -> int:
        self.finish()
        for table, column, values in self.deferred:
            if not values:
                continue
            self.last = table.name  # its rows' links to rows of the same table
            statement = (
                update(table)
                .where(
                    *[
                        table.c[p] == bindparam(f"pk_{p}")
                        for p in [c.name for c in table.primary_key.columns]
                    ]
                )
                .values({column: bindparam("value")})
            )
            for start in range(0, len(values), ROWS_PER_INSERT):
                self.connection.execute(statement, values[start : start + ROWS_PER_INSERT])
        self.step = _("the count of the rows loaded")
        for entry in manifest.tables:
            name = entry["name"]
            if self.rows.get(name, 0) != entry["rows"] or (
                self.sha[name].hexdigest() != entry["sha256"]
            ):
                raise RestoreError(
                    _(
                        "table %(table)s: %(loaded)d rows loaded, the backup says %(expected)d; "
                        "nothing was restored",
                        table=name,
                        loaded=self.rows.get(name, 0),
                        expected=entry["rows"],
                    )
                )
            counted = self.connection.execute(
                select(func.count()).select_from(self.tables[name])
            ).scalar()
            if name == SETTINGS_TABLE:
                counted = int(counted or 0) - 1 + self.skipped_holds  # the hold written first
            if counted != entry["rows"]:
                raise RestoreError(
                    _(
                        "table %(table)s holds %(loaded)d rows after the restore, the backup "
                        "%(expected)d; nothing was restored",
                        table=name,
                        loaded=int(counted or 0),
                        expected=entry["rows"],
                    )
                )
        return sum(self.rows.values())


def _reset_sequences(connection: Connection, tables: dict[str, Table]) -> None:
    if connection.dialect.name != "postgresql":
        return
    quote = connection.dialect.identifier_preparer.quote
    for name, table in tables.items():
        for column in table.primary_key.columns:
            sequence = connection.execute(
                text("SELECT pg_get_serial_sequence(:table, :column)"),
                {"table": quote(name), "column": column.name},
            ).scalar()
            if not sequence:
                continue
            connection.execute(
                text(
                    f"SELECT setval(:sequence, COALESCE((SELECT MAX({quote(column.name)}) "  # noqa: S608
                    f"FROM {quote(name)}), 0) + 1, false)"
                ),
                {"sequence": sequence},
            )


def _load(
    path: Path,
    identities: list[Any],
    manifest: Manifest,
    staging: Path,
    progress: Progress | None,
    *,
    hold_json: str,
    wiped: bool,
) -> int:
    total = sum(manifest.table_counts.values())
    loader: _Loader | None = None
    try:
        with db.engine.begin() as connection:
            loader = _Loader(connection, manifest, hold_json)
            rows = _load_rows(path, identities, manifest, staging, progress, loader, total)
            loader.step = _("the reset of the id sequences")
            _reset_sequences(connection, loader.tables)
            if "contacts" in loader.tables:
                loader.step = _("the rebuild of the contacts' search index")
                sync_search_index(connection)
            loader.step = _("the commit of the rows loaded")
    except SQLAlchemyError as error:
        table = (loader.last if loader else None) or SETTINGS_TABLE
        step = loader.step if loader else ""
        if step:
            raise RestoreError(
                _(
                    "the rows were loaded but %(step)s failed (%(reason)s): %(outcome)s",
                    step=step,
                    reason=_database_reason(error),
                    outcome=_(
                        "the database is now empty (--replace removed its tables before the "
                        "load); restore again"
                    )
                    if wiped
                    else _("the database was left as it was before the load"),
                )
            ) from None
        if wiped:
            raise RestoreError(
                _(
                    "the rows of table %(table)s could not be loaded (%(reason)s): the "
                    "database is now empty (--replace removed its tables before the load); "
                    "restore again",
                    table=table,
                    reason=_database_reason(error),
                )
            ) from None
        raise RestoreError(
            _(
                "the rows of table %(table)s could not be loaded (%(reason)s); the database "
                "was left as it was before the load",
                table=table,
                reason=_database_reason(error),
            )
        ) from None
    return rows


def _database_reason(error: SQLAlchemyError) -> str:
    """What the database said, in few words and without the rows' values (personal data)."""
    if isinstance(error, IntegrityError):
        return _("a row breaks a rule of the schema (a duplicate or a missing parent)")
    if isinstance(error, DataError):
        return _("a value does not fit its column")
    if isinstance(error, OperationalError):
        return _("the database refused or stopped the write (full disk, locked?)")
    return _("the database refused the write")


def _load_rows(
    path: Path,
    identities: list[Any],
    manifest: Manifest,
    staging: Path,
    progress: Progress | None,
    loader: _Loader,
    total: int,
) -> int:
    done = 0
    try:
        with decrypted(path, identities) as stream:
            for member, handle in _tar_members(stream):
                assert not isinstance(handle, bytes)
                table = _member_table(member.name)
                if table is not None:
                    if table != loader.current:
                        loader.start(table)
                    done += loader.add(handle.read())
                    if progress:
                        progress("load", done, total)
                    continue
                relative = _member_file(member.name)
                if relative is None:
                    continue
                target = staging / relative
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                with open(
                    os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb"
                ) as out:
                    shutil.copyfileobj(handle, out)
            _drain(stream)
    except BackupError as error:
        raise RestoreError(str(error)) from None
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error):
        raise RestoreError(_damaged(path)) from None
    return loader.complete(manifest)


def restore_backup(
    path: Path,
    identity: Path,
    *,
    replace: bool = False,
    progress: Progress | None = None,
) -> RestoreResult:
    """Restore the archive at `path` (decrypted with the identity file `identity`) into the
    configured database and instance folder, then hold all sending. Raises RestoreError."""
    path = Path(path)
    if not path.is_file():
        raise RestoreError(_("%(path)s does not exist", path=path))
    try:
        identities = read_identities(Path(identity))
    except BackupError as error:
        raise RestoreError(str(error)) from None
    manifest = verify_archive(path, identities, progress)
    check_revision(manifest)
    root = Path(current_app.instance_path)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)  # a new SQLite file's folder too
    db.session.remove()
    db.engine.dispose()
    check_not_in_use()
    try:
        with db.engine.connect() as connection:
            target_revision = database_revision(connection)
            holding = tables_with_rows(connection)
    except OperationalError:
        raise RestoreError(
            _("the database %(name)s cannot be opened", name=_database_name())
        ) from None
    if holding and not replace:
        raise RestoreError(
            _(
                "the database %(name)s already holds data (%(tables)s): restore into an "
                "empty database, or give --replace to replace everything in it",
                name=_database_name(),
                tables=", ".join(holding[:5]) + (" …" if len(holding) > 5 else ""),
            )
        )
    remove_leftover_staging(root)
    staging = root / f"{STAGING_PREFIX}{secrets.token_hex(6)}"
    staging.mkdir(mode=0o700)
    keep_staging = False
    try:
        wiped = False
        if holding or target_revision != manifest.schema_revision:
            with db.engine.begin() as connection:
                _wipe(connection)
            wiped = bool(holding)
            db.engine.dispose()
            _migrate(manifest.schema_revision)
        hold_json = holds.unfinished_hold_json(
            archive_created_at=manifest.created_at,
            archive_name=path.name,
            schema_revision=manifest.schema_revision,
        )
        rows = _load(
            path, identities, manifest, staging, progress, hold_json=hold_json, wiped=wiped
        )
        # From here on the hold stands (written with the rows): what fails leaves it standing.
        db.engine.dispose()
        head, _known = code_revisions()
        if head != manifest.schema_revision:
            try:
                _migrate(head)
            except Exception as error:  # alembic's and the driver's: any stops here
                db.session.remove()
                raise RestoreError(
                    _(
                        "the rows were loaded and sending is held, but the database could "
                        "not be migrated from %(archive)s to this version's %(head)s (%(reason)s): "
                        "run campaign db upgrade, then confirm on the page Restore from backup",
                        archive=manifest.schema_revision,
                        head=head,
                        reason=_database_reason(error)
                        if isinstance(error, SQLAlchemyError)
                        else _("a migration failed"),
                    )
                ) from None
        placed = holds.place_restore_hold(
            archive_created_at=manifest.created_at,
            archive_name=path.name,
            schema_revision=manifest.schema_revision,
        )
        db.session.commit()
        try:
            written = _move_files(staging, root)
        except OSError as error:
            keep_staging = True
            raise RestoreError(
                _(
                    "the database is restored (sending held) but its files could not be put "
                    "into %(root)s (%(reason)s): they are kept in %(staging)s; move them there "
                    "by hand (secret_key first), then remove that folder",
                    root=root,
                    reason=error.strerror or _("the disk refused"),
                    staging=staging,
                )
            ) from None
    finally:
        if not keep_staging:
            shutil.rmtree(staging, ignore_errors=True)
    return RestoreResult(manifest=manifest, rows=rows, files=written, hold=placed)


def remove_leftover_staging(root: Path) -> list[str]:
    """Remove what an earlier restore killed mid-way left (its decrypted instance files)."""
    removed: list[str] = []
    if not root.is_dir():
        return removed
    for entry in root.iterdir():
        if entry.name.startswith(STAGING_PREFIX) and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed


def _move_files(staging: Path, root: Path) -> list[str]:
    """Put the archive's files in place. A different key file already there (a fresh
    instance folder's own new `secret_key`, made when this command started; or, with
    --replace, the replaced installation's) is kept beside it as NAME.before-restore: the
    database it protected is empty or replaced, so nothing here needs it any more."""
    written = []
    for folder, _folders, files in os.walk(staging):
        for name in files:
            source = Path(folder) / name
            relative = source.relative_to(staging)
            target = root / relative
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if (
                relative.as_posix() in SECRET_FILES
                and target.exists()
                and target.read_bytes() != source.read_bytes()
            ):
                os.replace(target, target.with_name(target.name + ".before-restore"))
            os.replace(source, target)
            written.append(relative.as_posix())
    return sorted(written)
