"""Contact pages: table, detail, edit with field errors, delete, lists, export, and who may."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert, select

from campaign.extensions import db
from campaign.models import AuditEvent, Contact, Role, User
from campaign.services.contacts import lists
from tests.factories import ContactFactory
from tests.pages import html_of

Login = Callable[[Role], User]


@pytest.fixture
def ambassador(app: Flask) -> Contact:
    return ContactFactory(
        commit=True,
        given_name="Dilnoza",
        family_name="Namunova",
        grammatical_gender="f",
        role_type="ambassador",
        style="excellency",
        organisation="Embassy of Uzbekistan in France",
        country="UZ",
        languages="ru fr",
        email="amb.uz@example.org",
        tags="diplomat uzbekistan",
    )


def test_table_lists_searches_and_filters(
    client: FlaskClient, login: Login, ambassador: Contact
) -> None:
    ContactFactory(
        commit=True,
        family_name="Beispiel",
        email="l.beispiel@example.org",
        role_type="mep",
        tags="eu mep",
    )
    login(Role.VIEWER)
    page = html_of(client.get("/contacts/"))
    assert "Namunova" in page and "Beispiel" in page
    found = html_of(client.get("/contacts/?q=uzbekistan"))
    assert "Namunova" in found and "Beispiel" not in found
    by_tag = html_of(client.get("/contacts/?tag=eu"))
    assert "Beispiel" in by_tag and "Namunova" not in by_tag
    assert "No contacts match" in html_of(client.get("/contacts/?role_type=un_wg"))


def test_table_pages_through_every_contact_once(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    rows = [
        {
            "family_name": f"Person {i:03d}",
            "email": f"p{i}@example.org",
            "email_key": f"p{i}@example.org",
        }
        for i in range(130)
    ]
    db.session.execute(insert(Contact), rows)
    db.session.commit()
    login(Role.VIEWER)
    seen: list[str] = []
    url = "/contacts/?sort=name"
    while url:
        page = html_of(client.get(url))
        seen += re.findall(r">(Person \d{3})<", page)
        found = re.search(r'href="([^"]+)" rel="next"', page)
        url = found.group(1).replace("&amp;", "&") if found else ""
    assert seen == [f"Person {i:03d}" for i in range(130)]


def test_detail_shows_fields_lists_and_history(
    client: FlaskClient, login: Login, ambassador: Contact
) -> None:
    press = lists.create_list("Diplomats")
    lists.add_contacts(press, [ambassador.id])
    db.session.commit()
    login(Role.VIEWER)
    page = html_of(client.get(f"/contacts/{ambassador.id}"))
    assert "Embassy of Uzbekistan in France" in page
    assert "Diplomats" in page
    assert "Contact created" in page  # the history, in words
    assert "Edit" not in page  # a viewer gets no edit button
    assert client.get("/contacts/999999").status_code == 404


def test_viewer_cannot_edit_delete_or_export(
    client: FlaskClient, login: Login, ambassador: Contact
) -> None:
    login(Role.VIEWER)
    assert client.get(f"/contacts/{ambassador.id}/edit").status_code == 403
    response = client.post(f"/contacts/{ambassador.id}/edit", data={"family_name": "X"})
    assert response.status_code == 403
    assert client.post(f"/contacts/{ambassador.id}/delete").status_code == 403
    assert client.post("/contacts/export", data={"format": "csv"}).status_code == 403
    assert db.session.get(Contact, ambassador.id).family_name == "Namunova"


def test_editor_cannot_export(client: FlaskClient, login: Login, ambassador: Contact) -> None:
    login(Role.EDITOR)
    listing = client.get("/contacts/")
    assert listing.status_code == 200 and "Namunova" in html_of(listing)
    assert "Export" not in html_of(listing)
    assert client.post("/contacts/export", data={"format": "csv"}).status_code == 403
    assert (
        db.session.scalar(select(AuditEvent).where(AuditEvent.action == "contacts.export")) is None
    )


def test_create_shows_field_errors_next_to_fields(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    login(Role.EDITOR)
    response = client.post(
        "/contacts/new",
        data={"family_name": "Line\nbreak", "email": "a@b@c.org", "country": "France"},
    )
    assert response.status_code == 422
    page = html_of(response)
    assert 'id="e-email"' in page and 'id="e-country"' in page and 'id="e-family_name"' in page
    assert "not a country code the country table knows" in page
    assert 'value="a@b@c.org"' in page  # what was typed is kept for correction
    assert db.session.scalar(select(Contact)) is None


def test_edit_with_bad_input_changes_nothing(
    client: FlaskClient, login: Login, ambassador: Contact
) -> None:
    login(Role.EDITOR)
    response = client.post(
        f"/contacts/{ambassador.id}/edit",
        data={**_form_of(ambassador), "organisation": "New name", "email": "not-an-address"},
    )
    assert response.status_code == 422
    assert 'id="e-email"' in html_of(response)
    contact = db.session.get(Contact, ambassador.id)
    assert contact is not None
    assert (contact.organisation, contact.email) == (
        "Embassy of Uzbekistan in France",
        "amb.uz@example.org",
    )


def _form_of(contact: Contact) -> dict[str, str]:
    from campaign.services.contacts.contacts import CONTACT_FIELDS

    out = {}
    for name in CONTACT_FIELDS:
        value = getattr(contact, name)
        out[name] = value.isoformat() if hasattr(value, "isoformat") else (value or "")
    return out


def test_edit_saves_and_ignores_unknown_fields(
    client: FlaskClient, login: Login, ambassador: Contact
) -> None:
    login(Role.EDITOR)
    other = ContactFactory(commit=True, family_name="Other", email="other@example.org")
    response = client.post(
        f"/contacts/{ambassador.id}/edit",
        data={
            **_form_of(ambassador),
            "position_title": "Ambassador of Uzbekistan to France",
            # Mass assignment attempts: none of these may reach the record.
            "id": str(other.id),
            "email_key": "other@example.org",
            "created_at": "2000-01-01T00:00:00+00:00",
            "role": "admin",
        },
    )
    assert response.status_code == 302
    contact = db.session.get(Contact, ambassador.id)
    assert contact is not None
    assert contact.position_title == "Ambassador of Uzbekistan to France"
    assert contact.email_key == "amb.uz@example.org"
    assert contact.created_at.year > 2000
    assert db.session.get(Contact, other.id) is not None
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "contact.update"))
    assert event is not None and event.detail == {"fields": ["position_title"]}


def test_delete_asks_first_then_deletes_and_audits(
    client: FlaskClient, login: Login, ambassador: Contact
) -> None:
    editor_email = login(Role.EDITOR).email
    contact_id = ambassador.id
    confirm = client.get(f"/contacts/{contact_id}/delete")
    assert "trash for 30 days" in html_of(confirm)
    assert db.session.get(Contact, contact_id) is not None
    assert client.post(f"/contacts/{contact_id}/delete").status_code == 302
    db.session.expunge_all()
    assert db.session.get(Contact, contact_id).deleted_at is not None  # in the trash
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "contact.trash"))
    assert event is not None
    assert event.actor_email == editor_email
    assert event.detail["email"] == "amb.uz@example.org"


def test_add_to_and_remove_from_a_list(
    client: FlaskClient, login: Login, ambassador: Contact
) -> None:
    diplomats = lists.create_list("Diplomats")
    db.session.commit()
    login(Role.EDITOR)
    client.post(f"/contacts/{ambassador.id}/lists", data={"list_id": str(diplomats.id)})
    assert set(db.session.scalars(lists.member_ids(diplomats))) == {ambassador.id}
    client.post(f"/contacts/{ambassador.id}/lists/{diplomats.id}/remove")
    assert set(db.session.scalars(lists.member_ids(diplomats))) == set()
    # A list id no list can have is a bad request, not a server error.
    for odd in ("²", "99999999999999999999"):
        response = client.post(f"/contacts/{ambassador.id}/lists", data={"list_id": odd})
        assert response.status_code == 400, odd


def test_bulk_add_all_matching_the_filters(
    client: FlaskClient, login: Login, ambassador: Contact
) -> None:
    mep = ContactFactory(
        commit=True, family_name="Beispiel", email="l.beispiel@example.org", role_type="mep"
    )
    eu = lists.create_list("EU")
    db.session.commit()
    login(Role.EDITOR)
    response = client.post(
        "/contacts/bulk", data={"list_id": str(eu.id), "action": "add_all", "role_type": "mep"}
    )
    assert response.status_code == 302
    assert "role_type=mep" in response.headers["Location"]
    assert set(db.session.scalars(lists.member_ids(eu))) == {mep.id}
    client.post(
        "/contacts/bulk",
        data={"list_id": str(eu.id), "action": "add_selected", "contact_id": [str(ambassador.id)]},
    )
    assert set(db.session.scalars(lists.member_ids(eu))) == {mep.id, ambassador.id}


def test_sender_exports_the_filtered_contacts_as_csv_and_it_is_audited(
    client: FlaskClient, login: Login, ambassador: Contact
) -> None:
    ContactFactory(
        commit=True, family_name="=HYPERLINK(1)", email="evil@example.org", role_type="mep"
    )
    sender = login(Role.SENDER)
    assert "Export" in html_of(client.get("/contacts/"))
    response = client.post("/contacts/export", data={"format": "csv", "role_type": "mep"})
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    assert [r["email"] for r in rows] == ["evil@example.org"]
    assert rows[0]["family_name"] == "'=HYPERLINK(1)"
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "contacts.export"))
    assert event is not None
    assert event.actor_email == sender.email
    assert event.detail["count"] == 1 and "role_type=mep" in event.detail["description"]


def test_export_as_xlsx(client: FlaskClient, login: Login, ambassador: Contact) -> None:
    from openpyxl import load_workbook

    login(Role.SENDER)
    response = client.post("/contacts/export", data={"format": "xlsx"})
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.get_data())).active
    assert sheet is not None
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert len(values) == 2 and "amb.uz@example.org" in values[1]
    assert client.post("/contacts/export", data={"format": "pdf"}).status_code == 400
