"""The letter as a PDF (WeasyPrint): letterhead, date, address block, subject, body, footnotes.

WeasyPrint lays out real HTML and CSS and writes text that can be searched and copied.
It never fetches anything: the letter is built from our own template and the merged,
sanitised body, and any URL it meets (an image, a stylesheet) is refused, so opening or
printing a letter can neither leak where it is made nor pull in outside content.
"""

from __future__ import annotations

from datetime import date
from typing import Any, NoReturn

from flask import render_template

from campaign.letters.formatting import format_date
from campaign.letters.types import RenderedLetter


class PdfError(RuntimeError):
    """The PDF could not be made; the message says why in words for people."""


def _refuse_fetch(url: str, *_args: Any, **_kwargs: Any) -> NoReturn:
    raise PdfError(f"a letter PDF may not load outside resources ({url[:80]})")


def letter_html(letter: RenderedLetter, *, organisation: str, letter_date: date) -> str:
    """The HTML the PDF is laid out from (also handy to show what the PDF will hold)."""
    return render_template(
        "pdf/letter.html",
        letter=letter,
        organisation=organisation,
        date_text=format_date(letter_date, letter.language),
    )


def letter_pdf(letter: RenderedLetter, *, organisation: str, letter_date: date) -> bytes:
    """Lay the letter out as an A4 PDF with extractable text."""
    import weasyprint

    html = letter_html(letter, organisation=organisation, letter_date=letter_date)

    class _NoFetching(weasyprint.URLFetcher):
        def fetch(self, url: str, headers: Any = None) -> NoReturn:
            _refuse_fetch(url)

    try:
        document = weasyprint.HTML(string=html, url_fetcher=_NoFetching(), base_url=None)
        pdf: bytes = document.write_pdf()
    except PdfError:
        raise
    except Exception as error:  # WeasyPrint raises many kinds; the sender needs one message
        kind = type(error).__name__
        raise PdfError(f"the PDF of this letter could not be made ({kind})") from error
    return pdf
