"""Sign-on through the API: settings with If-Match, moderation, and the public submit with
the form's checks, its e-mailed link, its rate limits and CORS for listed origins only."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import AuditEvent, Role, Signatory, Signature, SignatureStatus
from campaign.services.sign_on import signatures
from tests import servers
from tests.api.helpers import bearer, new_key
from tests.api.test_contacts import race
from tests.sign_on.test_signing import PUBLIC_URL, deliver, link_token, make_sign_on

PARTNER = "https://partner.example.org"


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    # As the sign-on tests' (a mail sink, a public address), with two listed origins.
    return {
        **app_overrides,
        "MAIL_SERVER": "localhost",
        "MAIL_PORT": servers.free_port(),
        "PUBLIC_URL": PUBLIC_URL,
        "API_CORS_ORIGINS": f"{PARTNER}/, https://other.example",
    }


def _form(**changes: Any) -> dict[str, Any]:
    return {
        "kind": "organisation",
        "name": "Association for Human Rights in Central Asia",
        "acronym": "AHRCA",
        "country": "France",
        "publish_as": "full",
        "email": "contact@ahrca.example.org",
        "consent": True,
        **changes,
    }


def _signatures() -> list[Signature]:
    db.session.expire_all()
    return list(db.session.scalars(select(Signature).order_by(Signature.id)))


def _submit(client: FlaskClient, token: str, **changes: Any) -> Any:
    return client.post(f"/api/v1/sign-on/{token}/signatures", json=_form(**changes))


# --- the public submit ------------------------------------------------------------------------


def test_a_signer_posts_confirms_by_the_emailed_link_and_an_editor_approves(
    app: Flask, client: FlaskClient
) -> None:
    sign_on = make_sign_on()
    answer = _submit(client, sign_on.token)
    assert answer.status_code == 202, answer.get_data(as_text=True)
    assert "e-mail" in answer.get_json()["detail"]
    [signature] = _signatures()
    assert signature.status == SignatureStatus.UNCONFIRMED and signature.email_key
    [message] = deliver(app, "signature_confirmation", signature.id)
    confirmed = client.post(f"/sign/confirm/{link_token(message)}")
    assert confirmed.status_code == 200
    assert _signatures()[0].status == SignatureStatus.CONFIRMED

    token, _key = new_key(Role.EDITOR, ["sign_on:write"])
    base = f"/api/v1/statements/{sign_on.statement_id}/sign-on/signatures"
    waiting = client.get(base, query_string={"status": "confirmed"}, headers=bearer(token))
    assert [(s["id"], s["email"]) for s in waiting.get_json()["items"]] == [
        (signature.id, "contact@ahrca.example.org")
    ]
    approved = client.post(f"{base}/{signature.id}/approve", headers=bearer(token))
    assert approved.status_code == 200 and approved.get_json()["status"] == "approved"
    assert db.session.scalar(select(func.count()).select_from(Signatory)) == 1
    twice = client.post(f"{base}/{signature.id}/approve", headers=bearer(token))
    assert twice.status_code == 409 and "approved already" in twice.get_json()["detail"]
    rejected = client.post(f"{base}/{signature.id}/reject", headers=bearer(token))
    assert rejected.get_json()["status"] == "rejected"
    assert db.session.scalar(select(func.count()).select_from(Signatory)) == 0
    actions = db.session.scalars(
        select(AuditEvent.action)
        .where(AuditEvent.action.like("signature.%"))
        .order_by(AuditEvent.id)
    ).all()
    assert actions == [
        "signature.submit",
        "signature.confirm",
        "signature.approve",
        "signature.reject",
    ]
    # The public side never lists signers' addresses.
    public = client.get(f"/api/v1/sign-on/{sign_on.token}")
    assert public.status_code == 200 and "ahrca.example.org" not in public.get_data(as_text=True)


def test_the_public_read_gives_what_a_partner_site_shows(client: FlaskClient) -> None:
    sign_on = make_sign_on()
    answer = client.get(f"/api/v1/sign-on/{sign_on.token}", headers={"Accept-Language": "fr"})
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["language"] == "fr" and body["title"] == "Avant le sommet"
    assert body["accepting"] is True and body["signatory_count"] == 0
    assert body["field_limits"]["name"] == signatures.FIELD_LIMITS["name"]
    assert body["consent_text"]
    assert client.get("/api/v1/sign-on/not-a-page").status_code == 404


def test_the_honeypot_filled_is_answered_the_same_and_nothing_is_kept(
    client: FlaskClient,
) -> None:
    sign_on = make_sign_on()
    answer = _submit(client, sign_on.token, website="https://spam.example")
    assert answer.status_code == 202
    assert _signatures() == []
    person = _submit(client, sign_on.token)
    assert person.get_json() == answer.get_json()
    assert len(_signatures()) == 1


def test_bad_input_names_the_fields_and_stores_nothing(client: FlaskClient) -> None:
    sign_on = make_sign_on()
    no_consent = _submit(client, sign_on.token, consent=False, email="not an address")
    assert no_consent.status_code == 422
    fields = {error["field"] for error in no_consent.get_json()["errors"]}
    assert fields == {"consent", "email"}
    # In the signer's language, as the public page's errors.
    french = client.post(
        f"/api/v1/sign-on/{sign_on.token}/signatures",
        json=_form(consent=False),
        headers={"Accept-Language": "fr"},
    )
    [error] = french.get_json()["errors"]
    assert error["field"] == "consent" and "Consentement" in error["message"]
    too_long = _submit(client, sign_on.token, name="x" * 301)
    assert [e["field"] for e in too_long.get_json()["errors"]] == ["name"]
    for body in (
        {**_form(), "colour": "red"},  # unknown fields are refused
        {**_form(), "name": None},
        {**_form(), "kind": "robot"},
        {key: value for key, value in _form().items() if key != "consent"},
        # Booleans are JSON's: a form's "on" or a 1 is not one.
        {**_form(), "consent": "on"},
        {**_form(), "wants_notice": 1},
        {**_form(), "consent": "true"},
    ):
        answer = client.post(f"/api/v1/sign-on/{sign_on.token}/signatures", json=body)
        assert answer.status_code == 422, body
    not_json = client.post(
        f"/api/v1/sign-on/{sign_on.token}/signatures", data="name=x", content_type="text/plain"
    )
    assert not_json.status_code == 415
    assert _submit(client, "no-such-page").status_code == 404
    assert _signatures() == []


def test_a_closed_page_takes_no_signature(client: FlaskClient) -> None:
    sign_on = make_sign_on(is_open=False)
    answer = _submit(client, sign_on.token)
    assert answer.status_code == 409 and answer.get_json()["detail"]
    assert _signatures() == []


def test_over_the_rate_limit_is_429_with_retry_after(client: FlaskClient) -> None:
    sign_on = make_sign_on()
    statuses = [
        _submit(client, sign_on.token, name=f"Organisation {n}").status_code
        for n in range(signatures.PER_EMAIL_PER_HOUR)
    ]
    assert statuses == [202] * signatures.PER_EMAIL_PER_HOUR
    limited = _submit(client, sign_on.token, name="One too many")
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= signatures.RATE_WINDOW_SECONDS
    assert "too often" in limited.get_json()["detail"]
    assert len(_signatures()) == signatures.PER_EMAIL_PER_HOUR


# --- CORS ---------------------------------------------------------------------------------


def test_cors_only_for_listed_origins_and_never_with_credentials(client: FlaskClient) -> None:
    sign_on = make_sign_on()
    path = f"/api/v1/sign-on/{sign_on.token}/signatures"
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    listed = client.options(path, headers={"Origin": PARTNER, **preflight})
    assert listed.status_code == 200
    assert listed.headers["Access-Control-Allow-Origin"] == PARTNER
    assert listed.headers["Access-Control-Allow-Methods"] == "POST"
    assert "content-type" in listed.headers["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Credentials" not in listed.headers

    unlisted = client.options(path, headers={"Origin": "https://evil.example", **preflight})
    assert "Access-Control-Allow-Origin" not in unlisted.headers
    assert "Origin" in unlisted.headers["Vary"]

    posted = client.post(path, json=_form(), headers={"Origin": PARTNER})
    assert posted.status_code == 202
    assert posted.headers["Access-Control-Allow-Origin"] == PARTNER
    assert "Retry-After" in posted.headers["Access-Control-Expose-Headers"]
    refused = client.post(path, json=_form(consent=False), headers={"Origin": PARTNER})
    assert refused.status_code == 422  # errors are readable by the partner's page too
    assert refused.headers["Access-Control-Allow-Origin"] == PARTNER
    read = client.get(f"/api/v1/sign-on/{sign_on.token}", headers={"Origin": PARTNER})
    assert read.headers["Access-Control-Allow-Origin"] == PARTNER

    # The keyed endpoints never answer a browser from another site.
    token, _key = new_key(Role.EDITOR)
    keyed = f"/api/v1/statements/{sign_on.statement_id}/sign-on"
    for answer in (
        client.options(keyed, headers={"Origin": PARTNER, **preflight}),
        client.get(keyed, headers=bearer(token, Origin=PARTNER)),
    ):
        assert "Access-Control-Allow-Origin" not in answer.headers


def test_no_origins_listed_means_no_cors(app: Flask, client: FlaskClient) -> None:
    app.config["API_CORS_ORIGINS"] = ""
    sign_on = make_sign_on()
    answer = client.post(
        f"/api/v1/sign-on/{sign_on.token}/signatures", json=_form(), headers={"Origin": PARTNER}
    )
    assert answer.status_code == 202 and "Access-Control-Allow-Origin" not in answer.headers


# --- the editors' settings ----------------------------------------------------------------


def test_settings_are_read_and_changed_with_if_match(client: FlaskClient) -> None:
    sign_on = make_sign_on()
    token, _key = new_key(Role.EDITOR, ["sign_on:write"])
    url = f"/api/v1/statements/{sign_on.statement_id}/sign-on"
    read = client.get(url, headers=bearer(token))
    assert read.status_code == 200
    current = read.get_json()
    assert current["is_open"] is True and current["consent_text"] == ""
    assert current["public_url"].endswith(f"/sign/{sign_on.token}")
    etag = read.headers["ETag"]
    change = {
        "is_open": True,
        "deadline": "2099-01-31T18:00:00+01:00",
        "shows_names": False,
        "ordering": "custom",
        "reminder_days": 7,
        "consent_text": "",
    }
    assert client.put(url, json=change, headers=bearer(token)).status_code == 428
    stale = client.put(url, json=change, headers=bearer(token, **{"If-Match": '"old"'}))
    assert stale.status_code == 412
    saved = client.put(url, json=change, headers=bearer(token, **{"If-Match": etag}))
    assert saved.status_code == 200, saved.get_data(as_text=True)
    assert saved.get_json()["deadline"] == "2099-01-31T17:00:00Z"
    assert saved.headers["ETag"] != etag
    again = client.put(url, json=change, headers=bearer(token, **{"If-Match": etag}))
    assert again.status_code == 412
    assert client.get(url, headers=bearer(token)).headers["ETag"] == saved.headers["ETag"]
    assert db.session.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "sign_on.settings")
    )


def test_two_setting_changes_sent_at_once_with_one_etag_one_wins_the_other_gets_412(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from campaign.web.api import sign_on as module

    sign_on = make_sign_on()
    db.session.commit()
    token, _key = new_key(Role.EDITOR, ["sign_on:write"])
    url = f"/api/v1/statements/{sign_on.statement_id}/sign-on"
    base = {"is_open": True, "shows_names": True, "ordering": "custom", "consent_text": ""}
    # With a deadline set (the columns compared must match what was stored, time zone too).
    etag = client.get(url, headers=bearer(token)).headers["ETag"]
    first = {**base, "deadline": "2099-01-31T18:00:00+01:00", "reminder_days": None}
    saved = client.put(url, json=first, headers=bearer(token, **{"If-Match": etag}))
    assert saved.status_code == 200, saved.get_data(as_text=True)
    for round_ in range(2):
        etag = client.get(url, headers=bearer(token)).headers["ETag"]
        days = [3 + round_, 10 + round_]

        def send(other: FlaskClient, turn: int, etag: str = etag, days: list[int] = days) -> Any:
            change = {**first, "reminder_days": days[turn]}
            return other.put(url, json=change, headers=bearer(token, **{"If-Match": etag}))

        assert race(app, monkeypatch, module, send) == [200, 412]
        assert client.get(url, headers=bearer(token)).get_json()["reminder_days"] in days


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"deadline": "2099-01-31T18:00:00"}, "deadline"),  # no time zone
        ({"reminder_days": 7}, "reminder_days"),  # a reminder without a deadline
        ({"ordering": "alphabetical"}, "ordering"),
        ({"consent_text": "x" * 2001}, "consent_text"),
        ({"is_open": None}, "is_open"),
        ({"is_open": "true"}, "is_open"),  # JSON's booleans only
        ({"shows_names": 0}, "shows_names"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_settings_refused_name_the_field(
    client: FlaskClient, changes: dict[str, Any], field: str
) -> None:
    sign_on = make_sign_on()
    token, _key = new_key(Role.EDITOR, ["sign_on:write"])
    url = f"/api/v1/statements/{sign_on.statement_id}/sign-on"
    read = client.get(url, headers=bearer(token))
    body = {
        key: value
        for key, value in read.get_json().items()
        if key not in ("statement_id", "token", "public_url")
    }
    answer = client.put(
        url, json={**body, **changes}, headers=bearer(token, **{"If-Match": read.headers["ETag"]})
    )
    assert answer.status_code == 422
    assert field in [error["field"] for error in answer.get_json()["errors"]]


def test_roles_scopes_and_missing_rows(client: FlaskClient) -> None:
    sign_on = make_sign_on()
    url = f"/api/v1/statements/{sign_on.statement_id}/sign-on"
    # The sign-on page is the editors': signers' addresses are on it.
    # A viewer cannot even be given the scope (every operation needs an editor), and a
    # viewer's key with another scope is refused here.
    viewer, _ = new_key(Role.VIEWER, ["contacts:read"])
    assert client.get(url, headers=bearer(viewer)).status_code == 403
    reader, _ = new_key(Role.EDITOR, ["sign_on:read"])
    assert client.get(url, headers=bearer(reader)).status_code == 200
    assert client.put(url, json={}, headers=bearer(reader)).status_code == 403
    other, _ = new_key(Role.ADMIN, ["calendar:read"])
    assert client.get(f"{url}/signatures", headers=bearer(other)).status_code == 403
    assert client.get(url).status_code == 401
    writer, _ = new_key(Role.EDITOR, ["sign_on:write"])
    assert (
        client.get("/api/v1/statements/999999/sign-on", headers=bearer(writer)).status_code == 404
    )
    missing = client.post(f"{url}/signatures/999999/approve", headers=bearer(writer))
    assert missing.status_code == 404
    wrong = client.get(f"{url}/signatures", query_string={"status": "x"}, headers=bearer(writer))
    assert wrong.status_code == 422


def test_an_unconfirmed_signature_cannot_be_approved(client: FlaskClient) -> None:
    sign_on = make_sign_on()
    _submit(client, sign_on.token)
    [signature] = _signatures()
    token, _key = new_key(Role.EDITOR, ["sign_on:write"])
    base = f"/api/v1/statements/{sign_on.statement_id}/sign-on/signatures/{signature.id}"
    refused = client.post(f"{base}/approve", headers=bearer(token))
    assert refused.status_code == 409 and "not confirmed" in refused.get_json()["detail"]
    assert _signatures()[0].status == SignatureStatus.UNCONFIRMED


def test_the_public_submit_is_audited_with_the_network_only(client: FlaskClient) -> None:
    sign_on = make_sign_on()
    _submit(client, sign_on.token, name="Audited", email="audited@example.org")
    calls = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "api.call")).all()
    [call] = calls
    assert call.detail["route"] == "/api/v1/sign-on/<token>/signatures"
    assert call.detail["status"] == 202 and call.actor_id is None
    # A member of the public: their network, as the public page records them, never the
    # full address; and nothing of the body.
    assert call.remote_addr and call.remote_addr != "127.0.0.1"
    assert "audited" not in str(call.detail).lower()


def test_the_document_gives_each_signer_fields_real_limit(client: FlaskClient) -> None:
    schemas = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]
    signature = next(v for k, v in schemas.items() if k.split(".")[0] == "SignatureIn")
    limits = {name: spec.get("maxLength") for name, spec in signature["properties"].items()}
    assert (limits["name"], limits["acronym"], limits["email"]) == (300, 50, 320)
    sign_on = make_sign_on()
    at_limit = _submit(client, sign_on.token, name="x" * 300)
    assert at_limit.status_code == 202, at_limit.get_data(as_text=True)
