"""Indexes for the contacts search: pg_trgm GIN (PostgreSQL), an FTS5 trigram table (SQLite)

The search keeps its rule (one LIKE '%word%' per word over contacts.search_key); these
indexes only find the candidate rows faster (decision 0070). Either may be missing (no
pg_trgm, no FTS5): the search then scans, as before.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 16:40:00

"""

import logging

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

# The FTS5 table keeps its own copy of each key (rowid = contacts.id). The application
# brings it up to date at each commit that wrote contacts (campaign.models.search_key): new
# contacts are those past the highest rowid indexed; the triggers note in
# contacts_search_queue the contacts whose key changed or that were deleted. Until then the
# search takes those contacts as candidates too, so its results never depend on it.
# Why not index from the triggers: FTS5 writes a segment at every statement, ~50 µs of CPU
# a row inserted one statement at a time; and any trigger on INSERT makes SQLite keep a
# statement journal for each row, +25 µs a row at 100,000 contacts (decision 0070).
# SQLite commits each DDL statement at once: a run killed half-way leaves some of these
# behind. The upgrade therefore drops whatever is there first and creates everything anew
# (IF NOT EXISTS as well), so running it again after an interruption succeeds.
# The triggers are campaign.models.search_key's SEARCH_TRIGGERS: the application recreates
# them if a later migration rebuilding `contacts` (batch mode) dropped them.
SQLITE_UP = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS contacts_search USING fts5(search_key, tokenize='trigram')",
    "CREATE TABLE IF NOT EXISTS contacts_search_queue (id INTEGER PRIMARY KEY)",
    "CREATE TRIGGER IF NOT EXISTS contacts_search_ad AFTER DELETE ON contacts BEGIN "
    "INSERT OR IGNORE INTO contacts_search_queue (id) VALUES (old.id); END",
    "CREATE TRIGGER IF NOT EXISTS contacts_search_au AFTER UPDATE OF search_key, id ON contacts "
    "WHEN old.search_key IS NOT new.search_key OR old.id IS NOT new.id BEGIN "
    "INSERT OR IGNORE INTO contacts_search_queue (id) VALUES (old.id); "
    "INSERT OR IGNORE INTO contacts_search_queue (id) VALUES (new.id); END",
    # Backfill: every existing contact, in one statement.
    "INSERT INTO contacts_search (rowid, search_key) SELECT id, search_key FROM contacts",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS contacts_search_au",
    "DROP TRIGGER IF EXISTS contacts_search_ad",
    "DROP TRIGGER IF EXISTS contacts_search_ai",  # an early draft of this revision had it
    "DROP TABLE IF EXISTS contacts_search_queue",
    "DROP TABLE IF EXISTS contacts_search",
]


def _sqlite_has_fts5(bind):
    options = {row[0] for row in bind.exec_driver_sql("PRAGMA compile_options")}
    version = tuple(
        int(p) for p in bind.exec_driver_sql("SELECT sqlite_version()").scalar().split(".")
    )
    # The trigram tokenizer came with SQLite 3.34.
    return "ENABLE_FTS5" in options and version >= (3, 34)


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        if not _sqlite_has_fts5(bind):
            log.warning("SQLite without FTS5 trigram: the contacts search scans (decision 0070)")
            return
        for statement in (*SQLITE_DOWN, *SQLITE_UP):
            bind.exec_driver_sql(statement)
        return
    if bind.dialect.name != "postgresql":
        return
    try:
        # pg_trgm is a trusted extension from PostgreSQL 13: the database owner may create it.
        with bind.begin_nested():
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except sa.exc.DBAPIError as error:
        log.warning("pg_trgm could not be created, the contacts search scans: %s", error)
        return
    # The GIN index is built from the existing rows as it is created (the backfill). Its
    # operator class is named with pg_trgm's schema, which need not be on the search_path
    # (an `extensions` schema, as some hosts do). Should it still fail, the search scans, as
    # where pg_trgm is missing (decision 0070).
    schema = bind.exec_driver_sql(
        "SELECT n.nspname FROM pg_extension AS e JOIN pg_namespace AS n"
        " ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"
    ).scalar()
    quote = bind.dialect.identifier_preparer.quote
    opclass = f"{quote(schema)}.gin_trgm_ops" if schema else "gin_trgm_ops"
    try:
        with bind.begin_nested():
            bind.exec_driver_sql(
                "CREATE INDEX IF NOT EXISTS ix_contacts_search_key_trgm"
                f" ON contacts USING gin (search_key {opclass})"
            )
    except sa.exc.DBAPIError as error:
        log.warning("the pg_trgm index could not be built, the contacts search scans: %s", error)


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in SQLITE_DOWN:
            bind.exec_driver_sql(statement)
    elif bind.dialect.name == "postgresql":
        # The extension stays: other objects may use it, and it costs nothing unused.
        op.execute("DROP INDEX IF EXISTS ix_contacts_search_key_trgm")
