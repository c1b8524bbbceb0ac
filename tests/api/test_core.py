"""The API's shared rules: keys, problems, the contract and its reference page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, Contact, Role
from campaign.services.accounts import api_keys
from tests.api.helpers import bearer, new_key
from tests.conftest import make_user, sign_in
from tests.pages import html_of, text_of, visible_text


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
    # The API's words and the methods the address takes (RFC 9110: Allow on a 405), not
    # the pages' "go back and use the links".
    assert _problem(wrong)["detail"] == "This address does not accept the DELETE method."
    assert "GET" in wrong.headers["Allow"] and "DELETE" not in wrong.headers["Allow"]


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
    assert problem["title"] == "Aucune clé d’API valide"
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


def _russian_key(role: Role = Role.EDITOR, scopes: list[str] | None = None) -> str:
    user = make_user(role, f"ru-{role.value}@example.org")
    user.language = "ru"
    db.session.commit()
    token, _ = new_key(user=user, scopes=scopes)
    return token


def test_russian_and_french_answers_are_readable_in_a_raw_body(client: FlaskClient) -> None:
    token = _russian_key()
    problem = client.get("/api/v1/no-such-thing", headers=bearer(token))
    raw = problem.get_data(as_text=True)
    assert "Не найдено" in raw and "\\u" not in raw
    wrong_method = client.delete("/api/v1/me", headers=bearer(token))
    assert "не принимает метод DELETE" in wrong_method.get_data(as_text=True)
    # A dict-built answer (with_etag) too, as the model answers already were.
    made = client.post(
        "/api/v1/contacts",
        json={"email": "minister@example.org", "family_name": "Иванова"},
        headers=bearer(token),
    )
    assert made.status_code == 201, made.get_data(as_text=True)
    contact_id = made.get_json()["id"]
    read = client.get(f"/api/v1/contacts/{contact_id}", headers=bearer(token))
    assert "Иванова" in read.get_data(as_text=True) and "\\u" not in read.get_data(as_text=True)


def test_a_body_too_large_is_refused_in_the_key_users_language_naming_the_limit(
    app: Flask, client: FlaskClient
) -> None:
    app.config["API_MAX_BODY_MB"] = 1
    token = _russian_key()
    body = b'{"items": [' + b" " * (2 * 1024 * 1024) + b"]}"
    response = client.post(
        "/api/v1/contacts/bulk",
        data=body,
        headers=bearer(token, **{"Content-Type": "application/json", "Accept-Language": "fr"}),
    )
    assert response.status_code == 413
    problem = _problem(response)
    assert problem["title"] == "Слишком большой запрос", problem
    assert "1" in problem["detail"] and "CAMPAIGN_API_MAX_BODY_MB" in problem["detail"]


def _chunked(client: FlaskClient, token: str, body: bytes) -> object:
    import io

    return client.post(
        "/api/v1/contacts/bulk",
        input_stream=io.BytesIO(body),
        headers=bearer(
            token, **{"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
        ),
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_a_chunked_body_is_read_truncated_or_too_large(app: Flask, client: FlaskClient) -> None:
    token, _ = new_key(Role.EDITOR)
    truncated = _chunked(client, token, b'{"items": [{"email": "a@example.org"')
    assert truncated.status_code == 400  # type: ignore[attr-defined]
    assert _problem(truncated)["errors"][0]["field"] == "body"
    app.config["API_MAX_BODY_MB"] = 1
    large = _chunked(client, token, b'{"items": [' + b" " * (2 * 1024 * 1024) + b"]}")
    assert large.status_code == 413  # type: ignore[attr-defined]
    assert "CAMPAIGN_API_MAX_BODY_MB" in _problem(large)["detail"]
    assert db.session.scalars(select(Contact)).all() == []


def test_a_key_that_stopped_working_says_why_to_its_holder_only(client: FlaskClient) -> None:
    revoked, revoked_key = new_key()
    api_keys.revoke_key(revoked_key, by=revoked_key.user)
    expired, expired_key = new_key(expires_in_days=1)
    expired_key.expires_at = datetime.now(UTC) - timedelta(days=2)
    deactivated, deactivated_key = new_key()
    deactivated_key.user.is_active_account = False
    db.session.commit()
    details = {
        name: _problem(client.get("/api/v1/me", headers=bearer(token)))["detail"]
        for name, token in (
            ("revoked", revoked),
            ("expired", expired),
            ("deactivated", deactivated),
            ("garbled", revoked[:-1] + ("A" if revoked[-1] != "A" else "B")),
        )
    }
    assert "was revoked on" in details["revoked"] and "account page" in details["revoked"]
    when = expired_key.expires_at.strftime("%Y-%m-%d")
    assert f"expired on {when}" in details["expired"]
    assert "deactivated" in details["deactivated"]
    # Someone who does not hold the whole key learns nothing about it.
    assert details["garbled"] == "Send a valid API key: Authorization: Bearer <key>."


def test_a_refusal_names_the_role_and_the_scope_needed(client: FlaskClient) -> None:
    token, _ = new_key(Role.EDITOR, ["contacts:write", "campaigns:write"])
    launch = client.post("/api/v1/campaigns/1/launch", json={}, headers=bearer(token))
    assert launch.status_code == 403
    assert "role Sender" in _problem(launch)["detail"]
    assert "your role" not in _problem(launch)["detail"].lower()
    assert "role Editor" in _problem(launch)["detail"]
    reader, _ = new_key(Role.EDITOR, ["contacts:read"])
    write = client.post("/api/v1/contacts", json={"email": "a@example.org"}, headers=bearer(reader))
    detail = _problem(write)["detail"]
    assert "contacts:write" in detail and "Contacts, lists and segments: read and write" in detail


def test_schema_errors_have_a_detail_and_list_codes_in_the_readers_language(
    client: FlaskClient,
) -> None:
    user = make_user(Role.EDITOR, "fr@example.org")
    user.language = "fr"
    db.session.commit()
    token, _ = new_key(user=user, scopes=["campaigns:read"])
    response = client.get("/api/v1/campaigns/4/deliveries?status=bounce", headers=bearer(token))
    assert response.status_code == 422
    problem = _problem(response)
    assert problem["detail"] == "Certains champs ne sont pas valides."
    [error] = problem["errors"]
    assert error["field"] == "status"
    assert "'queued'" in error["message"] and "'cancelled'" in error["message"]
    assert " or " not in error["message"]


def test_if_match_compares_strongly_and_204_has_no_content_type(client: FlaskClient) -> None:
    token, _ = new_key(Role.EDITOR)
    made = client.post(
        "/api/v1/contacts",
        json={"email": "b@example.org", "family_name": "Dupont"},
        headers=bearer(token),
    )
    assert made.status_code == 201, made.get_data(as_text=True)
    address = f"/api/v1/contacts/{made.get_json()['id']}"
    etag = client.get(address, headers=bearer(token)).headers["ETag"]
    weak = client.patch(
        address, json={"notes": "x"}, headers=bearer(token, **{"If-Match": f"W/{etag}"})
    )
    assert weak.status_code == 412
    strong = client.patch(address, json={"notes": "x"}, headers=bearer(token, **{"If-Match": etag}))
    assert strong.status_code == 200
    gone = client.delete(address, headers=bearer(token))
    assert gone.status_code == 204
    assert "Content-Type" not in gone.headers and gone.get_data() == b""


def test_the_contract_documents_the_headers_answers_carry(client: FlaskClient) -> None:
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    create = paths["/api/v1/contacts"]["post"]["responses"]
    assert {"ETag", "Location", "Idempotent-Replayed"} <= set(create["201"]["headers"])
    assert "Retry-After" in create["429"]["headers"]
    assert "WWW-Authenticate" in create["401"]["headers"]
    read = paths["/api/v1/contacts/{contact_id}"]["get"]["responses"]
    assert "ETag" in read["200"]["headers"]
    assert "Idempotent-Replayed" not in read["200"]["headers"]


def test_the_reference_page_shows_plain_names_and_french_typography(
    client: FlaskClient,
) -> None:
    english = visible_text(text_of(client.get("/api/v1/docs")))
    assert "Problem" in english and "Problem." not in english
    assert "written in English" not in english
    assert "headers: ETag, Location" in english
    french = visible_text(text_of(client.get("/api/v1/docs", headers={"Accept-Language": "fr"})))
    assert "Réponses possibles :" in french and "Réponses possibles:" not in french
    assert "en anglais" in french


def test_the_audit_log_names_api_events_in_words(client: FlaskClient) -> None:
    token, key = new_key()
    client.get("/api/v1/me", headers=bearer(token))
    api_keys.revoke_key(key, by=key.user)
    db.session.commit()
    sign_in(client, make_user(Role.ADMIN, "auditor@example.org"))
    page = html_of(client.get("/audit/"))
    for words in ("API call", "API key made", "API key revoked", f"API key {key.id}"):
        assert words in page, words
    # Codes only as the filter's option values, never as text a reader sees.
    assert ">api.call<" not in page and ">api_key.revoked<" not in page
    assert "api_key 3" not in page and f"api_key {key.id}" not in page


def test_answers_kept_for_idempotency_keys_are_forgotten_after_a_day(app: Flask) -> None:
    from campaign.models import ApiIdempotency
    from workers.context import set_app
    from workers.jobs import reconcile

    _, key = new_key()
    for hours in (30, 2):
        db.session.add(
            ApiIdempotency(
                api_key_id=key.id,
                key=f"k{hours}",
                request="POST /api/v1/lists",
                request_hash="0" * 64,
                status_code=201,
                response_body='{"name": "Press list"}',
                created_at=datetime.now(UTC) - timedelta(hours=hours),
            )
        )
    db.session.commit()
    set_app(app)
    reconcile()
    db.session.expire_all()
    assert db.session.scalars(select(ApiIdempotency.key)).all() == ["k2"]


def test_viewers_are_not_offered_scopes_whose_every_operation_needs_an_editor(
    app: Flask,
) -> None:
    offered = api_keys.scopes_for(make_user(Role.VIEWER))
    assert "contacts:read" in offered
    assert not {"replies:read", "sign_on:read"} & set(offered)


def test_a_refused_request_does_not_keep_its_idempotency_key(client: FlaskClient) -> None:
    """On SQLite a savepoint's release commits: the record of a 422 stayed and every retry
    with the key, corrected, was a 409 "still being answered" for ever."""
    token, _ = new_key(Role.EDITOR)
    headers = bearer(token, **{"Idempotency-Key": "create-press-list"})
    refused = client.post("/api/v1/lists", json={"name": ""}, headers=headers)
    assert refused.status_code == 422
    corrected = client.post("/api/v1/lists", json={"name": "Press"}, headers=headers)
    assert corrected.status_code == 201, corrected.get_data(as_text=True)
    replayed = client.post("/api/v1/lists", json={"name": "Press"}, headers=headers)
    assert replayed.status_code == 201
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.get_json()["id"] == corrected.get_json()["id"]


def test_a_browser_session_names_no_one_in_the_api_audit(client: FlaskClient) -> None:
    admin = make_user(Role.ADMIN)
    sign_in(client, admin)
    assert client.post("/api/v1/suppressions", json={"email": "x@example.org"}).status_code == 401
    db.session.expire_all()
    call = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "api.call").order_by(AuditEvent.id.desc())
    ).first()
    assert call is not None and call.actor_id is None and call.actor_email == ""
    # The session itself is untouched: the pages still know the admin.
    assert client.get("/account").status_code == 200


def test_calls_without_a_key_are_audited_once_a_minute_per_network(client: FlaskClient) -> None:
    for _ in range(20):
        assert client.get("/api/v1/me", headers=bearer("cak_nothing_here")).status_code == 401
    token, _ = new_key()
    for _ in range(3):
        client.get("/api/v1/me", headers=bearer(token))
    db.session.expire_all()
    statuses = db.session.scalars(
        select(AuditEvent.detail).where(AuditEvent.action == "api.call").order_by(AuditEvent.id)
    ).all()
    assert [d["status"] for d in statuses] == [401, 200, 200, 200]
