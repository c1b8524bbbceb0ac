"""Reading contact files (CSV in any common encoding, XLSX) as rows with their line numbers."""

from __future__ import annotations

import codecs
import csv
import io
import re
import warnings
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import IO, Any
from xml.etree.ElementTree import ParseError
from xml.parsers import expat

from charset_normalizer import from_bytes
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

# Python's csv refuses longer cells; we keep its limit and reject such rows ourselves.
MAX_CELL_CHARS = 131_072
DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {
    ",": _l("comma"),
    ";": _l("semicolon"),
    "\t": _l("tab"),
    "|": _l("vertical bar"),
}
# Enough text to tell the encoding and the delimiter without reading a large file twice.
_SAMPLE_BYTES = 256 * 1024
_CHUNK_BYTES = 1024 * 1024
# Windows code pages our users' spreadsheets come in, most likely first. Short files are
# ambiguous between single-byte encodings; these win a tie against exotic ones (cp775…).
_PREFERRED_CODEPAGES = ("cp1252", "cp1251", "cp1250")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_PLAIN_HEADER = re.compile(r"^[\w .'()/-]*$", re.UNICODE)


class TabularError(ValueError):
    """The file cannot be read as a table at all; the message says why, for a user."""


@dataclass(frozen=True, slots=True)
class RowProblem:
    """Why one record of the file cannot be used; `column` is a header name or ""."""

    column: str
    reason: str


@dataclass(slots=True)
class Row:
    """One data record: the line it starts on (1-based, header = its own line) and cells.

    `cells` has exactly one value per header. A row with a `problem` could not be read
    as a record; its cells are whatever could be recovered (for the rejects file).
    """

    line: int
    cells: list[str]
    problem: RowProblem | None = None


@dataclass(frozen=True, slots=True)
class TableInfo:
    """What was learnt about a file when it was opened (shown to the user)."""

    kind: str  # "csv" or "xlsx"
    headers: list[str]
    encoding: str = ""
    delimiter: str = ""
    # Physical lines (CSV) or sheet rows (XLSX), including the header; 0 when unknown.
    total_lines: int = 0

    @property
    def delimiter_name(self) -> str:
        return str(_DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter)))


class RowReader(Iterator[Row]):
    """The data rows of an open file; close it (or use `with`) when done early."""

    def __init__(self, rows: Generator[Row, None, None], release: Callable[[], None]) -> None:
        self._rows = rows
        self._release = release

    def __next__(self) -> Row:
        return next(self._rows)

    def close(self) -> None:
        # Closing a generator that never started skips its `finally`; release explicitly.
        self._rows.close()
        self._release()

    def __enter__(self) -> RowReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def read_table(
    path: Path, *, max_bytes: int, filename: str = "", thorough: bool = False
) -> tuple[TableInfo, RowReader]:
    """Open `path` and return what it is plus an iterator over its data rows.

    Raise TabularError for a file that cannot be read at all (too large, empty, header
    only, unknown encoding or delimiter, a workbook with a DTD or damaged XML). Rows that
    cannot be read come with a problem. `thorough` (on upload) parses every XML part of a
    workbook to the end, so damage far down a sheet is found before the import starts.
    """
    name = filename or path.name
    size = path.stat().st_size
    if size > max_bytes:
        raise TabularError(
            _(
                "%(file)s is %(size)s; the limit is %(limit)s (CAMPAIGN_IMPORT_MAX_MB). "
                "Split it into smaller files.",
                file=name,
                size=_megabytes(size),
                limit=_megabytes(max_bytes),
            )
        )
    if size == 0:
        raise TabularError(_("%(file)s is empty.", file=name))
    with path.open("rb") as probe:
        head = probe.read(8)
    suffix = Path(name).suffix.lower()
    if suffix == ".xls" or head.startswith(b"\xd0\xcf\x11\xe0"):
        raise TabularError(
            _(
                "%(file)s is an old Excel (.xls) workbook. Save it as .xlsx or as CSV and "
                "try again.",
                file=name,
            )
        )
    if head.startswith(b"PK\x03\x04") or suffix == ".xlsx":
        _check_zip(path, name, max_bytes)
        _check_xml_parts(path, name, thorough=thorough)
        return _read_xlsx(path, name)
    return _read_csv(path, name)


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


# --- CSV -------------------------------------------------------------------------------


def detect_encoding(path: Path, name: str = "") -> tuple[str, int]:
    """Return (Python codec name, number of lines), reading the file once in chunks.

    The whole file is decoded strictly, so a byte that the chosen encoding cannot read is
    a clear error here rather than a U+FFFD stored in a contact.
    """
    name = name or path.name
    with path.open("rb") as stream:
        sample = stream.read(_SAMPLE_BYTES)
    for bom, encoding in _BOMS:
        if sample.startswith(bom):
            lines = _count_lines(path, encoding)
            if lines is None:
                raise TabularError(
                    _(
                        "%(file)s starts with a %(encoding)s byte-order mark but is not valid "
                        "%(encoding)s. Save it again as UTF-8.",
                        file=name,
                        encoding=encoding.upper(),
                    )
                )
            return encoding, lines
    if sample.count(b"\x00") * 10 < len(sample):
        # Valid UTF-8 is almost never an accident, so it wins without guessing. (Many NUL
        # bytes mean UTF-16 without a byte-order mark; a stray one is a damaged row.)
        lines = _count_lines(path, "utf-8")
        if lines is not None:
            return "utf-8", lines
    guessed = _guess_encoding(sample)
    if guessed is None:
        raise TabularError(
            _(
                "%(file)s does not look like a text (CSV) file: its encoding could not be "
                "recognised. Save it as “CSV UTF-8” or as .xlsx.",
                file=name,
            )
        )
    encoding = guessed
    lines = _count_lines(path, encoding)
    if lines is None:
        raise TabularError(
            _(
                "%(file)s mixes encodings (it reads as %(encoding)s at first, then not). "
                "Save it as “CSV UTF-8” and try again.",
                file=name,
                encoding=encoding,
            )
        )
    return encoding, lines


def _guess_encoding(sample: bytes) -> str | None:
    results = from_bytes(sample)
    best = results.best()
    if best is not None and best.encoding.startswith(("utf_16", "utf_32")):
        return str(best.encoding)
    scored: list[tuple[float, int, str]] = []
    for rank, codepage in enumerate(_PREFERRED_CODEPAGES):
        match = from_bytes(sample, cp_isolation=[codepage]).best()
        if match is not None:
            scored.append((match.chaos, rank, codepage))
    if scored:
        return min(scored)[2]
    return None if best is None else str(best.encoding)


def _count_lines(path: Path, encoding: str) -> int | None:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    lines = 0
    last = ""
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(_CHUNK_BYTES):
                text = decoder.decode(chunk)
                lines += text.count("\n")
                if text:
                    last = text[-1]
            text = decoder.decode(b"", final=True)
            lines += text.count("\n")
            last = text[-1] if text else last
    except UnicodeDecodeError:
        return None
    # A last line without a line break still counts.
    return lines + (1 if last and last != "\n" else 0)


def _sample_records(text: str, delimiter: str) -> list[list[str]]:
    """The records of a sample up to the first one that cannot be parsed."""
    records: list[list[str]] = []
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    while True:
        try:
            record = next(reader)
        except (StopIteration, csv.Error):
            return records
        if record:
            records.append(record)


def _sniff_delimiter(lines: list[str], name: str) -> str:
    """Pick the delimiter that splits the first lines into the same number of columns."""
    best: tuple[int, int, int, str] | None = None
    text = "".join(lines)
    for position, delimiter in enumerate(DELIMITERS):
        records = _sample_records(text, delimiter)
        if len(records) > 1:
            records = records[:-1]  # the sample may cut the last record short
        if not records:
            continue
        width = len(records[0])
        if width < 2:
            continue
        consistent = sum(1 for r in records if len(r) == width)
        # Most rows agreeing with the header wins; then more columns; then list order.
        score = (consistent, width, -position, delimiter)
        if best is None or score > best:
            best = score
    if best is not None:
        return best[3]
    first = lines[0].strip() if lines else ""
    if _PLAIN_HEADER.match(first):
        return ","  # a single column, such as a list of addresses under "email"
    raise TabularError(
        _(
            "%(file)s: could not tell how the columns are separated. The first line is "
            "%(line)s. Use commas, semicolons, tabs or | between columns.",
            file=name,
            line=repr(first[:80]),
        )
    )


class _Lines:
    """The decoded lines of a file with their numbers; lines can be pushed back.

    Feeding csv.reader from here (instead of the file) lets us restart after a broken
    record at the next physical line and know which line every record started on.
    """

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._pushed: deque[tuple[int, str]] = deque()
        self.next_number = 1
        self.taken: list[tuple[int, str]] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self._pushed:
            number, line = self._pushed.popleft()
        else:
            line = self._stream.readline()
            if not line:
                raise StopIteration
            number = self.next_number
            self.next_number += 1
        self.taken.append((number, line))
        return line

    def push_back(self, lines: list[tuple[int, str]]) -> None:
        self._pushed.extendleft(reversed(lines))


READ_BUFFER_BYTES = 1 << 20


def _read_csv(path: Path, name: str) -> tuple[TableInfo, RowReader]:
    encoding, total_lines = detect_encoding(path, name)
    # A 1 MiB buffer: a read every ~8,000 rows, not every ~60. An import checks rows while
    # a second thread writes them, and each read lets go of the GIL and waits to get it
    # back (decision 0079).
    stream = path.open(
        "r", buffering=READ_BUFFER_BYTES, encoding=encoding, errors="strict", newline=""
    )
    try:
        sample_lines: list[str] = []
        for _sample in range(50):
            line = stream.readline()
            if not line:
                break
            sample_lines.append(line)
        if not "".join(sample_lines).strip():
            raise TabularError(_("%(file)s is empty (it contains only blank lines).", file=name))
        delimiter = _sniff_delimiter([ln for ln in sample_lines if ln.strip()], name)
        stream.seek(0)  # the codec skips the byte-order mark again
        records = _csv_records(stream, delimiter)
        header = _next_record(records)
        if header is None:
            raise TabularError(_("%(file)s is empty.", file=name))
        if header.error:
            raise TabularError(
                _(
                    "%(file)s: the header row (line %(line)d) cannot be read: %(reason)s",
                    file=name,
                    line=header.line,
                    reason=header.error,
                )
            )
        headers = _clean_headers(header.cells)
        first = _next_record(records)
        if first is None:
            raise TabularError(_no_data_rows(name))
    except BaseException:
        stream.close()
        raise
    info = TableInfo("csv", headers, encoding, delimiter, total_lines)
    return info, RowReader(_csv_rows(stream, headers, first, records), stream.close)


def _no_data_rows(name: str) -> str:
    return _(
        "%(file)s has a header row but no data rows below it: there is nothing to import.",
        file=name,
    )


@dataclass(slots=True)
class _Record:
    line: int
    cells: list[str]
    error: str = ""
    spans_lines: bool = False


def _csv_records(stream: IO[str], delimiter: str) -> Iterator[_Record]:
    """Yield each record with the line it starts on; a broken record carries an error.

    After a broken record, reading restarts at the line after the one it started on, so
    one stray quote costs one row, not the rest of the file.
    """
    lines = _Lines(stream)
    while True:
        reader = csv.reader(lines, delimiter=delimiter, strict=True)
        while True:
            lines.taken = []
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                taken = lines.taken
                start = taken[0][0] if taken else lines.next_number - 1
                yield _Record(start, _best_effort_cells(taken, delimiter), _describe(error, taken))
                lines.push_back(taken[1:])
                break
            if lines.taken:
                yield _Record(lines.taken[0][0], cells, "", len(lines.taken) > 1)


def _unbalanced() -> str:
    return _("unbalanced quotes: a quoted cell starts on this line and is never closed")


def _describe(error: csv.Error, taken: list[tuple[int, str]]) -> str:
    message = str(error)
    if "unexpected end of data" in message:
        return _unbalanced()
    if "field larger than field limit" in message:
        if len(taken) > 1:
            return _unbalanced()
        return _("a cell is longer than %(limit)s characters", limit=f"{MAX_CELL_CHARS:,}")
    if "expected after" in message:
        return _(
            "unbalanced quotes: a quote closes a cell but more text follows it "
            "(quote the whole cell and double any quote inside it)"
        )
    # Python's csv explains itself in English only.
    return _("the line cannot be read as CSV (%(reason)s)", reason=message)


def _best_effort_cells(taken: list[tuple[int, str]], delimiter: str) -> list[str]:
    if not taken:
        return []
    return taken[0][1].rstrip("\r\n").split(delimiter)


def _next_record(records: Iterator[_Record]) -> _Record | None:
    """The next record that is not blank (blank lines and rows of empty cells are skipped)."""
    for record in records:
        # Some cell holds more than whitespace: one C-level pass over the joined cells.
        if record.error or "".join(record.cells).strip():
            return record
    return None


def _csv_rows(
    stream: IO[str], headers: list[str], first: _Record, records: Iterator[_Record]
) -> Generator[Row, None, None]:
    width = len(headers)
    try:
        record: _Record | None = first
        while record is not None:
            if record.error:
                yield Row(record.line, _fit(record.cells, width), RowProblem("", record.error))
            elif record.spans_lines and _width_of(record.cells) > width:
                # A quoted cell ran across lines and swallowed others: a stray quote.
                yield Row(record.line, _fit(record.cells, width), RowProblem("", _unbalanced()))
            else:
                yield _checked_row(record.line, record.cells, headers)
            record = _next_record(records)
    finally:
        stream.close()


def _width_of(cells: list[str]) -> int:
    # Trailing empty cells (a trailing delimiter) do not count as extra columns.
    end = len(cells)
    while end and not cells[end - 1].strip():
        end -= 1
    return end


def _fit(cells: list[str], width: int) -> list[str]:
    return (cells + [""] * width)[:width]


def _checked_row(line: int, cells: list[str], headers: list[str]) -> Row:
    width = len(headers)
    if _width_of(cells) > width:
        return Row(
            line,
            _fit(cells, width),
            RowProblem(
                "",
                _(
                    "has %(cells)d cells but the header has %(columns)d columns "
                    "(a delimiter inside an unquoted cell?)",
                    cells=_width_of(cells),
                    columns=width,
                ),
            ),
        )
    fitted = cells if len(cells) == width else _fit(cells, width)
    if "\x00" not in "".join(fitted):  # the common case, in one search (decision 0075)
        return Row(line, fitted, None)
    for header, cell in zip(headers, fitted, strict=True):
        if "\x00" in cell:
            return Row(
                line,
                [c.replace("\x00", "") for c in fitted],
                RowProblem(header, _("contains a NUL byte (\\0); the file may be damaged")),
            )
    return Row(line, fitted, None)


def _clean_headers(cells: list[str]) -> list[str]:
    """Trim headers, name blank ones by position and make repeated ones unique."""
    end = len(cells)
    while end and not cells[end - 1].strip():
        end -= 1
    headers: list[str] = []
    for position, cell in enumerate(cells[:end], start=1):
        header = cell.replace("\x00", "").strip().lstrip("\ufeff") or f"Column {position}"
        candidate, n = header, 2
        while candidate in headers:
            candidate = f"{header} ({n})"
            n += 1
        headers.append(candidate)
    if not headers:
        raise TabularError(_("the header row is empty"))
    return headers


# --- XLSX ------------------------------------------------------------------------------


# A workbook's XML compresses about 10:1; far more than that is a zip bomb, not a sheet.
XLSX_EXPANSION = 10
XLSX_MAX_MEMBERS = 10_000


def _check_zip(path: Path, name: str, max_bytes: int) -> None:
    """Refuse a workbook that would unpack to far more than the upload cap (a zip bomb)."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as error:
        raise TabularError(_not_a_workbook(name, error)) from None
    if len(members) > XLSX_MAX_MEMBERS:
        raise TabularError(
            _(
                "%(file)s holds %(count)s files inside; an Excel workbook has a few dozen. "
                "It was not opened. Save it again from Excel, or as CSV.",
                file=name,
                count=f"{len(members):,}",
            )
        )
    limit = XLSX_EXPANSION * max_bytes
    total = 0
    for member in members:
        total += member.file_size
        if member.file_size > limit or total > limit:
            raise TabularError(
                _(
                    "%(file)s would unpack to more than %(size)s (%(times)d times the upload "
                    "limit), so it was not opened: it is damaged or built to exhaust the "
                    "server. Save it as CSV and try again.",
                    file=name,
                    size=_megabytes(limit),
                    times=XLSX_EXPANSION,
                )
            )


class _Doctype(Exception):
    """A part of the workbook has a document type declaration."""


class _PrologEnd(Exception):
    """The root element started: no DTD can follow (quick check)."""


def _check_xml_parts(path: Path, name: str, *, thorough: bool) -> None:
    """Refuse a workbook any of whose parts has a DTD, or (thorough) is not well-formed XML.

    A DTD is how XML declares entities: ones that expand to gigabytes ("billion laughs")
    or that read the server's files (external entities). Spreadsheet programs never write
    one, so any DTD is refused before openpyxl parses anything. A DTD can only come before
    the root element, so the quick check stops there; the thorough one reads to the end.
    Every part is checked, whatever its name: relationships may point anywhere.
    """
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            if member.is_dir():
                continue
            parser = expat.ParserCreate()

            def doctype(*_args: object) -> None:
                raise _Doctype

            def root(*_args: object) -> None:
                raise _PrologEnd

            parser.StartDoctypeDeclHandler = doctype
            if not thorough:
                parser.StartElementHandler = root
            try:
                with archive.open(member) as stream:
                    while chunk := stream.read(_CHUNK_BYTES):
                        parser.Parse(chunk, False)
                    parser.Parse(b"", True)
            except _PrologEnd:
                continue
            except _Doctype:
                raise TabularError(
                    _(
                        "%(file)s contains XML features that are not allowed (a DTD) in its "
                        "part %(part)s, so it was not opened: save it again from your "
                        "spreadsheet program and upload the new file.",
                        file=name,
                        part=member.filename,
                    )
                ) from None
            except expat.ExpatError as error:
                if not thorough or not _looks_like_xml(archive, member):
                    continue  # an image or other binary part; openpyxl does not parse it
                raise TabularError(
                    _damaged(name, member.filename, expat.ErrorString(error.code), error.lineno)
                ) from None
            except Exception as error:  # any failure to read is the file's
                raise TabularError(_unreadable_part(name, member.filename, error)) from None


def _looks_like_xml(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bool:
    if member.filename.lower().endswith((".xml", ".rels", ".vml")):
        return True
    try:
        with archive.open(member) as stream:
            head = stream.read(64)
    except Exception:  # it was read once already; unreadable is not XML
        return False
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<") or head.startswith(
        (b"\xff\xfe<", b"\xfe\xff\x00<")
    )


def _damaged(name: str, part: str, reason: str, line: int) -> str:
    return _(
        "%(file)s is damaged: its part %(part)s is not valid XML (%(reason)s, line %(line)d). "
        "Save it again from your spreadsheet program, or as CSV, and upload the new file.",
        file=name,
        part=part,
        reason=reason,
        line=line,
    )


def _unreadable_part(name: str, part: str, error: Exception) -> str:
    """A part that cannot be unpacked or decoded (damaged, encrypted, unknown method…)."""
    reason: str
    if isinstance(error, RuntimeError) and "encrypted" in str(error):
        reason = _("it is protected with a password")
    elif isinstance(error, NotImplementedError):
        reason = _("it is compressed in a way that cannot be read")
    elif isinstance(error, zlib.error | zipfile.BadZipFile | EOFError):
        reason = _("its compressed data is damaged")
    else:
        reason = str(error) or type(error).__name__
    return _(
        "%(file)s cannot be opened as an Excel workbook: its part %(part)s cannot be read "
        "(%(reason)s). Save it again from your spreadsheet program, or as CSV, and upload "
        "the new file.",
        file=name,
        part=part,
        reason=reason,
    )


def _not_a_workbook(name: str, error: Exception) -> str:
    return _(
        "%(file)s cannot be opened as an Excel workbook (%(reason)s).", file=name, reason=error
    )


def _read_xlsx(path: Path, name: str) -> tuple[TableInfo, RowReader]:
    from openpyxl import load_workbook

    try:
        with warnings.catch_warnings():
            # openpyxl warns about styles and data validation it does not keep; harmless.
            warnings.simplefilter("ignore")
            workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # openpyxl fails on damaged parts in many different ways
        raise TabularError(_not_a_workbook(name, error)) from None
    try:
        if not workbook.worksheets:  # no sheet listed, or its part is missing
            raise TabularError(
                _(
                    "%(file)s has no worksheet that can be read. Save it again from your "
                    "spreadsheet program, or as CSV, and upload the new file.",
                    file=name,
                )
            )
        sheet = workbook.worksheets[0]
        part = str(getattr(sheet, "_worksheet_path", "")) or "xl/worksheets/sheet1.xml"
        values = _parsed(sheet.iter_rows(values_only=True), name, part)
        header_line = 0
        header_cells: list[str] = []
        for header_line, raw in enumerate(values, start=1):  # noqa: B007
            header_cells = [_cell_text(v) for v in raw]
            if any(c.strip() for c in header_cells):
                break
        else:
            raise TabularError(_("%(file)s is empty: its first sheet has no cells.", file=name))
        headers = _clean_headers(header_cells)
        first: tuple[int, list[str]] | None = None
        for line, raw in enumerate(values, start=header_line + 1):
            cells = [_cell_text(v) for v in raw]
            if any(c.strip() for c in cells):
                first = (line, cells)
                break
        if first is None:
            raise TabularError(_no_data_rows(name))
        total = int(sheet.max_row or 0)
    except BaseException:
        workbook.close()
        raise
    info = TableInfo("xlsx", headers, total_lines=total)
    return info, RowReader(_xlsx_rows(workbook, values, headers, first), workbook.close)


def _parsed(values: Iterator[Any], name: str, part: str) -> Iterator[Any]:
    """The sheet's rows; XML damage found while reading them is a TabularError naming it.

    Uploads are checked to the end when they arrive; this catches a file that changed on
    disk since, and keeps a damaged part from ever surfacing as an internal error.
    """
    row = 0
    try:
        for row, value in enumerate(values, start=1):  # noqa: B007
            yield value
    except ParseError as error:
        line = error.position[0] if error.position else 0
        raise TabularError(_damaged(name, part, str(error).split(":")[0], line)) from None
    except Exception as error:  # a crafted cell fails openpyxl in many ways
        if isinstance(error, IndexError):
            reason = _("a cell refers to a shared text that does not exist")
        else:
            reason = str(error) or type(error).__name__
        raise TabularError(
            _(
                "%(file)s is damaged at row %(row)d of its first sheet: %(reason)s. Save it "
                "again from your spreadsheet program, or as CSV, and upload the new file.",
                file=name,
                row=row + 1,
                reason=reason,
            )
        ) from None


def _xlsx_rows(
    workbook: Any, values: Iterator[Any], headers: list[str], first: tuple[int, list[str]]
) -> Generator[Row, None, None]:
    try:
        line, cells = first
        yield _checked_row(line, cells, headers)
        for line, raw in enumerate(values, start=first[0] + 1):
            cells = [_cell_text(v) for v in raw]
            if any(c.strip() for c in cells):
                yield _checked_row(line, cells, headers)
    finally:
        workbook.close()


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        if value.time() == time(0, 0):
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
