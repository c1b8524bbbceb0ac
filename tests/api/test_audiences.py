"""Lists and segments over the API: the audiences page's rules, membership, live counts."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, ContactList, Role, Segment
from campaign.services.contacts import lists as list_service
from campaign.services.contacts.segments import save_segment
from campaign.services.contacts.trash import trash_contact
from tests.api.helpers import bearer, new_key
from tests.factories import ContactFactory, ContactListFactory


def _problem(response: Any) -> dict[str, Any]:
    assert response.mimetype == "application/problem+json", response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def _fields(response: Any) -> list[str]:
    return [error["field"] for error in _problem(response)["errors"]]


@pytest.fixture
def editor(app: Flask) -> dict[str, str]:
    token, _ = new_key(Role.EDITOR)
    return bearer(token)


def test_a_list_is_created_with_the_pages_name_rules(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    response = client.post(
        "/api/v1/lists", json={"name": "  Press   contacts ", "description": "x"}, headers=editor
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["name"], body["members"]) == ("Press contacts", 0)
    assert response.headers["Location"] == f"/api/v1/lists/{body['id']}"
    clash = client.post("/api/v1/lists", json={"name": "PRESS CONTACTS"}, headers=editor)
    assert clash.status_code == 422 and _fields(clash) == ["name"]
    assert "already exists" in _problem(clash)["errors"][0]["message"]
    blank = client.post("/api/v1/lists", json={"name": "   "}, headers=editor)
    assert blank.status_code == 422 and _fields(blank) == ["name"]
    for wrong in ({"name": None}, {"name": 3}, {"name": "A", "owner": "me"}, {}):
        refused = client.post("/api/v1/lists", json=wrong, headers=editor)
        assert refused.status_code == 422, wrong
    assert db.session.scalar(select(ContactList.name)) == "Press contacts"
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "list.create")).one()
    assert event.detail == {"name": "Press contacts"}


def test_a_retried_list_creation_makes_one_list(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    headers = {**editor, "Idempotency-Key": "list-1"}
    first = client.post("/api/v1/lists", json={"name": "Once"}, headers=headers)
    second = client.post("/api/v1/lists", json={"name": "Once"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.get_json() == second.get_json()
    assert len(list_service.all_lists()) == 1
    other = client.post("/api/v1/lists", json={"name": "Twice"}, headers=headers)
    assert other.status_code == 422 and _fields(other) == ["Idempotency-Key"]


def test_members_are_added_and_removed_and_counted_without_the_trash(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    anna, ben, cleo = ContactFactory.create_batch(3)
    trashed = ContactFactory()
    trash_contact(trashed)
    contact_list = ContactListFactory(name="Delegates", contacts=[anna])
    db.session.commit()
    path = f"/api/v1/lists/{contact_list.id}"
    # An id of no live contact is named, and nothing is added (review B, defect 3).
    wrong = client.post(
        f"{path}/members",
        json={"contact_ids": [anna.id, ben.id, trashed.id, 99_999, 2_147_483_648]},
        headers=editor,
    )
    assert wrong.status_code == 422
    assert _fields(wrong) == ["contact_ids.2", "contact_ids.3", "contact_ids.4"]
    assert client.get(path, headers=editor).get_json()["members"] == 1
    response = client.post(
        f"{path}/members", json={"contact_ids": [anna.id, ben.id, cleo.id, ben.id]}, headers=editor
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"added": 2, "members": 3}
    assert client.get(path, headers=editor).get_json()["members"] == 3
    members = client.get(f"/api/v1/contacts?list={contact_list.id}", headers=editor).get_json()
    assert [c["id"] for c in members["items"]] == [anna.id, ben.id, cleo.id]

    removed = client.delete(f"{path}/members/{ben.id}", headers=editor)
    assert removed.status_code == 204
    assert client.delete(f"{path}/members/{ben.id}", headers=editor).status_code == 404
    assert client.delete(f"{path}/members/{trashed.id}", headers=editor).status_code == 404
    trash_contact(cleo)
    db.session.commit()
    listed = client.get("/api/v1/lists", headers=editor).get_json()["items"]
    assert [(item["name"], item["members"]) for item in listed] == [("Delegates", 1)]

    for bad in ({"contact_ids": []}, {"contact_ids": ["a"]}, {"contact_ids": None}, {"ids": [1]}):
        refused = client.post(f"{path}/members", json=bad, headers=editor)
        assert refused.status_code == 422, bad
    # Integers, as the document says: "1" and 2.0 are not taken for them.
    loose = client.post(
        f"{path}/members", json={"contact_ids": [str(anna.id), float(cleo.id)]}, headers=editor
    )
    assert loose.status_code == 422 and _fields(loose) == ["contact_ids.0", "contact_ids.1"]
    too_many = client.post(
        f"{path}/members", json={"contact_ids": list(range(1, 10_002))}, headers=editor
    )
    assert too_many.status_code == 422 and _fields(too_many) == ["contact_ids"]
    assert client.get("/api/v1/lists/999", headers=editor).status_code == 404
    assert (
        client.post(
            "/api/v1/lists/999/members", json={"contact_ids": [1]}, headers=editor
        ).status_code
        == 404
    )


def test_viewers_read_lists_and_segments_but_do_not_change_them(client: FlaskClient) -> None:
    contact_list = ContactListFactory(commit=True)
    token, _ = new_key(Role.VIEWER)
    viewer = bearer(token)
    assert client.get("/api/v1/lists", headers=viewer).status_code == 200
    assert client.get("/api/v1/segments", headers=viewer).status_code == 200
    assert client.post("/api/v1/lists", json={"name": "X"}, headers=viewer).status_code == 403
    refused = client.post(
        f"/api/v1/lists/{contact_list.id}/members", json={"contact_ids": [1]}, headers=viewer
    )
    assert refused.status_code == 403
    no_scope, _ = new_key(Role.EDITOR, ["campaigns:write"])
    assert client.get("/api/v1/lists", headers=bearer(no_scope)).status_code == 403


def test_a_segment_is_saved_checked_and_counted_live(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    ContactFactory(country="FR", tags="press")
    ContactFactory(country="FR")
    ContactFactory(country="UZ", tags="press")
    db.session.commit()
    definition = {"all": [{"field": "country", "op": "is", "value": "fr"}]}
    response = client.post(
        "/api/v1/segments", json={"name": "French", "definition": definition}, headers=editor
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    # Stored normalised, as the segment page stores it.
    assert body["definition"] == {"all": [{"field": "country", "op": "is", "value": "FR"}]}
    assert body["count"] == 2
    segment_id = body["id"]
    assert response.headers["Location"] == f"/api/v1/segments/{segment_id}"

    newcomer = ContactFactory(country="FR", commit=True)
    assert client.get(f"/api/v1/segments/{segment_id}", headers=editor).get_json()["count"] == 3
    trash_contact(newcomer)
    db.session.commit()
    assert client.get(f"/api/v1/segments/{segment_id}", headers=editor).get_json()["count"] == 2
    found = client.get(f"/api/v1/contacts?segment={segment_id}", headers=editor).get_json()
    assert len(found["items"]) == 2

    wrong = client.post(
        "/api/v1/segments",
        json={"name": "Bad", "definition": {"field": "shoe_size", "op": "is", "value": "9"}},
        headers=editor,
    )
    assert wrong.status_code == 422 and _fields(wrong) == ["definition.field"]
    # The field is the full place in the tree; a wrong code is named with the codes.
    nested = {"all": [{"field": "kind", "op": "is", "value": "person"}, {"any": []}]}
    nested["all"][0]["op"] = "like"
    wrong_op = client.post(
        "/api/v1/segments", json={"name": "Bad", "definition": nested}, headers=editor
    )
    assert _fields(wrong_op) == ["definition.all.0.op"]
    assert "is_not" in _problem(wrong_op)["errors"][0]["message"]
    robot = {"all": [{"field": "kind", "op": "is", "value": "robot"}]}
    wrong_code = client.post(
        "/api/v1/segments", json={"name": "Bad", "definition": robot}, headers=editor
    )
    assert _fields(wrong_code) == ["definition.all.0.value"]
    message = _problem(wrong_code)["errors"][0]["message"]
    assert "person (" in message and "mandate (" in message
    clash = client.post(
        "/api/v1/segments", json={"name": "french", "definition": {"all": []}}, headers=editor
    )
    assert clash.status_code == 422 and _fields(clash) == ["name"]
    for bad in ({"name": "X"}, {"name": "X", "definition": None}, {"name": "X", "definition": []}):
        assert client.post("/api/v1/segments", json=bad, headers=editor).status_code == 422
    assert db.session.scalar(select(Segment.name).where(Segment.id != segment_id)) is None
    assert client.get("/api/v1/segments/999", headers=editor).status_code == 404


def test_segments_and_lists_page_with_cursors(client: FlaskClient, editor: dict[str, str]) -> None:
    for n in range(3):
        save_segment(f"Segment {n}", {"all": []})
        list_service.create_list(f"List {n}")
    db.session.commit()
    for path in ("/api/v1/segments", "/api/v1/lists"):
        first = client.get(f"{path}?limit=2", headers=editor).get_json()
        rest = client.get(
            f"{path}?limit=2&cursor={first['next_cursor']}", headers=editor
        ).get_json()
        names = [item["name"] for item in first["items"] + rest["items"]]
        assert names == [f"{path.rsplit('/', 1)[-1][:-1].title()} {n}" for n in range(3)]
        assert rest["next_cursor"] is None
        unknown = client.get(f"{path}?bogus=1", headers=editor)
        assert unknown.status_code == 422 and _fields(unknown) == ["bogus"]
        tampered = client.get(f"{path}?cursor=abc.def", headers=editor)
        assert tampered.status_code == 400 and _fields(tampered) == ["cursor"]
    # A cursor of one resource is not one of another.
    segments_cursor = client.get("/api/v1/segments?limit=1", headers=editor).get_json()
    crossed = client.get(f"/api/v1/lists?cursor={segments_cursor['next_cursor']}", headers=editor)
    assert crossed.status_code == 400
