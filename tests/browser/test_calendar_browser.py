"""Through the pages in Chromium: a campaign repeated every 26 June with a 14-day follow-up,
and both dates in the calendar's list."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from playwright.sync_api import Page, expect

from campaign.extensions import db
from campaign.models import Role
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.schedules import advocacy_calendar as calendar_service
from campaign.services.statements import statements
from tests.browser.conftest import LiveServer

BODY = (
    "{{ salutation }}\n\nWe write on the day in support of victims of torture.\n\n{{ closing }}\n"
)


def _prepare(live_server: LiveServer) -> None:
    with live_server.app.app_context():
        statements.create_statement("Day letter", language="en", subject="26 June", body=BODY)
        statements.create_statement(
            "Follow-up: day letter", language="en", subject="Still no answer", body=BODY
        )
        press = lists.create_list("Press")
        person = create_contact(
            {"given_name": "Ana", "family_name": "Sample", "email": "ana@example.org"}
        )
        lists.add_contacts(press, [person.id])
        calendar_service.load_builtin_days()
        db.session.commit()
        db.session.remove()


def test_a_yearly_26_june_campaign_and_its_follow_up_show_in_the_calendar(
    signed_in_page: Callable[..., Page], live_server: LiveServer, fixed_clock: Any
) -> None:
    # The morning of 26 June, half an hour before the 09:00 send: this year's letter is still
    # to come (the year is always ahead of the real one, so no tick ever finds it due).
    year = datetime.now(UTC).year + 1
    fixed_clock(datetime(year, 6, 26, 8, 30, tzinfo=ZoneInfo("Europe/Brussels")))
    _prepare(live_server)
    page = signed_in_page(Role.SENDER)
    page.get_by_role("link", name="Campaigns").click()
    page.get_by_role("link", name="New campaign").click()
    page.get_by_label("Name").fill("Torture victims day")
    page.get_by_label("Statement").select_option(label="Day letter (draft)")
    page.locator("#f-include").get_by_label("List: Press").check()
    page.get_by_role("button", name="Save draft").click()

    page.locator("#open-schedule").click()
    expect(page.get_by_role("heading", name="Schedule and follow-ups")).to_be_visible()
    page.locator("#yearly-day").fill("26")
    page.locator("#yearly-month").select_option(label="June")
    page.locator("#yearly-time").fill("09:00")
    page.locator("#yearly-zone").select_option("Europe/Brussels")
    page.get_by_role("button", name="Repeat every year").click()
    expect(page.locator("#yearly-list")).to_contain_text(
        "Every year on 26 June at 09:00 Europe/Brussels"
    )

    page.get_by_label("Statement").select_option(label="Follow-up: day letter")
    page.get_by_label("Days after the previous letter").fill("14")
    page.get_by_label("To recipients").select_option(label="No reply")
    page.get_by_role("button", name="Add follow-up").click()
    expect(page.locator("#step-list")).to_contain_text(
        "14 days after the letter goes out, recipients who have not replied will receive "
        "‘Follow-up: day letter’"
    )

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Calendar").click()
    page.get_by_role("link", name="Next 12 months").click()
    expect(page.locator("#list-heading")).to_have_text(f"From 26 June {year} to 30 June {year + 1}")
    send_day, follow_day = date(year, 6, 26), date(year, 7, 10)
    sent = page.locator(f'#calendar-list dt[data-date="{send_day.isoformat()}"] + dd')
    expect(sent).to_contain_text("Torture victims day (yearly) is sent")
    expect(sent).to_contain_text("International Day in Support of Victims of Torture")
    followed = page.locator(f'#calendar-list dt[data-date="{follow_day.isoformat()}"] + dd')
    expect(followed).to_contain_text(
        "Torture victims day: follow-up 1 to recipients who have not replied"
    )

    followed.get_by_role("link").first.click()
    expect(page.get_by_role("heading", name="Schedule and follow-ups")).to_be_visible()
