"""A contact's own time zone: the form, the contact page, the import and the export."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import Contact, Role, User
from campaign.queue import get_queue
from campaign.services.contacts.contacts import create_contact
from tests.pages import text_of
from tests.web.test_imports import import_id_from, upload
from workers import context, jobs

Login = Callable[[Role], User]
NEW = {
    "family_name": "Mission",
    "email": "mission@example.org",
    "country": "FR",
    "role_type": "official",
    "risk_level": "public",
}


def _count() -> int:
    return int(db.session.scalar(select(func.count(Contact.id))) or 0)


def test_an_explicit_zone_is_stored_in_its_usual_spelling_and_shown(
    client: FlaskClient, login: Login
) -> None:
    login(Role.EDITOR)
    response = client.post("/contacts/new", data={**NEW, "time_zone": " asia/almaty "})
    assert response.status_code == 302
    contact = db.session.scalar(select(Contact))
    assert contact is not None and contact.time_zone == "Asia/Almaty"
    page = text_of(client.get(f"/contacts/{contact.id}"))
    assert re.search(r'<dd id="contact-time-zone">Asia/Almaty</dd>', page)
    # The edit form offers the zone names and keeps the stored one.
    form = text_of(client.get(f"/contacts/{contact.id}/edit"))
    assert 'value="Asia/Almaty"' in form and '<option value="Europe/Paris">' in form


def test_without_a_zone_the_page_shows_the_countrys(client: FlaskClient, login: Login) -> None:
    login(Role.EDITOR)
    contact = create_contact({**NEW, "country": "US"})
    db.session.commit()
    page = text_of(client.get(f"/contacts/{contact.id}"))
    assert 'America/New_York <span class="muted">(from the country)</span>' in page
    no_zone = create_contact({**NEW, "email": "council@example.eu", "country": "EU"})
    db.session.commit()
    response = client.get(f"/contacts/{no_zone.id}")
    assert response.status_code == 200
    assert f"<h1>{no_zone.display_name}</h1>" in text_of(response)
    assert 'id="contact-time-zone"' not in text_of(response)


def test_an_unknown_zone_is_refused_by_name_and_nothing_is_saved(
    client: FlaskClient, login: Login
) -> None:
    login(Role.EDITOR)
    response = client.post("/contacts/new", data={**NEW, "time_zone": "Europe/Atlantis"})
    assert response.status_code == 422
    page = text_of(response)
    assert re.search(
        r'<a href="#f-time_zone">Time zone</a>: \'Europe/Atlantis\' is not a known time zone',
        page,
    )
    assert 'value="Europe/Atlantis"' in page and 'value="mission@example.org"' in page
    assert _count() == 0

    contact = create_contact(NEW)
    db.session.commit()
    edited = client.post(
        f"/contacts/{contact.id}/edit",
        data={**NEW, "family_name": "Renamed", "time_zone": "Nowhere"},
    )
    assert edited.status_code == 422
    db.session.refresh(contact)
    assert (contact.family_name, contact.time_zone) == ("Mission", "")


def test_the_import_reads_a_time_zone_column_and_names_the_line_of_a_bad_one(
    app: Flask, client: FlaskClient, login: Login
) -> None:
    login(Role.EDITOR)
    rows = (
        "Email,Last name,Country,Time zone\n"
        "kz@example.org,Mission,FR,asia/almaty\n"
        "bad@example.org,Lost,FR,Europe/Atlantis\n"
        "plain@example.org,Plain,DE,\n"
    )
    import_id = import_id_from(upload(client, rows.encode()))
    mapping = text_of(client.get(f"/imports/{import_id}/mapping"))
    assert '<option value="time_zone" selected>' in mapping  # matched by the header's name
    client.post(
        f"/imports/{import_id}/mapping",
        data={
            "map-0": "email",
            "map-1": "family_name",
            "map-2": "country",
            "map-3": "time_zone",
            "on_duplicate": "skip",
        },
    )
    get_queue().empty()
    client.post(f"/imports/{import_id}/start")
    context.set_app(app)
    jobs.import_contacts(import_id)

    done = text_of(client.get(f"/imports/{import_id}"))
    assert "imported 2, updated 0, skipped 0, rejected 1" in done
    rejects = re.findall(r"<tr><td>(\d+)</td><td>([^<]*)</td><td>([^<]*)</td></tr>", done)
    assert [(line, column) for line, column, _ in rejects] == [("3", "Time zone")]
    assert "'Europe/Atlantis' is not a known time zone" in rejects[0][2]
    stored = {
        email: zone for email, zone in db.session.execute(select(Contact.email, Contact.time_zone))
    }
    assert stored == {"kz@example.org": "Asia/Almaty", "plain@example.org": ""}


def test_the_export_has_a_time_zone_column(client: FlaskClient, login: Login) -> None:
    create_contact({**NEW, "time_zone": "Asia/Almaty"})
    db.session.commit()
    login(Role.SENDER)
    response = client.post("/contacts/export", data={"format": "csv"})
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    response.close()
    assert [row["time_zone"] for row in rows] == ["Asia/Almaty"]
