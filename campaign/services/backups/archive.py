"""The backup archive: one gzip-compressed tar stream of the database's rows and the instance
files, encrypted with age (pyrage) to public keys as it is made, so no readable byte reaches the
disk and the machine that makes backups cannot read them. Decision 0087.

Inside (once decrypted): `tables/<table>/<part>.jsonl` (one JSON array a row, in column
order, parts of at most PART_BYTES), `files/<path in the instance folder>`, and last
`manifest.json` (format, versions, engine, counts and SHA-256 of every table and file).
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import io
import json
import os
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pyrage
from flask import current_app
from flask_babel import gettext as _

from campaign.config import SECRET_KEY_FILE
from campaign.services.backups.snapshot import code_revisions, encode_row, open_snapshot

FORMAT = "campaign-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PART_BYTES = 4 * 1024 * 1024
COMPRESS_LEVEL = 6
# Instance folders never archived: the development mailbox and the bundled Redis's files
# (Redis is not the record: the reconciler re-queues from the ledger).
# Access-request exports (private/exports) are kept a day only, never in a backup (0089).
NOT_ARCHIVED = ("devmail", "redis", "private/exports")
UPLOADS = "uploads"
ERASURE_KEY_FILE = "erasure_key"
# Secrets the app keeps in the instance folder; restored only over the same value.
SECRET_FILES = (SECRET_KEY_FILE, ERASURE_KEY_FILE)


class BackupError(Exception):
    """A backup that could not be made, in words for whoever asked; no file was left."""


@dataclass
class Manifest:
    """What an archive holds (manifest.json), and the archive's size once written."""

    created_at: datetime
    schema_revision: str
    engine: str
    app_version: str
    table_counts: dict[str, int]
    tables: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    includes_uploads: bool = False
    format_version: int = FORMAT_VERSION
    size_bytes: int = 0

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "format": FORMAT,
                "format_version": self.format_version,
                "app_version": self.app_version,
                "schema_revision": self.schema_revision,
                "engine": self.engine,
                "created_at": self.created_at.isoformat(),
                "includes_uploads": self.includes_uploads,
                "tables": self.tables,
                "files": self.files,
            },
            indent=1,
            ensure_ascii=False,
        ).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        data = json.loads(raw)
        if data.get("format") != FORMAT:
            raise ValueError("not a campaign backup")
        tables = list(data["tables"])
        return cls(
            created_at=datetime.fromisoformat(data["created_at"]),
            schema_revision=str(data["schema_revision"]),
            engine=str(data["engine"]),
            app_version=str(data.get("app_version") or ""),
            table_counts={t["name"]: int(t["rows"]) for t in tables},
            tables=tables,
            files=list(data.get("files") or []),
            includes_uploads=bool(data.get("includes_uploads")),
            format_version=int(data["format_version"]),
        )


def app_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("campaign")
    except importlib.metadata.PackageNotFoundError:  # a checkout run without installing it
        return "unknown"


def parse_recipients(recipients: Sequence[str] | str) -> list[pyrage.x25519.Recipient]:
    """age public keys ("age1…", comma- or space-separated in a string) as recipients."""
    if isinstance(recipients, str):
        recipients = recipients.replace(",", " ").split()
    parsed = []
    for given in recipients:
        for key in given.replace(",", " ").split():
            try:
                parsed.append(pyrage.x25519.Recipient.from_str(key))
            except pyrage.RecipientError:
                raise BackupError(
                    _(
                        "%(key)s is not an age public key (they start with age1; "
                        "campaign backup-key makes one)",
                        key=key[:80],
                    )
                ) from None
    if not parsed:
        raise BackupError(
            _(
                "no public key to encrypt the backup to: give --recipient age1… or set "
                "CAMPAIGN_BACKUP_RECIPIENTS (campaign backup-key makes a key pair)"
            )
        )
    return parsed


def configured_recipients() -> list[str]:
    """The public keys of CAMPAIGN_BACKUP_RECIPIENTS."""
    return str(current_app.config.get("BACKUP_RECIPIENTS") or "").replace(",", " ").split()


def new_identity() -> tuple[str, str]:
    """A new age key pair: (the identity file's text, the public key)."""
    identity = pyrage.x25519.Identity.generate()
    public = str(identity.to_public())
    created = datetime.now(UTC).replace(microsecond=0).isoformat()
    text = f"# created: {created}\n# public key: {public}\n{identity}\n"
    return text, public


def write_identity_file(path: Path) -> str:
    """Write a new identity to `path` (0600, never over an existing file); its public key."""
    text, public = new_identity()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BackupError(_("%(path)s exists already: choose another name", path=path)) from None
    except OSError as error:
        raise BackupError(_file_error(path, error)) from None
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return public


def backup_folder() -> Path | None:
    """Where the daily backups go (CAMPAIGN_BACKUP_FOLDER; None when unset: no daily backup)."""
    configured = str(current_app.config.get("BACKUP_FOLDER") or "").strip()
    return Path(configured) if configured else None


def _file_error(path: Path, error: OSError) -> str:
    if error.errno == errno.ENOSPC or error.errno == errno.EFBIG or error.errno == errno.EDQUOT:
        return _(
            "the disk holding %(path)s is full (or the file is larger than allowed): "
            "nothing was kept; free some space or choose another folder",
            path=path,
        )
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return _(
            "%(folder)s cannot be written to by this user: choose another folder or change "
            "its permissions",
            folder=path.parent,
        )
    if error.errno == errno.ENOENT:
        return _("the folder %(folder)s does not exist", folder=path.parent)
    return _("%(path)s could not be written: %(reason)s", path=path, reason=error.strerror)


def instance_files(*, include_uploads: bool, skip: Sequence[Path] = ()) -> list[Path]:
    """The instance folder's files worth keeping: secrets, statement attachments, the
    organisation's letterhead and the like; never the database itself, the dev mailbox,
    Redis's files or backups (uploads only when asked)."""
    root = Path(current_app.instance_path)
    if not root.is_dir():
        return []
    left_out = {root / name for name in NOT_ARCHIVED}
    left_out.add(Path(current_app.config.get("DEVMAIL_PATH") or root / "devmail"))
    daily = backup_folder()
    if daily is not None:
        left_out.add(daily)  # backups inside backups would grow without end
    left_out.update(skip)
    if not include_uploads:
        left_out.add(root / UPLOADS)
    uri = str(current_app.config.get("SQLALCHEMY_DATABASE_URI", ""))
    database_file = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
    resolved_out = {p.resolve() for p in left_out}
    found: list[Path] = []
    for folder, folders, files in os.walk(root):
        here = Path(folder)
        folders[:] = sorted(
            f for f in folders if not f.startswith(".") and (here / f).resolve() not in resolved_out
        )
        for name in sorted(files):
            path = here / name
            if name.startswith(".") or path.is_symlink() or not path.is_file():
                continue  # drafts being written (.secret_key.<pid>…), links
            if (
                database_file is not None
                and name.startswith(database_file.name)
                and path.resolve().parent == database_file.resolve().parent
            ):
                continue  # the SQLite file, its WAL and shared memory: the rows are in
            if path.resolve() in resolved_out or name.endswith(".partial"):
                continue
            found.append(path)
    return found


class _HashingReader(io.RawIOBase):
    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        self.sha.update(data)
        buffer[: len(data)] = data
        return len(data)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(mtime)
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


def _write_tar(
    out: IO[bytes],
    *,
    include_uploads: bool,
    skip: Sequence[Path],
    progress: Callable[[int, int], None] | None,
) -> Manifest:
    """Write the tar stream to `out` (the encryption's pipe); the manifest written last."""
    now = time.time()
    created_at = datetime.now(UTC)
    with (
        open_snapshot() as snapshot,
        # Compressed before it is encrypted (encrypted bytes do not compress): JSON rows
        # shrink about 6 times.
        gzip.GzipFile(fileobj=out, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w|") as tar,
    ):
        head, _known = code_revisions()
        if snapshot.revision != head:
            raise BackupError(
                _(
                    "the database is at schema revision %(found)s, this code at %(head)s: "
                    "run campaign db upgrade first",
                    found=snapshot.revision or "—",
                    head=head,
                )
            )
        counts = {table.name: snapshot.count(table) for table in snapshot.tables}
        total, done = sum(counts.values()), 0
        if progress:
            progress(0, total)
        manifest = Manifest(
            created_at=created_at,
            schema_revision=snapshot.revision,
            engine=snapshot.engine,
            app_version=app_version(),
            table_counts={},
            includes_uploads=include_uploads,
        )
        for table in snapshot.tables:
            spec = snapshot.spec(table)
            sha = hashlib.sha256()
            rows = parts = 0
            buffer = bytearray()

            def flush(buffer: bytearray = buffer, table_name: str = table.name) -> None:
                nonlocal parts
                parts += 1
                _add_bytes(tar, f"tables/{table_name}/{parts:06d}.jsonl", bytes(buffer), now)
                buffer.clear()

            for row in snapshot.rows(table):
                line = encode_row(row)
                sha.update(line)
                buffer += line
                rows += 1
                if len(buffer) >= PART_BYTES:
                    flush()
                if progress and rows % 5000 == 0:
                    progress(done + rows, total)
            if buffer or not parts:
                flush()
            done += rows
            if progress:
                progress(done, max(total, done))
            manifest.table_counts[table.name] = rows
            manifest.tables.append(
                {
                    "name": table.name,
                    "columns": spec.columns,
                    "kinds": spec.kinds,
                    "rows": rows,
                    "parts": parts,
                    "sha256": sha.hexdigest(),
                }
            )
        root = Path(current_app.instance_path)
        for path in instance_files(include_uploads=include_uploads, skip=skip):
            relative = path.relative_to(root).as_posix()
            with path.open("rb") as handle:
                info = tar.gettarinfo(fileobj=handle, arcname=f"files/{relative}")
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                reader = _HashingReader(handle)
                tar.addfile(info, io.BufferedReader(reader))
            manifest.files.append(
                {"path": relative, "size": info.size, "sha256": reader.sha.hexdigest()}
            )
        _add_bytes(tar, MANIFEST, manifest.to_json(), now)
    return manifest


def write_backup(
    path: Path,
    recipients: Sequence[str],
    *,
    include_uploads: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Manifest:
    """Write an encrypted backup of the database and instance files to `path`.

    Raises BackupError (in the reader's language) on any failure, leaving no file at
    `path` nor at `path`.partial. `progress(rows done, rows in all)` is called as it goes.
    """
    path = Path(path)
    keys = parse_recipients(list(recipients))
    if path.exists():
        raise BackupError(_("%(path)s exists already: choose another name", path=path))
    if not path.parent.is_dir():
        raise BackupError(_("the folder %(folder)s does not exist", folder=path.parent))
    partial = path.with_name(path.name + ".partial")
    try:
        # O_EXCL: a second backup to the same name stops here rather than writing into the
        # first one's file.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BackupError(
            _(
                "%(path)s is already being written by another backup (%(partial)s exists): "
                "wait for it to end, or remove %(partial)s if no backup runs",
                path=path,
                partial=partial,
            )
        ) from None
    except OSError as error:
        raise BackupError(_file_error(path, error)) from None
    ok = False
    try:
        with os.fdopen(fd, "wb") as target:
            manifest = _encrypt_into(
                target,
                keys,
                include_uploads=include_uploads,
                skip=[path, partial],
                progress=progress,
                path=path,
            )
            target.flush()
            os.fsync(target.fileno())
        try:
            os.link(partial, path)  # never over a file made meanwhile (os.replace would)
        except FileExistsError:
            raise BackupError(
                _("%(path)s exists already: choose another name", path=path)
            ) from None
        partial.unlink()
        _fsync_folder(path.parent)
        ok = True
    except OSError as error:
        raise BackupError(_file_error(path, error)) from None
    finally:
        if not ok:
            partial.unlink(missing_ok=True)
    manifest.size_bytes = path.stat().st_size
    return manifest


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _encrypt_into(
    target: IO[bytes],
    keys: list[pyrage.x25519.Recipient],
    *,
    include_uploads: bool,
    skip: Sequence[Path],
    progress: Callable[[int, int], None] | None,
    path: Path,
) -> Manifest:
    """Make the tar in a thread writing into a pipe that pyrage encrypts into `target`."""
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb")
    outcome: dict[str, Any] = {}
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    language = _current_language()

    def produce() -> None:
        try:
            with os.fdopen(write_fd, "wb") as pipe, app.app_context():
                _use_language(language)
                outcome["manifest"] = _write_tar(
                    pipe, include_uploads=include_uploads, skip=skip, progress=progress
                )
        except BaseException as error:  # handed to the caller below
            outcome["error"] = error

    producer = threading.Thread(target=produce, name="backup-tar", daemon=True)
    producer.start()
    try:
        pyrage.encrypt_io(reader, target, keys)
    except BaseException as error:
        outcome.setdefault("encrypt_error", error)
    finally:
        reader.close()  # a producer still writing stops on a broken pipe
        producer.join()
    made = outcome.get("error")
    if made is not None and not isinstance(made, BrokenPipeError):
        if isinstance(made, (BackupError, OSError)):
            raise made
        raise BackupError(
            _(
                "the backup could not read the database (%(reason)s): nothing was written",
                reason=_reading_reason(made),
            )
        ) from made
    failed = outcome.get("encrypt_error")
    if failed is not None:
        if isinstance(failed, OSError):
            raise failed
        raise BackupError(_file_error(path, _as_os_error(failed))) from None
    if made is not None:
        raise BackupError(
            _("the backup stopped before its end: %(path)s was not written", path=path)
        )
    manifest: Manifest = outcome["manifest"]
    return manifest


def _reading_reason(error: BaseException) -> str:
    """Why reading the database failed, in words (never the driver's text: it quotes rows)."""
    from sqlalchemy.exc import OperationalError

    if isinstance(error, OperationalError):
        return _("the database could not be opened or is locked")
    return _("the database answered with an error")


def _as_os_error(error: BaseException) -> OSError:
    """pyrage reports a failed write as its own error: find the OS's reason in its words."""
    text = str(error)
    for code in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EACCES):
        if os.strerror(code) in text:
            return OSError(code, os.strerror(code))
    return OSError(errno.EIO, os.strerror(errno.EIO))  # age's English words stay out


def _current_language() -> str:
    from campaign.i18n import current_language

    return current_language()


def _use_language(language: str) -> None:
    from campaign.i18n import use_reader_language

    use_reader_language(language)


def read_identities(path: Path) -> list[pyrage.x25519.Identity]:
    """The age identities (AGE-SECRET-KEY-1…) in the file at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BackupError(_("the identity file %(path)s does not exist", path=path)) from None
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or _("the file is not readable")
        raise BackupError(
            _("the identity file %(path)s cannot be read: %(reason)s", path=path, reason=reason)
        ) from None
    identities = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("AGE-SECRET-KEY-"):
            try:
                identities.append(pyrage.x25519.Identity.from_str(line))
            except pyrage.IdentityError:
                break
    if not identities:
        raise BackupError(
            _(
                "%(path)s holds no age identity (a line AGE-SECRET-KEY-1…; "
                "campaign backup-key makes one)",
                path=path,
            )
        )
    return identities


@contextmanager
def decrypted(path: Path, identities: list[pyrage.x25519.Identity]) -> Iterator[IO[bytes]]:
    """Yield one readable stream of the decrypted archive (decrypted in a thread as read).

    After the caller is done, a decryption failure (wrong identity, damage, truncation) is
    raised as BackupError even if the stream looked whole."""
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb")
    outcome: dict[str, BaseException] = {}

    def decrypt() -> None:
        try:
            with path.open("rb") as source, os.fdopen(write_fd, "wb") as pipe:
                pyrage.decrypt_io(source, pipe, identities)
        except BaseException as error:  # handed to the caller below
            outcome["error"] = error

    worker = threading.Thread(target=decrypt, name="backup-decrypt", daemon=True)
    worker.start()
    caught: BaseException | None = None
    try:
        yield reader
    except BaseException as error:  # raised again below, unless decryption said why first
        caught = error
    finally:
        reader.close()
        worker.join()
    failed = outcome.get("error")
    if failed is not None and not isinstance(failed, BrokenPipeError):
        raise BackupError(decrypt_failure(path, failed))
    if caught is not None:
        raise caught


AGE_MAGIC = b"age-encryption.org/v1\n"


def decrypt_failure(path: Path, error: BaseException) -> str:
    text = str(error)
    if isinstance(error, FileNotFoundError):
        return _("%(path)s does not exist", path=path)
    with contextlib.suppress(OSError), path.open("rb") as handle:
        if handle.read(len(AGE_MAGIC)) != AGE_MAGIC:
            return _(
                "%(path)s is not a readable backup: its header is damaged or it is not an "
                "age-encrypted file",
                path=path,
            )
    if "No matching keys" in text:
        return _(
            "%(path)s was not encrypted to this identity: use the identity file whose "
            "public key the backup was made for",
            path=path,
        )
    if "header" in text.lower():
        return _(
            "%(path)s is not a readable backup: its header is damaged or it is not an "
            "age-encrypted file",
            path=path,
        )
    # age's own words are English: they are not put inside a French or Russian sentence.
    return _(
        "%(path)s is damaged or incomplete (cut short or changed): it cannot be decrypted; "
        "nothing was restored",
        path=path,
    )
