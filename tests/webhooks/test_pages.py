"""The Webhooks page (admins): add an endpoint (secret shown), refuse credentials in its
address, pause, delete, show the secret on request (audited), the allow-list."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from flask_babel import force_locale
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, Role, WebhookEndpoint
from campaign.services.webhooks import endpoints
from campaign.services.webhooks.payloads import FIELDS
from campaign.web.webhooks import error_text
from tests.webhooks.helpers import add_endpoint


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
    endpoint, _secret = add_endpoint("https://hooks.example.org/a", ("reply.received",))
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


def test_a_private_host_is_saved_with_a_warning_unless_it_is_allowed(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    login(Role.ADMIN)
    for url, address in (
        ("https://127.0.0.1/hook", "127.0.0.1"),
        ("https://10.0.0.5:8443/hook", "10.0.0.5"),
        ("https://localhost/x", "127.0.0.1"),  # a name resolving to loopback
    ):
        page = client.post("/webhooks/new", data={"url": url, "event_types": ["reply.received"]})
        text = page.get_data(as_text=True)
        assert page.status_code == 200 and 'id="webhook-secret"' in text  # saved
        warning = re.search(r'<div class="flash flash-warning"[^>]*>(.*?)</div>', text, re.S)
        assert warning is not None, url
        assert "private, loopback or link-local address" in warning.group(1)
        assert address in warning.group(1) and "Hosts allowed on private addresses" in text
    quiet = client.post(
        "/webhooks/new",
        data={"url": "https://hooks.example.org/x", "event_types": ["reply.received"]},
    )
    assert "flash-warning" not in quiet.get_data(as_text=True)

    # Allowed by name: no warning when it is saved again.
    client.post("/webhooks/allowed-hosts", data={"allowed_hosts": "10.0.0.5"})
    private = next(e for e in _endpoints() if "10.0.0.5" in e.url)
    saved = client.post(
        f"/webhooks/{private.id}/edit",
        data={"url": private.url, "event_types": ["reply.received"]},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "Endpoint saved." in saved and "flash-warning" not in saved
    loopback = next(e for e in _endpoints() if "127.0.0.1" in e.url)
    saved = client.post(
        f"/webhooks/{loopback.id}/edit",
        data={"url": loopback.url, "event_types": ["reply.received"]},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "flash-warning" in saved


def test_allowed_hosts_are_one_a_line_and_a_bad_line_is_named_and_kept(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    admin = login(Role.ADMIN)
    posted = "hooks.internal\nbad host name!\n10.0.0.5"
    response = client.post("/webhooks/allowed-hosts", data={"allowed_hosts": posted})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    error = re.search(r'<p class="error" role="alert" id="allowed-hosts-error">(.*?)</p>', page)
    assert error is not None and error.group(1).startswith("“bad host name!” is not a host name")
    box = re.search(r'<textarea id="allowed-hosts"[^>]*>(.*?)</textarea>', page, re.S)
    assert box is not None and box.group(1) == posted  # nothing typed is lost
    assert endpoints.allowed_hosts() == frozenset()

    # Two hosts on one line are one bad line, not two hosts.
    one_line = client.post(
        "/webhooks/allowed-hosts", data={"allowed_hosts": "a.internal b.internal"}
    )
    assert one_line.status_code == 422
    assert "“a.internal b.internal” is not" in one_line.get_data(as_text=True)

    client.post("/webhooks/allowed-hosts", data={"allowed_hosts": "a.internal\n\n b.internal \n"})
    assert endpoints.allowed_hosts() == frozenset({"a.internal", "b.internal"})

    admin.language = "fr"
    db.session.commit()
    french = client.post("/webhooks/allowed-hosts", data={"allowed_hosts": "bad host name!"})
    assert "«\u00a0bad host name!\u00a0» n’est ni un nom d’hôte ni une adresse\u00a0:" in (
        french.get_data(as_text=True)
    )


def test_the_page_documents_each_event_s_data_and_the_relay_a_chat_needs(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    login(Role.ADMIN)
    page = client.get("/webhooks/").get_data(as_text=True)
    fields = page.split('<dl id="payload-fields">', 1)[1].split("</dl>", 1)[0]
    for kind, documented in FIELDS.items():
        block = fields.split(f"<dt><code>{kind}</code>", 1)[1].split("</dd>", 1)[0]
        for name, _meaning in documented:
            assert f"<code>{name}</code> — " in block, (kind, name)
    assert "webhook-id" in page and '"data"' in page
    relay = re.search(r'<p id="chat-relay">(.*?)</p>', page, re.S)
    assert relay is not None and "{&#34;text&#34;: &#34;…&#34;}" in relay.group(1)
    assert "small relay" in relay.group(1)


def test_stored_errors_are_translated_sentences_with_french_spacing(app: Flask) -> None:
    with app.test_request_context(), force_locale("fr"):
        texts = {
            stored: error_text(stored)
            for stored in (
                "timeout: hooks.example.org (connect)",
                "timeout: hooks.example.org (answer)",
                "dns: nowhere.example (EAI_NONAME)",
                "tls: hooks.example.org (CERTIFICATE_VERIFY_FAILED:10)",
                "redirect: 302 → https://elsewhere.example/",
                "http_status: 500",
                "connect: 127.0.0.1: Connection refused",  # written by an older version
            )
        }
    assert texts == {
        "timeout: hooks.example.org (connect)": (
            "hooks.example.org n’a pas accepté la connexion en 5\u00a0s."
        ),
        "timeout: hooks.example.org (answer)": "hooks.example.org n’a pas répondu en 10\u00a0s.",
        "dns: nowhere.example (EAI_NONAME)": "Le nom d’hôte nowhere.example est introuvable.",
        "tls: hooks.example.org (CERTIFICATE_VERIFY_FAILED:10)": (
            "Le certificat de hooks.example.org a expiré."
        ),
        "redirect: 302 → https://elsewhere.example/": (
            "Le point de réception a répondu 302, une redirection vers "
            "https://elsewhere.example/, qui n’est pas suivie\u00a0: saisissez l’adresse finale."
        ),
        "http_status: 500": "Le point de réception a répondu par une erreur (HTTP 500).",
        "connect: 127.0.0.1: Connection refused": (
            "Échec de la connexion\u00a0: 127.0.0.1: Connection refused"
        ),
    }
