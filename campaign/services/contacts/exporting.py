"""Exporting contacts to CSV and XLSX, safe to open in a spreadsheet, and auditing it."""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import Any, BinaryIO, cast

from flask_babel import gettext as _
from sqlalchemy import Select, select

from campaign.extensions import db
from campaign.models import Contact, ContactList, list_memberships
from campaign.services.accounts.audit import record_event
from campaign.services.contacts.contacts import CONTACT_FIELDS

FORMATS = ("csv", "xlsx")
EXPORT_COLUMNS: tuple[str, ...] = (*CONTACT_FIELDS, "lists")
# Rows fetched (and list names looked up) per round trip; memory stays flat.
BATCH_ROWS = 1000
# Spreadsheets run a cell starting with one of these as a formula (OWASP CSV injection).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# XML 1.0, and so XLSX, cannot hold these; Excel's own escape keeps them readable.
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


class ExportError(ValueError):
    """The export cannot be made as asked (for example an unknown format)."""


def neutralise_cell(value: str) -> str:
    """Prefix a cell that a spreadsheet would run as a formula with an apostrophe."""
    if value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def export_contacts(
    query: Select[tuple[Contact]], fmt: str, destination: BinaryIO, *, description: str
) -> int:
    """Write the contacts selected by `query` to `destination`; return how many."""
    if fmt not in FORMATS:
        raise ExportError(
            _(
                "unknown export format %(format)s; use one of: %(formats)s",
                format=repr(fmt),
                formats=", ".join(FORMATS),
            )
        )
    rows = _rows(query)
    count = (
        write_csv(EXPORT_COLUMNS, rows, destination)
        if fmt == "csv"
        else _write_xlsx(rows, destination)
    )
    record_event(
        "contacts.export",
        target_type="contact",
        detail={"count": count, "format": fmt, "description": description},
    )
    return count


def _rows(query: Select[tuple[Contact]]) -> Iterator[list[str]]:
    result = db.session.scalars(query.execution_options(yield_per=BATCH_ROWS))
    for partition in result.partitions():
        batch = cast("Sequence[Contact]", partition)
        names = _list_names([c.id for c in batch])
        for contact in batch:
            yield [*(_text(getattr(contact, f)) for f in CONTACT_FIELDS), names.get(contact.id, "")]


def _list_names(contact_ids: Sequence[int]) -> dict[int, str]:
    found: defaultdict[int, list[str]] = defaultdict(list)
    query = (
        select(list_memberships.c.contact_id, ContactList.name)
        .join(ContactList, ContactList.id == list_memberships.c.list_id)
        .where(list_memberships.c.contact_id.in_(contact_ids))
        .order_by(ContactList.name)
    )
    for contact_id, name in db.session.execute(query):
        found[contact_id].append(name)
    return {k: "; ".join(v) for k, v in found.items()}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def write_csv(header: Sequence[str], rows: Iterable[Sequence[str]], destination: BinaryIO) -> int:
    """Write `header` and `rows` as CSV a spreadsheet opens safely; return the rows written.

    UTF-8 with a byte-order mark, which makes Excel read Müller, Témoin and Cyrillic
    correctly; cells that would run as formulas get an apostrophe; written in batches of
    BATCH_ROWS, so memory stays flat whatever the number of rows.
    """
    destination.write(codecs.BOM_UTF8)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    count = 0
    for row in rows:
        writer.writerow([neutralise_cell(cell) for cell in row])
        count += 1
        if count % BATCH_ROWS == 0:
            destination.write(buffer.getvalue().encode("utf-8"))
            buffer.seek(0)
            buffer.truncate()
    destination.write(buffer.getvalue().encode("utf-8"))
    return count


def _xlsx_safe(value: str) -> str:
    return _XML_ILLEGAL.sub(lambda m: f"_x{ord(m.group()):04X}_", neutralise_cell(value))


def _write_xlsx(rows: Iterable[list[str]], destination: BinaryIO) -> int:
    from openpyxl import Workbook

    # Write-only mode streams rows to a temporary file instead of keeping them all.
    workbook = Workbook(write_only=True)
    # The sheet's name is for people; the columns keep the field names an import reads.
    sheet = workbook.create_sheet(_("Contacts"))
    sheet.append(list(EXPORT_COLUMNS))
    count = 0
    for row in rows:
        sheet.append([_xlsx_safe(cell) for cell in row])
        count += 1
    workbook.save(destination)
    return count
