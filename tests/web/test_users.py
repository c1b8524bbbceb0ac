"""Account administration: only admins, role changes end sessions and are audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, Role, User
from campaign.models._types import utcnow
from campaign.services.accounts import two_factor
from tests.conftest import TEST_PASSWORD, IsolatedClient, make_user, sign_in
from tests.pages import html_of

Login = Callable[[Role], User]


def test_only_admins_reach_the_users_page(client: FlaskClient, login: Login, app: Flask) -> None:
    login(Role.SENDER)
    assert client.get("/users/").status_code == 403
    assert client.post("/users/", data={"email": "x@example.org"}).status_code == 403


def test_editor_cannot_manage_users(client: FlaskClient, login: Login, app: Flask) -> None:
    viewer = make_user(Role.VIEWER, "someone@example.org")
    login(Role.EDITOR)
    assert client.post(f"/users/{viewer.id}/role", data={"role": "admin"}).status_code == 403
    assert db.session.get(User, viewer.id).role == "viewer"


def test_admin_lists_and_creates_accounts(client: FlaskClient, login: Login, app: Flask) -> None:
    login(Role.ADMIN)
    page = html_of(client.get("/users/"))
    assert "admin@example.org" in page and "Two-factor" in page
    response = client.post(
        "/users/",
        data={"email": "New.Editor@Example.org", "password": TEST_PASSWORD, "role": "editor"},
    )
    assert response.status_code == 302
    created = db.session.scalar(select(User).where(User.email == "new.editor@example.org"))
    assert created is not None and created.role == "editor"
    short = client.post(
        "/users/", data={"email": "b@example.org", "password": "short", "role": "viewer"}
    )
    assert short.status_code == 422 and "at least 12 characters" in html_of(short)


def test_mass_assignment_on_create_is_ignored(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    login(Role.ADMIN)
    client.post(
        "/users/",
        data={
            "email": "c@example.org",
            "password": TEST_PASSWORD,
            "role": "viewer",
            "totp_secret": "JBSWY3DPEHPK3PXP",
            "is_active_account": "0",
            "session_version": "99",
        },
    )
    created = db.session.scalar(select(User).where(User.email == "c@example.org"))
    assert created is not None
    assert (created.totp_secret, created.is_active_account, created.session_version) == (
        None,
        True,
        1,
    )


def test_role_change_is_audited_and_ends_their_sessions(app: Flask) -> None:
    app.test_client_class = IsolatedClient
    admin_client = app.test_client()
    editor_client = app.test_client()
    admin = make_user(Role.ADMIN)
    editor = make_user(Role.EDITOR)
    sign_in(admin_client, admin)
    sign_in(editor_client, editor)
    assert editor_client.get("/contacts/new").status_code == 200
    response = admin_client.post(f"/users/{editor.id}/role", data={"role": "viewer"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(User, editor.id).role == "viewer"
    assert editor_client.get("/contacts/").status_code == 302  # signed out
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "user.role_change"))
    assert event is not None
    assert event.actor_email == admin.email
    assert event.detail == {"email": editor.email, "from": "editor", "to": "viewer"}


def test_the_last_admin_cannot_be_demoted_or_deactivated(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    admin = login(Role.ADMIN)
    page = client.post(f"/users/{admin.id}/role", data={"role": "viewer"}, follow_redirects=True)
    assert "last active administrator" in html_of(page)
    assert db.session.get(User, admin.id).role == "admin"
    client.post(f"/users/{admin.id}/active", data={"active": "0"})
    assert db.session.get(User, admin.id).is_active_account


def test_deactivate_reactivate_and_unlock(client: FlaskClient, login: Login, app: Flask) -> None:
    login(Role.ADMIN)
    other = make_user(Role.EDITOR)
    other.locked_until = utcnow() + timedelta(minutes=10)  # delayed while Redis was away
    db.session.commit()
    assert "sign-in delayed" in html_of(client.get("/users/"))
    client.post(f"/users/{other.id}/unlock")
    assert db.session.get(User, other.id).locked_until is None
    listing = client.get("/users/")
    assert listing.status_code == 200 and other.email in html_of(listing)
    assert "sign-in delayed" not in html_of(listing)
    client.post(f"/users/{other.id}/active", data={"active": "0"})
    assert not db.session.get(User, other.id).is_active_account
    client.post(f"/users/{other.id}/active", data={"active": "1"})
    assert db.session.get(User, other.id).is_active_account
    actions = set(db.session.scalars(select(AuditEvent.action)))
    assert {"user.unlock", "user.deactivate", "user.activate"} <= actions


def test_two_factor_switches_per_role(client: FlaskClient, login: Login, app: Flask) -> None:
    login(Role.ADMIN)
    client.post("/users/two-factor", data={"required": ["sender", "editor"]})
    assert [two_factor.is_totp_required(r) for r in Role] == [False, True, True, False]
    client.post("/users/two-factor", data={"required": ["sender"]})
    assert [two_factor.is_totp_required(r) for r in Role] == [False, False, True, False]
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "role_policy.change"))
    assert len(list(events)) == 3
