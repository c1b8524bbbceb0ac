"""The suppression list over the API: admins only, the page's rules, audited with masks."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import AuditEvent, Role, Suppression
from campaign.services.contacts.suppressions import is_suppressed, suppress_address
from tests.api.helpers import bearer, new_key


def _problem(response: Any) -> dict[str, Any]:
    assert response.mimetype == "application/problem+json", response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def _fields(response: Any) -> list[str]:
    return [error["field"] for error in _problem(response)["errors"]]


def _count() -> int:
    return int(db.session.scalar(select(func.count(Suppression.id))) or 0)


@pytest.fixture
def admin(app: Flask) -> dict[str, str]:
    token, _ = new_key(Role.ADMIN)
    return bearer(token)


def test_an_address_is_added_once_and_audited_masked(client: FlaskClient) -> None:
    token, key = new_key(Role.ADMIN)
    response = client.post(
        "/api/v1/suppressions",
        json={"email": " Stop.Me@Example.org ", "reason": "unsubscribed", "note": "by phone"},
        headers=bearer(token),
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["email"], body["reason"], body["note"]) == (
        "Stop.Me@example.org",
        "unsubscribed",
        "by phone",
    )
    assert is_suppressed("stop.me@example.org")
    again = client.post(
        "/api/v1/suppressions", json={"email": "STOP.ME@example.org"}, headers=bearer(token)
    )
    assert again.status_code == 200 and again.get_json()["id"] == body["id"]
    assert _count() == 1
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "suppression.add")
    ).one()
    assert event.actor_id == key.user_id
    assert event.detail["email"] == "St***@example.org" and "Stop.Me" not in str(event.detail)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"email": "no-at-sign"}, ["email"]),
        ({"email": ""}, ["email"]),
        ({"email": None}, ["email"]),
        ({"email": 5}, ["email"]),
        ({"email": "a@example.org", "reason": "because"}, ["reason"]),
        ({"email": "a@example.org", "by": "me"}, ["by"]),
        ({"email": "a@example.org", "note": "x" * 2001}, ["note"]),
    ],
    ids=["address", "empty", "null", "wrong-type", "reason", "unknown-field", "long-note"],
)
def test_bad_additions_are_refused_naming_the_field(
    client: FlaskClient, admin: dict[str, str], body: dict[str, Any], fields: list[str]
) -> None:
    response = client.post("/api/v1/suppressions", json=body, headers=admin)
    assert response.status_code == 422
    assert _fields(response) == fields
    assert _count() == 0


def test_the_list_filters_and_pages_with_cursors(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    for n in range(3):
        suppress_address(f"person{n}@example.org", "manual", note=f"note {n}")
    suppress_address("bounced@example.org", "hard_bounce")
    db.session.commit()
    first = client.get("/api/v1/suppressions?limit=3", headers=admin).get_json()
    rest = client.get(
        f"/api/v1/suppressions?limit=3&cursor={first['next_cursor']}", headers=admin
    ).get_json()
    emails = [item["email"] for item in first["items"] + rest["items"]]
    assert emails == [*(f"person{n}@example.org" for n in range(3)), "bounced@example.org"]
    assert rest["next_cursor"] is None
    bounced = client.get("/api/v1/suppressions?reason=hard_bounce", headers=admin).get_json()
    assert [item["email"] for item in bounced["items"]] == ["bounced@example.org"]
    noted = client.get("/api/v1/suppressions?q=NOTE%201", headers=admin).get_json()
    assert [item["email"] for item in noted["items"]] == ["person1@example.org"]
    tampered = client.get("/api/v1/suppressions?cursor=x" + first["next_cursor"], headers=admin)
    assert tampered.status_code == 400 and _fields(tampered) == ["cursor"]
    wrong = client.get("/api/v1/suppressions?reason=lost", headers=admin)
    assert wrong.status_code == 422 and _fields(wrong) == ["reason"]


def test_removal_is_audited_and_a_missing_entry_is_404(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    entry_id = suppress_address("gone@example.org", "manual").id
    db.session.commit()
    response = client.delete(f"/api/v1/suppressions/{entry_id}", headers=admin)
    assert response.status_code == 204
    assert not is_suppressed("gone@example.org")
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "suppression.remove")
    ).one()
    assert event.detail["email"] == "go***@example.org"
    assert client.delete(f"/api/v1/suppressions/{entry_id}", headers=admin).status_code == 404
    assert client.delete("/api/v1/suppressions/2147483648", headers=admin).status_code == 404


def test_only_admins_keys_with_the_scope_reach_the_list(client: FlaskClient) -> None:
    entry = suppress_address("kept@example.org", "manual")
    db.session.commit()
    sender, _ = new_key(Role.SENDER)  # every scope a sender may have: none of these
    for call in (
        lambda h: client.get("/api/v1/suppressions", headers=h),
        lambda h: client.post("/api/v1/suppressions", json={"email": "x@example.org"}, headers=h),
        lambda h: client.delete(f"/api/v1/suppressions/{entry.id}", headers=h),
    ):
        assert call(bearer(sender)).status_code == 403
    reader, _ = new_key(Role.ADMIN, ["suppressions:read"])
    assert client.get("/api/v1/suppressions", headers=bearer(reader)).status_code == 200
    refused = client.delete(f"/api/v1/suppressions/{entry.id}", headers=bearer(reader))
    assert refused.status_code == 403
    # An admin demoted to sender: the key loses what the user lost.
    writer, key = new_key(Role.ADMIN, ["suppressions:write"])
    key.user.role = Role.SENDER.value
    db.session.commit()
    assert client.get("/api/v1/suppressions", headers=bearer(writer)).status_code == 403
    assert is_suppressed("kept@example.org")
