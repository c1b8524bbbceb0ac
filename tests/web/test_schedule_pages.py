"""The campaign's schedule page: send-at, yearly repeats and follow-up steps, by role, with
the services' errors shown next to their field."""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from campaign.extensions import db
from campaign.models import (
    Campaign,
    CampaignStatus,
    CampaignStep,
    Delivery,
    DeliveryStatus,
    Role,
    Schedule,
    ScheduleKind,
)
from campaign.scheduling.tick import tick
from campaign.services.schedules import cases
from campaign.services.sending import campaigns, followups
from campaign.services.statements import statements
from tests.conftest import TEST_PASSWORD, make_user
from tests.factories import CampaignFactory, ContactFactory
from tests.pages import csrf_token

BODY = "{{ salutation }}\n\nWe write about the trial.\n\n{{ closing }}\n"
NEXT_YEAR = date.today().year + 1


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
    )
    statements.create_statement(
        "Follow-up: joint letter", language="en", subject="Still no answer", body=BODY
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
        ({"subject": "Re: {{ contact.family_name"}, "subject", "Subject:"),
        ({"signatories_from": "everyone"}, "signatories_from", "not a choice"),
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
            "csrf_token": csrf_token(client, "/login"),
        },
    )
    form = {"date": f"{NEXT_YEAR}-06-26", "time": "09:00", "zone": "Europe/Paris"}
    url = f"/campaigns/{campaign.id}/schedule/send-at"
    assert client.post(url, data=form).status_code == 400
    db.session.refresh(campaign)
    assert campaign.status == CampaignStatus.DRAFT.value
    token = csrf_token(client, f"/campaigns/{campaign.id}/schedule/")
    assert client.post(url, data={**form, "csrf_token": token}).status_code == 302
    db.session.refresh(campaign)
    assert campaign.status == CampaignStatus.SCHEDULED.value


# --- editing, deleting and re-arming follow-ups (decision 0025) -----------------------------


def _add_step(
    client: FlaskClient, campaign: Campaign, days: str = "14", statement_id: int | None = None
) -> CampaignStep:
    response = client.post(
        f"/campaigns/{campaign.id}/schedule/steps",
        data={
            "statement_id": str(statement_id or _statement_id("Follow-up: joint letter")),
            "delay_days": days,
            "condition": "no_reply",
        },
    )
    assert response.status_code == 302
    step = db.session.scalars(select(CampaignStep).order_by(CampaignStep.id.desc())).first()
    assert step is not None
    return step


def _calendar_list(client: FlaskClient) -> str:
    response = client.get("/calendar/?view=list")
    assert response.status_code == 200
    page = html.unescape(response.get_data(as_text=True))
    return page[page.index('id="calendar-list"') :]


def _launched_long_ago(campaign: Campaign, days: int) -> None:
    """Launch the campaign `days` days ago, its letters sent then."""
    launched = datetime.now(UTC) - timedelta(days=days)
    assert campaigns.launch_campaign(campaign, at=launched)
    db.session.execute(
        update(Delivery)
        .where(Delivery.campaign_id == campaign.id)
        .values(status=DeliveryStatus.SENT.value, sent_at=launched)
    )
    db.session.commit()


def test_a_sender_edits_then_deletes_a_follow_up_and_the_calendar_follows(
    client: FlaskClient, login: Any, campaign: Campaign
) -> None:
    login(Role.SENDER)
    client.post(
        f"/campaigns/{campaign.id}/schedule/yearly",
        data={"day": "26", "month": "6", "time": "09:00", "zone": "Europe/Brussels"},
    )
    step = _add_step(client, campaign)
    assert "Torture victims day: follow-up 1 to recipients who have not replied" in (
        _calendar_list(client)
    )
    response = client.post(
        f"/campaigns/{campaign.id}/schedule/steps/{step.id}/edit",
        data={
            "statement_id": str(_statement_id("Joint letter")),
            "delay_days": "10",
            "condition": "no_reply_no_bounce",
        },
    )
    assert response.status_code == 302
    page = _page(client, campaign)
    assert (
        "10 days after the letter goes out, recipients who have not replied and whose letter "
        "did not bounce will receive ‘Joint letter’" in page
    )
    assert "Torture victims day: follow-up 1 to recipients who have not replied and whose" in (
        _calendar_list(client)
    )

    response = client.post(f"/campaigns/{campaign.id}/schedule/steps/{step.id}/delete")
    assert response.status_code == 302
    assert "No follow-ups." in _page(client, campaign)
    assert "follow-up 1" not in _calendar_list(client)
    assert (
        db.session.scalars(
            select(Schedule).where(Schedule.kind == ScheduleKind.FOLLOW_UP.value)
        ).all()
        == []
    )


def test_a_bad_edit_is_explained_next_to_the_step_field_with_the_values_kept(
    client: FlaskClient, login: Any, campaign: Campaign
) -> None:
    login(Role.SENDER)
    step = _add_step(client, campaign)
    response = client.post(
        f"/campaigns/{campaign.id}/schedule/steps/{step.id}/edit",
        data={
            "statement_id": str(_statement_id("Follow-up: joint letter")),
            "delay_days": "0",
            "condition": "no_reply",
        },
    )
    assert response.status_code == 422
    page = html.unescape(response.get_data(as_text=True))
    assert "at least 1 day" in _field_error(page, f"step-{step.id}-delay_days")
    assert re.search(rf'id="step-{step.id}-days"[^>]*value="0"', page)
    # The add form below stays clean.
    assert 'id="e-delay_days"' not in page
    db.session.refresh(step)
    assert step.delay_days == 14


def test_a_step_that_went_out_says_so_and_refuses_changes(
    client: FlaskClient, login: Any, campaign: Campaign
) -> None:
    login(Role.SENDER)
    _launched_long_ago(campaign, days=3)
    step = _add_step(client, campaign, days="1")
    schedule = followups.schedule_of(step)
    assert schedule is not None and schedule.next_run_at is not None
    followups.fire_follow_up(schedule, schedule.next_run_at, datetime.now(UTC))
    db.session.commit()

    page = _page(client, campaign)
    assert "Already sent (1 letter in the record)" in page
    assert f'id="step-{step.id}-form"' not in page
    for action in ("edit", "delete"):
        response = client.post(
            f"/campaigns/{campaign.id}/schedule/steps/{step.id}/{action}",
            data={"statement_id": "1", "delay_days": "5", "condition": "no_reply"},
        )
        assert response.status_code == 422
        message = _field_error(
            html.unescape(response.get_data(as_text=True)), f"step-{step.id}-step"
        )
        assert "has already gone out" in message
    assert db.session.get(CampaignStep, step.id) is not None


def test_send_now_re_arms_a_failed_follow_up_and_the_tick_sends_it_once(
    client: FlaskClient, login: Any, campaign: Campaign
) -> None:
    login(Role.SENDER)
    _launched_long_ago(campaign, days=30)
    doomed = statements.create_statement(
        "Doomed", language="en", subject="D", body="{{ salutation }}\n\nX\n\n{{ closing }}\n"
    )
    db.session.commit()
    step = _add_step(client, campaign, statement_id=doomed.id)
    statements.delete_statement(doomed)
    db.session.commit()
    assert "Send this follow-up now" not in _page(client, campaign)
    now = datetime.now(UTC)
    assert tick(now).summary == "0 fired, 0 skipped, 1 failed"
    page = _page(client, campaign)
    assert "Not sent: the fire due on" in page and "its statement was deleted" in page
    assert "Send this follow-up now" in page

    form = {
        "statement_id": str(_statement_id("Follow-up: joint letter")),
        "delay_days": "14",
        "condition": "no_reply",
    }
    edit = client.post(f"/campaigns/{campaign.id}/schedule/steps/{step.id}/edit", data=form)
    assert edit.status_code == 302
    response = client.post(f"/campaigns/{campaign.id}/schedule/steps/{step.id}/rearm")
    assert response.status_code == 302
    assert "Send this follow-up now" not in _page(client, campaign)
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert tick(later).summary == "1 fired, 0 skipped"
    assert tick(later).lines == []
    letters = db.session.scalars(select(Delivery).where(Delivery.step == 1)).all()
    assert [letter.email for letter in letters] == ["ana@example.org"]


def test_viewers_and_editors_cannot_change_steps(
    client: FlaskClient, login: Any, campaign: Campaign
) -> None:
    login(Role.SENDER)
    step = _add_step(client, campaign)
    for role in (Role.VIEWER, Role.EDITOR):
        client.post("/logout")
        login(role)
        page = _page(client, campaign)
        assert f'id="step-{step.id}-form"' not in page
        for action in ("edit", "delete", "rearm"):
            url = f"/campaigns/{campaign.id}/schedule/steps/{step.id}/{action}"
            form = {"statement_id": "1", "delay_days": "3", "condition": "no_reply"}
            assert client.post(url, data=form).status_code == 403
    db.session.refresh(step)
    assert step.delay_days == 14


# --- yearly on a case date's anniversary ----------------------------------------------------


def _linked_high_risk_case(campaign: Campaign) -> int:
    case = cases.create_case("Real Secret Name", "Journalist B", is_high_risk=True, country="UZ")
    arrest = cases.add_case_date(case, "arrest", date(2021, 3, 12))
    cases.link_case(campaign, case)
    db.session.commit()
    return int(arrest.id)


def test_a_yearly_campaign_on_a_case_anniversary_names_the_case_safely(
    client: FlaskClient, login: Any, campaign: Campaign
) -> None:
    arrest_id = _linked_high_risk_case(campaign)
    login(Role.SENDER)
    page = _page(client, campaign)
    assert "Arrest of Journalist B, 12 March 2021" in page
    assert "Real Secret Name" not in page
    response = client.post(
        f"/campaigns/{campaign.id}/schedule/yearly",
        data={
            "on": "case_date",
            "case_date_id": str(arrest_id),
            "day": "",
            "month": "1",
            "time": "09:00",
            "zone": "UTC",
        },
    )
    assert response.status_code == 302
    page = _page(client, campaign)
    assert (
        "Every year on the anniversary of the arrest of Journalist B (12 March) at 09:00 UTC"
        in page
    )
    schedule = db.session.scalars(
        select(Schedule).where(Schedule.kind == ScheduleKind.YEARLY_CAMPAIGN.value)
    ).one()
    assert schedule.case_date_id == arrest_id
    assert schedule.rule["month"] == 3 and schedule.rule["day"] == 12

    client.post("/logout")
    login(Role.ADMIN)
    admin_page = _page(client, campaign)
    assert "the anniversary of the arrest of Real Secret Name (12 March)" in admin_page


def test_a_case_anniversary_without_a_case_date_is_refused(
    client: FlaskClient, login: Any, campaign: Campaign
) -> None:
    _linked_high_risk_case(campaign)
    login(Role.SENDER)
    response = client.post(
        f"/campaigns/{campaign.id}/schedule/yearly",
        data={"on": "case_date", "case_date_id": "9999", "time": "09:00", "zone": "UTC"},
    )
    assert response.status_code == 422
    page = html.unescape(response.get_data(as_text=True))
    assert "choose one of the case dates" in _field_error(page, "case_date")
    assert re.search(r'value="case_date"\s+checked', page)
    assert db.session.scalars(select(Schedule)).all() == []


def test_a_follow_up_gets_its_subject_and_signatures_on_the_page(
    client: FlaskClient, login: Any, campaign: Campaign
) -> None:
    login(Role.SENDER)
    page = _page(client, campaign)
    # The default is said where it is chosen.
    assert "Empty: “Re: ” and the subject of the first letter each person received" in page
    assert "Those of the first letter, as sent" in page
    form = {
        "statement_id": str(_statement_id("Follow-up: joint letter")),
        "delay_days": "14",
        "condition": "no_reply",
        "subject": "A second letter for {{ contact.family_name }}",
        "signatories_from": "step_statement",
    }
    response = client.post(f"/campaigns/{campaign.id}/schedule/steps", data=form)
    assert response.status_code == 302
    step = db.session.scalars(select(CampaignStep)).one()
    assert step.subject == "A second letter for {{ contact.family_name }}"
    assert step.signatories_from == "step_statement"
    edit = {**form, "subject": "", "signatories_from": "none"}
    response = client.post(f"/campaigns/{campaign.id}/schedule/steps/{step.id}/edit", data=edit)
    assert response.status_code == 302
    db.session.refresh(step)
    assert (step.subject, step.signatories_from) == ("", "none")
    page = _page(client, campaign)
    assert re.search(r'<option value="none" selected>No signatures</option>', page)
