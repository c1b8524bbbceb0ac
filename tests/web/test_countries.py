"""Countries page: everyone reads the names letters print; only admins correct them."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.letters.address import address_lines
from campaign.letters.countries import forget_loaded_names
from campaign.models import AuditEvent, Contact, CountryNameOverride, Role, User
from tests.pages import csrf_token, html_of

Login = Callable[[Role], User]


def test_the_table_shows_reviewed_names_and_finds_a_country_by_any_name(
    client: FlaskClient, login: Login
) -> None:
    login(Role.VIEWER)
    page = html_of(client.get("/countries/?q=кыргыз"))
    assert "Кыргызстан<br><small>Кыргызская Республика</small>" in page
    assert "Kyrgyzstan<br><small>Kyrgyz Republic</small>" in page
    assert "reviewed table" in page and "Save the name" not in page
    assert 'id="country-FR"' not in page
    assert client.post("/countries/", data={"code": "KG"}).status_code == 403


def test_an_admin_corrects_a_name_and_letters_print_it(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    login(Role.ADMIN)
    response = client.post(
        "/countries/",
        data={
            "csrf_token": csrf_token(client, "/countries/"),
            "code": "kg",
            "language": "fr",
            "short_name": "  Kirghizstan ",
            "formal_name": "",
            "note": "as the embassy writes it",
        },
        follow_redirects=True,
    )
    assert response.status_code == 200 and "Kirghizstan" in html_of(response)
    row = db.session.scalars(select(CountryNameOverride)).one()
    assert (row.code, row.language, row.short_name, row.formal_name) == (
        "KG", "fr", "Kirghizstan", "République kirghize",
    )  # fmt: skip
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "country_name.save"))
    assert event.one().detail["short"] == "Kirghizstan"
    contact = Contact(given_name="Aida", family_name="Bekova", country="KG", email="a@x.org")
    with app.test_request_context():
        assert address_lines(contact, "fr")[-1] == "Kirghizstan"
        assert address_lines(contact, "ru")[-1] == "Кыргызстан"
    client.post(
        f"/countries/{row.id}/delete", data={"csrf_token": csrf_token(client, "/countries/")}
    )
    assert db.session.scalars(select(CountryNameOverride)).all() == []
    # Each request or job reads the table afresh (this test's own context cached it).
    forget_loaded_names()
    with app.test_request_context():
        assert address_lines(contact, "fr")[-1] == "Kirghizistan"


def test_bad_input_names_the_field_and_stores_nothing(client: FlaskClient, login: Login) -> None:
    login(Role.ADMIN)
    token = csrf_token(client, "/countries/")
    bad_code = client.post(
        "/countries/", data={"csrf_token": token, "code": "K1", "language": "en", "short_name": "X"}
    )
    assert bad_code.status_code == 400 and "two-letter ISO code" in html_of(bad_code)
    no_name = client.post(
        "/countries/", data={"csrf_token": token, "code": "KG", "language": "en", "short_name": " "}
    )
    assert no_name.status_code == 400 and "This field is required." in html_of(no_name)
    bad_language = client.post(
        "/countries/",
        data={"csrf_token": token, "code": "KG", "language": "xx", "short_name": "Kirgistan"},
    )
    assert bad_language.status_code == 400 and "not written in that language" in html_of(
        bad_language
    )
    assert db.session.scalars(select(CountryNameOverride)).all() == []


def test_a_short_name_alone_keeps_the_reviewed_formal_name_and_invisible_marks_are_refused(
    client: FlaskClient, login: Login
) -> None:
    login(Role.ADMIN)
    token = csrf_token(client, "/countries/")
    client.post(
        "/countries/",
        data={"csrf_token": token, "code": "KG", "language": "fr", "short_name": "Kirghizstan"},
    )
    row = db.session.scalars(select(CountryNameOverride)).one()
    assert (row.short_name, row.formal_name) == ("Kirghizstan", "République kirghize")
    hidden = client.post(
        "/countries/",
        data={
            "csrf_token": token,
            "code": "UZ",
            "language": "ru",
            "short_name": "Узбеки\u202eстан",
        },
    )
    assert hidden.status_code == 400 and "invisible" in html_of(hidden)
