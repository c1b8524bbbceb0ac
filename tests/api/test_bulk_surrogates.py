"""A lone surrogate (JSON's "\\ud800", half of a UTF-16 pair) cannot be stored in any text
encoding: a bulk item carrying one in a name or in its notes is refused as that item's
error, naming the field, and the other items are written (it used to fail the insert
with UnicodeEncodeError: an HTTP 500 for the whole request)."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from campaign.models import Role
from campaign.services.contacts.contacts import find_by_email
from tests.api.helpers import bearer, new_key


def test_a_bulk_item_with_a_lone_surrogate_is_refused_naming_the_field(
    app: Flask, client: FlaskClient
) -> None:
    token, _ = new_key(Role.EDITOR)
    # Written by hand: a JSON encoder would not let the lone surrogate through.
    body = (
        b'{"items": ['
        b'{"email": "s@example.org", "given_name": "x\\ud800y", "family_name": "S"},'
        b'{"email": "n@example.org", "family_name": "N", "notes": "a \\udfff b"},'
        b'{"email": "ok@example.org", "family_name": "Fine"}'
        b"]}"
    )
    response = client.post(
        "/api/v1/contacts/bulk",
        data=body,
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    items = response.get_json()["items"]
    assert [item["status"] for item in items] == ["error", "error", "created"]
    assert [[e["field"] for e in item["errors"]] for item in items[:2]] == [
        ["given_name"],
        ["notes"],
    ]
    assert "half of a surrogate pair" in items[0]["errors"][0]["message"]
    assert find_by_email("s@example.org") is None and find_by_email("n@example.org") is None
    assert find_by_email("ok@example.org") is not None
