"""The import's fast path (decision 0075): each distinct value cleaned once, many rows to an
INSERT, names folded once. What a person sees must not change: the same contacts, the same
rejected rows with the same reasons, found by the search as before."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from campaign.extensions import db
from campaign.models import Contact
from campaign.models.search_key import search_key_of
from campaign.services.contacts import importing
from campaign.services.contacts.contacts import (
    CONTACT_FIELDS,
    ContactInputError,
    clean_contact_data,
)
from campaign.services.contacts.search import ContactFilters, filtered_query

HEADER = "given_name,family_name,organisation,country,role_type,languages,tags,email,cc\n"
# Repeated values (a country, a role, an organisation) good and bad, in that order and the
# other: a value the import has already cleaned must still be refused, and the reverse.
ROWS = [
    "Anna,Muster,Embassy of France,FR,ambassador,fr;en,press,anna@example.org,",
    "Иван,Смирнов,Embassy of France,FR,ambassador,ru,press,ivan@example.org,a@example.org",
    "Bad,Country,Embassy of France,XX,ambassador,fr,press,bad1@example.org,",
    "Zoë,Müller,Embassy of France,fr,Ambassador,fr,press,zoe@bücher-probe.example,",
    "Bad,Role,Embassy of France,FR,pope,fr,press,bad2@example.org,",
    "  ,  ,Embassy of France,FR,official,,,org@example.org,",
    "Bad,Both,,XX,pope,fr,,bad3@example.org,",
    "Anna,Muster,Ministry,DE,official,de,eu;mep,anna2@example.org,",
    "No,Address,Ministry,DE,official,de,,,",
    "Long," + "x" * 201 + ",Ministry,DE,official,de,,long@example.org,",
    "Line,Break,Mini\u2028stry,DE,official,de,,break@example.org,",
    "Second," + "x" * 201 + ",Ministry,DE,official,de,,long2@example.org,",
]


def _expected(row: str) -> dict[str, object] | list[str]:
    """What clean_contact_data, the rule every path shares, makes of a row."""
    cells = row.split(",")
    names = [*HEADER.strip().split(",")]
    names[names.index("cc")] = "cc_emails"
    try:
        return clean_contact_data(dict(zip(names, cells, strict=True)))
    except ContactInputError as error:
        return [error_.message for error_ in error.errors]


def test_an_import_stores_and_refuses_exactly_what_the_field_rules_say(
    app: Flask, tmp_path: Path
) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text(HEADER + "\n".join(ROWS) + "\n", encoding="utf-8")
    rejected: list[importing.RowResult] = []
    info, reader = importing.open_contact_file(path)
    reader.close()
    result = importing.import_contacts(
        path, importing.auto_mapping(info.headers), on_reject=rejected.append
    )
    db.session.commit()

    expected = {line: _expected(row) for line, row in enumerate(ROWS, start=2)}
    refused = {line: reasons for line, reasons in expected.items() if isinstance(reasons, list)}
    assert {r.line: [reason for _column, reason in r.problems] for r in rejected} == refused
    assert result.rejected == len(refused) == 7
    stored = {c.email_key: c for c in db.session.scalars(select(Contact))}
    assert result.imported == len(stored) == len(ROWS) - len(refused)
    for data in expected.values():
        if isinstance(data, dict):
            contact = stored[str(data["email_key"])]
            assert {name: getattr(contact, name) for name in CONTACT_FIELDS} == {
                name: data[name] for name in CONTACT_FIELDS
            }
            assert contact.search_key == search_key_of(contact)
    # The search's own index (migration 0021) took the rows: Latin finds the Cyrillic name,
    # and on SQLite nothing is left waiting in the index's queue.
    found = db.session.scalars(filtered_query(ContactFilters(q="smirnov")))
    assert [c.email for c in found] == ["ivan@example.org"]
    if db.session.get_bind().dialect.name == "sqlite":
        waiting = db.session.execute(text("SELECT count(*) FROM contacts_search_queue")).scalar()
        assert waiting == 0


def test_rows_written_many_to_a_statement_are_all_there_in_file_order(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Chunks of 10 rows written 3 to a statement (4 + 3 + 3 on SQLite): none lost, none twice.
    monkeypatch.setattr(importing, "SQLITE_ROWS_PER_INSERT", 3)
    path = tmp_path / "contacts.csv"
    lines = "".join(f"G{i},F{i},Org,FR,official,fr,,p{i}@example.org,\n" for i in range(25))
    path.write_text(HEADER + lines, encoding="utf-8")
    info, reader = importing.open_contact_file(path)
    reader.close()
    result = importing.import_contacts(path, importing.auto_mapping(info.headers), chunk_rows=10)
    db.session.commit()
    assert result.summary() == "imported 25, updated 0, skipped 0, rejected 0"
    emails = db.session.scalars(select(Contact.email).order_by(Contact.id))
    assert list(emails) == [f"p{i}@example.org" for i in range(25)]


def test_a_unique_conflict_on_the_bulk_write_is_sqlalchemys_integrity_error(app: Flask) -> None:
    # The API's bulk upsert answers 409 to an address another request created after this
    # one looked (IntegrityError); the driver-level writes (COPY, many rows to an INSERT)
    # must raise that, not the driver's own error (which became a 500).
    data = clean_contact_data({"given_name": "Olga", "email": "o@example.org"})
    importing.upsert_contacts([{"given_name": "Olga", "email": "o@example.org"}])
    now = datetime.now(UTC)
    with pytest.raises(IntegrityError), db.session.begin_nested():
        importing._insert_contacts([{**data, "created_at": now, "updated_at": now}])
    assert db.session.scalar(select(func.count()).select_from(Contact)) == 1


def test_duplicates_and_bad_rows_are_refused_as_a_dict_of_first_lines_would_say(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Decision 0079: the addresses met are kept as digests in a hash table, and the
    # rows are written by a second thread, chunk after chunk. Against the plain rule (the
    # first line of each address wins; later ones are refused naming it), on a file with
    # repeats in another case, within a chunk and chunks apart, bad rows and addresses
    # that already exist: the same rows refused for the same reasons, the same counts.
    import random

    rng = random.Random(18)
    importing.upsert_contacts(
        [{"family_name": f"Old{i}", "email": f"p{i}@example.org"} for i in range(0, 400, 7)]
    )
    lines, addresses = [], []
    for i in range(1500):
        n = rng.randrange(400)
        address = f"P{n}@Example.org" if rng.random() < 0.2 else f"p{n}@example.org"
        if rng.random() < 0.03:
            address = "not-an-address"
        addresses.append(address)
        lines.append(f"G{i},F{i},Org,FR,official,fr,,{address},\n")
    path = tmp_path / "contacts.csv"
    path.write_text(HEADER + "".join(lines), encoding="utf-8")
    before = {c.email_key for c in db.session.scalars(select(Contact))}

    expected: dict[int, str] = {}
    first: dict[str, int] = {}
    outcome = {"imported": 0, "skipped": 0}
    for line, address in enumerate(addresses, start=2):
        if address == "not-an-address":
            expected[line] = "invalid"
            continue
        key = address.lower()
        if key in first:
            expected[line] = importing._duplicate_reason(key, first[key])
            continue
        first[key] = line
        outcome["skipped" if key in before else "imported"] += 1

    # A tiny table to start with: slots collide and the table grows many times on the way.
    seen = importing.SeenAddresses(slots=2)
    rejected: list[importing.RowResult] = []
    info, reader = importing.open_contact_file(path)
    reader.close()
    monkeypatch.setattr(importing, "SeenAddresses", lambda: seen)
    result = importing.import_contacts(
        path, importing.auto_mapping(info.headers), on_reject=rejected.append, chunk_rows=50
    )
    db.session.commit()
    got = {r.line: ("invalid" if r.column == "email" else r.problems[0][1]) for r in rejected}
    assert got == expected
    assert (result.imported, result.skipped) == (outcome["imported"], outcome["skipped"])
    stored = set(db.session.scalars(select(Contact.email_key)))
    assert stored == before | set(first)


def test_seen_addresses_name_each_repeats_first_line_through_colliding_slots() -> None:
    # The table starts at 2 slots: addresses share slots, probe past each other and are
    # moved by every doubling; each repeat must still get its own first line, never a
    # neighbour's, and a new address is never taken for a repeat (decision 0079).
    import random

    rng = random.Random(79)
    seen = importing.SeenAddresses(slots=2)
    first: dict[str, int] = {}
    for line in range(2, 20_000):
        key = f"p{rng.randrange(3_000)}@example.org"
        assert seen.first_line(key, line) == first.get(key)
        first.setdefault(key, line)
    assert all(seen.first_line(key, 0) == line for key, line in first.items())


def test_the_search_finds_every_contact_of_an_import_folded_as_it_goes(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite's search index is folded by the writing thread every FOLD_EVERY_ROWS rows and
    # once at the end: every contact is found, nothing waits in the queue, FTS5 is sound.
    monkeypatch.setattr(importing, "FOLD_EVERY_ROWS", 40)
    path = tmp_path / "contacts.csv"
    lines = "".join(f"Olga{i},Petrova,Org,FR,official,fr,,o{i}@example.org,\n" for i in range(130))
    path.write_text(HEADER + lines, encoding="utf-8")
    info, reader = importing.open_contact_file(path)
    reader.close()
    importing.import_contacts(path, importing.auto_mapping(info.headers), chunk_rows=15)
    db.session.commit()
    found = db.session.scalars(filtered_query(ContactFilters(q="petrova")))
    assert len(list(found)) == 130
    if db.session.get_bind().dialect.name == "sqlite":
        connection = db.session.connection()
        indexed = connection.exec_driver_sql("SELECT count(*) FROM contacts_search").scalar()
        assert indexed == 130
        waiting = connection.exec_driver_sql("SELECT count(*) FROM contacts_search_queue")
        assert waiting.scalar() == 0
        connection.exec_driver_sql(
            "INSERT INTO contacts_search (contacts_search, rank) VALUES ('integrity-check', 1)"
        )
