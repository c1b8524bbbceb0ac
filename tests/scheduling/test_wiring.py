"""The issue-6 pieces wired together: reminders through the tick, the worker's periodic tick,
follow-up steps dated at launch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import CalendarEvent, Notification, Schedule
from campaign.models.schedule import RunOutcome, ScheduleRun
from campaign.scheduling.schedules import create_send_at
from campaign.scheduling.stored_text import read
from campaign.scheduling.tick import tick
from campaign.services.schedules import advocacy_calendar as calendar
from campaign.services.sending import campaigns, followups
from campaign.services.statements import statements
from tests.factories import BODY, CampaignFactory

CREATED = datetime(2027, 6, 1, 12, tzinfo=UTC)


def _torture_day_reminder() -> Schedule:
    calendar.load_builtin_days()
    day = db.session.scalars(
        select(CalendarEvent).where(CalendarEvent.month == 6, CalendarEvent.day == 26)
    ).one()
    schedule = calendar.add_reminder(day, 7)
    # Start from 2027 whatever today is, so the test reads the same every year.
    schedule.next_run_at = calendar.next_reminder_run(schedule, datetime(2027, 1, 1, tzinfo=UTC))
    db.session.commit()
    return schedule


def _notifications() -> list[str]:
    return [
        read(text)
        for text in db.session.scalars(select(Notification.text).order_by(Notification.id))
    ]


def test_a_built_in_day_reminder_fires_through_the_tick_every_year(app: Flask) -> None:
    schedule = _torture_day_reminder()
    # 09:00 in Paris (summer time), seven days before 26 June.
    first = datetime(2027, 6, 19, 7, tzinfo=UTC)
    assert schedule.next_run_at == first

    assert tick(first - timedelta(minutes=1)).lines == []
    report = tick(first)
    assert report.summary == "1 fired, 0 skipped"
    assert _notifications() == [
        "International Day in Support of Victims of Torture in 7 days (26 June)"
    ]
    # A second tick at the same moment (another machine) adds nothing.
    assert tick(first).lines == []

    db.session.expire_all()
    second = db.session.get(Schedule, schedule.id)
    assert second is not None and second.next_run_at == datetime(2028, 6, 19, 7, tzinfo=UTC)
    assert tick(datetime(2028, 6, 19, 7, tzinfo=UTC)).summary == "1 fired, 0 skipped"
    assert len(_notifications()) == 2
    runs = db.session.scalars(select(ScheduleRun.outcome).order_by(ScheduleRun.due_at)).all()
    assert runs == [RunOutcome.FIRED, RunOutcome.FIRED]


def test_the_worker_ticks_once_per_interval_and_fires_what_is_due(app: Flask) -> None:
    from workers import jobs
    from workers.context import set_app
    from workers.ticker import run_if_due

    set_app(app)
    schedule = _torture_day_reminder()
    schedule.next_run_at = datetime.now(UTC) - timedelta(minutes=1)  # just became due
    db.session.commit()

    def ticker() -> bool:
        return run_if_due(
            app, jobs.run_scheduler, name="scheduler-tick", interval_key="SCHEDULER_TICK_SECONDS"
        )

    assert app.config["SCHEDULER_TICK_SECONDS"] == 60
    assert ticker() is True
    # Another worker in the same minute finds the Redis lock taken and does not tick.
    assert ticker() is False
    db.session.expire_all()
    assert len(_notifications()) == 1
    fired = db.session.get(Schedule, schedule.id)
    assert fired is not None and fired.next_run_at is not None
    assert fired.next_run_at > datetime.now(UTC)  # next year's reminder


def test_steps_added_to_a_draft_are_dated_at_launch(app: Flask) -> None:
    campaign = CampaignFactory(commit=True)
    reminder = statements.create_statement("Reminder", language="en", subject="R", body=BODY)
    step = followups.add_step(campaign, reminder, 14, "no_reply")
    db.session.commit()
    step_schedule = followups.schedule_of(step)
    assert step_schedule is not None and step_schedule.next_run_at is None  # not launched yet

    assert campaigns.launch_campaign(campaign)
    db.session.commit()
    db.session.refresh(step_schedule)
    assert campaign.launched_at is not None
    assert step_schedule.next_run_at == campaign.launched_at + timedelta(days=14)


def test_a_scheduled_launch_dates_the_steps_too(app: Flask) -> None:
    campaign = CampaignFactory(commit=True)
    reminder = statements.create_statement("Reminder", language="en", subject="R", body=BODY)
    step = followups.add_step(campaign, reminder, 7, "no_reply")
    create_send_at(campaign, "2027-06-26T09:00", "Europe/Paris", now=CREATED)
    db.session.commit()

    assert tick(datetime(2027, 6, 26, 7, tzinfo=UTC)).summary == "1 fired, 0 skipped"
    db.session.expire_all()
    step_schedule = followups.schedule_of(step)
    assert step_schedule is not None and step_schedule.next_run_at is not None
    launched = db.session.get(type(campaign), campaign.id)
    assert launched is not None and launched.launched_at is not None
    assert step_schedule.next_run_at == launched.launched_at + timedelta(days=7)
    due_follow_ups = db.session.scalar(
        select(func.count())
        .select_from(Schedule)
        .where(Schedule.kind == "follow_up", Schedule.next_run_at.is_not(None))
    )
    assert due_follow_ups == 1


# --- the commands that make schedules ---------------------------------------------------------


def test_schedule_send_launches_at_local_time_and_refuses_clearly(app: Flask) -> None:
    runner = app.test_cli_runner()
    campaign = CampaignFactory(name="Summit letter", commit=True)
    year = datetime.now(UTC).year + 1
    result = runner.invoke(
        args=[
            "schedule-send",
            str(campaign.id),
            "--at",
            f"{year}-06-26T09:00",
            "--tz",
            "Europe/Paris",
        ]
    )
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"campaign {campaign.id} 'Summit letter' will launch at {year}-06-26 09:00 Europe/Paris "
        f"({year}-06-26 07:00 UTC)\n"
    )
    assert "send_at\tSummit letter" in runner.invoke(args=["schedules"]).output

    for args, message in (
        (["999", "--at", f"{year}-06-26T09:00", "--tz", "Europe/Paris"], "no campaign 999"),
        ([str(campaign.id), "--at", f"{year}-06-26T09:00", "--tz", "Mars/Olympus"], "Mars/Olympus"),
        ([str(campaign.id), "--at", "2001-06-26T09:00", "--tz", "Europe/Paris"], "past"),
    ):
        refused = runner.invoke(args=["schedule-send", *args])
        assert refused.exit_code == 2, refused.output
        assert message in refused.output


def test_yearly_schedules_a_copy_every_year_and_refuses_dates_no_year_has(app: Flask) -> None:
    runner = app.test_cli_runner()
    campaign = CampaignFactory(name="Torture day", commit=True)
    result = runner.invoke(
        args=[
            "yearly",
            str(campaign.id),
            "--date",
            "06-26",
            "--time",
            "09:00",
            "--tz",
            "Europe/Paris",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "a copy of 'Torture day' every year, first at" in result.output
    assert "-06-26 09:00 Europe/Paris" in result.output

    leap = runner.invoke(args=["yearly", str(campaign.id), "--date", "02-29", "--tz", "UTC"])
    assert leap.exit_code == 0 and "28 February in years without 29 February" in leap.output

    for date_text, message in (("02-30", "February has no day 30"), ("june", "like 06-26")):
        refused = runner.invoke(
            args=["yearly", str(campaign.id), "--date", date_text, "--tz", "Europe/Paris"]
        )
        assert refused.exit_code == 2 and message in refused.output


def test_add_step_prints_what_the_follow_up_will_do(app: Flask) -> None:
    runner = app.test_cli_runner()
    campaign = CampaignFactory(name="Joint letter", commit=True)
    reminder = statements.create_statement("Reminder", language="en", subject="R", body=BODY)
    db.session.commit()
    result = runner.invoke(
        args=["add-step", str(campaign.id), "--statement", str(reminder.id), "--days", "14"]
    )
    assert result.exit_code == 0, result.output
    assert result.output == (
        "follow-up 1: 14 days after the letter goes out, recipients who have not replied "
        "will receive ‘Reminder’\n"
    )
    # Recorded like a step added on the page.
    from campaign.models import AuditEvent

    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "campaign.step_add")
    ).all()
    assert [event.target_id for event in events] == [str(campaign.id)]

    for args, message in (
        (["--statement", "999", "--days", "14"], "no statement 999"),
        (["--statement", str(reminder.id), "--days", "0"], "at least 1 day"),
        (["--statement", str(reminder.id), "--days", "999999999"], "at most 365 days"),
        (
            ["--statement", str(reminder.id), "--days", "7", "--condition", "opened_no_reply"],
            "open tracking",
        ),
        (["--statement", str(reminder.id), "--days", "7", "--condition", "maybe"], "maybe"),
    ):
        refused = runner.invoke(args=["add-step", str(campaign.id), *args])
        assert refused.exit_code == 2, refused.output
        assert message in refused.output
