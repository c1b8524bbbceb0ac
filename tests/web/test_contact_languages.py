"""The contact page in several languages: address blocks, the dative to confirm, countries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient

from campaign.extensions import db
from campaign.models import Contact, Role, User
from campaign.services.contacts import create_contact, update_contact

Login = Callable[[Role], User]


def _text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def _token(page: str) -> str:
    return page.split('name="csrf_token" value="')[1].split('"')[0]


def _ambassador() -> Contact:
    contact = create_contact(
        {
            "email": "amb.kg@example.org",
            "given_name": "Aida",
            "family_name": "Bekova",
            "grammatical_gender": "f",
            "role_type": "ambassador",
            "style": "excellency",
            "country": "KG",
            "location_country": "FR",
            "given_name_ru": "Айда",
            "family_name_ru": "Бекова",
            "position_title_ru": "Посол Кыргызской Республики во Французской Республике",
        }
    )
    db.session.commit()
    return contact


def test_the_page_shows_each_languages_address_and_confirms_the_dative(
    client: FlaskClient, login: Login
) -> None:
    contact = _ambassador()
    login(Role.EDITOR)
    page = _text(client.get(f"/contacts/{contact.id}"))
    assert "госпоже А. Бековой<br>Послу Кыргызской Республики" in page
    assert "Son Excellence Madame Aida Bekova" in page
    assert 'Kyrgyzstan <span class="muted">(KG)</span>' in page  # a name, not only a code
    assert "suggested by morphology" in page and "These forms are right" in page
    confirmed = client.post(
        f"/contacts/{contact.id}/dative", data={"csrf_token": _token(page)}, follow_redirects=True
    )
    assert "The Russian dative forms are confirmed." in _text(confirmed)
    db.session.refresh(contact)
    assert (contact.name_dative, contact.dative_confirmed) == ("А. Бековой", True)
    assert contact.position_title_dative.startswith("Послу ")
    assert "checked by a person" in _text(confirmed)


def test_a_new_title_makes_the_confirmed_dative_a_suggestion_again(app: Any) -> None:
    contact = _ambassador()
    update_contact(
        contact,
        {"name_dative": "Айде Бековой", "position_title_dative": "Послу", "dative_confirmed": "1"},
    )
    assert contact.dative_confirmed
    update_contact(contact, {"position_title_ru": "Министр иностранных дел"})
    assert (contact.name_dative, contact.position_title_dative) == ("", "")
    assert not contact.dative_confirmed


def test_viewers_cannot_confirm_and_the_form_offers_countries_by_name(
    client: FlaskClient, login: Login
) -> None:
    contact = _ambassador()
    login(Role.VIEWER)
    page = _text(client.get(f"/contacts/{contact.id}"))
    assert "These forms are right" not in page
    assert client.post(f"/contacts/{contact.id}/dative").status_code in (400, 403)
    client.get("/logout")
    db.session.refresh(contact)
    assert not contact.dative_confirmed


def test_the_edit_form_suggests_the_dative_and_names_countries(
    client: FlaskClient, login: Login
) -> None:
    contact = _ambassador()
    login(Role.EDITOR)
    form = _text(client.get(f"/contacts/{contact.id}/edit"))
    assert 'placeholder="А. Бековой"' in form
    assert '<option value="KG" label="Kyrgyzstan">' in form
    assert 'list="country-names"' in form
