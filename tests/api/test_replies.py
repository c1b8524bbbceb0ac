"""Replies through the API: the inbox's filters, a message read sanitised, and triage with
the same rules and audit as the replies pages."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, Campaign, InboundMessage, Role
from tests.api.helpers import bearer, new_key
from tests.conftest import make_user
from tests.factories import CampaignFactory, DeliveryFactory, InboundMessageFactory

HOSTILE_HTML = (
    '<p onclick="steal()">Thank you for the <b>letter</b>.</p>'
    "<script>alert(1)</script>"
    '<img src="https://tracker.example.net/pixel.gif">'
    '<a href="javascript:alert(2)">here</a>'
)


def _inbox() -> dict[str, int]:
    campaign: Campaign = CampaignFactory(name="Summit letter")
    other: Campaign = CampaignFactory(name="Other letter")
    answered = DeliveryFactory(campaign=campaign, email="partner@example.org")
    reply: InboundMessage = InboundMessageFactory(
        delivery=answered, subject="Re: Summit letter", html=HOSTILE_HTML, text="Thank you"
    )
    bounce: InboundMessage = InboundMessageFactory(
        kind="bounce", bounce_kind="hard", subject="Undelivered"
    )
    elsewhere: InboundMessage = InboundMessageFactory(
        delivery=DeliveryFactory(campaign=other), subject="Re: other"
    )
    db.session.commit()
    return {
        "campaign": campaign.id,
        "reply": reply.id,
        "bounce": bounce.id,
        "elsewhere": elsewhere.id,
    }


def test_the_list_filters_as_the_inbox_and_pages_with_a_cursor(client: FlaskClient) -> None:
    ids = _inbox()
    token, _key = new_key(Role.EDITOR, ["replies:read"])
    everything = client.get("/api/v1/replies", headers=bearer(token))
    assert everything.status_code == 200
    assert [m["id"] for m in everything.get_json()["items"]] == sorted(
        [ids["reply"], ids["bounce"], ids["elsewhere"]]
    )
    replies = client.get(
        "/api/v1/replies",
        query_string={"kind": "reply", "campaign_id": ids["campaign"]},
        headers=bearer(token),
    ).get_json()["items"]
    assert [(m["id"], m["campaign_id"], m["handled"]) for m in replies] == [
        (ids["reply"], ids["campaign"], False)
    ]
    bounces = client.get(
        "/api/v1/replies", query_string={"kind": "bounce"}, headers=bearer(token)
    ).get_json()["items"]
    assert [(m["id"], m["bounce_kind"]) for m in bounces] == [(ids["bounce"], "hard")]
    first = client.get("/api/v1/replies", query_string={"limit": 2}, headers=bearer(token))
    cursor = first.get_json()["next_cursor"]
    rest = client.get("/api/v1/replies", query_string={"cursor": cursor}, headers=bearer(token))
    assert len(rest.get_json()["items"]) == 1 and rest.get_json()["next_cursor"] is None
    tampered = client.get(
        "/api/v1/replies", query_string={"cursor": cursor[:-2] + "xx"}, headers=bearer(token)
    )
    assert tampered.status_code == 400
    wrong = client.get("/api/v1/replies", query_string={"kind": "spam"}, headers=bearer(token))
    assert wrong.status_code == 422 and wrong.get_json()["errors"][0]["field"] == "kind"


def test_a_message_is_read_sanitised_never_as_received(client: FlaskClient) -> None:
    ids = _inbox()
    token, _key = new_key(Role.EDITOR, ["replies:read"])
    answer = client.get(f"/api/v1/replies/{ids['reply']}", headers=bearer(token))
    assert answer.status_code == 200
    body = answer.get_json()
    assert "<b>letter</b>" in body["html"]
    for hostile in ("script", "onclick", "tracker.example.net", "javascript:"):
        assert hostile not in body["html"]
    assert body["text"] == "Thank you" and body["from_address"] == "partner@example.org"
    assert body["received_at"].endswith("Z")
    missing = client.get("/api/v1/replies/999999", headers=bearer(token))
    assert missing.status_code == 404


def test_mark_handled_reopen_and_assign_as_the_page_does(client: FlaskClient) -> None:
    ids = _inbox()
    token, key = new_key(Role.EDITOR, ["replies:write"])
    url = f"/api/v1/replies/{ids['reply']}"
    done = client.post(f"{url}/handled", json={"handled": True}, headers=bearer(token))
    assert done.status_code == 200 and done.get_json()["handled"] is True
    assert done.get_json()["handled_by_id"] == key.user_id
    again = client.post(f"{url}/handled", json={"handled": True}, headers=bearer(token))
    assert again.status_code == 200
    reopened = client.post(f"{url}/handled", json={"handled": False}, headers=bearer(token))
    assert reopened.get_json()["handled"] is False
    colleague = make_user(Role.EDITOR, "colleague@example.org")
    viewer = make_user(Role.VIEWER, "viewer@example.org")
    assigned = client.post(f"{url}/assign", json={"user_id": colleague.id}, headers=bearer(token))
    assert assigned.status_code == 200 and assigned.get_json()["assigned_to_id"] == colleague.id
    refused = client.post(f"{url}/assign", json={"user_id": viewer.id}, headers=bearer(token))
    assert refused.status_code == 422 and refused.get_json()["errors"][0]["field"] == "user_id"
    nobody = client.post(f"{url}/assign", json={"user_id": 999999}, headers=bearer(token))
    assert nobody.status_code == 422
    unassigned = client.post(f"{url}/assign", json={"user_id": None}, headers=bearer(token))
    assert unassigned.get_json()["assigned_to_id"] is None
    db.session.expire_all()
    message = db.session.get(InboundMessage, ids["reply"])
    assert message is not None and message.handled_at is None and message.assigned_to_id is None
    actions = db.session.scalars(
        select(AuditEvent.action)
        .where(AuditEvent.target_id == str(ids["reply"]), AuditEvent.action.like("inbound.%"))
        .order_by(AuditEvent.id)
    ).all()
    assert actions == [
        "inbound.handled",
        "inbound.reopened",
        "inbound.assigned",
        "inbound.assigned",
    ]


def test_scopes_roles_and_bad_input(client: FlaskClient) -> None:
    ids = _inbox()
    url = f"/api/v1/replies/{ids['reply']}"
    reader, _ = new_key(Role.EDITOR, ["replies:read"])
    assert (
        client.post(f"{url}/handled", json={"handled": True}, headers=bearer(reader)).status_code
        == 403
    )
    # Replies are private correspondence: the inbox is for editors and above, keys too.
    # A viewer cannot even be given the scope; a viewer's key with another one is refused.
    viewer, _ = new_key(Role.VIEWER, ["contacts:read"])
    assert client.get("/api/v1/replies", headers=bearer(viewer)).status_code == 403
    other, _ = new_key(Role.ADMIN, ["contacts:read"])
    assert client.get(url, headers=bearer(other)).status_code == 403
    writer, writer_key = new_key(Role.EDITOR, ["replies:write"])
    for body in ({"handled": "maybe"}, {"handled": True, "note": "x"}, {}, {"handled": None}):
        answer = client.post(f"{url}/handled", json=body, headers=bearer(writer))
        assert answer.status_code == 422, body
    # The document says boolean / integer: text or numbers that look like one are refused.
    for body in ({"handled": "yes"}, {"handled": "true"}, {"handled": 0}, {"handled": 1}):
        answer = client.post(f"{url}/handled", json=body, headers=bearer(writer))
        assert answer.status_code == 422, body
        assert [e["field"] for e in answer.get_json()["errors"]] == ["handled"]
    for body in ({"user_id": str(writer_key.user_id)}, {"user_id": float(writer_key.user_id)}):
        answer = client.post(f"{url}/assign", json=body, headers=bearer(writer))
        assert answer.status_code == 422, body
        assert [e["field"] for e in answer.get_json()["errors"]] == ["user_id"]
    assert (
        client.post(
            "/api/v1/replies/999999/handled", json={"handled": True}, headers=bearer(writer)
        ).status_code
        == 404
    )
    db.session.expire_all()
    message = db.session.get(InboundMessage, ids["reply"])
    assert message is not None and message.handled_at is None


def test_a_key_learns_its_users_id_from_me_and_assigns_to_itself(client: FlaskClient) -> None:
    ids = _inbox()
    token, key = new_key(Role.EDITOR, ["replies:write"])
    me = client.get("/api/v1/me", headers=bearer(token)).get_json()
    assert me["user_id"] == key.user_id
    assigned = client.post(
        f"/api/v1/replies/{ids['reply']}/assign",
        json={"user_id": me["user_id"]},
        headers=bearer(token),
    )
    assert assigned.status_code == 200 and assigned.get_json()["assigned_to_id"] == key.user_id
