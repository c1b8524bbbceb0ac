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
from sqlalchemy.orm import Session

from campaign.devmail import DevmailSink
from campaign.extensions import db
from campaign.models import AuditEvent, PasswordResetToken, Role, User
from campaign.models._types import utcnow
from campaign.services.accounts import users
from campaign.services.sending.notices import send_notice
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
    # This browser's cookie goes on working under the new session version; a copy taken
    # before the change carries the old one and stops.
    assert not is_signed_in(copied)
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


# --- issue 13 review: admin reset, temporary password, reset links, timing, wording -----------

TEMPORARY = re.compile(r'<code class="secret">([^<]+)</code>')


def admin_resets(app: Flask, user: User) -> str:
    admin = db.session.scalar(select(User).where(User.email == "boss@example.org"))
    admin = admin or make_user(Role.ADMIN, "boss@example.org")
    browser = app.test_client()
    sign_in(browser, admin)
    page = browser.post(f"/users/{user.id}/password/reset")
    assert page.status_code == 200
    found = TEMPORARY.search(page.get_data(as_text=True))
    assert found
    return found.group(1)


def test_an_admin_reset_spends_the_open_reset_links(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    ask_for_link(client, user.email)
    [message] = deliver_resets(app)
    admin_resets(app, user)
    response = client.post(
        f"/login/reset/{token_in(message)}", data={"new": NEW_PASSWORD, "repeat": NEW_PASSWORD}
    )
    assert response.status_code == 410
    assert not can_sign_in(app, user, NEW_PASSWORD)


def test_the_temporary_password_is_easy_to_read_out_and_expires_after_72_hours(
    app: Flask, client: FlaskClient
) -> None:
    user = make_user(Role.EDITOR)
    temporary = admin_resets(app, user)
    assert re.fullmatch(r"[a-z2-9]{4}(-[a-z2-9]{4}){4}", temporary), temporary
    assert not set(temporary) & set("lI1O0o")
    assert timedelta(hours=72) == users.TEMPORARY_PASSWORD_LIFETIME
    db.session.execute(
        update(User)
        .where(User.id == user.id)
        .values(password_changed_at=utcnow() - timedelta(hours=72, minutes=1))
    )
    db.session.commit()
    late = client.post("/login", data={"email": user.email, "password": temporary})
    assert late.status_code == 401
    assert "The email or password is not right." in late.get_data(as_text=True)
    # The administrator resets again; the new one works.
    again = admin_resets(app, user)
    assert client.post("/login", data={"email": user.email, "password": again}).status_code == 302


def test_the_forced_change_page_asks_for_the_temporary_password(
    app: Flask, client: FlaskClient
) -> None:
    user = make_user(Role.EDITOR)
    temporary = admin_resets(app, user)
    client.post("/login", data={"email": user.email, "password": temporary})
    page = client.get("/account/password").get_data(as_text=True)
    assert "The temporary password your administrator gave you" in page
    assert ">Current password<" not in page
    client.post(
        "/account/password",
        data={"current": temporary, "new": NEW_PASSWORD, "repeat": NEW_PASSWORD},
    )
    assert ">Current password<" in client.get("/account/password").get_data(as_text=True)


def test_a_deactivated_account_costs_the_same_argon2_check(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = make_user(Role.ADMIN)
    gone = make_user(Role.VIEWER)
    users.set_active(gone, False, actor=admin)
    db.session.commit()
    checked: list[str] = []
    real = users._hasher

    class CountingHasher:
        """The real argon2 hasher, counting its verifications."""

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def verify(self, password_hash: str, password: str) -> bool:
            checked.append(password_hash)
            return real.verify(password_hash, password)

    monkeypatch.setattr(users, "_hasher", CountingHasher())
    for address in (admin.email, gone.email, "nobody@example.org"):
        checked.clear()
        response = client.post("/login", data={"email": address, "password": "wrong guess!"})
        assert response.status_code == 401
        assert len(checked) == 1, address  # one argon2 verification whichever the case


def test_a_reset_link_is_random_not_derived_from_the_secret_key(
    app: Flask, client: FlaskClient
) -> None:
    import base64
    import hashlib
    import hmac
    from datetime import UTC, datetime

    user = make_user(Role.EDITOR)
    ask_for_link(client, user.email)
    [message] = deliver_resets(app)
    assert len(token_in(message)) >= 43  # 32 random bytes
    row = db.session.scalar(select(PasswordResetToken))
    assert row is not None
    # Someone holding the secret key (a leaked configuration) forges the old derivation.
    stamp = (row.expires_at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    forged_message = f"password-reset:{row.id}:{row.user_id}:{stamp}".encode()
    key = str(app.config["SECRET_KEY"]).encode()
    forged = base64.urlsafe_b64encode(hmac.new(key, forged_message, hashlib.sha256).digest())
    response = client.post(
        f"/login/reset/{forged.rstrip(b'=').decode()}",
        data={"new": NEW_PASSWORD, "repeat": NEW_PASSWORD},
    )
    assert response.status_code == 410
    assert not can_sign_in(app, user, NEW_PASSWORD)


def test_one_link_used_twice_at_the_same_moment_sets_one_password(
    app: Flask, client: FlaskClient
) -> None:
    from campaign.services.accounts import password_reset

    user = make_user(Role.EDITOR)
    ask_for_link(client, user.email)
    [message] = deliver_resets(app)
    token = token_in(message)
    second = "a second passphrase, later"
    with app.test_request_context(f"/login/reset/{token}", method="POST"):
        # This request reads the link as unused (and holds what it read) ...
        held, _ = password_reset.check_link(token)
        # ... when another request, in its own database session, uses it and commits.
        with Session(db.engine) as other:
            row = other.scalar(select(PasswordResetToken))
            assert row is not None and row.used_at is None
            other.execute(
                update(PasswordResetToken)
                .where(PasswordResetToken.id == row.id)
                .values(used_at=utcnow())
            )
            stored = other.get(User, user.id)
            assert stored is not None
            stored.password_hash = users.hash_password(NEW_PASSWORD)
            other.commit()
        with pytest.raises(password_reset.LinkRefused):
            password_reset.use_link(token, second, second)
        assert held.user_id == user.id
        db.session.rollback()
    assert can_sign_in(app, user, NEW_PASSWORD)
    assert not can_sign_in(app, user, second)


def test_the_reset_page_is_rate_limited_per_network(app: Flask, client: FlaskClient) -> None:
    statuses = [
        client.get(f"/login/reset/guess{n:04d}guessguessguessguessguessguessgu").status_code
        for n in range(40)
    ]
    assert statuses[0] == 410
    assert statuses[-1] == 429
    other = client.get("/login/reset/guess", environ_base={"REMOTE_ADDR": "203.0.113.8"})
    assert other.status_code == 410


def test_the_reset_form_links_back_to_sign_in_and_says_advice_once(
    app: Flask, client: FlaskClient
) -> None:
    user = make_user(Role.EDITOR)
    ask_for_link(client, user.email)
    [message] = deliver_resets(app)
    token = token_in(message)
    page = client.get(f"/login/reset/{token}").get_data(as_text=True)
    assert 'href="/login"' in page
    advice = "A few unrelated words make a strong password."
    weak = client.post(
        f"/login/reset/{token}", data={"new": "qwertyuiop123", "repeat": "qwertyuiop123"}
    )
    assert weak.status_code == 422
    assert "most common passwords" in weak.get_data(as_text=True)
    assert weak.get_data(as_text=True).count(advice) == 1
    signed = app.test_client()
    sign_in(signed, user)
    changed = signed.post(
        "/account/password",
        data={"current": TEST_PASSWORD, "new": "qwertyuiop123", "repeat": "qwertyuiop123"},
    )
    assert changed.get_data(as_text=True).count(advice) == 1
    # Where no page says it first (the command line), the refusal gives the advice.
    with pytest.raises(users.UserError, match=advice):
        users.hash_password("qwertyuiop123")
