"""API keys on the account page (one's own) and the users page (an admin, for anyone)."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from campaign.extensions import db
from campaign.models import ApiKey, AuditEvent, Role
from tests.api.helpers import bearer, new_key
from tests.conftest import TEST_PASSWORD, make_user, sign_in
from tests.pages import csrf_token, html_of, text_of

_TOKEN = re.compile(r"cak_[0-9a-f]+_[A-Za-z0-9_-]{20,}")


def _token_in(response: TestResponse) -> str:
    found = _TOKEN.findall(html_of(response))
    assert found, html_of(response)
    assert len(set(found)) == 1  # the token, and the same token in the curl example
    return str(found[0])


def _create(client: FlaskClient, path: str = "/account/api-keys", **form: str) -> TestResponse:
    data = {"name": "Website", "scope-contacts": "write", "expires_days": "90", **form}
    return client.post(path, data=data)


def test_a_new_key_is_shown_once_and_works(client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    sign_in(client, user)
    page = client.get("/account")
    assert "API keys" in text_of(page) and "/api/v1/docs" in html_of(page)

    made = _create(client)
    assert made.status_code == 200
    assert made.headers["Cache-Control"] == "no-store"
    text = text_of(made)
    token = _token_in(made)
    assert "will not be shown again" in text
    assert f'curl -H "Authorization: Bearer {token}" https://campaign.example.org/api/v1/me' in text
    assert "Contacts, lists and segments: read and write" in text
    # Not in a flash (the session cookie) either.
    assert token not in made.headers.get("Set-Cookie", "")

    me = client.get("/api/v1/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.get_json()["scopes"] == ["contacts:write"]
    assert me.get_json()["user_email"] == user.email

    listed = client.get("/account")
    key = db.session.scalars(select(ApiKey)).one()
    assert token not in html_of(listed)
    assert f"cak_{key.prefix}_…" in text_of(listed)
    assert "Website" in text_of(listed)
    assert "Contacts, lists and segments: read and write" in text_of(listed)


def test_revoking_a_key_stops_it(client: FlaskClient) -> None:
    sign_in(client, make_user(Role.VIEWER))
    token = _token_in(_create(client, **{"scope-contacts": "read"}))
    key = db.session.scalars(select(ApiKey)).one()
    revoked = client.post(f"/account/api-keys/{key.id}/revoke")
    assert revoked.status_code == 302
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401
    assert f"cak_{key.prefix}_" not in html_of(client.get("/account"))
    assert db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "api_key.revoked")
    ).one()


def test_a_viewer_is_offered_read_only_and_cannot_post_write(client: FlaskClient) -> None:
    sign_in(client, make_user(Role.VIEWER))
    page = html_of(client.get("/account"))
    assert 'name="scope-contacts" value="read"' in page
    assert 'name="scope-contacts" value="write"' not in page
    assert 'name="scope-suppressions"' not in page  # admins only: not offered at all

    refused = _create(client, **{"scope-contacts": "write"})
    assert refused.status_code == 422
    assert 'id="e-key_scopes"' in html_of(refused)
    # In the page's own words (its labels), not the scope's code.
    assert (
        "“Contacts, lists and segments: read and write” needs the role Editor or a higher one"
        in text_of(refused)
    )
    assert "contacts:write" not in text_of(refused)
    assert db.session.scalars(select(ApiKey)).all() == []


@pytest.mark.parametrize(
    ("form", "field", "words"),
    [
        ({"name": "  "}, "key_name", "Give the key a name"),
        ({"scope-contacts": ""}, "key_scopes", "at least one scope"),
        (
            {"scope-contacts": "everything"},
            "key_scopes",
            "For Contacts, lists and segments choose read or read and write.",
        ),
        ({"expires_days": "soon"}, "key_expires", "number of days"),
        ({"expires_days": "0"}, "key_expires", "between 1 and"),
    ],
)
def test_errors_name_their_field_and_keep_the_form(
    client: FlaskClient, form: dict[str, str], field: str, words: str
) -> None:
    sign_in(client, make_user(Role.EDITOR))
    refused = _create(client, **{"name": "Kept name", **form})
    assert refused.status_code == 422
    page = html_of(refused)
    assert f'id="e-{field}"' in page and words in text_of(refused)
    if form.get("name", "x").strip():
        assert 'value="Kept name"' in page
    assert db.session.scalars(select(ApiKey)).all() == []


def test_an_empty_expiry_makes_a_key_that_never_expires(client: FlaskClient) -> None:
    sign_in(client, make_user(Role.EDITOR))
    made = _create(client, expires_days="")
    assert "never expires" in text_of(made)
    assert db.session.scalars(select(ApiKey)).one().expires_at is None


def test_an_editor_cannot_make_or_revoke_keys_of_someone_else(client: FlaskClient) -> None:
    other = make_user(Role.EDITOR, "other@example.org")
    sign_in(client, make_user(Role.EDITOR))
    assert _create(client, f"/users/{other.id}/api-keys").status_code == 403
    assert client.get(f"/users/{other.id}/api-keys").status_code == 403
    assert db.session.scalars(select(ApiKey)).all() == []

    _token, theirs = new_key(user=other, scopes=["contacts:read"])
    # Not through the own-account address either: another user's key is not found there.
    assert client.post(f"/account/api-keys/{theirs.id}/revoke").status_code == 404
    db.session.expire_all()
    assert db.session.get(ApiKey, theirs.id).revoked_at is None


def test_an_admin_makes_and_revokes_a_key_for_someone_else(client: FlaskClient) -> None:
    admin = make_user(Role.ADMIN)
    viewer = make_user(Role.VIEWER, "reader@example.org")
    sign_in(client, admin)
    assert f"/users/{viewer.id}/api-keys" in html_of(client.get("/users/"))
    page = client.get(f"/users/{viewer.id}/api-keys")
    # The scopes offered are the viewer's, not the admin's.
    assert 'name="scope-contacts" value="write"' not in html_of(page)
    assert _create(client, f"/users/{viewer.id}/api-keys").status_code == 422

    made = _create(client, f"/users/{viewer.id}/api-keys", **{"scope-contacts": "read"})
    token = _token_in(made)
    assert client.get("/api/v1/me", headers=bearer(token)).get_json()["user_email"] == (
        "reader@example.org"
    )
    key = db.session.scalars(select(ApiKey)).one()
    assert key.user_id == viewer.id and key.created_by_id == admin.id
    listed = text_of(client.get(f"/users/{viewer.id}/api-keys"))
    assert f"cak_{key.prefix}_…" in listed and "by admin@example.org" in listed
    assert token not in listed

    assert client.post(f"/users/{viewer.id}/api-keys/{key.id}/revoke").status_code == 302
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "api_key.revoked")
    ).one()
    assert event.actor_id == admin.id


@pytest.mark.parametrize("csrf_enabled", [True])
def test_the_key_forms_need_the_csrf_token(client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    login = {"email": user.email, "password": TEST_PASSWORD}
    signed_in = client.post("/login", data={**login, "csrf_token": csrf_token(client, "/login")})
    assert signed_in.status_code == 302
    assert _create(client).status_code == 400
    assert db.session.scalars(select(ApiKey)).all() == []

    token = csrf_token(client, "/account")
    _token_in(_create(client, csrf_token=token))
    key = db.session.scalars(select(ApiKey)).one()
    assert client.post(f"/account/api-keys/{key.id}/revoke").status_code == 400
    revoked = client.post(f"/account/api-keys/{key.id}/revoke", data={"csrf_token": token})
    assert revoked.status_code == 302


def test_a_deactivated_account_gets_no_key_even_from_an_admin(client: FlaskClient) -> None:
    gone = make_user(Role.EDITOR, "gone@example.org")
    gone.is_active_account = False
    db.session.commit()
    sign_in(client, make_user(Role.ADMIN))
    refused = _create(client, f"/users/{gone.id}/api-keys")
    assert refused.status_code == 422
    assert "This account is deactivated." in text_of(refused)
    assert db.session.scalars(select(ApiKey)).all() == []


def test_the_section_speaks_the_users_language(client: FlaskClient) -> None:
    user = make_user(Role.EDITOR)
    user.language = "fr"
    db.session.commit()
    sign_in(client, user)
    _create(client)
    page = text_of(client.get("/account"))
    assert "Clés d’API" in page and "Révoquer" in page
    assert "Contacts, listes et segments\u00a0: lecture et écriture" in page
