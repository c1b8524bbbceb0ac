"""Reading contact files: encodings, delimiters, broken rows and files that cannot be read."""

from __future__ import annotations

import codecs
from datetime import date
from pathlib import Path

import pytest
from openpyxl import Workbook

from campaign.services.contacts.tabular import (
    MAX_CELL_CHARS,
    Row,
    TableInfo,
    TabularError,
    read_table,
)

HEADER = "given_name,family_name,email\n"
BIG = 10 * 1024 * 1024


def write(tmp_path: Path, data: bytes, name: str = "contacts.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read(path: Path, max_bytes: int = BIG) -> tuple[TableInfo, list[Row]]:
    info, rows = read_table(path, max_bytes=max_bytes)
    return info, list(rows)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TabularError, match=r"contacts\.csv is empty"):
        read(write(tmp_path, b""))


def test_a_file_of_blank_lines_is_refused_as_empty(tmp_path: Path) -> None:
    with pytest.raises(TabularError, match="empty"):
        read(write(tmp_path, b"\r\n\n  \n"))


def test_a_header_only_file_says_there_is_nothing_to_import(tmp_path: Path) -> None:
    with pytest.raises(TabularError, match="header row but no data rows"):
        read(write(tmp_path, HEADER.encode()))


def test_an_unknown_delimiter_is_refused_naming_the_first_line(tmp_path: Path) -> None:
    data = b"given_name#family_name#email\nAnna#Muster#a@example.org\n"
    with pytest.raises(TabularError) as caught:
        read(write(tmp_path, data))
    message = str(caught.value)
    assert "could not tell how the columns are separated" in message
    assert "given_name#family_name#email" in message


@pytest.mark.parametrize(("delimiter", "name"), [(";", "semicolon"), ("\t", "tab"), ("|", "|")])
def test_common_delimiters_are_sniffed(tmp_path: Path, delimiter: str, name: str) -> None:
    text = f"name{delimiter}email{delimiter}title\nAnna{delimiter}a@example.org{delimiter}Dr, MEP\n"
    info, rows = read(write(tmp_path, text.encode()))
    assert info.delimiter == delimiter
    assert rows[0].cells == ["Anna", "a@example.org", "Dr, MEP"]


def test_a_single_column_of_addresses_is_read(tmp_path: Path) -> None:
    info, rows = read(write(tmp_path, b"email\na@example.org\nb@example.org\n"))
    assert info.headers == ["email"]
    assert [r.cells for r in rows] == [["a@example.org"], ["b@example.org"]]


def test_an_unbalanced_quote_rejects_its_row_and_the_others_are_read(tmp_path: Path) -> None:
    data = (
        HEADER + "Anna,Muster,a@example.org\n"
        'Bad,"Quote,b@example.org\n'
        "Carl,Probe,c@example.org\n"
        "Dora,Beispiel,d@example.org\n"
    ).encode()
    _info, rows = read(write(tmp_path, data))
    assert [(r.line, r.problem is None) for r in rows] == [
        (2, True),
        (3, False),
        (4, True),
        (5, True),
    ]
    problem = rows[1].problem
    assert problem is not None and "unbalanced quotes" in problem.reason
    assert rows[1].cells[0] == "Bad"  # what could be recovered goes to the rejects file


def test_a_quote_in_the_middle_of_a_cell_rejects_the_row(tmp_path: Path) -> None:
    data = (HEADER + 'Anna,"Mus"ter,a@example.org\nCarl,Probe,c@example.org\n').encode()
    _info, rows = read(write(tmp_path, data))
    assert rows[0].line == 2 and rows[0].problem is not None
    assert "unbalanced quotes" in rows[0].problem.reason
    assert rows[1].line == 3 and rows[1].problem is None


def test_a_line_break_inside_quotes_is_one_record_and_line_numbers_stay_right(
    tmp_path: Path,
) -> None:
    data = (
        HEADER + 'Anna,"Muster\nvon Beispiel",a@example.org\nCarl,Probe,c@example.org\n'
    ).encode()
    _info, rows = read(write(tmp_path, data))
    assert rows[0].cells[1] == "Muster\nvon Beispiel"
    assert rows[0].line == 2
    assert rows[1].line == 4


def test_a_nul_byte_rejects_the_row_naming_the_column(tmp_path: Path) -> None:
    data = (HEADER + "An\x00na,Muster,a@example.org\nCarl,Probe,c@example.org\n").encode()
    _info, rows = read(write(tmp_path, data))
    assert rows[0].problem is not None
    assert rows[0].problem.column == "given_name"
    assert "NUL" in rows[0].problem.reason
    assert rows[1].problem is None


def test_a_cell_over_the_csv_limit_rejects_only_that_row(tmp_path: Path) -> None:
    long_cell = "x" * (MAX_CELL_CHARS + 10)
    data = (HEADER + f"Anna,{long_cell},a@example.org\nCarl,Probe,c@example.org\n").encode()
    _info, rows = read(write(tmp_path, data))
    assert rows[0].problem is not None and "131,072" in rows[0].problem.reason
    assert rows[1].cells == ["Carl", "Probe", "c@example.org"]


def test_a_row_wider_than_the_header_is_rejected_but_a_trailing_comma_is_not(
    tmp_path: Path,
) -> None:
    data = (HEADER + "Anna,Muster,a@example.org,extra\nCarl,Probe,c@example.org,\n").encode()
    _info, rows = read(write(tmp_path, data))
    assert rows[0].problem is not None and "4 cells but the header has 3" in rows[0].problem.reason
    assert rows[1].problem is None


def test_a_file_over_the_size_cap_is_refused_with_the_limit(tmp_path: Path) -> None:
    path = write(tmp_path, (HEADER + "Anna,Muster,a@example.org\n" * 200).encode())
    with pytest.raises(TabularError) as caught:
        read(path, max_bytes=1024)
    assert "the limit is" in str(caught.value)
    assert "CAMPAIGN_IMPORT_MAX_MB" in str(caught.value)


def test_utf8_with_a_byte_order_mark_loses_the_mark(tmp_path: Path) -> None:
    info, rows = read(write(tmp_path, codecs.BOM_UTF8 + (HEADER + "Zoë,Müller,z@x.org\n").encode()))
    assert info.headers[0] == "given_name"
    assert rows[0].cells[:2] == ["Zoë", "Müller"]


@pytest.mark.parametrize("encoding", ["cp1252", "utf-16", "utf-16-le", "utf-16-be"])
def test_cp1252_and_utf16_are_decoded_without_replacement_characters(
    tmp_path: Path, encoding: str
) -> None:
    text = HEADER + "Hans,Müller,h@example.org\nPierre,Témoin,p@example.org\n"
    info, rows = read(write(tmp_path, text.encode(encoding)))
    assert [r.cells[1] for r in rows] == ["Müller", "Témoin"]
    assert "\ufffd" not in "".join(c for r in rows for c in r.cells)
    assert info.headers == ["given_name", "family_name", "email"]


def test_a_short_cp1252_file_with_one_accent_is_read_as_cp1252(tmp_path: Path) -> None:
    _info, rows = read(write(tmp_path, (HEADER + "Hans,Müller,h@example.org\n").encode("cp1252")))
    assert rows[0].cells[1] == "Müller"


def test_cyrillic_in_cp1251_is_decoded(tmp_path: Path) -> None:
    text = HEADER + "Дильноза,Намунова,d@example.org\nПётр,Иванов,petr@example.org\n"
    _info, rows = read(write(tmp_path, text.encode("cp1251")))
    assert rows[0].cells[:2] == ["Дильноза", "Намунова"]


def test_a_binary_file_is_refused(tmp_path: Path) -> None:
    data = bytes(range(256)) * 40
    with pytest.raises(TabularError):
        read(write(tmp_path, data, "photo.csv"))


def test_an_old_xls_workbook_is_refused_with_advice(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "old.xls")
    with pytest.raises(TabularError, match=r"\.xlsx"):
        read(path)


def test_xlsx_rows_are_read_with_their_sheet_row_numbers(tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["First name", "Last name", "E-mail", "Term ends"])
    sheet.append(["Anna", "Muster", "a@example.org", date(2027, 6, 30)])
    sheet.append([None, None, None, None])
    sheet.append(["Carl", 42, "c@example.org", None])
    path = tmp_path / "contacts.xlsx"
    workbook.save(path)
    info, rows = read(path)
    assert info.kind == "xlsx"
    assert info.headers == ["First name", "Last name", "E-mail", "Term ends"]
    assert [(r.line, r.cells) for r in rows] == [
        (2, ["Anna", "Muster", "a@example.org", "2027-06-30"]),
        (4, ["Carl", "42", "c@example.org", ""]),
    ]


def test_an_xlsx_with_only_a_header_is_refused(tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["email"])
    path = tmp_path / "contacts.xlsx"
    workbook.save(path)
    with pytest.raises(TabularError, match="no data rows"):
        read(path)


def test_a_damaged_xlsx_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TabularError, match="cannot be opened as an Excel workbook"):
        read(write(tmp_path, b"PK\x03\x04 not really a zip", "contacts.xlsx"))


def test_an_xlsx_zip_bomb_is_refused_before_it_is_unpacked(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "bomb.xlsx"
    # 20 MB of zeros compresses to about 20 KB: a small upload that would unpack to far
    # more than ten times a 1 MB cap.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (20 * 1024 * 1024))
    assert path.stat().st_size < 100_000
    with pytest.raises(TabularError, match=r"would unpack to more than 10\.0 MB"):
        read_table(path, max_bytes=1024 * 1024)


def test_an_xlsx_with_thousands_of_members_is_refused(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "many.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(10_001):
            archive.writestr(f"x/{i}.xml", "")
    with pytest.raises(TabularError, match="10,001 files inside"):
        read_table(path, max_bytes=10 * 1024 * 1024)
