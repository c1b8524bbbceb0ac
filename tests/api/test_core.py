"""The API's shared rules: keys, problems, the contract and its reference page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, Role
from campaign.services.accounts import api_keys
from tests.api.helpers import bearer, new_key
from tests.conftest import make_user, sign_in
from tests.pages import text_of


def _problem(response: object) -> dict:  # type: ignore[type-arg]
    assert response.mimetype == "application/problem+json", response.get_data(as_text=True)  # type: ignore[attr-defined]
    return response.get_json()  # type: ignore[attr-defined,no-any-return]


def test_a_key_says_whose_it_is_and_what_it_may_do(client: FlaskClient) -> None:
    token, key = new_key(Role.EDITOR, ["contacts:write", "statements:read"])
    response = client.get("/api/v1/me", headers=bearer(token))
    assert response.status_code == 200
    body = response.get_json()
    assert body["scopes"] == ["contacts:write", "statements:read"]
    assert body["user_role"] == "editor"
    assert body["prefix"] == key.prefix
    assert token not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "spoil",
    [
        lambda token, key: "",  # no key at all
        lambda token, key: token[:-1] + ("A" if token[-1] != "A" else "B"),  # one character
        lambda token, key: token.replace(key.prefix, "0" * len(key.prefix)),  # unknown prefix
        lambda token, key: "Basic " + token,  # another scheme
    ],
    ids=["none", "one-character", "unknown-prefix", "basic"],
)
def test_a_missing_or_altered_key_is_a_401_problem(client: FlaskClient, spoil) -> None:  # type: ignore[no-untyped-def]
    token, key = new_key()
    wrong = spoil(token, key)
    headers = {"Authorization": wrong if wrong.startswith("Basic") else f"Bearer {wrong}"}
    response = client.get("/api/v1/me", headers=headers if wrong else {})
    assert response.status_code == 401
    problem = _problem(response)
    assert problem["status"] == 401 and "Authorization: Bearer" in problem["detail"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_expired_and_deactivated_keys_stop_working(app: Flask, client: FlaskClient) -> None:
    revoked, revoked_key = new_key()
    api_keys.revoke_key(revoked_key, by=revoked_key.user)
    expired, expired_key = new_key(expires_in_days=1)
    expired_key.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    deactivated, deactivated_key = new_key()
    deactivated_key.user.is_active_account = False
    live, _ = new_key()
    db.session.commit()
    for token in (revoked, expired, deactivated):
        assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401
    assert client.get("/api/v1/me", headers=bearer(live)).status_code == 200


def test_a_signed_in_browser_session_does_not_open_the_api(client: FlaskClient) -> None:
    sign_in(client, make_user(Role.ADMIN))
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert "Set-Cookie" not in response.headers


def test_keys_never_get_more_than_their_users_role(app: Flask) -> None:
    viewer = make_user(Role.VIEWER)
    with pytest.raises(api_keys.ApiKeyError) as refused:
        api_keys.create_key(
            viewer,
            name="too much",
            scopes=["contacts:write"],
            expires_in_days=None,
            created_by=viewer,
        )
    assert refused.value.field == "scopes"
    assert "contacts:write" in str(refused.value)
    assert "suppressions:read" not in api_keys.scopes_for(make_user(Role.SENDER))
    editor = make_user(Role.EDITOR)
    with pytest.raises(api_keys.ApiKeyError):
        api_keys.create_key(
            viewer,
            name="for another",
            scopes=["contacts:read"],
            expires_in_days=None,
            created_by=editor,
        )


def test_only_the_hash_of_a_key_is_stored(app: Flask) -> None:
    token, key = new_key()
    secret = token.rsplit("_", 1)[-1]
    assert secret not in key.secret_hash and len(key.secret_hash) == 64
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "api_key.created")
    ).one()
    assert secret not in str(event.detail) and key.prefix in str(event.detail)


def test_every_call_is_audited_with_key_route_and_status_but_no_body(client: FlaskClient) -> None:
    token, key = new_key()
    client.get("/api/v1/me", headers=bearer(token))
    client.get("/api/v1/me", headers=bearer("cak_nothing_here"))
    db.session.expire_all()
    calls = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "api.call").order_by(AuditEvent.id)
    ).all()
    assert [(c.detail["route"], c.detail["status"], c.detail["key"]) for c in calls] == [
        ("/api/v1/me", 200, key.prefix),
        ("/api/v1/me", 401, ""),
    ]
    assert calls[0].actor_id == key.user_id


def test_an_unknown_api_address_and_a_wrong_method_are_problems(client: FlaskClient) -> None:
    token, _ = new_key()
    missing = client.get("/api/v1/no-such-thing", headers=bearer(token))
    assert missing.status_code == 404 and _problem(missing)["status"] == 404
    wrong = client.delete("/api/v1/me", headers=bearer(token))
    assert wrong.status_code == 405 and _problem(wrong)["title"]


def test_the_rate_limit_answers_429_with_retry_after(app: Flask, client: FlaskClient) -> None:
    app.config["API_RATE_LIMIT_PER_MINUTE"] = 3
    token, _ = new_key()
    statuses = [client.get("/api/v1/me", headers=bearer(token)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.get("/api/v1/me", headers=bearer(token))
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert "3" in _problem(limited)["detail"]
    other, _ = new_key()
    assert client.get("/api/v1/me", headers=bearer(other)).status_code == 200


def test_problems_are_in_the_key_users_language(app: Flask, client: FlaskClient) -> None:
    # No key: the browser's language.
    response = client.get("/api/v1/me", headers={"Accept-Language": "fr"})
    assert response.status_code == 401
    problem = _problem(response)
    assert problem["title"] == "Non authentifié"
    assert "Authorization: Bearer" in problem["detail"] and "clé" in problem["detail"]
    # A key: its user's own language, whatever the client's header says.
    user = make_user(Role.EDITOR, "lecteur@example.org")
    user.language = "ru"
    db.session.commit()
    token, _ = new_key(user=user, scopes=["contacts:read"])
    app.config["API_RATE_LIMIT_PER_MINUTE"] = 1
    headers = bearer(token, **{"Accept-Language": "fr"})
    # Three calls: a second call that falls into the next minute's window is allowed.
    answers = [client.get("/api/v1/me", headers=headers) for _ in range(3)]
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert _problem(refused)["title"] == "Слишком много запросов"
    assert "ключ" in _problem(refused)["detail"]


def test_the_contract_is_openapi_3_1_and_the_reference_page_shows_it(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    assert "/api/v1/me" in document["paths"]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert not any(path.startswith("/contacts/") for path in document["paths"])
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    text = text_of(page)
    assert "GET /api/v1/me" in text and "KeyInfo" in text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "https://" not in text.split("</head>")[0]


def test_a_body_of_50_mb_is_refused_before_it_is_read(client: FlaskClient) -> None:
    token, _ = new_key(Role.EDITOR)
    body = b'{"items": [' + b" " * (50 * 1024 * 1024) + b"]}"
    response = client.post(
        "/api/v1/contacts/bulk",
        data=body,
        headers=bearer(token, **{"Content-Type": "application/json"}),
    )
    assert response.status_code == 413
    problem = _problem(response)
    assert problem["status"] == 413 and problem["detail"]
    assert client.get("/api/v1/contacts", headers=bearer(token)).get_json()["items"] == []
