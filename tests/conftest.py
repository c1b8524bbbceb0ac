"""Shared fixtures: a real Redis, SQLite and PostgreSQL, an app per test, signed-in clients."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jinja2 import BytecodeCache, Environment
from jinja2.bccache import Bucket
from sqlalchemy import text
from sqlalchemy.orm import close_all_sessions

from campaign import create_app
from campaign.extensions import db
from campaign.models import Role, User
from tests import servers

# The slow tests start first, spread over the xdist workers (decision 0081).
pytest_plugins = ["tests.slow_first"]

TEST_PASSWORD = "correct horse battery staple"


def _share_url_builders() -> None:
    """Compile each URL rule's builder once per test process, not once per app.

    Every test builds its own app, and werkzeug turns each of its ~200 rules into two Python
    functions through `ast` and `compile()`: 80 % of `create_app`'s time (decision 0052).
    The function made depends only on the rule's text, parse and defaults, and reads the
    rule it serves from its first argument, so apps may share it. Werkzeug without this
    private method simply compiles as before.
    """
    from werkzeug.routing.rules import Rule

    compile_builder = getattr(Rule, "_compile_builder", None)
    if compile_builder is None or getattr(compile_builder, "shared", False):
        return
    builders: dict[tuple[Any, ...], Any] = {}

    def shared_builder(self: Rule, append_unknown: bool = True) -> Any:
        key = (
            self.rule,
            append_unknown,
            tuple(getattr(self, "_trace", ())),
            repr(sorted((self.defaults or {}).items())),
        )
        builder = builders.get(key)
        if builder is None:
            builder = builders[key] = compile_builder(self, append_unknown)
        return builder

    shared_builder.shared = True  # type: ignore[attr-defined]
    Rule._compile_builder = shared_builder  # type: ignore[method-assign]


def _share_rule_parsing() -> None:
    """Parse each URL rule once per test process, not once per app.

    After the builders (above), parsing the ~200 rules of each test's app was the largest
    part of `create_app` left (decision 0062). A rule's parse depends on its class, text,
    defaults, host or subdomain, slash merging and the map's converters, all in the key; converters
    keep a reference to the map they were made for but read nothing from it. Whatever
    `compile` sets on the rule is recorded on the first parse and set again on the next
    (methods bound to the first rule are bound to the new one), so a werkzeug whose
    `compile` sets more still gives whole rules; the variables come from the parse's trace,
    never from the difference with the rule's defaults.
    """
    import types

    from werkzeug.routing.rules import Rule

    compile_rule = Rule.compile
    if getattr(compile_rule, "shared", False):
        return
    parses: dict[tuple[Any, ...], tuple[dict[str, Any], set[str]]] = {}

    def shared_compile(self: Rule) -> None:
        assert self.map is not None
        key = (
            type(self),
            self.rule,
            repr(sorted((self.defaults or {}).items())),
            self.host,
            self.subdomain,
            self.merge_slashes,
            self.map.host_matching,
            tuple(sorted(self.map.converters.items())),
        )
        found = parses.get(key)
        if found is None:
            before = dict(vars(self))
            compile_rule(self)
            made = {
                name: value
                for name, value in vars(self).items()
                if name != "arguments" and (name not in before or before[name] is not value)
            }
            variables = {name for dynamic, name in self._trace if dynamic}
            parses[key] = (made, variables)
            return
        made, variables = found
        for name, value in made.items():
            if isinstance(value, types.MethodType) and value.__self__ is not self:
                value = value.__func__.__get__(self, None)
            elif isinstance(value, (list, dict, set)):
                value = type(value)(value)
            setattr(self, name, value)
        self.arguments.update(variables)

    shared_compile.shared = True  # type: ignore[attr-defined]
    Rule.compile = shared_compile  # type: ignore[method-assign]


def _share_engines() -> None:
    """One SQLAlchemy engine per database for every app of this test process.

    Every test builds its own app, and with it Flask-SQLAlchemy made a new engine, whose
    statement cache starts empty: each test compiled every query it ran anew, a fifth of a
    page test's time (decision 0062). An engine serves any number of apps (the app's
    fixture gives its connections back with `dispose()`, which leaves the engine usable),
    so the same database URL with the same options gets the engine already made. SQLite
    tests therefore use one path per test process (`database_url`).
    """
    from flask_sqlalchemy import SQLAlchemy
    from sqlalchemy.engine import URL, Engine

    make_engine = SQLAlchemy._make_engine
    if getattr(make_engine, "shared", False):
        return
    engines: dict[str, Engine] = {}

    def shared_engine(
        self: SQLAlchemy, bind_key: str | None, options: dict[str, Any], app: Flask
    ) -> Engine:
        def plain(value: Any) -> Any:
            return value.render_as_string(hide_password=False) if isinstance(value, URL) else value

        key = repr((bind_key, sorted((name, plain(value)) for name, value in options.items())))
        engine = engines.get(key)
        if engine is None:
            engine = engines[key] = make_engine(self, bind_key, options, app)
        return engine

    shared_engine.shared = True  # type: ignore[attr-defined]
    SQLAlchemy._make_engine = shared_engine  # type: ignore[method-assign]


class _SharedTemplateCode(BytecodeCache):
    """Jinja's compiled templates, kept in memory for every app of this test process.

    Each test's app has its own Jinja environment, and so compiled every page it rendered
    again (~50 ms a template). Jinja's bytecode cache is its documented way to reuse the
    compiled code; the key holds everything that changes the code made (the environment's
    syntax, extensions, filter and test names, autoescaping of this template) and the
    source's checksum, so an edited template or a differently built app compiles anew.
    """

    def __init__(self) -> None:
        self._code: dict[str, tuple[str, Any]] = {}

    def get_bucket(
        self, environment: Environment, name: str, filename: str | None, source: str
    ) -> Bucket:
        autoescape = environment.autoescape
        if callable(autoescape):
            autoescape = autoescape(name)
        key = repr(
            (
                name,
                filename,
                bool(autoescape),
                sorted(environment.extensions),
                sorted(environment.filters),
                sorted(environment.tests),
                environment.block_start_string,
                environment.variable_start_string,
                environment.comment_start_string,
                environment.line_statement_prefix,
                environment.line_comment_prefix,
                environment.trim_blocks,
                environment.lstrip_blocks,
                environment.newline_sequence,
                environment.keep_trailing_newline,
                environment.optimized,
                environment.is_async,
                environment.finalize is not None,
            )
        )
        bucket = Bucket(environment, key, self.get_source_checksum(source))
        self.load_bytecode(bucket)
        return bucket

    def load_bytecode(self, bucket: Bucket) -> None:
        found = self._code.get(bucket.key)
        if found is not None and found[0] == bucket.checksum:
            bucket.code = found[1]

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = (bucket.checksum, bucket.code)


def _cheap_password_hashing() -> Any:
    """Hash test passwords with argon2id's smallest cost; return the production hasher.

    Production's hasher (OWASP's 19 MiB, 2 passes) spends ~30 ms a hash and as much a check,
    and thousands of tests create users and sign in. Only this test process is changed:
    hashes carry their own parameters, so a hash made by a `campaign` subprocess still
    verifies, and tests/web/test_auth.py checks the production parameters on the hasher
    returned here (decision 0052).
    """
    from argon2 import PasswordHasher

    from campaign.services.accounts import users

    production: Any = users._hasher
    users._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    return production


def _sqlite_rows_in_no_promised_order() -> None:
    """Make SQLite return the rows of a SELECT without ORDER BY last row first.

    PostgreSQL promises no order without ORDER BY, and since the tests empty its tables by
    DELETE (decision 0052) it often returns rows in another order than they were written;
    SQLite returns them as written. A test or a page that reads several rows without
    ORDER BY and relies on their order then passed on SQLite and failed now and then on
    PostgreSQL. With SQLite's `reverse_unordered_selects` such a test fails on SQLite at
    every run (decision 0061).
    """
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def reverse_unordered(dbapi_connection: Any, _record: Any) -> None:
        if type(dbapi_connection).__module__.startswith("sqlite3"):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA reverse_unordered_selects = ON")
            cursor.close()

    event.listen(Engine, "connect", reverse_unordered)


_share_url_builders()
_share_rule_parsing()
_share_engines()
_sqlite_rows_in_no_promised_order()
# Flask passes `jinja_options` to each app's environment (create_app sets none of its own).
Flask.jinja_options = {**Flask.jinja_options, "bytecode_cache": _SharedTemplateCode()}
#: The argon2 hasher production uses (unchanged module state before the tests' cheap one).
PRODUCTION_PASSWORD_HASHER = _cheap_password_hashing()


def pytest_sessionfinish(session: pytest.Session) -> None:
    # An xdist worker hands the services it missed to the controller, which prints them.
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["missing_services"] = sorted(set(servers.MISSING_SERVICES))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    servers.MISSING_SERVICES.extend(getattr(node, "workeroutput", {}).get("missing_services", []))


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


# Empties the tables a test wrote to and rewinds the sequences it used. TRUNCATE of all 43
# tables took ~230 ms a test, DELETE ~10 ms (decision 0052). One query first finds the
# tables that hold a row and the sequences that handed out a value (a `LIMIT 1` scan of
# each table, ~4 ms); only those are emptied and rewound, in a second round trip. A test
# that wrote nothing costs that one query: a PL/pgSQL block that looked at each table with
# a dynamic EXISTS took ~40 ms even on an empty database (decision 0084). Children go
# before their parents (reverse dependency order), so DELETE meets no foreign key.
_FOUND_IN_POSTGRES: dict[tuple[str, ...], str] = {}


def _found_in_postgres(names: list[str]) -> str:
    """One query: the names of the tables holding a row, then of the sequences used."""
    key = tuple(names)
    query = _FOUND_IN_POSTGRES.get(key)
    if query is None:
        # The names are our own tables' (the models'), never input.
        tables = [
            f"(SELECT {position} AS position, 't' AS kind, '{name}' AS name "  # noqa: S608
            f'FROM "{name}" LIMIT 1)'
            for position, name in enumerate(names)
        ]
        sequences = (
            f"(SELECT {len(names)} AS position, 's' AS kind, "  # noqa: S608
            "sequencename::text AS name FROM pg_sequences "
            "WHERE schemaname = current_schema() AND last_value IS NOT NULL)"
        )
        query = _FOUND_IN_POSTGRES[key] = " UNION ALL ".join([*tables, sequences])
    return query


def _empty_postgres(app: Flask) -> None:
    with app.app_context():
        # Our own tables' names, spelled as literals (quoted identifiers).
        names = [table.name for table in reversed(db.metadata.sorted_tables)]
        found = db.session.execute(text(_found_in_postgres(names))).all()
        statements = [
            f'DELETE FROM "{name}"'  # noqa: S608 — our tables' and sequences' names
            if kind == "t"
            else f'ALTER SEQUENCE "{name}" RESTART'
            for _position, kind, name in sorted(found, key=lambda row: (row[0], row[2]))
        ]
        if not statements:
            db.session.commit()
            return
        try:
            db.session.execute(text("; ".join(statements)))
            db.session.commit()
        except Exception:
            # Whatever DELETE could not do (a cycle of foreign keys), TRUNCATE does.
            db.session.rollback()
            tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
            db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            db.session.commit()


def fresh_sqlite_copy(request: pytest.FixtureRequest) -> str:
    """A fresh copy of the migrated template, always at the same path in this test process,
    so that every test's app finds the engine (and its statement cache) already made."""
    template: Path = request.getfixturevalue("sqlite_template")
    target = template.parent.parent / "sqlite-test" / "campaign.sqlite3"
    target.parent.mkdir(exist_ok=True)
    # Unlinked, not overwritten: a connection a previous test left open keeps the old
    # file and its write-ahead log, and never sees (or damages) this test's database.
    for leftover in (
        target,
        Path(f"{target}-wal"),
        Path(f"{target}-shm"),
        Path(f"{target}-journal"),
    ):
        leftover.unlink(missing_ok=True)
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test that uses the database runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return fresh_sqlite_copy(request)
    url: str = request.getfixturevalue("postgres_migrated")
    return url


@pytest.fixture
def csrf_enabled() -> bool:
    """CSRF checks are off in tests; one test turns them on with
    `@pytest.mark.parametrize("csrf_enabled", [True])` and reads tokens with
    tests/pages.py's `csrf_token`."""
    return False


@pytest.fixture
def app_overrides(
    tmp_path: Path, redis_server: servers.RedisServer, database_url: str, csrf_enabled: bool
) -> dict[str, Any]:
    """Override in a test module to change settings before the app is built."""
    overrides = _base_overrides(tmp_path / "instance", redis_server.url, database_url)
    return {**overrides, "WTF_CSRF_ENABLED": csrf_enabled}


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
        if db.engine.dialect.name == "sqlite":
            # The next test's SQLite file replaces this one at the same path: a pooled
            # connection would still read the unlinked file.
            db.engine.dispose()
        # PostgreSQL's pooled connections (rolled back when given back, checked by
        # pool_pre_ping when taken) serve the next test: a new one cost ~20 ms (decision 0084).
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
    """A committed staff account of `role` (`UserFactory`), by default `<role>@example.org`."""
    from tests.factories import UserFactory

    user: User = UserFactory(role=role, email=email or f"{role.value}@example.org", commit=True)
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
def fixed_clock(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """fixed_clock(instant): from then on `campaign.clock.now()` answers `instant` (aware), in
    this process and its live servers' threads, so a date test never depends on the day it
    runs (decision 0054)."""
    from datetime import UTC

    from campaign import clock

    def _fix(instant: Any) -> None:
        assert instant.tzinfo is not None, "a fixed clock needs an aware instant"
        monkeypatch.setattr(clock, "now", lambda: instant.astimezone(UTC))

    return _fix


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
