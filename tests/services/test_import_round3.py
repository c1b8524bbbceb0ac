"""The import's lean row check and its runtime settings (decision 0083). What a person sees
must not change: every row stored as the field rules make it, the same fields counted as
given (an update never erases what the file left blank), the same refusals; and an import
leaves the process as it found it."""

from __future__ import annotations

import gc
import random
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from campaign import bulk_write
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
    assert before != -importing.IMPORT_PAGE_CACHE_KIB
    # Read from inside each write (the writer thread, on the import's connection).
    during: list[int] = []
    real = importing._write_chunk

    def write_chunk(*args: Any, **kwargs: Any) -> None:
        during.append(db.session.connection().exec_driver_sql("PRAGMA cache_size").scalar())
        real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(importing, "_write_chunk", write_chunk)
        importing.import_contacts(path, importing.auto_mapping(info.headers), chunk_rows=10)
    assert during == [-importing.IMPORT_PAGE_CACHE_KIB] * 3  # 16 MiB, in KiB
    assert connection.exec_driver_sql("PRAGMA cache_size").scalar() == before
    db.session.commit()
    assert db.session.scalar(select(Contact.id).limit(1)) is not None


# --- Review of 0083: the guards of the lean path, its cleanup, its page cache ----------------


def _anna_file(path: Path, cells: dict[str, str]) -> None:
    row = dict(zip(HEADER, ROWS[0], strict=True))
    row.update(cells)
    _write(path, [[row[name] for name in HEADER]])


def test_a_cell_blank_once_its_export_quote_is_off_never_erases_the_stored_value(
    app: Flask, tmp_path: Path
) -> None:
    # "'\t": an export's quote before a tab, i.e. a tab: blank. Blank is decided on the
    # cell without its quote; with the quote it looked given and erased the stored name.
    from campaign.services.contacts.tabular import Row

    headers = ["email", "given_name", "family_name"]
    checker = importing._RowChecker(headers, importing.auto_mapping(headers))
    for _time in range(2):  # then remembered
        checked = checker.check(Row(2, ["anna@example.org", "'\t", "Muster"], None))
        assert checked.problems == [] and checked.data is not None
        assert checked.data["given_name"] == ""
        assert checked.given == ("email", "family_name")
    path = tmp_path / "contacts.csv"
    _anna_file(path, {})
    mapping = importing.auto_mapping(HEADER)
    importing.import_contacts(path, mapping)
    _anna_file(path, {"given_name": "'\t", "family_name": "'\t", "organisation": "Mission"})
    result = importing.import_contacts(path, mapping, on_duplicate="update")
    db.session.commit()
    assert result.summary() == "imported 0, updated 1, skipped 0, rejected 0"
    anna = db.session.scalars(select(Contact)).one()
    assert (anna.given_name, anna.family_name, anna.organisation) == ("Anna", "Muster", "Mission")


def test_a_confirmed_dative_without_forms_is_refused_with_the_full_checks_message(
    app: Flask, tmp_path: Path
) -> None:
    # A dative_confirmed column sends its rows to the full check, which settles the forms
    # with the salutation rules: "yes" with nothing to confirm is refused there.
    from campaign.services.contacts.tabular import Row

    headers = ["email", "family_name", "dative_confirmed"]
    checker = importing._RowChecker(headers, importing.auto_mapping(headers))
    refused = checker.check(Row(2, ["smith@example.org", "Smith", "yes"], None))
    with pytest.raises(ContactInputError) as error:
        clean_contact_data(
            {"email": "smith@example.org", "family_name": "Smith", "dative_confirmed": "yes"}
        )
    assert refused.data is None
    assert refused.problems == [("dative_confirmed", e.message) for e in error.value.errors]
    assert "enter the dative forms" in refused.problems[0][1]
    kept = checker.check(Row(3, ["smith2@example.org", "Smith", "no"], None))
    assert kept.problems == [] and kept.data is not None
    assert kept.data["dative_confirmed"] is False


def test_a_lone_surrogate_in_a_cell_is_refused_naming_its_line_and_column(app: Flask) -> None:
    # A file decoded as UTF-8 cannot hold one; a cell handed to the check with one (the
    # path the API's items share) is refused, not left for the insert to fail on.
    from campaign.services.contacts.tabular import Row

    headers = ["Email", "First name", "Last name", "Notes"]
    checker = importing._RowChecker(headers, importing.auto_mapping(headers))
    for cells, column in (
        (["a@example.org", "x\ud800y", "Muster", ""], "First name"),
        (["a@example.org", "Anna", "Muster", "note \udc00"], "Notes"),
    ):
        checked = checker.check(Row(7, cells, None))
        assert checked.data is None and checked.line == 7
        assert checked.column == column
        assert "half of a surrogate pair" in checked.reason


def test_the_lean_check_refuses_two_columns_for_one_field() -> None:
    from campaign.services.contacts.contacts import cell_cleaner

    with pytest.raises(ValueError, match="two columns"):
        cell_cleaner([(0, "email"), (1, "family_name"), (2, "family_name")], {}, str)


class _Interrupted(BaseException):
    """What a job's timeout raises in the importing thread (rq's JobTimeoutException is
    an Exception; a stop signal may be anything)."""


def test_an_import_interrupted_while_its_writer_is_joined_still_restores_everything(
    app: Flask, tmp_path: Path
) -> None:
    path = tmp_path / "contacts.csv"
    _write(path, [[*ROWS[0][:8], f"p{i}@example.org", *ROWS[0][9:]] for i in range(30)])
    mapping = importing.auto_mapping(HEADER)
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    dialect = db.session.get_bind().dialect.name
    connection = db.session.connection()
    cache = connection.exec_driver_sql("PRAGMA cache_size").scalar() if dialect == "sqlite" else 0
    real = importing._ChunkWriter.abandon
    calls = 0

    def abandon(writer: importing._ChunkWriter) -> None:
        nonlocal calls
        calls += 1
        real(writer)
        if calls == 1:
            raise _Interrupted("job timeout while the writer thread is joined")

    try:
        sys.setswitchinterval(0.004)
        gc.set_threshold(900, 11, 12)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(importing._ChunkWriter, "abandon", abandon)
            with pytest.raises(_Interrupted):
                importing.import_contacts(path, mapping, chunk_rows=10)
            assert (sys.getswitchinterval(), gc.get_threshold()) == (0.004, (900, 11, 12))
            if dialect == "sqlite":
                assert connection.exec_driver_sql("PRAGMA cache_size").scalar() == cache
            db.session.rollback()
            # The next import runs, with the import's settings, and leaves them as found.
            seen: list[tuple[float, int]] = []
            result = importing.import_contacts(
                path,
                mapping,
                chunk_rows=10,
                on_progress=lambda _p: seen.append(
                    (sys.getswitchinterval(), gc.get_threshold()[0])
                ),
            )
        db.session.commit()
        assert result.imported == 30
        assert (0.001, importing.GC_THRESHOLD) in seen
        assert (sys.getswitchinterval(), gc.get_threshold()) == (0.004, (900, 11, 12))
        assert importing._IMPORT_RUNTIME._running == 0
    finally:
        sys.setswitchinterval(interval)
        gc.set_threshold(*thresholds)
        db.session.rollback()


def test_a_failing_page_cache_restore_still_closes_the_files_and_restores_the_settings(
    app: Flask, tmp_path: Path
) -> None:
    path = tmp_path / "contacts.csv"
    _write(path, [[*ROWS[0][:8], f"p{i}@example.org", *ROWS[0][9:]] for i in range(5)])
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    closed: list[str] = []
    real_close = importing._RejectsWriter.close

    def close(writer: importing._RejectsWriter) -> None:
        closed.append("rejects")
        real_close(writer)

    def broken_restore() -> None:
        raise OSError("database is locked")

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(importing, "_widen_page_cache", lambda: broken_restore)
            patch.setattr(importing._RejectsWriter, "close", close)
            with pytest.raises(OSError, match="database is locked"):
                importing.import_contacts(path, importing.auto_mapping(HEADER))
        assert closed == ["rejects"]
        assert (sys.getswitchinterval(), gc.get_threshold()) == (interval, thresholds)
        assert importing._IMPORT_RUNTIME._running == 0
    finally:
        sys.setswitchinterval(interval)
        gc.set_threshold(*thresholds)
        db.session.rollback()


# Cells that test the rules' edges: blanks of several kinds, an export's quotes, codes in
# other cases, dates in other forms, addresses, long values, invisible and broken text.
_FUZZ_POOL = [
    "", " ", "\t", "\u00a0", "\u3000", "'", "''", "'=cmd", "=cmd", "'+1", "'-", "'@x", "'\t",
    "' ", "FR", "fr", " fr ", "XX", "EU", "ambassador", "Ambassador", "AMBASSADOR", "Посол",
    "f", "female", "M", "x", "u", "h.e.", "He", "organization", "org", "person",
    "2027-01-31", "2027-1-31", " 2027-01-31 ", "20270131", "2027-W01-1", "a@example.org",
    "A@EXAMPLE.ORG", " a@example.org ", "a@bücher.example", "\u200b", "x" * 201, "y" * 501,
    "Europe/Paris", "europe/paris", "fr;en", "fr en", "pt-br", "ru, ru", "yes", "no", "да",
    "1", "0", "Anna", "Иван", "Zoë", "Zoe\u0308", "a\u2028b", "a\nb", "tag one,tag2", "x@y",
    "b@example.org;c@example.org", "public", "high", "x\ud800y",
]  # fmt: skip
_FUZZ_FOR_ALL_ROWS = {
    "role_type": ["", "ambassador", "minister", "pope", "Посол"],
    "grammatical_gender": ["", "f", "m", "female", "q"],
    "languages": ["", "fr", "fr en", "xx-!!"],
}


def test_the_lean_check_agrees_with_the_field_rules_on_random_rows(app: Flask) -> None:
    """Seeded random files (the fields, their order, values for all rows, each cell from
    the pool above, each row checked twice so that the second is remembered): every row
    is stored, refused and counted as clean_contact_data says (the 0083 review's fuzz)."""
    if db.session.get_bind().dialect.name != "sqlite":
        pytest.skip("no database involved: once is enough")
    from campaign.services.contacts.contacts import FIELD_PARSERS, InvalidValue
    from campaign.services.contacts.tabular import Row

    def passes(name: str, cell: str) -> bool:
        try:
            FIELD_PARSERS[name](importing._restore_cell(cell))
        except InvalidValue:
            return False
        return True

    good = {name: [c for c in _FUZZ_POOL if passes(name, c)] for name in CONTACT_FIELDS}
    rnd = random.Random(83)
    lean = {True: 0, False: 0}
    for _file in range(60):
        fields = rnd.sample([f for f in CONTACT_FIELDS if f != "email"], rnd.randint(0, 12))
        fields.insert(rnd.randint(0, len(fields)), "email")
        headers = [f"H{i}" for i in range(len(fields))]
        chosen = {
            name: rnd.choice(values)
            for name, values in _FUZZ_FOR_ALL_ROWS.items()
            if name not in fields and rnd.random() < 0.5
        }
        checker = importing._RowChecker(headers, dict(zip(headers, fields, strict=True)), chosen)
        cells_of = checker.clean_cells

        def counted(cells: Any, cells_of: Any = cells_of) -> Any:
            out = cells_of(cells)
            lean[out is not None] += 1
            return out

        checker.clean_cells = counted
        for line in range(40):
            cells = [
                f"p{line}@example.org"
                if name == "email" and rnd.random() > 0.3
                else rnd.choice(good[name] if good[name] and rnd.random() < 0.92 else _FUZZ_POOL)
                for name in fields
            ]
            raw = {f: importing._restore_cell(c) for f, c in zip(fields, cells, strict=True)}
            given = tuple(name for name, value in raw.items() if value and not value.isspace())
            try:
                expected: Any = clean_contact_data({**raw, **checker.fallbacks})
            except ContactInputError as error:
                expected = [
                    (checker.header_of.get(e.field, e.field), e.message) for e in error.errors
                ]
            for _time in range(2):
                result = checker.check(Row(line + 2, list(cells), None))
                if isinstance(expected, list):
                    assert (result.data, result.problems) == (None, expected), (fields, cells)
                else:
                    assert (result.data, result.problems) == (expected, []), (fields, cells)
                    assert result.given == given, (fields, cells)
    assert lean[True] > 100 and lean[False] > 100  # both paths were taken


def test_a_column_the_database_lacks_stops_the_binary_copy_with_a_clear_error(app: Flask) -> None:
    if db.session.get_bind().dialect.name != "postgresql":
        pytest.skip("PostgreSQL's binary COPY")
    row = clean_contact_data({"email": "a@example.org", "family_name": "A"})
    row["email_key"] = "a@example.org"
    row["created_at"] = row["updated_at"] = datetime.now(UTC)
    # The column types are read once per connection: a second write reads no catalogue.
    importing._insert_contacts([dict(row)])
    driver = db.session.connection().connection.driver_connection
    assert set(bulk_write._COPY_TYPES[driver]["contacts"]) >= set(row)
    # A column the table lacks (a migration not run): said so, not a bare KeyError.
    with pytest.raises(RuntimeError, match="has no column not_migrated: is a migration missing"):
        importing._insert_contacts([{**row, "email": "b@example.org", "not_migrated": "x"}])
    db.session.rollback()
