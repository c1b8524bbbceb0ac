"""Server-side sessions: logout, idle timeout and lifetime end every copy of a cookie."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from campaign.extensions import db
from campaign.models import Role, User, UserSession
from campaign.models._types import utcnow
from campaign.services.accounts import users
from tests.conftest import TEST_PASSWORD, make_user, sign_in

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"


def copy_of(app: Flask, client: FlaskClient) -> FlaskClient:
    """A second browser holding a copy of `client`'s session cookie (a stolen cookie)."""
    cookie = client.get_cookie("session")
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    return thief


def is_signed_in(client: FlaskClient) -> bool:
    response = client.get("/")
    if response.status_code == 302:
        assert "/login" in response.headers["Location"]
        return False
    assert response.status_code == 200
    return True


def rows_of(user: User) -> list[UserSession]:
    return list(db.session.scalars(select(UserSession).where(UserSession.user_id == user.id)))


def test_a_cookie_copied_before_logout_stops_working_after_it(
    app: Flask, client: FlaskClient
) -> None:
    user = make_user(Role.EDITOR)
    sign_in(client, user)
    thief = copy_of(app, client)
    assert is_signed_in(thief)
    client.post("/logout")
    assert not is_signed_in(client)
    assert not is_signed_in(thief)
    assert rows_of(user) == []


def test_only_a_hash_of_the_token_is_stored(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    client.get("/login", headers={"User-Agent": BROWSER})
    client.post(
        "/login",
        data={"email": user.email, "password": "correct horse battery staple"},
        headers={"User-Agent": BROWSER},
        environ_base={"REMOTE_ADDR": "198.51.100.23"},
    )
    [row] = rows_of(user)
    cookie = client.get_cookie("session")
    assert cookie is not None and row.token_hash not in cookie.value
    assert len(row.token_hash) == 64
    assert row.network == "198.51.100.0/24"
    assert "Firefox" in row.user_agent


def test_an_idle_session_ends_after_the_idle_timeout(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    sign_in(client, user)
    thief = copy_of(app, client)
    idle = app.config["SESSION_IDLE_MINUTES"]
    assert idle == 30
    db.session.execute(
        update(UserSession).values(last_seen_at=utcnow() - timedelta(minutes=idle - 1))
    )
    db.session.commit()
    assert is_signed_in(client)  # used within the timeout: still open, and seen again now
    db.session.execute(
        update(UserSession).values(last_seen_at=utcnow() - timedelta(minutes=idle, seconds=5))
    )
    db.session.commit()
    assert not is_signed_in(client)
    assert not is_signed_in(thief)
    assert rows_of(user) == []


def test_a_session_ends_after_its_lifetime_however_busy(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    sign_in(client, user)
    assert app.config["SESSION_MAX_HOURS"] == 12
    db.session.execute(update(UserSession).values(created_at=utcnow() - timedelta(hours=12)))
    db.session.commit()
    assert not is_signed_in(client)


def test_last_seen_is_written_at_most_once_a_minute(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    sign_in(client, user)
    [row] = rows_of(user)
    first = row.last_seen_at
    assert is_signed_in(client)
    db.session.refresh(row)
    assert row.last_seen_at == first
    earlier = utcnow() - timedelta(minutes=2)
    db.session.execute(update(UserSession).values(last_seen_at=earlier))
    db.session.commit()
    assert is_signed_in(client)
    db.session.refresh(row)
    assert row.last_seen_at > earlier + timedelta(minutes=1)


def test_the_settings_are_read_from_the_environment() -> None:
    from campaign.config import Config

    config = Config.from_env(
        {"CAMPAIGN_SESSION_IDLE_MINUTES": "5", "CAMPAIGN_SESSION_MAX_HOURS": "2"}
    )
    assert (config.SESSION_IDLE_MINUTES, config.SESSION_MAX_HOURS) == (5, 2)


def test_the_account_page_lists_sessions_and_signs_out_everywhere(
    app: Flask, client: FlaskClient
) -> None:
    user = make_user(Role.VIEWER)
    sign_in(client, user)
    laptop = app.test_client()
    laptop.post(
        "/login",
        data={"email": user.email, "password": "correct horse battery staple"},
        headers={"User-Agent": BROWSER},
        environ_base={"REMOTE_ADDR": "2001:db8:1234:5678::9"},
    )
    assert len(rows_of(user)) == 2
    page = client.get("/account").get_data(as_text=True)
    assert "2001:db8:1234::/48" in page
    assert "Firefox" in page
    assert "This browser" in page
    assert 'href="/account"' in page  # the menu links the account page
    response = client.post("/account/sessions/end-all")
    assert response.status_code == 302
    assert not is_signed_in(client)
    assert not is_signed_in(laptop)
    assert rows_of(user) == []


def test_one_other_session_can_be_ended(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.VIEWER)
    sign_in(client, user)
    other = app.test_client()
    sign_in(other, user)
    mine, theirs = sorted(rows_of(user), key=lambda row: row.id)
    client.post(f"/account/sessions/{theirs.id}/end")
    assert is_signed_in(client)
    assert not is_signed_in(other)
    # Someone else's session cannot be ended by guessing its number.
    stranger = make_user(Role.VIEWER, "stranger@example.org")
    stranger_client = app.test_client()
    sign_in(stranger_client, stranger)
    assert stranger_client.post(f"/account/sessions/{mine.id}/end").status_code == 404
    assert is_signed_in(client)


def test_deactivation_and_role_change_delete_the_sessions(app: Flask, client: FlaskClient) -> None:
    admin = make_user(Role.ADMIN)
    user = make_user(Role.EDITOR)
    sign_in(client, user)
    users.change_role(user, Role.VIEWER, actor=admin)
    db.session.commit()
    assert rows_of(user) == []
    sign_in(client, user)
    users.set_active(user, False, actor=admin)
    db.session.commit()
    assert rows_of(user) == []
    assert not is_signed_in(client)


def test_a_remember_me_cookie_does_not_bring_a_session_back(
    app: Flask, client: FlaskClient
) -> None:
    from flask_login.utils import encode_cookie

    user = make_user(Role.EDITOR)
    with app.test_request_context():
        remembered = encode_cookie(user.get_id())
    client.set_cookie("remember_token", remembered)
    assert not is_signed_in(client)


# --- a half-finished sign-in (password right, two-factor code owed) -----------------------------

NEW_PASSPHRASE = "violet tractor mercury plank"


def _with_totp(user: User) -> str:
    import pyotp

    from campaign.secret_box import TOTP_SECRETS, encrypt_secret

    secret = pyotp.random_base32()
    user.totp_secret = encrypt_secret(secret, purpose=TOTP_SECRETS)
    db.session.commit()
    return secret


def _fully_signed_in(app: Flask, user: User, secret: str) -> FlaskClient:
    """The real user's browser, past both steps with the previous 30-second code (the
    attacker is left the current one: each code works once)."""
    import pyotp

    browser = app.test_client()
    browser.post("/login", data={"email": user.email, "password": TEST_PASSWORD})
    code = pyotp.TOTP(secret).at(utcnow() - timedelta(seconds=30))
    assert browser.post("/login/verify", data={"code": code}).status_code == 302
    assert is_signed_in(browser)
    return browser


def _change_own_password(app: Flask, user: User, secret: str) -> None:
    browser = _fully_signed_in(app, user, secret)
    done = browser.post(
        "/account/password",
        data={"current": TEST_PASSWORD, "new": NEW_PASSPHRASE, "repeat": NEW_PASSPHRASE},
    )
    assert done.status_code == 302
    assert is_signed_in(browser)  # the browser that changed it stays signed in


def _sign_out_everywhere(app: Flask, user: User, secret: str) -> None:
    browser = _fully_signed_in(app, user, secret)
    assert browser.post("/account/sessions/end-all").status_code == 302


def _admin_reset(app: Flask, user: User, secret: str) -> None:
    admin = make_user(Role.ADMIN, "boss@example.org")
    browser = app.test_client()
    sign_in(browser, admin)
    assert browser.post(f"/users/{user.id}/password/reset").status_code == 200


def _set_password_command(app: Flask, user: User, secret: str) -> None:
    result = app.test_cli_runner().invoke(
        args=["set-password", user.email], input=NEW_PASSPHRASE + "\n"
    )
    assert result.exit_code == 0, result.output


def _reset_link(app: Flask, user: User, secret: str) -> None:
    from tests.web.test_passwords import deliver_resets, token_in

    browser = app.test_client()
    assert browser.post("/login/forgot", data={"email": user.email}).status_code == 200
    [message] = deliver_resets(app)
    done = browser.post(
        f"/login/reset/{token_in(message)}",
        data={"new": NEW_PASSPHRASE, "repeat": NEW_PASSPHRASE},
    )
    assert done.status_code == 302


@pytest.mark.parametrize(
    "event",
    [_change_own_password, _sign_out_everywhere, _admin_reset, _set_password_command, _reset_link],
)
def test_a_half_finished_sign_in_ends_with_a_password_change_or_sign_out_everywhere(
    app: Flask, client: FlaskClient, event: Callable[[Flask, User, str], None]
) -> None:
    import pyotp

    user = make_user(Role.SENDER, "victim@example.org")
    secret = _with_totp(user)
    # Someone with the old password stops at the two-factor step...
    attacker = client
    step = attacker.post("/login", data={"email": user.email, "password": TEST_PASSWORD})
    assert step.headers["Location"].startswith("/login/verify")
    # ... the real user secures the account ...
    event(app, user, secret)
    # ... and one current code (a glance at the phone, a phished code) must not finish it.
    late = attacker.post("/login/verify", data={"code": pyotp.TOTP(secret).now()})
    assert late.status_code == 302 and late.headers["Location"].startswith("/login")
    assert not is_signed_in(attacker)


def test_a_half_finished_sign_in_is_refused_after_five_minutes(
    app: Flask, client: FlaskClient
) -> None:
    import pyotp

    from campaign.web.accounts.auth import PENDING_TOTP_SINCE

    user = make_user(Role.SENDER)
    secret = _with_totp(user)
    client.post("/login", data={"email": user.email, "password": TEST_PASSWORD})
    with client.session_transaction() as cookie:
        cookie[PENDING_TOTP_SINCE] = int(cookie[PENDING_TOTP_SINCE]) - 5 * 60 - 1
    late = client.post("/login/verify", data={"code": pyotp.TOTP(secret).now()})
    assert late.status_code == 302 and late.headers["Location"].startswith("/login")
    assert not is_signed_in(client)
    # A fresh start works.
    client.post("/login", data={"email": user.email, "password": TEST_PASSWORD})
    code = pyotp.TOTP(secret).at(utcnow() + timedelta(seconds=30))
    assert client.post("/login/verify", data={"code": code}).status_code == 302
    assert is_signed_in(client)


# --- background polling is not activity ------------------------------------------------------

POLL_HEADER = {"X-Background-Request": "poll"}


def test_a_progress_page_polling_in_the_background_does_not_keep_the_session_open(
    app: Flask, client: FlaskClient
) -> None:
    from pathlib import Path

    user = make_user(Role.EDITOR)
    sign_in(client, user)
    idle = app.config["SESSION_IDLE_MINUTES"]
    long_ago = utcnow() - timedelta(minutes=idle - 1)
    db.session.execute(update(UserSession).values(last_seen_at=long_ago))
    db.session.commit()
    # The page's script polls every 1.5 s while nobody is at the screen.
    assert client.get("/", headers=POLL_HEADER).status_code == 200
    [row] = rows_of(user)
    db.session.refresh(row)
    assert row.last_seen_at == long_ago
    db.session.execute(
        update(UserSession).values(last_seen_at=utcnow() - timedelta(minutes=idle, seconds=5))
    )
    db.session.commit()
    assert client.get("/", headers=POLL_HEADER).status_code in (302, 401)
    assert not is_signed_in(client)
    # Both polling scripts mark their requests so.
    for script in ("campaign-progress.js", "import-progress.js"):
        source = (Path(str(app.static_folder)) / "js" / script).read_text()
        assert '"X-Background-Request": "poll"' in source, script
