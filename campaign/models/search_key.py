"""The cross-script search key of contacts: every name form of a contact folded to lower-case ASCII.

"Ольга Петрова", "Olga Petrova" and "OLGA PETROVA" all fold to "olga petrova", so a
query typed in either script finds both (anyascii transliterates Cyrillic, Greek, Arabic
and the rest; apostrophes it writes for soft signs are dropped: "Ol'ga" → "olga"). The key
is one text column searched with one LIKE per word, which is also cheaper than the
nine per-column LIKEs it replaces (decision 0031 has the figures). The model keeps it current.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from anyascii import anyascii
from sqlalchemy import event

# The fields a search looks in; every per-language form of a name, title or organisation.
KEY_FIELDS: tuple[str, ...] = (
    "given_name",
    "family_name",
    "patronymic",
    "given_name_alt",
    "family_name_alt",
    "patronymic_alt",
    "given_name_en",
    "family_name_en",
    "given_name_fr",
    "family_name_fr",
    "given_name_ru",
    "family_name_ru",
    "patronymic_ru",
    "organisation",
    "organisation_en",
    "organisation_fr",
    "organisation_ru",
    "position_title",
    "position_title_en",
    "position_title_fr",
    "position_title_ru",
    "email_key",
)
_DROPPED = str.maketrans("", "", "'’ʼʹ`\"")

# The indexes of the key (migration 0021, decision 0070). PostgreSQL: a pg_trgm GIN index
# (declared with the model). SQLite: an FTS5 table with the trigram tokenizer holding each
# contact's key (rowid = contacts.id), brought up to date at each commit that wrote
# contacts (sync_search_index): contacts past its highest rowid are new; triggers on update
# and delete note the others in a queue (every writer, raw SQL included). Until then the
# search takes both kinds as candidates, so its results never wait for the index.
PG_SEARCH_INDEX = "ix_contacts_search_key_trgm"
SEARCH_TABLE = "contacts_search"
SEARCH_QUEUE = "contacts_search_queue"
_HIGHEST = "SELECT coalesce((SELECT rowid FROM contacts_search ORDER BY rowid DESC LIMIT 1), 0)"
_SYNC = (
    "DELETE FROM contacts_search WHERE rowid IN (SELECT id FROM contacts_search_queue)",
    "INSERT INTO contacts_search (rowid, search_key)"
    " SELECT id, search_key FROM contacts WHERE id > :highest"
    " UNION ALL SELECT c.id, c.search_key FROM contacts_search_queue AS q"
    " JOIN contacts AS c ON c.id = q.id WHERE q.id <= :highest",
    "DELETE FROM contacts_search_queue",
)
_WROTE_CONTACTS = "contacts_written"
# The triggers that queue changed and deleted contacts (as migration 0021 creates them). A
# later migration that rebuilds `contacts` (SQLite's batch mode: copy, drop, rename) drops
# them with the old table: the search then scans (search_index_usable) until
# repair_search_index, run after every migration (migrations/env.py), puts them back.
SEARCH_TRIGGERS = {
    "contacts_search_ad": "CREATE TRIGGER IF NOT EXISTS contacts_search_ad AFTER DELETE ON"
    " contacts BEGIN INSERT OR IGNORE INTO contacts_search_queue (id) VALUES (old.id); END",
    "contacts_search_au": "CREATE TRIGGER IF NOT EXISTS contacts_search_au AFTER UPDATE OF"
    " search_key, id ON contacts WHEN old.search_key IS NOT new.search_key OR old.id IS NOT"
    " new.id BEGIN INSERT OR IGNORE INTO contacts_search_queue (id) VALUES (old.id);"
    " INSERT OR IGNORE INTO contacts_search_queue (id) VALUES (new.id); END",
}
_INDEX_PARTS = (
    "SELECT count(*) FROM sqlite_master WHERE (type = 'table' AND name = ?)"
    " OR (type = 'trigger' AND name IN (?, ?))"
)
_INDEX_PART_NAMES = (SEARCH_QUEUE, *SEARCH_TRIGGERS)


def fold(text: str) -> str:
    """`text` in lower-case ASCII, as the key stores it ("Ольга" → "olga")."""
    return " ".join(anyascii(text).translate(_DROPPED).lower().split())


def search_key_of(values: Mapping[str, Any] | object) -> str:
    """The key of a contact (a model object or a mapping of its fields)."""
    if isinstance(values, Mapping):
        parts = [values.get(name) for name in KEY_FIELDS]
    else:
        parts = [getattr(values, name, "") for name in KEY_FIELDS]
    folded = [fold(str(part)) for part in parts if part]
    # Each distinct form once: a name written the same in two fields adds nothing.
    return " ".join(dict.fromkeys(f for f in folded if f))


def install_key_maintenance(contact_class: type) -> None:
    """Keep the key current whenever the ORM writes a contact (bulk paths set it themselves)."""

    @event.listens_for(contact_class, "before_insert")
    @event.listens_for(contact_class, "before_update")
    def _refresh_key(_mapper: Any, _connection: Any, target: Any) -> None:
        target.search_key = search_key_of(target)


def install_bulk_key_maintenance(session: Any) -> None:
    """Give bulk INSERTs of contacts (lists of dicts, as imports and the demo send) their key.

    Mapper events do not fire for bulk statements; this hook sees every statement the
    session executes and fills `search_key` in each row that names no key of its own.
    Installed once per session factory, however many apps share it (the tests make an app
    per test: a hook per app would run every statement through hundreds of them).
    """
    install_search_index_maintenance(session)
    if not event.contains(session, "do_orm_execute", _fill_keys):
        event.listen(session, "do_orm_execute", _fill_keys)


def _fill_keys(state: Any) -> None:
    from sqlalchemy import Insert

    statement = state.statement
    if not isinstance(statement, Insert) or statement.table.name != "contacts":
        return
    rows = state.parameters
    if isinstance(rows, Mapping):
        rows = [rows]
    for row in rows or ():
        if isinstance(row, dict) and "search_key" not in row:
            row["search_key"] = search_key_of(row)


def sync_search_index(connection: Any) -> None:
    """Fold SQLite's queue of changed contacts into the FTS5 index of the key (a no-op on
    other databases and where migration 0021 found no FTS5)."""
    if connection.dialect.name != "sqlite":
        return
    found = connection.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SEARCH_QUEUE,)
    ).first()
    if found is None:
        return
    from sqlalchemy import text

    highest = connection.execute(text(_HIGHEST)).scalar_one()
    for statement in _SYNC:
        connection.execute(text(statement), {"highest": highest})


def _index_parts_found(connection: Any) -> int | None:
    """How many parts of SQLite's search index (table, queue, triggers) exist; None
    elsewhere."""
    if connection.dialect.name != "sqlite":
        return None
    return int(connection.exec_driver_sql(_INDEX_PARTS, _INDEX_PART_NAMES).scalar() or 0)


def search_index_usable(connection: Any) -> bool:
    """Whether this database is SQLite with the FTS5 index of the key and the triggers
    that keep it (migration 0021): the search may take its candidates from it."""
    return _index_parts_found(connection) == len(_INDEX_PART_NAMES)


def repair_search_index(connection: Any) -> bool:
    """Put back the triggers of SQLite's search index if something dropped them (a batch
    migration rebuilding `contacts`), and rebuild the index, whose rows may have gone
    stale meanwhile. True if it had to. A no-op elsewhere and without the index."""
    found = _index_parts_found(connection)
    if found in (None, 0, len(_INDEX_PART_NAMES)):
        return False
    for statement in SEARCH_TRIGGERS.values():
        connection.exec_driver_sql(statement)
    connection.exec_driver_sql("DELETE FROM contacts_search")
    connection.exec_driver_sql(
        "INSERT INTO contacts_search (rowid, search_key) SELECT id, search_key FROM contacts"
    )
    connection.exec_driver_sql("DELETE FROM contacts_search_queue")
    return True


def _note_contact_statement(
    connection: Any,
    _cursor: Any,
    _statement: str,
    _parameters: Any,
    context: Any,
    _executemany: bool,
) -> None:
    # Only a statement that wrote contacts (an INSERT, UPDATE or DELETE actually sent to
    # SQLite) calls for the sync: a commit that wrote none must not take the write lock.
    # (Listening on SQLite's engines only: install_search_index_maintenance.)
    if context is None:
        return
    compiled = context.compiled
    if compiled is None or not (context.isinsert or context.isupdate or context.isdelete):
        return
    if getattr(getattr(compiled.statement, "table", None), "name", None) == "contacts":
        connection.info[_WROTE_CONTACTS] = True


def _forget_contact_writes(connection: Any) -> None:
    # Rolled back (or committed without the session): nothing left to fold in.
    connection.info.pop(_WROTE_CONTACTS, None)


def _sync_before_commit(session: Any) -> None:
    # The commit's own flush comes after this hook: flush first, so its statements count.
    session.flush()
    if session.get_bind().dialect.name != "sqlite":
        return
    connection = session.connection()
    if connection.info.pop(_WROTE_CONTACTS, False):
        sync_search_index(connection)


def install_search_index_maintenance(session: Any) -> None:
    """Keep SQLite's index of the key current at each commit that wrote contacts (once per
    session factory and engine, however many apps share them).

    The statement hooks go on the session's engine, and only if it is SQLite's: on
    PostgreSQL the trigram index keeps itself, and no statement should pay for a hook.
    """
    if not event.contains(session, "before_commit", _sync_before_commit):
        event.listen(session, "before_commit", _sync_before_commit)
    engine = session.get_bind()
    if engine.dialect.name != "sqlite":
        return
    for name, hook in (
        ("after_cursor_execute", _note_contact_statement),
        ("rollback", _forget_contact_writes),
        ("commit", _forget_contact_writes),
    ):
        if not event.contains(engine, name, hook):
            event.listen(engine, name, hook)
