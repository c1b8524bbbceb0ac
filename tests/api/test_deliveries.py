"""A campaign's ledger through the API: cursor pages in a stable order, the status filter,
the server's last answer, replied and bounced, and never a letter's body."""

from __future__ import annotations

from datetime import UTC, datetime

from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Delivery, DeliveryStatus, Role
from tests.api.helpers import bearer, new_key
from tests.factories import CampaignFactory

RECIPIENTS = [f"r{i}@example.org" for i in range(7)]


def _launched() -> tuple[int, list[Delivery]]:
    campaign = CampaignFactory(recipients=RECIPIENTS, launched=True, commit=True)
    rows = list(
        db.session.scalars(
            select(Delivery).where(Delivery.campaign_id == campaign.id).order_by(Delivery.id)
        )
    )
    return campaign.id, rows


def test_the_ledger_pages_in_id_order_with_what_each_row_says(client: FlaskClient) -> None:
    campaign_id, rows = _launched()
    bounced, replied = rows[1], rows[2]
    bounced.status, bounced.attempts, bounced.reason = (
        DeliveryStatus.BOUNCED.value,
        1,
        "hard_bounce",
    )
    bounced.last_code, bounced.last_reply = 550, "5.1.1 <r1@example.org>: no such user"
    replied.status, replied.attempts = DeliveryStatus.SENT.value, 1
    replied.sent_at = replied.replied_at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    replied.message_blob = b"the letter itself"
    db.session.commit()
    token, _ = new_key(Role.VIEWER, ["campaigns:read"])

    seen: list[dict] = []  # type: ignore[type-arg]
    cursor = None
    while True:
        answer = client.get(
            f"/api/v1/campaigns/{campaign_id}/deliveries",
            query_string={"limit": 3, **({"cursor": cursor} if cursor else {})},
            headers=bearer(token),
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)
        body = answer.get_json()
        assert len(body["items"]) <= 3
        seen += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [d["id"] for d in seen] == [r.id for r in rows]
    assert {d["email"] for d in seen} == set(RECIPIENTS)
    by_id = {d["id"]: d for d in seen}
    assert by_id[bounced.id]["bounced"] is True and by_id[bounced.id]["status"] == "bounced"
    assert by_id[bounced.id]["last_answer"] == {
        "code": 550,
        "text": "5.1.1 <r1@example.org>: no such user",
    }
    assert by_id[replied.id]["replied"] is True and by_id[replied.id]["bounced"] is False
    assert by_id[replied.id]["sent_at"] == "2026-12-01T09:30:00Z"
    assert by_id[replied.id]["message_id"] == replied.message_id
    assert by_id[rows[0].id]["replied"] is False and by_id[rows[0].id]["attempts"] == 0
    text = str(seen)
    assert "the letter itself" not in text and "We write" not in text
    assert not any(key in seen[0] for key in ("message_blob", "body", "html", "text"))


def test_the_status_filter_and_the_address_search(client: FlaskClient) -> None:
    campaign_id, rows = _launched()
    rows[3].status = DeliveryStatus.FAILED.value
    rows[5].status = DeliveryStatus.FAILED.value
    db.session.commit()
    token, _ = new_key(Role.VIEWER, ["campaigns:read"])
    address = f"/api/v1/campaigns/{campaign_id}/deliveries"
    failed = client.get(address, query_string={"status": "failed"}, headers=bearer(token))
    assert [d["email"] for d in failed.get_json()["items"]] == ["r3@example.org", "r5@example.org"]
    found = client.get(address, query_string={"q": "R4@"}, headers=bearer(token))
    assert [d["email"] for d in found.get_json()["items"]] == ["r4@example.org"]

    unknown = client.get(address, query_string={"status": "lost"}, headers=bearer(token))
    assert unknown.status_code == 422
    assert [e["field"] for e in unknown.get_json()["errors"]] == ["status"]
    tampered = client.get(
        address, query_string={"cursor": "eyJhZnRlciI6MH0.x"}, headers=bearer(token)
    )
    assert tampered.status_code == 400
    assert [e["field"] for e in tampered.get_json()["errors"]] == ["cursor"]
    assert (
        client.get("/api/v1/campaigns/2147483647/deliveries", headers=bearer(token)).status_code
        == 404
    )
    other, _ = new_key(Role.VIEWER, ["statements:read"])
    assert client.get(address, headers=bearer(other)).status_code == 403


def test_the_status_codes_are_the_ledgers() -> None:
    from typing import get_args

    from campaign.web.api.deliveries import DeliveryStatusCode

    assert set(get_args(DeliveryStatusCode)) == {s.value for s in DeliveryStatus}


def test_a_final_row_has_no_next_attempt_and_a_missing_campaign_is_named(
    client: FlaskClient,
) -> None:
    campaign_id, rows = _launched()
    later = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    rows[0].status, rows[0].next_attempt_at = DeliveryStatus.SENT.value, later
    rows[1].status, rows[1].next_attempt_at = DeliveryStatus.DEFERRED.value, later
    db.session.commit()
    token, _ = new_key(Role.VIEWER, ["campaigns:read"])
    items = client.get(
        f"/api/v1/campaigns/{campaign_id}/deliveries", headers=bearer(token)
    ).get_json()["items"]
    assert items[0]["status"] == "sent" and items[0]["next_attempt_at"] is None
    assert items[1]["next_attempt_at"] == "2026-12-01T10:00:00Z"
    missing = client.get("/api/v1/campaigns/999/deliveries", headers=bearer(token))
    assert missing.status_code == 404
    assert "campaign" in missing.get_json()["detail"]
