"""Dates and numbers written the way the letter's language writes them (Babel)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.dates import format_date as babel_format_date
from babel.numbers import format_decimal

# Bare "en" is written the British way ("10 December 2026"): the house style of
# the statements we send to embassies and UN mandates. "en-US" still gets US style.
FALLBACK_LOCALE = "en_GB"
_PREFERRED_REGION = {"en": "en_GB"}
DATE_STYLES = frozenset({"short", "medium", "long", "full"})


@lru_cache(maxsize=256)
def letter_locale(lang: str | None) -> Locale:
    """Return the Babel locale for a BCP 47 tag, English when it is unknown."""
    tag = (lang or "").strip().replace("_", "-")
    # "de-XX" is still German: try the whole tag, then the language on its own.
    for candidate in (tag, tag.split("-")[0]):
        if not candidate:
            continue
        candidate = _PREFERRED_REGION.get(candidate.lower(), candidate)
        try:
            return Locale.parse(candidate, sep="-" if "-" in candidate else "_")
        except (UnknownLocaleError, ValueError, TypeError):
            continue
    return Locale.parse(FALLBACK_LOCALE)


def format_date(value: dt.date, lang: str | None, format: str = "long") -> str:
    """Write a date as the letter's language does: "10 décembre 2026"."""
    if not isinstance(value, dt.date):
        raise TypeError(f"the date filter needs a date, not {type(value).__name__}")
    if isinstance(value, dt.datetime):
        value = value.date()
    return _formatted_date(value, format, lang)


# Every letter of a day writes the same date: formatted once per day, language and style.
@lru_cache(maxsize=256)
def _formatted_date(value: dt.date, format: str, lang: str | None) -> str:
    return babel_format_date(value, format=format, locale=letter_locale(lang))


def format_number(value: int | float | Decimal, lang: str | None, format: str | None = None) -> str:
    """Write a number as the letter's language does: "1 234,5" in French."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise TypeError(f"the number filter needs a number, not {type(value).__name__}")
    return format_decimal(value, format=format, locale=letter_locale(lang))
