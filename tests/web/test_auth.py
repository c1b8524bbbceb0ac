"""Signing in: passwords, lock-out, two-factor, and the audit trail they leave."""

from __future__ import annotations

from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, Role
from campaign.services.accounts import users
from tests.conftest import TEST_PASSWORD, make_user, sign_in
from tests.pages import csrf_token


def test_passwords_are_stored_as_argon2id(app: Flask) -> None:
    user = make_user(Role.EDITOR)
    assert user.password_hash.startswith("$argon2id$")
    assert TEST_PASSWORD not in user.password_hash


def test_production_hashes_with_owasp_argon2id_parameters() -> None:
    """Tests hash with argon2id's smallest cost (tests/conftest.py); production's hasher,
    kept aside before that swap, has OWASP's minimum for interactive logins."""
    from argon2 import Type, extract_parameters

    from tests.conftest import PRODUCTION_PASSWORD_HASHER as production

    assert production is not users._hasher  # the module's own, not the tests' cheap one
    assert (production.time_cost, production.memory_cost, production.parallelism) == (
        2,
        19 * 1024,
        1,
    )
    assert production.type is Type.ID
    stored = extract_parameters(production.hash(TEST_PASSWORD))
    assert (stored.type, stored.time_cost, stored.memory_cost, stored.parallelism) == (
        Type.ID,
        2,
        19 * 1024,
        1,
    )


def test_wrong_password_is_refused_and_audited(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    response = client.post("/login", data={"email": user.email, "password": "wrong password!"})
    assert response.status_code == 401
    assert "email or password is not right" in response.get_data(as_text=True)
    actions = db.session.scalars(select(AuditEvent.action)).all()
    assert "login.failed" in actions


def test_sign_in_waits_after_repeated_failures(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        client.post("/login", data={"email": user.email, "password": "wrong password!"})
    response = client.post("/login", data={"email": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.get_data(as_text=True)


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


def test_role_change_ends_existing_sessions(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    sign_in(client, user)
    users.change_role(user, Role.VIEWER)
    db.session.commit()
    assert client.get("/").status_code == 302


def test_two_factor_codes_cannot_be_guessed_without_limit(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.SENDER)
    user.totp_secret = pyotp.random_base32()
    db.session.commit()
    client.post("/login", data={"email": user.email, "password": TEST_PASSWORD})
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        client.post("/login/verify", data={"code": "000000"})
    right_code = pyotp.TOTP(user.totp_secret).now()
    response = client.post("/login/verify", data={"code": right_code})
    assert response.status_code == 429  # as /login: the wait in words and in Retry-After
    assert int(response.headers["Retry-After"]) > 0
    assert "Too many failed sign-in attempts" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_a_delay_expires_and_is_in_the_audit_log(app: Flask, client: FlaskClient) -> None:
    from campaign.queue import get_redis

    user = make_user(Role.EDITOR)
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        client.post("/login", data={"email": user.email, "password": "wrong password!"})
    assert users.sign_in_delay(user) > 0
    details = db.session.scalars(select(AuditEvent.detail)).all()
    assert any("delay_seconds" in d for d in details)
    for key in get_redis().scan_iter("campaign:sign-in:*"):
        get_redis().hset(key, "until", "0")  # the wait is over
    assert (
        client.post("/login", data={"email": user.email, "password": TEST_PASSWORD}).status_code
        == 302
    )


def test_a_password_typed_into_the_email_field_is_not_logged(
    app: Flask, client: FlaskClient
) -> None:
    client.post("/login", data={"email": "MySecretPassw0rd", "password": "x"})
    details = db.session.scalars(select(AuditEvent.detail)).all()
    assert details and all("MySecretPassw0rd" not in str(d) for d in details)


def test_the_last_admin_cannot_be_demoted_or_deactivated(app: Flask) -> None:
    admin = make_user(Role.ADMIN)
    with pytest.raises(users.UserError, match="last active administrator"):
        users.change_role(admin, Role.EDITOR)
    with pytest.raises(users.UserError, match="last active administrator"):
        users.set_active(admin, False)
    second = make_user(Role.ADMIN, "second@example.org")
    users.change_role(admin, Role.EDITOR, actor=second)
    assert admin.role == Role.EDITOR.value


def test_sign_in_refuses_an_offsite_next(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    for target in ("//evil.example/", "/\\evil.example", "https://evil.example/"):
        response = client.post(
            "/login?next=" + target, data={"email": user.email, "password": TEST_PASSWORD}
        )
        assert response.headers["Location"] == "/", target
        client.post("/logout")


@pytest.mark.parametrize("csrf_enabled", [True])
def test_forms_without_the_csrf_token_are_refused(client: FlaskClient) -> None:
    make_user(Role.ADMIN)
    response = client.post("/login", data={"email": "admin@example.org", "password": TEST_PASSWORD})
    assert response.status_code == 400
    assert "Reload the page" in response.get_data(as_text=True)
    # The same form with the page's token is accepted: the 400 was the missing token.
    data = {"email": "admin@example.org", "password": TEST_PASSWORD}
    signed_in = client.post("/login", data={**data, "csrf_token": csrf_token(client, "/login")})
    assert signed_in.status_code == 302


@pytest.mark.parametrize("proxies", [0, 1])
def test_the_audit_log_records_where_a_login_came_from(
    app: Flask, app_overrides: dict[str, Any], proxies: int
) -> None:
    from campaign import create_app

    application = create_app({**app_overrides, "TRUSTED_PROXIES": proxies})
    with application.app_context():
        application.test_client().post(
            "/login",
            data={"email": "nobody@example.org", "password": "x"},
            headers={"X-Forwarded-For": "203.0.113.7"},
            environ_base={"REMOTE_ADDR": "127.0.0.1"},
        )
        [event] = db.session.scalars(select(AuditEvent)).all()
        # Behind a trusted proxy, the client's address; otherwise the header is not believed.
        assert event.remote_addr == ("203.0.113.7" if proxies else "127.0.0.1")
        db.session.remove()
        db.engine.dispose()
