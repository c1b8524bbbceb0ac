"""The PDF of a letter: laid out, text extractable, nothing fetched from outside."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from flask import Flask
from pypdf import PdfReader

from campaign.letters import pdf
from campaign.letters.types import RenderedLetter


def _letter(language: str = "ru", html_body: str = "") -> RenderedLetter:
    return RenderedLetter(
        statement_id=1,
        statement_version=1,
        contact_id=1,
        language=language,
        to_name="Дилноза Намунова",
        to_address="amb.uz@example.org",
        cc_addresses=(),
        subject="О судебном процессе",
        html_body=html_body
        or (
            "<p>Уважаемая госпожа Посол!</p><p>Мы пишем Вам о процессе.<sup>1</sup></p>"
            '<section class="footnotes"><ol><li>Статья 159 Уголовного кодекса.</li></ol>'
            "</section>"
        ),
        text_body="",
        salutation="Уважаемая госпожа Посол!",
        closing="С глубоким уважением,",
        address_block=("Её Превосходительству", "Дилнозе Намуновой", "Посольство Узбекистана"),
        signatory_lines=(),
    )


def _text(document: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(document)).pages)


@pytest.fixture
def context(tmp_path: Path) -> Iterator[Flask]:
    """An app context for the templates; the PDF needs no database."""
    from campaign import create_app

    application = create_app(
        {"TESTING": True, "SECRET_KEY": "test-" * 8, "INSTANCE_PATH": str(tmp_path)}
    )
    with application.app_context():
        yield application


def test_the_pdf_holds_the_letter_as_searchable_text(context: Flask) -> None:
    document = pdf.letter_pdf(_letter(), organisation="AHRCA", letter_date=date(2026, 12, 10))
    assert document.startswith(b"%PDF-")
    text = _text(document)
    for expected in (
        "AHRCA",
        "10 декабря 2026",
        "Посольство Узбекистана",
        "О судебном процессе",
        "Уважаемая госпожа Посол!",
        "Статья 159 Уголовного кодекса.",
    ):
        assert expected in text


def test_the_pdf_never_fetches_outside_resources(
    context: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    def recording_refusal(url: str, *args: object, **kwargs: object) -> None:
        asked.append(url)
        raise pdf.PdfError("refused")

    monkeypatch.setattr(pdf, "_refuse_fetch", recording_refusal)
    body = '<p>Text</p><img src="http://127.0.0.1:9/pixel.png" alt="">'
    document = pdf.letter_pdf(
        _letter("en", body), organisation="Org", letter_date=date(2026, 6, 26)
    )
    assert asked == ["http://127.0.0.1:9/pixel.png"]
    assert "Text" in _text(document)
