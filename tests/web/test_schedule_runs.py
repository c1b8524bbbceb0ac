"""The scheduler's record page: after downtime, what was skipped is shown in words, the
calendar points at it until an editor acknowledges it, and each role gets what it may."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from campaign.extensions import db
from campaign.models import Campaign, CampaignStatus, Role, Schedule, ScheduleRun
from campaign.models.schedule import RunOutcome, ScheduleKind
from campaign.scheduling.schedules import create_send_at
from campaign.scheduling.tick import tick
from tests.conftest import TEST_PASSWORD, make_user
from tests.factories import CampaignFactory, ContactFactory
from tests.pages import csrf_token

BODY = "{{ salutation }}\n\nWe write about the trial.\n\n{{ closing }}\n"
# The launch was set for 09:00 in Paris (07:00 UTC); the scheduler came back 3 days later.
SCHEDULED_AT = datetime(2030, 6, 26, 7, 0, tzinfo=UTC)
BACK_UP_AT = SCHEDULED_AT + timedelta(days=3, hours=2)


@pytest.fixture
def campaign(app: Flask) -> Campaign:
    made = CampaignFactory(
        name="Torture victims day",
        statement__title="Joint letter",
        statement__subject="On the anniversary",
        statement__body=BODY,
        recipients=[
            ContactFactory(given_name="Ana", family_name="Sample", email="ana@example.org")
        ],
        from_address="Office <office@example.org>",
        commit=True,
    )
    return made


@pytest.fixture
def downtime(campaign: Campaign) -> Campaign:
    """A send-at for 26 June 09:00 Paris, and a tick only three days after it."""
    create_send_at(
        campaign, "2030-06-26T09:00", "Europe/Paris", now=SCHEDULED_AT - timedelta(days=1)
    )
    db.session.commit()
    report = tick(now=BACK_UP_AT)
    assert report.count(RunOutcome.SKIPPED) == 1
    return campaign


def _get(client: FlaskClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return html.unescape(response.get_data(as_text=True))


def _failed_run(campaign: Campaign) -> ScheduleRun:
    schedule = Schedule(
        kind=ScheduleKind.YEARLY_CAMPAIGN.value,
        name="Yearly letter",
        campaign_id=campaign.id,
        timezone="Asia/Tashkent",
    )
    db.session.add(schedule)
    db.session.flush()
    run = ScheduleRun(
        schedule_id=schedule.id,
        due_at=BACK_UP_AT + timedelta(days=1),
        ran_at=BACK_UP_AT + timedelta(days=1),
        outcome=RunOutcome.FAILED.value,
        detail="not launched: the statement has no text in Russian",
    )
    db.session.add(run)
    db.session.commit()
    return run


def test_a_skipped_launch_after_three_days_down_is_on_the_record_in_words(
    client: FlaskClient, login: Any, downtime: Campaign
) -> None:
    login(Role.VIEWER)
    page = _get(client, "/schedules/runs")
    assert "Torture victims day" in page and "Send at a set time" in page
    # Due in the organisation's zone and in the schedule's own, how late, and that nothing
    # went out.
    assert '<time datetime="2030-06-26T07:00:00' in page
    assert "due 2030-06-26 09:00 Europe/Paris, 3 days late: not sent" in page
    assert 'data-outcome="skipped" class="outcome-rejected"' in page
    assert f'href="/campaigns/{downtime.id}"' in page
    db.session.refresh(downtime)
    assert downtime.status == CampaignStatus.DRAFT.value


def test_the_outcome_filter_keeps_only_that_outcome(
    client: FlaskClient, login: Any, downtime: Campaign
) -> None:
    _failed_run(downtime)
    login(Role.VIEWER)
    failed = _get(client, "/schedules/runs?outcome=failed")
    assert "the statement has no text in Russian" in failed
    assert "3 days late" not in failed
    # A failed run's due time is also shown in its schedule's zone (UTC+5).
    assert "Asia/Tashkent" in failed
    assert "Nothing has fired yet." in _get(client, "/schedules/runs?outcome=fired")
    # An unknown outcome shows everything rather than an error.
    every = _get(client, "/schedules/runs?outcome=nonsense")
    assert "3 days late" in every and "no text in Russian" in every
    # Newest first.
    assert every.index("no text in Russian") < every.index("3 days late")


def test_the_calendar_says_how_many_were_skipped_until_an_editor_acknowledges(
    client: FlaskClient, login: Any, downtime: Campaign
) -> None:
    _failed_run(downtime)
    login(Role.EDITOR)
    calendar = _get(client, "/calendar/")
    assert "2 scheduled fires were skipped or failed since" in calendar
    assert 'href="/schedules/runs"' in calendar

    response = client.post("/schedules/runs/acknowledge")
    assert response.status_code == 302
    assert "skipped or failed since" not in _get(client, "/calendar/")
    # The record itself keeps the rows.
    assert "3 days late" in _get(client, "/schedules/runs")

    # A later skip brings the banner back, counting only the new one.
    tick(now=BACK_UP_AT)  # nothing due: the acknowledged state holds
    run = _failed_run(downtime)
    assert run.id
    assert "1 scheduled fire was skipped or failed since" in _get(client, "/calendar/")


def test_a_viewer_reads_the_record_but_cannot_acknowledge(
    client: FlaskClient, login: Any, downtime: Campaign
) -> None:
    login(Role.VIEWER)
    page = _get(client, "/schedules/runs")
    assert 'id="acknowledge-runs"' not in page
    assert client.post("/schedules/runs/acknowledge").status_code == 403
    assert "1 scheduled fire was skipped or failed since" in _get(client, "/calendar/")


def test_signed_out_visitors_are_sent_to_the_login_page(
    client: FlaskClient, downtime: Campaign
) -> None:
    response = client.get("/schedules/runs")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("csrf_enabled", [True])
def test_acknowledging_needs_the_form_token(client: FlaskClient, downtime: Campaign) -> None:
    user = make_user(Role.EDITOR)
    login_form = {
        "email": user.email,
        "password": TEST_PASSWORD,
        "csrf_token": csrf_token(client, "/login"),
    }
    client.post("/login", data=login_form)
    assert client.post("/schedules/runs/acknowledge").status_code == 400
    assert "skipped or failed since" in _get(client, "/calendar/")
    form = {"csrf_token": csrf_token(client, "/schedules/runs")}
    assert client.post("/schedules/runs/acknowledge", data=form).status_code == 302
    assert "skipped or failed since" not in _get(client, "/calendar/")
