"""Pacing a scheduled launch: first attempts in each recipient's office hours (their own zone),
or spread over a window of days; without pacing every letter is due at launch, as before."""

from __future__ import annotations

import html
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Campaign, Contact, Delivery, Role, Schedule
from campaign.scheduling import pacing
from campaign.scheduling.schedules import create_send_at
from campaign.scheduling.tick import tick
from campaign.scheduling.timezones import ScheduleError
from campaign.services.contacts.contacts import update_contact
from campaign.services.sending import batches as sending
from campaign.services.sending import campaigns
from tests.factories import CampaignFactory, ContactFactory

CREATED = datetime(2027, 6, 1, 12, tzinfo=UTC)
NEXT_YEAR = date.today().year + 1


def _campaign(people: list[tuple[str, str]]) -> Campaign:
    """A draft to (address, country) pairs."""
    recipients = [
        ContactFactory(email=email, family_name="X", country=country) for email, country in people
    ]
    return CampaignFactory(name="Paced", recipients=recipients, commit=True)


def _first_attempts(campaign: Campaign) -> dict[str, datetime]:
    rows = db.session.execute(
        select(Contact.email, Delivery.next_attempt_at)
        .join(Contact, Contact.id == Delivery.contact_id)
        .where(Delivery.campaign_id == campaign.id)
    ).all()
    return {email: at.astimezone(UTC) for email, at in rows}


def _in_office_hours(moment: datetime, zone: str) -> bool:
    local = moment.astimezone(ZoneInfo(zone))
    return local.weekday() < 5 and 9 <= local.hour < 17


def test_office_hours_pacing_sends_in_each_recipients_own_working_day(app: Flask) -> None:
    campaign = _campaign(
        [
            ("tashkent1@example.uz", "UZ"),
            ("tashkent2@example.uz", "UZ"),
            ("ny1@example.com", "US"),
            ("ny2@example.com", "US"),
            ("ny3@example.com", "US"),
        ]
    )
    # Friday 25 June 2027, 16:00 in Paris: 19:00 in Tashkent (closed until Monday),
    # 10:00 in New York (open until 17:00).
    create_send_at(
        campaign,
        "2027-06-25T16:00",
        "Europe/Paris",
        now=CREATED,
        pacing=pacing.pacing_rule("office-hours"),
    )
    db.session.commit()
    launch = datetime(2027, 6, 25, 14, tzinfo=UTC)
    assert tick(launch).summary == "1 fired, 0 skipped"

    firsts = _first_attempts(campaign)
    tashkent = [at for email, at in firsts.items() if email.startswith("tashkent")]
    new_york = sorted(at for email, at in firsts.items() if email.startswith("ny"))
    assert all(_in_office_hours(at, "Asia/Tashkent") for at in tashkent)
    assert {at.astimezone(ZoneInfo("Asia/Tashkent")).date().isoformat() for at in tashkent} == {
        "2027-06-28"  # Monday
    }
    assert all(_in_office_hours(at, "America/New_York") for at in new_york)
    # New York is open now: the first goes at launch, the others spread through the day.
    assert new_york[0] == launch
    assert len(set(new_york)) == 3
    assert new_york[-1].astimezone(ZoneInfo("America/New_York")).hour >= 13


def test_a_three_day_window_spreads_first_attempts_over_three_days(app: Flask) -> None:
    campaign = _campaign([(f"p{n}@example.org", "FR") for n in range(6)])
    create_send_at(
        campaign,
        "2027-06-25T16:00",
        "Europe/Paris",
        now=CREATED,
        pacing=pacing.pacing_rule("window", 3),
    )
    db.session.commit()
    # Launched by hand before the send-at: the pacing chosen with it still applies.
    assert campaigns.launch_campaign(campaign)
    db.session.commit()

    firsts = sorted(_first_attempts(campaign).values())
    start = firsts[0]
    assert [at - start for at in firsts] == [timedelta(hours=12 * n) for n in range(6)]
    assert len({at.date() for at in firsts}) >= 3
    # Only the first letter is due now; the others wait for their time.
    assert sending.due_count(campaign.id) == 1


def test_without_pacing_every_letter_is_due_at_launch(app: Flask) -> None:
    campaign = _campaign([("a@example.uz", "UZ"), ("b@example.com", "US")])
    create_send_at(campaign, "2027-06-25T16:00", "Europe/Paris", now=CREATED)
    db.session.commit()
    assert campaigns.launch_campaign(campaign)
    db.session.commit()
    assert sending.due_count(campaign.id) == 2


def test_recipients_without_a_country_zone_use_the_schedules_zone(app: Flask) -> None:
    campaign = _campaign([("council@example.eu", "EU")])
    create_send_at(
        campaign,
        "2027-06-26T08:00",  # a Saturday
        "Europe/Brussels",
        now=CREATED,
        pacing=pacing.pacing_rule("office_hours"),
    )
    db.session.commit()
    tick(datetime(2027, 6, 26, 6, tzinfo=UTC))
    (first,) = _first_attempts(campaign).values()
    assert first.astimezone(ZoneInfo("Europe/Brussels")) == datetime(
        2027, 6, 28, 9, tzinfo=ZoneInfo("Europe/Brussels")
    )


def test_country_zones_come_from_the_tz_database() -> None:
    assert pacing.country_zone("us") == "America/New_York"
    assert ZoneInfo(pacing.country_zone("UZ") or "").utcoffset(CREATED) == timedelta(hours=5)
    assert pacing.country_zone("UN") is None


def test_a_country_with_several_clocks_is_read_in_its_capitals_zone() -> None:
    # zone.tab lists St John's first for Canada and Kaliningrad first for Russia: 09:00
    # there is 07:30 in Ottawa and 08:00 in Moscow, before any office opens.
    assert pacing.country_zone("CA") == "America/Toronto"
    assert pacing.country_zone("RU") == "Europe/Moscow"
    assert pacing.country_zone("ua") == "Europe/Kyiv"
    assert pacing.country_zone("AU") == "Australia/Sydney"
    assert pacing.country_zone("BR") == "America/Sao_Paulo"


@pytest.mark.parametrize(("mode", "days"), [("window", 0), ("window", None), ("weekly", None)])
def test_a_bad_pacing_is_refused_in_words(mode: str, days: int | None) -> None:
    with pytest.raises(ScheduleError):
        pacing.pacing_rule(mode, days)


def _send_at_rule(campaign: Campaign) -> dict[str, Any]:
    schedule = db.session.scalar(select(Schedule).where(Schedule.campaign_id == campaign.id))
    assert schedule is not None
    return dict(schedule.rule)


def test_the_schedule_page_offers_pacing_and_shows_the_choice(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    campaign = _campaign([("a@example.uz", "UZ")])
    login(Role.SENDER)
    url = f"/campaigns/{campaign.id}/schedule/"
    form = {"date": f"{NEXT_YEAR}-06-25", "time": "09:00", "zone": "Europe/Paris"}
    refused = client.post(url + "send-at", data={**form, "pacing": "window", "pacing_days": "0"})
    assert refused.status_code == 422
    assert "Days: spread over 1 to 30 days" in html.unescape(refused.get_data(as_text=True))

    response = client.post(url + "send-at", data={**form, "pacing": "window", "pacing_days": "3"})
    assert response.status_code == 302
    assert _send_at_rule(campaign)["pacing"] == {"mode": "window", "days": 3}
    page = html.unescape(client.get(url).get_data(as_text=True))
    assert "letters spread evenly over 3 days" in page

    client.post(url + "send-at", data={**form, "pacing": "office_hours"})
    assert _send_at_rule(campaign)["pacing"] == {"mode": "office_hours"}


def test_schedule_send_takes_pacing_and_refuses_a_window_without_days(app: Flask) -> None:
    runner = app.test_cli_runner()
    campaign = _campaign([("a@example.uz", "UZ")])
    base = ["schedule-send", str(campaign.id), "--at", f"{NEXT_YEAR}-06-25T09:00", "--tz", "UTC"]
    refused = runner.invoke(args=[*base, "--pacing", "window"])
    assert refused.exit_code == 2
    assert "Days: spread over 1 to 30 days" in refused.output
    result = runner.invoke(args=[*base, "--pacing", "office-hours"])
    assert result.exit_code == 0, result.output
    assert "letters in each recipient's office hours" in result.output
    assert _send_at_rule(campaign)["pacing"] == {"mode": "office_hours"}


def test_a_contacts_explicit_zone_wins_over_their_countrys(app: Flask) -> None:
    # Both in France; one works at a mission in Almaty and says so on their contact record.
    campaign = _campaign([("almaty@example.fr", "FR"), ("paris@example.fr", "FR")])
    mission = db.session.scalar(select(Contact).where(Contact.email == "almaty@example.fr"))
    assert mission is not None
    update_contact(mission, {"time_zone": "Asia/Almaty"})
    create_send_at(
        campaign,
        "2027-06-25T16:00",  # Friday: Paris is open another hour, Almaty closed for the week
        "Europe/Paris",
        now=CREATED,
        pacing=pacing.pacing_rule("office_hours"),
    )
    db.session.commit()
    launch = datetime(2027, 6, 25, 14, tzinfo=UTC)
    tick(launch)

    firsts = _first_attempts(campaign)
    assert _in_office_hours(firsts["almaty@example.fr"], "Asia/Almaty")
    assert firsts["almaty@example.fr"].astimezone(ZoneInfo("Asia/Almaty")).date() == date(
        2027, 6, 28
    )
    assert firsts["paris@example.fr"] == launch


def test_a_recipients_zone_is_their_own_then_their_countrys() -> None:
    assert pacing.recipient_zone("Asia/Almaty", "FR") == "Asia/Almaty"
    assert pacing.recipient_zone("", "US") == "America/New_York"
    assert pacing.recipient_zone("", "EU") is None
    # A stored zone a later tz database no longer knows must not stop a launch.
    assert pacing.recipient_zone("Atlantis/Capital", "FR") == "Europe/Paris"
