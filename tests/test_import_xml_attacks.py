"""Hostile and damaged Excel files on the import page: a clear refusal, and no file left behind.

A workbook is XML in a zip. A DTD in any of its parts can declare entities that expand to
gigabytes ("billion laughs") or read files of the server (an external entity); a damaged
part cannot be parsed. Each is refused with a message naming the file and the problem in
words, and the uploaded copy is deleted whatever happened.
"""

from __future__ import annotations

import html
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from campaign.extensions import db
from campaign.models import ContactImport, Role

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/sharedStrings.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="xl/workbook.xml"/></Relationships>'
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Contacts" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    'Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" '
    'Target="sharedStrings.xml"/></Relationships>'
)
_PROLOG = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_SHEET_BODY = (
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
    '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
    '<row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2" t="s"><v>3</v></c></row>'
    "</sheetData></worksheet>"
)


def _strings_body(first: str = "Email") -> str:
    cells = "".join(f"<si><t>{text}</t></si>" for text in (first, "Name", "a@example.org", "Anna"))
    return (
        '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        f'count="4" uniqueCount="4">{cells}</sst>'
    )


def workbook(
    *, sheet: str | bytes | None = None, strings: str | bytes | None = None, styles: str = ""
) -> bytes:
    """A minimal .xlsx (two columns, one data row) with the given parts replaced."""
    parts: dict[str, str | bytes] = {
        "[Content_Types].xml": _CONTENT_TYPES,
        "_rels/.rels": _ROOT_RELS,
        "xl/workbook.xml": _WORKBOOK,
        "xl/_rels/workbook.xml.rels": _WORKBOOK_RELS,
        "xl/worksheets/sheet1.xml": sheet if sheet is not None else _PROLOG + _SHEET_BODY,
        "xl/sharedStrings.xml": strings if strings is not None else _PROLOG + _strings_body(),
    }
    if styles:
        parts["xl/styles.xml"] = styles
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in parts.items():
            archive.writestr(name, content)
    return buffer.getvalue()


_LAUGHS = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<!DOCTYPE sst [\n"
    ' <!ENTITY lol "lol">\n'
    + "".join(
        f' <!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">\n'
        for n in range(1, 10)
    )
    + "]>\n"
)
BILLION_LAUGHS = _LAUGHS + _strings_body("&lol9;")
EXTERNAL_ENTITY = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<!DOCTYPE worksheet [<!ENTITY secret SYSTEM "file:///etc/hostname">]>\n'
    + _SHEET_BODY.replace(
        '<c r="B2" t="s"><v>3</v></c>', '<c r="B2" t="inlineStr"><is><t>&secret;</t></is></c>'
    )
)
PLAIN_DTD = '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE worksheet>\n' + _SHEET_BODY
# The same attack in UTF-16, which a byte search for "<!DOCTYPE" would miss.
UTF16_ENTITY = (
    '<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE sst [<!ENTITY e "Email">]>\n'
    + _strings_body("&e;")
).encode("utf-16")


def upload(client: FlaskClient, content: bytes, name: str) -> Any:
    values = MultiDict({"file": FileStorage(io.BytesIO(content), filename=name)})
    boundary, body = encode_multipart(values)
    return client.post(
        "/imports/", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )


def uploads_left(app: Flask) -> list[Path]:
    folder = Path(app.instance_path) / "uploads"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_a_wellformed_minimal_workbook_is_accepted(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    """The builder below makes a real workbook: the refusals are about the attack only."""
    login(Role.EDITOR)
    response = upload(client, workbook(), "contacts.xlsx")
    assert response.status_code == 302, response.get_data(as_text=True)
    assert len(uploads_left(app)) == 1


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (workbook(strings=BILLION_LAUGHS), "xl/sharedStrings.xml"),
        (workbook(sheet=EXTERNAL_ENTITY), "xl/worksheets/sheet1.xml"),
        (workbook(sheet=PLAIN_DTD), "xl/worksheets/sheet1.xml"),
        (workbook(strings=UTF16_ENTITY), "xl/sharedStrings.xml"),
    ],
    ids=["billion-laughs", "external-entity", "plain-doctype", "utf16-entity"],
)
def test_a_workbook_with_a_dtd_is_refused_in_words_and_deleted(
    app: Flask, client: FlaskClient, login: Any, content: bytes, where: str
) -> None:
    login(Role.EDITOR)
    response = upload(client, content, "hostile.xlsx")
    page = response.get_data(as_text=True)
    assert response.status_code == 400, page
    assert "hostile.xlsx" in page
    assert "XML features that are not allowed (a DTD)" in page
    assert where in page
    assert "save it again from your spreadsheet program" in page
    assert uploads_left(app) == []
    assert db.session.scalar(select(func.count(ContactImport.id))) == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (workbook(sheet=_PROLOG + _SHEET_BODY[:120]), "xl/worksheets/sheet1.xml"),
        (workbook(strings=_PROLOG + "<sst><si><t>Email</si></sst>"), "xl/sharedStrings.xml"),
        (workbook(styles=_PROLOG + "<styleSheet><numFmts"), "xl/styles.xml"),
        (b"PK\x03\x04" + b"\x00" * 200, "cannot be opened as an Excel workbook"),
    ],
    ids=["truncated-sheet", "mismatched-tag", "broken-styles", "bad-zip"],
)
def test_a_damaged_workbook_is_refused_in_words_and_deleted(
    app: Flask, client: FlaskClient, login: Any, content: bytes, message: str
) -> None:
    login(Role.EDITOR)
    response = upload(client, content, "damaged.xlsx")
    page = response.get_data(as_text=True)
    assert response.status_code == 400, page
    assert "damaged.xlsx" in page and message in page
    assert "Traceback" not in page
    assert uploads_left(app) == []
    assert db.session.scalar(select(func.count(ContactImport.id))) == 0


def test_a_stored_upload_that_became_unreadable_fails_its_import_and_is_deleted(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    """The file on disk changed between the upload and the next step (a full disk, a
    restore): the mapping page says why, the import is failed and its file deleted."""
    login(Role.EDITOR)
    response = upload(client, workbook(), "contacts.xlsx")
    assert response.status_code == 302
    (stored,) = uploads_left(app)
    stored.write_bytes(workbook(sheet=_PROLOG + _SHEET_BODY[:120]))
    mapping = client.get(response.headers["Location"])
    assert mapping.status_code == 302
    page = client.get(mapping.headers["Location"]).get_data(as_text=True)
    assert "contacts.xlsx cannot be opened as an Excel workbook" in page
    record = db.session.scalars(select(ContactImport)).one()
    assert record.status == "failed" and "cannot be opened" in record.error
    assert uploads_left(app) == []


def _rezip(content: bytes, change: Any) -> bytes:
    """The workbook with each part replaced by `change(name, data)`; None leaves it out."""
    source = zipfile.ZipFile(io.BytesIO(content))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            data = change(info.filename, source.read(info))
            if data is not None:
                archive.writestr(info.filename, data)
    return buffer.getvalue()


def _patch_headers(content: bytes, patch: Any, part: bytes = b"xl/worksheets/sheet1.xml") -> bytes:
    """Change the sheet's local and central zip headers in place: `patch(buffer, start)`."""
    data = bytearray(content)
    at = data.find(part)
    while at >= 0:
        if data[at - 30 : at - 26] == b"PK\x03\x04":
            patch(data, at - 30, local=True)
        if data[at - 46 : at - 42] == b"PK\x01\x02":
            patch(data, at - 46, local=False)
        at = data.find(part, at + 1)
    return bytes(data)


def _corrupt_deflate(content: bytes) -> bytes:
    data = bytearray(content)
    start = data.index(b"xl/worksheets/sheet1.xml") + len(b"xl/worksheets/sheet1.xml")
    for k in range(start, start + 10):
        data[k] ^= 0xFF
    return bytes(data)


def _encrypted_flag(data: bytearray, header: int, *, local: bool) -> None:
    data[header + (6 if local else 8)] |= 1


def _deflate64(data: bytearray, header: int, *, local: bool) -> None:
    at = header + (8 if local else 10)
    data[at : at + 2] = (9).to_bytes(2, "little")


_GOOD = workbook()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (_corrupt_deflate(_GOOD), "its part xl/worksheets/sheet1.xml cannot be read"),
        (_patch_headers(_GOOD, _encrypted_flag), "protected with a password"),
        (_patch_headers(_GOOD, _deflate64), "compressed in a way that cannot be read"),
        (
            workbook(sheet='<?xml version="1.0" encoding="x-foo"?>' + _SHEET_BODY),
            "its part xl/worksheets/sheet1.xml cannot be read",
        ),
        (
            _rezip(_GOOD, lambda n, d: None if n == "xl/worksheets/sheet1.xml" else d),
            "has no worksheet that can be read",
        ),
        (
            _rezip(
                _GOOD,
                lambda n, d: d.replace(b'<sheet name="Contacts" sheetId="1" r:id="rId1"/>', b""),
            ),
            "has no worksheet that can be read",
        ),
    ],
    ids=[
        "corrupt-deflate",
        "encrypted",
        "deflate64",
        "unknown-encoding",
        "no-sheet-part",
        "no-sheet",
    ],
)
def test_a_workbook_whose_parts_cannot_be_read_is_refused_in_words_and_deleted(
    app: Flask, client: FlaskClient, login: Any, content: bytes, message: str
) -> None:
    login(Role.EDITOR)
    response = upload(client, content, "crafted.xlsx")
    page = response.get_data(as_text=True)
    assert response.status_code == 400, page
    assert "crafted.xlsx" in page and message in page
    assert uploads_left(app) == []
    assert db.session.scalar(select(func.count(ContactImport.id))) == 0


def _sheet_with(bad_row: int, cell: str) -> str:
    rows = [
        '<row r="1"><c r="A1" t="inlineStr"><is><t>Email</t></is></c>'
        '<c r="B1" t="inlineStr"><is><t>Name</t></is></c></row>'
    ]
    for i in range(2, 30):
        second = cell if i == bad_row else f'<c r="B{i}" t="inlineStr"><is><t>N{i}</t></is></c>'
        rows.append(
            f'<row r="{i}"><c r="A{i}" t="inlineStr"><is><t>p{i}@example.org</t></is></c>'
            f"{second}</row>"
        )
    return (
        _PROLOG + '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        "<sheetData>" + "".join(rows) + "</sheetData></worksheet>"
    )


@pytest.mark.parametrize(
    ("bad_row", "cell", "step", "reason"),
    [
        (3, '<c r="B3" t="s"><v>99</v></c>', "mapping", "shared text that does not exist"),
        (15, '<c r="B15" t="d"><v>nope</v></c>', "preview", "Invalid datetime value nope"),
    ],
    ids=["shared-string-index", "bad-date"],
)
def test_a_bad_cell_past_the_first_row_fails_the_import_in_words_and_deletes_the_file(
    app: Flask, client: FlaskClient, login: Any, bad_row: int, cell: str, step: str, reason: str
) -> None:
    """The upload reads the header and the first row; a cell further down that cannot be
    read stops the mapping or the preview page with the file, row and reason, not a 500."""
    login(Role.EDITOR)
    response = upload(client, workbook(sheet=_sheet_with(bad_row, cell)), "rows.xlsx")
    assert response.status_code == 302
    mapping_url = response.headers["Location"]
    if step == "preview":
        mapping = client.get(mapping_url)
        assert mapping.status_code == 200
        form = {"map-0": "email", "map-1": "family_name", "on_duplicate": "skip"}
        chosen = client.post(mapping_url, data=form)
        assert chosen.status_code == 302, chosen.get_data(as_text=True)
        answer = client.get(chosen.headers["Location"])
    else:
        answer = client.get(mapping_url)
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/imports/"
    page = html.unescape(client.get(answer.headers["Location"]).get_data(as_text=True))
    assert f"rows.xlsx is damaged at row {bad_row} of its first sheet" in page
    assert reason in page
    record = db.session.scalars(select(ContactImport)).one()
    assert record.status == "failed" and f"row {bad_row}" in record.error
    assert uploads_left(app) == []
