"""The contact page in several languages: address blocks, the dative to confirm, countries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from campaign.extensions import db
from campaign.models import Contact, Role, User
from campaign.services.contacts.contacts import ContactInputError, create_contact, update_contact
from tests.pages import csrf_token_in, html_of

Login = Callable[[Role], User]


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
    page = html_of(client.get(f"/contacts/{contact.id}"))
    assert (
        "Послу Кыргызской Республики во Французской Республике<br>госпоже А.\u00a0Бековой" in page
    )
    assert "Son Excellence Madame Aida Bekova" in page
    assert 'Kyrgyzstan <span class="muted">(KG)</span>' in page  # a name, not only a code
    assert "suggested by morphology" in page and "These forms are right" in page
    shown = {
        "csrf_token": csrf_token_in(page),
        "name_dative": "А.\u00a0Бековой",
        "position_title_dative": "Послу Кыргызской Республики во Французской Республике",
    }
    # What the page showed is what is confirmed: a form from before an edit is refused.
    stale = client.post(
        f"/contacts/{contact.id}/dative",
        data={**shown, "position_title_dative": "Послу Республики Узбекистан"},
        follow_redirects=True,
    )
    assert "changed since the page was shown" in html_of(stale)
    db.session.refresh(contact)
    assert not contact.dative_confirmed
    confirmed = client.post(f"/contacts/{contact.id}/dative", data=shown, follow_redirects=True)
    assert "The Russian dative forms are confirmed." in html_of(confirmed)
    db.session.refresh(contact)
    assert (contact.name_dative, contact.dative_confirmed) == ("А.\u00a0Бековой", True)
    assert contact.position_title_dative.startswith("Послу ")
    assert "checked by a person" in html_of(confirmed)


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
    response = client.get(f"/contacts/{contact.id}")
    assert response.status_code == 200
    page = html_of(response)
    assert f"<h1>{contact.display_name}</h1>" in page
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
    form = html_of(client.get(f"/contacts/{contact.id}/edit"))
    assert 'placeholder="А.\u00a0Бековой"' in form
    assert '<option value="KG" label="Kyrgyzstan">' in form
    assert 'list="country-names"' in form


def test_ticking_confirmed_with_empty_fields_stores_the_suggestion_it_confirms(app: Any) -> None:
    contact = _ambassador()
    update_contact(contact, {"dative_confirmed": "yes"})
    assert contact.dative_confirmed
    assert contact.name_dative == "А.\u00a0Бековой"
    assert contact.position_title_dative.startswith("Послу Кыргызской Республики")


def test_nothing_to_suggest_cannot_be_confirmed(app: Any) -> None:
    contact = _ambassador()
    with pytest.raises(ContactInputError) as refused:
        update_contact(contact, {"grammatical_gender": "unknown", "dative_confirmed": "yes"})
    assert refused.value.errors[0].field == "dative_confirmed"


def test_an_invisible_direction_mark_in_a_field_is_refused(app: Any) -> None:
    contact = _ambassador()
    with pytest.raises(ContactInputError) as refused:
        update_contact(contact, {"organisation_ru": "Посольство\u202eX"})
    assert refused.value.errors[0].field == "organisation_ru"
    assert "invisible" in refused.value.errors[0].message
