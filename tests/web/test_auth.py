"""Signing in: passwords, lock-out, two-factor, and the audit trail they leave."""

from __future__ import annotations

import pyotp
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, Role, User
from campaign.services import users
from tests.conftest import TEST_PASSWORD, make_user, sign_in


def test_passwords_are_stored_as_argon2id(app: Flask) -> None:
    user = make_user(Role.EDITOR)
    assert user.password_hash.startswith("$argon2id$")
    assert TEST_PASSWORD not in user.password_hash


def test_wrong_password_is_refused_and_audited(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    response = client.post("/login", data={"email": user.email, "password": "wrong password!"})
    assert response.status_code == 401
    assert "email or password is not right" in response.get_data(as_text=True)
    actions = db.session.scalars(select(AuditEvent.action)).all()
    assert "login.failed" in actions


def test_account_locks_after_repeated_failures(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        client.post("/login", data={"email": user.email, "password": "wrong password!"})
    response = client.post("/login", data={"email": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 401
    assert "locked" in response.get_data(as_text=True)


def test_two_factor_is_asked_for_after_the_password(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.SENDER)
    user.totp_secret = pyotp.random_base32()
    db.session.commit()
    response = client.post("/login", data={"email": user.email, "password": TEST_PASSWORD})
    assert response.headers["Location"].startswith("/login/verify")
    assert client.get("/").status_code == 302  # not signed in yet
    bad = client.post("/login/verify", data={"code": "000000"})
    assert bad.status_code == 401
    good = client.post("/login/verify", data={"code": pyotp.TOTP(user.totp_secret).now()})
    assert good.status_code == 302
    assert client.get("/").status_code == 200


def test_mandatory_two_factor_sends_the_user_to_set_up(app: Flask, client: FlaskClient) -> None:
    users.set_totp_required(Role.SENDER, True)
    db.session.commit()
    user = make_user(Role.SENDER)
    sign_in(client, user)
    assert client.get("/").headers["Location"].endswith("/account/two-factor")
    page = client.get("/account/two-factor").get_data(as_text=True)
    secret = page.split('<code class="secret">')[1].split("<")[0]
    client.post("/account/two-factor", data={"code": pyotp.TOTP(secret).now()})
    assert client.get("/").status_code == 200
    assert db.session.get(User, user.id).totp_secret == secret


def test_role_change_ends_existing_sessions(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    sign_in(client, user)
    users.change_role(user, Role.VIEWER)
    db.session.commit()
    assert client.get("/").status_code == 302
