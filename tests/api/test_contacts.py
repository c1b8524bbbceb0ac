"""Contacts over the API: the page's filters with cursors, the form's rules and messages,
ETags on updates, the trash on delete, and the bulk upsert with the import's rules."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress
from types import ModuleType
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import AuditEvent, Contact, Role
from campaign.services.contacts.contacts import CONTACT_FIELDS, find_by_email
from campaign.services.contacts.trash import trash_contact
from campaign.web.api.contacts import ContactOut
from tests.api.helpers import bearer, new_key
from tests.factories import ContactFactory, ContactListFactory


def _problem(response: Any) -> dict[str, Any]:
    assert response.mimetype == "application/problem+json", response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def _fields(response: Any) -> list[str]:
    return [error["field"] for error in _problem(response)["errors"]]


def _count() -> int:
    return int(db.session.scalar(select(func.count(Contact.id))) or 0)


@pytest.fixture
def editor(app: Flask) -> dict[str, str]:
    token, _ = new_key(Role.EDITOR)
    return bearer(token)


# --- list and read ---------------------------------------------------------------------------


def test_the_list_filters_as_the_page_and_pages_with_cursors(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    olga = ContactFactory(email="olga@example.org", given_name="Ольга", country="UZ", tags="press")
    ContactFactory(email="jean@example.org", given_name="Jean", country="FR", languages="fr")
    ContactFactory(email="ann@example.org", given_name="Ann", country="FR", tags="press")
    gone = ContactFactory(email="gone@example.org", given_name="Olga", country="UZ")
    trash_contact(gone)
    listed = ContactListFactory(contacts=[olga, gone])
    db.session.commit()

    def emails(**args: Any) -> list[str]:
        response = client.get("/api/v1/contacts", query_string=args, headers=editor)
        assert response.status_code == 200, response.get_data(as_text=True)
        return [item["email"] for item in response.get_json()["items"]]

    assert emails(q="olga") == ["olga@example.org"]  # Latin finds Cyrillic; trash left out
    assert emails(tag="press") == ["olga@example.org", "ann@example.org"]
    assert emails(country="fr", language="FR") == ["jean@example.org"]
    assert emails(country="Uzbekistan") == ["olga@example.org"]  # a name, as on the page
    assert emails(list=listed.id) == ["olga@example.org"]
    assert emails(role_type="ambassador") == []

    seen: list[str] = []
    cursor = None
    for _turn in range(3):
        args = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get("/api/v1/contacts", query_string=args, headers=editor).get_json()
        seen += [item["email"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ["olga@example.org", "jean@example.org", "ann@example.org"]


def test_a_tampered_cursor_and_unknown_filters_are_refused(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    ContactFactory.create_batch(3, commit=True)
    first = client.get("/api/v1/contacts?limit=1", headers=editor).get_json()
    cursor = first["next_cursor"]
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    response = client.get(f"/api/v1/contacts?cursor={tampered}", headers=editor)
    assert response.status_code == 400 and _fields(response) == ["cursor"]
    lists_cursor = client.get(f"/api/v1/contacts?cursor={cursor}", headers=editor)
    assert lists_cursor.status_code == 200
    unknown = client.get("/api/v1/contacts?sort=name", headers=editor)
    assert unknown.status_code == 422 and _fields(unknown) == ["sort"]
    too_big = client.get("/api/v1/contacts?limit=201", headers=editor)
    assert too_big.status_code == 422 and _fields(too_big) == ["limit"]


def test_reading_shows_the_fields_and_never_the_search_key(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    contact = ContactFactory(
        email="anna@example.org", given_name="Anna", risk_level="high", commit=True
    )
    response = client.get(f"/api/v1/contacts/{contact.id}", headers=editor)
    assert response.status_code == 200
    body = response.get_json()
    assert set(CONTACT_FIELDS) <= set(body) == set(ContactOut.model_fields)
    assert body["risk_level"] == "high" and body["given_name"] == "Anna"
    assert "search_key" not in body and "deleted_at" not in body
    assert body["created_at"].endswith("Z")
    assert response.headers["ETag"].startswith('"')


def test_missing_trashed_and_impossible_ids_are_404(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    contact = ContactFactory()
    trash_contact(contact)
    db.session.commit()
    for path in (
        f"/api/v1/contacts/{contact.id}",
        "/api/v1/contacts/999",
        "/api/v1/contacts/2147483648",
    ):
        response = client.get(path, headers=editor)
        assert response.status_code == 404 and _problem(response)["status"] == 404
    # Every method: an id past any row's is a 404, never a 405 (Schemathesis found it).
    for method in ("patch", "put", "delete"):
        response = getattr(client, method)("/api/v1/contacts/3046004923", json={}, headers=editor)
        assert response.status_code == 404, method


def test_keys_need_the_scope_and_the_role(client: FlaskClient) -> None:
    reader, _ = new_key(Role.EDITOR, ["contacts:read"])
    assert client.get("/api/v1/contacts", headers=bearer(reader)).status_code == 200
    refused = client.post(
        "/api/v1/contacts", json={"email": "a@example.org"}, headers=bearer(reader)
    )
    assert refused.status_code == 403 and _problem(refused)["required_scope"] == "contacts:write"
    viewer, _ = new_key(Role.VIEWER)
    assert client.get("/api/v1/contacts", headers=bearer(viewer)).status_code == 200
    other, _ = new_key(Role.ADMIN, ["statements:read"])
    assert client.get("/api/v1/contacts", headers=bearer(other)).status_code == 403
    # A key keeps no more than its user's current role.
    writer, key = new_key(Role.EDITOR, ["contacts:write"])
    key.user.role = Role.VIEWER.value
    db.session.commit()
    demoted = client.post(
        "/api/v1/contacts",
        json={"email": "b@example.org", "family_name": "B"},
        headers=bearer(writer),
    )
    assert demoted.status_code == 403
    assert _count() == 0


# --- create ----------------------------------------------------------------------------------


def test_create_stores_through_the_form_rules_and_audits_as_the_key_user(
    client: FlaskClient,
) -> None:
    token, key = new_key(Role.EDITOR)
    response = client.post(
        "/api/v1/contacts",
        json={
            "email": " Anna.Berg@Example.ORG ",
            "given_name": "Anna",
            "family_name": "Berg",
            "country": "fr",
            "languages": "FR ru",
            "role_type": "ambassador",
            "term_ends_on": "2027-06-30",
        },
        headers=bearer(token),
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1/contacts/{body['id']}"
    # The ETag answered is the one a read gives: a client may update with it at once.
    assert (
        client.get(response.headers["Location"], headers=bearer(token)).headers["ETag"]
        == response.headers["ETag"]
    )
    assert (body["email"], body["country"], body["languages"]) == (
        "Anna.Berg@example.org",
        "FR",
        "fr ru",
    )
    assert body["term_ends_on"] == "2027-06-30"
    # Left out: the stored defaults, as on the import (decision 0065).
    assert (body["risk_level"], body["role_type"], body["kind"]) == (
        "public",
        "ambassador",
        "person",
    )
    stored = find_by_email("anna.berg@example.org")
    assert stored is not None and stored.id == body["id"]
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "contact.create")
    ).one()
    assert event.actor_id == key.user_id and event.target_id == str(stored.id)


def test_create_refuses_bad_values_naming_each_field_with_the_forms_messages(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    response = client.post(
        "/api/v1/contacts",
        json={"email": "not-an-address", "country": "XX", "given_name": "A\nB"},
        headers=editor,
    )
    assert response.status_code == 422
    errors = {e["field"]: e["message"] for e in _problem(response)["errors"]}
    assert set(errors) == {"email", "country", "given_name"}
    assert "@-sign" in errors["email"] and "'XX'" in errors["country"]
    # No name at all: the form's own rule, on family_name.
    nameless = client.post("/api/v1/contacts", json={"email": "x@example.org"}, headers=editor)
    assert nameless.status_code == 422 and _fields(nameless) == ["family_name"]
    # Longer than the column (the rule's limit is 500, a given name is stored in 200).
    long = client.post(
        "/api/v1/contacts",
        json={"email": "y@example.org", "given_name": "x" * 201},
        headers=editor,
    )
    assert long.status_code == 422 and _fields(long) == ["given_name"]
    assert "200" in _problem(long)["errors"][0]["message"]
    assert _count() == 0


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"email": "a@example.org", "family_name": 5}, ["family_name"]),
        ({"email": "a@example.org", "family_name": None}, ["family_name"]),
        ({"email": None, "family_name": "A"}, ["email"]),
        ({"family_name": "A"}, ["email"]),
        (
            {"email": "a@example.org", "family_name": "A", "search_key": "x", "id": 3},
            ["search_key", "id"],
        ),
        (
            {"email": "a@example.org", "family_name": "A", "term_ends_on": "30/06/2027"},
            ["term_ends_on"],
        ),
        (
            {"email": "a@example.org", "family_name": "A", "dative_confirmed": "maybe"},
            ["dative_confirmed"],
        ),
        # A boolean is JSON's true or false (text like one is for the bulk upsert's items).
        (
            {"email": "a@example.org", "family_name": "A", "dative_confirmed": "no"},
            ["dative_confirmed"],
        ),
        (
            {"email": "a@example.org", "family_name": "A", "dative_confirmed": 0},
            ["dative_confirmed"],
        ),
    ],
    ids=[
        "wrong-type",
        "null-name",
        "null-email",
        "no-email",
        "unknown-fields",
        "date",
        "flag",
        "flag-as-text",
        "flag-as-number",
    ],
)
def test_create_refuses_wrong_types_nulls_and_unknown_fields(
    client: FlaskClient, editor: dict[str, str], body: dict[str, Any], fields: list[str]
) -> None:
    response = client.post("/api/v1/contacts", json=body, headers=editor)
    assert response.status_code == 422
    assert sorted(_fields(response)) == sorted(fields)
    assert _count() == 0


def test_an_address_a_live_contact_has_is_refused_and_a_trashed_ones_is_free(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    taken = ContactFactory(email="taken@example.org")
    trashed = ContactFactory(email="trashed@example.org")
    trash_contact(trashed)
    db.session.commit()
    response = client.post(
        "/api/v1/contacts", json={"email": "TAKEN@example.org", "family_name": "B"}, headers=editor
    )
    assert response.status_code == 422 and _fields(response) == ["email"]
    assert f"#{taken.id}" in _problem(response)["errors"][0]["message"]
    again = client.post(
        "/api/v1/contacts",
        json={"email": "trashed@example.org", "family_name": "B"},
        headers=editor,
    )
    assert again.status_code == 201 and again.get_json()["id"] != trashed.id


def test_a_retried_create_is_answered_again_and_done_once(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    body = {"email": "once@example.org", "family_name": "Once"}
    headers = {**editor, "Idempotency-Key": "create-once-1"}
    first = client.post("/api/v1/contacts", json=body, headers=headers)
    second = client.post("/api/v1/contacts", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.get_json() == second.get_json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["ETag"] == first.headers["ETag"]
    assert _count() == 1
    other = client.post("/api/v1/contacts", json={**body, "family_name": "Twice"}, headers=headers)
    assert other.status_code == 422 and _fields(other) == ["Idempotency-Key"]
    assert _count() == 1


# --- update and delete -----------------------------------------------------------------------


def test_patch_needs_the_current_etag_and_changes_only_what_it_sends(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    contact = ContactFactory(
        email="p@example.org", given_name="Pia", family_name="Old", tags="press", commit=True
    )
    path = f"/api/v1/contacts/{contact.id}"
    etag = client.get(path, headers=editor).headers["ETag"]
    missing = client.patch(path, json={"family_name": "New"}, headers=editor)
    assert missing.status_code == 428 and _fields(missing) == ["If-Match"]
    changed = client.patch(path, json={"family_name": "New"}, headers={**editor, "If-Match": etag})
    assert changed.status_code == 200, changed.get_data(as_text=True)
    assert changed.headers["ETag"] != etag
    body = changed.get_json()
    assert (body["given_name"], body["family_name"], body["tags"]) == ("Pia", "New", "press")
    stale = client.patch(path, json={"family_name": "Lost"}, headers={**editor, "If-Match": etag})
    assert stale.status_code == 412 and stale.headers["ETag"] == changed.headers["ETag"]
    bad = client.patch(
        path, json={"email": "nope"}, headers={**editor, "If-Match": changed.headers["ETag"]}
    )
    assert bad.status_code == 422 and _fields(bad) == ["email"]
    nulled = client.patch(
        path, json={"tags": None}, headers={**editor, "If-Match": changed.headers["ETag"]}
    )
    assert nulled.status_code == 422 and _fields(nulled) == ["tags"]
    db.session.refresh(contact)
    assert (contact.family_name, contact.email) == ("New", "p@example.org")
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "contact.update")
    ).one()
    assert event.detail["fields"] == ["family_name"]


def race(
    app: Flask,
    monkeypatch: pytest.MonkeyPatch,
    module: ModuleType,
    send: Callable[[FlaskClient, int], Any],
) -> list[int]:
    """Two clients send `send` (told 0 or 1) at once, both held after their If-Match check
    until the other has made it too (or a second went by: one waits for the other's lock).
    The answers' statuses, sorted."""
    together = threading.Barrier(2)
    check = module.require_if_match

    def held(current: str) -> None:
        check(current)
        with suppress(threading.BrokenBarrierError):
            together.wait(timeout=1)

    monkeypatch.setattr(module, "require_if_match", held)
    statuses: list[int] = []

    def run(turn: int) -> None:
        try:
            with app.app_context():  # its own session
                statuses.append(send(app.test_client(), turn).status_code)
        except BaseException as error:  # pragma: no cover - shown by the assert below
            statuses.append(-1)
            raise error

    threads = [threading.Thread(target=run, args=(turn,)) for turn in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    monkeypatch.setattr(module, "require_if_match", check)
    return sorted(statuses)


def test_two_updates_sent_at_once_with_one_etag_one_wins_the_other_gets_412(
    app: Flask, client: FlaskClient, editor: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from campaign.web.api import contacts as module

    contact = ContactFactory(email="race@example.org", family_name="Old", commit=True)
    path = f"/api/v1/contacts/{contact.id}"
    for round_ in range(3):
        etag = client.get(path, headers=editor).headers["ETag"]
        names = [f"First{round_}", f"Second{round_}"]

        def send(other: FlaskClient, turn: int, etag: str = etag, names: list[str] = names) -> Any:
            body = {"family_name": names[turn]}
            return other.patch(path, json=body, headers={**editor, "If-Match": etag})

        assert race(app, monkeypatch, module, send) == [200, 412]
        # The one that won is what is stored, and its answer's ETag is the current one.
        body = client.get(path, headers=editor).get_json()
        assert body["family_name"] in names


def test_put_replaces_every_field(client: FlaskClient, editor: dict[str, str]) -> None:
    contact = ContactFactory(email="r@example.org", given_name="Rita", tags="press", commit=True)
    path = f"/api/v1/contacts/{contact.id}"
    etag = client.get(path, headers=editor).headers["ETag"]
    response = client.put(
        path,
        json={
            "email": "r@example.org",
            "organisation": "UN",
            "role_type": "official",
            "risk_level": "low",
        },
        headers={**editor, "If-Match": etag},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["given_name"], body["tags"], body["organisation"]) == ("", "", "UN")
    assert (body["role_type"], body["risk_level"]) == ("official", "low")


def test_put_without_the_risk_level_or_role_is_refused_and_lowers_nothing(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    contact = ContactFactory(
        email="h@example.org", given_name="Hana", risk_level="high", role_type="ngo", commit=True
    )
    path = f"/api/v1/contacts/{contact.id}"
    etag = client.get(path, headers=editor).headers["ETag"]
    # A CRM sync lacking the columns: refused, naming both, rather than a quiet `public`.
    response = client.put(
        path,
        json={"email": "h@example.org", "given_name": "Hana"},
        headers={**editor, "If-Match": etag},
    )
    assert response.status_code == 422
    assert sorted(_fields(response)) == ["risk_level", "role_type"]
    db.session.refresh(contact)
    assert (contact.risk_level, contact.role_type) == ("high", "ngo")
    assert client.get(path, headers=editor).headers["ETag"] == etag


def test_delete_moves_to_the_trash_and_the_contact_is_gone_from_the_api(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    contact = ContactFactory(email="d@example.org", commit=True)
    path = f"/api/v1/contacts/{contact.id}"
    viewer, _ = new_key(Role.VIEWER)
    assert client.delete(path, headers=bearer(viewer)).status_code == 403
    response = client.delete(path, headers=editor)
    assert response.status_code == 204
    db.session.refresh(contact)
    assert contact.deleted_at is not None  # in the trash, restorable
    assert client.get(path, headers=editor).status_code == 404
    assert client.delete(path, headers=editor).status_code == 404
    etag = '"anything"'
    assert client.patch(path, json={}, headers={**editor, "If-Match": etag}).status_code == 404
    assert client.get("/api/v1/contacts", headers=editor).get_json()["items"] == []


# --- bulk upsert -----------------------------------------------------------------------------


def _bulk(client: FlaskClient, headers: dict[str, str], items: list[dict[str, Any]]) -> Any:
    return client.post("/api/v1/contacts/bulk", json={"items": items}, headers=headers)


def test_bulk_upsert_follows_the_imports_rules_item_by_item(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    kept = ContactFactory(email="kept@example.org", given_name="Kim", family_name="Kept")
    changed = ContactFactory(email="changed@example.org", family_name="Before", tags="press")
    trashed = ContactFactory(email="trashed@example.org", family_name="Gone")
    trash_contact(trashed)
    db.session.commit()
    response = _bulk(
        client,
        editor,
        [
            {"email": "new@example.org", "family_name": "New", "country": "fr"},
            {"email": "CHANGED@example.org", "family_name": "After"},
            {"email": "kept@example.org", "family_name": "Kept"},
            {"email": "broken", "country": "XX", "family_name": "B"},
            {"email": "new@example.org", "family_name": "Again"},
            {"email": "trashed@example.org", "family_name": "Back"},
            {"email": "nameless@example.org"},
        ],
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    statuses = [(item["index"], item["status"]) for item in body["items"]]
    assert statuses == [
        (0, "created"),
        (1, "updated"),
        (2, "unchanged"),
        (3, "error"),
        (4, "error"),
        (5, "created"),
        (6, "error"),
    ]
    assert (body["created"], body["updated"], body["unchanged"], body["failed"]) == (2, 1, 1, 3)
    items = body["items"]
    assert items[1]["id"] == changed.id and items[2]["id"] == kept.id
    assert {e["field"] for e in items[3]["errors"]} == {"email", "country"}
    assert items[4]["errors"] == [
        {
            "field": "email",
            "message": "the address new@example.org is already item 0 of this request",
        }
    ]
    assert items[6]["errors"][0]["field"] == "family_name"
    assert items[5]["id"] != trashed.id  # an address only in the trash makes a new contact
    new = find_by_email("new@example.org")
    assert new is not None and (new.id, new.family_name, new.country) == (
        items[0]["id"],
        "New",
        "FR",
    )
    db.session.refresh(changed)
    db.session.refresh(kept)
    # Only the fields an item sends change; the others stay (the import's update rule).
    assert (changed.family_name, changed.tags, changed.email) == (
        "After",
        "press",
        "changed@example.org",
    )
    assert kept.given_name == "Kim"
    assert "after" in changed.search_key  # the search finds the new name
    assert find_by_email("broken") is None and find_by_email("nameless@example.org") is None
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "contacts.upsert")
    ).one()
    assert event.detail == {"items": 7, "created": 2, "updated": 1, "unchanged": 1, "error": 3}


def test_bulk_upsert_refuses_structurally_wrong_requests_whole(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    item = {"email": "a@example.org", "family_name": "A"}
    too_many = _bulk(client, editor, [item] * 10_001)
    assert too_many.status_code == 422 and _fields(too_many) == ["items"]
    wrong = _bulk(client, editor, [item, {"email": "b@example.org", "family_name": 7}])
    assert wrong.status_code == 422 and _fields(wrong) == ["items.1.family_name"]
    null = _bulk(client, editor, [{"email": None, "family_name": "A"}])
    assert null.status_code == 422 and _fields(null) == ["items.0.email"]
    unknown = _bulk(client, editor, [{**item, "colour": "red"}])
    assert unknown.status_code == 422 and _fields(unknown) == ["items.0.colour"]
    outer = client.post(
        "/api/v1/contacts/bulk", json={"items": [item], "mode": "x"}, headers=editor
    )
    assert outer.status_code == 422 and _fields(outer) == ["mode"]
    assert _count() == 0


def test_bulk_upsert_with_an_idempotency_key_is_done_once(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    items = [{"email": f"p{n}@example.org", "family_name": "P"} for n in range(3)]
    headers = {**editor, "Idempotency-Key": "bulk-1"}
    first = client.post("/api/v1/contacts/bulk", json={"items": items}, headers=headers)
    second = client.post("/api/v1/contacts/bulk", json={"items": items}, headers=headers)
    assert first.get_json() == second.get_json()
    assert [i["status"] for i in second.get_json()["items"]] == ["created"] * 3
    assert _count() == 3
    other = client.post("/api/v1/contacts/bulk", json={"items": items[:1]}, headers=headers)
    assert other.status_code == 422 and _fields(other) == ["Idempotency-Key"]


def test_bulk_upsert_takes_ten_thousand_contacts(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    items = [
        {"email": f"person{n}@example.org", "family_name": f"Person {n}", "tags": "bulk"}
        for n in range(10_000)
    ]
    created = _bulk(client, editor, items).get_json()
    assert created["created"] == 10_000 and created["failed"] == 0
    assert len({item["id"] for item in created["items"]}) == 10_000
    # Written in chunks of 1,000: the first and the last chunk's contacts are found again.
    again = [items[0], {**items[9_999], "family_name": "Changed"}]
    answer = _bulk(client, editor, again).get_json()
    assert [item["status"] for item in answer["items"]] == ["unchanged", "updated"]
    assert answer["items"][1]["id"] == created["items"][9_999]["id"]
    assert _count() == 10_000


# --- review B: codes, per-item dates and flags, filters that cannot find anything ---------


def test_the_document_lists_each_enumerations_codes(client: FlaskClient) -> None:
    schemas = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]

    def schema(prefix: str) -> dict[str, Any]:
        found: dict[str, Any] = next(v for k, v in schemas.items() if k.split(".")[0] == prefix)
        return found

    sent = schema("ContactCreate")["properties"]
    answered = schema("ContactOut")["properties"]
    assert sent["kind"]["enum"] == ["", "person", "organisation", "mandate"]
    assert sent["grammatical_gender"]["enum"] == ["", "f", "m", "unknown"]
    assert sent["risk_level"]["enum"] == ["", "public", "low", "elevated", "high"]
    assert len(sent["role_type"]["enum"]) == 14 and "ambassador" in sent["role_type"]["enum"]
    assert answered["kind"]["enum"] == ["person", "organisation", "mandate"]
    assert answered["risk_level"]["enum"] == ["public", "low", "elevated", "high"]
    assert "un_sr" in answered["role_type"]["enum"]
    segment = schema("SegmentIn")["properties"]["definition"]["description"]
    assert "`is_not`" in segment and "`contains`" in segment


def test_a_wrong_code_is_refused_naming_the_codes_with_their_labels(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    response = client.post(
        "/api/v1/contacts",
        json={"email": "r@example.org", "family_name": "R", "kind": "robot"},
        headers={**editor, "Accept-Language": "fr"},
    )
    assert response.status_code == 422 and _fields(response) == ["kind"]
    message = _problem(response)["errors"][0]["message"]
    assert "person (Personne)" in message and "mandate (" in message
    # A label is still taken, as on the import; the answer holds the code.
    made = client.post(
        "/api/v1/contacts",
        json={"email": "m@example.org", "family_name": "M", "kind": "Organisation"},
        headers=editor,
    )
    assert made.status_code == 201 and made.get_json()["kind"] == "organisation"


def test_filters_that_cannot_find_anything_are_named(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    ContactFactory(risk_level="high", role_type="ambassador", commit=True)
    for args, field in (
        ("risk_level=moyen", "risk_level"),
        ("role_type=bogus", "role_type"),
        ("list=999", "list"),
        ("segment=999", "segment"),
    ):
        response = client.get(f"/api/v1/contacts?{args}", headers=editor)
        assert response.status_code == 422 and _fields(response) == [field], args
    found = client.get("/api/v1/contacts?risk_level=high&role_type=Ambassador", headers=editor)
    assert found.status_code == 200 and len(found.get_json()["items"]) == 1


def test_a_bad_date_or_flag_in_bulk_is_that_items_error_only(
    client: FlaskClient, editor: dict[str, str]
) -> None:
    good = {"email": "good@example.org", "family_name": "G", "term_ends_on": "2026-05-31"}
    bad = {
        "email": "bad@example.org",
        "family_name": "B",
        "term_ends_on": "2026-13-01",
        "dative_confirmed": "maybe",
    }
    flag = {"email": "flag@example.org", "family_name": "F", "dative_confirmed": "non"}
    response = _bulk(client, editor, [good, bad, flag, {**good, "email": "d@example.org"}])
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert [item["status"] for item in body["items"]] == ["created", "error", "created", "created"]
    assert {e["field"] for e in body["items"][1]["errors"]} == {"term_ends_on", "dative_confirmed"}
    assert body["created"] == 3 and body["failed"] == 1
    stored = find_by_email("good@example.org")
    assert stored is not None and str(stored.term_ends_on) == "2026-05-31"
