"""Passwords: change, admin reset, "forgot password" links, `campaign set-password`, rules."""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
import time
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from campaign.devmail import DevmailSink
from campaign.extensions import db
from campaign.models import AuditEvent, PasswordResetToken, Role, User
from campaign.models._types import utcnow
from campaign.services import users
from campaign.services.notices import send_notice
from tests.conftest import TEST_PASSWORD, make_user, sign_in
from tests.web.test_sessions import copy_of, is_signed_in, rows_of

NEW_PASSWORD = "a brand new passphrase for spring"
PUBLIC_URL = "https://campaign.example.org"
LINK = re.compile(re.escape(PUBLIC_URL) + r"/login/reset/([A-Za-z0-9_-]+)")


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    return {**app_overrides, "PUBLIC_URL": PUBLIC_URL}


def actions() -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action)))


def can_sign_in(app: Flask, user: User, password: str) -> bool:
    response = app.test_client().post("/login", data={"email": user.email, "password": password})
    return response.status_code == 302


# --- rules -----------------------------------------------------------------------------------


def test_a_two_character_password_is_refused_with_the_minimum(app: Flask) -> None:
    with pytest.raises(users.UserError, match="at least 12 characters"):
        users.hash_password("ab")


def test_a_10000_character_password_is_refused_quickly_with_the_maximum(app: Flask) -> None:
    started = time.monotonic()
    with pytest.raises(users.UserError, match="at most 1,000 characters"):
        users.hash_password("x" * 10_000)
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize("password", ["password123", "password1234", "qwertyuiop123"])
def test_a_common_password_is_refused_saying_why(app: Flask, password: str) -> None:
    with pytest.raises(users.UserError, match="most common passwords") as refused:
        users.hash_password(password)
    assert "guess" in str(refused.value)


def test_a_password_made_of_the_address_is_refused(app: Flask) -> None:
    with pytest.raises(users.UserError, match="easy to guess"):
        users.create_user("maria.ivanova@example.org", "maria.ivanova2024", Role.VIEWER)


# --- change ----------------------------------------------------------------------------------


def test_changing_the_password_needs_the_current_one_and_ends_other_sessions(
    app: Flask, client: FlaskClient
) -> None:
    user = make_user(Role.VIEWER)
    sign_in(client, user)
    other = app.test_client()
    sign_in(other, user)
    copied = copy_of(app, client)
    assert client.get("/account/password").status_code == 200
    wrong = client.post(
        "/account/password",
        data={"current": "not my password", "new": NEW_PASSWORD, "repeat": NEW_PASSWORD},
    )
    assert wrong.status_code == 422
    assert "current password is not right" in wrong.get_data(as_text=True)
    mismatch = client.post(
        "/account/password",
        data={"current": TEST_PASSWORD, "new": NEW_PASSWORD, "repeat": NEW_PASSWORD + "x"},
    )
    assert "do not match" in mismatch.get_data(as_text=True)
    weak = client.post(
        "/account/password",
        data={"current": TEST_PASSWORD, "new": "password123", "repeat": "password123"},
    )
    assert "most common passwords" in weak.get_data(as_text=True)
    done = client.post(
        "/account/password",
        data={"current": TEST_PASSWORD, "new": NEW_PASSWORD, "repeat": NEW_PASSWORD},
    )
    assert done.status_code == 302
    assert is_signed_in(client)
    assert not is_signed_in(other)
    # This browser's cookie goes on working; a copy taken before the change was of the same
    # session, so a thief who must be shut out needs "sign out everywhere".
    assert is_signed_in(copied)
    assert len(rows_of(user)) == 1
    assert not can_sign_in(app, user, TEST_PASSWORD)
    assert can_sign_in(app, user, NEW_PASSWORD)
    assert "user.password_change" in actions()
    assert db.session.get(User, user.id).password_changed_at is not None


def test_a_cookie_copied_from_another_browser_stops_after_a_password_change(
    app: Flask, client: FlaskClient
) -> None:
    user = make_user(Role.VIEWER)
    sign_in(client, user)
    laptop = app.test_client()
    sign_in(laptop, user)
    stolen = copy_of(app, laptop)
    client.post(
        "/account/password",
        data={"current": TEST_PASSWORD, "new": NEW_PASSWORD, "repeat": NEW_PASSWORD},
    )
    assert not is_signed_in(stolen)


# --- admin reset -------------------------------------------------------------------------------


def test_an_admin_reset_forces_a_new_password_at_the_next_sign_in(
    app: Flask, client: FlaskClient
) -> None:
    admin = make_user(Role.ADMIN)
    user = make_user(Role.EDITOR)
    their_browser = app.test_client()
    sign_in(their_browser, user)
    sign_in(client, admin)
    page = client.post(f"/users/{user.id}/password/reset")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    text = page.get_data(as_text=True)
    temporary = text.split('<code class="secret">')[1].split("<")[0]
    assert len(temporary) >= 16
    assert not is_signed_in(their_browser)
    assert not can_sign_in(app, user, TEST_PASSWORD)
    assert "user.password_reset" in actions()
    assert temporary not in str(db.session.scalars(select(AuditEvent.detail)).all())

    signed = their_browser.post("/login", data={"email": user.email, "password": temporary})
    assert signed.headers["Location"].endswith("/account/password")
    for path in ("/", "/contacts/", "/account"):
        response = their_browser.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].endswith("/account/password")
    form = their_browser.get("/account/password").get_data(as_text=True)
    assert "choose a new password" in form
    their_browser.post(
        "/account/password",
        data={"current": temporary, "new": NEW_PASSWORD, "repeat": NEW_PASSWORD},
    )
    assert is_signed_in(their_browser)
    assert not db.session.get(User, user.id).must_change_password


# --- forgotten password -------------------------------------------------------------------------


def deliver_resets(app: Flask) -> list[EmailMessage]:
    """Run the reset e-mail jobs as the worker would; return what reached the mail sink."""
    config = app.config["CAMPAIGN_CONFIG"]
    with DevmailSink(config.devmail_path, config.MAIL_SERVER, config.MAIL_PORT):
        for row in db.session.scalars(select(PasswordResetToken)).all():
            send_notice("password_reset", row.id, commit=db.session.commit)
    path = config.devmail_path
    if not path.exists():
        return []
    return [
        email.message_from_bytes(bytes(m), policy=email.policy.default)  # type: ignore[misc]
        for m in mailbox.Maildir(path, create=False)
    ]


def token_in(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    found = LINK.search(body.get_content())
    assert found, body.get_content()
    return found.group(1)


def ask_for_link(client: FlaskClient, address: str) -> str:
    response = client.post("/login/forgot", data={"email": address})
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def test_forgot_password_answers_alike_and_mails_a_link_only_to_accounts(
    app: Flask, client: FlaskClient
) -> None:
    user = make_user(Role.EDITOR)
    user.language = "fr"
    db.session.commit()
    assert "/login/forgot" in client.get("/login").get_data(as_text=True)
    known = ask_for_link(client, user.email.upper())
    unknown = ask_for_link(client, "nobody@example.org")
    assert "If an account exists for this address" in known
    assert known.replace(user.email.upper(), "X") == unknown.replace("nobody@example.org", "X")
    [message] = deliver_resets(app)
    assert message["To"] == user.email
    assert message["Content-Language"] == "fr"
    assert "mot de passe" in message["Subject"].lower()
    token = token_in(message)
    assert token not in str(db.session.scalars(select(PasswordResetToken.token_hash)).all())

    sign_in(app.test_client(), user)  # an open session elsewhere
    page = client.get(f"/login/reset/{token}")
    assert page.status_code == 200
    assert page.headers["Referrer-Policy"] == "no-referrer"
    done = client.post(f"/login/reset/{token}", data={"new": NEW_PASSWORD, "repeat": NEW_PASSWORD})
    assert done.status_code == 302 and done.headers["Location"].startswith("/login")
    assert not is_signed_in(client)  # the link does not sign in
    assert rows_of(user) == []  # and every session ended
    assert can_sign_in(app, user, NEW_PASSWORD)
    assert {"user.password_reset_requested", "user.password_reset_used"} <= set(actions())

    again = client.post(
        f"/login/reset/{token}",
        data={"new": "yet another passphrase!", "repeat": "yet another passphrase!"},
    )
    assert again.status_code == 410
    assert "already been used" in again.get_data(as_text=True)
    assert can_sign_in(app, user, NEW_PASSWORD)


def test_reset_links_expired_changed_or_for_a_deactivated_account_are_refused(
    app: Flask, client: FlaskClient
) -> None:
    user = make_user(Role.EDITOR)
    ask_for_link(client, user.email)
    [message] = deliver_resets(app)
    token = token_in(message)
    changed = token[:-1] + ("A" if token[-1] != "A" else "B")
    response = client.get(f"/login/reset/{changed}")
    assert response.status_code == 410
    assert "not valid" in response.get_data(as_text=True)
    response = client.post(
        f"/login/reset/{changed}", data={"new": NEW_PASSWORD, "repeat": NEW_PASSWORD}
    )
    assert response.status_code == 410

    db.session.execute(
        update(PasswordResetToken).values(expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()
    expired = client.post(
        f"/login/reset/{token}", data={"new": NEW_PASSWORD, "repeat": NEW_PASSWORD}
    )
    assert expired.status_code == 410
    assert "expired" in expired.get_data(as_text=True)

    db.session.execute(update(PasswordResetToken).values(expires_at=utcnow() + timedelta(hours=1)))
    admin = make_user(Role.ADMIN)
    users.set_active(db.session.get(User, user.id), False, actor=admin)
    db.session.commit()
    inactive = client.post(
        f"/login/reset/{token}", data={"new": NEW_PASSWORD, "repeat": NEW_PASSWORD}
    )
    assert inactive.status_code == 410
    users.set_active(db.session.get(User, user.id), True, actor=admin)
    db.session.commit()
    assert can_sign_in(app, user, TEST_PASSWORD)


def test_a_reset_link_lives_one_hour(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    ask_for_link(client, user.email)
    row = db.session.scalar(select(PasswordResetToken))
    assert row is not None
    lifetime = row.expires_at - row.created_at
    assert timedelta(minutes=59) < lifetime <= timedelta(hours=1)


def test_a_reset_does_not_skip_two_factor(app: Flask, client: FlaskClient) -> None:
    import pyotp

    user = make_user(Role.SENDER)
    user.totp_secret = pyotp.random_base32()  # only whether one is set matters here
    db.session.commit()
    ask_for_link(client, user.email)
    [message] = deliver_resets(app)
    client.post(
        f"/login/reset/{token_in(message)}", data={"new": NEW_PASSWORD, "repeat": NEW_PASSWORD}
    )
    response = client.post("/login", data={"email": user.email, "password": NEW_PASSWORD})
    assert response.headers["Location"].startswith("/login/verify")
    assert not is_signed_in(client)


def test_reset_requests_are_rate_limited_per_address(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    for _ in range(3):
        ask_for_link(client, user.email)
    fourth = client.post("/login/forgot", data={"email": user.email})
    assert fourth.status_code == 429
    assert "Too many" in fourth.get_data(as_text=True)
    assert fourth.headers["Retry-After"].isdigit()
    assert db.session.scalar(select(db.func.count(PasswordResetToken.id))) == 3


def test_reset_requests_are_rate_limited_per_network(app: Flask, client: FlaskClient) -> None:
    statuses = [
        client.post("/login/forgot", data={"email": f"person{n}@example.org"}).status_code
        for n in range(12)
    ]
    assert statuses[:10] == [200] * 10
    assert statuses[10:] == [429, 429]


# --- the command line -------------------------------------------------------------------------


def test_set_password_reads_stdin_and_ends_the_sessions(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    sign_in(client, user)
    result = app.test_cli_runner().invoke(
        args=["set-password", user.email.upper()], input=NEW_PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    assert "password of editor@example.org is set" in result.output
    assert not is_signed_in(client)
    assert can_sign_in(app, user, NEW_PASSWORD)
    assert "user.password_set" in actions()


def test_set_password_explains_a_refusal(app: Flask) -> None:
    user = make_user(Role.EDITOR)
    runner = app.test_cli_runner()
    weak = runner.invoke(args=["set-password", user.email], input="password123\n")
    assert weak.exit_code != 0 and "most common passwords" in weak.output
    nobody = runner.invoke(args=["set-password", "nobody@example.org"], input=NEW_PASSWORD + "\n")
    assert nobody.exit_code != 0 and "no account" in nobody.output.lower()
    assert can_sign_in(app, user, TEST_PASSWORD)
