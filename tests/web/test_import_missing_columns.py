"""The import wizard asks for the columns letters need that the file lacks, and shows the result."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Contact, ContactImport, Role
from tests.pages import text_of
from tests.web.test_imports import import_id_from, upload
from workers import context, jobs

NO_ROLE = (
    "First name,Last name,E-mail,Gender\n"
    "Aigerim,Bekova,a.bekova@example.org,f\n"
    "Jean,Martin,j.martin@example.org,m\n"
)
MAPPED = {
    "map-0": "given_name",
    "map-1": "family_name",
    "map-2": "email",
    "map-3": "grammatical_gender",
}


def test_the_mapping_page_asks_for_the_missing_columns_and_the_preview_shows_them(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    login(Role.EDITOR)
    import_id = import_id_from(upload(client, NO_ROLE.encode()))
    page = text_of(client.get(f"/imports/{import_id}/mapping"))
    assert "Role for all rows" in page and "Language for all rows" in page
    assert re.search(r'<select id="fallback-role_type" name="fallback-role_type"', page)
    assert re.search(r'<select id="fallback-languages" name="fallback-languages"', page)
    # The file has a gender column: no question for it.
    assert 'id="fallback-grammatical_gender"' not in page

    refused = client.post(
        f"/imports/{import_id}/mapping", data={**MAPPED, "fallback-role_type": "emperor"}
    )
    assert refused.status_code == 400
    assert "Role type for all rows: 'emperor' is not one of" in text_of(refused)

    mapped = client.post(
        f"/imports/{import_id}/mapping",
        data={**MAPPED, "fallback-role_type": "ambassador", "fallback-languages": "unknown"},
    )
    assert mapped.headers["Location"].endswith(f"/imports/{import_id}/preview")
    record = db.session.get(ContactImport, import_id)
    assert record is not None
    db.session.refresh(record)
    assert record.mapping[" for all rows"] == {"role_type": "ambassador", "languages": ""}

    again = text_of(client.get(f"/imports/{import_id}/mapping"))
    assert re.search(r'<option value="ambassador" selected>Ambassador</option>', again)

    preview = text_of(client.get(f"/imports/{import_id}/preview"))
    assert "Role type: the file has no column for it; every row gets Ambassador." in preview
    rows = re.findall(r'<tr class="outcome-new">.*?</tr>', preview, re.S)
    assert len(rows) == 2
    assert "Ambassador" in rows[0] and "for all rows" in rows[0]
    assert "Dear Ambassador Bekova," in rows[0]
    assert "Feminine" in rows[0]
    assert "Dear Ambassador Martin," in rows[1]
    assert "no column: unknown" in rows[0]  # no language column, left unknown

    client.post(f"/imports/{import_id}/start")
    context.set_app(app)
    jobs.import_contacts(import_id)
    db.session.expire_all()
    roles = db.session.scalars(select(Contact.role_type)).all()
    assert roles == ["ambassador", "ambassador"]


def test_left_unknown_the_preview_says_the_role_is_other(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    login(Role.EDITOR)
    import_id = import_id_from(upload(client, NO_ROLE.encode()))
    client.post(f"/imports/{import_id}/mapping", data=MAPPED)
    preview = text_of(client.get(f"/imports/{import_id}/preview"))
    assert "Role type: the file has no column for it; left unknown (Other role)." in preview
    assert "Dear Aigerim," in preview


def test_a_value_the_page_never_offered_is_refused_naming_the_field(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    login(Role.EDITOR)
    import_id = import_id_from(upload(client, NO_ROLE.encode()))
    page = text_of(client.get(f"/imports/{import_id}/mapping"))
    role_select = re.search(r'<select id="fallback-role_type".*?</select>', page, re.S)
    assert role_select is not None
    # "Other role" is what "leave unknown" stores: one choice, offered once.
    assert 'value="other"' not in role_select.group(0)
    refused = client.post(
        f"/imports/{import_id}/mapping",
        data={**MAPPED, "fallback-role_type": "unknown", "fallback-languages": "de xx zz"},
    )
    assert refused.status_code == 400
    assert "Languages, in order of preference for all rows: 'de xx zz'" in text_of(refused)
    record = db.session.get(ContactImport, import_id)
    assert record is not None
    db.session.refresh(record)
    assert " for all rows" not in record.mapping  # nothing kept


def test_the_preview_in_french_names_role_type_and_agrees_with_languages(
    app: Flask, client: FlaskClient
) -> None:
    from tests.conftest import sign_in
    from tests.i18n.pages import user_in

    sign_in(client, user_in(Role.EDITOR, "fr"))
    import_id = import_id_from(upload(client, NO_ROLE.encode()))
    client.post(f"/imports/{import_id}/mapping", data=MAPPED)
    preview = text_of(client.get(f"/imports/{import_id}/preview"))
    assert '<th scope="col">Type de rôle</th>' in preview
    assert '<th scope="col">Fonction</th>' not in preview
    assert "laissé inconnu" not in preview
    assert "la valeur reste inconnue" in preview
