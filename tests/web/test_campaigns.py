"""Campaign pages: the builder, launching by role, progress figures, the ledger and its evidence."""

from __future__ import annotations

import hashlib
import html
import re
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import (
    AuditEvent,
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    Role,
    Suppression,
)
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.sending import campaigns
from campaign.services.sending.campaigns import AudienceSpec
from campaign.services.statements import statements
from tests.factories import CampaignFactory
from tests.launching import confirm_launch
from tests.pages import element_text

BODY = "{{ salutation }}\n\nWe write about the trial.\n\n{{ closing }}\n\nAnna Sample\n"


@pytest.fixture
def setup(app: Flask) -> dict[str, Any]:
    statement = statements.create_statement(
        "Joint letter", language="en", subject="Ahead of the summit", body=BODY
    )
    press = lists.create_list("Press")
    partners = lists.create_list("Partners")
    people = [
        create_contact(
            {"given_name": f"Person{i}", "family_name": "Sample", "email": f"p{i}@example.org"}
        )
        for i in range(5)
    ]
    lists.add_contacts(press, [p.id for p in people])
    lists.add_contacts(partners, [people[0].id])
    db.session.add(
        Suppression(email_key="p1@example.org", email="p1@example.org", reason="unsubscribed")
    )
    db.session.commit()
    return {"statement": statement, "press": press, "partners": partners, "people": people}


def _form(setup: dict[str, Any], **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Summit letter",
        "statement_id": str(setup["statement"].id),
        "include": [f"list:{setup['press'].id}"],
        "exclude": [],
        "from_address": "Office <office@example.org>",
        "reply_to": "",
        "smtp_account_id": "",
        "has_list_unsubscribe": "1",
    }
    data.update(changes)
    return data


def _draft(setup: dict[str, Any], **changes: Any) -> Campaign:
    """The setup's statement to its press list, committed."""
    campaign: Campaign = CampaignFactory(
        statement=setup["statement"],
        contact_list=setup["press"],
        name="Summit letter",
        from_address="Office <office@example.org>",
        commit=True,
        **changes,
    )
    return campaign


def _rows(campaign_id: int) -> list[Delivery]:
    return list(
        db.session.scalars(
            select(Delivery).where(Delivery.campaign_id == campaign_id).order_by(Delivery.email)
        )
    )


# --- the builder ---------------------------------------------------------------------------


def test_an_editor_builds_a_draft_from_the_form(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    login(Role.EDITOR)
    response = client.post(
        "/campaigns/new",
        data=_form(setup, exclude=[f"list:{setup['partners'].id}"], is_pdf_attached="1"),
    )
    assert response.status_code == 302
    campaign = db.session.scalars(select(Campaign)).one()
    assert response.headers["Location"].endswith(f"/campaigns/{campaign.id}")
    assert campaign.status == CampaignStatus.DRAFT
    assert campaign.audience == {
        "include": [f"list:{setup['press'].id}"],
        "exclude": [f"list:{setup['partners'].id}"],
    }
    assert campaign.is_pdf_attached and campaign.has_list_unsubscribe
    assert not campaign.is_open_tracking and not campaign.is_click_tracking

    page = client.get(f"/campaigns/{campaign.id}").get_data(as_text=True)
    # Five in the list, one excluded (p0), one suppressed (p1): three written to.
    assert "3 recipients will be written to (4 in the audience, 1 suppressed)" in element_text(
        page, "recipient-count"
    )
    # An editor builds; launching is for senders.
    assert 'id="launch-form"' not in page and "Launching needs the sender role" in page


def test_a_line_break_in_from_is_refused_next_to_the_field_and_the_input_is_kept(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    login(Role.EDITOR)
    response = client.post(
        "/campaigns/new",
        data=_form(
            setup,
            name="Kept name",
            from_address="Office <office@example.org>\r\nBcc: spy@evil.test",
            reply_to="replies@example.org",
        ),
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "From" in element_text(page, "e-from_address")
    assert 'aria-invalid="true" aria-describedby="e-from_address"' in page
    assert 'value="Kept name"' in page
    assert 'value="replies@example.org"' in page
    assert f'value="list:{setup["press"].id}" checked' in page
    assert db.session.scalar(select(func.count(Campaign.id))) == 0


def test_a_missing_statement_and_a_deleted_list_are_named(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    login(Role.EDITOR)
    page = client.post("/campaigns/new", data=_form(setup, statement_id="")).get_data(as_text=True)
    assert "choose the statement" in element_text(page, "e-statement_id")
    page = client.post("/campaigns/new", data=_form(setup, include=["list:999"])).get_data(
        as_text=True
    )
    assert "'list:999' is not a list or segment" in element_text(page, "e-include")


def test_odd_ids_and_pages_are_named_or_ignored_not_a_server_error(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    login(Role.SENDER)
    huge = "9" * 25  # past SQLite's 64-bit integers
    for raw in ("²", huge):
        page = client.post("/campaigns/new", data=_form(setup, statement_id=raw))
        assert page.status_code == 422
        assert "choose the statement" in element_text(page.get_data(as_text=True), "e-statement_id")
        page = client.post("/campaigns/new", data=_form(setup, smtp_account_id=raw))
        assert page.status_code == 422
        assert "that account no longer exists" in element_text(
            page.get_data(as_text=True), "e-smtp_account_id"
        )
        counted = client.post("/campaigns/count", data={"include": [f"list:{raw}"]})
        assert counted.status_code == 422
        assert "is not a list or segment" in counted.get_json()["error"]
        assert client.get(f"/campaigns/new?statement={raw}").status_code == 200
        assert client.get(f"/suppressions/?page={raw}").status_code == 200
    campaign = _draft(setup)
    assert client.get(f"/campaigns/{campaign.id}/deliveries?page=²").status_code == 200


def test_the_live_count_names_contacts_suppressed_and_those_written_to(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    login(Role.EDITOR)
    answer = client.post(
        "/campaigns/count",
        data={
            "include": [f"list:{setup['press'].id}"],
            "exclude": [f"list:{setup['partners'].id}"],
        },
    ).get_json()
    assert answer == {
        "total": 4,
        "suppressed": 1,
        "sendable": 3,
        "text": "4 contacts, 1 suppressed, 3 will be written to",
    }
    refused = client.post("/campaigns/count", data={"include": ["segment:999"]})
    assert refused.status_code == 422
    assert refused.get_json()["field"] == "include"


def test_a_launched_campaign_can_no_longer_be_edited(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    campaign = _draft(setup)
    campaigns.launch_campaign(campaign)
    db.session.commit()
    login(Role.EDITOR)
    response = client.post(f"/campaigns/{campaign.id}/edit", data=_form(setup, name="Changed"))
    assert response.status_code == 302
    assert db.session.get(Campaign, campaign.id).name == "Summit letter"


def test_the_statement_page_offers_a_campaign_with_the_statement_chosen(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    login(Role.EDITOR)
    statement_id = setup["statement"].id
    page = client.get(f"/statements/{statement_id}").get_data(as_text=True)
    assert f'href="/campaigns/new?statement={statement_id}"' in page
    form = client.get(f"/campaigns/new?statement={statement_id}").get_data(as_text=True)
    assert f'<option value="{statement_id}" selected>' in form
    assert 'value="Joint letter"' in form


# --- launching -----------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR])
def test_viewers_and_editors_cannot_launch(
    client: FlaskClient, login: Any, setup: dict[str, Any], role: Role
) -> None:
    campaign = _draft(setup)
    login(role)
    assert client.post(f"/campaigns/{campaign.id}/launch").status_code == 403
    assert client.post(f"/campaigns/{campaign.id}/cancel").status_code == 403
    assert _rows(campaign.id) == []
    assert db.session.get(Campaign, campaign.id).status == CampaignStatus.DRAFT


def test_a_sender_launches_once_and_a_second_launch_changes_nothing(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    campaign = _draft(setup)
    login(Role.SENDER)
    page = client.get(f"/campaigns/{campaign.id}").get_data(as_text=True)
    assert "Review and launch: 4 recipients" in page

    first = confirm_launch(client, campaign.id)
    assert "Campaign launched" in first.get_data(as_text=True)
    rows = _rows(campaign.id)
    assert len(rows) == 5
    assert [r.status for r in rows if r.email == "p1@example.org"] == ["suppressed"]
    message_ids = {r.id: r.message_id for r in rows}

    second = client.post(
        f"/campaigns/{campaign.id}/launch", data={"confirm": "1"}, follow_redirects=True
    )
    assert "already launched" in second.get_data(as_text=True)
    assert {r.id: r.message_id for r in _rows(campaign.id)} == message_ids
    assert db.session.get(Campaign, campaign.id).status == CampaignStatus.SENDING


def test_pre_send_errors_need_the_override_and_a_reason_which_is_audited(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    # The service refuses a line break in a name; an older import or a direct edit may not.
    setup["people"][2].family_name = "Injected\r\nBcc: everyone@example.org"
    db.session.commit()
    campaign = _draft(setup)
    login(Role.SENDER)
    page = client.get(f"/campaigns/{campaign.id}").get_data(as_text=True)
    assert element_text(page, "check-blocked") == "1"
    assert 'name="override"' in client.get(f"/campaigns/{campaign.id}/launch").get_data(
        as_text=True
    )

    refused = confirm_launch(client, campaign.id)
    assert "Not launched" in refused.get_data(as_text=True)
    no_reason = confirm_launch(client, campaign.id, override="1")
    assert "say why" in no_reason.get_data(as_text=True)
    assert _rows(campaign.id) == []

    confirm_launch(
        client, campaign.id, override="1", override_reason="the minister's office asked today"
    )
    launched = db.session.get(Campaign, campaign.id)
    assert launched.status == CampaignStatus.SENDING and launched.is_presend_overridden
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "campaign.presend_override")
    ).one()
    assert event.detail["reason"] == "the minister's office asked today"


def test_a_clean_campaign_shows_no_override(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    campaign = _draft(setup)
    login(Role.SENDER)
    page = client.get(f"/campaigns/{campaign.id}/launch").get_data(as_text=True)
    assert 'id="launch-form"' in page
    assert 'name="override"' not in page


def test_an_empty_audience_cannot_be_launched(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    empty = lists.create_list("Empty")
    db.session.commit()
    campaign = campaigns.create_campaign(
        setup["statement"], audience=AudienceSpec((f"list:{empty.id}",))
    )
    db.session.commit()
    login(Role.SENDER)
    page = client.get(f"/campaigns/{campaign.id}").get_data(as_text=True)
    assert "hold no contacts" in page
    assert 'id="launch-link"' not in page and "Correct the errors above to launch" in page
    confirmation = client.get(f"/campaigns/{campaign.id}/launch").get_data(as_text=True)
    assert "hold no contacts" in confirmation and 'id="launch-form"' not in confirmation
    client.post(f"/campaigns/{campaign.id}/launch", data={"confirm": "1"})
    assert db.session.get(Campaign, campaign.id).status == CampaignStatus.DRAFT


def test_pause_resume_and_cancel_after_confirmation(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    campaign = _draft(setup)
    campaigns.launch_campaign(campaign)
    db.session.commit()
    login(Role.SENDER)
    url = f"/campaigns/{campaign.id}"
    client.post(f"{url}/pause")
    assert db.session.get(Campaign, campaign.id).status == CampaignStatus.PAUSED
    page = client.get(url).get_data(as_text=True)
    assert "paused by staff" in element_text(page, "p-reason")
    client.post(f"{url}/resume")
    assert db.session.get(Campaign, campaign.id).status == CampaignStatus.SENDING

    confirm = client.get(f"{url}/cancel").get_data(as_text=True)
    assert "The 4 not yet written to will not be" in html.unescape(re.sub(r"<[^>]+>", "", confirm))
    assert db.session.get(Campaign, campaign.id).status == CampaignStatus.SENDING
    client.post(f"{url}/cancel")
    assert db.session.get(Campaign, campaign.id).status == CampaignStatus.CANCELLED
    assert {r.status for r in _rows(campaign.id)} == {"cancelled", "suppressed"}


# --- progress ------------------------------------------------------------------------------


def _set(campaign_id: int, email: str, status: DeliveryStatus, **values: Any) -> Delivery:
    row = db.session.scalars(
        select(Delivery).where(Delivery.campaign_id == campaign_id, Delivery.email == email)
    ).one()
    row.status = status.value
    for key, value in values.items():
        setattr(row, key, value)
    return row


def test_progress_figures_match_the_ledger(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    extra = [create_contact({"family_name": "X", "email": f"x{i}@example.org"}) for i in range(3)]
    lists.add_contacts(setup["press"], [c.id for c in extra])
    campaign = _draft(setup)
    campaigns.launch_campaign(campaign)
    now = datetime.now(UTC)
    campaign.launched_at = now - timedelta(minutes=5)
    _set(campaign.id, "p0@example.org", DeliveryStatus.SENT, sent_at=now - timedelta(seconds=5))
    _set(campaign.id, "p2@example.org", DeliveryStatus.SENT, sent_at=now - timedelta(seconds=10))
    _set(campaign.id, "p3@example.org", DeliveryStatus.SENT, sent_at=now - timedelta(hours=1))
    _set(campaign.id, "p4@example.org", DeliveryStatus.BOUNCED, reason="hard_bounce")
    _set(campaign.id, "x0@example.org", DeliveryStatus.FAILED, reason="rejected")
    _set(campaign.id, "x1@example.org", DeliveryStatus.DEFERRED)
    _set(campaign.id, "x2@example.org", DeliveryStatus.IN_DOUBT)
    db.session.commit()

    login(Role.VIEWER)
    figures = client.get(f"/campaigns/{campaign.id}/progress").get_json()
    assert figures["total"] == 8
    assert (figures["sent"], figures["failed"], figures["suppressed"]) == (3, 1, 1)
    assert figures["bounced"] == 1
    assert (figures["deferred"], figures["in_doubt"], figures["remaining"]) == (1, 1, 2)
    assert figures["processed"] == 6 and figures["percent"] == 75
    # Two sent in the last 30 s: 2/30 per second, 4 per minute; two left at that pace: 30 s.
    assert figures["rate_per_minute"] == 4.0
    assert figures["eta_seconds"] == 30
    assert figures["status"] == "sending" and figures["is_ended"] is False
    assert figures["counts"]["bounced"] == 1

    page = client.get(f"/campaigns/{campaign.id}").get_data(as_text=True)
    assert re.search(r'<progress id="p-bar" max="8" value="6"', page)
    assert re.search(r'<dd data-figure="remaining">2</dd>', page)
    assert "campaign-progress.js" in page


def test_a_finished_campaign_says_so_and_stops_polling(
    client: FlaskClient, login: Any, setup: dict[str, Any]
) -> None:
    campaign = _draft(setup)
    campaigns.launch_campaign(campaign)
    campaigns.cancel_campaign(campaign)
    db.session.commit()
    login(Role.VIEWER)
    figures = client.get(f"/campaigns/{campaign.id}/progress").get_json()
    assert figures["is_ended"] is True and figures["remaining"] == 0
    page = client.get(f"/campaigns/{campaign.id}").get_data(as_text=True)
    assert 'data-ended="true"' in page
    assert 'id="pause-button"' not in page  # a viewer has no buttons at all


# --- the ledger and the evidence -----------------------------------------------------------


@pytest.fixture
def launched(setup: dict[str, Any]) -> Campaign:
    campaign = _draft(setup)
    campaigns.launch_campaign(campaign)
    db.session.commit()
    return campaign


def test_the_ledger_filters_by_status_and_address(
    client: FlaskClient, login: Any, launched: Campaign
) -> None:
    _set(launched.id, "p0@example.org", DeliveryStatus.SENT, sent_at=datetime.now(UTC))
    _set(
        launched.id,
        "p2@example.org",
        DeliveryStatus.BOUNCED,
        last_code=550,
        last_reply="5.1.1 <p2@example.org>: user unknown",
        reason="hard_bounce",
        attempts=1,
    )
    db.session.commit()
    login(Role.VIEWER)
    url = f"/campaigns/{launched.id}/deliveries"
    page = client.get(url).get_data(as_text=True)
    assert all(f"p{i}@example.org" in page for i in range(5))
    assert "Bounced (1)" in page and "Queued (2)" in page and "Suppressed (1)" in page
    # A viewer sees the ledger, but not the messages themselves.
    assert f"/campaigns/{launched.id}/deliveries/" not in page

    bounced = client.get(f"{url}?status=bounced").get_data(as_text=True)
    assert "p2@example.org" in bounced and "p0@example.org" not in bounced
    assert "user unknown" in bounced and "Hard bounce" in bounced and "hard_bounce" not in bounced

    found = client.get(f"{url}?q=P3@EXAMPLE").get_data(as_text=True)
    assert "p3@example.org" in found and "p4@example.org" not in found
    # % is a character to look for, not a wildcard.
    assert "No recipient matches" in client.get(f"{url}?q=%25").get_data(as_text=True)


def test_the_ledger_is_paginated_by_fifty(app: Flask, client: FlaskClient, login: Any) -> None:
    statement = statements.create_statement("Big", language="en", subject="S", body=BODY)
    big = lists.create_list("Big")
    ids = [
        create_contact({"family_name": "X", "email": f"r{i:03d}@example.org"}).id
        for i in range(120)
    ]
    lists.add_contacts(big, ids)
    campaign = campaigns.create_campaign(statement, audience=AudienceSpec((f"list:{big.id}",)))
    campaigns.launch_campaign(campaign)
    db.session.commit()
    login(Role.VIEWER)
    url = f"/campaigns/{campaign.id}/deliveries"
    first = client.get(url).get_data(as_text=True)
    assert first.count('<tr class="delivery-') == 50
    assert "Page 1 of 3" in first and "r000@" in first and "r050@" not in first
    last = client.get(f"{url}?page=3").get_data(as_text=True)
    assert last.count('<tr class="delivery-') == 20 and "r119@" in last
    assert "Page 3 of 3" in client.get(f"{url}?page=99").get_data(as_text=True)


SENT_BYTES = (
    b"From: Office <office@example.org>\r\n"
    b"To: p0@example.org\r\n"
    b"Subject: Ahead of the summit\r\n"
    b"Message-ID: <fixed@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Dear Person0 Sample,\r\n\r\n<script>alert(1)</script> We write about the trial.\r\n"
)


def test_the_evidence_shows_the_stored_bytes_verified_and_escaped(
    client: FlaskClient, login: Any, launched: Campaign
) -> None:
    row = _set(
        launched.id,
        "p0@example.org",
        DeliveryStatus.SENT,
        sent_at=datetime.now(UTC),
        message_blob=zlib.compress(SENT_BYTES),
        message_sha256=hashlib.sha256(SENT_BYTES).hexdigest(),
    )
    db.session.commit()
    url = f"/campaigns/{launched.id}/deliveries/{row.id}"

    login(Role.SENDER)
    page = client.get(url).get_data(as_text=True)
    assert element_text(page, "message-id") == row.message_id
    assert element_text(page, "message-sha256") == hashlib.sha256(SENT_BYTES).hexdigest()
    assert element_text(page, "evidence-verified").startswith("Verified")
    assert "We write about the trial." in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Ahead of the summit" in element_text(page, "evidence-headers")

    raw = client.get(f"{url}/raw")
    assert raw.data == SENT_BYTES
    assert raw.headers["Content-Disposition"].startswith("attachment;")
    assert raw.mimetype == "message/rfc822"


def test_a_changed_stored_copy_is_flagged(
    client: FlaskClient, login: Any, launched: Campaign
) -> None:
    row = _set(
        launched.id,
        "p0@example.org",
        DeliveryStatus.SENT,
        message_blob=zlib.compress(SENT_BYTES.replace(b"trial", b"TRIAL")),
        message_sha256=hashlib.sha256(SENT_BYTES).hexdigest(),
    )
    db.session.commit()
    login(Role.SENDER)
    page = client.get(f"/campaigns/{launched.id}/deliveries/{row.id}").get_data(as_text=True)
    assert "do not match" in element_text(page, "evidence-verified")


def test_evidence_is_for_senders_and_says_why_nothing_is_stored(
    client: FlaskClient, login: Any, launched: Campaign
) -> None:
    queued = _rows(launched.id)[0]
    hashed = _set(launched.id, "p3@example.org", DeliveryStatus.SENT, message_sha256="ab" * 32)
    db.session.commit()
    login(Role.VIEWER)
    url = f"/campaigns/{launched.id}/deliveries/{queued.id}"
    assert client.get(url).status_code == 403
    assert client.get(f"{url}/raw").status_code == 403

    client.post("/logout")
    login(Role.SENDER)
    page = client.get(url).get_data(as_text=True)
    assert "Not sent yet" in element_text(page, "evidence-missing")
    assert client.get(f"{url}/raw").status_code == 404
    page = client.get(f"/campaigns/{launched.id}/deliveries/{hashed.id}").get_data(as_text=True)
    assert "Only the SHA-256" in element_text(page, "evidence-missing")


def test_a_delivery_of_another_campaign_is_not_found(
    client: FlaskClient, login: Any, launched: Campaign, setup: dict[str, Any]
) -> None:
    other = _draft(setup)
    row = _rows(launched.id)[0]
    login(Role.SENDER)
    assert client.get(f"/campaigns/{other.id}/deliveries/{row.id}").status_code == 404


def test_the_list_shows_status_and_sent_of_total(
    client: FlaskClient, login: Any, launched: Campaign, setup: dict[str, Any]
) -> None:
    _set(launched.id, "p0@example.org", DeliveryStatus.SENT, sent_at=datetime.now(UTC))
    db.session.commit()
    draft = _draft(setup)
    draft.name = "Second letter"
    db.session.commit()
    login(Role.VIEWER)
    page = client.get("/campaigns/").get_data(as_text=True)
    assert "1 / 5" in page and "Second letter" in page and "not launched" in page
    assert 'id="new-campaign"' not in page  # a viewer cannot build one
