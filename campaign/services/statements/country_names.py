"""Country names as protocol data: the table in force, and an admin's corrections."""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import select

from campaign.extensions import db
from campaign.letters.countries import (
    CountryName,
    forget_loaded_names,
    load_country_names,
    reviewed_names,
)
from campaign.letters.salutations import RuleSet
from campaign.models import CountryNameOverride
from campaign.services.accounts.audit import record_event
from campaign.services.statements.salutation_rules import current_rule_set

_CODE = re.compile(r"^[A-Z]{2}$|^[A-Z]{2,3}-[A-Z0-9]{1,4}$")
_CONTROL = re.compile(
    r"[\x00-\x1f\x7f\u00ad\u200b\u200e\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
MAX_SHORT = 200
MAX_FORMAL = 300
MAX_NOTE = 500


class CountryNameError(ValueError):
    """A correction that cannot be stored; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class CountryRow:
    """One country as the Countries page shows it: its names per letter language."""

    code: str
    names: dict[str, CountryName | None]
    corrected: frozenset[str]  # languages an admin corrected


def letter_languages() -> list[str]:
    """The languages letters are written in here (the salutation rules' languages)."""
    rules: RuleSet = current_rule_set()
    return list(dict.fromkeys(["en", "fr", "ru", *rules.languages()]))


def country_rows(query: str = "", interface_language: str = "en") -> list[CountryRow]:
    """Every country the table knows, filtered by code or by any of its names."""
    table = load_country_names()
    languages = letter_languages()
    corrected: dict[str, set[str]] = {}
    for row in db.session.scalars(select(CountryNameOverride)):
        corrected.setdefault(row.code, set()).add(row.language)
    wanted = query.strip().casefold()
    rows = []
    for code in table.codes():
        names = {language: table.name(code, language) for language in languages}
        if wanted:
            haystack = [code.casefold()] + [
                text.casefold()
                for found in names.values()
                if found is not None
                for text in (found.short, found.formal)
            ]
            if not any(wanted in text for text in haystack):
                continue
        rows.append(CountryRow(code, names, frozenset(corrected.get(code, set()))))
    rows.sort(key=lambda r: _sort_name(r, interface_language))
    return rows


def _sort_name(row: CountryRow, language: str) -> str:
    found = row.names.get(language) or row.names.get("en")
    return (found.short if found else row.code).casefold()


def _clean(value: str, field: str, limit: int, *, required: bool = False) -> str:
    text = " ".join(value.split())
    if _CONTROL.search(value.replace("\n", " ")):
        raise CountryNameError(
            field, _("This field cannot contain control or invisible formatting characters.")
        )
    if required and not text:
        raise CountryNameError(field, _("This field is required."))
    if len(text) > limit:
        raise CountryNameError(
            field,
            _("At most %(limit)d characters (this has %(length)d).", limit=limit, length=len(text)),
        )
    return text


def save_country_name(
    code: str, language: str, short_name: str, formal_name: str = "", note: str = ""
) -> CountryNameOverride:
    """Store an admin's names for one country in one language (replacing an earlier one)."""
    code = code.strip().upper()
    if not _CODE.match(code):
        raise CountryNameError(
            "code", _("Use a two-letter ISO code such as KG or FR (or a code like XK).")
        )
    language = language.strip().lower()
    if language not in letter_languages():
        raise CountryNameError(
            "language", _("Letters are not written in that language in this installation.")
        )
    short = _clean(short_name, "short_name", MAX_SHORT, required=True)
    # An empty formal name keeps the reviewed one (correcting "Kirghizistan" must not turn
    # "République kirghize" into "Kirghizstan"); with none reviewed, the short name.
    reviewed = reviewed_names().get((code, language))
    formal = _clean(formal_name, "formal_name", MAX_FORMAL) or (
        reviewed.formal if reviewed else short
    )
    note_text = _clean(note, "note", MAX_NOTE)
    row = db.session.scalar(
        select(CountryNameOverride).where(
            CountryNameOverride.code == code, CountryNameOverride.language == language
        )
    )
    before = None
    if row is None:
        row = CountryNameOverride(code=code, language=language)
        db.session.add(row)
    else:
        before = {"short": row.short_name, "formal": row.formal_name}
    row.short_name, row.formal_name, row.note = short, formal, note_text
    db.session.flush()
    forget_loaded_names()
    record_event(
        "country_name.save",
        target_type="country_name",
        target_id=row.id,
        detail={
            "code": code,
            "language": language,
            "short": short,
            "formal": formal,
            "before": before,
        },
    )
    return row


def delete_country_name(row: CountryNameOverride) -> None:
    """Drop an admin's correction: the reviewed table (or CLDR) applies again."""
    record_event(
        "country_name.delete",
        target_type="country_name",
        target_id=row.id,
        detail={"code": row.code, "language": row.language, "short": row.short_name},
    )
    db.session.delete(row)
    db.session.flush()
    forget_loaded_names()


def corrections() -> list[CountryNameOverride]:
    """The corrections admins made, by code and language."""
    query = select(CountryNameOverride).order_by(
        CountryNameOverride.code, CountryNameOverride.language
    )
    return list(db.session.scalars(query))


def is_reviewed(code: str, language: str) -> bool:
    return (code, language) in reviewed_names()
