"""The Organisation page (admins): letterhead address, contacts and logo; bad logos refused."""

from __future__ import annotations

import io
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy import select
from werkzeug.test import EnvironBuilder

from campaign.extensions import db
from campaign.models import AuditEvent, InstallationSetting, Role, User
from campaign.services.contacts.contacts import create_contact
from campaign.services.statements import organisation, statements
from campaign.services.statements.complete_letters import compose_letter
from tests.pages import html_of

Login = Callable[[Role], User]


def _png(width: int = 300, height: int = 90) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (11, 92, 173)).save(out, "PNG")
    return out.getvalue()


def _form(**changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "address": "12 rue des Droits\n75011 Paris\nFrance",
        "phone": "+33 1 23 45 67 89",
        "email": "office@ahrca.example",
        "website": "www.ahrca.example",
    }
    form.update(changes)
    return form


def _post(client: FlaskClient, form: dict[str, Any]) -> Any:
    # Built here so the spooled request body (a temporary file when large) gets closed.
    builder = EnvironBuilder(path="/organisation/", method="POST", data=form)
    environ = builder.get_environ()
    try:
        return client.open(environ)
    finally:
        environ["wsgi.input"].close()
        builder.close()


def test_only_admins_see_and_change_the_letterhead(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    login(Role.SENDER)
    assert client.get("/organisation/").status_code == 403
    assert _post(client, _form()).status_code == 403
    assert client.get("/organisation/logo").status_code == 403
    assert db.session.get(InstallationSetting, organisation.SETTING) is None


def test_the_admin_menu_links_the_page(client: FlaskClient, login: Login, app: Flask) -> None:
    login(Role.ADMIN)
    assert 'href="/organisation/"' in html_of(client.get("/"))


def test_admin_sets_the_letterhead_and_letters_carry_it(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    login(Role.ADMIN)
    response = _post(client, _form(logo=(io.BytesIO(_png()), "logo.png")))
    assert response.status_code == 302
    page = html_of(client.get("/organisation/"))
    assert "75011 Paris" in page and "office@ahrca.example" in page
    preview = client.get("/organisation/logo")
    assert preview.status_code == 200 and preview.mimetype == "image/png"
    # Written again without metadata (tests/web/test_organisation_logo_images.py): the
    # same picture, not the same bytes.
    from PIL import Image

    with Image.open(io.BytesIO(preview.data)) as shown:
        assert (shown.format, shown.size) == ("PNG", (300, 90))
    stored = organisation.logo_path()
    assert stored is not None
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "organisation.letterhead.update")
    ).one()
    assert set(event.detail["changed"]) >= {"address_lines", "phone", "email", "website", "logo"}

    statement = statements.create_statement(
        "Joint letter", language="en", subject="Joint letter", body="Text.\n"
    )
    statement.is_pdf_attached = True
    statements.record_version(statement, "PDF")
    contact = create_contact(
        {"given_name": "Ann", "family_name": "Lee", "email": "a@example.org", "languages": "en"}
    )
    db.session.commit()
    composed = compose_letter(statement, contact)
    assert composed.pdf is not None
    first = PdfReader(io.BytesIO(composed.pdf)).pages[0]
    text = " ".join(first.extract_text().split())
    assert "75011 Paris" in text and "+33 1 23 45 67 89" in text
    assert "office@ahrca.example" in text and "www.ahrca.example" in text
    assert len(first.images) == 1

    # Removing the logo deletes its file once saved.
    assert _post(client, _form(remove_logo="1")).status_code == 302
    assert organisation.logo_path() is None
    assert not stored.exists()


def _svg() -> bytes:
    return (
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        b"<script>alert(1)</script><rect width='10' height='10'/></svg>"
    )


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (b"%PDF-1.4 not an image", "logo.png", "not an image"),
        (_svg(), "logo.svg", "SVG logos are not accepted"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * (20 * 1024 * 1024), "big.png", "larger than 1 MB"),
        (_png()[:200], "cut.png", "damaged or incomplete"),
    ],
    ids=["not-an-image", "svg-with-script", "20-mb", "truncated"],
)
def test_a_bad_logo_is_refused_with_a_reason_and_nothing_is_stored(
    client: FlaskClient, login: Login, app: Flask, data: bytes, name: str, reason: str
) -> None:
    login(Role.ADMIN)
    response = _post(client, _form(logo=(io.BytesIO(data), name)))
    assert response.status_code in (413, 422)
    page = html_of(response)
    assert reason in page
    assert 'aria-invalid="true"' in page
    # The address typed is shown again, and nothing at all was saved.
    assert "75011 Paris" in page or response.status_code == 413
    assert db.session.get(InstallationSetting, organisation.SETTING) is None
    folder = Path(app.instance_path) / "organisation"
    assert not folder.exists() or not any(folder.iterdir())


def test_a_gif_is_refused_naming_its_kind(client: FlaskClient, login: Login, app: Flask) -> None:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (20, 20)).save(out, "GIF")
    login(Role.ADMIN)
    response = _post(client, _form(logo=(io.BytesIO(out.getvalue()), "logo.png")))
    assert response.status_code == 422
    assert "GIF" in html_of(response) and "only PNG and JPEG" in html_of(response)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("phone", "call us", "telephone number may hold only digits"),
        ("email", "office@", "e-mail address is not valid"),
        ("website", "javascript:alert(1)", "web address is not valid"),
        ("address", "\n".join(f"line {n}" for n in range(8)), "more than 6 lines"),
        ("address", "x" * 200, "longer than 120 characters"),
    ],
)
def test_bad_contact_values_are_refused_naming_the_field(
    client: FlaskClient, login: Login, app: Flask, field: str, value: str, reason: str
) -> None:
    login(Role.ADMIN)
    response = _post(client, _form(**{field: value}))
    assert response.status_code == 422
    page = html_of(response)
    assert reason in page
    assert re.search(f'id="org-{field}"[^>]*aria-invalid="true"', page)
    assert db.session.get(InstallationSetting, organisation.SETTING) is None


def test_a_jpeg_logo_is_accepted(client: FlaskClient, login: Login, app: Flask) -> None:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (200, 60), (200, 30, 30)).save(out, "JPEG")
    login(Role.ADMIN)
    assert _post(client, _form(logo=(io.BytesIO(out.getvalue()), "logo.jpg"))).status_code == 302
    assert client.get("/organisation/logo").mimetype == "image/jpeg"
