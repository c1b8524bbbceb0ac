"""The import's lean row check and its runtime settings (decision 0083). What a person sees
must not change: every row stored as the field rules make it, the same fields counted as
given (an update never erases what the file left blank), the same refusals; and an import
leaves the process as it found it."""

from __future__ import annotations

import gc
import sys
from datetime import date
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Contact
from campaign.models.search_key import search_key_of
from campaign.services.contacts import importing
from campaign.services.contacts.contacts import (
    CONTACT_FIELDS,
    ContactInputError,
    clean_contact_data,
)

HEADER = [
    "given_name",
    "family_name",
    "organisation",
    "position_title",
    "country",
    "role_type",
    "languages",
    "tags",
    "email",
    "cc_emails",
    "term_ends_on",
    "notes",
]
# Values repeated down the file (remembered by the lean check) beside ones that differ,
# blank and whitespace-only cells (not "given"), cells an export protected with a quote
# ("'=…", restored), and bad values after the same field's good ones and before them.
ROWS = [
    ["Anna", "Muster", "Embassy", "Ambassador", "FR", "ambassador", "fr;en", "press",
     "anna@example.org", "", "2027-01-31", ""],
    ["Иван", "Смирнов", "Embassy", "  ", "FR", "Ambassador", "ru", "press",
     "ivan@example.org", "a@example.org", "", "   "],
    ["'=Olga", "'+Petrova", "'@Embassy", "", "fr", "official", "", "",
     "olga@bücher-probe.example", "", "", "'-1"],
    ["Bad", "Country", "Embassy", "", "XX", "ambassador", "fr", "press",
     "bad1@example.org", "", "", ""],
    ["", "", "", "", "FR", "official", "", "", "nameless@example.org", "", "", ""],
    ["Bad", "Date", "Embassy", "", "FR", "official", "", "", "bad2@example.org", "",
     "31/01/2027", ""],
    ["Anna", "Muster", "Embassy", "Ambassador", "FR", "pope", "fr", "press",
     "bad3@example.org", "", "", ""],
    ["Long", "x" * 201, "Embassy", "", "FR", "official", "", "", "long@example.org", "",
     "", ""],
    ["Zoë", "'", "Ministry", "Minister", "DE", "minister", "de", "eu;mep",
     "zoe@example.org", "", "2027-01-31", "note"],
    ["No", "Address", "Ministry", "", "DE", "official", "de", "", "", "", "", ""],
    ["Tab", "Separated", "Ministry\u2028Foreign", "", "DE", "official", "", "",
     "tab@example.org", "", "", ""],
    ["'", "Quote", "'", "'=", "DE", "official", "", "", "quote@example.org", "", "", ""],
]  # fmt: skip


def _reference(cells: list[str]) -> tuple[dict[str, object] | list[str], tuple[str, ...]]:
    """What the rule every path shares (clean_contact_data) makes of a row, and the fields
    whose cell is not blank: the import's contract before the lean check existed."""
    raw = {name: importing._restore_cell(cell) for name, cell in zip(HEADER, cells, strict=True)}
    given = tuple(name for name, value in raw.items() if value and not value.isspace())
    try:
        return clean_contact_data(raw), given
    except ContactInputError as error:
        return [e.message for e in error.errors], given


def _write(path: Path, rows: list[list[str]]) -> None:
    import csv

    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(HEADER)
        writer.writerows(rows)


def test_the_lean_check_stores_refuses_and_counts_given_fields_as_the_field_rules_say(
    app: Flask, tmp_path: Path
) -> None:
    path = tmp_path / "contacts.csv"
    # Twice over: the second time every value is one the lean check has remembered.
    rows = ROWS + [
        [*cells[:8], "again." + cells[8] if cells[8] else "", *cells[9:]] for cells in ROWS
    ]
    _write(path, rows)
    info, reader = importing.open_contact_file(path)
    mapping = importing.clean_mapping(info.headers, importing.auto_mapping(info.headers))
    checker = importing._RowChecker(info.headers, mapping)
    checked = [checker.check(row) for row in reader]
    reader.close()
    assert len(checked) == len(rows)
    for result, cells in zip(checked, rows, strict=True):
        expected, given = _reference(cells)
        if isinstance(expected, list):
            assert result.data is None, cells
            assert [reason for _column, reason in result.problems] == expected
        else:
            assert result.problems == [], cells
            assert result.data == expected
            assert list(result.data) == list(expected)  # the same order of columns
            assert result.given == given

    # And through the import: the rows stored whole, each with its search key.
    result = importing.import_contacts(path, importing.auto_mapping(info.headers))
    db.session.commit()
    valid = [cells for cells in rows if isinstance(_reference(cells)[0], dict)]
    assert result.imported == len(valid) == 10
    assert result.rejected == len(rows) - len(valid)
    stored = {c.email_key: c for c in db.session.scalars(select(Contact))}
    for cells in valid:
        data = _reference(cells)[0]
        assert isinstance(data, dict)
        contact = stored[str(data["email_key"])]
        assert {n: getattr(contact, n) for n in CONTACT_FIELDS} == {
            n: data[n] for n in CONTACT_FIELDS
        }
        assert contact.search_key == search_key_of(contact)
    olga = stored["olga@bücher-probe.example"]
    assert (olga.given_name, olga.family_name, olga.notes) == ("=Olga", "+Petrova", "-1")
    assert stored["anna@example.org"].term_ends_on == date(2027, 1, 31)


def test_an_update_from_the_lean_check_never_erases_what_the_file_left_blank(
    app: Flask, tmp_path: Path
) -> None:
    path = tmp_path / "contacts.csv"
    _write(path, [ROWS[0]])
    info, reader = importing.open_contact_file(path)
    reader.close()
    mapping = importing.auto_mapping(info.headers)
    importing.import_contacts(path, mapping)
    # The same address again: blank and whitespace-only cells keep what is stored.
    again = ["Anna", "  ", "", "Ambassador", "", "ambassador", "", "", "ANNA@example.org", "", "",
             "new note"]  # fmt: skip
    _write(path, [again])
    result = importing.import_contacts(path, mapping, on_duplicate="update")
    db.session.commit()
    assert result.summary() == "imported 0, updated 1, skipped 0, rejected 0"
    anna = db.session.scalars(select(Contact)).one()
    assert (anna.family_name, anna.organisation, anna.country) == ("Muster", "Embassy", "FR")
    assert (anna.languages, anna.term_ends_on, anna.notes) == (
        "fr en",
        date(2027, 1, 31),
        "new note",
    )


def test_an_import_leaves_the_interpreter_settings_as_it_found_them(
    app: Flask, tmp_path: Path
) -> None:
    path = tmp_path / "contacts.csv"
    _write(path, [[*ROWS[0][:8], f"p{i}@example.org", *ROWS[0][9:]] for i in range(30)])
    info, reader = importing.open_contact_file(path)
    reader.close()
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    seen: list[tuple[float, int]] = []
    try:
        sys.setswitchinterval(0.004)
        gc.set_threshold(900, 11, 12)
        importing.import_contacts(
            path,
            importing.auto_mapping(info.headers),
            chunk_rows=10,
            on_progress=lambda _p: seen.append((sys.getswitchinterval(), gc.get_threshold()[0])),
        )
        # While it ran: the import's settings; after: the ones it found.
        assert (0.001, importing.GC_THRESHOLD) in seen
        assert (sys.getswitchinterval(), gc.get_threshold()) == (0.004, (900, 11, 12))
        # A write that fails half-way restores them too.
        _write(path, [[*ROWS[0][:8], f"q{i}@example.org", *ROWS[0][9:]] for i in range(30)])
        calls = 0
        real = importing._insert_contacts

        def failing(rows: list[dict[str, object]]) -> None:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise RuntimeError("disk full")
            real(rows)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(importing, "_insert_contacts", failing)
            with pytest.raises(RuntimeError, match="disk full"):
                importing.import_contacts(path, importing.auto_mapping(info.headers), chunk_rows=10)
        assert (sys.getswitchinterval(), gc.get_threshold()) == (0.004, (900, 11, 12))
    finally:
        sys.setswitchinterval(interval)
        gc.set_threshold(*thresholds)
        db.session.rollback()


def test_imports_that_overlap_in_one_process_restore_the_settings_once_both_end() -> None:
    # Two imports in one process (threads), the first ending before the second: each used
    # to save what it found and put it back, so the second put back the first's settings
    # and left the process switching threads every millisecond.
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    settings = importing._RuntimeSettings()
    try:
        sys.setswitchinterval(0.004)
        gc.set_threshold(900, 11, 12)
        settings.enter()  # the first import starts
        settings.enter()  # the second starts
        settings.leave()  # the first ends: the second still runs with the import's settings
        assert (sys.getswitchinterval(), gc.get_threshold()[0]) == (0.001, importing.GC_THRESHOLD)
        settings.leave()  # the second ends
        assert (sys.getswitchinterval(), gc.get_threshold()) == (0.004, (900, 11, 12))
    finally:
        sys.setswitchinterval(interval)
        gc.set_threshold(*thresholds)


def test_the_sqlite_page_cache_is_put_back_after_an_import(app: Flask, tmp_path: Path) -> None:
    if db.session.get_bind().dialect.name != "sqlite":
        pytest.skip("SQLite's page cache")
    path = tmp_path / "contacts.csv"
    _write(path, [[*ROWS[0][:8], f"p{i}@example.org", *ROWS[0][9:]] for i in range(30)])
    info, reader = importing.open_contact_file(path)
    reader.close()
    connection = db.session.connection()
    before = connection.exec_driver_sql("PRAGMA cache_size").scalar()
    importing.import_contacts(path, importing.auto_mapping(info.headers), chunk_rows=10)
    assert connection.exec_driver_sql("PRAGMA cache_size").scalar() == before
    db.session.commit()
    assert db.session.scalar(select(Contact.id).limit(1)) is not None
