"""Shared fixtures: a real Redis, SQLite and PostgreSQL, an app per test, signed-in clients."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.orm import close_all_sessions

from campaign import create_app
from campaign.extensions import db
from campaign.models import Role, User
from tests import servers

TEST_PASSWORD = "correct horse battery staple"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if servers.MISSING_SERVICES:
        terminalreporter.section("SERVICES MISSING — these suites did not run", sep="!")
        for line in sorted(set(servers.MISSING_SERVICES)):
            terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def _english_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """`campaign` commands print in the terminal's language (decision 0031, "The command
    line"), and tests read their English output: whatever the developer's LANG, LANGUAGE
    (the first variable the CLI looks at) says English. tests/i18n changes it."""
    monkeypatch.setenv("LANGUAGE", "en")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[servers.RedisServer]:
    server = servers.start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[servers.PostgresServer]:
    server = servers.start_postgres()
    yield server
    server.stop()


def _base_overrides(instance: Path, redis_url: str, database_url: str) -> dict[str, Any]:
    return {
        "TESTING": True,
        "DEBUG": False,
        "SECRET_KEY": "test-secret-key-not-for-production",
        # Two-factor is required of nobody unless a test says so (production: admin, sender).
        "TOTP_REQUIRED_ROLES": "none",
        "INSTANCE_PATH": str(instance),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SESSION_COOKIE_SECURE": False,
        "WTF_CSRF_ENABLED": False,
        "MAIL_SUPPRESS_SEND": False,
        # A free port per app: a developer's `scripts/run` holds 8025 while the tests run.
        "MAIL_PORT": servers.free_port(),
        # Outside debug a launch needs addresses the internet can use (decision 0037).
        "MAIL_DEFAULT_SENDER": "Campaign <campaign@example.org>",
        "PUBLIC_URL": "https://campaign.example.org",
    }


def _upgrade(app: Flask) -> None:
    from flask_migrate import upgrade

    with app.app_context():
        upgrade()


@pytest.fixture(scope="session")
def sqlite_template(
    tmp_path_factory: pytest.TempPathFactory, redis_server: servers.RedisServer
) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating every time)."""
    instance = tmp_path_factory.mktemp("sqlite-template")
    path = instance / "template.sqlite3"
    app = create_app(_base_overrides(instance, redis_server.url, f"sqlite:///{path}"))
    _upgrade(app)
    with app.app_context():
        db.engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_migrated(
    postgres_server: servers.PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: servers.RedisServer,
) -> str:
    instance = tmp_path_factory.mktemp("pg-template")
    app = create_app(_base_overrides(instance, redis_server.url, postgres_server.url))
    _upgrade(app)
    with app.app_context():
        db.engine.dispose()
    return postgres_server.url


def _empty_postgres(app: Flask) -> None:
    with app.app_context():
        tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
        db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.session.commit()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test that uses the database runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "campaign.sqlite3"
        shutil.copyfile(template, target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("postgres_migrated")
    return url


@pytest.fixture
def app_overrides(
    tmp_path: Path, redis_server: servers.RedisServer, database_url: str
) -> dict[str, Any]:
    """Override in a test module to change settings before the app is built."""
    return _base_overrides(tmp_path / "instance", redis_server.url, database_url)


@pytest.fixture
def app(app_overrides: dict[str, Any]) -> Iterator[Flask]:
    application = create_app(app_overrides)
    if application.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        _empty_postgres(application)
    with application.app_context():
        # Every test's database starts its ids at 1, so Redis state keyed by a campaign id
        # (error streaks, rate limits, queued jobs) must not leak from the previous test.
        from campaign.queue import get_redis

        get_redis().flushdb()
        yield application
        db.session.remove()
        # Sessions a test's threads (a live server's requests, concurrent claims) left open
        # give their connections back first: dispose() closes only those in the pool, and an
        # open psycopg connection collected later fails whichever test is running then.
        close_all_sessions()
        db.engine.dispose()
    close_redis(application)


def close_redis(application: Flask) -> None:
    """Close the app's Redis pool now, not whenever the garbage collector gets to it."""
    connection = application.extensions.pop("campaign_redis", None)
    if connection is not None:
        connection.close()


class IsolatedClient(FlaskClient):
    """Runs each request in its own app context, as a real server does.

    Without this the request would reuse the test's app context, sharing `g` (and with it
    Flask-Login's cached user) and the database session between requests.
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        with self.application.app_context():
            response = super().open(*args, **kwargs)
        db.session.expire_all()  # the test's own objects see what the request wrote
        return response


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    app.test_client_class = IsolatedClient
    return app.test_client()


def make_user(role: Role, email: str | None = None) -> User:
    from campaign.services.accounts.users import create_user

    user = create_user(email or f"{role.value}@example.org", TEST_PASSWORD, role)
    db.session.commit()
    return user


def sign_in(client: FlaskClient, user: User) -> None:
    response = client.post("/login", data={"email": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)


@pytest.fixture
def login(client: FlaskClient):  # type: ignore[no-untyped-def]
    """login(Role.EDITOR) creates a user with that role and signs the test client in."""

    def _login(role: Role = Role.ADMIN) -> User:
        user = make_user(role)
        sign_in(client, user)
        return user

    return _login


@pytest.fixture
def fault_smtp() -> Iterator[Any]:
    """A started FaultSmtpServer (tests/fault_smtp.py) on 127.0.0.1; stopped after the test."""
    from tests.fault_smtp import running_server

    yield from running_server()


@pytest.fixture(scope="session")
def imap_server() -> Iterator[servers.DovecotServer]:
    """A real Dovecot for the whole run; tests that need a clean mailbox call add_user()."""
    server = servers.start_dovecot()
    yield server
    server.stop()
