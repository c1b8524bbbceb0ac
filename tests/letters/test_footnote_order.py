"""Footnotes with numbered and named labels print in order (issue 14, item 2, review 2):
named and inline notes take the numbers after the author's highest, in reading order, and
the notes are listed in number order in the HTML, the text and the PDF."""

from __future__ import annotations

import io
import re
from datetime import date

import pytest
from flask import Flask
from pypdf import PdfReader

from campaign.letters import pdf
from campaign.letters.markdown import render_body
from tests.conftest import fresh_sqlite_copy
from tests.letters.test_pdf import _letter


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    """SQLite only: the PDF is laid out from the letter, never from the database."""
    return fresh_sqlite_copy(request)


def _markers(html: str) -> list[str]:
    return re.findall(r'id="fnref[^"]*">\[([^\]]*)\]</a></sup>', html)


def _values(html: str) -> list[str]:
    return re.findall(r'class="footnote-item" value="([^"]*)"', html)


SOURCE = (
    "The report[^2] and a note[^note], then[^1] an aside^[inline words] and[^3].\n\n"
    "[^1]: One.\n\n[^2]: Two.\n\n[^note]: Named.\n\n[^3]: Three.\n"
)


def test_named_notes_follow_the_authors_highest_number_in_reading_order() -> None:
    body = render_body("The report[^2] and a note[^note].\n\n[^2]: Two.\n\n[^note]: Named.\n", {})
    assert "The report[2] and a note[3]." in body.text
    assert body.text.endswith("----\n[2] Two.\n[3] Named.\n")
    assert _markers(body.html) == ["2", "3"]


def test_the_notes_are_listed_in_number_order_in_both_parts() -> None:
    body = render_body(SOURCE, {})
    assert "The report[2] and a note[4], then[1] an aside[5] and[3]." in body.text
    assert body.text.endswith(
        "----\n[1] One.\n[2] Two.\n[3] Three.\n[4] Named.\n[5] inline words\n"
    )
    assert _markers(body.html) == ["2", "4", "1", "5", "3"]
    assert _values(body.html) == ["1", "2", "3", "4", "5"]
    # Each note's link still leads to its own text.
    for number, text in (("2", "Two."), ("4", "Named."), ("1", "One.")):
        anchor = re.search(rf'href="#(fn\d+)" id="fnref[^"]*">\[{number}\]', body.html)
        assert anchor is not None
        item = re.search(rf'<li id="{anchor.group(1)}"[^>]*>(.*?)</li>', body.html, re.S)
        assert item is not None and text in item.group(1)


def test_a_number_written_twice_differently_is_not_shown_twice() -> None:
    body = render_body("A[^2] B[^02] C[^x].\n\n[^2]: two\n\n[^02]: again\n\n[^x]: ex\n", {})
    assert "A[2] B[3] C[4]." in body.text
    assert body.text.endswith("----\n[2] two\n[3] again\n[4] ex\n")


def test_the_pdf_numbers_like_the_email_and_lists_left_notes_in_order(app: Flask) -> None:
    body = render_body(
        "Text[^5] and[^n].\n\n[^5]: Five, see[^z] and[^3].\n\n[^n]: Named.\n\n"
        "[^z]: Zed note.\n\n[^3]: Three note.\n",
        {},
    )
    assert body.text.endswith(
        "----\n[3] Three note.\n[5] Five, see[7] and[3].\n[6] Named.\n[7] Zed note.\n"
    )
    letter = _letter("en", body.html, closing="Yours sincerely,", subject="Notes")
    document = pdf.letter_pdf(letter, organisation="AHRCA", letter_date=date(2026, 12, 7))
    text = " ".join(
        " ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(document)).pages
    ).replace("\u2060", "")
    assert "Text[5] and[6]." in text
    # Notes referred to only from a note are listed after the letter, in number order.
    three, zed = text.find("3. Three note."), text.find("7. Zed note.")
    assert -1 < three < zed, text
