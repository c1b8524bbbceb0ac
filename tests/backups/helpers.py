"""Shared by the backup tests: key pairs, a second installation to restore into, fresh
PostgreSQL databases, row-for-row comparison, archives rewritten as a newer version's."""

from __future__ import annotations

import io
import secrets
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyrage
from flask import Flask
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url

from campaign import create_app
from campaign.extensions import db
from tests import servers
from tests.conftest import _base_overrides


def make_identity(folder: Path) -> tuple[Path, str]:
    """An identity file in `folder` and its public key."""
    identity = pyrage.x25519.Identity.generate()
    path = folder / f"identity-{secrets.token_hex(3)}.txt"
    path.write_text(f"# public key: {identity.to_public()}\n{identity}\n", encoding="ascii")
    path.chmod(0o600)
    return path, str(identity.to_public())


def installation(folder: Path, redis_url: str, database_url: str) -> Flask:
    """Another installation: its own instance folder and database (not migrated here)."""
    folder.mkdir(parents=True, exist_ok=True)
    return create_app(_base_overrides(folder / "instance", redis_url, database_url))


def close(app: Flask) -> None:
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    connection = app.extensions.pop("campaign_redis", None)
    if connection is not None:
        connection.close()


@contextmanager
def fresh_postgres_database(server: servers.PostgresServer) -> Iterator[str]:
    """A new, empty database on the test cluster (the drill's target); dropped after."""
    name = f"drill_{secrets.token_hex(4)}"
    admin = create_engine(server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server.url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def rows_of(app: Flask, table_name: str) -> list[dict[str, Any]]:
    """Every row of a model table, read through the models' types, in primary-key order."""
    with app.app_context():
        table = db.metadata.tables[table_name]
        order = list(table.primary_key.columns)
        return [dict(row._mapping) for row in db.session.execute(select(table).order_by(*order))]


def tables_with_rows(app: Flask) -> list[str]:
    """The model tables of the app's database that hold a row (none when it has no tables)."""
    with app.app_context():
        present = set(inspect(db.engine).get_table_names())
        found = []
        for table in db.metadata.sorted_tables:
            if table.name not in present:
                continue
            if db.session.execute(select(text("1")).select_from(table).limit(1)).first():
                found.append(table.name)
        db.session.remove()
        return found


def rewrite_archive(
    source: Path, target: Path, identity: Path, public: str, **manifest_changes: Any
) -> None:
    """Decrypt `source`, change fields of its manifest, and encrypt it again to `target`:
    an archive as a newer version would write it, otherwise whole and consistent."""
    import json

    key = pyrage.x25519.Identity.from_str(identity.read_text().splitlines()[-1])
    plain = pyrage.decrypt(source.read_bytes(), [key])
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(plain), mode="r:gz") as old,
        tarfile.open(fileobj=out, mode="w:gz") as new,
    ):
        for member in old:
            data = old.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "manifest.json":
                manifest = json.loads(data)
                manifest.update(manifest_changes)
                data = json.dumps(manifest).encode()
            member.size = len(data)
            new.addfile(member, io.BytesIO(data))
    recipient = pyrage.x25519.Recipient.from_str(public)
    target.write_bytes(pyrage.encrypt(out.getvalue(), [recipient]))


def archive_as_of(
    source: Path, target: Path, identity: Path, public: str, revision: str, shape: Flask
) -> None:
    """Rewrite `source` as the previous version would have made it: schema `revision`,
    only the tables and columns `shape`'s database (migrated to `revision`) has, each
    table's lines, count and checksum made again."""
    import hashlib
    import json

    with shape.app_context():
        described = inspect(db.engine)
        columns = {
            name: [c["name"] for c in described.get_columns(name)]
            for name in described.get_table_names()
        }
    key = pyrage.x25519.Identity.from_str(identity.read_text().splitlines()[-1])
    plain = pyrage.decrypt(source.read_bytes(), [key])
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(plain), mode="r:gz") as old,
        tarfile.open(fileobj=out, mode="w:gz") as new,
    ):
        members = [(m, old.extractfile(m).read()) for m in old]  # type: ignore[union-attr]
        manifest = json.loads(members[-1][1])
        kept = []
        for entry in manifest["tables"]:
            if entry["name"] not in columns:
                continue
            wanted = [i for i, c in enumerate(entry["columns"]) if c in columns[entry["name"]]]
            lines = b"".join(
                data
                for member, data in members
                if member.name.startswith(f"tables/{entry['name']}/")
            ).splitlines()
            rows = [json.dumps([json.loads(line)[i] for i in wanted]) + "\n" for line in lines]
            data = "".join(rows).encode()
            entry.update(
                columns=[entry["columns"][i] for i in wanted],
                kinds=[entry["kinds"][i] for i in wanted],
                rows=len(rows),
                parts=1,
                sha256=hashlib.sha256(data).hexdigest(),
            )
            kept.append(entry)
            info = tarfile.TarInfo(f"tables/{entry['name']}/000001.jsonl")
            info.size = len(data)
            new.addfile(info, io.BytesIO(data))
        for member, data in members:
            if member.name.startswith("files/"):
                new.addfile(member, io.BytesIO(data))
        manifest.update(tables=kept, schema_revision=revision)
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        new.addfile(info, io.BytesIO(data))
    recipient = pyrage.x25519.Recipient.from_str(public)
    target.write_bytes(pyrage.encrypt(out.getvalue(), [recipient]))
