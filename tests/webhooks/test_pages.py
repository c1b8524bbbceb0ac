"""The Webhooks page (admins): add an endpoint (secret shown), refuse credentials in its
address, pause, delete, show the secret on request (audited), the allow-list."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, Role, WebhookEndpoint
from campaign.services.webhooks import endpoints


def _endpoints() -> list[WebhookEndpoint]:
    db.session.expire_all()
    return list(db.session.scalars(select(WebhookEndpoint)))


def test_an_admin_adds_an_endpoint_and_sees_its_secret_once(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    login(Role.ADMIN)
    home = client.get("/webhooks/").get_data(as_text=True)
    assert 'href="/webhooks/"' in home and "No endpoint yet." in home
    form = client.get("/webhooks/new").get_data(as_text=True)
    assert "Reply received" in form and "Contact unsubscribed" in form

    response = client.post(
        "/webhooks/new",
        data={
            "url": "https://hooks.example.org/campaign",
            "description": "Team chat",
            "event_types": ["reply.received", "signature.confirmed"],
        },
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    shown = re.search(r'<code id="webhook-secret">(whsec_[A-Za-z0-9+/=]+)</code>', page)
    assert shown is not None
    [endpoint] = _endpoints()
    assert endpoint.event_types == ["reply.received", "signature.confirmed"]
    assert endpoint.enabled and endpoint.description == "Team chat"
    # Stored encrypted, never in clear.
    assert shown.group(1) not in endpoint.secret_encrypted
    assert endpoints.secret_of(endpoint) == shown.group(1)

    listing = client.get("/webhooks/").get_data(as_text=True)
    assert "https://hooks.example.org/campaign" in listing
    assert "Reply received, Signature confirmed" in listing
    assert shown.group(1) not in listing

    # Shown again only when an admin asks, and the asking is recorded.
    again = client.post(f"/webhooks/{endpoint.id}/secret").get_data(as_text=True)
    assert shown.group(1) in again
    actions = [e.action for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions[-2:] == ["webhook.create", "webhook.reveal_secret"]


def test_credentials_in_the_address_are_refused_at_save_naming_the_field(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    login(Role.ADMIN)
    response = client.post(
        "/webhooks/new",
        data={"url": "https://bot:hunter2@hooks.example.org/x", "event_types": ["reply.received"]},
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "must not hold a user name or password" in page and 'data-field="url"' in page
    assert _endpoints() == []
    plain = client.post(
        "/webhooks/new",
        data={"url": "http://hooks.example.org/x", "event_types": ["reply.received"]},
    )
    assert plain.status_code == 422 and "Only https://" in plain.get_data(as_text=True)


def test_pause_resume_edit_and_delete(app: Flask, client: FlaskClient, login: Any) -> None:
    login(Role.ADMIN)
    endpoint, _secret = endpoints.create_endpoint("https://hooks.example.org/a", ["reply.received"])
    db.session.commit()
    endpoint_id = endpoint.id
    client.post(f"/webhooks/{endpoint_id}/enabled", data={"enabled": "0"})
    assert not _endpoints()[0].enabled
    client.post(f"/webhooks/{endpoint.id}/enabled", data={"enabled": "1"})
    assert _endpoints()[0].enabled
    response = client.post(
        f"/webhooks/{endpoint.id}/edit",
        data={"url": "https://hooks.example.org/b", "event_types": ["delivery.failed"]},
    )
    assert response.status_code == 302
    assert (_endpoints()[0].url, _endpoints()[0].event_types) == (
        "https://hooks.example.org/b",
        ["delivery.failed"],
    )
    client.post(f"/webhooks/{endpoint_id}/delete")
    assert _endpoints() == []
    assert client.get(f"/webhooks/{endpoint_id}").status_code == 404


def test_the_allow_list_is_saved_from_the_page(app: Flask, client: FlaskClient, login: Any) -> None:
    login(Role.ADMIN)
    client.post("/webhooks/allowed-hosts", data={"allowed_hosts": "Hooks.Internal.\n10.0.0.5"})
    assert endpoints.allowed_hosts() == frozenset({"hooks.internal", "10.0.0.5"})
    page = client.get("/webhooks/").get_data(as_text=True)
    assert "hooks.internal" in page
    client.post("/webhooks/allowed-hosts", data={"allowed_hosts": "http://x/y"})
    assert endpoints.allowed_hosts() == frozenset({"hooks.internal", "10.0.0.5"})


def test_only_admins_reach_the_page(app: Flask, client: FlaskClient, login: Any) -> None:
    login(Role.SENDER)
    assert client.get("/webhooks/").status_code == 403
    assert client.post("/webhooks/new", data={"url": "https://a.example.org"}).status_code == 403
    assert 'href="/webhooks/"' not in client.get("/").get_data(as_text=True)
