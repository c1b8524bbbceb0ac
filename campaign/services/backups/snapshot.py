"""Every table of the database read in one consistent snapshot, as typed JSON rows.

The archive must restore on either engine (a SQLite backup into PostgreSQL is the drill),
so rows are written as JSON with each column's kind recorded: datetimes as ISO 8601 in UTC,
bytes as base64, JSON columns as themselves. SQLite reads in one read transaction (WAL: the
app keeps writing meanwhile and none of it is seen); PostgreSQL in one REPEATABLE READ READ
ONLY transaction. JSON columns are kept as their JSON text. Decision 0087.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    Date,
    DateTime,
    Float,
    Integer,
    Interval,
    LargeBinary,
    MetaData,
    Numeric,
    Table,
    Text,
    Time,
    TypeDecorator,
    Uuid,
    cast,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.sql.ddl import sort_tables_and_constraints
from sqlalchemy.types import TypeEngine

from campaign.config import MIGRATIONS_DIR
from campaign.extensions import db
from campaign.models.search_key import SEARCH_TABLE

VERSION_TABLE = "alembic_version"
ROWS_PER_READ = 2000


def is_backed_up(name: str) -> bool:
    """Whether table `name` goes into the archive: not the migration marker, not SQLite's
    search index (rebuilt from the contacts on restore)."""
    if name == VERSION_TABLE or name.startswith("sqlite_"):
        return False
    return not (name + "_").startswith(SEARCH_TABLE + "_")


def kind_of(type_: TypeEngine[Any]) -> str:
    """The kind of a column type, as the archive records it."""
    if isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    for klass, kind in (
        (Boolean, "bool"),
        (DateTime, "datetime"),
        (Date, "date"),
        (Time, "time"),
        (Interval, "interval"),
        (LargeBinary, "bytes"),
        (JSON, "json"),
        (Uuid, "uuid"),
        (Float, "float"),
        (Numeric, "decimal"),
        (Integer, "int"),
    ):
        if isinstance(type_, klass):
            return kind
    return "str"


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    raise TypeError(f"cannot write a {type(value).__name__} to the archive")


def encode_row(row: Any) -> bytes:
    """One row as a line of the archive (a JSON array in column order)."""
    return (
        json.dumps(list(row), default=_json_default, ensure_ascii=False, separators=(",", ":"))
        + "\n"
    ).encode("utf-8")


def _datetime(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "datetime": _datetime,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "interval": lambda seconds: dt.timedelta(seconds=seconds),
    "bytes": lambda text_: base64.b64decode(text_),
    "decimal": decimal.Decimal,
    "uuid": uuid.UUID,
}


def decoders(kinds: list[str]) -> list[Callable[[Any], Any] | None]:
    """Per column, what turns the archive's JSON value back into a Python value (None: as is)."""
    return [_DECODERS.get(kind) for kind in kinds]


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: list[str]
    kinds: list[str]


def code_revisions() -> tuple[str, set[str]]:
    """This code's head revision and every revision it knows."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(MIGRATIONS_DIR))
    head = scripts.get_current_head() or ""
    return head, {script.revision for script in scripts.walk_revisions()}


def database_revision(connection: Connection) -> str:
    """The revision the database is at ("" if it was never migrated)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return ""
    return str(connection.execute(text("SELECT version_num FROM alembic_version")).scalar() or "")


class Snapshot:
    """One consistent read of the database (use `open_snapshot`)."""

    def __init__(self, connection: Connection, tables: list[Table], revision: str) -> None:
        self.connection = connection
        self.tables = tables
        self.revision = revision
        self.engine = connection.dialect.name

    def spec(self, table: Table) -> TableSpec:
        return TableSpec(
            table.name, [c.name for c in table.columns], [kind_of(c.type) for c in table.columns]
        )

    def count(self, table: Table) -> int:
        return int(self.connection.execute(select(func.count()).select_from(table)).scalar() or 0)

    def rows(self, table: Table) -> Iterator[Any]:
        order = list(table.primary_key.columns) or list(table.columns)
        # JSON as its text: a JSON null and an SQL NULL stay apart (and nothing is re-parsed).
        columns = [
            cast(c, Text).label(c.name) if kind_of(c.type) == "json" else c for c in table.columns
        ]
        result = self.connection.execution_options(yield_per=ROWS_PER_READ).execute(
            select(*columns).order_by(*order)
        )
        yield from result


def tables_to_back_up(connection: Connection) -> list[Table]:
    """The database's tables in an order that loads parents before children: the models'
    own (their exact types), others as the database describes them."""
    present = {name for name in inspect(connection).get_table_names() if is_backed_up(name)}
    known = {name: table for name, table in db.metadata.tables.items() if name in present}
    others = sorted(present - set(known))
    if others:
        reflected = MetaData()
        reflected.reflect(connection, only=others)
        known.update(reflected.tables)
    ordered = [
        table
        for table, _fks in sort_tables_and_constraints(list(known.values()))
        if table is not None
    ]
    return ordered


@contextmanager
def open_snapshot() -> Iterator[Snapshot]:
    """A connection in one consistent read-only transaction over every table."""
    engine = db.engine
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection = connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            connection.begin()
        elif engine.dialect.name == "sqlite":
            # pysqlite starts no transaction for a SELECT: start one, so that every table is
            # read from the same state of the file (in WAL, writers carry on meanwhile).
            connection.exec_driver_sql("BEGIN")
        try:
            revision = database_revision(connection)
            yield Snapshot(connection, tables_to_back_up(connection), revision)
        finally:
            connection.rollback()
