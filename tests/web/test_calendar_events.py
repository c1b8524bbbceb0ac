"""Editing and deleting the organisation's events: the calendar, the reminders' next runs,
`campaign schedules` and the ICS feed follow; built-in days and viewers cannot change them."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, CalendarEvent, Notification, Role, Schedule, ScheduleRun
from campaign.scheduling.stored_text import read
from campaign.scheduling.tick import tick
from campaign.services.schedules import advocacy_calendar as calendar_service
from tests.conftest import TEST_PASSWORD, make_user
from tests.pages import csrf_token, text_of

NEXT_YEAR = date.today().year + 1


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    return {**app_overrides, "TIMEZONE": "Europe/Paris"}


def _day_cell(page: str, on: date) -> str:
    found = re.search(rf'data-date="{on.isoformat()}">(.*?)</td>', page, re.S)
    assert found, f"no cell for {on}"
    return found.group(1)


def _event_form(**changes: str) -> dict[str, str]:
    return {
        "name": "EU–Central Asia summit",
        "kind": "summit",
        "starts_on": f"{NEXT_YEAR}-05-11",
        "ends_on": f"{NEXT_YEAR}-05-12",
        "place": "Samarkand",
        "countries": "UZ, KZ",
        "reminder_days": "7",
        "notes": "",
        **changes,
    }


def _add_summit(client: FlaskClient, **changes: str) -> CalendarEvent:
    assert client.post("/calendar/events", data=_event_form(**changes)).status_code == 302
    event = db.session.scalars(select(CalendarEvent).order_by(CalendarEvent.id.desc())).first()
    assert event is not None
    return event


def _reminders(event_id: int) -> list[Schedule]:
    query = select(Schedule).where(Schedule.event_id == event_id).order_by(Schedule.id)
    return list(db.session.scalars(query))


def _schedules_listing(app: Flask) -> str:
    return str(app.test_cli_runner().invoke(args=["schedules"]).output)


def _ics(client: FlaskClient) -> str:
    response = client.get(f"/calendar.ics?token={calendar_service.feed_token()}")
    assert response.status_code == 200
    return str(response.get_data(as_text=True))


def test_moving_an_event_moves_it_in_the_month_and_its_reminder_follows(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    login(Role.EDITOR)
    event = _add_summit(client)
    [reminder] = _reminders(event.id)
    # 09:00 in Paris, a week before 11 May (summer time: UTC+2).
    assert reminder.next_run_at == datetime(NEXT_YEAR, 5, 4, 7, 0, tzinfo=UTC)

    moved = _event_form(starts_on=f"{NEXT_YEAR}-06-08", ends_on=f"{NEXT_YEAR}-06-09")
    response = client.post(f"/calendar/events/{event.id}", data=moved)
    assert response.status_code == 302

    may = text_of(client.get(f"/calendar/?month={NEXT_YEAR}-05"))
    assert "EU–Central Asia summit" not in _day_cell(may, date(NEXT_YEAR, 5, 11))
    assert "7 days before" not in _day_cell(may, date(NEXT_YEAR, 5, 4))
    june = text_of(client.get(f"/calendar/?month={NEXT_YEAR}-06"))
    for day in (8, 9):
        assert "EU–Central Asia summit (8–9 June, Samarkand)" in _day_cell(
            june, date(NEXT_YEAR, 6, day)
        )
    assert "7 days before" in _day_cell(june, date(NEXT_YEAR, 6, 1))
    db.session.refresh(reminder)
    assert reminder.next_run_at == datetime(NEXT_YEAR, 6, 1, 7, 0, tzinfo=UTC)
    assert f"next {NEXT_YEAR}-06-01 07:00 UTC" in _schedules_listing(app)
    update = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "calendar.event.update")
    ).one()
    assert update.target_id == str(event.id)
    assert set(update.detail["changed"]) == {"starts_on", "ends_on"}


def test_changing_the_reminder_days_adds_and_removes_reminders(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    login(Role.EDITOR)
    event = _add_summit(client, reminder_days="7, 1")
    response = client.post(f"/calendar/events/{event.id}", data=_event_form(reminder_days="14, 1"))
    assert response.status_code == 302
    reminders = _reminders(event.id)
    assert sorted(s.rule["days_before"] for s in reminders) == [1, 14]
    listing = _schedules_listing(app)
    assert "EU–Central Asia summit, 14 days before" in listing
    assert "7 days before" not in listing
    page = text_of(client.get(f"/calendar/events/{event.id}"))
    assert 'name="reminder_days" value="1, 14"' in page


def test_deleting_an_event_takes_it_off_the_calendar_the_feed_and_the_schedules(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    login(Role.EDITOR)
    event_id = _add_summit(client, reminder_days="7, 1").id
    assert "EU–Central Asia summit" in _ics(client)
    assert "EU–Central Asia summit" in _schedules_listing(app)

    response = client.post(f"/calendar/events/{event_id}/delete")
    assert response.status_code == 302
    assert "deleted" in text_of(client.get(response.headers["Location"]))

    may = text_of(client.get(f"/calendar/?month={NEXT_YEAR}-05"))
    assert f'<h2 id="month-heading">May {NEXT_YEAR}</h2>' in may
    assert "EU–Central Asia summit" not in may  # the event's and the reminders' days
    feed = _ics(client)
    assert feed.startswith("BEGIN:VCALENDAR")
    assert "EU–Central Asia summit" not in feed
    assert _schedules_listing(app) == "no schedules\n"
    assert client.get(f"/calendar/events/{event_id}").status_code == 404
    assert db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "calendar.event.delete")
    ).one().target_id == str(event_id)


def test_a_reminder_already_sent_stays_readable_after_its_event_is_deleted(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    login(Role.EDITOR)
    event_id = _add_summit(client, reminder_days="7, 1").id
    week_before = datetime(NEXT_YEAR, 5, 4, 7, 0, tzinfo=UTC)
    report = tick(week_before)
    assert report.summary.startswith("1 fired")

    assert client.post(f"/calendar/events/{event_id}/delete").status_code == 302
    # The unsent reminder is gone; the sent one is kept, disabled, with its record.
    [kept] = db.session.scalars(select(Schedule)).all()
    assert kept.rule["days_before"] == 7 and not kept.is_enabled and kept.event_id is None
    run = db.session.scalars(select(ScheduleRun)).one()
    assert run.schedule_id == kept.id
    note = db.session.scalars(select(Notification)).one()
    assert note.schedule_run_id == run.id and "EU–Central Asia summit in 7 days" in read(note.text)
    assert "[disabled]" in _schedules_listing(app)
    record = text_of(client.get("/schedules/runs"))
    assert "Reminder: EU–Central Asia summit, 7 days before" in record
    # Nothing fires for the deleted event when its day comes.
    assert tick(datetime(NEXT_YEAR, 5, 10, 7, 0, tzinfo=UTC)).lines == []


def test_a_built_in_day_cannot_be_edited_or_deleted(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    calendar_service.load_builtin_days()
    db.session.commit()
    day = db.session.scalars(
        select(CalendarEvent).where(CalendarEvent.month == 6, CalendarEvent.day == 26)
    ).one()
    login(Role.ADMIN)
    page = text_of(client.get(f"/calendar/events/{day.id}"))
    assert "built-in day" in page and 'id="edit-event-form"' not in page

    response = client.post(
        f"/calendar/events/{day.id}", data=_event_form(name="Renamed", starts_on="2030-06-27")
    )
    assert response.status_code == 403
    assert "cannot be edited" in text_of(response)
    response = client.post(f"/calendar/events/{day.id}/delete")
    assert response.status_code == 403
    assert "cannot be deleted" in text_of(response)
    db.session.refresh(day)
    assert day.name == "International Day in Support of Victims of Torture"
    assert (day.month, day.day, day.starts_on) == (6, 26, None)


def test_a_viewer_reads_an_event_but_cannot_edit_or_delete_it(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    event = calendar_service.add_event(
        "EU–Central Asia summit", date(NEXT_YEAR, 5, 11), place="Samarkand", reminder_days=[7]
    )
    db.session.commit()
    login(Role.VIEWER)
    page = text_of(client.get(f"/calendar/events/{event.id}"))
    assert "EU–Central Asia summit" in page and "7 days before" in page
    assert 'id="edit-event-form"' not in page and 'id="delete-event-form"' not in page
    moved = _event_form(starts_on=f"{NEXT_YEAR}-06-08", ends_on="")
    assert client.post(f"/calendar/events/{event.id}", data=moved).status_code == 403
    assert client.post(f"/calendar/events/{event.id}/delete").status_code == 403
    db.session.refresh(event)
    assert event.starts_on == date(NEXT_YEAR, 5, 11)
    assert len(_reminders(event.id)) == 1


def test_an_end_before_the_start_is_explained_and_nothing_changes(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    login(Role.EDITOR)
    event = _add_summit(client)
    [reminder] = _reminders(event.id)
    first_run = reminder.next_run_at
    bad = _event_form(
        name="Summit, renamed", starts_on=f"{NEXT_YEAR}-06-08", ends_on=f"{NEXT_YEAR}-06-01"
    )
    response = client.post(f"/calendar/events/{event.id}", data=bad)
    assert response.status_code == 422
    page = text_of(response)
    found = re.search(r'id="e-ends_on"[^>]*>([^<]*)<', page)
    assert found and "Dates: the event ends" in found.group(1)
    assert 'value="Summit, renamed"' in page  # what was typed is kept
    db.session.refresh(event)
    db.session.refresh(reminder)
    assert (event.name, event.starts_on) == ("EU–Central Asia summit", date(NEXT_YEAR, 5, 11))
    assert reminder.next_run_at == first_run


def test_an_event_moved_so_its_reminder_day_has_passed_does_not_remind_late(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    login(Role.EDITOR)
    event = _add_summit(client)
    soon = date.today().isoformat()
    response = client.post(
        f"/calendar/events/{event.id}", data=_event_form(starts_on=soon, ends_on="")
    )
    assert response.status_code == 302
    [reminder] = _reminders(event.id)
    assert reminder.next_run_at is None and not reminder.is_enabled
    page = text_of(client.get(f"/calendar/events/{event.id}"))
    assert "its day has passed: it will not be sent" in page


@pytest.mark.parametrize("csrf_enabled", [True])
def test_editing_and_deleting_need_the_csrf_token(client: FlaskClient, app: Flask) -> None:
    event = calendar_service.add_event("EU–Central Asia summit", date(NEXT_YEAR, 5, 11))
    db.session.commit()

    user = make_user(Role.EDITOR)
    client.post(
        "/login",
        data={
            "email": user.email,
            "password": TEST_PASSWORD,
            "csrf_token": csrf_token(client, "/login"),
        },
    )
    moved = _event_form(starts_on=f"{NEXT_YEAR}-06-08", ends_on="")
    assert client.post(f"/calendar/events/{event.id}", data=moved).status_code == 400
    assert client.post(f"/calendar/events/{event.id}/delete").status_code == 400
    db.session.refresh(event)
    assert event.starts_on == date(NEXT_YEAR, 5, 11)
    form = {**moved, "csrf_token": csrf_token(client, f"/calendar/events/{event.id}")}
    assert client.post(f"/calendar/events/{event.id}", data=form).status_code == 302
