"""Time travel through `tick`: send-at, downtime past the grace period, repeated ticks, yearly."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import Campaign, CampaignStatus, Delivery
from campaign.models.schedule import RunOutcome, ScheduleRun
from campaign.scheduling.schedules import create_send_at, create_yearly
from campaign.scheduling.stored_text import read
from campaign.scheduling.tick import tick
from campaign.scheduling.timezones import ScheduleError
from campaign.services.sending import campaigns
from tests.factories import CampaignFactory

CREATED = datetime(2027, 6, 1, 12, tzinfo=UTC)


def _letters(campaign_id: int) -> int:
    return (
        db.session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.campaign_id == campaign_id)
        )
        or 0
    )


def _runs() -> list[ScheduleRun]:
    return list(db.session.scalars(select(ScheduleRun).order_by(ScheduleRun.due_at)))


def test_send_at_fires_once_at_its_time_and_not_before(app: Flask) -> None:
    campaign = CampaignFactory(recipients=("a@example.org", "b@example.org"), commit=True)
    create_send_at(campaign, "2027-06-26T09:00", "Europe/Paris", now=CREATED)
    db.session.commit()
    assert campaign.status == CampaignStatus.SCHEDULED
    assert campaign.send_at == datetime(2027, 6, 26, 7, tzinfo=UTC)

    assert tick(datetime(2027, 6, 26, 6, 59, tzinfo=UTC)).lines == []
    assert _letters(campaign.id) == 0

    report = tick(datetime(2027, 6, 26, 7, 0, tzinfo=UTC))
    assert report.summary == "1 fired, 0 skipped"
    assert "2 recipients queued" in report.lines[0].detail
    assert _letters(campaign.id) == 2
    db.session.refresh(campaign)
    assert campaign.status == CampaignStatus.SENDING

    # The same instant again, and later: nothing more fires.
    assert tick(datetime(2027, 6, 26, 7, 0, tzinfo=UTC)).lines == []
    assert tick(datetime(2027, 6, 27, tzinfo=UTC)).lines == []
    assert _letters(campaign.id) == 2
    assert [run.outcome for run in _runs()] == [RunOutcome.FIRED]


def test_a_three_day_downtime_skips_the_send_and_reports_it(app: Flask) -> None:
    campaign = CampaignFactory(commit=True)
    create_send_at(campaign, "2027-06-26T09:00", "Europe/Paris", now=CREATED)
    db.session.commit()
    report = tick(datetime(2027, 6, 29, 8, tzinfo=UTC))
    assert report.summary == "0 fired, 1 skipped"
    assert report.lines[0].detail == "due 2027-06-26 09:00 Europe/Paris, 3 days late: not sent"
    assert _letters(campaign.id) == 0
    db.session.refresh(campaign)
    assert campaign.status == CampaignStatus.DRAFT
    assert "3 days late" in read(campaign.status_reason)
    assert [(run.outcome, read(run.detail)) for run in _runs()] == [
        (RunOutcome.SKIPPED, "due 2027-06-26 09:00 Europe/Paris, 3 days late: not sent")
    ]


def test_a_fire_within_the_grace_period_still_goes(app: Flask) -> None:
    campaign = CampaignFactory(commit=True)
    create_send_at(campaign, "2027-06-26T09:00", "Europe/Paris", now=CREATED)
    db.session.commit()
    assert tick(datetime(2027, 6, 26, 12, tzinfo=UTC)).summary == "1 fired, 0 skipped"
    assert _letters(campaign.id) == 1


def test_a_send_that_fails_its_checks_is_reported_and_the_campaign_back_in_draft(
    app: Flask,
) -> None:
    campaign = CampaignFactory(commit=True)
    create_send_at(campaign, "2027-06-26T09:00", "Europe/Paris", now=CREATED)
    campaign.from_address = "not an address"
    db.session.commit()
    report = tick(datetime(2027, 6, 26, 7, tzinfo=UTC))
    assert report.summary == "0 fired, 0 skipped, 1 failed"
    assert "From:" in report.lines[0].detail
    db.session.refresh(campaign)
    assert campaign.status == CampaignStatus.DRAFT
    assert _letters(campaign.id) == 0


def test_send_at_refuses_the_past_and_a_launched_campaign(app: Flask) -> None:
    campaign = CampaignFactory(commit=True)
    with pytest.raises(ScheduleError, match="is in the past"):
        create_send_at(campaign, "2027-05-01T09:00", "Europe/Paris", now=CREATED)
    with pytest.raises(ScheduleError, match="Europe/Pariss"):
        create_send_at(campaign, "2027-06-26T09:00", "Europe/Pariss", now=CREATED)
    campaigns.launch_campaign(campaign)
    with pytest.raises(ScheduleError, match="only a draft can be scheduled"):
        create_send_at(campaign, "2027-06-26T09:00", "Europe/Paris", now=CREATED)


def test_yearly_campaign_launches_a_copy_each_year_and_catches_up_by_skipping(
    app: Flask,
) -> None:
    template = CampaignFactory(name="26 June letter", commit=True)
    create_yearly(template, 6, 26, "09:00", "Europe/Paris", now=CREATED)
    db.session.commit()

    report = tick(datetime(2027, 6, 26, 7, tzinfo=UTC))
    assert report.summary == "1 fired, 0 skipped"
    copy = db.session.get(Campaign, report.lines[0].campaign_id)
    assert copy is not None
    assert (copy.name, copy.template_id, copy.status) == (
        "26 June letter 2027",
        template.id,
        CampaignStatus.SENDING,
    )
    assert copy.audience == template.audience and _letters(copy.id) == 1
    assert template.status == CampaignStatus.DRAFT

    # Down from before 26 June 2028 until an hour after the 2030 fire: the two missed
    # years are each recorded and said, the one within the grace period still goes.
    report = tick(datetime(2030, 6, 26, 8, tzinfo=UTC))
    assert report.summary == "1 fired, 2 skipped"
    assert [line.detail for line in report.lines[:2]] == [
        "due 2028-06-26 09:00 Europe/Paris, 730 days late: not sent",
        "due 2029-06-26 09:00 Europe/Paris, 365 days late: not sent",
    ]
    latest = db.session.get(Campaign, report.lines[2].campaign_id)
    assert latest is not None and latest.name == "26 June letter 2030"
    names = db.session.scalars(select(Campaign.name).where(Campaign.template_id == template.id))
    assert sorted(names) == ["26 June letter 2027", "26 June letter 2030"]
    assert tick(datetime(2030, 6, 26, 8, tzinfo=UTC)).lines == []


def test_two_ticks_at_the_same_instant_fire_once(app: Flask) -> None:
    campaign = CampaignFactory(commit=True)
    create_send_at(campaign, "2027-06-26T09:00", "Europe/Paris", now=CREATED)
    db.session.commit()
    due = datetime(2027, 6, 26, 7, tzinfo=UTC)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        with app.app_context():
            try:
                results.append(tick(due))
            except BaseException as error:  # reported below, not lost in the thread
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(len(report.lines) for report in results) == 1
    db.session.expire_all()
    assert _letters(campaign.id) == 1
    assert len(_runs()) == 1
