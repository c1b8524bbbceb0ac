"""Dates and numbers as each letter language writes them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from campaign.letters.formatting import format_date, format_number

DAY = dt.date(2026, 12, 10)


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("en", "10 December 2026"),
        ("fr", "10 décembre 2026"),
        ("ru", "10 декабря 2026\u202fг."),
        ("en-US", "December 10, 2026"),
        ("fr-CA", "10 décembre 2026"),
        ("es", "10 de diciembre de 2026"),
    ],
)
def test_long_dates_read_as_the_language_writes_them(lang: str, expected: str) -> None:
    assert format_date(DAY, lang) == expected


@pytest.mark.parametrize(
    ("lang", "style", "expected"),
    [
        ("en", "short", "10/12/2026"),
        ("fr", "short", "10/12/2026"),
        ("ru", "short", "10.12.2026"),
        ("en", "full", "Thursday, 10 December 2026"),
        ("fr", "full", "jeudi 10 décembre 2026"),
        ("fr", "d MMMM", "10 décembre"),
    ],
)
def test_date_styles_and_patterns(lang: str, style: str, expected: str) -> None:
    assert format_date(DAY, lang, style) == expected


def test_a_datetime_is_written_as_its_date() -> None:
    moment = dt.datetime(2026, 12, 10, 23, 30, tzinfo=dt.UTC)
    assert format_date(moment, "fr") == "10 décembre 2026"


@pytest.mark.parametrize("lang", ["xx", "zz-ZZ", "", None, "!!", "en_", "123"])
def test_unknown_languages_fall_back_to_english(lang: str | None) -> None:
    assert format_date(DAY, lang) == "10 December 2026"
    assert format_number(1234.5, lang) == "1,234.5"


def test_a_known_language_with_an_unknown_region_keeps_its_language() -> None:
    assert format_date(DAY, "fr-XX") == "10 décembre 2026"


@pytest.mark.parametrize(
    ("lang", "value", "expected"),
    [
        ("en", 1234567.5, "1,234,567.5"),
        ("fr", 1234567.5, "1\u202f234\u202f567,5"),
        ("ru", 1234567.5, "1\xa0234\xa0567,5"),
        ("de", Decimal("1234.50"), "1.234,5"),
        ("en", 42, "42"),
    ],
)
def test_numbers_use_the_languages_separators(lang: str, value: object, expected: str) -> None:
    assert format_number(value, lang) == expected  # type: ignore[arg-type]


def test_wrong_types_are_named() -> None:
    with pytest.raises(TypeError, match="the date filter needs a date, not str"):
        format_date("2026-12-10", "en")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="the number filter needs a number, not str"):
        format_number("12", "en")  # type: ignore[arg-type]
