"""The restore hold: a restored copy launches, fires and sends nothing until an admin
confirms on the restore page; every staff page says so meanwhile (decision 0087)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import AuditEvent, Campaign, CampaignStatus, Delivery, Role
from campaign.models.schedule import RunOutcome
from campaign.scheduling.schedules import create_send_at
from campaign.scheduling.tick import tick
from campaign.services.backups import hold as holds
from campaign.services.sending import batches as sending
from campaign.services.sending import campaigns
from campaign.services.sending.campaigns import CampaignError
from tests.conftest import TEST_PASSWORD, make_user, sign_in
from tests.factories import CampaignFactory
from tests.pages import csrf_token

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

MADE = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def _campaign(**options: Any) -> Campaign:
    made: Any = CampaignFactory(**options)
    return made


def _hold() -> holds.RestoreHold:
    placed = holds.place_restore_hold(archive_created_at=MADE, archive_name="daily-2026-12-01.age")
    db.session.commit()
    return placed


def _deliveries(campaign: Campaign) -> list[str]:
    return sorted(
        db.session.scalars(select(Delivery.status).where(Delivery.campaign_id == campaign.id))
    )


def test_the_hold_pauses_sending_campaigns_and_turns_off_send_at_dates(app: Flask) -> None:
    sending_one = _campaign(name="Half sent", launched=True)
    scheduled = _campaign(name="For the summit")
    create_send_at(scheduled, "2030-06-01T09:00", "Europe/Paris", now=MADE)
    db.session.commit()

    placed = _hold()

    assert placed.paused_campaigns == [sending_one.id]
    assert placed.unscheduled_campaigns == [scheduled.id]
    assert sending_one.status == CampaignStatus.PAUSED.value
    assert scheduled.status == CampaignStatus.DRAFT.value and scheduled.send_at is None
    # Nothing fires at the summit's hour, even after the hold is lifted: a person decides.
    holds.release_restore_hold(None)
    db.session.commit()
    assert tick(datetime(2030, 6, 1, 7, 1, tzinfo=UTC)).lines == []
    assert _deliveries(scheduled) == []


def test_while_held_the_tick_fires_nothing_and_fires_once_released(app: Flask) -> None:
    _hold()
    campaign = _campaign(name="Scheduled on the copy")
    create_send_at(campaign, "2030-06-01T09:00", "Europe/Paris", now=MADE)
    db.session.commit()
    due = datetime(2030, 6, 1, 7, 1, tzinfo=UTC)

    assert tick(due).lines == []
    db.session.refresh(campaign)
    assert campaign.status == CampaignStatus.SCHEDULED.value and _deliveries(campaign) == []

    assert holds.release_restore_hold(make_user(Role.ADMIN, "boss@example.org"))
    db.session.commit()
    report = tick(due)
    assert report.count(RunOutcome.FIRED) == 1
    db.session.refresh(campaign)
    assert campaign.status == CampaignStatus.SENDING.value and _deliveries(campaign) == ["queued"]


def test_a_launch_is_refused_while_held_and_says_why(app: Flask) -> None:
    campaign = _campaign(name="Urgent appeal")
    _hold()
    with pytest.raises(CampaignError) as refused:
        campaigns.launch_campaign(campaign)
    assert "restored from a backup" in str(refused.value.message)
    assert campaign.status == CampaignStatus.DRAFT.value and _deliveries(campaign) == []


def test_a_send_job_sends_nothing_while_held(app: Flask, fault_smtp: Any) -> None:
    app.config.update(MAIL_SERVER=fault_smtp.host, MAIL_PORT=fault_smtp.port)
    campaign = _campaign(name="Set sending on the copy", launched=True)
    db.session.commit()
    # Held without the restore's pause: whatever set it sending, the job still sends nothing.
    _hold()
    campaign.status = CampaignStatus.SENDING.value
    db.session.commit()

    result = sending.send_batch(campaign.id, worker="test", commit=db.session.commit)

    assert result.claimed == 0 and "restored from a backup" in (result.stopped or "")
    assert fault_smtp.by_recipient() == {}
    assert _deliveries(campaign) == ["queued"]
    db.session.refresh(campaign)
    assert campaign.status == CampaignStatus.PAUSED.value
    assert not campaigns.resume_campaign(campaign)  # still held: no resume either


def test_the_restore_page_shows_the_hold_to_admins_only(app: Flask, client: FlaskClient) -> None:
    paused = _campaign(name="Half sent", launched=True)
    db.session.commit()
    _hold()
    sign_in(client, make_user(Role.SENDER, "sender@example.org"))
    # Every staff page says it; only admins get the link and the page.
    page = client.get("/contacts/").get_data(as_text=True)
    assert 'id="restore-hold-banner"' in page and "sends nothing until an administrator" in page
    assert "/privacy/restore/" not in page
    assert client.get("/privacy/restore/").status_code == 403
    assert client.post("/privacy/restore/release", data={"confirm": "yes"}).status_code == 403

    admin = app.test_client()
    sign_in(admin, make_user(Role.ADMIN, "admin@example.org"))
    page = admin.get("/privacy/restore/").get_data(as_text=True)
    assert "daily-2026-12-01.age" in page and "Half sent" in page
    assert f"/campaigns/{paused.id}" in page
    assert "Resume sending on this installation" in page


@pytest.mark.parametrize("csrf_enabled", [True])
def test_resuming_sending_needs_the_confirmation_and_is_audited(
    app: Flask, client: FlaskClient
) -> None:
    _hold()
    admin = make_user(Role.ADMIN, "admin@example.org")
    login = {"email": admin.email, "password": TEST_PASSWORD}
    assert client.post("/login", data={**login, "csrf_token": csrf_token(client, "/login")})
    assert client.post("/privacy/restore/release", data={"confirm": "yes"}).status_code == 400
    token = csrf_token(client, "/privacy/restore/")

    page = client.post(
        "/privacy/restore/release", data={"csrf_token": token}, follow_redirects=True
    ).get_data(as_text=True)
    assert "tick the box" in page and holds.sending_is_held()

    page = client.post(
        "/privacy/restore/release",
        data={"csrf_token": token, "confirm": "yes"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "Sending is no longer held" in page and 'id="not-held"' in page
    assert 'id="restore-hold-banner"' not in page
    assert not holds.sending_is_held()
    released = db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "backup.restore_release")
    )
    assert released is not None and released.actor_id == admin.id
    assert (db.session.scalar(select(func.count()).select_from(AuditEvent)) or 0) >= 2
