"""Importing contacts from a file: column mapping, preview, the import itself and its progress.

Rows are checked with the same field rules as the edit form (campaign.services.contacts.contacts).
All contact writes happen in the caller's one transaction: the edge commits once at the
end, so an import that fails half-way leaves no contact behind. Rows are written in
chunks with bulk statements, never one ORM object or one query per row.
"""

from __future__ import annotations

import contextvars
import csv
import functools
import gc
import hashlib
import json
import queue
import re
import sqlite3
import sys
import threading
import time
import unicodedata
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

from flask import current_app, g, has_request_context
from flask_babel import gettext as _
from flask_babel import refresh
from sqlalchemy import String, any_, bindparam, insert, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY

from campaign.bulk_write import as_sqlalchemy_error, bulk_path, copy_types
from campaign.extensions import db
from campaign.letters.salutations import RuleSet
from campaign.models import (
    Contact,
    ContactImport,
    ContactList,
    ImportMapping,
    ImportStatus,
    User,
    list_memberships,
)
from campaign.models.contact import refresh_search_keys
from campaign.models.search_key import (
    KEY_FIELDS,
    fold,
    search_index_usable,
    sync_search_index,
)
from campaign.services.accounts.audit import record_event
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import (
    CONTACT_FIELDS,
    DATIVE_FIELDS,
    DATIVE_SOURCES,
    FIELD_LABELS,
    FIELD_PARSERS,
    MEMO_VALUES,
    ContactInputError,
    FieldError,
    cell_cleaner,
    clean_contact_data,
    row_cleaner,
)
from campaign.services.contacts.exporting import FORMULA_TRIGGERS, neutralise_cell
from campaign.services.contacts.tabular import Row, RowReader, TableInfo, TabularError, read_table
from campaign.services.privacy import erased_addresses
from campaign.services.statements import salutation_rules
from campaign.services.statements.country_names import letter_languages

__all__ = ["TabularError"]  # re-exported: callers catch it from here

ON_DUPLICATE = ("skip", "update")
CHUNK_ROWS = 1000
PREVIEW_ROWS = 20
PROGRESS_TTL_SECONDS = 7 * 24 * 3600
# Seconds between two progress reports of a running import (its page polls every 0.7 s).
PROGRESS_EVERY = 0.25
_contacts = Contact.__table__


class ImportSetupError(ValueError):
    """The import cannot start as configured (mapping, duplicate choice, list name)."""


# --- Mapping headers to fields ---------------------------------------------------------

# Header spellings seen in the wild, compared after _normalise_header (lower case, no
# accents, punctuation as spaces). Each field's own name ("given_name") matches too.
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "kind": ("kind", "contact type", "type", "contact kind"),
    "given_name": (
        "first name",
        "firstname",
        "given name",
        "forename",
        "first",
        "prenom",
        "vorname",
        "имя",
    ),
    "family_name": (
        "last name",
        "lastname",
        "surname",
        "family name",
        "last",
        "nom",
        "nom de famille",
        "nachname",
        "фамилия",
        "name",
    ),
    "patronymic": ("patronymic", "patronym", "отчество"),
    "given_name_alt": (
        "given name alt",
        "given name alternative",
        "first name alt",
        "given name other script",
    ),
    "family_name_alt": (
        "family name alt",
        "family name alternative",
        "last name alt",
        "family name other script",
    ),
    "patronymic_alt": ("patronymic alt", "patronymic alternative"),
    "grammatical_gender": ("gender", "grammatical gender", "sex", "genre", "geschlecht"),
    "role_type": ("role", "role type", "type of role", "category"),
    "style": ("style", "form of address"),
    "honorific": ("honorific", "title", "courtesy title", "prefix"),
    "position_title": (
        "position",
        "position title",
        "job title",
        "function",
        "job",
        "post",
        "fonction",
    ),
    "organisation": (
        "organisation",
        "organization",
        "org",
        "company",
        "institution",
        "employer",
        "agency",
        "organisme",
    ),
    "country": ("country", "country code", "pays", "land", "nation"),
    "time_zone": ("time zone", "timezone", "tz", "iana time zone", "fuseau horaire"),
    "languages": ("languages", "language", "langs", "lang", "preferred languages", "langues"),
    "email": (
        "email",
        "e mail",
        "email address",
        "e mail address",
        "mail",
        "primary email",
        "courriel",
        "emails",
    ),
    "cc_emails": (
        "cc",
        "cc emails",
        "cc email",
        "secretariat email",
        "secretariat emails",
        "secretariat",
        "copy to",
        "assistant email",
    ),
    "tags": ("tags", "tag", "labels", "keywords"),
    "notes": ("notes", "note", "comments", "comment", "remarks"),
    "risk_level": ("risk", "risk level"),
    "consent_basis": ("consent", "consent basis", "legal basis", "lawful basis"),
    "term_ends_on": ("term ends", "term end", "term ends on", "end of term", "mandate ends"),
    "last_verified_on": ("last verified", "last verified on", "verified on", "last checked"),
    "salutation_override": ("salutation", "salutation override", "greeting"),
}
_PUNCTUATION = re.compile(r"[\W_]+", re.UNICODE)


def _normalise_header(header: str) -> str:
    decomposed = unicodedata.normalize("NFKD", header.strip().lower())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _PUNCTUATION.sub(" ", plain).strip()


def _build_lookup() -> dict[str, str]:
    lookup: dict[str, str] = {}
    for name in CONTACT_FIELDS:
        lookup[_normalise_header(name)] = name
    for name, spellings in _SYNONYMS.items():
        for spelling in spellings:
            lookup.setdefault(_normalise_header(spelling), name)
    return lookup


_HEADER_LOOKUP = _build_lookup()


def auto_mapping(headers: list[str]) -> dict[str, str]:
    """Map each header to the contact field it names ("" = ignore); a field is used once."""
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for header in headers:
        name = _HEADER_LOOKUP.get(_normalise_header(header), "")
        if name in used:
            name = ""
        used.add(name)
        mapping[header] = name
    return mapping


def header_signature(headers: list[str]) -> str:
    """A fixed-length key for a set of headers, whatever their order and case."""
    joined = "|".join(sorted(h.strip().lower() for h in headers))
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


def suggest_mapping(headers: list[str]) -> tuple[dict[str, str], bool]:
    """Return (mapping, remembered): the saved mapping for these headers, else automatic."""
    saved = db.session.scalar(
        select(ImportMapping).where(ImportMapping.header_signature == header_signature(headers))
    )
    if saved is None:
        return auto_mapping(headers), False
    mapping = {h: str(saved.mapping.get(h.strip().lower(), "")) for h in headers}
    return clean_mapping(headers, mapping, require_email=False), True


def remember_mapping(headers: list[str], mapping: Mapping[str, str]) -> None:
    """Save `mapping` for files with the same headers (case and order do not matter)."""
    signature = header_signature(headers)
    stored = {h.strip().lower(): mapping.get(h, "") for h in headers}
    saved = db.session.scalar(
        select(ImportMapping).where(ImportMapping.header_signature == signature)
    )
    if saved is None:
        db.session.add(ImportMapping(header_signature=signature, mapping=stored))
    else:
        saved.mapping = stored
    db.session.flush()


def clean_mapping(
    headers: list[str], mapping: Mapping[str, str], *, require_email: bool = True
) -> dict[str, str]:
    """Check a header -> field mapping; raise ImportSetupError saying what is wrong."""
    cleaned: dict[str, str] = {}
    owner: dict[str, str] = {}
    for header in headers:
        name = (mapping.get(header) or "").strip()
        if name and name not in CONTACT_FIELDS:
            raise ImportSetupError(
                _(
                    "column %(column)s: %(field)s is not a contact field",
                    column=repr(header),
                    field=repr(name),
                )
            )
        if name and name in owner:
            raise ImportSetupError(
                _(
                    "columns %(first)s and %(second)s are both mapped to %(field)s; "
                    "choose one of them",
                    first=repr(owner[name]),
                    second=repr(header),
                    field=str(FIELD_LABELS[name]).lower(),
                )
            )
        if name:
            owner[name] = header
        cleaned[header] = name
    if require_email and "email" not in owner:
        raise ImportSetupError(
            _(
                "no column is mapped to %(field)s; every contact needs an address "
                "(the file's columns are: %(columns)s)",
                field=str(FIELD_LABELS["email"]).lower(),
                columns=", ".join(headers),
            )
        )
    return cleaned


# --- Columns letters need, when the file has none (decision 0047) ---------------------

# The fields a letter's salutation and language are chosen by. A file without a column for
# one of them gets a value for all rows, chosen by the person, or leaves it unknown (role
# `other`, gender unknown, no language): never a value nobody chose.
LETTER_FIELDS = ("role_type", "grammatical_gender", "languages")
# What a person picks to leave a field unknown.
LEAVE_UNKNOWN = "unknown"
# The key under which ContactImport.mapping keeps the values for all rows next to the
# header -> field pairs. Headers are trimmed (tabular._clean_headers), so no header is it.
FALLBACKS_KEY = " for all rows"
# What each letter field stores when nobody says: "left unknown" (choosing it is the same).
STORED_DEFAULTS = {"role_type": "other", "grammatical_gender": "unknown", "languages": ""}
# The label table (campaign.labels) of the letter fields whose values are codes.
_LETTER_LABELS = {"role_type": "role_type", "grammatical_gender": "gender"}


def letter_value_words(name: str, value: str) -> str:
    """A letter field's value in words ("" = the stored default, i.e. unknown)."""
    from campaign.i18n import language_name
    from campaign.labels import label

    value = value or STORED_DEFAULTS[name]
    if name in _LETTER_LABELS:
        return label(value, _LETTER_LABELS[name])
    words = ", ".join(f"{language_name(tag)} ({tag})" for tag in value.split())
    return words or _("none")


def unknown_meaning(name: str) -> str:
    """What leaving a letter field unknown means for the letters, in words."""
    if name == "languages":
        return _("no language: letters go out in the statement's first language")
    return letter_value_words(name, "")


def letter_value_options(name: str) -> list[tuple[str, str]]:
    """(value, words) a person may choose for all rows, besides leaving it unknown; the
    stored default is not among them (it is "leave unknown", decision 0047)."""
    from campaign.labels import choices

    if name in _LETTER_LABELS:
        return [
            (code, text)
            for code, text in choices(_LETTER_LABELS[name])
            if code != STORED_DEFAULTS[name]
        ]
    return [(tag, letter_value_words(name, tag)) for tag in letter_languages()]


def missing_letter_fields(mapping: Mapping[str, Any]) -> list[str]:
    """The fields letters need that no column of `mapping` fills, in LETTER_FIELDS order."""
    mapped = {name for header, name in mapping.items() if header != FALLBACKS_KEY and name}
    return [name for name in LETTER_FIELDS if name not in mapped]


def clean_fallbacks(mapping: Mapping[str, Any], chosen: Mapping[str, str]) -> dict[str, str]:
    """The values for all rows of the letter fields `mapping` lacks: field -> value as the
    contact stores it, "" = left unknown. Values for fields a column fills are dropped.

    Raise ImportSetupError naming the field when a value is not one the field takes.
    """
    cleaned: dict[str, str] = {}
    for name in missing_letter_fields(mapping):
        value = str(chosen.get(name) or "").strip()
        if not value or value.lower() == LEAVE_UNKNOWN:
            cleaned[name] = ""
            continue
        try:
            stored = str(clean_contact_data({name: value}, partial=True)[name])
        except ContactInputError as error:
            raise ImportSetupError(
                _(
                    "%(field)s for all rows: %(reason)s",
                    field=FIELD_LABELS[name],
                    reason=error.errors[0].message,
                )
            ) from None
        # Choosing what "unknown" stores (role other, gender unknown) is leaving it unknown.
        cleaned[name] = "" if stored == STORED_DEFAULTS[name] else stored
    return cleaned


def stored_mapping(mapping: Mapping[str, str], fallbacks: Mapping[str, str]) -> dict[str, Any]:
    """The mapping as ContactImport.mapping keeps it: the columns and the values for all rows."""
    return {**mapping, FALLBACKS_KEY: dict(fallbacks)}


def split_mapping(stored: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(header -> field, values for all rows) from ContactImport.mapping."""
    columns = {h: str(f or "") for h, f in stored.items() if h != FALLBACKS_KEY}
    fallbacks = stored.get(FALLBACKS_KEY) or {}
    return columns, {str(k): str(v or "") for k, v in dict(fallbacks).items()}


def find_or_create_list(name: str) -> ContactList:
    """The contact list called `name` (compared without case), created if missing."""
    try:
        return lists.find_or_create_list(name)
    except lists.ListError as error:
        raise ImportSetupError(str(error)) from None


# --- Checking rows ---------------------------------------------------------------------


@dataclass(slots=True)
class RowResult:
    """One file row after checking: cleaned contact data, or the problems found."""

    line: int
    cells: list[str]
    data: dict[str, Any] | None = None
    # (file column, reason) pairs; empty when the row is valid.
    problems: list[tuple[str, str]] = field(default_factory=list)
    # Fields whose cell was not blank: an update never erases what the file left empty. A
    # value chosen for all rows is not given: it never overwrites an existing contact.
    given: tuple[str, ...] = ()
    # Fields given by a value chosen for all rows (the file has no column for them).
    for_all_rows: tuple[str, ...] = ()

    @property
    def column(self) -> str:
        return ", ".join(dict.fromkeys(c for c, _reason in self.problems if c))

    @property
    def reason(self) -> str:
        # Through gettext, so that French gets its no-break spaces before ":" and ";".
        parts = [
            _("%(column)s: %(reason)s", column=c, reason=r) if c else r for c, r in self.problems
        ]
        joined = parts[0] if parts else ""
        for part in parts[1:]:
            joined = _("%(earlier)s; %(later)s", earlier=joined, later=part)
        return joined


def _restore_cell(value: str) -> str:
    # Our exports prefix formula-like cells with an apostrophe (neutralise_cell); take it
    # off again so that export -> edit -> import round trips keep the value unchanged.
    if value.startswith("'") and value[1:2] and value[1:].startswith(FORMULA_TRIGGERS):
        return value[1:]
    return value


class _RowChecker:
    def __init__(
        self,
        headers: list[str],
        mapping: Mapping[str, str],
        fallbacks: Mapping[str, str] | None = None,
    ) -> None:
        self.positions = [(i, mapping[h]) for i, h in enumerate(headers) if mapping.get(h)]
        self.header_of = {mapping[h]: h for h in headers if mapping.get(h)}
        # Only values someone chose, and only for letter fields no column fills.
        self.fallbacks = {
            name: value
            for name, value in (fallbacks or {}).items()
            if value and name in LETTER_FIELDS and name not in self.header_of
        }
        self.for_all_rows = tuple(self.fallbacks)
        # Every row gives the same fields: what they do not give is cleaned once, and a
        # value repeated down the file (a country, a role) once (decision 0075).
        self.clean = row_cleaner([*self.header_of, *self.fallbacks])
        # The common case, lean: a valid row's cells cleaned without building the mapping
        # above; any row it does not vouch for is checked by `clean` (decision 0083).
        self.clean_cells = cell_cleaner(self.positions, self.fallbacks, _restore_cell)

    def check(self, row: Row) -> RowResult:
        if row.problem is None:
            valid = self.clean_cells(row.cells)
            if valid is not None:
                data, given = valid
                return RowResult(row.line, row.cells, data, [], given, self.for_all_rows)
        result = RowResult(row.line, row.cells)
        if row.problem is not None:
            result.problems.append((row.problem.column, row.problem.reason))
            return result
        cells = row.cells
        raw = {
            name: _restore_cell(cells[i]) if cells[i][:1] == "'" else cells[i]
            for i, name in self.positions
        }
        given = tuple(name for name, value in raw.items() if value and not value.isspace())
        raw.update(self.fallbacks)
        try:
            result.data = self.clean(raw)
        except ContactInputError as error:
            result.problems.extend(
                (self.header_of.get(e.field, e.field), e.message) for e in error.errors
            )
            return result
        result.given = given
        result.for_all_rows = self.for_all_rows
        return result


# --- Preview ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RowLetter:
    """What a previewed row's letters are made from: each letter field's value and where it
    comes from ("file", "for_all_rows", "unknown": no column and left unknown, "contact":
    the existing contact's, kept), and the salutation they give in `salutation_language`."""

    role: tuple[str, str]
    gender: tuple[str, str]
    languages: tuple[str, str]
    salutation: str
    salutation_language: str


@dataclass
class PreviewRow:
    line: int
    cells: list[str]
    problems: list[tuple[str, str]]
    # "new", "update", "skip" (the address exists), or "rejected".
    outcome: str
    letter: RowLetter | None = None


@dataclass
class Preview:
    info: TableInfo
    mapping: dict[str, str]
    rows: list[PreviewRow]
    # The letter fields no column fills, and the value chosen for all rows ("" = unknown).
    fallbacks: dict[str, str] = field(default_factory=dict)


def max_upload_bytes() -> int:
    """The largest contact file accepted (CAMPAIGN_IMPORT_MAX_MB)."""
    return int(current_app.config["IMPORT_MAX_MB"]) * 1024 * 1024


def open_contact_file(
    path: Path, *, filename: str = "", thorough: bool = False
) -> tuple[TableInfo, RowReader]:
    """Open an uploaded file under the configured size cap (TabularError if unreadable).

    `thorough` when the file has just arrived: every part of a workbook is parsed once.
    """
    return read_table(path, max_bytes=max_upload_bytes(), filename=filename, thorough=thorough)


def record_upload(stored: Path, original: str, *, created_by_id: int | None) -> ContactImport:
    """Register a file just uploaded to `stored` (named `original` by the user) for import:
    read it once in full, suggest a column mapping, add the import record (flushed).

    Raises TabularError when the file cannot be read as a table of contacts; the file is then
    the caller's to delete.
    """
    info, rows = open_contact_file(stored, filename=original, thorough=True)
    rows.close()
    mapping, _remembered = suggest_mapping(info.headers)
    record = ContactImport(
        original_filename=original,
        stored_path=str(stored),
        status=ImportStatus.UPLOADED.value,
        mapping=mapping,
        created_by_id=created_by_id,
    )
    db.session.add(record)
    db.session.flush()
    return record


def recent_imports(limit: int = 10) -> list[ContactImport]:
    """The latest imports, newest first."""
    query = select(ContactImport).order_by(ContactImport.id.desc()).limit(limit)
    return list(db.session.scalars(query))


def preview_import(
    path: Path,
    mapping: Mapping[str, str],
    *,
    on_duplicate: str = "skip",
    filename: str = "",
    limit: int = PREVIEW_ROWS,
    fallbacks: Mapping[str, str] | None = None,
) -> Preview:
    """Check the first `limit` rows as the import would, writing nothing; each row that
    would be imported says what its letters will be made from (RowLetter).

    `fallbacks`: values for all rows (clean_fallbacks); by default those kept in `mapping`.
    """
    columns, kept = split_mapping(mapping)
    chosen = kept if fallbacks is None else dict(fallbacks)
    info, rows = open_contact_file(path, filename=filename)
    try:
        checked_mapping = clean_mapping(info.headers, columns)
    except ImportSetupError:
        rows.close()
        raise
    chosen = {name: chosen.get(name, "") for name in missing_letter_fields(checked_mapping)}
    checker = _RowChecker(info.headers, checked_mapping, chosen)
    results = []
    for row in rows:
        results.append(checker.check(row))
        if len(results) >= limit:
            break
    rows.close()
    # Read once for the whole preview, not once per row.
    rules = salutation_rules.current_rule_set()
    keys = [r.data["email_key"] for r in results if r.data]
    # Only live contacts: an address in the trash makes a new contact (decision 0048).
    existing = {
        contact.email_key: contact
        for contact in db.session.scalars(
            select(Contact).where(Contact.email_key.in_(keys), Contact.deleted_at.is_(None))
        )
    }
    seen: dict[str, int] = {}
    preview_rows = []
    erased = erased_addresses.erased_key_test()
    for result in results:
        outcome = "rejected"
        if result.data:
            key = result.data["email_key"]
            if erased is not None and _refuse_erased_row(result, checker, erased):
                pass
            elif key in seen:
                result.problems.append(("", _duplicate_reason(key, seen[key])))
            elif key in existing:
                outcome = on_duplicate
            else:
                outcome = "new"
            seen.setdefault(key, result.line)
        letter = None
        if outcome != "rejected" and result.data:
            letter = _row_letter(
                result,
                outcome,
                existing.get(result.data["email_key"]),
                set(checker.header_of),
                rules,
            )
        preview_rows.append(PreviewRow(result.line, result.cells, result.problems, outcome, letter))
    return Preview(info, checked_mapping, preview_rows, chosen)


def _row_letter(
    result: RowResult, outcome: str, contact: Contact | None, columns: set[str], rules: RuleSet
) -> RowLetter:
    """What the row's letters will be made from once imported (see RowLetter)."""
    data = dict(result.data or {})
    origins = {
        name: "for_all_rows"
        if name in result.for_all_rows
        else ("file" if name in columns else "unknown")
        for name in LETTER_FIELDS
    }
    if contact is not None and outcome in ("update", "skip"):
        # The contact keeps what the file does not change (all of it when skipped).
        for name in CONTACT_FIELDS:
            if outcome == "skip" or name not in result.given:
                data[name] = getattr(contact, name)
                if name in origins:
                    origins[name] = "contact"
    person = SimpleNamespace(**{name: data.get(name) for name in CONTACT_FIELDS})
    available = rules.languages()
    tags = [t.split("-")[0].lower() for t in str(person.languages or "").split()]
    language = next((t for t in tags if t in available), "en" if "en" in available else "")
    language = language or available[0]
    try:
        salutation = rules.salutation(person, language)
    except LookupError as error:  # no rule fits (MissingRuleError)
        salutation = str(error)
    return RowLetter(
        role=(str(person.role_type or ""), origins["role_type"]),
        gender=(str(person.grammatical_gender or ""), origins["grammatical_gender"]),
        languages=(str(person.languages or ""), origins["languages"]),
        salutation=salutation,
        salutation_language=language,
    )


def _refuse_erased_row(
    checked: RowResult, checker: _RowChecker, erased: Callable[[str], bool]
) -> bool:
    """Whether the row names a person erased on request (as its address or a copy); if so
    its problem is added and its cells are blanked: the rejects file and the import page
    keep the line and the reason, never the erased person's data (decision 0090)."""
    assert checked.data is not None
    if erased(checked.data["email_key"]):
        checked.problems.append(_erased_problem(checker))
    else:
        copies = erased_addresses.erased_copies(checked.data.get("cc_emails", ""), erased)
        if not copies:
            return False
        checked.problems.append(
            (
                checker.header_of.get("cc_emails", ""),
                erased_addresses.erased_copy_reason([]),
            )
        )
    checked.cells = [""] * len(checked.cells)
    return True


def _erased_problem(checker: _RowChecker) -> tuple[str, str]:
    """The rejects file's (column, reason) for an address erased on request."""
    return checker.header_of.get("email", ""), erased_addresses.erased_reason()


def _duplicate_reason(key: str, first_line: int) -> str:
    return _(
        "the address %(address)s is already on line %(line)d of this file",
        address=key,
        line=first_line,
    )


# --- The import ------------------------------------------------------------------------


@dataclass
class ImportResult:
    total_rows: int = 0
    imported: int = 0
    updated: int = 0
    skipped: int = 0
    rejected: int = 0
    rejects_path: str = ""

    def summary(self) -> str:
        return _(
            "imported %(imported)d, updated %(updated)d, skipped %(skipped)d, "
            "rejected %(rejected)d",
            imported=self.imported,
            updated=self.updated,
            skipped=self.skipped,
            rejected=self.rejected,
        )


@dataclass(frozen=True)
class Progress:
    done_lines: int
    total_lines: int
    result: ImportResult


class _RejectsWriter:
    """Rejected rows as CSV: line, column, reason, then the row's original cells."""

    def __init__(self, path: Path | None, headers: list[str]) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._writer: Any = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            # utf-8-sig: Excel opens it with the right characters; we read it back too.
            self._file = path.open("w", encoding="utf-8-sig", newline="")
            self._writer = csv.writer(self._file, lineterminator="\r\n")
            # The file is for people to correct and import again: its own columns are
            # named in their language (the importer ignores them: they map to no field).
            self._writer.writerow([_("line"), _("column"), _("reason"), *headers])

    def write(self, result: RowResult) -> None:
        if self._writer is not None:
            cells = [str(result.line), result.column, result.reason, *result.cells]
            self._writer.writerow([neutralise_cell(c) for c in cells])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def import_contacts(
    path: Path,
    mapping: Mapping[str, str],
    *,
    on_duplicate: str = "skip",
    contact_list: ContactList | None = None,
    rejects_path: Path | None = None,
    filename: str = "",
    actor: User | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_reject: Callable[[RowResult], None] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    fallbacks: Mapping[str, str] | None = None,
) -> ImportResult:
    """Import every valid row of the file at `path`; flush, the caller commits.

    Raise TabularError when the file cannot be read at all, ImportSetupError when the
    mapping or options are wrong. Invalid rows are counted, passed to `on_reject` and
    written to `rejects_path`; they never stop the valid ones.

    `fallbacks`: values for all rows of letter fields no column fills (clean_fallbacks;
    "" = left unknown); by default those kept in `mapping` (stored_mapping).
    """
    if on_duplicate not in ON_DUPLICATE:
        raise ImportSetupError(duplicate_choice_message())
    columns, kept = split_mapping(mapping)
    chosen = kept if fallbacks is None else dict(fallbacks)
    info, rows = open_contact_file(path, filename=filename)
    try:
        checked_mapping = clean_mapping(info.headers, columns)
    except ImportSetupError:
        rows.close()
        raise
    checker = _RowChecker(info.headers, checked_mapping, chosen)
    result = ImportResult(rejects_path=str(rejects_path) if rejects_path else "")
    # People erased on request are never imported again; None (no test at all) when nobody
    # was ever erased. Read before the writer thread starts: rows are checked without the
    # session (decision 0090).
    try:
        erased = erased_addresses.erased_key_test()
    except erased_addresses.ErasureKeyMissing as error:
        rows.close()
        raise ImportSetupError(str(error)) from None
    # Each address's first line, in a few bytes a row: it is what lets us name the earlier
    # line in a duplicate's message (decision 0079).
    seen = SeenAddresses()
    list_id = contact_list.id if contact_list is not None else None
    keys = SearchKeys([*checker.header_of, *checker.fallbacks])
    # What is undone at the end, in the reverse order, each step even if one before it
    # raised (a job's timeout can land while the writer thread is joined): the files, the
    # page cache, the interpreter settings, the writer (0083 review).
    with ExitStack() as cleanup:
        cleanup.callback(rows.close)
        rejects = _RejectsWriter(rejects_path, info.headers)
        cleanup.callback(rejects.close)
        _prefer_indexes(True)
        _widen_search_index_buffer()
        cleanup.callback(_widen_page_cache())
        _IMPORT_RUNTIME.enter()
        cleanup.callback(_IMPORT_RUNTIME.leave)
        # Rows are checked here while the chunk before is written in a second thread: the
        # database's work (SQLite's, which lets go of the GIL; PostgreSQL's, in its own
        # process) runs beside the Python that checks the next rows (decision 0079).
        writer = _ChunkWriter(
            lambda chunk: _write_chunk(chunk, on_duplicate, list_id, result, keys),
            fold_every=_fold_every(),
        )
        cleanup.callback(writer.abandon)
        chunk: list[RowResult] = []
        last_line = 0
        for row in rows:
            checked = checker.check(row)
            result.total_rows += 1
            last_line = row.line
            if erased is not None and checked.data and _refuse_erased_row(checked, checker, erased):
                checked.data = None
            if checked.data is not None:
                key = checked.data["email_key"]
                first = seen.first_line(key, row.line)
                if first is not None:
                    checked.problems.append(("", _duplicate_reason(key, first)))
                    checked.data = None
            if checked.data is None:
                result.rejected += 1
                rejects.write(checked)
                if on_reject is not None:
                    on_reject(checked)
                continue
            chunk.append(checked)
            if len(chunk) >= chunk_rows:
                _prepare_rows(chunk, keys)
                writer.write(chunk)
                chunk = []
                if on_progress is not None:
                    on_progress(Progress(last_line, info.total_lines, result))
        if chunk:
            _prepare_rows(chunk, keys)
            writer.write(chunk)
        writer.finish()
        _index_written_contacts()
        # Not in `finally`: after a database error the transaction only takes a rollback,
        # which undoes the SET LOCAL anyway.
        _prefer_indexes(False)
    if on_progress is not None:
        on_progress(Progress(max(info.total_lines, last_line), info.total_lines, result))
    record_event(
        "contacts.import",
        target_type="contact_list" if contact_list is not None else "",
        target_id=contact_list.id if contact_list is not None else "",
        actor=actor,
        detail={
            "file": filename or path.name,
            "rows": result.total_rows,
            "imported": result.imported,
            "updated": result.updated,
            "skipped": result.skipped,
            "rejected": result.rejected,
            "on_duplicate": on_duplicate,
            "list": contact_list.name if contact_list is not None else "",
            "for_all_rows": dict(checker.fallbacks),
        },
    )
    return result


class SeenAddresses:
    """The addresses an import has met, each with the line it was first on, in flat memory.

    A dict of address -> line grew ~100 bytes a row (10 MB at 100,000 rows). Here each
    address is a 16-byte BLAKE2b digest in one bytearray and its line 4 bytes in an array;
    an open-addressing table of row numbers (4 bytes a slot, linear probing, doubled when
    half full) finds a digest in one or two probes, each comparing all 16 bytes. 28-36
    bytes a row (~3 MB at 100,000 rows). Two different addresses share a digest with a
    probability of about 2^-128 a pair: none in practice (decision 0079).
    """

    _SIZE = 16

    def __init__(self, slots: int = 1 << 16) -> None:
        if slots < 2 or slots & (slots - 1):
            raise ValueError("slots must be a power of two")
        self._digests = bytearray()
        self._lines = array("I")
        # Each slot holds a row number + 1 (0: empty); a row's hash is its digest's first
        # 8 bytes read as the machine reads them, so `_grow` can read them all at once.
        self._slots = array("I", bytes(4 * slots))
        self._mask = slots - 1

    def first_line(self, key: str, line: int) -> int | None:
        """The line `key` was first met on; None (and `line` remembered) if it is new."""
        digest = hashlib.blake2b(key.encode(), digest_size=self._SIZE).digest()
        slots, mask, digests, size = self._slots, self._mask, self._digests, self._SIZE
        at = int.from_bytes(digest[:8], sys.byteorder) & mask
        while row := slots[at]:
            if digests.startswith(digest, (row - 1) * size):
                return self._lines[row - 1]
            at = (at + 1) & mask
        rows = len(self._lines) + 1
        slots[at] = rows
        digests += digest
        self._lines.append(line)
        if 2 * rows > len(slots):
            self._grow()
        return None

    def _grow(self) -> None:
        count = 2 * len(self._slots)
        mask = count - 1
        slots = array("I", bytes(4 * count))
        with (
            memoryview(self._digests) as view,
            view.cast("Q") as words,
            words[:: self._SIZE // 8] as hashes,
        ):
            for row, hashed in enumerate(hashes, 1):
                at = hashed & mask
                while slots[at]:
                    at = (at + 1) & mask
                slots[at] = row
        self._slots, self._mask = slots, mask


class _ChunkWriter:
    """Writes an import's chunks in a second thread, one at a time and in order, while the
    calling thread checks the next rows; at most one chunk waits, so memory stays flat.

    The thread runs in a copy of the caller's context: the same app context, so the same
    session, connection and transaction (`db.session` is scoped by app context). The
    caller must not use the session until `finish` returns: nothing that checks rows
    reads the database once the import has started (the country table is read first).
    A write that fails stops the writing; the caller gets its exception at its next call.
    """

    def __init__(self, write: Callable[[list[RowResult]], None], *, fold_every: int = 0) -> None:
        self._write = write
        self._fold_every = fold_every
        self._unfolded = 0
        self._queue: queue.Queue[list[RowResult] | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._stop = False
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name="import-writer", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            if self._error is not None or self._stop:
                continue  # drain: the caller learns of the error at its next call
            try:
                self._write(chunk)
                self._unfolded += len(chunk)
                if self._fold_every and self._unfolded >= self._fold_every:
                    # SQLite's search index, folded here every so many rows, so that its
                    # work overlaps the checking of rows (FTS5 releases the GIL too).
                    _index_written_contacts()
                    self._unfolded = 0
            except BaseException as error:  # re-raised in the caller's thread
                self._error = error

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self._stop = True
            raise error

    def write(self, chunk: list[RowResult]) -> None:
        self._raise_error()
        self._queue.put(chunk)

    def finish(self) -> None:
        """Wait until every chunk is written; raise the error of a write that failed."""
        self._queue.put(None)
        self._thread.join()
        self._raise_error()

    def abandon(self) -> None:
        """Stop without writing what is left (the caller is raising); idempotent."""
        if self._thread.is_alive():
            self._stop = True
            self._queue.put(None)
            self._thread.join()


# Seconds a thread waiting for the GIL lets the other run before asking for it, while an
# import runs (decision 0079): the writer wants the GIL back after each statement (SQLite
# lets go of it while it works) and by default waits up to 5 ms for the checking thread.
SWITCH_INTERVAL = 0.001
# Net allocations of tracked objects between two young-generation collections while an
# import runs (700 by default). A chunk's rows live for ~1,000 rows, long enough to be
# promoted by every collection and to trigger full ones over the whole process heap; with
# this threshold the rows in flight (~15,000 objects) die before one (decision 0083).
GC_THRESHOLD = 50_000


class _RuntimeSettings:
    """The interpreter settings imports run with, which are process-wide: set when the
    first import of the process starts, restored when the last running one ends, so that
    two imports in one process (threads) never leave them changed (decision 0083)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._saved: tuple[float, tuple[int, int, int]] = (0.0, (0, 0, 0))

    def enter(self) -> None:
        with self._lock:
            if not self._running:
                self._saved = (sys.getswitchinterval(), gc.get_threshold())
                interval, (young, middle, old) = self._saved
                sys.setswitchinterval(min(interval, SWITCH_INTERVAL))
                if young:  # 0: collection is off; leave it so
                    gc.set_threshold(max(young, GC_THRESHOLD), middle, old)
            self._running += 1

    def leave(self) -> None:
        with self._lock:
            self._running -= 1
            if not self._running:
                interval, thresholds = self._saved
                sys.setswitchinterval(interval)
                gc.set_threshold(*thresholds)


_IMPORT_RUNTIME = _RuntimeSettings()

# Rows between two folds of SQLite's search index by the writing thread (0: once, at the
# end, by the importing thread). Each fold merges into a larger index: folding every 10,000
# rows cost ~1 s more CPU at 100,000 rows than once at the end, more than the overlap won.
FOLD_EVERY_ROWS = 0
# FTS5's in-memory buffer of new index entries (its "hashsize", 1 MiB by default): with
# 8 MiB it writes and merges fewer segments, folding 100,000 keys at 6 µs each instead of
# 11 (decision 0079). Kept in the index's own configuration.
FTS_BUFFER_BYTES = 8 << 20


def _fold_every() -> int:
    dialect = db.session.get_bind().dialect
    return FOLD_EVERY_ROWS if dialect.name == "sqlite" else 0


def _widen_search_index_buffer() -> None:
    """Give SQLite's FTS5 search index a larger buffer for new entries (idempotent)."""
    connection = db.session.connection()
    if not search_index_usable(connection):
        return
    # The FTS5 table's own configuration row (search_key.SEARCH_TABLE, migration 0021).
    current = connection.exec_driver_sql(
        "SELECT v FROM contacts_search_config WHERE k = 'hashsize'"
    ).scalar()
    if current != FTS_BUFFER_BYTES:
        connection.exec_driver_sql(
            "INSERT INTO contacts_search (contacts_search, rank) VALUES ('hashsize', ?)",
            (FTS_BUFFER_BYTES,),
        )


# SQLite's page cache while an import writes, in KiB (2,000 by default, about 2 MB). The
# import's random inserts into the indexes on names, organisations and addresses dirty more
# pages than that; once the cache is full SQLite spills them to the WAL and writes them
# again at the next change. 16 MiB took the writing thread from 3.7 to 2.8 s of CPU at
# 100,000 rows (decision 0083). Bounded: a 25,000-row import already fills it, so the peak
# is the same at any size of file. Set on the import's connection and put back after.
IMPORT_PAGE_CACHE_KIB = 16 * 1024


def _widen_page_cache() -> Callable[[], None]:
    """Give the import's SQLite connection a larger page cache; returns what restores it
    (through the driver: it must work after a failed write too)."""
    connection = db.session.connection()
    if connection.dialect.name != "sqlite":
        return lambda: None
    driver = connection.connection.driver_connection
    assert driver is not None
    before = int(driver.execute("PRAGMA cache_size").fetchone()[0])
    # Negative: KiB; positive: pages. Only ever made larger.
    page_kib = int(driver.execute("PRAGMA page_size").fetchone()[0]) // 1024
    if (-before if before < 0 else before * page_kib) >= IMPORT_PAGE_CACHE_KIB:
        return lambda: None
    driver.execute(f"PRAGMA cache_size = -{IMPORT_PAGE_CACHE_KIB}")

    def restore() -> None:
        driver.execute(f"PRAGMA cache_size = {before}")

    return restore


def duplicate_choice_message() -> str:
    return _("choose whether to skip or update duplicates")


def _prefer_indexes(on: bool) -> None:
    """On PostgreSQL, make the per-chunk look-ups use their indexes while the table grows.

    The import's own rows are not in the planner's statistics until the transaction ends,
    and psycopg prepares a statement run five times, so PostgreSQL would keep a plan made
    when the table looked empty: a sequential scan per chunk, quadratic over the file
    (730 rows/s at 100,000 rows). Only the look-ups by unique address and by primary key
    run while this is set, and it is reset after the import.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text(f"SET LOCAL enable_seqscan = {'off' if on else 'DEFAULT'}"))


def _index_written_contacts() -> None:
    """Fold the contacts written on SQLite into the search's FTS5 index (migration 0021).

    The driver's statements pass the session's hooks by, so no commit would. Once per
    import, not per chunk: FTS5 writes a segment per statement and merges them as they
    pile up; at 100,000 rows that cost 20 µs a row more (decision 0075)."""
    sync_search_index(db.session.connection())


def _key_in(keys: list[str]) -> Any:
    """The condition "the address key is one of `keys`", as a chunk's look-up needs it."""
    column = Contact.email_key
    if db.session.get_bind().dialect.name == "postgresql":
        # One array parameter instead of 1,000 placeholders: psycopg converts a long query
        # text on every execution, and this one runs once per chunk.
        return column == any_(bindparam("keys", keys, type_=ARRAY(String)))
    return column.in_(keys)


# Trashed contacts are left out in SQL: "deleted_at IS NULL" lets the databases use the
# partial unique index of live addresses, the only index on email_key since migration 0023
# (the index of trashed contacts, partial on "deleted_at IS NOT NULL", cannot serve it). An
# address only in the trash makes a new contact.


def _existing_ids(keys: list[str]) -> dict[str, int]:
    """Address key -> contact id for the keys that are already live contacts."""
    if not keys:
        return {}
    connection = db.session.connection()
    if bulk_path(connection.dialect) == "prepared":
        # SQLite, once a chunk: through the driver, not SQLAlchemy's expansion of 1,000
        # placeholders (a third of the look-up's time).
        driver = connection.connection.driver_connection
        assert driver is not None
        cursor = driver.execute(_live_ids_sql(len(keys)), keys)
        try:
            return dict(cursor.fetchall())
        finally:
            cursor.close()
    if connection.dialect.name == "postgresql":
        # A text statement, not a select built per chunk: that one left a reference cycle
        # holding its 1,000 keys, freed only by the cyclic collector, which runs rarely
        # while an import runs (GC_THRESHOLD): +8 MB at 100,000 rows (decision 0083).
        statement = text(_LIVE_IDS_PG).bindparams(bindparam("keys", keys, type_=ARRAY(String)))
        return {key: contact_id for key, contact_id in db.session.execute(statement)}
    rows = db.session.execute(
        select(Contact.email_key, Contact.id).where(_key_in(keys), Contact.deleted_at.is_(None))
    )
    return {key: contact_id for key, contact_id in rows}


# One array parameter (psycopg would convert 1,000 placeholders' text on every chunk);
# "deleted_at IS NULL" lets the partial unique index of live addresses serve it.
_LIVE_IDS_PG = (
    "SELECT email_key, id FROM contacts WHERE email_key = ANY(:keys) AND deleted_at IS NULL"
)


@functools.lru_cache(maxsize=4)
def _live_ids_sql(count: int) -> str:
    # "deleted_at IS NULL" in the query lets SQLite use the partial unique index of live
    # addresses (uq_contacts_live_email_key), the only index on email_key (migration 0023).
    marks = ", ".join(["?"] * count)
    return (
        "SELECT email_key, id FROM contacts"  # noqa: S608 (placeholders only)
        f" WHERE email_key IN ({marks}) AND deleted_at IS NULL"
    )


def _live_contacts(keys: list[str]) -> dict[str, Any]:
    """Address key -> the live contact's whole row, for the keys that are already contacts."""
    if not keys:
        return {}
    rows = db.session.execute(
        select(_contacts).where(_key_in(keys), _contacts.c.deleted_at.is_(None))
    )
    return {row.email_key: row for row in rows}


def _write_chunk(
    chunk: list[RowResult],
    on_duplicate: str,
    list_id: int | None,
    result: ImportResult,
    search_keys: SearchKeys | None = None,
) -> None:
    keys = [r.data["email_key"] for r in chunk if r.data]
    existing = _existing_ids(keys)
    key_of = search_keys or SearchKeys()
    new_rows: list[dict[str, Any]] = []
    # Updates grouped by the set of fields they change: one executemany per group.
    updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    existing_ids: list[int] = []
    now = datetime.now(UTC)
    for checked in chunk:
        data = checked.data
        assert data is not None
        contact_id = existing.get(data["email_key"])
        if contact_id is None:
            if "search_key" not in data:  # else _prepare_rows did it, in the checking thread
                data["created_at"] = data["updated_at"] = now  # the row's own dict: no copy
                data["search_key"] = key_of(data)
            new_rows.append(data)
            continue
        existing_ids.append(contact_id)
        if on_duplicate == "skip":
            result.skipped += 1
            continue
        fields = tuple(f for f in checked.given if f != "email")
        # Bound names must differ from column names in an UPDATE's SET clause.
        values = {f"new_{f}": data[f] for f in fields}
        values["contact_id"] = contact_id
        values["new_updated_at"] = now
        updates.setdefault(fields, []).append(values)
        result.updated += 1
    if new_rows:
        _insert_contacts(new_rows)
        result.imported += len(new_rows)
    _apply_updates(updates)
    if list_id is not None:
        new_ids = list(_existing_ids([row["email_key"] for row in new_rows]).values())
        _add_to_list(list_id, existing_ids, new_ids)


def _prepare_rows(chunk: list[RowResult], search_keys: SearchKeys) -> None:
    """What a new contact needs besides its checked data (timestamps, the search key), set
    in each row's own dict by the checking thread, so the writing thread only writes."""
    now = datetime.now(UTC)
    for checked in chunk:
        data = checked.data
        assert data is not None
        data["created_at"] = data["updated_at"] = now
        data["search_key"] = search_keys(data)


def _apply_updates(updates: Mapping[tuple[str, ...], list[dict[str, Any]]]) -> None:
    """Write updates grouped by the fields they change, one executemany per group; each
    parameter set holds `contact_id`, `new_updated_at` and `new_<field>` per field (bound
    names must differ from column names in an UPDATE's SET clause)."""
    for fields, params in updates.items():
        assignments: dict[str, Any] = {f: bindparam(f"new_{f}") for f in (*fields, "updated_at")}
        if DATIVE_SOURCES & set(fields) and not set(DATIVE_FIELDS) & set(fields):
            # The stored dative was declined from the old name or title: suggest it afresh
            # (as on the edit page).
            assignments.update(name_dative="", position_title_dative="", dative_confirmed=False)
        statement = (
            update(_contacts).where(_contacts.c.id == bindparam("contact_id")).values(assignments)
        )
        db.session.execute(statement, params)
        if set(KEY_FIELDS) & set(fields):
            refresh_search_keys(db.session, [p["contact_id"] for p in params])


class SearchKeys:
    """search_key_of for the rows of one import or upsert, each distinct name, title or
    organisation folded once: they repeat down a file (up to MEMO_VALUES of them)."""

    def __init__(self, given: Sequence[str] | None = None) -> None:
        self._folded: dict[str, str] = {}
        # With `given` (the fields an import's rows can fill), only those are looked at:
        # the others are blank in every row (decision 0083).
        self._fields = KEY_FIELDS
        if given is not None:
            self._fields = tuple(
                name
                for name in KEY_FIELDS
                if name in given or name == "email_key" or FIELD_PARSERS[name]("")
            )

    def __call__(self, row: Mapping[str, Any]) -> str:
        folded = self._folded
        parts: list[str] = []
        for name in self._fields:
            part = row.get(name)
            if not part:
                continue
            text = str(part)
            key = folded.get(text)
            if key is None:
                key = fold(text)
                if len(folded) < MEMO_VALUES and name != "email_key":
                    folded[text] = key
            if key:
                parts.append(key)
        # As search_key_of: each distinct form once.
        return " ".join(dict.fromkeys(parts))


def _insert_contacts(rows: list[dict[str, Any]]) -> None:
    # No RETURNING (ids are looked up by address only when a list needs them): SQLAlchemy
    # would build one INSERT with 27,000 placeholders per chunk, which psycopg then parses
    # in Python on every execution. PostgreSQL gets COPY, the fastest way in; SQLite one
    # short statement run over the chunk's rows by the driver (decision 0075).
    key_of = SearchKeys()
    for row in rows:
        # Both paths bypass the session's hooks: the search key is computed here unless
        # the caller did (the import, with the names it has already folded).
        if "search_key" not in row:
            row["search_key"] = key_of(row)
    connection = db.session.connection()
    columns = list(rows[0])
    path = bulk_path(connection.dialect)
    if path == "prepared":
        # The caller folds the rows into the search's index once it has written them all
        # (_index_written_contacts).
        _multirow_insert(connection, columns, rows)
        return
    if path == "core":
        db.session.execute(insert(_contacts), rows)
        return
    quote = connection.dialect.identifier_preparer.quote
    # Binary: psycopg sends strings, times and flags as they are instead of writing each
    # as text, as the launch does (decision 0078; 0083 for the import).
    statement = (
        f"COPY {quote(_contacts.name)} ({', '.join(quote(c) for c in columns)})"
        " FROM STDIN (FORMAT BINARY)"
    )
    driver = connection.connection.driver_connection
    assert driver is not None
    try:
        oids = copy_types(driver, _contacts.name, columns)
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types(oids)
            for row in rows:
                copy.write_row([row[c] for c in columns])
    except connection.dialect.loaded_dbapi.Error as error:
        raise as_sqlalchemy_error(connection.dialect, statement, error) from error


# Rows per INSERT on SQLite: one statement of many rows, not one per row (decision 0075).
# SQLite also caps the parameters of a statement (32,766 since 3.32): 682 rows of 48.
SQLITE_ROWS_PER_INSERT = 1000


@functools.lru_cache(maxsize=8)
def _insert_statement(
    dialect: Any, columns: tuple[str, ...]
) -> tuple[str, tuple[str, ...], tuple[Callable[[Any], Any] | None, ...]]:
    """The one-row INSERT of these columns, the order of its parameters, and each
    parameter's conversion (None: passed as it is)."""
    compiled = insert(_contacts).compile(dialect=dialect, column_keys=list(columns))
    order = tuple(compiled.positiontup or ())
    assert sorted(order) == sorted(columns), (order, columns)
    processors = tuple(
        _contacts.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in order
    )
    return compiled.string, order, processors


def _multirow_insert(connection: Any, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """INSERT the rows on SQLite, many to a statement, values converted as SQLAlchemy
    would (its executemany spends more time building parameters than SQLite inserting)."""
    dialect = connection.dialect
    sql, order, processors = _insert_statement(dialect, tuple(columns))
    width = len(order)
    # Every row's values one after the other, in the statement's order.
    flat: list[Any] = [row[c] for row in rows for c in order]
    for position, processor in enumerate(processors):
        if processor is not None:
            converted: dict[Any, Any] = {}  # the chunk's timestamps are one value
            flat[position::width] = [
                converted[v] if v in converted else converted.setdefault(v, processor(v))
                for v in flat[position::width]
            ]
    driver = connection.connection.driver_connection
    assert driver is not None
    limit = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width
    per_statement = max(1, min(SQLITE_ROWS_PER_INSERT, limit))
    # Equal parts, so that the chunks of an import share one statement text (and SQLite's
    # prepared statement) instead of a new one for each remainder.
    parts = -(-len(rows) // per_statement)
    size = -(-len(rows) // parts)
    head, _values, tail = sql.rpartition("VALUES")
    assert _values, sql
    one_row = tail.strip()
    cursor = driver.cursor()
    try:
        for start in range(0, len(rows), size):
            count = min(size, len(rows) - start)
            statement = f"{head}VALUES {', '.join([one_row] * count)}"
            cursor.execute(statement, flat[start * width : (start + count) * width])
    except dialect.loaded_dbapi.Error as error:
        raise as_sqlalchemy_error(dialect, sql, error) from error
    finally:
        cursor.close()


def _add_to_list(list_id: int, existing_ids: list[int], new_ids: list[int]) -> None:
    # Contacts created by this chunk cannot be members yet; only the others are checked.
    already: set[int] = set()
    if existing_ids:
        already = set(
            db.session.scalars(
                select(list_memberships.c.contact_id).where(
                    list_memberships.c.list_id == list_id,
                    list_memberships.c.contact_id.in_(existing_ids),
                )
            )
        )
    missing = [
        {"list_id": list_id, "contact_id": cid}
        for cid in dict.fromkeys([*existing_ids, *new_ids])
        if cid not in already
    ]
    if missing:
        db.session.execute(insert(list_memberships), missing)


# --- Imports started from the page (ContactImport rows) and their progress ------------


def _progress_key(import_id: int) -> str:
    return f"campaign:import:{import_id}:progress"


def _report(import_id: int, state: str, done: int, total: int, result: ImportResult) -> None:
    from campaign.queue import get_redis

    payload = {
        "state": state,
        "done_lines": done,
        "total_lines": total,
        "imported": result.imported,
        "updated": result.updated,
        "skipped": result.skipped,
        "rejected": result.rejected,
        "at": datetime.now(UTC).isoformat(),
    }
    get_redis().set(_progress_key(import_id), json.dumps(payload), ex=PROGRESS_TTL_SECONDS)


def read_progress(import_id: int) -> dict[str, Any] | None:
    """The last progress a running import reported, or None."""
    from campaign.queue import get_redis

    raw = get_redis().get(_progress_key(import_id))
    if raw is None:
        return None
    progress: dict[str, Any] = json.loads(raw)
    return progress


def rejects_path_for(contact_import: ContactImport) -> Path:
    stored = Path(contact_import.stored_path)
    return stored.with_name(f"{stored.stem}-rejects.csv")


IMPORT_JOB = "workers.jobs.import_contacts"


def stopped_message() -> str:
    return _("The import stopped before finishing; no contact was changed. Start it again.")


# RQ job states after which nothing will ever finish an import that is still open.
_DEAD_JOB_STATES = ("finished", "failed", "stopped", "canceled")


def import_job_id(import_id: int) -> str:
    """The RQ job id of an import: one id per import, so it is one job, not several."""
    return f"contact-import-{import_id}"


def job_timeout_for(total_lines: int) -> int:
    """Seconds the job may run: ten minutes plus a second per 2,000 lines.

    Generous on purpose (about twenty times the measured rate): a timeout kills the work
    and the user starts again, so it must only catch a job that is really stuck.
    """
    return 600 + total_lines // 2000


def queue_import(record: ContactImport) -> bool:
    """Move an uploaded import to queued; its job is enqueued when the caller commits.

    Returns False (and does nothing) when the import had already been started: a double
    click on "Start" must not queue a second job.
    """
    info, rows = open_contact_file(Path(record.stored_path), filename=record.original_filename)
    rows.close()
    timeout = job_timeout_for(info.total_lines)
    claimed = db.session.execute(
        update(ContactImport.__table__)
        .where(
            ContactImport.__table__.c.id == record.id,
            ContactImport.__table__.c.status == ImportStatus.UPLOADED.value,
        )
        .values(status=ImportStatus.QUEUED.value, job_timeout_seconds=timeout)
    )
    db.session.refresh(record)
    if int(getattr(claimed, "rowcount", 0) or 0) != 1:
        return False
    from campaign.queue import enqueue_after_commit

    enqueue_after_commit(
        db.session(),
        IMPORT_JOB,
        record.id,
        job_id=import_job_id(record.id),
        job_timeout=timeout,
    )
    return True


def claim_import(import_id: int) -> bool:
    """Take a queued import for this worker (queued -> running); False if someone has it.

    The caller commits the claim before the work starts, so a second delivery of the job
    (RQ may run a job twice) finds the import running or finished and does nothing.
    """
    table = ContactImport.__table__
    result = db.session.execute(
        update(table)
        .where(table.c.id == import_id, table.c.status == ImportStatus.QUEUED.value)
        .values(status=ImportStatus.RUNNING.value, started_at=datetime.now(UTC))
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def run_import(import_id: int) -> ImportResult | None:
    """Run a claimed import; the counts and status are flushed with the contacts.

    Returns None (and does nothing) unless this import is running, i.e. was claimed.
    """
    record = db.session.get(ContactImport, import_id)
    if record is None:
        raise ImportSetupError(_("import #%(id)d does not exist", id=import_id))
    if record.status != ImportStatus.RUNNING.value:
        return None
    with _speaking_to(record):
        return _run_claimed(record)


def _run_claimed(record: ContactImport) -> ImportResult:
    import_id = record.id
    contact_list = db.session.get(ContactList, record.list_id) if record.list_id else None
    actor = db.session.get(User, record.created_by_id) if record.created_by_id else None
    _report(import_id, "running", 0, 0, ImportResult())
    last_report = time.monotonic()

    def report(progress: Progress) -> None:
        # A chunk every 40 ms at full speed: the bar needs a few reports a second, not 25
        # Redis writes; the last report (the whole file read) always goes.
        nonlocal last_report
        now = time.monotonic()
        if progress.done_lines < progress.total_lines and now - last_report < PROGRESS_EVERY:
            return
        last_report = now
        _report(import_id, "running", progress.done_lines, progress.total_lines, progress.result)

    rejects = rejects_path_for(record)
    result = import_contacts(
        Path(record.stored_path),
        record.mapping,
        on_duplicate=record.on_duplicate,
        contact_list=contact_list,
        rejects_path=rejects,
        filename=record.original_filename,
        actor=actor,
        on_progress=report,
    )
    record.status = ImportStatus.FINISHED.value
    record.total_rows = result.total_rows
    record.imported_count = result.imported
    record.updated_count = result.updated
    record.skipped_count = result.skipped
    record.rejected_count = result.rejected
    record.rejects_path = str(rejects) if result.rejected else ""
    record.error = ""
    record.finished_at = datetime.now(UTC)
    db.session.flush()
    if not result.rejected:
        rejects.unlink(missing_ok=True)
    return result


@contextmanager
def _speaking_to(record: ContactImport | None) -> Iterator[None]:
    """Outside a request (the worker), write the import's messages (the rejects file, the
    failure) in the language of the person who started it; a page request keeps its own."""
    language = ""
    if record is not None and record.created_by_id and not has_request_context():
        user = db.session.get(User, record.created_by_id)
        language = user.language if user is not None else ""
    if not language:
        yield
        return
    from campaign.i18n import use_reader_language

    before = g.get("reader_language")
    use_reader_language(language)
    try:
        yield
    finally:
        if before is None:
            g.pop("reader_language", None)
        else:
            g.reader_language = before
        refresh()


def mark_import_failed(import_id: int, error: Exception | str) -> None:
    """Record why an import failed (in a fresh transaction: its contacts were rolled back)."""
    with _speaking_to(db.session.get(ContactImport, import_id)):
        _mark_failed(import_id, error)


def _mark_failed(import_id: int, error: Exception | str) -> None:
    if isinstance(error, str):
        message = error
    elif isinstance(error, TabularError | ImportSetupError):
        message = str(error)
    else:
        # A database or programming error: say so plainly, without internals on the page.
        message = _(
            "The import stopped because of an internal error (%(error)s); no contact was "
            "changed. Try again, or ask an administrator to read the worker log.",
            error=type(error).__name__,
        )
    table = ContactImport.__table__
    # Conditional: a finished import is never turned into a failed one.
    db.session.execute(
        update(table)
        .where(
            table.c.id == import_id,
            table.c.status.in_(
                [ImportStatus.UPLOADED.value, ImportStatus.QUEUED.value, ImportStatus.RUNNING.value]
            ),
        )
        .values(
            status=ImportStatus.FAILED.value,
            error=message[:2000],
            finished_at=datetime.now(UTC),
        )
    )
    record = db.session.get(ContactImport, import_id)
    if record is not None:
        db.session.refresh(record)
    _report(import_id, "failed", 0, 0, ImportResult())


def _job_state(import_id: int) -> str | None:
    """The state of the import's RQ job, or None when Redis no longer has it."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job
    from rq.serializers import JSONSerializer

    from campaign.queue import get_redis

    try:
        job = Job.fetch(import_job_id(import_id), get_redis(), serializer=JSONSerializer)
    except NoSuchJobError:
        return None
    return str(job.get_status(refresh=False).value)


def fail_if_stopped(record: ContactImport, *, now: datetime | None = None) -> bool:
    """Mark a queued or running import failed if nothing will ever finish it; flush.

    That is when its RQ job is gone or over (killed, timed out, lost with Redis), or when a
    running import has reported no progress for longer than its job's timeout. All of its
    contact writes are in one transaction that was never committed, so nothing changed.
    """
    if record.status not in (ImportStatus.QUEUED.value, ImportStatus.RUNNING.value):
        return False
    state = _job_state(record.id)
    stopped = state is None or state in _DEAD_JOB_STATES
    if not stopped and record.status == ImportStatus.RUNNING.value:
        progress = read_progress(record.id) or {}
        last = record.started_at or record.created_at
        if progress.get("at"):
            last = max(last, datetime.fromisoformat(str(progress["at"])))
        timeout = record.job_timeout_seconds or job_timeout_for(0)
        stopped = ((now or datetime.now(UTC)) - last).total_seconds() > timeout
    if not stopped:
        return False
    mark_import_failed(record.id, stopped_message())
    delete_upload(record.id)
    return record.status == ImportStatus.FAILED.value


# The uploaded file goes as soon as its import has ended; the rejects file (the rows to
# correct, with their original cells) stays this long by default (an admin sets it on the
# retention page, campaign/services/privacy/retention.py) for people to download it; a file
# uploaded but never started goes after a day. These files can hold at-risk people's data.
REJECTS_KEPT_DAYS = 7
UNSTARTED_KEPT_HOURS = 24


def delete_upload(import_id: int) -> None:
    """Delete the uploaded file of an import that has ended (finished or failed)."""
    record = db.session.get(ContactImport, import_id)
    if record is not None and record.status in _ENDED:
        Path(record.stored_path).unlink(missing_ok=True)


_ENDED = (ImportStatus.FINISHED.value, ImportStatus.FAILED.value)


def purge_old_import_files(*, now: datetime | None = None) -> int:
    """Delete expired rejects files and never-started uploads; flush. Returns files deleted."""
    from campaign.services.privacy.retention import RetentionKind, kept_days

    now = now or datetime.now(UTC)
    deleted = 0
    # The admin's retention period for import files (0: kept until they change it).
    rejects_days = kept_days(RetentionKind.IMPORT_FILES)
    expired_rejects = select(ContactImport).where(
        ContactImport.rejects_path != "",
        ContactImport.finished_at < now - timedelta(days=rejects_days or 36500),
    )
    for record in db.session.scalars(expired_rejects):
        Path(record.rejects_path).unlink(missing_ok=True)
        record.rejects_path = ""
        deleted += 1
    abandoned = select(ContactImport).where(
        ContactImport.status == ImportStatus.UPLOADED.value,
        ContactImport.created_at < now - timedelta(hours=UNSTARTED_KEPT_HOURS),
    )
    for record in db.session.scalars(abandoned):
        Path(record.stored_path).unlink(missing_ok=True)
        record.status = ImportStatus.FAILED.value
        record.error = _(
            "Not started within %(hours)d hours, so the uploaded file was deleted. Upload it "
            "again to import it.",
            hours=UNSTARTED_KEPT_HOURS,
        )
        record.finished_at = now
        deleted += 1
    db.session.flush()
    return deleted


def read_rejects(path: str, *, limit: int = 5000) -> tuple[list[dict[str, str]], bool]:
    """The first `limit` rejected rows (line, column, reason) and whether there are more."""
    if not path or not Path(path).exists():
        return [], False
    found: list[dict[str, str]] = []
    with Path(path).open(encoding="utf-8-sig", newline="") as stream:
        reader = csv.reader(stream)
        next(reader, None)
        for cells in reader:
            if len(found) >= limit:
                return found, True
            line, column, reason = [*cells, "", "", ""][:3]
            found.append(
                {
                    "line": _restore_cell(line),
                    "column": _restore_cell(column),
                    "reason": _restore_cell(reason),
                }
            )
    return found, False


# --- Upserts of contacts sent as data (the API's bulk upsert) --------------------------

MAX_UPSERT_ITEMS = 10_000


@dataclass(slots=True)
class UpsertOutcome:
    """What became of one item: "created", "updated", "unchanged" or "error"."""

    index: int
    status: str
    id: int | None = None
    errors: list[FieldError] = field(default_factory=list)


def _duplicate_item_reason(key: str, first_index: int) -> str:
    return _(
        "the address %(address)s is already item %(index)d of this request",
        address=key,
        index=first_index,
    )


def upsert_contacts(
    items: Sequence[Mapping[str, Any]],
    *,
    actor: User | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> list[UpsertOutcome]:
    """Create or update contacts given as field mappings, with the import's rules; flush,
    the caller commits.

    Each item is checked as an import row is (`clean_contact_data`: a whole contact, the
    same messages). The same address twice: the later item is refused, naming the first.
    An address a live contact has updates that contact with the fields the item gives (its
    keys; the email itself is the match, not a change); an address only in the trash makes
    a new contact, as the import does. An item whose given fields already hold its values
    is "unchanged" and not written. Invalid items never stop the valid ones, and nothing
    of an invalid item is written.
    """
    outcomes = [UpsertOutcome(index, "error") for index in range(len(items))]
    checked: list[tuple[int, dict[str, Any], tuple[str, ...]]] = []
    seen: dict[str, int] = {}
    try:
        erased = erased_addresses.erased_key_test()
    except erased_addresses.ErasureKeyMissing as error:
        for outcome in outcomes:
            outcome.errors = [FieldError("email", str(error))]
        return outcomes
    for index, item in enumerate(items):
        try:
            data = clean_contact_data(item)
        except ContactInputError as error:
            outcomes[index].errors = list(error.errors)
            continue
        key = data["email_key"]
        if erased is not None and erased(key):
            outcomes[index].errors = [FieldError("email", erased_addresses.erased_reason())]
            continue
        copies = erased_addresses.erased_copies(data["cc_emails"], erased)
        if copies:
            outcomes[index].errors = [
                FieldError("cc_emails", erased_addresses.erased_copy_reason(copies))
            ]
            continue
        if key in seen:
            outcomes[index].errors = [FieldError("email", _duplicate_item_reason(key, seen[key]))]
            continue
        seen[key] = index
        given = tuple(name for name in item if name in FIELD_PARSERS and name != "email")
        if data["dative_confirmed"] and "dative_confirmed" in given:
            # A confirmation stores the forms it covers, suggested ones included.
            given = tuple(dict.fromkeys((*given, *DATIVE_FIELDS)))
        checked.append((index, data, given))
    _prefer_indexes(True)
    for start in range(0, len(checked), chunk_rows):
        _upsert_chunk(checked[start : start + chunk_rows], outcomes)
    _index_written_contacts()
    _prefer_indexes(False)
    counts = {status: 0 for status in ("created", "updated", "unchanged", "error")}
    for outcome in outcomes:
        counts[outcome.status] += 1
    record_event("contacts.upsert", actor=actor, detail={"items": len(items), **counts})
    return outcomes


def _upsert_chunk(
    chunk: list[tuple[int, dict[str, Any], tuple[str, ...]]], outcomes: list[UpsertOutcome]
) -> None:
    current = _live_contacts([data["email_key"] for _index, data, _given in chunk])
    now = datetime.now(UTC)
    new_rows: list[dict[str, Any]] = []
    new_indexes: list[int] = []
    updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for index, data, given in chunk:
        row = current.get(data["email_key"])
        if row is None:
            new_rows.append({**data, "created_at": now, "updated_at": now})
            new_indexes.append(index)
            continue
        outcomes[index].id = row.id
        changed = tuple(name for name in given if getattr(row, name) != data[name])
        if not changed:
            outcomes[index].status = "unchanged"
            continue
        outcomes[index].status = "updated"
        values = {f"new_{name}": data[name] for name in changed}
        values["contact_id"] = row.id
        values["new_updated_at"] = now
        updates.setdefault(changed, []).append(values)
    if new_rows:
        _insert_contacts(new_rows)
        ids = _existing_ids([row["email_key"] for row in new_rows])
        for index, new in zip(new_indexes, new_rows, strict=True):
            outcomes[index].status = "created"
            outcomes[index].id = ids[new["email_key"]]
    _apply_updates(updates)
