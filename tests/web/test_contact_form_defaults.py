"""The new-contact form guesses nothing: gender starts unknown, role and risk must be chosen."""

from __future__ import annotations

import re
from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import Contact, Role, User
from campaign.services.contacts.contacts import create_contact
from tests.pages import text_of

Login = Callable[[Role], User]


def _selected(page: str, field: str) -> str:
    """The value of the option the select of `field` shows ("" for none or the blank one)."""
    select_html = re.search(rf'<select id="f-{field}".*?</select>', page, re.S)
    assert select_html, field
    chosen = re.search(r'<option value="([^"]*)" selected', select_html.group(0))
    if chosen:
        return chosen.group(1)
    # No option marked: the browser shows the first one.
    first = re.search(r'<option value="([^"]*)"', select_html.group(0))
    assert first
    return first.group(1)


def _count() -> int:
    return int(db.session.scalar(select(func.count(Contact.id))) or 0)


def test_the_new_form_starts_with_gender_unknown_and_role_and_risk_to_choose(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    login(Role.EDITOR)
    page = text_of(client.get("/contacts/new"))
    assert _selected(page, "grammatical_gender") == "unknown"
    assert _selected(page, "role_type") == ""
    assert _selected(page, "risk_level") == ""
    assert "— choose —" in page
    # Style and kind keep a safe value: no "Excellency" nobody chose; a person.
    assert _selected(page, "style") == "none"
    assert _selected(page, "kind") == "person"


def test_creating_without_a_role_names_the_field_and_stores_nothing(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    login(Role.EDITOR)
    response = client.post(
        "/contacts/new",
        data={
            "family_name": "Namunova",
            "email": "amb@example.org",
            "grammatical_gender": "unknown",
            "role_type": "",
            "risk_level": "",
        },
    )
    assert response.status_code == 422
    page = text_of(response)
    assert re.search(r'<a href="#f-role_type">Role type</a>: choose one', page)
    assert re.search(r'<a href="#f-risk_level">Risk level</a>: choose one', page)
    assert 'id="e-role_type"' in page
    assert 'value="amb@example.org"' in page  # what was typed is kept
    assert _count() == 0

    saved = client.post(
        "/contacts/new",
        data={
            "family_name": "Namunova",
            "email": "amb@example.org",
            "role_type": "ambassador",
            "risk_level": "public",
        },
    )
    assert saved.status_code == 302
    contact = db.session.scalar(select(Contact))
    assert contact is not None
    assert (contact.role_type, contact.grammatical_gender) == ("ambassador", "unknown")


def test_editing_keeps_the_contacts_values_and_still_needs_a_role(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    contact = create_contact(
        {
            "family_name": "Dupont",
            "email": "d@example.org",
            "grammatical_gender": "m",
            "role_type": "minister",
            "risk_level": "low",
            "style": "excellency",
        }
    )
    db.session.commit()
    login(Role.EDITOR)
    page = text_of(client.get(f"/contacts/{contact.id}/edit"))
    assert _selected(page, "grammatical_gender") == "m"
    assert _selected(page, "role_type") == "minister"
    assert _selected(page, "risk_level") == "low"
    assert _selected(page, "style") == "excellency"

    cleared = client.post(
        f"/contacts/{contact.id}/edit",
        data={"family_name": "Dupont", "email": "d@example.org", "risk_level": "low"},
    )
    assert cleared.status_code == 422
    assert "choose one" in text_of(cleared)
    db.session.expire_all()
    assert db.session.get(Contact, contact.id).role_type == "minister"  # type: ignore[union-attr]


def test_the_french_error_names_the_option_as_the_select_shows_it(
    client: FlaskClient, app: Flask
) -> None:
    from tests.conftest import sign_in
    from tests.i18n.pages import user_in

    sign_in(client, user_in(Role.EDITOR, "fr"))
    form = text_of(client.get("/contacts/new"))
    assert ">Autre fonction</option>" in form
    response = client.post(
        "/contacts/new",
        data={"family_name": "Namunova", "email": "amb@example.org", "role_type": ""},
    )
    assert response.status_code == 422
    assert "« Autre fonction » si aucune ne convient" in text_of(response).replace("\u00a0", " ")
