"""What the bulk writers (a launch's ledger rows, an import's contacts) share: which of the
driver's own fast paths to take, and its errors raised as SQLAlchemy would raise them.

Both write through the driver below SQLAlchemy (decisions 0074, 0075): psycopg 3's COPY,
or sqlite3's prepared statements; any other driver goes through SQLAlchemy's executemany.
"""

from __future__ import annotations

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
