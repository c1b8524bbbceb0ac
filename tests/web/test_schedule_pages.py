"""The campaign's schedule page: send-at, yearly repeats and follow-up steps, by role, with
the services' errors shown next to their field."""

from __future__ import annotations

import html
import re
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Campaign, CampaignStatus, CampaignStep, Role, Schedule, ScheduleKind
from campaign.services import campaigns, lists, statements
from campaign.services.campaigns import AudienceSpec
from campaign.services.contacts import create_contact
from tests.conftest import TEST_PASSWORD, make_user

BODY = "{{ salutation }}\n\nWe write about the trial.\n\n{{ closing }}\n"
NEXT_YEAR = date.today().year + 1


@pytest.fixture
def csrf_enabled() -> bool:
    return False


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], csrf_enabled: bool) -> dict[str, Any]:
    return {**app_overrides, "WTF_CSRF_ENABLED": csrf_enabled}


@pytest.fixture
def campaign(app: Flask) -> Campaign:
    statement = statements.create_statement(
        "Joint letter", language="en", subject="On the anniversary", body=BODY
    )
    statements.create_statement(
        "Follow-up: joint letter", language="en", subject="Still no answer", body=BODY
    )
    press = lists.create_list("Press")
    person = create_contact(
        {"given_name": "Ana", "family_name": "Sample", "email": "ana@example.org"}
    )
    lists.add_contacts(press, [person.id])
    made = campaigns.create_campaign(
        statement,
        name="Torture victims day",
        audience=AudienceSpec((f"list:{press.id}",)),
        from_address="Office <office@example.org>",
    )
    db.session.commit()
    return made


def _page(client: FlaskClient, campaign: Campaign) -> str:
    response = client.get(f"/campaigns/{campaign.id}/schedule/")
    assert response.status_code == 200
    return html.unescape(response.get_data(as_text=True))


def _field_error(page: str, field: str) -> str:
    found = re.search(rf'id="e-{field}"[^>]*>([^<]*)<', page)
    assert found, f"no error shown next to {field}"
    return found.group(1)


def _statement_id(title: str) -> int:
    from campaign.models import Statement

    found = db.session.scalar(select(Statement.id).where(Statement.title == title))
    assert found is not None
    return int(found)


# --- roles -------------------------------------------------------------------------------


def test_a_viewer_reads_the_schedule_but_gets_no_forms_and_cannot_post(
    client: FlaskClient, login: Any, campaign: Campaign
) -> None:
    login(Role.VIEWER)
    page = _page(client, campaign)
    assert "Schedule and follow-ups" in page
    assert 'id="send-at-form"' not in page and 'id="step-form"' not in page
    form = {"date": f"{NEXT_YEAR}-06-26", "time": "09:00", "zone": "Europe/Paris"}
    assert client.post(f"/campaigns/{campaign.id}/schedule/send-at", data=form).status_code == 403


def test_an_editor_cannot_schedule_because_scheduling_launches_like_the_launch_button(
    client: FlaskClient, login: Any, campaign: Campaign
) -> None:
    login(Role.EDITOR)
    form = {"date": f"{NEXT_YEAR}-06-26", "time": "09:00", "zone": "Europe/Paris"}
    assert client.post(f"/campaigns/{campaign.id}/schedule/send-at", data=form).status_code == 403
    step = {"statement_id": "1", "delay_days": "14", "condition": "no_reply"}
    assert client.post(f"/campaigns/{campaign.id}/schedule/steps", data=step).status_code == 403
    db.session.refresh(campaign)
    assert campaign.status == CampaignStatus.DRAFT.value


# --- send-at ------------------------------------------------------------------------------


def test_a_sender_schedules_the_launch_in_paris_time_and_can_cancel_it(
    client: FlaskClient, login: Any, campaign: Campaign
) -> None:
    login(Role.SENDER)
    form = {"date": f"{NEXT_YEAR}-06-26", "time": "09:00", "zone": "Europe/Paris"}
    response = client.post(f"/campaigns/{campaign.id}/schedule/send-at", data=form)
    assert response.status_code == 302
    db.session.refresh(campaign)
    assert campaign.status == CampaignStatus.SCHEDULED.value
    assert campaign.send_at is not None
    # 09:00 in Paris in summer is 07:00 UTC.
    assert campaign.send_at.strftime("%Y-%m-%d %H:%M") == f"{NEXT_YEAR}-06-26 07:00"
    page = _page(client, campaign)
    assert f"26 June {NEXT_YEAR} at 09:00 Europe/Paris" in page
    # The campaign page links to it.
    show = client.get(f"/campaigns/{campaign.id}").get_data(as_text=True)
    assert f"/campaigns/{campaign.id}/schedule/" in show

    client.post(f"/campaigns/{campaign.id}/schedule/send-at/cancel")
    db.session.refresh(campaign)
    assert campaign.status == CampaignStatus.DRAFT.value and campaign.send_at is None


def test_a_zone_typed_by_hand_wins_over_the_list(
    client: FlaskClient, login: Any, campaign: Campaign
) -> None:
    login(Role.SENDER)
    form = {
        "date": f"{NEXT_YEAR}-06-26",
        "time": "09:00",
        "zone": "UTC",
        "zone_other": "Asia/Samarkand",
    }
    client.post(f"/campaigns/{campaign.id}/schedule/send-at", data=form)
    db.session.refresh(campaign)
    assert campaign.send_at is not None
    assert campaign.send_at.strftime("%H:%M") == "04:00"  # Samarkand is UTC+5


def _last_sunday_of_march(year: int) -> date:
    day = date(year, 3, 31)
    return day - timedelta(days=(day.weekday() + 1) % 7)


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"zone": "Mars/Olympus"}, "zone", "'Mars/Olympus' is not a known time zone"),
        ({"date": "2001-06-26"}, "date", "past"),
        (
            {"date": _last_sunday_of_march(NEXT_YEAR).isoformat(), "time": "02:30"},
            "date",
            "does not exist in Europe/Paris: clocks go from 02:00 to 03:00",
        ),
    ],
)
def test_bad_send_at_input_is_explained_next_to_its_field(
    client: FlaskClient,
    login: Any,
    campaign: Campaign,
    changes: dict[str, str],
    field: str,
    words: str,
) -> None:
    login(Role.SENDER)
    form = {"date": f"{NEXT_YEAR}-06-26", "time": "09:00", "zone": "Europe/Paris", **changes}
    response = client.post(f"/campaigns/{campaign.id}/schedule/send-at", data=form)
    assert response.status_code == 422
    message = _field_error(html.unescape(response.get_data(as_text=True)), field)
    assert words in message
    db.session.refresh(campaign)
    assert campaign.status == CampaignStatus.DRAFT.value


# --- yearly and follow-ups ------------------------------------------------------------------


def test_a_yearly_campaign_with_a_follow_up_reads_in_plain_words(
    client: FlaskClient, login: Any, campaign: Campaign
) -> None:
    login(Role.SENDER)
    response = client.post(
        f"/campaigns/{campaign.id}/schedule/yearly",
        data={"day": "26", "month": "6", "time": "09:00", "zone": "Europe/Brussels"},
    )
    assert response.status_code == 302
    response = client.post(
        f"/campaigns/{campaign.id}/schedule/steps",
        data={
            "statement_id": str(_statement_id("Follow-up: joint letter")),
            "delay_days": "14",
            "condition": "no_reply",
        },
    )
    assert response.status_code == 302
    page = _page(client, campaign)
    assert "Every year on 26 June at 09:00 Europe/Brussels" in page
    assert (
        "14 days after the letter goes out, recipients who have not replied will receive "
        "‘Follow-up: joint letter’" in page
    )
    yearly = db.session.scalars(
        select(Schedule).where(Schedule.kind == ScheduleKind.YEARLY_CAMPAIGN.value)
    ).all()
    assert len(yearly) == 1


def test_a_yearly_29_february_says_when_it_fires_in_other_years(
    client: FlaskClient, login: Any, campaign: Campaign
) -> None:
    login(Role.SENDER)
    client.post(
        f"/campaigns/{campaign.id}/schedule/yearly",
        data={"day": "29", "month": "2", "time": "09:00", "zone": "UTC"},
    )
    assert "fires on 28 February in years without 29 February" in _page(client, campaign)


def test_a_yearly_date_that_does_not_exist_is_refused(
    client: FlaskClient, login: Any, campaign: Campaign
) -> None:
    login(Role.SENDER)
    response = client.post(
        f"/campaigns/{campaign.id}/schedule/yearly",
        data={"day": "31", "month": "4", "time": "09:00", "zone": "UTC"},
    )
    assert response.status_code == 422
    page = html.unescape(response.get_data(as_text=True))
    assert "April has no day 31" in _field_error(page, "day")


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"delay_days": "0"}, "delay_days", "at least 1 day after the previous letter"),
        ({"delay_days": "two"}, "delay_days", "'two' is not a number of days"),
        ({"statement_id": "9999"}, "statement", "no longer exists"),
        ({"condition": "opened_no_reply"}, "condition", "needs open tracking"),
    ],
)
def test_bad_follow_up_input_is_explained_next_to_its_field(
    client: FlaskClient,
    login: Any,
    campaign: Campaign,
    changes: dict[str, str],
    field: str,
    words: str,
) -> None:
    login(Role.SENDER)
    form = {
        "statement_id": str(_statement_id("Follow-up: joint letter")),
        "delay_days": "14",
        "condition": "no_reply",
        **changes,
    }
    response = client.post(f"/campaigns/{campaign.id}/schedule/steps", data=form)
    assert response.status_code == 422
    assert words in _field_error(html.unescape(response.get_data(as_text=True)), field)
    assert db.session.scalars(select(CampaignStep)).all() == []


# --- CSRF -----------------------------------------------------------------------------------


def _token(client: FlaskClient, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert found
    return found.group(1)


@pytest.mark.parametrize("csrf_enabled", [True])
def test_schedule_forms_need_the_csrf_token(
    client: FlaskClient, app: Flask, campaign: Campaign
) -> None:
    user = make_user(Role.SENDER)
    client.post(
        "/login",
        data={
            "email": user.email,
            "password": TEST_PASSWORD,
            "csrf_token": _token(client, "/login"),
        },
    )
    form = {"date": f"{NEXT_YEAR}-06-26", "time": "09:00", "zone": "Europe/Paris"}
    url = f"/campaigns/{campaign.id}/schedule/send-at"
    assert client.post(url, data=form).status_code == 400
    db.session.refresh(campaign)
    assert campaign.status == CampaignStatus.DRAFT.value
    token = _token(client, f"/campaigns/{campaign.id}/schedule/")
    assert client.post(url, data={**form, "csrf_token": token}).status_code == 302
    db.session.refresh(campaign)
    assert campaign.status == CampaignStatus.SCHEDULED.value
