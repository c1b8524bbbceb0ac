"""The PDF of a letter: laid out, text extractable, nothing fetched from outside."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from flask import Flask
from pypdf import PdfReader

from campaign.letters import pdf
from campaign.letters.types import RenderedLetter


def _letter(
    language: str = "ru",
    html_body: str = "",
    *,
    signatory_lines: tuple[str, ...] = (),
    signatories_in_body: bool = False,
    closing: str = "С глубоким уважением,",
    subject: str = "О судебном процессе",
) -> RenderedLetter:
    return RenderedLetter(
        statement_id=1,
        statement_version=1,
        contact_id=1,
        language=language,
        to_name="Дилноза Намунова",
        to_address="amb.uz@example.org",
        cc_addresses=(),
        subject=subject,
        html_body=html_body
        or (
            "<p>Уважаемая госпожа Посол!</p><p>Мы пишем Вам о процессе.<sup>1</sup></p>"
            '<section class="footnotes"><ol><li>Статья 159 Уголовного кодекса.</li></ol>'
            "</section>"
        ),
        text_body="",
        salutation="Уважаемая госпожа Посол!",
        closing=closing,
        address_block=("Её Превосходительству", "Дилнозе Намуновой", "Посольство Узбекистана"),
        signatory_lines=signatory_lines,
        signatories_in_body=signatories_in_body,
    )


def _text(document: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(document)).pages)


def _pages(document: bytes) -> list[str]:
    return [" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(document)).pages]


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


# --- Fit to file (issue 14): signatures together, real footnotes, tags, letterhead ---------

SIGNERS = tuple(
    f"{name}, {role}, {country}"
    for name, role, country in [
        ("Amnesty Support Network", "coalition of independent lawyers", "Austria"),
        ("Centre for Civil Liberties", "human rights organisation", "Ukraine"),
        ("Helsinki Foundation for Human Rights", "watchdog", "Poland"),
        ("Legal Prosperity Foundation", "legal aid", "Kyrgyzstan"),
        ("Turkmen Initiative for Human Rights", "in exile", "Austria"),
        ("Norwegian Helsinki Committee", "international organisation", "Norway"),
        ("Association for Human Rights in Central Asia", "based in exile", "France"),
        ("International Partnership for Human Rights", "advocacy", "Belgium"),
        ("Freedom Now", "legal advocacy for prisoners of conscience", "United States"),
        ("Crude Accountability", "environmental and human rights", "United States"),
        ("Human Rights Watch", "international organisation", "Switzerland"),
        ("Article 19", "freedom of expression", "United Kingdom"),
    ]
)
PARAGRAPH = (
    "We write to you about the continued detention of human rights defenders, journalists "
    "and lawyers, and about the conditions in which they are held, which fall short of the "
    "international standards the government has undertaken to respect."
)


def _long_letter(paragraphs: int, *, in_body: bool, footnote_at: int = -1) -> RenderedLetter:
    from campaign.letters.markdown import markdown_to_html

    blocks = ["Dear Ambassador,"]
    for index in range(paragraphs):
        marker = "[^1]" if index == footnote_at else ""
        blocks.append(f"Point {index + 1}. {PARAGRAPH}{marker}")
    blocks.append("Yours sincerely,")
    if in_body:
        blocks.append("\\\n".join(SIGNERS))
    if footnote_at >= 0:
        blocks.append(
            "[^1]: Article 9 of the International Covenant on Civil and Political Rights."
        )
    source = "\n\n".join(blocks)
    return _letter(
        "en",
        markdown_to_html(source),
        signatory_lines=SIGNERS,
        signatories_in_body=in_body,
        closing="Yours sincerely,",
        subject="Joint letter on the detention of defenders",
    )


def _pages_holding(pages: list[str], text: str) -> list[int]:
    return [number for number, page in enumerate(pages, 1) if text in page]


@pytest.mark.parametrize("in_body", [True, False], ids=["body-prints-them", "layout-adds-them"])
def test_the_signatories_stand_together_with_the_closing(context: Flask, in_body: bool) -> None:
    # Paragraph counts chosen so that the block would start near the foot of page one.
    for paragraphs in (13, 14, 15, 16):
        document = pdf.letter_pdf(
            _long_letter(paragraphs, in_body=in_body),
            organisation="AHRCA",
            letter_date=date(2026, 12, 10),
        )
        pages = _pages(document)
        assert len(pages) >= 2
        holding = {_pages_holding(pages, signer.split(",")[0])[0] for signer in SIGNERS}
        assert len(holding) == 1, (paragraphs, holding)
        assert _pages_holding(pages, "Yours sincerely,") == [holding.pop()]


def test_signatories_are_left_aligned_and_never_hyphenated(context: Flask) -> None:
    signers = tuple(
        f"{s} Internationalisation Counterrevolutionaries Telecommunications" for s in SIGNERS
    )
    body = "<p>Dear Ambassador,</p><p>Text.</p><p>Yours sincerely,</p>"
    body += "<p>" + "<br>\n".join(signers) + "</p>"
    letter = _letter(
        "en", body, signatory_lines=signers, signatories_in_body=True, closing="Yours sincerely,"
    )
    text = _text(pdf.letter_pdf(letter, organisation="Org", letter_date=date(2026, 12, 10)))
    assert "\u2010" not in text and "\u00ad" not in text
    assert "Aus-" not in text and "Inter-" not in text
    html = pdf.letter_html(letter, organisation="Org", letter_date=date(2026, 12, 10))
    assert html.count('class="signatory"') == len(signers)


def test_a_footnote_is_printed_on_the_page_of_its_reference(context: Flask) -> None:
    letter = _long_letter(16, in_body=True, footnote_at=2)
    document = pdf.letter_pdf(letter, organisation="Org", letter_date=date(2026, 12, 10))
    pages = _pages(document)
    assert len(pages) >= 2
    note = "Article 9 of the International Covenant"
    assert _pages_holding(pages, note) == [1]
    assert "↩" not in "".join(pages)
    # The marker stays on its word, numbered as the source numbers it.
    assert "[1]" in pages[0]


def test_back_links_are_never_printed(context: Flask) -> None:
    body = (
        '<p>Text<sup class="footnote-ref"><a href="#fn1" id="fnref1">[1]</a></sup> here.</p>'
        '<hr class="footnotes-sep"><section class="footnotes"><ol class="footnotes-list">'
        '<li id="fn1" class="footnote-item"><p>The note. '
        '<a href="#fnref1" class="footnote-backref">↩︎</a></p></li></ol></section>'
    )
    text = _text(pdf.letter_pdf(_letter("en", body), organisation="O", letter_date=date.today()))
    assert "The note." in text
    assert "↩" not in text


def test_a_note_referred_to_only_from_another_note_is_kept(context: Flask) -> None:
    from campaign.letters.markdown import markdown_to_html

    source = "Text[^1] here.\n\n[^1]: First[^2] note.\n\n[^2]: Second note.\n"
    letter = _letter("en", markdown_to_html(source))
    text = _text(pdf.letter_pdf(letter, organisation="O", letter_date=date(2026, 1, 5)))
    assert "First" in text and "Second note." in text


def test_two_hundred_footnotes_are_laid_out(context: Flask) -> None:
    from campaign.letters.markdown import markdown_to_html

    refs = " ".join(f"Claim {n}[^{n}]." for n in range(1, 201))
    notes = "\n\n".join(f"[^{n}]: Source number {n}." for n in range(1, 201))
    letter = _letter("en", markdown_to_html(f"{refs}\n\n{notes}\n"))
    text = _text(pdf.letter_pdf(letter, organisation="O", letter_date=date(2026, 1, 5)))
    assert "Source number 1." in text and "Source number 200." in text


def test_the_pdf_is_tagged_with_language_title_and_author(context: Flask) -> None:
    document = pdf.letter_pdf(_letter(), organisation="AHRCA", letter_date=date(2026, 12, 10))
    reader = PdfReader(io.BytesIO(document))
    root = reader.trailer["/Root"]
    assert root["/Lang"] == "ru"
    assert bool(root["/MarkInfo"]["/Marked"])
    assert "/StructTreeRoot" in root
    assert reader.metadata is not None
    assert reader.metadata.title == "О судебном процессе"
    assert reader.metadata.author == "AHRCA"


def _png(width: int = 120, height: int = 40) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (11, 92, 173)).save(out, "PNG")
    return out.getvalue()


def test_the_letterhead_shows_address_contacts_and_logo(context: Flask) -> None:
    head = pdf.Letterhead(
        name="Association for Human Rights in Central Asia",
        address_lines=("12 rue des Droits", "75011 Paris", "France"),
        phone="+33 1 23 45 67 89",
        email="office@ahrca.example",
        website="ahrca.example/en",
        logo=_png(),
        logo_type="image/png",
    )
    document = pdf.letter_pdf(
        _letter("fr", "<p>Texte.</p>", subject="Lettre conjointe"),
        organisation="AHRCA",
        letter_date=date(2026, 12, 10),
        letterhead=head,
    )
    first = PdfReader(io.BytesIO(document)).pages[0]
    text = " ".join(first.extract_text().split())
    for expected in (
        "75011 Paris",
        "+33 1 23 45 67 89",
        "office@ahrca.example",
        "ahrca.example/en",
    ):
        assert expected in text
    assert "Tél." in text  # the label is in the letter's language
    assert len(first.images) == 1


# --- The file name: the letter's language, its title and date -------------------------------


@pytest.mark.parametrize(
    ("language", "subject", "expected"),
    [
        ("fr", "Lettre conjointe", "Lettre conjointe – 2026-12-10.pdf"),
        ("ru", "Совместное письмо", "Совместное письмо – 2026-12-10.pdf"),
        (
            "en",
            'Re: A/HRC/55: "urgent" <appeal>? *|\\ x\x07y',
            "A-HRC-55 – urgent appeal – x y – 2026-12-10.pdf",
        ),
        ("fr", "   ", "Lettre – 2026-12-10.pdf"),
    ],
)
def test_the_file_name_is_the_letters_title_and_date(
    context: Flask, language: str, subject: str, expected: str
) -> None:
    from campaign.services.statements.complete_letters import pdf_filename

    letter = _letter(language, "<p>x</p>", subject=subject)
    assert pdf_filename(letter, date(2026, 12, 10)) == expected


def test_recipients_in_two_languages_get_their_own_file_names(app: Flask) -> None:
    import email
    from email.message import Message

    from campaign.extensions import db
    from campaign.services.contacts.contacts import create_contact
    from campaign.services.statements import statements
    from campaign.services.statements.complete_letters import compose_letter

    statement = statements.create_statement(
        "Joint letter", language="en", subject="Joint letter", body="Text.\n"
    )
    statements.set_text(statement, language="fr", subject="Lettre conjointe", body="Texte.\n")
    statements.set_text(statement, language="ru", subject="Совместное письмо", body="Текст.\n")
    statement.is_pdf_attached = True
    statements.record_version(statement, "PDF")
    names = []
    for language, given in (("fr", "Anne"), ("ru", "Анна")):
        contact = create_contact(
            {
                "given_name": given,
                "family_name": "Lee",
                "email": f"{language}@example.org",
                "languages": language,
            }
        )
        db.session.commit()
        composed = compose_letter(statement, contact, today=date(2026, 12, 10))
        assert composed.message is not None, composed.error
        parsed = email.message_from_bytes(composed.message)
        pdfs = [p for p in parsed.walk() if isinstance(p, Message) and p.get_filename()]
        assert len(pdfs) == 1
        # RFC 2231: the raw header carries filename*=utf-8''…, in sections when long.
        assert re.search(r"filename\*(0\*)?=utf-8''", pdfs[0]["Content-Disposition"])
        names.append(pdfs[0].get_filename())
    assert names == ["Lettre conjointe – 2026-12-10.pdf", "Совместное письмо – 2026-12-10.pdf"]
