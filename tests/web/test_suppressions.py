"""The suppression list page: senders see, search, add and remove; viewers see nothing."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, Role, Suppression, User
from campaign.services.contacts import suppressions
from tests.pages import html_of

Login = Callable[[Role], User]


def test_viewers_and_editors_cannot_see_the_list(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    entry = suppressions.suppress_address("anna@example.org", "unsubscribed")
    db.session.commit()
    login(Role.EDITOR)
    assert client.get("/suppressions/").status_code == 403
    assert client.post("/suppressions/", data={"email": "x@example.org"}).status_code == 403
    assert client.post(f"/suppressions/{entry.id}/remove").status_code == 403
    home = client.get("/")
    assert home.status_code == 200 and "<h1>Start</h1>" in html_of(home)
    assert "Suppressions" not in html_of(home)
    assert suppressions.is_suppressed("anna@example.org")


def test_sender_searches_filters_and_sees_counts(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    suppressions.suppress_address("anna@example.org", "unsubscribed")
    suppressions.suppress_address("boris@example.org", "hard_bounce")
    suppressions.suppress_address("chen@example.org", "manual", note="asked by phone")
    db.session.commit()
    login(Role.SENDER)
    page = html_of(client.get("/suppressions/"))
    assert all(f"{name}@example.org" in page for name in ("anna", "boris", "chen"))
    assert "<strong>1</strong> Hard bounce" in page
    filtered = html_of(client.get("/suppressions/?reason=hard_bounce"))
    assert "boris@example.org" in filtered and "anna@example.org" not in filtered
    searched = html_of(client.get("/suppressions/?q=phone"))
    assert "chen@example.org" in searched and "boris@example.org" not in searched


def test_sender_adds_an_address_by_hand(client: FlaskClient, login: Login, app: Flask) -> None:
    login(Role.SENDER)
    response = client.post(
        "/suppressions/", data={"email": "Dana@Example.org", "note": "lawyer's request"}
    )
    assert response.status_code == 302
    entry = db.session.scalars(select(Suppression)).one()
    assert (entry.email_key, entry.reason, entry.note) == (
        "dana@example.org",
        "manual",
        "lawyer's request",
    )
    again = client.post("/suppressions/", data={"email": "dana@example.org"}, follow_redirects=True)
    assert "already on the list (Added by hand)" in html_of(again)
    bad = client.post("/suppressions/", data={"email": "dana@", "note": "kept"})
    assert bad.status_code == 422
    assert "Email: " in html_of(bad) and "not a valid email address" in html_of(bad)
    assert "kept" in html_of(bad)  # the form keeps what was typed


def test_removing_an_unsubscribed_address_warns_then_removes(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    entry_id = suppressions.suppress_address("anna@example.org", "unsubscribed").id
    db.session.commit()
    login(Role.SENDER)
    question = html_of(client.get(f"/suppressions/{entry_id}/remove"))
    assert "they asked not to be written to" in question
    assert suppressions.is_suppressed("anna@example.org")  # asking removes nothing
    response = client.post(f"/suppressions/{entry_id}/remove", follow_redirects=True)
    assert "removed from the suppression list" in html_of(response)
    assert not suppressions.is_suppressed("anna@example.org")
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "suppression.remove")
    ).one()
    assert event.actor_email == "sender@example.org"
    assert client.post(f"/suppressions/{entry_id}/remove").status_code == 404


def test_manual_entry_removal_has_no_unsubscribe_warning(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    entry = suppressions.suppress_address("eve@example.org", "manual")
    db.session.commit()
    login(Role.ADMIN)
    response = client.get(f"/suppressions/{entry.id}/remove")
    assert response.status_code == 200
    assert "<h1>Remove eve@example.org from the suppression list?</h1>" in html_of(response)
    assert "asked not to be written to" not in html_of(response)
