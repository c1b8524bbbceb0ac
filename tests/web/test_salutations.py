"""Salutation rules page: everyone signed in views, only admins change rules and settings."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, Role, SalutationRule, SalutationSetting, User
from campaign.services.statements import salutation_rules
from tests.pages import html_of

Login = Callable[[Role], User]


def test_viewer_sees_the_built_in_table_and_settings_but_cannot_change_them(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    login(Role.VIEWER)
    page = html_of(client.get("/salutations/"))
    assert "Your Excellency," in page and "Уважаемый господин Посол!" in page
    assert "Madame l&#39;Ambassadrice," in page and "fr_ambassador_feminine" in page
    assert "Add a rule" not in page and "Save settings" not in page
    french = html_of(client.get("/salutations/?lang=fr"))
    assert "Madame la Rapporteuse spéciale," in french and "Your Excellency," not in french
    refused = client.post("/salutations/rules", data={"language": "de", "role": "*", "text": "x"})
    assert refused.status_code == 403
    assert client.post("/salutations/settings").status_code == 403
    assert db.session.scalars(select(SalutationRule)).all() == []


def test_editor_cannot_change_rules(client: FlaskClient, login: Login, app: Flask) -> None:
    login(Role.EDITOR)
    assert client.get("/salutations/").status_code == 200
    refused = client.post("/salutations/rules", data={"language": "de", "role": "*", "text": "x"})
    assert refused.status_code == 403


def test_admin_adds_edits_and_deletes_a_rule(client: FlaskClient, login: Login, app: Flask) -> None:
    login(Role.ADMIN)
    response = client.post(
        "/salutations/rules",
        data={
            "language": "de",
            "kind": "salutation",
            "role": "minister",
            "gender": "f",
            "style": "*",
            "text": "Sehr geehrte Frau Ministerin,",
        },
    )
    assert response.status_code == 302
    row = db.session.scalars(select(SalutationRule)).one()
    page = html_of(client.get("/salutations/?lang=de"))
    assert "Sehr geehrte Frau Ministerin," in page and "No default rule (role *) for: de" in page
    response = client.post(
        f"/salutations/rules/{row.id}/edit",
        data={
            "language": "de",
            "kind": "salutation",
            "role": "minister",
            "gender": "f",
            "style": "*",
            "text": "Sehr geehrte Frau Bundesministerin,\n",
        },
    )
    assert response.status_code == 302
    db.session.refresh(row)
    assert row.texts == ["Sehr geehrte Frau Bundesministerin,"]
    assert client.post(f"/salutations/rules/{row.id}/delete").status_code == 302
    assert db.session.scalars(select(SalutationRule)).all() == []
    actions = db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions[-3:] == [
        "salutation_rule.create",
        "salutation_rule.update",
        "salutation_rule.delete",
    ]


def test_an_invalid_rule_shows_every_problem_and_keeps_the_form(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    login(Role.ADMIN)
    response = client.post(
        "/salutations/rules",
        data={"language": "de-AT", "role": "minister", "gender": "f", "text": "Dear H.E. {rank},"},
    )
    page = html_of(response)
    assert response.status_code == 422
    assert "rules are kept per language, not per region" in page
    assert "unknown placeholder {rank}" in page
    assert "Dear H.E. {rank}," in page  # what was typed is kept
    assert db.session.scalars(select(SalutationRule)).all() == []


def test_admin_changes_the_french_ambassador_setting(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    login(Role.ADMIN)
    response = client.post("/salutations/settings", data={"fr_ambassador_feminine": "ambassadeur"})
    assert response.status_code == 302
    assert db.session.get(SalutationSetting, "fr_ambassador_feminine").value == "ambassadeur"  # type: ignore[union-attr]
    assert salutation_rules.current_rule_set().chosen_settings["fr_ambassador_feminine"] == (
        "ambassadeur"
    )
    refused = client.post("/salutations/settings", data={"fr_ambassador_feminine": "bogus"})
    assert refused.status_code == 422 and "bogus" in html_of(refused)
