"""The search indexes (pg_trgm GIN, SQLite FTS5 trigram; decision 0070) change no result:
the search finds exactly the contacts the LIKE rule over the folded key finds, in the
same order, and every writer keeps SQLite's index in step."""

from __future__ import annotations

import importlib.util
import random
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from flask import Flask
from sqlalchemy import insert, select, text, update

from campaign.extensions import db
from campaign.models import Contact
from campaign.models.contact import SEARCH_TABLE, refresh_search_keys, schema_compare_filter
from campaign.models.search_key import fold, repair_search_index
from campaign.services.contacts import merge as contact_merge
from campaign.services.contacts import trash as contact_trash
from campaign.services.contacts.contacts import create_contact
from campaign.services.contacts.search import ContactFilters, filtered_query, search_page

FAMILIES = ["Petrova", "Петрова", "Ivanov", "Иванов", "Ольгина", "Smith", "Łukasz", "Ёлкин"]
GIVEN = ["Olga", "Ольга", "Oleg", "Олег", "Anna", "Анна", "Zoë", "Юлия", ""]
ORGS = ["Embassy of France", "Посольство Узбекистана", "OHCHR", "100% Press", "a_b Lab", ""]
# Words of 1 and 2 characters (no trigram: the LIKE alone), 3 and more (the index first),
# both scripts, mixed, LIKE's own characters, quotes, and words that fold to nothing.
QUERIES = [
    "o",
    "ол",
    "ov",
    "ol ga",
    "olga",
    "Ольга",
    "ОЛЬГА петрова",
    "olga petrova",
    "ёлк",
    "yolk",
    "emb",
    "embassy fr",
    "100%",
    "a_b",
    '"olga"',
    "o'lga",
    "@example",
    "qwxzvj",
    "’",
    "ivanov anna 7",
    "ol\x00ga",  # FTS5 and psycopg refuse a NUL: it finds nobody (no 500)
]


def _mixed_contacts(count: int) -> None:
    rng = random.Random(18)
    rows = []
    for i in range(count):
        email = f"c{i}@example{i % 3}.org"
        rows.append(
            {
                "family_name": rng.choice(FAMILIES),
                "given_name": rng.choice(GIVEN),
                "organisation": rng.choice(ORGS),
                "email": email,
                "email_key": email,
            }
        )
    # The bulk path (imports): the session's hook gives each row its key.
    db.session.execute(insert(Contact), rows)
    db.session.commit()


def _expected(q: str) -> list[int]:
    """The rule, in Python: every folded word is a substring of the key; live contacts;
    ordered as the page orders them (family name, given name, id)."""
    words = [fold(word) for word in q.split()]
    words = [word for word in words if word]
    rows = db.session.execute(
        select(Contact.id, Contact.search_key, Contact.family_name, Contact.given_name).where(
            Contact.deleted_at.is_(None)
        )
    ).all()
    found = [r for r in rows if words and all(word in r.search_key for word in words)]
    return [r.id for r in sorted(found, key=lambda r: (r.family_name, r.given_name, r.id))]


def _found(q: str) -> set[int]:
    return set(
        db.session.scalars(filtered_query(ContactFilters(q=q)).with_only_columns(Contact.id))
    )


def _assert_search_follows_the_rule() -> None:
    for q in QUERIES:
        expected = _expected(q)
        assert _found(q) == set(expected), q
        page = search_page(ContactFilters(q=q), per_page=25)
        assert [c.id for c in page.contacts] == expected[:25], q
        assert (page.total, page.total_is_exact) == (len(expected), True), q


def _sqlite_index_in_step() -> None:
    """SQLite's index holds exactly every contact's key, and no change waits in the queue."""
    if db.engine.dialect.name != "sqlite":
        return
    db.session.execute(
        text("INSERT INTO contacts_search(contacts_search) VALUES ('integrity-check')")
    )
    stale = text(
        "SELECT count(*) FROM contacts AS c LEFT JOIN contacts_search AS s ON s.rowid = c.id"
        " WHERE s.search_key IS NOT c.search_key"
    )
    assert db.session.execute(stale).scalar() == 0
    counts = text(
        "SELECT (SELECT count(*) FROM contacts_search), (SELECT count(*) FROM contacts),"
        " (SELECT count(*) FROM contacts_search_queue)"
    )
    indexed, contacts, queued = db.session.execute(counts).one()
    assert (indexed, queued) == (contacts, 0)


def test_indexed_search_finds_what_the_rule_finds_in_page_order(app: Flask) -> None:
    _mixed_contacts(300)
    trashed = db.session.scalars(select(Contact).limit(40)).all()
    for contact in trashed[::2]:
        contact_trash.trash_contact(contact)
    db.session.commit()
    _sqlite_index_in_step()
    _assert_search_follows_the_rule()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_writer_keeps_the_sqlite_index_in_step(app: Flask) -> None:
    _mixed_contacts(40)
    olga = create_contact({"given_name": "Ольга", "family_name": "Зайцева", "email": "o@z.org"})
    anna = create_contact({"given_name": "Anna", "family_name": "Zaitseva", "email": "a@z.org"})
    db.session.commit()
    assert _found("zaytseva") == {olga.id} and _found("zaitseva") == {anna.id}
    # An edit through the ORM, a bulk UPDATE with its keys recomputed (bulk edits).
    olga.family_name = "Морозова"
    db.session.execute(
        update(Contact).where(Contact.id == anna.id).values(family_name="Frost"),
        execution_options={"synchronize_session": False},
    )
    refresh_search_keys(db.session, [anna.id])
    db.session.commit()
    db.session.expire_all()
    assert _found("zaytseva") == set() and _found("morozova") == {olga.id}
    assert _found("frost") == {anna.id}
    _sqlite_index_in_step()
    # The trash, a merge (the other record goes to the trash) and a purge.
    contact_merge.merge_contacts(olga, anna, {"family_name": "other"})
    db.session.commit()
    assert _found("frost") == {olga.id}
    contact_trash.trash_contact(olga)
    db.session.commit()
    for contact in (olga, anna):
        contact_trash.purge_contact(contact)
    db.session.commit()
    assert db.session.get(Contact, olga.id) is None
    _sqlite_index_in_step()
    _assert_search_follows_the_rule()
    # Raw SQL, which no session hook sees: the triggers queue the change and the search
    # takes queued contacts as candidates, so it is right at once; the next commit that
    # writes contacts brings the index up to date.
    db.session.execute(text("UPDATE contacts SET search_key = 'raw zaytseva' WHERE id = 1"))
    db.session.execute(text("DELETE FROM contacts WHERE id = 2"))
    # A new contact the session does not see: past the highest indexed id.
    row = {"email": "new@z.org", "email_key": "new@z.org", "search_key": "new zaytseva"}
    inserted = db.session.connection().execute(insert(Contact.__table__), row)
    new_id = inserted.inserted_primary_key[0] if inserted.inserted_primary_key else None
    db.session.commit()
    assert _found("zaytseva") == {1, new_id}
    _assert_search_follows_the_rule()
    create_contact({"given_name": "Oleg", "email": "oleg@z.org"})
    db.session.commit()
    _sqlite_index_in_step()
    assert _found("zaytseva") == {1, new_id}


def _migration_0021() -> object:
    path = Path(__file__).resolve().parents[2] / "migrations/versions/0021_search_index.py"
    spec = importlib.util.spec_from_file_location("migration_0021", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_migration_drops_the_index_and_builds_it_over_existing_contacts(app: Flask) -> None:
    _mixed_contacts(120)
    migration = _migration_0021()
    db.session.remove()

    def run(step: str) -> None:
        with (
            db.engine.begin() as connection,
            Operations.context(MigrationContext.configure(connection)),
        ):
            getattr(migration, step)()

    run("downgrade")
    # Without the index the search scans, with the same results.
    _assert_search_follows_the_rule()
    db.session.remove()
    run("upgrade")
    _sqlite_index_in_step()
    _assert_search_follows_the_rule()
    names = {
        "sqlite": "SELECT name FROM sqlite_master",
        "postgresql": "SELECT indexname FROM pg_indexes",
    }
    found = set(db.session.scalars(text(names[db.engine.dialect.name])))
    assert (
        SEARCH_TABLE if db.engine.dialect.name == "sqlite" else "ix_contacts_search_key_trgm"
    ) in found


def _run_0021(step: str) -> None:
    migration = _migration_0021()
    db.session.remove()
    with (
        db.engine.begin() as connection,
        Operations.context(MigrationContext.configure(connection)),
    ):
        getattr(migration, step)()


def _models_and_database_agree() -> None:
    with db.engine.connect() as connection:
        include = schema_compare_filter(connection.dialect.name)
        opts = {"compare_type": True, "include_object": include}
        context = MigrationContext.configure(connection, opts=opts)
        assert compare_metadata(context, db.metadata) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_interrupted_sqlite_migration_runs_again(app: Flask) -> None:
    # SQLite commits each DDL statement at once: a run killed after its first statements
    # leaves them behind, and the next run must still succeed and index every contact.
    _mixed_contacts(30)
    migration = _migration_0021()
    _run_0021("downgrade")
    with db.engine.begin() as connection:
        for statement in migration.SQLITE_UP[:3]:  # type: ignore[attr-defined]
            connection.exec_driver_sql(statement)
    _run_0021("upgrade")
    _sqlite_index_in_step()
    _assert_search_follows_the_rule()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_batch_migration_rebuilding_contacts_loses_no_search_result(app: Flask) -> None:
    olga = create_contact({"given_name": "Olga", "family_name": "Zaitseva", "email": "o@z.org"})
    db.session.commit()
    olga_id = olga.id
    db.session.remove()
    # What a later migration in batch mode does: copy contacts, drop the table, rename.
    with (
        db.engine.begin() as connection,
        Operations.context(MigrationContext.configure(connection)) as op,
        op.batch_alter_table("contacts", recreate="always") as batch,
    ):
        batch.alter_column("honorific", existing_type=sa.String(100), type_=sa.String(120))
    olga = db.session.get(Contact, olga_id)
    olga.family_name = "Morozova"
    db.session.commit()
    # The triggers went with the old table: the search scans, and finds the new name.
    assert _found("morozova") == {olga_id} and _found("zaitseva") == set()
    db.session.remove()
    # After the migrations (migrations/env.py) the triggers and the index are rebuilt.
    with db.engine.begin() as connection:
        assert repair_search_index(connection)
        assert not repair_search_index(connection)
    olga = db.session.get(Contact, olga_id)
    olga.family_name = "Ivanova"
    db.session.commit()
    _sqlite_index_in_step()
    assert _found("ivanova") == {olga_id} and _found("morozova") == set()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_commit_that_writes_no_contact_takes_no_write_lock(app: Flask) -> None:
    # An import elsewhere holds SQLite's write lock: a page that changed no contact (an
    # unchanged form, a write rolled back) must commit without waiting for it.
    contact = create_contact({"given_name": "Olga", "email": "o@z.org"})
    db.session.commit()
    contact.given_name = "Olga"  # no change: no UPDATE
    contact.family_name = "Rolled back"
    db.session.flush()  # an UPDATE, then rolled back
    db.session.rollback()
    path = db.engine.url.database
    assert path
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    waits = db.session.connection().exec_driver_sql("PRAGMA busy_timeout").scalar()
    try:
        db.session.connection().exec_driver_sql("PRAGMA busy_timeout = 50")
        contact = db.session.get(Contact, contact.id)
        contact.given_name = "Olga"
        db.session.commit()  # before: OperationalError, database is locked
    finally:
        other.execute("ROLLBACK")
        other.close()
    db.session.connection().exec_driver_sql(f"PRAGMA busy_timeout = {int(waits)}")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_pg_trgm_outside_the_search_path_still_serves_the_search(app: Flask) -> None:
    _mixed_contacts(60)
    _run_0021("downgrade")
    # Without the GIN index (no pg_trgm) the models and the database still agree.
    _models_and_database_agree()
    with db.engine.begin() as connection:
        connection.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS extensions")
        connection.exec_driver_sql("ALTER EXTENSION pg_trgm SET SCHEMA extensions")
    try:
        _run_0021("upgrade")
        indexes = set(db.session.scalars(text("SELECT indexname FROM pg_indexes")))
        assert "ix_contacts_search_key_trgm" in indexes
        _models_and_database_agree()
        _assert_search_follows_the_rule()
    finally:
        db.session.remove()
        _run_0021("downgrade")
        with db.engine.begin() as connection:
            connection.exec_driver_sql("ALTER EXTENSION pg_trgm SET SCHEMA public")
        _run_0021("upgrade")
