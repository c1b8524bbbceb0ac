"""What the bulk writers (a launch's ledger rows, an import's contacts) share: which of the
driver's own fast paths to take, and its errors raised as SQLAlchemy would raise them.

Both write through the driver below SQLAlchemy (decisions 0074, 0075): psycopg 3's COPY,
or sqlite3's prepared statements; any other driver goes through SQLAlchemy's executemany.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Dialect
from sqlalchemy.exc import DBAPIError


def bulk_path(dialect: Dialect) -> str:
    """ "copy" (psycopg 3's COPY), "prepared" (sqlite3's own statements), else "core".

    By the driver, not the database: COPY is psycopg 3's `cursor.copy`, which psycopg2 lacks.
    """
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        return "copy"
    if dialect.name == "sqlite" and dialect.driver == "pysqlite":
        return "prepared"
    return "core"


def as_sqlalchemy_error(dialect: Dialect, statement: str, error: Exception) -> Exception:
    """The driver's error as SQLAlchemy would have raised it (IntegrityError for a unique
    conflict, which the API answers with 409)."""
    return DBAPIError.instance(statement, None, error, dialect.loaded_dbapi.Error)


# Each PostgreSQL connection's column types per table (name -> type oid), read once per
# connection: the catalogue does not change while the application runs (a migration runs
# before it starts). Keyed by the driver connection, dropped with it.
_COPY_TYPES: weakref.WeakKeyDictionary[Any, dict[str, dict[str, int]]] = weakref.WeakKeyDictionary()


def copy_types(driver: Any, table: str, columns: Sequence[str]) -> list[int]:
    """The type oid of each of `columns` of `table`, for psycopg's binary COPY (`set_types`).

    Binary COPY sends each value in its type's binary form, which psycopg writes from the
    Python value through the dumper of the type named here: str, int, bool, date and
    datetime values have one. A column of another type (json, an enum, an array) needs a
    value psycopg can dump as that type, or its own converter, before it is written.
    """
    known = _COPY_TYPES.setdefault(driver, {})
    types = known.get(table)
    if types is None or not types.keys() >= set(columns):  # new, or a column added since
        with driver.cursor() as cursor:
            cursor.execute(
                "SELECT attname, atttypid::int FROM pg_attribute"
                " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                (table,),
            )
            types = known[table] = {name: int(oid) for name, oid in cursor.fetchall()}
    missing = [c for c in columns if c not in types]
    if missing:
        raise RuntimeError(
            f"the database's {table} table has no column {', '.join(missing)}:"
            " is a migration missing? (alembic upgrade head)"
        )
    return [types[c] for c in columns]
