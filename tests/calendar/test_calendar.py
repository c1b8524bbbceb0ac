"""The advocacy calendar: built-in days, events with reminders, firing them, the ICS feed."""

from __future__ import annotations

import mailbox
from datetime import UTC, date, datetime, timedelta
from email.header import decode_header, make_header
from typing import Any

import pytest
from flask import Flask
from icalendar import Calendar
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from campaign.devmail import DevmailSink
from campaign.extensions import db
from campaign.models import CalendarEvent, Notification, Role, Schedule
from campaign.scheduling.stored_text import read
from campaign.scheduling.tick import tick
from campaign.services.schedules import advocacy_calendar as calendar
from campaign.services.schedules.advocacy_calendar import CalendarError
from tests import servers
from tests.conftest import make_user


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    return {**app_overrides, "MAIL_SERVER": "localhost", "MAIL_PORT": servers.free_port()}


def _last_sunday_of_march(year: int) -> date:
    day = date(year, 3, 31)
    return day - timedelta(days=(day.weekday() + 1) % 7)


def _builtin(month: int, day: int) -> CalendarEvent:
    return db.session.scalars(
        select(CalendarEvent).where(CalendarEvent.month == month, CalendarEvent.day == day)
    ).one()


def test_built_in_days_load_once(app: Flask) -> None:
    assert calendar.load_builtin_days() == 15
    db.session.commit()
    assert calendar.load_builtin_days() == 0
    db.session.commit()
    count = db.session.scalar(select(func.count()).select_from(CalendarEvent))
    assert count == 15
    torture_day = _builtin(6, 26)
    assert torture_day.name == "International Day in Support of Victims of Torture"
    assert torture_day.kind == "un_day" and torture_day.is_builtin


def test_event_reminders_fire_at_nine_local_across_the_clock_change(app: Flask) -> None:
    year = date.today().year + 2
    change = _last_sunday_of_march(year)  # Europe/Paris goes from UTC+1 to UTC+2 at 02:00
    event = calendar.add_event(
        "EU–Central Asia summit",
        change + timedelta(days=7),
        change + timedelta(days=8),
        place="Samarkand",
        countries=["uz", "KZ", "EU"],
        reminder_days=[8, 7],
    )
    db.session.commit()
    schedules = db.session.scalars(
        select(Schedule).where(Schedule.event_id == event.id).order_by(Schedule.next_run_at)
    ).all()
    day_before_change = datetime.combine(change - timedelta(days=1), datetime.min.time(), UTC)
    on_change = datetime.combine(change, datetime.min.time(), UTC)
    # 09:00 in winter time is 08:00 UTC; on the day the clocks go forward it is 07:00 UTC.
    assert [s.next_run_at for s in schedules] == [
        day_before_change + timedelta(hours=8),
        on_change + timedelta(hours=7),
    ]
    assert event.countries == ["UZ", "KZ", "EU"]
    assert {s.rule["days_before"] for s in schedules} == {7, 8}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ends_on": date(2030, 4, 2)}, "ends (2 April 2030) before it starts (3 April 2030)"),
        ({"countries": ["XX"]}, "'XX' is not a country code"),
        ({"countries": ["France"]}, "'France' is not a country code"),
        ({"reminder_days": [-1]}, "-1 days before is not possible"),
        ({"kind": "party"}, "'party' is not one of"),
    ],
)
def test_bad_events_are_refused_with_a_clear_message(
    app: Flask, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(CalendarError, match=message.replace("(", r"\(").replace(")", r"\)")):
        calendar.add_event("Human-rights dialogue", date(2030, 4, 3), **kwargs)


def test_a_reminder_notifies_staff_in_the_app_and_by_email(app: Flask) -> None:
    editor = make_user(Role.EDITOR, "editor@example.org")
    make_user(Role.ADMIN, "admin@example.org")
    make_user(Role.VIEWER, "viewer@example.org")  # viewers only read: no e-mail
    start = date.today() + timedelta(days=30)
    event = calendar.add_event(
        "EU–Central Asia summit",
        start,
        start + timedelta(days=1),
        place="Samarkand",
        reminder_days=[7],
    )
    db.session.commit()
    schedule = db.session.scalars(select(Schedule).where(Schedule.event_id == event.id)).one()
    due = schedule.next_run_at
    assert due is not None
    config = app.config["CAMPAIGN_CONFIG"]
    with DevmailSink(config.devmail_path, config.MAIL_SERVER, config.MAIL_PORT):
        report = tick(due)
        assert tick(due + timedelta(minutes=1)).lines == []  # the next tick mails nothing more
    span = calendar.format_span(start, start + timedelta(days=1))
    expected = f"EU–Central Asia summit in 7 days (Samarkand, {span})"
    [line] = report.lines
    assert line.campaign_id is None
    assert line.detail.startswith(expected) and "e-mailed to 2 staff" in line.detail
    notification = db.session.scalars(select(Notification)).one()
    assert read(notification.text) == expected and notification.emailed_at is not None
    received = list(mailbox.Maildir(config.devmail_path, create=False))
    assert sorted(m["Delivered-To"] for m in received) == ["admin@example.org", editor.email]
    subjects = {str(make_header(decode_header(m["Subject"]))) for m in received}
    assert subjects == {f"Reminder: {expected}"}
    # A dated event is reminded once.
    db.session.refresh(schedule)
    assert schedule.next_run_at is None


def test_a_tick_whose_commit_fails_mails_nobody_and_the_retry_mails_each_person_once(
    app: Flask,
) -> None:
    make_user(Role.EDITOR, "editor@example.org")
    start = date.today() + timedelta(days=30)
    event = calendar.add_event("Human-rights dialogue", start, reminder_days=[7])
    db.session.commit()
    schedule = db.session.scalars(select(Schedule).where(Schedule.event_id == event.id)).one()
    due = schedule.next_run_at
    assert due is not None

    def failing_commit() -> None:
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    config = app.config["CAMPAIGN_CONFIG"]
    with DevmailSink(config.devmail_path, config.MAIL_SERVER, config.MAIL_PORT):
        with pytest.raises(OperationalError):
            tick(due, commit=failing_commit)
        db.session.rollback()
        assert list(mailbox.Maildir(config.devmail_path, create=False)) == []
        assert tick(due).summary == "1 fired, 0 skipped"
        tick(due + timedelta(minutes=1))
    received = list(mailbox.Maildir(config.devmail_path, create=False))
    assert [m["Delivered-To"] for m in received] == ["editor@example.org"]


def test_a_built_in_day_reminder_recurs_every_year(app: Flask) -> None:
    calendar.load_builtin_days()
    schedule = calendar.add_reminder(_builtin(6, 26), 7)
    db.session.commit()
    due = schedule.next_run_at
    assert due is not None
    assert (due.month, due.day, due.hour, due.minute) == (6, 19, 7, 0)  # 09:00 summer time
    [line] = tick(due).lines  # no mail server: still noted in the app
    assert line.detail.startswith(
        "International Day in Support of Victims of Torture in 7 days (26 June)"
    )
    db.session.refresh(schedule)
    assert schedule.next_run_at == due.replace(year=due.year + 1)
    winter = calendar.add_reminder(_builtin(12, 10), 0)
    assert winter.next_run_at is not None and winter.next_run_at.hour == 8  # 09:00 winter time


def test_the_ics_feed_parses_back_with_yearly_days_events_and_schedules(app: Flask) -> None:
    calendar.load_builtin_days()
    calendar.add_event(
        "UPR review of Uzbekistan",
        date(2030, 11, 5),
        kind="upr_review",
        place="Geneva",
        countries=["UZ"],
        reminder_days=[14],
    )
    db.session.commit()
    events = db.session.scalars(select(CalendarEvent)).all()
    schedules = db.session.scalars(select(Schedule)).all()
    parsed = Calendar.from_ical(calendar.ics_feed(events, schedules))
    entries = list(parsed.walk("VEVENT"))
    torture = [e for e in entries if str(e["SUMMARY"]).startswith("International Day in Support")]
    assert len(torture) == 1
    start = torture[0].decoded("DTSTART")
    assert (start.month, start.day) == (6, 26) and not isinstance(start, datetime)
    assert torture[0].decoded("RRULE")["FREQ"] == ["YEARLY"]
    [review] = [e for e in entries if str(e["SUMMARY"]) == "UPR review of Uzbekistan"]
    assert review.decoded("DTSTART") == date(2030, 11, 5) and str(review["LOCATION"]) == "Geneva"
    [reminder] = [e for e in entries if str(e["UID"]).startswith("schedule-")]
    # 09:00 in Paris, still summer time on 22 October 2030 (clocks go back on the 27th).
    assert reminder.decoded("DTSTART") == datetime(2030, 10, 22, 7, 0, tzinfo=UTC)
    assert len(entries) == 17


def test_the_feed_token_is_secret_and_checked(app: Flask) -> None:
    token = calendar.feed_token()
    assert calendar.check_feed_token(token)
    assert not calendar.check_feed_token(token[:-1] + ("0" if token[-1] != "0" else "1"))
    assert token not in str(app.config["SECRET_KEY"])
    assert calendar.feed_token("another installation") != token
