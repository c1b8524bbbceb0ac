"""Configuration: every key documented, environment parsing, and the refusal to run unsafely."""

from __future__ import annotations

import re
from dataclasses import MISSING, fields
from pathlib import Path

import pytest
from click.testing import CliRunner

from campaign import create_app
from campaign.cli import cli
from campaign.config import DEVELOPMENT_SECRET_KEY, PROJECT_ROOT, Config, ConfigError

README = PROJECT_ROOT / "README.md"


def _readme_rows() -> dict[str, str]:
    """CAMPAIGN_<KEY> -> its Default cell, from the README's configuration table."""
    rows = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\|\s*`(CAMPAIGN_[A-Z_]+)`\s*\|([^|]*)\|", line)
        if match:
            rows[match.group(1)] = match.group(2).strip()
    return rows


def _documented_default(name: str) -> str:
    field = next(f for f in fields(Config) if f.name == name)
    if name == "INSTANCE_PATH":
        return "`./instance`"  # computed from where the project lives
    assert field.default is not MISSING, name
    value = field.default
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value == "":
        return "(empty)"
    return f"`{value}`"


@pytest.mark.parametrize("name", [f.name for f in fields(Config)])
def test_every_setting_is_in_the_readme_table_with_its_default(name: str) -> None:
    rows = _readme_rows()
    assert f"CAMPAIGN_{name}" in rows, f"README's configuration table lacks CAMPAIGN_{name}"
    assert rows[f"CAMPAIGN_{name}"] == _documented_default(name)


def test_the_readme_documents_no_setting_that_does_not_exist() -> None:
    known = {f"CAMPAIGN_{f.name}" for f in fields(Config)}
    assert set(_readme_rows()) - known == set()


def test_booleans_and_numbers_are_parsed_from_the_environment() -> None:
    config = Config.from_env(
        {
            "CAMPAIGN_DEBUG": "yes",
            "CAMPAIGN_MAIL_USE_TLS": "On",
            "CAMPAIGN_SESSION_COOKIE_SECURE": "0",
            "CAMPAIGN_MAIL_PORT": "2525",
            "CAMPAIGN_QUEUE_NAME": "ngo-a",
            "UNRELATED": "ignored",
        }
    )
    assert config.DEBUG is True
    assert config.MAIL_USE_TLS is True
    assert config.SESSION_COOKIE_SECURE is False
    assert config.MAIL_PORT == 2525
    assert config.QUEUE_NAME == "ngo-a"
    assert Config.from_env({}).MAIL_PORT == 8025


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CAMPAIGN_DEBUG", "maybe", "CAMPAIGN_DEBUG must be true or false, not 'maybe'"),
        ("CAMPAIGN_MAIL_PORT", "25x", "CAMPAIGN_MAIL_PORT must be a whole number, not '25x'"),
        ("CAMPAIGN_IMPORT_MAX_MB", "1.5", "CAMPAIGN_IMPORT_MAX_MB must be a whole number"),
    ],
)
def test_a_value_that_does_not_parse_is_refused_naming_the_variable(
    variable: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        Config.from_env({variable: value})


def test_outside_debug_the_development_secret_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CAMPAIGN_SECRET_KEY is still the development key"):
        create_app({"INSTANCE_PATH": str(tmp_path), "DEBUG": False})
    # Debug mode may use it; a real key works without debug.
    assert create_app({"INSTANCE_PATH": str(tmp_path), "DEBUG": True}).config["DEBUG"] is True
    app = create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "x" * 64})
    assert app.config["SECRET_KEY"] != DEVELOPMENT_SECRET_KEY


def test_the_command_line_says_why_it_will_not_start(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["routes"],
        env={
            "CAMPAIGN_INSTANCE_PATH": str(tmp_path),
            "CAMPAIGN_DEBUG": "false",
            "CAMPAIGN_SECRET_KEY": DEVELOPMENT_SECRET_KEY,
        },
    )
    assert result.exit_code != 0
    assert "CAMPAIGN_SECRET_KEY is still the development key" in result.output


@pytest.mark.parametrize(
    ("given", "used"),
    [
        (
            "postgres://camp:pw@db.example.org/campaign",
            "postgresql+psycopg://camp:pw@db.example.org/campaign",
        ),
        ("postgresql://camp@db/campaign", "postgresql+psycopg://camp@db/campaign"),
        ("postgresql+psycopg://camp@db/campaign", "postgresql+psycopg://camp@db/campaign"),
    ],
)
def test_postgres_urls_are_accepted_and_use_psycopg_3(given: str, used: str) -> None:
    config = Config.from_env({"CAMPAIGN_DATABASE_URL": given})
    assert config.database_uri == used


def test_defaults_put_sqlite_and_the_dev_mailbox_in_the_instance_folder(tmp_path: Path) -> None:
    config = Config.from_env({"CAMPAIGN_INSTANCE_PATH": str(tmp_path)})
    assert config.database_uri == f"sqlite:///{tmp_path}/campaign.sqlite3"
    assert config.devmail_path == tmp_path / "devmail"


def test_debug_signs_with_a_random_key_made_once_in_the_instance_folder(tmp_path: Path) -> None:
    from flask.sessions import SecureCookieSessionInterface
    from itsdangerous import BadSignature

    first = create_app({"INSTANCE_PATH": str(tmp_path), "DEBUG": True})
    key_file = tmp_path / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert first.secret_key == key_file.read_text().strip()
    assert first.secret_key != DEVELOPMENT_SECRET_KEY
    assert len(str(first.secret_key)) >= 64
    # The next start (scripts/run again) keeps it: sessions and links stay valid.
    assert create_app({"INSTANCE_PATH": str(tmp_path), "DEBUG": True}).secret_key == (
        first.secret_key
    )

    # A cookie the app issues cannot be read, nor one forged, with the published key.
    with first.test_request_context():
        from flask import session

        session["_user_id"] = "1"
        cookie = SecureCookieSessionInterface().get_signing_serializer(first).dumps(dict(session))
    published = create_app({"INSTANCE_PATH": str(tmp_path / "other"), "DEBUG": True})
    published.secret_key = DEVELOPMENT_SECRET_KEY
    serializer = SecureCookieSessionInterface().get_signing_serializer(published)
    assert serializer is not None
    with pytest.raises(BadSignature):
        serializer.loads(cookie)


def test_a_second_terminal_finds_the_instance_key_without_configuration(tmp_path: Path) -> None:
    dev = create_app({"INSTANCE_PATH": str(tmp_path), "DEBUG": True})
    # `campaign routes` in another terminal: not debug, no CAMPAIGN_SECRET_KEY.
    result = CliRunner().invoke(
        cli, ["routes"], env={"CAMPAIGN_INSTANCE_PATH": str(tmp_path), "CAMPAIGN_DEBUG": "false"}
    )
    assert result.exit_code == 0, result.output
    assert "/u/<token>" in result.output
    assert create_app({"INSTANCE_PATH": str(tmp_path)}).secret_key == dev.secret_key
    # An explicit key wins over the file.
    explicit = create_app({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "y" * 64})
    assert explicit.secret_key == "y" * 64


def test_folders_left_open_by_older_versions_are_closed_at_start(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    for folder in (instance, instance / "uploads", instance / "devmail", instance / "redis"):
        folder.mkdir()
        folder.chmod(0o755)
    database = instance / "campaign.sqlite3"
    database.write_bytes(b"")
    database.chmod(0o644)
    create_app({"INSTANCE_PATH": str(instance), "DEBUG": True})
    for folder in (instance, instance / "uploads", instance / "devmail", instance / "redis"):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    assert database.stat().st_mode & 0o777 == 0o600


HSTS = "max-age=31536000"


@pytest.mark.parametrize("path", ["/healthz", "/login", "/t/o/not-a-token.gif", "/no-such-page"])
def test_an_https_installation_tells_browsers_to_use_https_only(tmp_path: Path, path: str) -> None:
    app = create_app(
        {
            "INSTANCE_PATH": str(tmp_path),
            "SECRET_KEY": "x" * 64,
            "PUBLIC_URL": "https://campaign.example.org",
            "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        }
    )
    response = app.test_client().get(path)
    assert response.headers.get("Strict-Transport-Security") == HSTS


def test_subdomains_are_covered_only_when_the_operator_says_so(tmp_path: Path) -> None:
    # The app may live at the organisation's own domain, whose other sites may still be http.
    settings = {
        "INSTANCE_PATH": str(tmp_path),
        "SECRET_KEY": "x" * 64,
        "PUBLIC_URL": "https://campaign.example.org",
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
    }
    plain = create_app(settings).test_client().get("/healthz")
    assert plain.headers["Strict-Transport-Security"] == "max-age=31536000"
    wide = create_app({**settings, "HSTS_INCLUDE_SUBDOMAINS": True}).test_client().get("/healthz")
    assert wide.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


@pytest.mark.parametrize(
    ("public_url", "debug"), [("http://127.0.0.1:5000", True), ("", True), ("", False)]
)
def test_no_hsts_without_an_https_public_address(
    tmp_path: Path, public_url: str, debug: bool
) -> None:
    app = create_app(
        {
            "INSTANCE_PATH": str(tmp_path),
            "SECRET_KEY": "x" * 64,
            "DEBUG": debug,
            "PUBLIC_URL": public_url,
            "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        }
    )
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response.headers


def test_an_empty_key_file_is_made_again_in_debug_and_refused_outside(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    tmp_path.chmod(0o700)
    key_file.write_text("")
    key_file.chmod(0o600)
    with pytest.raises(ConfigError, match=f"{key_file} is empty"):
        create_app({"INSTANCE_PATH": str(tmp_path), "DEBUG": False})
    # Debug never falls back to the published key: it writes a new random one.
    app = create_app({"INSTANCE_PATH": str(tmp_path), "DEBUG": True})
    assert app.secret_key != DEVELOPMENT_SECRET_KEY
    assert re.fullmatch(r"[0-9a-f]{64}", key_file.read_text().strip())
    assert app.secret_key == key_file.read_text().strip()
    assert key_file.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("debug", [True, False])
def test_a_key_file_others_can_read_is_refused(tmp_path: Path, debug: bool) -> None:
    create_app({"INSTANCE_PATH": str(tmp_path), "DEBUG": True})
    key_file = tmp_path / "secret_key"
    key_file.chmod(0o644)
    with pytest.raises(ConfigError, match=re.escape(f"chmod 600 {key_file}")):
        create_app({"INSTANCE_PATH": str(tmp_path), "DEBUG": debug})
    key_file.chmod(0o640)
    with pytest.raises(ConfigError, match="can be read by other users"):
        create_app({"INSTANCE_PATH": str(tmp_path), "DEBUG": debug})
    key_file.chmod(0o600)
    assert create_app({"INSTANCE_PATH": str(tmp_path), "DEBUG": debug}).secret_key


def test_a_key_file_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    import os

    if os.getuid() != 0:
        pytest.skip("giving a file to another user needs root")
    create_app({"INSTANCE_PATH": str(tmp_path), "DEBUG": True})
    key_file = tmp_path / "secret_key"
    os.chown(key_file, 65534, 65534)  # nobody
    with pytest.raises(ConfigError, match=re.escape(f"chown {os.getuid()} {key_file}")):
        create_app({"INSTANCE_PATH": str(tmp_path), "DEBUG": True})


def test_the_command_line_names_the_key_file_to_fix(tmp_path: Path) -> None:
    create_app({"INSTANCE_PATH": str(tmp_path), "DEBUG": True})
    key_file = tmp_path / "secret_key"
    key_file.chmod(0o604)
    result = CliRunner().invoke(cli, ["routes"], env={"CAMPAIGN_INSTANCE_PATH": str(tmp_path)})
    assert result.exit_code != 0
    assert f"chmod 600 {key_file}" in result.output


def test_an_unusable_webhook_ca_file_stops_the_start(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    config = Config.from_env({"CAMPAIGN_WEBHOOK_CA_FILE": str(missing), "CAMPAIGN_DEBUG": "true"})
    with pytest.raises(ConfigError, match="CAMPAIGN_WEBHOOK_CA_FILE"):
        config.check_safe_to_start()
