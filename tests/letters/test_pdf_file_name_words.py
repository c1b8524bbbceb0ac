"""The PDF's file name reads as its subject does (issue 14, item 8, review 2): a character
file systems refuse that separated words leaves a separator in its place, and a long name
is cut between words with an ellipsis."""

from __future__ import annotations

from datetime import date

import pytest
from flask import Flask

from campaign.services.statements.complete_letters import pdf_filename
from tests.conftest import fresh_sqlite_copy
from tests.test_attachment_names import _letter

DAY = date(2026, 12, 7)


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    """SQLite only: the names come from a letter built in memory; no SQL runs (decision 0084)."""
    return fresh_sqlite_copy(request)


@pytest.mark.parametrize(
    ("language", "subject", "expected"),
    [
        (
            "en",
            "Turkmenistan: prisoner Allamurat HUDAYRAMOV was subjected to extrajudicial execution",
            "Turkmenistan – prisoner Allamurat HUDAYRAMOV was subjected to extrajudicial… "
            "– 2026-12-07.pdf",
        ),
        # French typography puts a (narrow) no-break space before the colon.
        (
            "fr",
            "Turkménistan\u202f: le prisonnier libéré ?",
            "Turkménistan – le prisonnier libéré – 2026-12-07.pdf",
        ),
        (
            "en",
            "Belarus / Russia | joint appeal",
            "Belarus – Russia – joint appeal – 2026-12-07.pdf",
        ),
        ("en", "A/HRC/55/12 and CCPR/C/135", "A-HRC-55-12 and CCPR-C-135 – 2026-12-07.pdf"),
        ("ru", "Туркменистан: узник", "Туркменистан – узник – 2026-12-07.pdf"),
    ],
)
def test_a_refused_character_between_words_leaves_a_separator(
    app: Flask, language: str, subject: str, expected: str
) -> None:
    assert pdf_filename(_letter(language, subject), DAY) == expected


def test_a_long_name_is_cut_between_words_with_an_ellipsis(app: Flask) -> None:
    words = "Совместное обращение к постоянным представительствам государств при ООН в Женеве"
    name = pdf_filename(_letter("ru", words + " о защитниках прав человека"), DAY)
    title = name.removesuffix(" – 2026-12-07.pdf")
    assert title.endswith("…") and len(title) <= 80
    assert (title[:-1] + " ") in (words + " о защитниках прав человека ")  # whole words only
    # A name that fits is left whole, without an ellipsis.
    assert pdf_filename(_letter("ru", words), DAY) == f"{words} – 2026-12-07.pdf"
    # One word longer than the limit is cut inside it, still with the ellipsis.
    long_word = pdf_filename(_letter("en", "x" * 120), DAY)
    assert long_word == "x" * 79 + "… – 2026-12-07.pdf"
