"""Statements through the API: create, read, a language's text added or replaced (ETags),
versions with withheld names hidden, and one letter as JSON parts or as `campaign render`
prints it."""

from __future__ import annotations

import io
from email import message_from_bytes
from email.message import Message
from email.policy import default as default_policy
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from campaign.extensions import db
from campaign.models import Role, Statement
from campaign.services.contacts.trash import trash_contact
from campaign.services.statements import statements
from tests.api.helpers import bearer, new_key
from tests.api.test_contacts import race
from tests.factories import AmbassadorFactory, StatementFactory

BODY = "{{ salutation }}\n\nWe write about the trial.\n\n{{ closing }}\n"


def _problem_fields(response: object) -> list[str]:
    assert response.mimetype == "application/problem+json", response.get_data(as_text=True)  # type: ignore[attr-defined]
    return [e["field"] for e in response.get_json()["errors"]]  # type: ignore[attr-defined]


def test_an_editor_creates_a_statement_and_reads_it_back(client: FlaskClient) -> None:
    token, key = new_key(Role.EDITOR, ["statements:write"])
    made = client.post(
        "/api/v1/statements",
        json={"title": "Joint  letter", "language": "EN", "subject": "On the trial", "body": BODY},
        headers=bearer(token),
    )
    assert made.status_code == 201, made.get_data(as_text=True)
    body = made.get_json()
    assert body["title"] == "Joint letter" and body["status"] == "draft"
    assert body["texts"] == [{"language": "en", "subject": "On the trial", "body": BODY}]
    assert body["version"] == 1 and body["created_at"].endswith("Z")
    assert made.headers["Location"].endswith(f"/api/v1/statements/{body['id']}")
    stored = db.session.get(Statement, body["id"])
    assert stored is not None and stored.created_by_id == key.user_id

    read = client.get(f"/api/v1/statements/{body['id']}", headers=bearer(token))
    assert read.status_code == 200 and read.get_json() == body
    assert read.headers["ETag"] == made.headers["ETag"]
    listed = client.get("/api/v1/statements?status=draft", headers=bearer(token)).get_json()
    assert [item["id"] for item in listed["items"]] == [body["id"]]


def test_a_text_the_editor_would_refuse_is_a_422_naming_the_field(client: FlaskClient) -> None:
    token, _ = new_key(Role.EDITOR, ["statements:write"])
    bad = client.post(
        "/api/v1/statements",
        json={"title": "T", "subject": "S", "body": "{{ config.SECRET_KEY }}"},
        headers=bearer(token),
    )
    assert bad.status_code == 422 and _problem_fields(bad) == ["body"]
    untitled = client.post(
        "/api/v1/statements",
        json={"title": " ", "subject": "S", "body": BODY},
        headers=bearer(token),
    )
    assert _problem_fields(untitled) == ["title"]
    # Said in JSON terms, not a Markdown file's (front matter, # heading): review B.
    assert "front matter" not in untitled.get_json()["errors"][0]["message"]
    unknown = client.post(
        "/api/v1/statements",
        json={"title": "T", "subject": "S", "body": BODY, "status": "final"},
        headers=bearer(token),
    )
    assert unknown.status_code == 422 and _problem_fields(unknown) == ["status"]
    assert db.session.query(Statement).count() == 0


def test_keys_without_the_scope_or_the_role_cannot_write(client: FlaskClient) -> None:
    reader, _ = new_key(Role.EDITOR, ["statements:read"])
    viewer, _ = new_key(Role.VIEWER, ["statements:read"])
    other, _ = new_key(Role.EDITOR, ["contacts:write"])
    data = {"title": "T", "subject": "S", "body": BODY}
    for token in (reader, viewer):
        assert (
            client.post("/api/v1/statements", json=data, headers=bearer(token)).status_code == 403
        )
    assert client.get("/api/v1/statements", headers=bearer(other)).status_code == 403
    assert client.get("/api/v1/statements", headers=bearer(viewer)).status_code == 200
    assert client.get("/api/v1/statements/2147483647", headers=bearer(viewer)).status_code == 404


def test_two_text_replacements_sent_at_once_with_one_etag_one_wins_the_other_gets_412(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from campaign.web.api import statements as module

    statement = StatementFactory(body=BODY, commit=True)
    token, _ = new_key(Role.EDITOR, ["statements:write"])
    address = f"/api/v1/statements/{statement.id}/texts/fr"
    added = client.put(address, json={"subject": "Le procès", "body": BODY}, headers=bearer(token))
    assert added.status_code == 201, added.get_data(as_text=True)
    for round_ in range(2):
        etag = client.get(address, headers=bearer(token)).headers["ETag"]
        subjects = [f"Première {round_}", f"Seconde {round_}"]

        def send(other: FlaskClient, turn: int, etag: str = etag, s: list[str] = subjects) -> Any:
            change = {"subject": s[turn], "body": BODY}
            return other.put(address, json=change, headers=bearer(token, **{"If-Match": etag}))

        assert race(app, monkeypatch, module, send) == [200, 412]
        assert client.get(address, headers=bearer(token)).get_json()["subject"] in subjects


def test_a_translation_is_added_then_replaced_only_against_its_etag(client: FlaskClient) -> None:
    statement = StatementFactory(body=BODY, commit=True)
    token, _ = new_key(Role.EDITOR, ["statements:write"])
    address = f"/api/v1/statements/{statement.id}/texts/fr"
    added = client.put(address, json={"subject": "Le procès", "body": BODY}, headers=bearer(token))
    assert added.status_code == 201, added.get_data(as_text=True)
    etag = added.headers["ETag"]

    change = {"subject": "Le procès de G.", "body": BODY}
    assert client.put(address, json=change, headers=bearer(token)).status_code == 428
    stale = client.put(address, json=change, headers=bearer(token, **{"If-Match": '"old"'}))
    assert stale.status_code == 412
    replaced = client.put(address, json=change, headers=bearer(token, **{"If-Match": etag}))
    assert replaced.status_code == 200 and replaced.get_json()["subject"] == "Le procès de G."
    assert client.get(address, headers=bearer(token)).headers["ETag"] == replaced.headers["ETag"]

    db.session.expire_all()
    assert db.session.get(Statement, statement.id).text_for("fr").subject == "Le procès de G."  # type: ignore[union-attr]
    versions = client.get(
        f"/api/v1/statements/{statement.id}/versions", headers=bearer(token)
    ).get_json()
    assert [v["change_summary"] for v in versions["items"]] == [
        "created with en",
        "fr text added",
        "fr text replaced",
    ]
    bad_tag = client.put(
        f"/api/v1/statements/{statement.id}/texts/x_y", json=change, headers=bearer(token)
    )
    assert bad_tag.status_code == 422 and _problem_fields(bad_tag) == ["language"]


def test_the_version_history_hides_a_withheld_signer_under_every_name(
    app: Flask, client: FlaskClient
) -> None:
    statement = StatementFactory(
        body=BODY, signatories=[{"kind": "individual", "name": "Dilnoza Karimova"}]
    )
    signer = statement.signatories[0]
    statements.update_signatory(
        signer, {"kind": "individual", "name": "Dilnoza Karimova", "publish_as": "withheld"}
    )
    db.session.commit()
    token, _ = new_key(Role.VIEWER, ["statements:read"])
    answer = client.get(
        f"/api/v1/statements/{statement.id}/versions?limit=1", headers=bearer(token)
    )
    summaries = []
    while True:
        body = answer.get_json()
        summaries += [v["change_summary"] for v in body["items"]]
        if body["next_cursor"] is None:
            break
        answer = client.get(
            f"/api/v1/statements/{statement.id}/versions",
            query_string={"limit": 1, "cursor": body["next_cursor"]},
            headers=bearer(token),
        )
    assert len(summaries) == 3
    assert not any("Karimova" in s for s in summaries), summaries
    assert "[name withheld]" in " ".join(summaries)


def _comparable(message: Message) -> list[tuple[str, str]]:
    """Headers and decoded parts, leaving out what differs from one rendering to the next
    (the date, the Message-ID, the MIME boundary)."""
    found = [
        (k, str(v)) for k, v in message.items() if k not in ("Date", "Message-ID", "Content-Type")
    ]
    for part in message.walk():
        if not part.is_multipart():
            found.append((part.get_content_type(), str(part.get_content())))  # type: ignore[attr-defined]
    return found


def test_one_letter_as_json_parts_and_as_campaign_render_prints_it(
    app: Flask, client: FlaskClient
) -> None:
    statement = StatementFactory(body=BODY, subject="On the trial", commit=True)
    contact = AmbassadorFactory(commit=True)
    token, _ = new_key(Role.EDITOR, ["statements:read"])
    address = f"/api/v1/statements/{statement.id}/letters/{contact.id}"

    parts = client.get(address, headers=bearer(token))
    assert parts.status_code == 200, parts.get_data(as_text=True)
    letter = parts.get_json()
    assert letter["language"] == "en" and letter["subject"] == "On the trial"
    assert letter["salutation"] in letter["body_text"] and letter["salutation"].startswith("Dear")
    assert letter["to_address"] == contact.email and letter["sendable"] is True
    assert "We write about the trial." in letter["html"]
    headers = {h["name"]: h["value"] for h in letter["headers"]}
    assert headers["Subject"] == "On the trial" and contact.email in headers["To"]

    message = client.get(address, headers=bearer(token, Accept="message/rfc822"))
    assert message.status_code == 200 and message.mimetype == "message/rfc822"
    assert b"\r\n" in message.data
    printed = app.test_cli_runner().invoke(args=["render", str(statement.id), contact.email])
    assert printed.exit_code == 0, printed.output
    assert _comparable(message_from_bytes(message.data, policy=default_policy)) == _comparable(
        message_from_bytes(printed.stdout_bytes, policy=default_policy)
    )

    unavailable = client.get(address, query_string={"language": "ru"}, headers=bearer(token))
    assert unavailable.status_code == 422 and _problem_fields(unavailable) == ["language"]
    viewer, _ = new_key(Role.VIEWER, ["statements:read"])
    assert client.get(address, headers=bearer(viewer)).status_code == 403
    trash_contact(contact)
    db.session.commit()
    assert client.get(address, headers=bearer(token)).status_code == 404


def test_a_statement_lists_its_files_and_missing_things_are_named(client: FlaskClient) -> None:
    statement = StatementFactory()
    annex = statements.add_attachment(
        statement, "annex.pdf", io.BytesIO(b"%PDF-1.4\n% annex\n" + b"0" * 500)
    )
    db.session.commit()
    token, _ = new_key(Role.EDITOR, ["statements:read"])
    read = client.get(f"/api/v1/statements/{statement.id}", headers=bearer(token)).get_json()
    assert [(f["id"], f["filename"], f["language"]) for f in read["files"]] == [
        (annex.id, "annex.pdf", "")
    ]
    assert read["files"][0]["content_type"] == "application/pdf"
    for address, what in (
        ("/api/v1/statements/999", "statement"),
        (f"/api/v1/statements/{statement.id}/texts/xx", "language"),
        (f"/api/v1/statements/{statement.id}/letters/999", "contact"),
    ):
        missing = client.get(address, headers=bearer(token))
        assert missing.status_code == 404 and what in missing.get_json()["detail"], address
    versions = client.get(
        f"/api/v1/statements/{statement.id}/versions?bogus=1", headers=bearer(token)
    )
    assert versions.status_code == 422 and _problem_fields(versions) == ["bogus"]
