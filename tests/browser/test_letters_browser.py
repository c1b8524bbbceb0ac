"""Letters through Chromium: write a statement with a footnote, preview it for three readers
in three languages, download its PDF, and read the pre-send check."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from campaign.extensions import db
from campaign.models import Role
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from tests.browser.conftest import LiveServer

# Generous for the first PDF: WeasyPrint loads its fonts then.
PDF_TIMEOUT_MS = 30_000

PEOPLE = {
    "en": {
        "given_name": "Amara",
        "family_name": "Sample",
        "role_type": "un_sr",
        "grammatical_gender": "f",
        "organisation": "OHCHR",
        "languages": "en",
        "email": "sr@example.org",
    },
    "fr": {
        "given_name": "Claire",
        "family_name": "Exemple",
        "role_type": "minister",
        "grammatical_gender": "f",
        "organisation": "Ministère de l'Europe et des Affaires étrangères",
        "country": "FR",
        "languages": "fr",
        "email": "claire@example.org",
    },
    "ru": {
        "given_name": "Berdi",
        "family_name": "Misalov",
        "role_type": "ambassador",
        "grammatical_gender": "m",
        "style": "none",
        "organisation": "Embassy of Uzbekistan",
        "languages": "ru",
        "email": "mission@example.org",
    },
}

TEXTS = {
    "en": {
        "subject": "Release the defenders ahead of the summit",
        "paragraph": "We write about the trial of three human rights defenders.[^1]",
        "footnote": "Criminal Code of the Republic of Uzbekistan, article 159.",
    },
    "fr": {
        "subject": "Libérez les défenseurs avant le sommet",
        "paragraph": "Nous vous écrivons au sujet du procès de trois défenseurs.[^1]",
        "footnote": "Code pénal de la République d'Ouzbékistan, article 159.",
    },
    "ru": {
        "subject": "Освободите правозащитников до саммита",
        "paragraph": "Мы пишем Вам о процессе над тремя правозащитниками.[^1]",
        "footnote": "Уголовный кодекс Республики Узбекистан, статья 159.",
    },
}

SALUTATIONS = {
    "en": "Dear Special Rapporteur,",
    "fr": "Madame la Ministre,",
    "ru": "Уважаемый господин Посол!",
}


def _body(language: str) -> str:
    text = TEXTS[language]
    return (
        "{{ salutation }}\n\n"
        f"{text['paragraph']}\n\n"
        f"[^1]: {text['footnote']}\n\n"
        "{{ closing }}\n\n"
        "Anna Sample\n"
    )


@pytest.fixture
def audience(live_server: LiveServer) -> dict[str, int]:
    """The three readers and a list holding them, in the live server's database."""
    with live_server.app.app_context():
        people = {language: create_contact(data) for language, data in PEOPLE.items()}
        # The Russian reader's name and embassy in Russian, the dative confirmed and the
        # office's country known: the pre-send check has no protocol warning for them.
        ambassador = people["ru"]
        ambassador.given_name_ru, ambassador.family_name_ru = "Берди", "Мисалов"
        ambassador.organisation_ru = "Посольство Узбекистана"
        ambassador.name_dative, ambassador.dative_confirmed = "Берди Мисалову", True
        ambassador.location_country = "FR"
        summit = lists.create_list("Summit readers")
        lists.add_contacts(summit, [person.id for person in people.values()])
        db.session.commit()
        ids = {language: person.id for language, person in people.items()}
        ids["list"] = summit.id
        db.session.remove()
    return ids


LETTER_DRAWN = re.compile("No problems found in this letter|The letter is up to date")


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _write_statement(page: Page) -> None:
    page.get_by_role("link", name="Statements").first.click()
    page.get_by_role("link", name="New statement").click()
    page.get_by_label("Title").fill("Summit letter")
    page.get_by_label("First language").fill("en")
    page.get_by_label("Subject line").fill(TEXTS["en"]["subject"])
    page.get_by_label("Body (Markdown)").fill(_body("en"))
    page.get_by_role("button", name="Create statement").click()
    expect(page.get_by_text("Statement “Summit letter” created as a draft.")).to_be_visible()

    for language, name in (("fr", "French"), ("ru", "Russian")):
        # The live letter above the form appears once drawn and pushes the form down: a
        # click before then can land beside "Add a language" (CI run of stop 27).
        expect(page.locator("#live-text .live-status")).to_have_text(LETTER_DRAWN)
        page.locator("#add-language summary").click()
        expect(page.locator("#add-language")).to_have_attribute("open", "")
        form = page.locator("#add-language")
        form.get_by_label("Language (BCP 47").fill(language)
        form.get_by_label("Subject", exact=True).fill(TEXTS[language]["subject"])
        form.get_by_label("Body (Markdown)").fill(_body(language))
        form.get_by_role("button", name="Add language").click()
        expect(page.get_by_text(f"The text in {name} is added.")).to_be_visible()
    # The tabs name each language; the tag is the link's data-language.
    expect(page.get_by_role("navigation", name="Languages")).to_contain_text("English")
    for language, name in (("fr", "French"), ("ru", "Russian")):
        tab = page.get_by_role("link", name=name, exact=True)
        expect(tab).to_have_attribute("data-language", language)


def _pdf_text(page: Page, tmp_path: Path, language: str) -> str:
    from pypdf import PdfReader

    with page.expect_download(timeout=PDF_TIMEOUT_MS) as download_info:
        page.locator("#preview-pdf").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".pdf")
    target = tmp_path / f"letter-{language}.pdf"
    download.save_as(target)
    data = target.read_bytes()
    assert data.startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(data))
    return _flat(" ".join(p.extract_text() or "" for p in reader.pages))


def test_a_statement_previewed_for_three_readers_with_its_pdf_and_check(
    signed_in_page: Callable[..., Page], audience: dict[str, int], tmp_path: Path
) -> None:
    page = signed_in_page(Role.EDITOR)
    _write_statement(page)

    page.get_by_role("link", name="Preview letters").click()
    expect(page.get_by_role("heading", name="Preview")).to_be_visible()
    for language, salutation in SALUTATIONS.items():
        page.locator("#preview-audience").select_option(f"list:{audience['list']}")
        # The recipient list follows the audience without the Show button.
        page.locator(f'#preview-recipients a[data-contact-id="{audience[language]}"]').click()
        expect(page.locator("#preview-language")).to_have_attribute("data-language", language)
        text = page.locator("#preview-text")
        expect(text).to_contain_text(salutation)
        expect(text).to_contain_text(TEXTS[language]["footnote"])
        expect(page.locator("#preview-headers")).to_contain_text(PEOPLE[language]["email"])
        expect(page.locator("#preview-headers")).to_contain_text(TEXTS[language]["subject"])
        expect(page.locator("iframe.preview-html")).to_be_visible()
        assert page.get_by_role("alert").count() == 0, page.get_by_role("alert").all_inner_texts()

        pdf_text = _pdf_text(page, tmp_path, language)
        assert salutation in pdf_text, pdf_text[:500]
        assert "article 159" in pdf_text.lower() or "статья 159" in pdf_text, pdf_text

    # The HTML part of the last letter, in its sandboxed frame.
    frame = page.frame_locator("iframe.preview-html")
    expect(frame.get_by_text(SALUTATIONS["ru"])).to_be_visible()

    page.get_by_role("link", name="Summit letter").click()
    page.get_by_role("link", name="Check before sending").click()
    expect(page.get_by_role("heading", name="Pre-send check")).to_be_visible()
    page.locator("#check-audience").select_option(f"list:{audience['list']}")
    page.get_by_role("button", name="Check").click()
    expect(page.locator("#check-checked")).to_have_text("3")
    expect(page.locator("#check-errors")).to_have_text("0")
    expect(page.locator("#check-warnings")).to_have_text("0")
    expect(page.locator("#check-languages")).to_have_text("English: 1, French: 1, Russian: 1")
    expect(page.get_by_text("No problems found")).to_be_visible()
    expect(page.get_by_text("Errors stop a letter from being queued")).to_be_visible()


def test_the_check_sends_an_editor_from_a_problem_to_its_preview(
    signed_in_page: Callable[..., Page], audience: dict[str, int], live_server: LiveServer
) -> None:
    """A French reader of an English-only statement: the check warns, its link shows the letter."""
    page = signed_in_page(Role.EDITOR)
    page.goto("/statements/new")
    page.get_by_label("Title").fill("English only")
    page.get_by_label("First language").fill("en")
    page.get_by_label("Subject line").fill(TEXTS["en"]["subject"])
    page.get_by_label("Body (Markdown)").fill(_body("en"))
    page.get_by_role("button", name="Create statement").click()
    page.get_by_role("link", name="Check before sending").click()
    page.locator("#check-audience").select_option(f"list:{audience['list']}")
    page.get_by_role("button", name="Check").click()
    expect(page.locator("#check-checked")).to_have_text("3")
    expect(page.locator("#check-warnings")).to_have_text("2")  # fr and ru fall back to en
    row = page.locator("#check-problems tbody tr").filter(has_text="claire@example.org")
    expect(row).to_have_attribute("data-code", "language_fallback")
    expect(row).to_contain_text("Not in the contact's language")
    row.get_by_role("link", name="Preview").click()
    expect(page.get_by_role("heading", name="Preview")).to_be_visible()
    current = page.locator("#preview-recipients a[aria-current]")
    expect(current).to_have_attribute("data-contact-id", str(audience["fr"]))
    expect(page.locator("#preview-language")).to_have_text("English")
    expect(page.locator("#preview-text")).to_contain_text("Dear Minister,")
