"""Sign-in abuse: per-network and per-account delays in Redis, one message for every refusal."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, Role, User
from campaign.queue import get_redis
from campaign.services.accounts import sign_in_limits, users
from tests import servers
from tests.conftest import TEST_PASSWORD, make_user, sign_in

GENERIC = "The email or password is not right."


def attempt(client: FlaskClient, address: str, password: str, remote: str = "127.0.0.1") -> Any:
    return client.post(
        "/login",
        data={"email": address, "password": password},
        environ_base={"REMOTE_ADDR": remote},
    )


def end_delays() -> None:
    """Move time past every delay (the counters stay): as if the wait were over."""
    redis = get_redis()
    for key in redis.scan_iter("campaign:sign-in:*"):
        redis.hset(key, "until", "0")


def test_unknown_wrong_and_delayed_addresses_read_alike(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    free = app.config["LOGIN_MAX_FAILURES"]
    answers = {}
    for address in (user.email, "nobody@example.org"):
        for n in range(free):
            response = attempt(client, address, "wrong password!", remote=f"192.0.2.{n}")
            assert response.status_code == 401
            assert GENERIC in response.get_data(as_text=True)
        # Still delayed for this address from this network, even with the right password.
        delayed = attempt(client, address, TEST_PASSWORD, remote="192.0.2.99")
        assert delayed.status_code == 429
        page = delayed.get_data(as_text=True).replace(address, "X")
        answers[address] = re.sub(r'name="csrf_token" value="[^"]*"', "", page)
        assert "locked" not in answers[address]
    assert answers[user.email] == answers["nobody@example.org"]
    assert "Too many failed sign-in attempts for this address" in answers[user.email]


def test_a_second_sign_in_while_delayed_is_refused_then_works_after_the_wait(
    app: Flask, client: FlaskClient
) -> None:
    user = make_user(Role.EDITOR)
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        attempt(client, user.email, "wrong password!")
    refused = attempt(client, user.email, TEST_PASSWORD)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert client.get("/").status_code == 302
    end_delays()
    assert attempt(client, user.email, TEST_PASSWORD).status_code == 302
    assert client.get("/").status_code == 200


def test_delays_grow_but_a_stranger_cannot_hold_an_account_longer_than_the_cap(
    app: Flask,
) -> None:
    user = make_user(Role.EDITOR)
    waits = []
    with app.test_request_context(environ_base={"REMOTE_ADDR": "198.51.100.7"}):
        for _ in range(40):
            users.count_failure(user, "bad password")
            waits.append(sign_in_limits.account_delay(user.email))
    assert waits[:4] == [0, 0, 0, 0]
    growing = [w for w in waits if w]
    assert growing == sorted(growing)
    assert growing[1] >= 2 * growing[0] - 1
    assert max(waits) <= app.config["LOGIN_MAX_DELAY_MINUTES"] * 60
    assert max(waits) > 14 * 60


def test_a_thousand_attempts_from_one_address_in_a_minute_are_mostly_refused(
    app: Flask, client: FlaskClient
) -> None:
    started = time.monotonic()
    statuses = []
    last = None
    for n in range(1000):
        last = attempt(client, f"guess{n}@example.org", "wrong password!")
        statuses.append(last.status_code)
    assert time.monotonic() - started < 60
    assert statuses.count(429) >= 950, statuses.count(429)
    assert last is not None and last.status_code == 429
    assert last.headers["Retry-After"].isdigit()
    text = last.get_data(as_text=True)
    assert "Too many sign-in attempts from your network" in text
    assert re.search(r"Try again in \d+ (seconds?|minutes?)\.", text)
    # Another network is not held back by this one.
    user = make_user(Role.EDITOR)
    assert attempt(client, user.email, TEST_PASSWORD, remote="203.0.113.5").status_code == 302


def test_ipv6_clients_share_a_48(app: Flask, client: FlaskClient) -> None:
    limit = app.config["LOGIN_NETWORK_MAX_FAILURES"]
    for n in range(limit):
        attempt(client, f"g{n}@example.org", "wrong password!", remote=f"2001:db8:1:{n:x}::1")
    response = attempt(client, "g@example.org", "wrong password!", remote="2001:db8:1:ffff::1")
    assert response.status_code == 429


def test_failures_are_audited_and_the_admin_unlock_ends_the_delay(
    app: Flask, client: FlaskClient
) -> None:
    admin = make_user(Role.ADMIN)
    user = make_user(Role.EDITOR)
    for n in range(app.config["LOGIN_MAX_FAILURES"]):
        attempt(client, user.email, "wrong password!", remote=f"192.0.2.{n}")
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "login.failed")).all()
    assert len(events) == app.config["LOGIN_MAX_FAILURES"]
    assert any("delay_seconds" in event.detail for event in events)
    admin_client = app.test_client()
    sign_in(admin_client, admin)
    page = admin_client.get("/users/").get_data(as_text=True)
    assert "sign-in delayed" in page
    admin_client.post(f"/users/{user.id}/unlock")
    assert sign_in_limits.account_delay(user.email) == 0
    assert attempt(client, user.email, TEST_PASSWORD, remote="192.0.2.200").status_code == 302
    assert "user.unlock" in set(db.session.scalars(select(AuditEvent.action)))


def test_two_factor_failures_share_the_accounts_limit(app: Flask, client: FlaskClient) -> None:
    import pyotp

    user = make_user(Role.SENDER)
    user.totp_secret = pyotp.random_base32()
    db.session.commit()
    client.post("/login", data={"email": user.email, "password": TEST_PASSWORD})
    with app.test_request_context(environ_base={"REMOTE_ADDR": "127.0.0.1"}):  # the client's
        for _ in range(app.config["LOGIN_MAX_FAILURES"]):
            users.count_failure(db.session.get(User, user.id), "wrong two-factor code")
        assert users.refusal(db.session.get(User, user.id))
    assert attempt(client, user.email, TEST_PASSWORD).status_code == 429


@pytest.fixture
def app_without_redis(app_overrides: dict[str, Any]) -> Any:
    from campaign import create_app

    closed = f"redis://127.0.0.1:{servers.free_port()}/0"
    application = create_app({**app_overrides, "REDIS_URL": closed})
    with application.app_context():
        yield application
        db.session.remove()
        db.engine.dispose()


def test_without_redis_the_account_delay_falls_back_to_the_database(
    app: Flask, app_without_redis: Flask
) -> None:
    user = make_user(Role.EDITOR)
    client = app_without_redis.test_client()
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        assert attempt(client, user.email, "wrong password!").status_code == 401
    stored = db.session.get(User, user.id)
    assert stored is not None and stored.locked_until is not None
    # Refused with the same words as a wrong password: no oracle while Redis is away.
    refused = attempt(client, user.email, TEST_PASSWORD)
    assert refused.status_code == 401
    assert GENERIC in refused.get_data(as_text=True)
    stored.locked_until = None
    db.session.commit()
    assert attempt(client, user.email, TEST_PASSWORD).status_code == 302


# --- a stranger cannot keep the real user out ----------------------------------------------


def test_failures_from_another_network_never_delay_the_right_password_from_yours(
    app: Flask, client: FlaskClient
) -> None:
    user = make_user(Role.EDITOR)
    for n in range(app.config["LOGIN_MAX_FAILURES"] + 1):
        attempt(client, user.email, "a stranger's guess", remote=f"198.51.100.{n}")
    # The stranger's network waits ...
    assert attempt(client, user.email, TEST_PASSWORD, remote="198.51.100.50").status_code == 429
    # ... the real user, from their own network, signs in at once.
    own = app.test_client()
    assert attempt(own, user.email, TEST_PASSWORD, remote="192.0.2.77").status_code == 302
    # Their success frees no guesser: the stranger's network still waits.
    assert attempt(client, user.email, TEST_PASSWORD, remote="198.51.100.51").status_code == 429
    # The administrator still sees the delay (from any network), and can end it.
    assert users.sign_in_delay(db.session.get(User, user.id)) > 0


def test_a_stranger_cannot_spend_the_owners_reset_requests_nor_flood_their_mailbox(
    app: Flask, client: FlaskClient
) -> None:
    from campaign.models import PasswordResetToken
    from campaign.services.accounts import password_reset

    user = make_user(Role.EDITOR)
    answers = set()
    for n in range(8):  # from eight networks, more than a day's e-mails
        response = client.post(
            "/login/forgot",
            data={"email": user.email},
            environ_base={"REMOTE_ADDR": f"198.51.{n}.9"},
        )
        assert response.status_code == 200
        answers.add(re.sub(r'name="csrf_token" value="[^"]*"', "", response.get_data(as_text=True)))
    own = client.post(
        "/login/forgot", data={"email": user.email}, environ_base={"REMOTE_ADDR": "192.0.2.5"}
    )
    assert own.status_code == 200  # the owner's own request is not refused ...
    answers.add(re.sub(r'name="csrf_token" value="[^"]*"', "", own.get_data(as_text=True)))
    assert len(answers) == 1  # ... and every answer reads the same
    links = db.session.scalar(select(db.func.count(PasswordResetToken.id)))
    assert links == password_reset.EMAILS_PER_ADDRESS_PER_DAY == 5


def test_refusals_during_a_wait_at_the_two_factor_step_are_not_audited_one_by_one(
    app: Flask, client: FlaskClient
) -> None:
    import pyotp

    user = make_user(Role.SENDER)
    user.totp_secret = pyotp.random_base32()
    db.session.commit()
    client.post("/login", data={"email": user.email, "password": TEST_PASSWORD})
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        client.post("/login/verify", data={"code": "000000"})

    def audited() -> int:
        query = select(db.func.count(AuditEvent.id)).where(AuditEvent.action == "login.failed")
        return int(db.session.scalar(query) or 0)

    before = audited()
    for _ in range(20):
        assert client.post("/login/verify", data={"code": "000000"}).status_code == 429
    assert audited() == before
