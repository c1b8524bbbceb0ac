"""Two-factor authentication: single-use codes, set-up behind the password, keys encrypted at
rest, the QR code, recovery codes, the admin's reset and who must use it."""

from __future__ import annotations

import base64
import email
import email.policy
import mailbox
import re
import secrets
import zlib
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pyotp
import pytest
import segno
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, select, text

from campaign import create_app
from campaign.config import Config, ConfigError, totp_required_roles
from campaign.devmail import DevmailSink
from campaign.extensions import db
from campaign.models import AuditEvent, RecoveryCode, Role, User
from campaign.models._types import utcnow
from campaign.secret_box import TOTP_SECRETS, decrypt_secret, encrypt_secret
from campaign.services.accounts import two_factor
from campaign.services.sending.notices import send_notice
from tests.conftest import TEST_PASSWORD, _base_overrides, close_redis, make_user, sign_in

_RECOVERY = re.compile(r"<code>([0-9a-f]{5}(?:-[0-9a-f]{5}){3})</code>")


def _with_totp(role: Role = Role.SENDER, email: str | None = None) -> tuple[User, str]:
    """A user whose two-factor is on, set up as the pages would (key encrypted)."""
    user = make_user(role, email)
    secret = pyotp.random_base32()
    user.totp_secret = encrypt_secret(secret, purpose=TOTP_SECRETS)
    db.session.commit()
    return user, secret


def _code(secret: str, seconds_ago: int = 0) -> str:
    return pyotp.TOTP(secret).at(utcnow() - timedelta(seconds=seconds_ago))


def _password_step(client: FlaskClient, user: User) -> None:
    response = client.post("/login", data={"email": user.email, "password": TEST_PASSWORD})
    assert response.headers["Location"].startswith("/login/verify")


def _signed_in(client: FlaskClient) -> bool:
    return client.get("/").status_code == 200


def _sign_out(client: FlaskClient) -> None:
    client.post("/logout")
    assert not _signed_in(client)


def _setup_secret(client: FlaskClient) -> str:
    page = client.get("/account/two-factor").get_data(as_text=True)
    return page.split('<code class="secret">')[1].split("<")[0].replace(" ", "")


def _enrol(client: FlaskClient) -> tuple[str, list[str]]:
    """Turn two-factor on through the set-up page; the key and the recovery codes shown."""
    secret = _setup_secret(client)
    response = client.post(
        "/account/two-factor", data={"password": TEST_PASSWORD, "code": _code(secret)}
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    shown = client.get(response.headers["Location"])
    codes = _RECOVERY.findall(shown.get_data(as_text=True))
    return secret, codes


def _actions() -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


# --- codes are single-use ------------------------------------------------------------------


def test_a_code_works_once(app: Flask, client: FlaskClient) -> None:
    user, secret = _with_totp()
    code = _code(secret)
    _password_step(client, user)
    assert client.post("/login/verify", data={"code": code}).status_code == 302
    assert _signed_in(client)
    _sign_out(client)
    _password_step(client, user)
    replay = client.post("/login/verify", data={"code": code})
    assert replay.status_code == 401
    assert "not right or has expired" in replay.get_data(as_text=True)
    assert not _signed_in(client)


def test_a_code_of_an_earlier_step_than_the_last_used_is_refused(
    app: Flask, client: FlaskClient
) -> None:
    user, secret = _with_totp()
    _password_step(client, user)
    assert client.post("/login/verify", data={"code": _code(secret)}).status_code == 302
    _sign_out(client)
    _password_step(client, user)
    # The previous window's code is good on its own, but it is older than the one used.
    assert client.post("/login/verify", data={"code": _code(secret, 30)}).status_code == 401


def test_the_previous_window_is_accepted_but_not_two_windows_ago(
    app: Flask, client: FlaskClient
) -> None:
    user, secret = _with_totp()
    _password_step(client, user)
    assert client.post("/login/verify", data={"code": _code(secret, 65)}).status_code == 401
    assert client.post("/login/verify", data={"code": _code(secret, 30)}).status_code == 302
    assert _signed_in(client)


def test_a_code_typed_with_spaces_works(app: Flask, client: FlaskClient) -> None:
    user, secret = _with_totp()
    code = _code(secret)
    _password_step(client, user)
    response = client.post("/login/verify", data={"code": f" {code[:3]} {code[3:]} "})
    assert response.status_code == 302
    assert _signed_in(client)


def test_wrong_codes_count_towards_the_lock(app: Flask, client: FlaskClient) -> None:
    user, secret = _with_totp()
    _password_step(client, user)
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        client.post("/login/verify", data={"code": "000000"})
    response = client.post("/login/verify", data={"code": _code(secret)})
    assert response.status_code in {401, 429}
    assert "Too many failed" in response.get_data(as_text=True)
    assert not _signed_in(client)


# --- set-up, moving to a new phone, turning off --------------------------------------------


def test_set_up_needs_the_password_and_shows_a_qr_code(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    sign_in(client, user)
    page = client.get("/account/two-factor").get_data(as_text=True)
    secret = _setup_secret(client)
    assert '<svg width="' in page and 'class="qr-code"' in page
    # The picture is the otpauth URI of this key, made here (no remote image).
    uri = (
        f"otpauth://totp/Campaign:{user.email.replace('@', '%40')}?secret={secret}&issuer=Campaign"
    )
    expected = segno.make(uri, error="m").svg_inline(scale=5, border=4, svgclass="qr-code")
    assert re.search(r' d="([^"]+)"', expected).group(1) in page  # type: ignore[union-attr]
    refused = client.post("/account/two-factor", data={"code": _code(secret)})
    assert refused.status_code == 422
    assert "password is not right" in refused.get_data(as_text=True)
    assert not db.session.get(User, user.id).has_totp
    wrong = client.post(
        "/account/two-factor", data={"password": "not my password", "code": _code(secret)}
    )
    assert wrong.status_code == 422
    _, codes = _enrol(client)
    assert db.session.get(User, user.id).has_totp
    assert len(codes) == 10 and len(set(codes)) == 10
    assert "user.totp_enabled" in _actions()


def test_the_issuer_is_the_organisation(app: Flask, client: FlaskClient) -> None:
    app.config["ORGANISATION_NAME"] = "Human Rights Centre"
    sign_in(client, make_user(Role.EDITOR))
    page = client.get("/account/two-factor").get_data(as_text=True)
    assert "issuer=Human%20Rights%20Centre" in page


def test_no_key_is_stored_in_clear(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    sign_in(client, user)
    secret, codes = _enrol(client)
    raw = db.session.execute(
        text("SELECT totp_secret FROM users WHERE id = :id"), {"id": user.id}
    ).scalar_one()
    assert raw and secret not in raw and secret.lower() not in raw.lower()
    assert decrypt_secret(raw, purpose=TOTP_SECRETS) == secret
    hashes = db.session.execute(
        text("SELECT code_hash FROM recovery_codes WHERE user_id = :id"), {"id": user.id}
    ).scalars()
    stored = " ".join(hashes)
    assert not any(code in stored or code.replace("-", "") in stored for code in codes)
    # And the key being set up is not readable from the (signed, not secret) session cookie.
    client.post("/logout")
    sign_in(client, make_user(Role.VIEWER, "other@example.org"))
    pending = _setup_secret(client)
    cookie = client.get_cookie("session")
    assert cookie is not None
    payload = cookie.value.lstrip(".").split(".")[0]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    if cookie.value.startswith("."):
        decoded = zlib.decompress(decoded)
    assert pending.encode() not in decoded


def test_moving_to_a_new_phone_needs_the_password_and_a_current_code(
    app: Flask, client: FlaskClient
) -> None:
    user, old = _with_totp(Role.EDITOR)
    _password_step(client, user)
    client.post("/login/verify", data={"code": _code(old, 30)})
    new = _setup_secret(client)
    attempts: list[dict[str, str]] = [
        {"code": _code(new)},  # what any signed-in session could do before
        {"code": _code(new), "current_code": _code(old)},  # no password
        {"code": _code(new), "password": TEST_PASSWORD},  # no current code
        {"code": _code(new), "password": TEST_PASSWORD, "current_code": "123456"},
    ]
    for data in attempts:
        assert client.post("/account/two-factor", data=data).status_code == 422, data
        stored = db.session.get(User, user.id).totp_secret
        assert decrypt_secret(stored, purpose=TOTP_SECRETS) == old
    moved = client.post(
        "/account/two-factor",
        data={"code": _code(new), "password": TEST_PASSWORD, "current_code": _code(old)},
        follow_redirects=True,
    )
    # No recovery codes were left (this user had none): ten new ones come with the move.
    assert moved.status_code == 200
    assert len(_RECOVERY.findall(moved.get_data(as_text=True))) == 10
    stored = db.session.get(User, user.id).totp_secret
    assert decrypt_secret(stored, purpose=TOTP_SECRETS) == new
    assert "user.totp_replaced" in _actions()


def test_turning_off_needs_the_password_and_a_current_code(app: Flask, client: FlaskClient) -> None:
    user, secret = _with_totp(Role.EDITOR)
    _password_step(client, user)
    client.post("/login/verify", data={"code": _code(secret, 30)})
    for data in (
        {"current_code": _code(secret)},
        {"password": TEST_PASSWORD},
        {"password": "not my password", "current_code": _code(secret)},
    ):
        assert client.post("/account/two-factor/disable", data=data).status_code == 422, data
        assert db.session.get(User, user.id).has_totp
    off = client.post(
        "/account/two-factor/disable",
        data={"password": TEST_PASSWORD, "current_code": _code(secret)},
    )
    assert off.status_code == 302
    assert not db.session.get(User, user.id).has_totp
    assert "user.totp_disabled" in _actions()


def test_a_role_that_requires_it_cannot_turn_it_off(app: Flask, client: FlaskClient) -> None:
    two_factor.set_totp_required(Role.SENDER, True)
    user, secret = _with_totp(Role.SENDER)
    _password_step(client, user)
    client.post("/login/verify", data={"code": _code(secret, 30)})
    response = client.post(
        "/account/two-factor/disable",
        data={"password": TEST_PASSWORD, "current_code": _code(secret)},
    )
    assert response.status_code == 422
    assert "requires two-factor" in response.get_data(as_text=True)
    assert db.session.get(User, user.id).has_totp


# --- recovery codes ------------------------------------------------------------------------


def test_a_recovery_code_signs_in_once(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    sign_in(client, user)
    _, codes = _enrol(client)
    _sign_out(client)
    _password_step(client, user)
    assert "Use a recovery code" in client.get("/login/verify").get_data(as_text=True)
    typed = codes[0].upper().replace("-", " ")  # as read aloud or copied from paper
    used = client.post("/login/verify?recovery=1", data={"recovery_code": typed})
    assert used.status_code == 302
    assert "9 codes remain" in client.get("/").get_data(as_text=True)
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "user.recovery_code_used")
    ).one()
    assert event.detail["remaining"] == 9
    _sign_out(client)
    _password_step(client, user)
    again = client.post("/login/verify?recovery=1", data={"recovery_code": codes[0]})
    assert again.status_code == 401
    assert "already used" in again.get_data(as_text=True)
    assert not _signed_in(client)
    assert client.post(
        "/login/verify?recovery=1", data={"recovery_code": codes[1]}
    ).status_code == (302)


def test_new_recovery_codes_end_the_old_ones(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    sign_in(client, user)
    secret, old_codes = _enrol(client)
    refused = client.post("/account/two-factor/recovery-codes", data={"password": TEST_PASSWORD})
    assert refused.status_code == 422
    response = client.post(
        "/account/two-factor/recovery-codes",
        data={"password": TEST_PASSWORD, "current_code": _code(secret, -30)},
        follow_redirects=True,
    )
    new_codes = _RECOVERY.findall(response.get_data(as_text=True))
    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    _sign_out(client)
    _password_step(client, user)
    assert (
        client.post("/login/verify?recovery=1", data={"recovery_code": old_codes[0]}).status_code
        == 401
    )
    assert (
        client.post("/login/verify?recovery=1", data={"recovery_code": new_codes[0]}).status_code
        == 302
    )


# --- the admin's reset ---------------------------------------------------------------------


def test_an_admin_reset_is_audited_ends_sessions_and_set_up_starts_again(
    app: Flask, client: FlaskClient
) -> None:
    two_factor.set_totp_required(Role.SENDER, True)
    user, secret = _with_totp(Role.SENDER)
    db.session.add(RecoveryCode(user_id=user.id, code_hash="x" * 64))
    db.session.commit()
    user_client = app.test_client()
    _password_step(user_client, user)
    user_client.post("/login/verify", data={"code": _code(secret)})
    assert _signed_in(user_client)

    sign_in(client, make_user(Role.ADMIN))
    page = client.get("/users/").get_data(as_text=True)
    assert f"/users/{user.id}/two-factor/reset" in page
    reset_form = {"password": TEST_PASSWORD}
    assert client.post(f"/users/{user.id}/two-factor/reset", data=reset_form).status_code == 302

    reset = db.session.get(User, user.id)
    assert not reset.has_totp and reset.totp_last_step is None
    assert not db.session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)).all()
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "user.totp_reset")
    ).one()
    assert event.target_id == str(user.id) and event.actor_email == "admin@example.org"
    assert not _signed_in(user_client)
    sign_in(user_client, user)  # the password alone now...
    assert user_client.get("/").headers["Location"].endswith("/account/two-factor")  # ...set-up


def test_an_admin_cannot_reset_their_own_two_factor_there(app: Flask, client: FlaskClient) -> None:
    admin, secret = _with_totp(Role.ADMIN)
    _password_step(client, admin)
    client.post("/login/verify", data={"code": _code(secret)})
    client.post(f"/users/{admin.id}/two-factor/reset", data={"password": TEST_PASSWORD})
    assert db.session.get(User, admin.id).has_totp


# --- who must use it -----------------------------------------------------------------------


def test_mandatory_two_factor_sends_the_user_to_set_up(app: Flask, client: FlaskClient) -> None:
    two_factor.set_totp_required(Role.SENDER, True)
    db.session.commit()
    user = make_user(Role.SENDER)
    sign_in(client, user)
    assert client.get("/").headers["Location"].endswith("/account/two-factor")
    assert client.get("/contacts/").headers["Location"].endswith("/account/two-factor")
    _enrol(client)
    assert _signed_in(client)


def test_in_production_admins_and_senders_require_it_by_default(
    app: Flask, client: FlaskClient
) -> None:
    assert Config().TOTP_REQUIRED_ROLES == "auto"
    assert totp_required_roles("auto", debug=False) == {"admin", "sender"}
    assert totp_required_roles("auto", debug=True) == set()  # the demo (scripts/run)
    app.config["TOTP_REQUIRED_ROLES"] = Config().TOTP_REQUIRED_ROLES
    assert [two_factor.is_totp_required(role) for role in Role] == [False, False, True, True]
    admin = make_user(Role.ADMIN)
    sign_in(client, admin)
    assert client.get("/").headers["Location"].endswith("/account/two-factor")
    _sign_out(client)
    sign_in(client, make_user(Role.EDITOR))
    assert _signed_in(client)
    # An admin's choice on the Users page wins over the default.
    two_factor.set_totp_required(Role.ADMIN, False)
    db.session.commit()
    _sign_out(client)
    sign_in(client, admin)
    assert _signed_in(client)


def test_a_misspelt_role_stops_the_start(app_overrides: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="senders"):
        create_app({**app_overrides, "TOTP_REQUIRED_ROLES": "admin,senders"})


def test_two_factor_is_offered_to_those_without_it(app: Flask, client: FlaskClient) -> None:
    sign_in(client, make_user(Role.VIEWER))
    home = client.get("/").get_data(as_text=True)
    assert 'href="/account/two-factor"' in home
    assert "Set it up now" in home


# --- keys stored in clear before 0015 ------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database no migration has touched yet, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.sqlite3'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = f"before_0015_{secrets.token_hex(4)}"
    admin = create_engine(server.url.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    yield server.url.rsplit("/", 1)[0] + "/" + name
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def test_the_migration_encrypts_keys_kept_in_clear(
    empty_database: str, tmp_path: Path, redis_server: Any
) -> None:
    from flask_migrate import downgrade, upgrade

    old_app = create_app(_base_overrides(tmp_path / "instance", redis_server.url, empty_database))
    secret = pyotp.random_base32()
    with old_app.app_context():
        upgrade(revision="0014")
        db.session.execute(
            text(
                "INSERT INTO users (email, display_name, password_hash, role, "
                "is_active_account, failed_logins, totp_secret, session_version, language, "
                "created_at) VALUES ('old@example.org', '', 'x', 'admin', :yes, 0, :secret, 1, "
                "'', CURRENT_TIMESTAMP)"
            ),
            {"secret": secret, "yes": True},
        )
        db.session.commit()
        upgrade(revision="0015")
        raw = db.session.execute(text("SELECT totp_secret FROM users")).scalar_one()
        assert secret not in raw
        assert decrypt_secret(raw, purpose=TOTP_SECRETS) == secret
        db.session.commit()  # the migration's own connection must not wait for this one
        downgrade(revision="0014")
        assert db.session.execute(text("SELECT totp_secret FROM users")).scalar_one() == secret
        db.session.remove()
        db.engine.dispose()
    close_redis(old_app)


def test_the_command_line_removes_two_factor_for_a_lost_phone(app: Flask) -> None:
    admin, _ = _with_totp(Role.ADMIN)  # the last admin, phone and codes lost
    result = app.test_cli_runner().invoke(args=["reset-two-factor", "ADMIN@example.org"])
    assert result.exit_code == 0, result.output
    assert "is removed" in result.output
    db.session.expire_all()
    assert not db.session.get(User, admin.id).has_totp
    assert "user.totp_reset" in _actions()
    missing = app.test_cli_runner().invoke(args=["reset-two-factor", "nobody@example.org"])
    assert missing.exit_code != 0 and "no account" in missing.output


# --- review of the two-factor work (issue 13) ----------------------------------------------


def _notices(kind: str) -> list[int]:
    """Target ids of the queued e-mail jobs of `kind` (workers.jobs.send_notice)."""
    from campaign.queue import get_queue

    return [
        job.args[1]
        for job in get_queue().get_jobs()
        if job.func_name == "workers.jobs.send_notice" and job.args[0] == kind
    ]


def _deliver(app: Flask, kind: str) -> list[EmailMessage]:
    """Run the queued e-mail jobs of `kind` as the worker would; what reached the mail sink."""
    config = app.config["CAMPAIGN_CONFIG"]
    with DevmailSink(config.devmail_path, config.MAIL_SERVER, config.MAIL_PORT):
        for target in _notices(kind):
            send_notice(kind, target, commit=db.session.commit)
    if not config.devmail_path.exists():
        return []
    return [
        email.message_from_bytes(bytes(m), policy=email.policy.default)  # type: ignore[misc]
        for m in mailbox.Maildir(config.devmail_path, create=False)
    ]


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return " ".join(body.get_content().split())


def test_wrong_codes_from_many_networks_delay_the_code_step_and_tell_the_owner(
    app: Flask,
) -> None:
    """Someone with the password spreads guesses over networks (IPv6 /48s are cheap): the
    account's code step waits after ten wrong codes in total, whatever the network."""
    user, secret = _with_totp()
    user.language = "fr"
    db.session.commit()
    free = app.config["TOTP_MAX_FAILURES"]
    per_network = app.config["LOGIN_MAX_FAILURES"] - 1  # never a per-network delay
    guesses = 0
    network = 0
    while guesses < free:
        network += 1
        guesser = app.test_client()
        place = {"REMOTE_ADDR": f"10.{network}.0.7"}
        _password_step_from(guesser, user, place)
        for _ in range(min(per_network, free - guesses)):
            wrong = guesser.post("/login/verify", data={"code": "000000"}, environ_base=place)
            assert wrong.status_code == 401
            guesses += 1
    # From yet another network, even the right code now waits.
    elsewhere = {"REMOTE_ADDR": "10.200.0.1"}
    late = app.test_client()
    _password_step_from(late, user, elsewhere)
    refused = late.post("/login/verify", data={"code": _code(secret)}, environ_base=elsewhere)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"].isdigit()
    assert "Too many wrong two-factor codes for this account" in refused.get_data(as_text=True)
    assert late.get("/", environ_base=elsewhere).status_code != 200
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "user.two_factor_codes_delayed")
    ).one()
    assert event.detail["failures"] == free and event.detail["delay_seconds"] > 0
    # The owner learns that their password is known, in their language, once.
    (message,) = _deliver(app, "two_factor_guessing")
    assert message["To"] == user.email and message["Content-Language"] == "fr"
    assert f"{free} codes" in _text(message) and "mot de passe" in _text(message)


def _password_step_from(client: FlaskClient, user: User, place: dict[str, str]) -> None:
    data = {"email": user.email, "password": TEST_PASSWORD}
    response = client.post("/login", data=data, environ_base=place)
    assert response.headers["Location"].startswith("/login/verify"), response.status_code


def test_wrong_passwords_from_many_networks_do_not_delay_the_code_step(app: Flask) -> None:
    """A stranger without the password cannot slow the real user's code step."""
    user, secret = _with_totp()
    for network in range(app.config["TOTP_MAX_FAILURES"] + 2):
        place = {"REMOTE_ADDR": f"10.{network}.0.7"}
        data = {"email": user.email, "password": "not the password"}
        assert app.test_client().post("/login", data=data, environ_base=place).status_code == 401
    assert two_factor.code_delay(user) == 0
    client = app.test_client()
    _password_step_from(client, user, {"REMOTE_ADDR": "10.200.0.1"})
    right = client.post(
        "/login/verify", data={"code": _code(secret)}, environ_base={"REMOTE_ADDR": "10.200.0.1"}
    )
    assert right.status_code == 302


@pytest.mark.parametrize(
    "digits",
    [
        "٠١٢٣٤٥٦٧٨٩",  # Arabic-Indic
        "۰۱۲۳۴۵۶۷۸۹",  # Persian (Extended Arabic-Indic)
        "０１２３４５６７８９",  # full-width
    ],
)
def test_a_code_typed_on_a_persian_arabic_or_full_width_keyboard_works(
    app: Flask, client: FlaskClient, digits: str
) -> None:
    user, secret = _with_totp()
    _password_step(client, user)
    typed = _code(secret).translate(str.maketrans("0123456789", digits))
    assert client.post("/login/verify", data={"code": typed}).status_code == 302
    assert _signed_in(client)
    # Turning it on from such a keyboard works too.
    _sign_out(client)
    other = make_user(Role.EDITOR, "editor@example.org")
    sign_in(client, other)
    new = _setup_secret(client)
    typed = _code(new).translate(str.maketrans("0123456789", digits))
    response = client.post("/account/two-factor", data={"password": TEST_PASSWORD, "code": typed})
    assert response.status_code == 303
    assert db.session.get(User, other.id).has_totp


def test_anything_but_six_digits_is_refused_in_words(app: Flask, client: FlaskClient) -> None:
    user, _ = _with_totp()
    _password_step(client, user)
    for typed in ("¹²³⁴⁵⁶", "①②③④⑤⑥", "12345a", "1234567"):
        response = client.post("/login/verify", data={"code": typed})
        assert response.status_code == 401, typed
        assert "A two-factor code is 6 digits" in response.get_data(as_text=True)


def test_a_recovery_code_is_not_spent_when_the_new_apps_code_is_wrong(
    app: Flask, client: FlaskClient
) -> None:
    user = make_user(Role.EDITOR)
    sign_in(client, user)
    _, codes = _enrol(client)
    new = _setup_secret(client)
    mistyped = client.post(
        "/account/two-factor",
        data={"password": TEST_PASSWORD, "current_code": codes[0], "code": "000000"},
    )
    assert mistyped.status_code == 422
    assert "does not match" in mistyped.get_data(as_text=True)
    assert two_factor.remaining_recovery_codes(db.session.get(User, user.id)) == 10
    moved = client.post(
        "/account/two-factor",
        data={"password": TEST_PASSWORD, "current_code": codes[0], "code": _code(new)},
    )
    assert moved.status_code == 302  # the codes kept are still good: no new ones to show
    assert two_factor.remaining_recovery_codes(db.session.get(User, user.id)) == 9
    assert decrypt_secret(db.session.get(User, user.id).totp_secret, purpose=TOTP_SECRETS) == new


def test_reloading_the_recovery_codes_page_submits_nothing(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    sign_in(client, user)
    secret = _setup_secret(client)
    turned_on = client.post(
        "/account/two-factor", data={"password": TEST_PASSWORD, "code": _code(secret)}
    )
    assert turned_on.status_code == 303
    page = turned_on.headers["Location"]
    first = client.get(page)
    assert len(_RECOVERY.findall(first.get_data(as_text=True))) == 10
    assert "Two-factor authentication is on" in first.get_data(as_text=True)
    again = client.get(page, follow_redirects=True)  # the browser's reload
    assert again.status_code == 200
    assert not _RECOVERY.findall(again.get_data(as_text=True))
    assert "shown only once" in again.get_data(as_text=True)
    assert "login.failed" not in _actions()
    assert _signed_in(client)


def test_resetting_someones_two_factor_needs_the_admins_password_and_tells_them(
    app: Flask, client: FlaskClient
) -> None:
    other_admin, _ = _with_totp(Role.ADMIN, "other-admin@example.org")
    other_admin.language = "ru"
    db.session.commit()
    sign_in(client, make_user(Role.ADMIN))
    page = client.get("/users/").get_data(as_text=True)
    assert 'name="password" type="password"' in page
    url = f"/users/{other_admin.id}/two-factor/reset"
    for data in ({}, {"password": "not my password"}):
        refused = client.post(url, data=data, follow_redirects=True)
        assert "Your password is not right" in refused.get_data(as_text=True)
        assert db.session.get(User, other_admin.id).has_totp
    assert "login.failed" in _actions()  # the wrong password counts, as at sign-in
    assert not _notices("two_factor_reset")
    assert client.post(url, data={"password": TEST_PASSWORD}).status_code == 302
    assert not db.session.get(User, other_admin.id).has_totp
    (message,) = _deliver(app, "two_factor_reset")
    assert message["To"] == other_admin.email and message["Content-Language"] == "ru"
    assert "admin@example.org" in _text(message)
    assert "двухфакторн" in (message["Subject"] + _text(message)).lower()


def test_a_delay_at_the_code_step_answers_429_with_the_wait(
    app: Flask, client: FlaskClient
) -> None:
    user, secret = _with_totp()
    _password_step(client, user)
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        client.post("/login/verify", data={"code": "000000"})
    for form, url in (
        ({"code": _code(secret)}, "/login/verify"),
        ({"recovery_code": "0" * 20}, "/login/verify?recovery=1"),
    ):
        response = client.post(url, data=form)
        assert response.status_code == 429
        wait = int(response.headers["Retry-After"])
        assert wait > 0
        assert "Try again in" in response.get_data(as_text=True)
        assert "second" in response.get_data(as_text=True)


def test_a_key_unreadable_after_a_secret_key_change_is_said_and_not_counted(
    app: Flask, client: FlaskClient
) -> None:
    user = make_user(Role.EDITOR)
    secret = pyotp.random_base32()
    # Encrypted under another SECRET_KEY: this server cannot read it.
    other_key = "another-secret-key-of-another-server-0123456789"
    user.totp_secret = encrypt_secret(secret, purpose=TOTP_SECRETS, secret_key=other_key)
    db.session.add(RecoveryCode(user_id=user.id, code_hash=two_factor._recovery_hash("a" * 20)))
    db.session.commit()
    _password_step(client, user)
    for seconds_ago in range(0, 30 * (app.config["LOGIN_MAX_FAILURES"] + 1), 30):
        response = client.post("/login/verify", data={"code": _code(secret, seconds_ago)})
        assert response.status_code == 401
        text_ = response.get_data(as_text=True)
        assert "cannot be read on this server" in text_ and "recovery code" in text_
    assert two_factor.code_delay(user) == 0
    used = client.post("/login/verify?recovery=1", data={"recovery_code": "a" * 20})
    assert used.status_code == 302  # not delayed: nothing was counted


def test_the_set_up_key_expires_after_ten_minutes(app: Flask, client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    sign_in(client, user)
    first = _setup_secret(client)
    assert _setup_secret(client) == first  # the same key while it is fresh
    with client.session_transaction() as stored:
        stored["totp_setup_since"] -= 10 * 60 + 1
    late = client.post(
        "/account/two-factor", data={"password": TEST_PASSWORD, "code": _code(first)}
    )
    assert late.status_code == 422
    assert "expired" in late.get_data(as_text=True)
    assert not db.session.get(User, user.id).has_totp
    assert "login.failed" not in _actions()
    second = _setup_secret(client)
    assert second != first
    with client.session_transaction() as stored:
        stored["totp_setup_since"] -= 10 * 60 + 1
    assert _setup_secret(client) not in (first, second)  # a GET after ten minutes: a new key


def test_the_set_up_page_helps_without_a_smartphone_and_the_label_is_configurable(
    app: Flask, client: FlaskClient
) -> None:
    app.config["TOTP_ISSUER"] = "Notes"
    sign_in(client, make_user(Role.EDITOR))
    page = client.get("/account/two-factor").get_data(as_text=True)
    shown = page.split('<code class="secret">')[1].split("<")[0]
    assert re.fullmatch(r"[A-Z2-7]{4}( [A-Z2-7]{4})+", shown), shown
    link = re.search(r'<a href="(otpauth://totp/[^"]+)"', page)
    assert link and "issuer=Notes" in link.group(1) and "Notes:" in link.group(1)
    assert "KeePassXC" in page and "Bitwarden" in page


def test_a_user_without_recovery_codes_is_told_whom_to_ask(app: Flask, client: FlaskClient) -> None:
    user, _ = _with_totp()  # no recovery code left
    _password_step(client, user)
    page = client.get("/login/verify").get_data(as_text=True)
    assert "no recovery codes left" in page and "ask an administrator" in page


def test_the_downgrade_refuses_keys_it_cannot_read(
    empty_database: str, tmp_path: Path, redis_server: Any
) -> None:
    from flask_migrate import downgrade, upgrade

    app = create_app(_base_overrides(tmp_path / "instance", redis_server.url, empty_database))
    foreign = encrypt_secret(
        pyotp.random_base32(), purpose=TOTP_SECRETS, secret_key="a key this server never had"
    )
    with app.app_context():
        upgrade(revision="0015")
        db.session.execute(
            text(
                "INSERT INTO users (email, display_name, password_hash, role, "
                "is_active_account, failed_logins, totp_secret, session_version, language, "
                "must_change_password, created_at) VALUES ('far@example.org', '', 'x', "
                "'admin', :yes, 0, :secret, 1, '', :no, CURRENT_TIMESTAMP)"
            ),
            {"secret": foreign, "yes": True, "no": False},
        )
        db.session.commit()
        with pytest.raises(SystemExit):
            downgrade(revision="0014")
        db.session.remove()
        assert db.session.execute(text("SELECT totp_secret FROM users")).scalar_one() == foreign
        assert db.session.execute(text("SELECT count(*) FROM recovery_codes")).scalar_one() == 0
        db.session.remove()
        db.engine.dispose()
    close_redis(app)
