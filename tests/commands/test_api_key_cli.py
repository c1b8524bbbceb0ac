"""`campaign api-key create|revoke|list`: keys from the shell, printed once, on stdout alone."""

from __future__ import annotations

import re

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import ApiKey, AuditEvent, Role
from tests.api.helpers import bearer
from tests.conftest import make_user

_TOKEN = re.compile(r"cak_[0-9a-f]+_[A-Za-z0-9_-]{20,}")


def _run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["api-key", *args])


def test_create_prints_only_the_key_and_the_key_works(app: Flask, client: FlaskClient) -> None:
    make_user(Role.EDITOR, "editor@example.org")
    result = _run(
        app,
        "create",
        "Editor@Example.org",
        "--name",
        "CRM sync",
        "--scopes",
        "contacts:read, campaigns:write",
        "--expires",
        "30",
    )
    assert result.exit_code == 0, result.stderr
    stdout = result.stdout
    token = stdout.strip()
    assert stdout == token + "\n" and _TOKEN.fullmatch(token)  # so KEY=$(…) holds the key
    stderr = result.stderr
    assert "editor@example.org" in stderr and "expires on" in stderr
    assert "shown only now" in stderr and token not in stderr

    me = client.get("/api/v1/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.get_json()["scopes"] == ["campaigns:write", "contacts:read"]
    key = db.session.scalars(select(ApiKey)).one()
    assert key.name == "CRM sync" and key.created_by_id is None
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "api_key.created")
    ).one()
    assert event.remote_addr == "cli" and token.rsplit("_", 1)[1] not in str(event.detail)


def test_never_expiring_keys_and_the_list(app: Flask) -> None:
    make_user(Role.ADMIN, "admin@example.org")
    make_user(Role.VIEWER, "viewer@example.org")
    made = _run(
        app,
        "create",
        "admin@example.org",
        "--name",
        "Backup",
        "--scopes",
        "suppressions:write",
        "--expires",
        "never",
    )
    assert made.exit_code == 0 and "never expires" in made.stderr
    _run(app, "create", "viewer@example.org", "--name", "Reader", "--scopes", "contacts:read")
    everyone = _run(app, "list")
    assert everyone.exit_code == 0
    lines = everyone.stdout.splitlines()
    assert [line.split("\t")[2:5] for line in lines] == [
        ["admin@example.org", "Backup", "suppressions:write"],
        ["viewer@example.org", "Reader", "contacts:read"],
    ]
    assert lines[0].split("\t")[5] == "never" and lines[0].split("\t")[6] == "never used"
    assert not _TOKEN.search(everyone.stdout)
    one = _run(app, "list", "viewer@example.org")
    assert [line.split("\t")[3] for line in one.stdout.splitlines()] == ["Reader"]


def test_revoke_stops_the_key(app: Flask, client: FlaskClient) -> None:
    make_user(Role.EDITOR, "editor@example.org")
    token = _run(
        app, "create", "editor@example.org", "--name", "N", "--scopes", "contacts:read"
    ).stdout.strip()
    key = db.session.scalars(select(ApiKey)).one()
    revoked = _run(app, "revoke", str(key.id))
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "api_key.revoked")
    ).one()
    assert event.remote_addr == "cli" and event.actor_id is None
    again = _run(app, "revoke", str(key.id))
    assert again.exit_code == 0 and "already revoked" in again.stdout
    assert _run(app, "list").stdout == ""


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["create", "nobody@example.org", "--name", "N", "--scopes", "contacts:read"],
            "There is no account for nobody@example.org",
        ),
        (
            ["create", "viewer@example.org", "--name", "N", "--scopes", "contacts:everything"],
            "Unknown scope: contacts:everything",
        ),
        (
            ["create", "viewer@example.org", "--name", "N", "--scopes", "contacts:write"],
            "contacts:write needs a role this user does not have",
        ),
        (
            ["create", "viewer@example.org", "--name", "N", "--scopes", ","],
            "Choose at least one scope",
        ),
        (
            ["create", "viewer@example.org", "--name", " ", "--scopes", "contacts:read"],
            "Give the key a name",
        ),
        (
            [
                "create",
                "viewer@example.org",
                "--name",
                "N",
                "--scopes",
                "contacts:read",
                "--expires",
                "soon",
            ],
            "--expires: write a number of days, or never",
        ),
        (
            [
                "create",
                "viewer@example.org",
                "--name",
                "N",
                "--scopes",
                "contacts:read",
                "--expires",
                "0",
            ],
            "between 1 and 3650 days",
        ),
        (["revoke", "4242"], "There is no API key 4242"),
        (["list", "nobody@example.org"], "There is no account for nobody@example.org"),
    ],
)
def test_bad_input_is_explained_with_exit_status_2(app: Flask, args: list[str], words: str) -> None:
    make_user(Role.VIEWER, "viewer@example.org")
    result = _run(app, *args)
    assert result.exit_code == 2, result.stderr
    assert words in result.stderr
    assert result.stdout == ""
    assert db.session.scalars(select(ApiKey)).all() == []


def test_a_scope_above_the_role_lists_what_the_account_may_have(app: Flask) -> None:
    make_user(Role.VIEWER, "viewer@example.org")
    result = _run(
        app, "create", "viewer@example.org", "--name", "N", "--scopes", "suppressions:read"
    )
    assert result.exit_code == 2
    assert "contacts:read" in result.stderr and "contacts:write" not in result.stderr


def test_a_deactivated_account_gets_no_key(app: Flask) -> None:
    user = make_user(Role.EDITOR, "gone@example.org")
    user.is_active_account = False
    db.session.commit()
    result = _run(app, "create", "gone@example.org", "--name", "N", "--scopes", "contacts:read")
    assert result.exit_code == 2 and "deactivated" in result.stderr


def test_an_unknown_scope_is_a_sentence_before_the_list(app: Flask) -> None:
    make_user(Role.EDITOR, "editor@example.org")
    result = _run(app, "create", "editor@example.org", "--name", "N", "--scopes", "contacts:wrte")
    assert result.exit_code == 2
    assert "Unknown scope: contacts:wrte. The scopes editor@example.org may have:" in (
        result.stderr
    )
