"""Server-side sessions: logout, idle timeout and lifetime end every copy of a cookie."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from campaign.extensions import db
from campaign.models import Role, User, UserSession
from campaign.models._types import utcnow
from campaign.services import users
from tests.conftest import make_user, sign_in

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
