"""A follow-up counts N days from each recipient's own letter: when letters of one step leave
over several days (pacing, a daily limit, a pause, retries), the step sweeps until everyone
whose letter went out has been reached — nobody is dropped, nobody is followed up early."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy import select, update

from campaign.extensions import db
from campaign.models import Campaign, Delivery, DeliveryStatus, FollowUpCondition
from campaign.scheduling.tick import tick
from campaign.services.sending import followups
from campaign.services.statements import statements
from tests.factories import CampaignFactory

BODY = "{{ salutation }}\n\nRelease the defenders.\n\n{{ closing }}\n"
LAUNCH = datetime(2027, 6, 1, 8, tzinfo=UTC)
DAY = timedelta(days=1)


def _launched(count: int) -> tuple[Campaign, list[Delivery]]:
    campaign = CampaignFactory(
        statement__body=BODY,
        recipients=[f"p{n}@example.net" for n in range(count)],
        from_address="Office <office@example.org>",
        launched=LAUNCH,
        commit=True,
    )
    rows = list(
        db.session.scalars(
            select(Delivery)
            .where(Delivery.campaign_id == campaign.id, Delivery.step == 0)
            .order_by(Delivery.id)
        )
    )
    return campaign, rows


def _goes_out(row: Delivery, at: datetime) -> None:
    """The worker sends this letter at `at` (as paced sending would)."""
    db.session.execute(
        update(Delivery)
        .where(Delivery.id == row.id)
        .values(status=DeliveryStatus.SENT.value, sent_at=at)
    )
    db.session.commit()


def _followed_up(campaign: Campaign) -> list[str]:
    db.session.expire_all()
    return sorted(
        db.session.scalars(
            select(Delivery.email).where(Delivery.campaign_id == campaign.id, Delivery.step == 1)
        )
    )


def test_letters_that_leave_over_days_are_each_followed_up_n_days_after_they_went(
    app: Flask,
) -> None:
    campaign, letters = _launched(6)
    reminder = statements.create_statement("Reminder", language="en", subject="R", body=BODY)
    step = followups.add_step(campaign, reminder, 2, FollowUpCondition.NO_REPLY)
    db.session.commit()
    _goes_out(letters[0], LAUNCH)
    _goes_out(letters[1], LAUNCH + DAY)  # the other four still wait in the queue

    report = tick(LAUNCH + 2 * DAY)
    assert report.lines[0].detail.startswith("follow-up 1: 1 letter queued; the others")
    assert _followed_up(campaign) == ["p0@example.net"]  # p1's letter is a day old only
    schedule = followups.schedule_of(step)
    assert schedule is not None
    assert schedule.next_run_at == LAUNCH + 3 * DAY - followups.SWEEP_SLACK
    assert "so far" in followups.step_summary(step)

    _goes_out(letters[2], LAUNCH + 2 * DAY)
    _goes_out(letters[3], LAUNCH + 3 * DAY)
    assert tick(LAUNCH + 3 * DAY).summary == "1 fired, 0 skipped"
    assert _followed_up(campaign) == ["p0@example.net", "p1@example.net"]

    _goes_out(letters[4], LAUNCH + 4 * DAY)
    _goes_out(letters[5], LAUNCH + 5 * DAY)
    # The app was down for a week: a late follow-up still serves, so it catches up at once.
    report = tick(LAUNCH + 12 * DAY)
    assert report.summary == "1 fired, 0 skipped"
    assert report.lines[0].detail == "follow-up 1: 4 letters queued"
    assert _followed_up(campaign) == [f"p{n}@example.net" for n in range(6)]
    db.session.refresh(schedule)
    assert schedule.next_run_at is None  # every letter went out: the step is done
    assert tick(LAUNCH + 30 * DAY).lines == []
    assert followups.step_summary(step).endswith(
        "6 recipients who have not replied were sent ‘Reminder’"
    )


def test_a_letter_that_failed_for_good_ends_the_sweeps_without_a_follow_up(app: Flask) -> None:
    campaign, letters = _launched(2)
    reminder = statements.create_statement("Reminder", language="en", subject="R", body=BODY)
    step = followups.add_step(campaign, reminder, 3, FollowUpCondition.NO_REPLY)
    db.session.commit()
    _goes_out(letters[0], LAUNCH)
    tick(LAUNCH + 3 * DAY)
    schedule = followups.schedule_of(step)
    assert schedule is not None and schedule.next_run_at == LAUNCH + 6 * DAY  # p1 may still go
    db.session.execute(
        update(Delivery)
        .where(Delivery.id == letters[1].id)
        .values(status=DeliveryStatus.FAILED.value, reason="rejected")
    )
    db.session.commit()
    assert tick(LAUNCH + 6 * DAY).lines[0].detail == "follow-up 1: 0 letters queued"
    db.session.refresh(schedule)
    assert schedule.next_run_at is None
    assert _followed_up(campaign) == ["p0@example.net"]


def test_a_second_step_waits_for_the_first_to_finish_its_sweeps(app: Flask) -> None:
    campaign, letters = _launched(2)
    first = followups.add_step(
        campaign,
        statements.create_statement("Reminder", language="en", subject="R", body=BODY),
        2,
        FollowUpCondition.NO_REPLY,
    )
    second = followups.add_step(
        campaign,
        statements.create_statement("Last call", language="en", subject="L", body=BODY),
        2,
        FollowUpCondition.NO_REPLY,
    )
    db.session.commit()
    _goes_out(letters[0], LAUNCH)
    tick(LAUNCH + 2 * DAY)  # p0's reminder written; p1's letter has not gone yet
    reminders = list(
        db.session.scalars(
            select(Delivery).where(Delivery.campaign_id == campaign.id, Delivery.step == 1)
        )
    )
    _goes_out(reminders[0], LAUNCH + 2 * DAY)
    _goes_out(letters[1], LAUNCH + 3 * DAY)
    tick(LAUNCH + 4 * DAY)  # p0's last call
    tick(LAUNCH + 5 * DAY)  # p1's reminder
    p1_reminder = db.session.scalars(
        select(Delivery).where(
            Delivery.campaign_id == campaign.id,
            Delivery.step == 1,
            Delivery.email == "p1@example.net",
        )
    ).one()
    _goes_out(p1_reminder, LAUNCH + 5 * DAY)
    tick(LAUNCH + 7 * DAY)  # p1's last call
    db.session.expire_all()
    last_calls = sorted(
        db.session.scalars(
            select(Delivery.email).where(Delivery.campaign_id == campaign.id, Delivery.step == 2)
        )
    )
    assert last_calls == ["p0@example.net", "p1@example.net"]
    for step in (first, second):
        schedule = followups.schedule_of(step)
        assert schedule is not None and schedule.next_run_at is None
