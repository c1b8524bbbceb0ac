"""The pre-send check page: every recipient's problems, counted, each linked to its preview."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from campaign.extensions import db
from campaign.models import Role
from campaign.services.contacts import lists, segments
from campaign.services.contacts.contacts import create_contact
from campaign.services.statements import statements

BODY = {
    "en": "{{ salutation }}\n\nWe write about the trial.\n\n{{ closing }}\n\nAnna Sample\n",
    "ru": "{{ salutation }}\n\nМы пишем Вам о процессе.\n\n{{ closing }}\n\nАнна Образцова\n",
}


@pytest.fixture
def letter(app: Flask) -> dict[str, Any]:
    statement = statements.create_statement(
        "Joint letter", language="en", subject="Ahead of the summit", body=BODY["en"]
    )
    statements.set_text(statement, language="ru", subject="Перед саммитом", body=BODY["ru"])
    people = {
        # Russian only, and the statement has Russian: a UN mandate written to in Russian.
        "rapporteur": create_contact(
            {
                "given_name": "Amara",
                "family_name": "Sample",
                "role_type": "un_sr",
                "grammatical_gender": "f",
                "languages": "ru",
                "email": "sr@example.org",
            }
        ),
        # French only, and the statement has no French: the letter falls back to English.
        "minister": create_contact(
            {
                "given_name": "Claire",
                "family_name": "Exemple",
                "role_type": "minister",
                "grammatical_gender": "f",
                "languages": "fr",
                "email": "claire@example.org",
            }
        ),
        # Nothing wrong.
        "ambassador": create_contact(
            {
                "given_name": "Berdi",
                "family_name": "Misalov",
                "role_type": "ambassador",
                "grammatical_gender": "m",
                "languages": "ru",
                "email": "mission@example.org",
            }
        ),
        "broken": create_contact(
            {
                "given_name": "Eve",
                "family_name": "Injected",
                "role_type": "journalist",
                "grammatical_gender": "f",
                "languages": "en",
                "email": "eve@example.org",
            }
        ),
    }
    audience = lists.create_list("Summit")
    lists.add_contacts(audience, [c.id for c in people.values()])
    db.session.commit()
    # The service refuses a line break in a name; an older import or a direct edit may not.
    people["broken"].family_name = "Injected\r\nBcc: everyone@example.org"
    # The Russian readers' names in Cyrillic, their datives confirmed, the ambassador's
    # office country known: the protocol checks find nothing to say about them.
    for who, given, family, dative in (
        ("rapporteur", "Амара", "Сампл", "Амаре Сампл"),
        ("ambassador", "Берди", "Мисалов", "Берди Мисалову"),
    ):
        person = people[who]
        person.given_name_ru, person.family_name_ru = given, family
        person.name_dative, person.dative_confirmed = dative, True
    people["ambassador"].location_country = "FR"
    db.session.commit()
    return {"statement": statement, "people": people, "list": audience}


def _check(client: FlaskClient, letter: dict[str, Any], query: str = "") -> str:
    url = f"/statements/{letter['statement'].id}/check/"
    response = client.get(url + (f"?{query}" if query else f"?audience=list:{letter['list'].id}"))
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def _value(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">(.*?)</', page, re.S)
    assert found, f"no #{element_id} on the page"
    return html.unescape(found.group(1)).strip()


def _rows(page: str) -> dict[str, str]:
    """Each problem row's visible text by its problem code (the row's data-code)."""
    body = re.search(r'<table class="problems" id="check-problems">(.*?)</table>', page, re.S)
    assert body, "no problems table"
    rows = re.findall(r'<tr[^>]*data-code="([^"]*)"[^>]*>(.*?)</tr>', body.group(1), re.S)
    return {
        code: html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row))).strip()
        for code, row in rows
    }


def test_the_check_lists_each_contacts_problems_and_counts_them(
    client: FlaskClient, login: Any, letter: dict[str, Any]
) -> None:
    login(Role.EDITOR)
    page = _check(client, letter)
    assert _value(page, "check-checked") == "4"
    assert _value(page, "check-errors") == "1"
    assert _value(page, "check-blocked") == "1"
    assert _value(page, "check-warnings") == "2"
    # Rapporteur and ambassador in Russian; the minister (fallback) and Eve in English.
    assert _value(page, "check-languages") == "English: 2, Russian: 2"

    by_code = _rows(page)
    assert set(by_code) == {"un_language", "language_fallback", "header_injection"}
    # The problem is named in words; its code is only the row's data-code.
    assert "Not a UN working language" in by_code["un_language"]
    assert "Not in the contact's language" in by_code["language_fallback"]
    assert not any(code in row for code, row in by_code.items())
    assert "sr@example.org" in by_code["un_language"] and "Warning" in by_code["un_language"]
    assert "claire@example.org" in by_code["language_fallback"]
    assert "Warning" in by_code["language_fallback"]
    assert "eve@example.org" in by_code["header_injection"]
    assert "Error" in by_code["header_injection"]
    assert "mission@example.org" not in page  # a letter with no problem is not listed
    assert "Errors stop a letter from being queued" in page
    assert "1 recipient would get no letter" in page
    # The injected header is shown as text, never as markup or a header of the page.
    assert "Bcc: everyone@example.org" not in page.split("<table", 1)[0]


def test_each_row_links_to_that_contacts_preview(
    client: FlaskClient, login: Any, letter: dict[str, Any]
) -> None:
    login(Role.EDITOR)
    page = _check(client, letter)
    statement_id = letter["statement"].id
    list_key = f"list:{letter['list'].id}"
    links = [
        urlsplit(html.unescape(href)) for href in re.findall(r'href="([^"]*/preview/[^"]*)"', page)
    ]
    assert all(link.path == f"/statements/{statement_id}/preview/" for link in links)
    targets = sorted(parse_qsl(link.query) for link in links)
    expected = sorted(
        sorted([("audience", list_key), ("contact", str(letter["people"][who].id))])
        for who in ("rapporteur", "minister", "broken")
    )
    assert [sorted(t) for t in targets] == expected, links
    preview = client.get(
        f"/statements/{statement_id}/preview/?audience={list_key}"
        f"&contact={letter['people']['minister'].id}"
    )
    assert preview.status_code == 200
    shown = preview.get_data(as_text=True)
    assert '<strong id="preview-language" data-language="en">English</strong>' in shown


def test_a_forced_language_and_a_segment(
    client: FlaskClient, login: Any, letter: dict[str, Any]
) -> None:
    segment = segments.save_segment(
        "Russian readers", {"all": [{"field": "language", "op": "is", "value": "ru"}]}
    )
    db.session.commit()
    login(Role.EDITOR)
    page = _check(client, letter, f"audience=segment:{segment.id}&lang=en")
    # Forced into English, the rapporteur's letter has no UN-language warning any more.
    assert _value(page, "check-checked") == "2"
    assert _value(page, "check-warnings") == "0"
    assert _value(page, "check-errors") == "0"
    assert _value(page, "check-languages") == "English: 2"
    assert "No problems found" in page

    page = _check(client, letter, f"audience=list:{letter['list'].id}&lang=fr")
    assert "the statement has no text in" in page
    assert 'id="check-summary"' not in page


def test_the_page_without_an_audience_only_offers_the_choice(
    client: FlaskClient, login: Any, letter: dict[str, Any]
) -> None:
    login(Role.EDITOR)
    response = client.get(f"/statements/{letter['statement'].id}/check/")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f'<option value="list:{letter["list"].id}"' in page
    assert 'id="check-summary"' not in page
    show = client.get(f"/statements/{letter['statement'].id}").get_data(as_text=True)
    assert f'href="/statements/{letter["statement"].id}/check/"' in show


def test_unknown_audience_and_statement_are_not_found(
    client: FlaskClient, login: Any, letter: dict[str, Any]
) -> None:
    login(Role.EDITOR)
    statement_id = letter["statement"].id
    assert client.get(f"/statements/{statement_id}/check/?audience=list:9999").status_code == 404
    assert client.get(f"/statements/{statement_id}/check/?audience=bogus").status_code == 404
    assert client.get("/statements/9999/check/").status_code == 404


def test_viewers_may_not_run_the_check(
    client: FlaskClient, login: Any, letter: dict[str, Any]
) -> None:
    login(Role.VIEWER)
    url = f"/statements/{letter['statement'].id}/check/?audience=list:{letter['list'].id}"
    assert client.get(url).status_code == 403
