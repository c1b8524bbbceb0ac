"""The advocacy calendar page (month grid, 12-month list, reminders, adding events) and the
secret ICS feed."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, CalendarEvent, Notification, Role
from campaign.services.schedules import advocacy_calendar as calendar_service
from campaign.services.schedules import cases
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
        "starts_on": f"{NEXT_YEAR}-04-03",
        "ends_on": f"{NEXT_YEAR}-04-04",
        "place": "Samarkand",
        "countries": "UZ, KZ",
        "reminder_days": "7",
        **changes,
    }


def test_a_viewer_sees_the_built_in_days_in_the_month_and_pages_through_months(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    calendar_service.load_builtin_days()
    db.session.commit()
    login(Role.VIEWER)
    page = text_of(client.get(f"/calendar/?month={NEXT_YEAR}-06"))
    assert f"June {NEXT_YEAR}" in page
    assert "International Day in Support of Victims of Torture" in _day_cell(
        page, date(NEXT_YEAR, 6, 26)
    )
    assert f"month={NEXT_YEAR}-05" in page and f"month={NEXT_YEAR}-07" in page
    # A viewer reads only: no form to add an event, no secret feed address.
    assert "Add an event" not in page and "calendar.ics" not in page
    december = text_of(client.get(f"/calendar/?month={NEXT_YEAR}-12"))
    assert "Human Rights Day" in _day_cell(december, date(NEXT_YEAR, 12, 10))


def test_an_editor_adds_an_event_and_its_reminder_shows_a_week_before(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    login(Role.EDITOR)
    response = client.post("/calendar/events", data=_event_form())
    assert response.status_code == 302
    page = text_of(client.get(f"/calendar/?month={NEXT_YEAR}-04"))
    for day in (3, 4):
        assert "EU–Central Asia summit (3–4 April, Samarkand)" in _day_cell(
            page, date(NEXT_YEAR, 4, day)
        )
    march = text_of(client.get(f"/calendar/?month={NEXT_YEAR}-03"))
    reminder = _day_cell(march, date(NEXT_YEAR, 3, 27))
    assert "Reminder" in reminder and "7 days before" in reminder
    assert "09:00" in reminder  # 09:00 in the organisation's zone
    event = db.session.scalar(select(CalendarEvent))
    assert event is not None and event.countries == ["UZ", "KZ"]


def test_a_viewer_cannot_add_an_event(client: FlaskClient, login: Any, app: Flask) -> None:
    login(Role.VIEWER)
    assert client.post("/calendar/events", data=_event_form()).status_code == 403
    assert db.session.scalars(select(CalendarEvent)).all() == []


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"name": "  "}, "name", "give the event a name"),
        ({"ends_on": f"{NEXT_YEAR}-04-01"}, "ends_on", "ends"),
        ({"countries": "Narnia"}, "countries", "'Narnia' is not a country code"),
        ({"reminder_days": "3650"}, "reminder_days", "3650 days before is not possible"),
        ({"reminder_days": "a week"}, "reminder_days", "'a week' is not a number of days"),
        ({"starts_on": "soon"}, "starts_on", "'soon' is not a date"),
    ],
)
def test_bad_event_input_is_explained_next_to_its_field(
    client: FlaskClient,
    login: Any,
    app: Flask,
    changes: dict[str, str],
    field: str,
    words: str,
) -> None:
    login(Role.EDITOR)
    response = client.post("/calendar/events", data=_event_form(**changes))
    assert response.status_code == 422
    found = re.search(rf'id="e-{field}"[^>]*>([^<]*)<', text_of(response))
    assert found and words in found.group(1)
    assert db.session.scalars(select(CalendarEvent)).all() == []


def test_reminders_are_listed_at_the_top_newest_first(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    now = datetime.now(UTC)
    db.session.add(Notification(text="Older: summit in 7 days", created_at=now - timedelta(days=2)))
    db.session.add(Notification(text="Newer: anniversary in 7 days", created_at=now))
    db.session.commit()
    login(Role.VIEWER)
    page = text_of(client.get("/calendar/"))
    reminders = page[page.index("Reminders") : page.index("Calendar views")]
    assert reminders.index("Newer: anniversary") < reminders.index("Older: summit")


def test_a_case_anniversary_shows_with_its_years_and_the_pseudonym(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    arrested = date(date.today().year - 3, 3, 12)
    case = cases.create_case(
        "Real Name", pseudonym="Journalist A.", is_high_risk=True, country="UZ"
    )
    cases.add_case_date(case, "arrest", arrested, mark_anniversary=True)
    db.session.commit()
    login(Role.EDITOR)
    page = text_of(client.get(f"/calendar/?month={NEXT_YEAR}-03"))
    cell = _day_cell(page, date(NEXT_YEAR, 3, 12))
    assert f"Arrest of Journalist A. (12 March {arrested.year}, 4 years)" in cell
    assert "Real Name" not in page


def test_the_list_view_shows_a_send_and_its_follow_up(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    from campaign.scheduling.schedules import create_send_at
    from campaign.services.contacts import lists
    from campaign.services.sending import campaigns, followups
    from campaign.services.sending.campaigns import AudienceSpec
    from campaign.services.statements import statements

    body = "{{ salutation }}\n\nAbout the trial.\n\n{{ closing }}\n"
    letter = statements.create_statement("Letter", language="en", subject="Trial", body=body)
    press = lists.create_list("Press")
    campaign = campaigns.create_campaign(
        letter,
        name="Letter at the summit",
        audience=AudienceSpec((f"list:{press.id}",)),
        from_address="Office <office@example.org>",
    )
    send_on = date.today() + timedelta(days=30)
    create_send_at(campaign, f"{send_on.isoformat()}T10:00", "Europe/Paris")
    followups.add_step(campaign, letter, 14, "no_reply")
    db.session.commit()
    login(Role.VIEWER)
    page = text_of(client.get("/calendar/?view=list"))
    listing = page[page.index('id="calendar-list"') :]
    sent = listing.index(f'data-date="{send_on.isoformat()}"')
    follow = listing.index(f'data-date="{(send_on + timedelta(days=14)).isoformat()}"')
    assert "Letter at the summit is sent" in listing[sent:follow]
    assert (
        "Letter at the summit: follow-up 1 to recipients who have not replied" in (listing[follow:])
    )
    assert f'href="/campaigns/{campaign.id}/schedule/"' in listing


# --- the ICS feed ---------------------------------------------------------------------------


def test_the_ics_feed_answers_only_with_its_secret_token(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    calendar_service.add_event("EU–Central Asia summit", date(NEXT_YEAR, 4, 3), place="Samarkand")
    db.session.commit()
    token = calendar_service.feed_token()
    response = client.get(f"/calendar.ics?token={token}")
    assert response.status_code == 200
    assert response.mimetype == "text/calendar"
    body = response.get_data(as_text=True)
    assert "BEGIN:VCALENDAR" in body and "SUMMARY:EU–Central Asia summit" in body
    assert client.get("/calendar.ics?token=" + "0" * len(token)).status_code == 404
    assert client.get("/calendar.ics").status_code == 404


def test_only_admins_see_the_secret_feed_address_with_a_warning(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    login(Role.EDITOR)
    response = client.get("/calendar/")
    assert response.status_code == 200 and "<h1>Advocacy calendar</h1>" in text_of(response)
    assert "calendar.ics" not in text_of(response)
    admin = make_user(Role.ADMIN, "boss@example.org")
    client.post("/logout")
    client.post("/login", data={"email": admin.email, "password": TEST_PASSWORD})
    page = text_of(client.get("/calendar/"))
    assert f"/calendar.ics?token={calendar_service.feed_token()}" in page
    assert "This address is a secret" in page


@pytest.mark.parametrize("csrf_enabled", [True])
def test_adding_an_event_needs_the_csrf_token(client: FlaskClient, app: Flask) -> None:
    user = make_user(Role.EDITOR)
    client.post(
        "/login",
        data={
            "email": user.email,
            "password": TEST_PASSWORD,
            "csrf_token": csrf_token(client, "/login"),
        },
    )
    assert client.post("/calendar/events", data=_event_form()).status_code == 400
    assert db.session.scalars(select(CalendarEvent)).all() == []
    form = {**_event_form(), "csrf_token": csrf_token(client, "/calendar/")}
    assert client.post("/calendar/events", data=form).status_code == 302


# --- the page's cost, anniversary links, anniversary-anchored yearly sends -------------------


def _add_month_rows(first: int, count: int) -> None:
    """`count` marked case dates, campaigns (send-at + a follow-up) and events, in May."""
    from campaign.scheduling.schedules import create_send_at
    from campaign.services.contacts import lists
    from campaign.services.sending import campaigns, followups
    from campaign.services.sending.campaigns import AudienceSpec
    from campaign.services.statements import statements

    body = "{{ salutation }}\n\nAbout the trial.\n\n{{ closing }}\n"
    press = lists.create_list(f"Press {first}")
    for number in range(first, first + count):
        day = number % 28 + 1
        case = cases.create_case(f"Person {number}", country="UZ")
        cases.add_case_date(case, "arrest", date(NEXT_YEAR - 3, 5, day), mark_anniversary=True)
        letter = statements.create_statement(
            f"Letter {number}", language="en", subject="Trial", body=body
        )
        campaign = campaigns.create_campaign(
            letter,
            name=f"Campaign {number}",
            audience=AudienceSpec((f"list:{press.id}",)),
            from_address="Office <office@example.org>",
        )
        create_send_at(campaign, f"{NEXT_YEAR}-05-{day:02d}T10:00", "Europe/Paris")
        followups.add_step(campaign, letter, 3, "no_reply")
        calendar_service.add_event(f"Event {number}", date(NEXT_YEAR, 5, day), reminder_days=[2])
    db.session.commit()


def _statements_for(client: FlaskClient, path: str) -> tuple[int, str]:
    from sqlalchemy import event

    count = 0

    def counted(*_: Any) -> None:
        nonlocal count
        count += 1

    event.listen(db.engine, "before_cursor_execute", counted)
    try:
        response = client.get(path)
    finally:
        event.remove(db.engine, "before_cursor_execute", counted)
    assert response.status_code == 200
    return count, text_of(response)


def test_the_month_view_costs_the_same_queries_for_3_or_30_of_each_row(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    login(Role.EDITOR)
    path = f"/calendar/?month={NEXT_YEAR}-05"
    _add_month_rows(0, 3)
    few, page = _statements_for(client, path)
    assert page.count("Campaign 2: follow-up 1") == 1 and "Arrest of Person 2" in page
    _add_month_rows(3, 27)
    many, page = _statements_for(client, path)
    assert page.count(": follow-up 1 to recipients") == 30
    assert page.count("Arrest of Person") == 30 and "Campaign 29 is sent" in page
    assert many == few


def test_an_anniversary_links_to_its_case_page_when_there_is_one(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    if "cases.show" not in app.view_functions:
        # The cases pages are another area's; stand in for them until they are installed.
        app.add_url_rule("/cases/<int:case_id>", "cases.show", lambda case_id: "")
    case = cases.create_case("Ana Example", country="UZ")
    cases.add_case_date(case, "arrest", date(NEXT_YEAR - 2, 3, 12), mark_anniversary=True)
    db.session.commit()
    login(Role.VIEWER)
    with app.test_request_context():
        from flask import url_for

        case_url = url_for("cases.show", case_id=case.id)
    page = text_of(client.get(f"/calendar/?month={NEXT_YEAR}-03"))
    cell = _day_cell(page, date(NEXT_YEAR, 3, 12))
    assert f'<a href="{case_url}">Arrest of Ana Example' in cell


def test_a_yearly_send_anchored_on_a_case_date_shows_on_the_anniversary(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    from campaign.scheduling.schedules import create_yearly
    from campaign.services.contacts import lists
    from campaign.services.sending import campaigns
    from campaign.services.sending.campaigns import AudienceSpec
    from campaign.services.statements import statements

    case = cases.create_case("Ana Example", country="UZ")
    arrest = cases.add_case_date(case, "arrest", date(NEXT_YEAR - 2, 3, 12), mark_anniversary=True)
    body = "{{ salutation }}\n\nTwo years in prison.\n\n{{ closing }}\n"
    letter = statements.create_statement("Anniversary", language="en", subject="Ana", body=body)
    campaign = campaigns.create_campaign(
        letter,
        name="Free Ana",
        audience=AudienceSpec((f"list:{lists.create_list('Press').id}",)),
        from_address="Office <office@example.org>",
    )
    schedule = create_yearly(campaign, 3, 12, "10:00", "Europe/Paris")
    schedule.case_date_id = arrest.id
    db.session.commit()
    login(Role.VIEWER)
    page = text_of(client.get(f"/calendar/?month={NEXT_YEAR}-03"))
    cell = _day_cell(page, date(NEXT_YEAR, 3, 12))
    assert "Free Ana (yearly) is sent" in cell and "Arrest of Ana Example" in cell
    assert "10:00" in cell


@pytest.mark.parametrize("month", ["9999-12", "0-1", "2027-13", "june", "2027-06-01"])
def test_a_month_the_calendar_cannot_show_opens_the_current_month(
    client: FlaskClient, login: Any, fixed_clock: Any, month: str
) -> None:
    # 23:30 on 31 January in UTC is already 1 February in Paris: the organisation's month.
    fixed_clock(datetime(2027, 1, 31, 23, 30, tzinfo=UTC))
    login(Role.VIEWER)
    response = client.get(f"/calendar/?month={month}")
    assert response.status_code == 200
    page = text_of(response)
    heading = re.search(r'<h2 id="month-heading">([^<]*)</h2>', page)
    assert heading and heading[1] == "February 2027"
    assert 'class=" cal-today" data-date="2027-02-01"' in page


def test_the_list_view_starts_on_the_organisations_today(
    client: FlaskClient, login: Any, fixed_clock: Any
) -> None:
    fixed_clock(datetime(2027, 1, 31, 23, 30, tzinfo=UTC))
    login(Role.VIEWER)
    response = client.get("/calendar/?view=list")
    assert response.status_code == 200
    heading = re.search(r'<h2 id="list-heading">([^<]*)</h2>', text_of(response))
    assert heading and heading[1] == "From 1 February 2027 to 29 February 2028"


def test_an_admin_retires_a_leaked_feed_address_and_only_the_new_one_works(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    calendar_service.add_event("EU–Central Asia summit", date(NEXT_YEAR, 4, 3))
    db.session.commit()
    leaked = calendar_service.feed_token()
    login(Role.EDITOR)
    assert client.post("/calendar/feed-address").status_code == 403
    client.post("/logout")
    login(Role.ADMIN)
    response = client.post("/calendar/feed-address", follow_redirects=True)
    page = text_of(response)
    assert "the old one no longer works" in page
    fresh = calendar_service.feed_token()
    assert fresh != leaked and f"/calendar.ics?token={fresh}" in page
    assert client.get(f"/calendar.ics?token={leaked}").status_code == 404
    assert client.get(f"/calendar.ics?token={fresh}").status_code == 200
    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "calendar.feed_address_replaced")
    ).all()
    assert len(events) == 1
