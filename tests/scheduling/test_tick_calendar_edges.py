"""Time travel through `tick` across the calendar's awkward days: daylight-saving changes,
29 February, the turn of the year, and a scheduled send broken by an unexpected error."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Campaign, CampaignStatus
from campaign.scheduling.schedules import create_send_at, create_yearly
from campaign.scheduling.tick import tick
from tests.factories import CampaignFactory
from tests.scheduling.test_tick import _letters

CREATED = datetime(2027, 1, 1, 12, tzinfo=UTC)


def _copies(template: Campaign) -> list[str]:
    return sorted(
        db.session.scalars(select(Campaign.name).where(Campaign.template_id == template.id))
    )


def test_a_send_at_on_the_morning_clocks_go_forward_fires_at_local_nine(app: Flask) -> None:
    # 28 March 2027: Paris moves from UTC+1 to UTC+2 at 02:00; 09:00 local is 07:00 UTC.
    campaign = CampaignFactory(commit=True)
    create_send_at(campaign, "2027-03-28T09:00", "Europe/Paris", now=CREATED)
    db.session.commit()
    assert tick(datetime(2027, 3, 28, 6, 59, tzinfo=UTC)).lines == []
    assert tick(datetime(2027, 3, 28, 7, 0, tzinfo=UTC)).summary == "1 fired, 0 skipped"
    assert _letters(campaign.id) == 1


def test_a_yearly_send_in_the_hour_that_happens_twice_fires_once(app: Flask) -> None:
    # 31 October 2027: Paris goes back from 03:00 to 02:00, so 02:30 happens at 00:30 and
    # again at 01:30 UTC. The first one is the fire; the repeat hour adds nothing.
    template = CampaignFactory(name="Night letter", commit=True)
    create_yearly(template, 10, 31, "02:30", "Europe/Paris", now=CREATED)
    db.session.commit()
    assert tick(datetime(2027, 10, 31, 0, 29, tzinfo=UTC)).lines == []
    assert tick(datetime(2027, 10, 31, 0, 30, tzinfo=UTC)).summary == "1 fired, 0 skipped"
    assert tick(datetime(2027, 10, 31, 1, 30, tzinfo=UTC)).lines == []
    assert tick(datetime(2027, 10, 31, 3, 0, tzinfo=UTC)).lines == []
    assert _copies(template) == ["Night letter 2027"]


def test_a_yearly_send_on_29_february_fires_on_28_february_in_other_years(app: Flask) -> None:
    template = CampaignFactory(name="Leap letter", commit=True)
    create_yearly(template, 2, 29, "09:00", "Europe/Paris", now=CREATED)
    db.session.commit()
    assert tick(datetime(2027, 2, 28, 7, 59, tzinfo=UTC)).lines == []
    assert tick(datetime(2027, 2, 28, 8, 0, tzinfo=UTC)).summary == "1 fired, 0 skipped"
    # 2028 is a leap year: not on the 28th, on the 29th.
    assert tick(datetime(2028, 2, 28, 8, 0, tzinfo=UTC)).lines == []
    assert tick(datetime(2028, 2, 29, 8, 0, tzinfo=UTC)).summary == "1 fired, 0 skipped"
    assert _copies(template) == ["Leap letter 2027", "Leap letter 2028"]


def test_a_new_year_send_east_of_utc_fires_in_the_old_utc_year_and_is_named_for_the_new(
    app: Flask,
) -> None:
    # 1 January 00:30 in Tashkent (UTC+5) is 31 December 19:30 UTC.
    template = CampaignFactory(name="New year letter", commit=True)
    create_yearly(template, 1, 1, "00:30", "Asia/Tashkent", now=CREATED)
    db.session.commit()
    assert tick(datetime(2027, 12, 31, 19, 29, tzinfo=UTC)).lines == []
    report = tick(datetime(2027, 12, 31, 19, 30, tzinfo=UTC))
    assert report.summary == "1 fired, 0 skipped"
    assert _copies(template) == ["New year letter 2028"]
    assert tick(datetime(2028, 1, 1, 12, tzinfo=UTC)).lines == []


def test_a_scheduled_send_broken_by_an_unexpected_error_goes_back_to_draft_and_says_why(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    from campaign.services.statements import presend

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the salutation table is unreadable")

    campaign = CampaignFactory(commit=True)
    create_send_at(campaign, "2027-06-26T09:00", "Europe/Paris", now=CREATED)
    db.session.commit()
    monkeypatch.setattr(presend, "check_audience", broken)
    report = tick(datetime(2027, 6, 26, 7, tzinfo=UTC))
    assert report.summary == "0 fired, 0 skipped, 1 failed"
    db.session.refresh(campaign)
    # Not left "scheduled" for a time that has passed, with nothing more to come.
    assert campaign.status == CampaignStatus.DRAFT
    assert campaign.send_at is None
    assert "the salutation table is unreadable" in campaign.status_reason
    assert _letters(campaign.id) == 0


def test_a_campaign_repeats_once_a_year_per_day_even_when_its_repeat_is_made_again(
    app: Flask,
) -> None:
    from campaign.scheduling.timezones import ScheduleError

    template = CampaignFactory(name="26 June letter", commit=True)
    first = create_yearly(template, 6, 26, "09:00", "Europe/Paris", now=CREATED)
    db.session.commit()
    # A double submit, or the command run twice: refused, with what to do instead.
    with pytest.raises(ScheduleError, match="already repeats every year on this day"):
        create_yearly(template, 6, 26, "09:00", "Europe/Paris", now=CREATED)
    assert tick(datetime(2027, 6, 26, 7, tzinfo=UTC)).summary == "1 fired, 0 skipped"

    # Stopped after this year's fire and made again for 10:00 the same day: no second copy.
    first.is_enabled = False
    create_yearly(
        template, 6, 26, "10:00", "Europe/Paris", now=datetime(2027, 6, 26, 7, 30, tzinfo=UTC)
    )
    db.session.commit()
    report = tick(datetime(2027, 6, 26, 8, tzinfo=UTC))
    assert report.lines[0].detail == (
        "the '26 June letter 2027' copy was already made this year: nothing to do"
    )
    assert _copies(template) == ["26 June letter 2027"]
    # The next year, the new repeat makes its copy.
    assert tick(datetime(2028, 6, 26, 8, tzinfo=UTC)).summary == "1 fired, 0 skipped"
    assert _copies(template) == ["26 June letter 2027", "26 June letter 2028"]
