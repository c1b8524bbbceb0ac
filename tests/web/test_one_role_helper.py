"""One role check for what a page offers: campaign.web.access.may, a template global too.

Four blueprints each had their own (`_may`, `_may_edit`, `can`) and two templates asked the
user object directly; a rule written five times drifts. The route policies (`allow`) use it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

import campaign
from campaign.models import Role, User
from campaign.web.access import may
from tests.pages import html_of

Login = Callable[[Role], User]
ROOT = Path(campaign.__file__).parent


def test_no_view_or_template_checks_a_role_itself() -> None:
    views = [
        path
        for path in (ROOT / "web").rglob("*.py")
        if path.name != "access.py" and "role_enum.includes" in path.read_text(encoding="utf-8")
    ]
    assert views == []
    templates = ROOT.parent / "templates"
    if not templates.is_dir():  # the wheel carries them inside the package
        templates = ROOT / "templates"
    own = [
        str(path.relative_to(templates))
        for path in templates.rglob("*.html")
        if re.search(r"role_enum|\bcan\(", path.read_text(encoding="utf-8"))
    ]
    assert own == []
    defined = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "web").rglob("*.py")
        if re.search(r"^def (_may\w*|can)\(", path.read_text(encoding="utf-8"), re.M)
    ]
    assert defined == []


def test_no_module_compares_roles_but_the_user_model() -> None:
    # Services ask `user.may(role)` and pages `may(role)`, which asks the same method: one
    # rule. attention.py had its own `_includes`, five services `role_enum.includes`.
    own = [
        str(path.relative_to(ROOT))
        for path in ROOT.rglob("*.py")
        if path != ROOT / "models" / "user.py"
        and re.search(r"\.includes\(|role_enum\s*[<>]=?|\.rank\b", path.read_text(encoding="utf-8"))
    ]
    assert own == []
    admin, viewer = User(role=Role.ADMIN.value), User(role=Role.VIEWER.value)
    assert admin.may(Role.EDITOR) and admin.may("admin") and viewer.may(Role.VIEWER)
    assert not viewer.may(Role.EDITOR) and not viewer.may("sender")
    assert Role.from_(Role.SENDER) == [Role.SENDER, Role.ADMIN]


def test_may_is_a_template_global_and_false_for_strangers(app: Flask) -> None:
    assert app.jinja_env.globals["may"] is may
    with app.test_request_context("/"):
        assert may(Role.VIEWER) is False
        assert may("viewer") is False


@pytest.mark.parametrize(("role", "offered"), [(Role.EDITOR, False), (Role.ADMIN, True)])
def test_the_countries_page_offers_corrections_to_admins_only(
    client: FlaskClient, login: Login, role: Role, offered: bool
) -> None:
    login(role)
    page = html_of(client.get("/countries/"))
    assert "Letters name countries" in page
    assert ('id="correct-heading"' in page) is offered


@pytest.mark.parametrize(("role", "offered"), [(Role.VIEWER, False), (Role.EDITOR, True)])
def test_the_contacts_page_offers_a_new_contact_to_editors(
    client: FlaskClient, login: Login, role: Role, offered: bool
) -> None:
    login(role)
    response = client.get("/contacts/")
    assert response.status_code == 200
    page = html_of(response)
    assert ('href="/contacts/new"' in page) is offered
    # The menu (base.html) shows each area from its role up: Contacts to all, Users to admins.
    assert 'href="/contacts/"' in page
    assert 'href="/users/"' not in page
    assert ('href="/imports/"' in page) is offered
