"""Countries by their names, never their codes: the contacts table and its filter, cases,
calendar events and segments in the interface language, signers' countries on the public
sign-on page in the reader's language, the audit log's details as written."""

from __future__ import annotations

import re
from datetime import date
from html import unescape
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from campaign.extensions import db
from campaign.models import (
    CalendarEvent,
    Campaign,
    Role,
    Segment,
    Signature,
    SignatureStatus,
)
from campaign.services.schedules import cases
from campaign.services.sign_on.pages import open_sign_on
from campaign.services.sign_on.signatures import submit_signature
from campaign.services.statements import statements
from campaign.services.statements.country_names import save_country_name
from tests.conftest import sign_in
from tests.factories import ContactFactory
from tests.i18n.pages import user_in

NEXT_YEAR = date.today().year + 1
# A minister's fields; each test names the family name and the country it reads.
AZIZ = {"given_name": "Aziz", "organisation": "Ministry of Foreign Affairs"}


def _page(client: FlaskClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return unescape(response.get_data(as_text=True))


def _text_nodes(html: str) -> set[str]:
    """What a reader sees between tags (attributes such as title= left out)."""
    html = re.sub(r"<(script|style|datalist)\b.*?</\1>", " ", html, flags=re.DOTALL)
    return {" ".join(node.split()) for node in re.findall(r">([^<]+)<", html) if node.strip()}


def _table_rows(html: str) -> list[str]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr>(.*?)</tr>", body, flags=re.DOTALL)


def test_a_russian_user_reads_and_filters_the_contacts_table_by_country_name(
    app: Flask, client: FlaskClient
) -> None:
    ContactFactory(**AZIZ, family_name="Berdiyev", country="TM", commit=True)
    ContactFactory(**AZIZ, family_name="Karimov", country="UZ", commit=True)
    sign_in(client, user_in(Role.VIEWER, "ru"))

    page = _page(client, "/contacts/")
    [berdiyev] = [row for row in _table_rows(page) if "Berdiyev" in row]
    assert '<td title="TM">Туркменистан</td>' in berdiyev
    assert "TM" not in _text_nodes(page) and "Turkmenistan" not in page
    # The filter offers every country by its Russian name, its value the code.
    assert re.search(r'<option value="TM"\s*>Туркменистан</option>', page)
    assert re.search(r'<option value="UZ"\s*>Узбекистан</option>', page)

    filtered = _page(client, "/contacts/?country=TM")
    assert "Berdiyev" in filtered and "Karimov" not in filtered
    assert re.search(r'<option value="TM"\s*selected>Туркменистан</option>', filtered)
    # A name typed into the address finds the country too, in any language.
    by_name = _page(client, "/contacts/?country=Туркменистан")
    assert "Berdiyev" in by_name and "Karimov" not in by_name


def test_a_case_page_names_its_country_in_the_interface_language(
    app: Flask, client: FlaskClient
) -> None:
    case = cases.create_case("Azamjon Formonov", country="UZ", status="sentenced")
    db.session.commit()
    sign_in(client, user_in(Role.EDITOR, "ru"))

    shown = _page(client, f"/cases/{case.id}")
    found = re.search(r'<dd id="case-country">(.*?)</dd>', shown, re.S)
    assert found and found.group(1).startswith("Узбекистан ")
    assert "Uzbekistan" not in shown
    listing = _page(client, "/cases/?country=UZ")
    assert "Azamjon Formonov" in listing and ">Узбекистан<" in listing

    # The form offers the countries by name; its value is the code.
    form = _page(client, f"/cases/{case.id}/edit")
    assert '<option value="UZ" label="Узбекистан">' in form
    assert 'list="country-names"' in form
    # A name typed without choosing from the list is taken as its code.
    response = client.post(
        f"/cases/{case.id}/edit",
        data={"name": "Azamjon Formonov", "country": "Казахстан", "status": "sentenced"},
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    db.session.refresh(case)
    assert case.country == "KZ"


def test_an_event_takes_its_countries_by_name_and_shows_them_by_name(
    app: Flask, client: FlaskClient
) -> None:
    sign_in(client, user_in(Role.EDITOR, "ru"))
    form = {
        "name": "Саммит ЕС — Центральная Азия",
        "kind": "summit",
        "starts_on": f"{NEXT_YEAR}-04-03",
        "place": "Самарканд",
        "reminder_days": "",
        "notes": "",
    }
    # One box per country: a code from the datalist, a name typed without choosing, empty.
    data = MultiDict([*form.items(), ("countries", "UZ"), ("countries", "Kazakhstan")])
    data.add("countries", "")
    response = client.post("/calendar/events", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    event = db.session.scalar(select(CalendarEvent))
    assert event is not None and event.countries == ["UZ", "KZ"]

    listing = _page(client, f"/calendar/?month={NEXT_YEAR}-04&view=list")
    assert "(Узбекистан, Казахстан)" in listing
    page = _page(client, f"/calendar/events/{event.id}")
    assert "(Узбекистан, Казахстан)" in page
    assert page.count('list="country-names"') == 3  # the two countries and an empty box


def test_a_segment_takes_a_country_by_name_and_describes_it_by_name(
    app: Flask, client: FlaskClient
) -> None:
    ContactFactory(**AZIZ, family_name="Berdiyev", country="TM", commit=True)
    sign_in(client, user_in(Role.EDITOR, "ru"))
    response = client.post(
        "/audiences/segments/new",
        data={
            "name": "Turkmen officials",
            "match": "all",
            "g0-match": "all",
            "g0-c0-field": "country",
            "g0-c0-op": "is",
            "g0-c0-value": "Туркменистан",
            "action": "save",
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    segment = db.session.scalar(select(Segment))
    assert segment is not None
    assert segment.definition == {
        "all": [{"all": [{"field": "country", "op": "is", "value": "TM"}]}]
    }
    index = _page(client, "/audiences/")
    assert "<code>страна равно Туркменистан</code>" in index
    assert "TM" not in _text_nodes(index)
    edit = _page(client, f"/audiences/segments/{segment.id}/edit")
    assert 'value="Туркменистан"' in edit


def _sign_on_with_a_belgian_signer() -> Any:
    statement = statements.create_statement(
        "Joint letter", language="en", subject="Ahead of the summit", body="We call for action."
    )
    statements.set_text(statement, language="fr", subject="Avant le sommet", body="Nous appelons.")
    statements.set_text(statement, language="ru", subject="Перед саммитом", body="Мы просим.")
    sign_on = open_sign_on(statement)
    statements.add_signatory(
        statement,
        {"kind": "organisation", "name": "Ligue des droits humains", "country": "Belgium"},
    )
    statements.add_signatory(
        statement, {"kind": "organisation", "name": "Exile Voices", "country": "Atlantis"}
    )
    db.session.commit()
    return sign_on


def test_the_public_page_names_a_signers_country_in_the_readers_language(
    app: Flask, client: FlaskClient
) -> None:
    sign_on = _sign_on_with_a_belgian_signer()
    french = _page(client, f"/sign/{sign_on.token}?lang=fr")
    assert "Ligue des droits humains</strong>, Belgique" in french
    assert "Belgium" not in french
    # Text that names no country is printed as the signer wrote it.
    assert "Exile Voices</strong>, Atlantis" in french
    russian = _page(client, f"/sign/{sign_on.token}?lang=ru")
    assert "Ligue des droits humains</strong>, Бельгия" in russian
    english = _page(client, f"/sign/{sign_on.token}?lang=en")
    assert "Ligue des droits humains</strong>, Belgium" in english


def test_the_moderation_page_names_a_signers_country_in_the_interface_language(
    app: Flask, client: FlaskClient
) -> None:
    sign_on = _sign_on_with_a_belgian_signer()
    submit_signature(
        sign_on,
        {
            "kind": "organisation",
            "name": "Comité belge",
            "country": "belgium",
            "exile_country": "Kyrgyzstan",
            "publish_as": "full",
            "email": "comite@example.org",
            "consent": "yes",
        },
        language="fr",
        client_ip="203.0.113.7",
    )
    signature = db.session.scalar(select(Signature))
    assert signature is not None
    signature.status = SignatureStatus.CONFIRMED.value
    db.session.commit()
    sign_in(client, user_in(Role.EDITOR, "ru"))
    page = _page(client, f"/statements/{sign_on.statement_id}/sign-on/")
    waiting = page.split('id="waiting"', 1)[1].split("</section>", 1)[0]
    assert "Бельгия" in waiting and "belgium" not in waiting
    assert "Кыргызстан" in waiting


def test_the_audit_page_shows_a_country_correction_as_written(
    app: Flask, client: FlaskClient
) -> None:
    save_country_name("KG", "ru", "Кыргызстан", "Кыргызская Республика <i>")
    db.session.commit()
    sign_in(client, user_in(Role.ADMIN, "ru"))
    response = client.get("/audit/?action=country_name.save")
    assert response.status_code == 200
    raw = response.get_data(as_text=True)
    assert "\\u041a" not in raw and "Кыргызская Республика" in raw
    # Still escaped for HTML: the details are text, never markup.
    assert "<i>" not in raw and "&lt;i&gt;" in raw
    page = unescape(raw)
    assert '"short": "Кыргызстан"' in page
    shown = _text_nodes(page)
    assert "Название страны исправлено" in shown and "country_name.save" not in shown
    assert any(node.startswith("Название страны ") for node in shown)  # the target


def test_a_letters_cases_name_their_country_in_the_letters_language(app: Flask) -> None:
    statement = statements.create_statement(
        "Письмо", language="ru", subject="О заключённых", body="{{ salutation }}"
    )
    campaign = Campaign(name="Освободите журналистов", statement_id=statement.id)
    db.session.add(campaign)
    db.session.flush()
    case = cases.create_case("Azamjon Formonov", country="UZ", status="sentenced")
    cases.add_case_date(case, "arrest", date(2015, 7, 12))
    cases.link_case(campaign, case)
    db.session.commit()
    # The interface is English here; the only language of the letters is Russian.
    [merged] = cases.cases_context(campaign)
    assert merged["country_name"] == "Узбекистан"
    assert merged["dates"][0]["on_text"].startswith("12 июля 2015")
    # A caller that knows the letter's language says so.
    [french] = cases.cases_context(campaign, "fr")
    assert french["country_name"] == "Ouzbékistan"
