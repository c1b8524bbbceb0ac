"""The closing never opens a PDF page alone (issue 14, item 8, review 2): when the closing
and the signatories (kept together) do not fit under the body, the last lines of the last
paragraph go over with them, so the page they start holds the end of the letter's text."""

from __future__ import annotations

import io
from datetime import date

import pytest
from flask import Flask
from pypdf import PdfReader

from campaign.demo.loader import sample_contact_rows
from campaign.demo.statements import load_joint_letter
from campaign.extensions import db
from campaign.letters import pdf
from campaign.services.contacts.contacts import create_contact
from campaign.services.statements import statements
from campaign.services.statements.complete_letters import compose_letter
from tests.letters.test_pdf import _letter


def _pages(document: bytes) -> list[str]:
    return [" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(document)).pages]


def _page_of(pages: list[str], text: str) -> int:
    found = [number for number, page in enumerate(pages) if text in page]
    assert found, text
    return found[0]


def test_the_french_joint_letter_keeps_its_last_paragraph_with_the_closing(app: Flask) -> None:
    statement = load_joint_letter()
    # The demo's sign-on adds three partners (one withheld): eight lines under the closing.
    for name, country in (
        ("Central Asian Bureau for Human Rights Monitoring (CABHRM)", "Kyrgyzstan"),
        ("Observatoire des libertés en Asie centrale (OLAC)", "France"),
        ("Committee for Prisoners of Conscience", "Turkmenistan"),
    ):
        statements.add_signatory(
            statement, {"kind": "organisation", "name": name, "country": country}
        )
    row = next(r for r in sample_contact_rows() if r["family_name"] == "Namunova")
    contact = create_contact({**row, "languages": "fr"})
    db.session.flush()
    composed = compose_letter(statement, contact, language="fr", with_pdf=True)
    assert composed.pdf is not None, composed.error
    pages = _pages(composed.pdf)
    closing = _page_of(pages, " ".join(composed.letter.closing.split()))
    assert _page_of(pages, "avant le sommet.") == closing  # the last paragraph's end
    assert _page_of(pages, "Madame l'Ambassadrice") == 0


SIGNERS = tuple(f"Human Rights Organisation number {n}, Country {n}" for n in range(1, 13))


# SQLite only: the letter is built in memory and laid out; no SQL runs (decision 0084).
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("in_body", [True, False])
def test_the_closing_starts_no_page_without_the_end_of_the_last_paragraph(
    app: Flask, in_body: bool
) -> None:
    """Bodies of growing length: wherever the page break falls, the closing's page holds
    the end of the last paragraph (and each time the sign-off stays whole)."""
    moved = 0
    for count in range(2, 12):
        paragraphs = "".join(
            f"<p>Paragraph {n}: we write to you about the trial of the defenders held since "
            f"the spring, and ask that observers attend every hearing of the case {n}.</p>"
            for n in range(1, count)
        )
        last = (
            "<p>We would welcome the opportunity to brief you or your team on these cases "
            "before the summit, at a time of your choosing, and remain at your disposal "
            "for any question. THE-END-OF-THE-TEXT</p>"
        )
        signatories = "".join(f"{line}<br>" for line in SIGNERS)
        body = (
            "<p>Dear Ambassador,</p>"
            + paragraphs
            + last
            + "<p>Yours sincerely,</p>"
            + (f"<p>{signatories}</p>" if in_body else "")
        )
        letter = _letter(
            "en",
            body,
            closing="Yours sincerely,",
            signatory_lines=SIGNERS,
            signatories_in_body=in_body,
            subject="The trial of the defenders",
        )
        pages = _pages(pdf.letter_pdf(letter, organisation="AHRCA", letter_date=date(2026, 12, 7)))
        closing = _page_of(pages, "Yours sincerely,")
        assert _page_of(pages, "Country 12") == closing  # the sign-off is whole
        if closing > 0:
            moved += 1
            assert "THE-END-OF-THE-TEXT" in pages[closing], (count, pages)
    assert moved  # some lengths did push the sign-off to a second page
