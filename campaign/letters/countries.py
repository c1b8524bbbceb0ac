"""Country names as protocol data: what a letter prints for a country code, per language.

Three layers, the later winning: CLDR's names (Babel) for every ISO 3166 code, as a base
for the long tail; the reviewed table `country_names.csv` beside this file (the short and
formal names the UN and the states themselves use: Кыргызстан, never CLDR's Киргизия);
and an admin's corrections stored in the database (the Countries page). A code none of
the layers knows is not a country this installation can print, and imports refuse it.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pycountry
from babel import Locale, UnknownLocaleError

REVIEWED_TABLE = Path(__file__).with_name("country_names.csv")
# Codes that are not ISO 3166 countries but that addresses use (institutions).
INSTITUTIONS = ("EU", "UN")


@dataclass(frozen=True)
class CountryName:
    code: str
    language: str
    short: str
    formal: str
    note: str = ""
    reviewed: bool = False  # from the reviewed table or an admin, not CLDR's base


def _primary(language: str) -> str:
    return language.replace("_", "-").split("-")[0].lower() or "en"


@functools.cache
def _cldr_territories(language: str) -> Mapping[str, str]:
    try:
        return dict(Locale.parse(language).territories)
    except (ValueError, UnknownLocaleError):
        return {}


@functools.cache
def iso_codes() -> frozenset[str]:
    """Every ISO 3166-1 alpha-2 code, and the institutions addresses use."""
    return frozenset({c.alpha_2 for c in pycountry.countries} | set(INSTITUTIONS))


@functools.cache
def reviewed_names() -> dict[tuple[str, str], CountryName]:
    """The reviewed table, keyed by (code, language)."""
    names: dict[tuple[str, str], CountryName] = {}
    with REVIEWED_TABLE.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            code = row["code"].strip().upper()
            for column in row:
                if not column.endswith("_short"):
                    continue
                language = column.removesuffix("_short")
                short = row[column].strip()
                formal = row.get(f"{language}_formal", "").strip() or short
                if short:
                    names[(code, language)] = CountryName(
                        code, language, short, formal, row.get("note", "").strip(), True
                    )
    return names


@functools.cache
def _names_index() -> dict[str, str]:
    """Every built-in name of every country, folded, to its code (CLDR, then reviewed)."""
    index: dict[str, str] = {}
    for language in ("en", "fr", "ru"):
        for code, name in _cldr_territories(language).items():
            if code in iso_codes():
                index.setdefault(name.casefold(), code)
    for (code, _language), reviewed in reviewed_names().items():
        index[reviewed.short.casefold()] = code
        index[reviewed.formal.casefold()] = code
    return index


class CountryNames:
    """The names in force: CLDR, then the reviewed table, then an admin's corrections."""

    def __init__(self, overrides: Iterable[CountryName] = ()) -> None:
        self._overrides = {(o.code, o.language): o for o in overrides}

    @classmethod
    def builtin(cls) -> CountryNames:
        return cls()

    def knows(self, code: str) -> bool:
        code = code.strip().upper()
        return code in iso_codes() or any(key[0] == code for key in self._overrides)

    def codes(self) -> list[str]:
        return sorted(iso_codes() | {key[0] for key in self._overrides})

    def name(self, code: str, language: str) -> CountryName | None:
        """The names of `code` in `language` (English when the language has none)."""
        code = code.strip().upper()
        if not code:
            return None
        for wanted in dict.fromkeys((_primary(language), "en")):
            found = self._overrides.get((code, wanted)) or reviewed_names().get((code, wanted))
            if found is not None:
                return found
            cldr = _cldr_territories(wanted).get(code)
            if cldr and code in iso_codes():
                return CountryName(code, wanted, cldr, cldr)
        return None

    def find(self, text: str) -> str:
        """The code of a country written as a code or by any of its names ("Kyrgyzstan",
        "Кыргызстан", "KG"), or "" when the text names no country we know."""
        wanted = " ".join(text.split()).casefold()
        if not wanted:
            return ""
        if len(wanted) == 2 and self.knows(wanted):
            return wanted.upper()
        for override in self._overrides.values():
            if wanted in (override.short.casefold(), override.formal.casefold()):
                return override.code
        return _names_index().get(wanted, "")

    def short(self, code: str, language: str) -> str:
        found = self.name(code, language)
        return found.short if found else ""

    def printed(self, text: str, language: str) -> str:
        """A country as typed by a signer ("Belgium", "BE", "Бельгия") as the table names it
        in `language` ("Belgique"); text that names no known country stays as typed."""
        code = self.find(text)
        return (self.short(code, language) or text) if code else text

    def formal(self, code: str, language: str) -> str:
        found = self.name(code, language)
        return found.formal if found else ""


def load_country_names(session: Any | None = None) -> CountryNames:
    """The names in force, with the corrections stored in the database (if reachable)."""
    from flask import g, has_app_context

    if not has_app_context():
        return CountryNames.builtin()
    cached = g.get("_country_names")
    if cached is not None:
        return cached
    from sqlalchemy import select

    from campaign.extensions import db
    from campaign.models.country_name import CountryNameOverride

    rows = (session or db.session).scalars(select(CountryNameOverride)).all()
    names = CountryNames(
        CountryName(r.code, r.language, r.short_name, r.formal_name or r.short_name, r.note, True)
        for r in rows
    )
    g._country_names = names
    return names


def forget_loaded_names() -> None:
    """Drop this app context's cached names (after an admin changed one)."""
    from flask import g, has_app_context

    if has_app_context():
        g.pop("_country_names", None)
