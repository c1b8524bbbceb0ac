"""One-click unsubscribe (RFC 8058): a GET only asks, a POST without cookies unsubscribes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, Campaign, Delivery, DeliveryStatus, Suppression
from tests.conftest import IsolatedClient
from tests.factories import CampaignFactory, ContactFactory
from tests.pages import html_of

# Launched and committed, from the sender the pages name: `CampaignFactory(recipients=[...],
# **SENT_BY_RIGHTS_WATCH)`.
SENT_BY_RIGHTS_WATCH: dict[str, Any] = {
    "from_address": "Rights Watch <office@rights.example>",
    "launched": True,
    "commit": True,
}
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture(autouse=True)
def _forget_misses(app: Flask) -> Iterator[None]:
    """Each test starts with no unknown-token misses counted (the Redis is shared)."""
    from campaign.queue import get_redis

    yield
    for key in get_redis().scan_iter("campaign:unsubscribe-misses:*"):
        get_redis().delete(key)


def _delivery(campaign: Campaign, email: str) -> Delivery:
    return db.session.scalars(
        select(Delivery).where(Delivery.campaign_id == campaign.id, Delivery.email == email)
    ).one()


def test_get_asks_and_never_unsubscribes(client: FlaskClient, app: Flask) -> None:
    campaign = CampaignFactory(
        recipients=["anna.k@example.org", "boris@example.org"], **SENT_BY_RIGHTS_WATCH
    )
    token = _delivery(campaign, "anna.k@example.org").unsubscribe_token
    page = client.get(f"/u/{token}")
    assert page.status_code == 200
    text = html_of(page)
    assert "Stop receiving letters from Rights Watch at an***@example.org?" in text
    assert "anna.k@example.org" not in text and "boris" not in text
    # Works without JS: a plain form posting back to the same link.
    assert f'<form method="post" action="/u/{token}"' in text
    client.get(f"/u/{token}")
    assert db.session.scalar(select(Suppression)) is None


def test_one_click_post_without_cookie_or_csrf_unsubscribes_once(app: Flask) -> None:
    # CSRF on, as in production: the mail provider's POST carries neither cookie nor token.
    app.config["WTF_CSRF_ENABLED"] = True
    campaign = CampaignFactory(
        recipients=["anna@example.org", "boris@example.org"], **SENT_BY_RIGHTS_WATCH
    )
    token = _delivery(campaign, "anna@example.org").unsubscribe_token
    app.test_client_class = IsolatedClient
    client = app.test_client(use_cookies=False)
    for _ in range(2):
        response = client.post(f"/u/{token}", data=ONE_CLICK)
        assert response.status_code == 200, html_of(response)
        assert "You are unsubscribed" in html_of(response)
    entries = list(db.session.scalars(select(Suppression)))
    assert [(e.email, e.reason, e.campaign_id) for e in entries] == [
        ("anna@example.org", "unsubscribed", campaign.id)
    ]
    events = list(
        db.session.scalars(select(AuditEvent).where(AuditEvent.action == "suppression.add"))
    )
    assert len(events) == 1
    assert "anna@example.org" not in str(events[0].detail)
    # Every other form of the site still needs its CSRF token.
    assert client.post("/login", data={"email": "x@example.org"}).status_code == 400


def test_confirmation_form_unsubscribes_and_stops_queued_letters(
    client: FlaskClient, app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    anna = ContactFactory(email="anna@example.org")
    first = CampaignFactory(
        name="First", recipients=[anna, "boris@example.org"], **SENT_BY_RIGHTS_WATCH
    )
    second = CampaignFactory(name="Second", recipients=[anna], **SENT_BY_RIGHTS_WATCH)
    token = _delivery(first, "anna@example.org").unsubscribe_token
    with caplog.at_level(logging.DEBUG):
        response = client.post(f"/u/{token}", data={"confirm": "yes"})
    assert response.status_code == 200
    assert "anna@example.org" not in caplog.text
    # The letter still queued in the other campaign will not go out.
    assert _delivery(second, "anna@example.org").status == DeliveryStatus.SUPPRESSED
    assert _delivery(first, "boris@example.org").status == DeliveryStatus.QUEUED
    again = client.get(f"/u/{token}")
    assert (
        "You are unsubscribed" in html_of(again) and "<form" not in html_of(again).split("main")[1]
    )


@pytest.mark.parametrize("token", ["A" * 24, "not a token", "x", "a" * 300, "%00"])
def test_unknown_and_malformed_tokens_get_one_uniform_404(
    client: FlaskClient, app: Flask, token: str
) -> None:
    campaign = CampaignFactory(recipients=["anna@example.org"], **SENT_BY_RIGHTS_WATCH)
    real = _delivery(campaign, "anna@example.org").unsubscribe_token
    reference = client.get(f"/u/{'B' * 24}")
    for method in (client.get, client.post):
        response = method(f"/u/{token}")
        assert response.status_code == 404
        assert html_of(response) == html_of(reference)
    assert db.session.scalar(select(Suppression)) is None
    assert client.get(f"/u/{real}").status_code == 200


def test_many_unknown_tokens_from_one_address_are_slowed_down(
    client: FlaskClient, app: Flask
) -> None:
    statuses = [client.post(f"/u/{'C' * 20}{n:04d}").status_code for n in range(62)]
    assert statuses[:60] == [404] * 60
    assert statuses[-1] == 429
    assert "Wait a minute" in html_of(client.get(f"/u/{'D' * 24}"))


def test_an_address_todays_rules_would_refuse_still_unsubscribes(
    client: FlaskClient, app: Flask
) -> None:
    campaign = CampaignFactory(recipients=["anna@example.org"], **SENT_BY_RIGHTS_WATCH)
    delivery = _delivery(campaign, "anna@example.org")
    # Stored before a stricter rule (a 70-character local part is refused today).
    old_address = "a" * 70 + "@example.org"
    delivery.email = old_address
    db.session.commit()
    response = client.post(f"/u/{delivery.unsubscribe_token}", data=ONE_CLICK)
    assert response.status_code == 200 and "You are unsubscribed" in html_of(response)
    entry = db.session.scalars(select(Suppression)).one()
    assert entry.email_key == old_address
