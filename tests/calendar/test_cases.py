"""Cases: who sees a high-risk person's real name, 29 February anniversaries, letter merge data."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Campaign, Notification, Role, Schedule, ScheduleRun
from campaign.scheduling.stored_text import read
from campaign.scheduling.tick import tick
from campaign.services.schedules import advocacy_calendar as calendar
from campaign.services.schedules import cases
from campaign.services.schedules.cases import CaseError
from campaign.services.statements import statements
from tests.conftest import make_user


def test_a_high_risk_name_is_for_admins_only(app: Flask) -> None:
    admin, editor, viewer = (make_user(role) for role in (Role.ADMIN, Role.EDITOR, Role.VIEWER))
    case = cases.create_case(
        "Dilnoza Karimova", "D. K.", is_high_risk=True, country="uz", status="detained"
    )
    assert cases.display_name(case, admin) == "Dilnoza Karimova"
    assert cases.display_name(case, editor) == "D. K."
    assert cases.display_name(case, viewer) == "D. K."
    assert cases.display_name(case, None) == "D. K."
    assert case.country == "UZ"
    public = cases.create_case("Azamjon Formonov", country="UZ", status="sentenced")
    assert cases.display_name(public, viewer) == "Azamjon Formonov"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"is_high_risk": True}, "a person at high risk needs one"),
        ({"country": "ZZ"}, "'ZZ' is not a country code"),
        ({"status": "jailed"}, "'jailed' is not one of"),
    ],
)
def test_bad_cases_are_refused(app: Flask, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(CaseError, match=message):
        cases.create_case("Someone", **kwargs)  # type: ignore[arg-type]


def test_a_29_february_anniversary_fires_on_28_february_and_says_so(app: Flask) -> None:
    make_user(Role.EDITOR)
    case = cases.create_case("Real Name", "Prisoner A", is_high_risk=True, country="TM")
    arrest = cases.add_case_date(
        case,
        "arrest",
        date(2016, 2, 29),
        "Art. 159 Criminal Code",
        "HRW report",
        mark_anniversary=True,
        reminder_days=[0],
    )
    db.session.commit()
    assert cases.anniversary_note(arrest.on) == "fires on 28 February in years without 29 February"
    schedule = db.session.scalars(select(Schedule).where(Schedule.case_date_id == arrest.id)).one()
    # The schedule's name carries the note, so every list of schedules says it.
    assert schedule.name.endswith("fires on 28 February in years without 29 February")
    assert "Real Name" not in schedule.name and "Prisoner A" in schedule.name
    # From 2027 (no 29 February) the reminder is on 28 February at 09:00 Paris (08:00 UTC) …
    after = datetime(2027, 1, 1, tzinfo=UTC)
    due = calendar.next_reminder_run(schedule, after)
    assert due == datetime(2027, 2, 28, 8, 0, tzinfo=UTC)
    assert schedule.next_run_at == due
    assert tick(due).summary == "1 fired, 0 skipped"
    db.session.refresh(schedule)
    text = read(db.session.scalars(select(Notification)).one().text)
    assert text == (
        "Anniversary today: arrest of Prisoner A (29 February 2016, 11 years)"
        " — marked on 28 February this year"
    )
    # … and in the leap year 2028 back on 29 February.
    assert schedule.next_run_at == datetime(2028, 2, 29, 8, 0, tzinfo=UTC)


def test_future_case_dates_are_refused(app: Flask) -> None:
    case = cases.create_case("Someone")
    with pytest.raises(CaseError, match="is in the future"):
        cases.add_case_date(case, "arrest", date(2999, 1, 1))


def test_letters_get_the_linked_cases_with_letter_safe_names(app: Flask) -> None:
    statement = statements.create_statement(
        "Joint letter", language="en", subject="Free them", body="We write about the journalists."
    )
    campaign = Campaign(name="Free the journalists", statement_id=statement.id)
    db.session.add(campaign)
    db.session.flush()
    hidden = cases.create_case(
        "Real Name", "Journalist B", is_high_risk=True, country="UZ", status="detained"
    )
    cases.add_case_date(hidden, "arrest", date(2021, 3, 12), "Art. 244-1", "RFE/RL")
    cases.create_case("Not linked", country="KZ")
    cases.link_case(campaign, hidden)
    cases.link_case(campaign, hidden)  # twice: still one
    db.session.commit()
    [merged] = cases.cases_context(campaign)
    assert merged["name"] == "Journalist B"
    assert merged["country"] == "UZ" and merged["country_name"] == "Uzbekistan"
    assert merged["status"] == "detained"
    assert merged["dates"] == [
        {
            "kind": "arrest",
            "on": date(2021, 3, 12),
            "on_text": "12 March 2021",
            "legal_reference": "Art. 244-1",
            "source": "RFE/RL",
        }
    ]


def test_a_case_marked_high_risk_later_loses_its_real_name_from_reminders(app: Flask) -> None:
    editor = make_user(Role.EDITOR)
    case = cases.create_case("Open Name", country="UZ")
    arrest = cases.add_case_date(
        case, "arrest", date(2019, 3, 14), mark_anniversary=True, reminder_days=[0]
    )
    db.session.commit()
    [schedule] = db.session.scalars(select(Schedule).where(Schedule.case_date_id == arrest.id))
    due = datetime(2027, 3, 14, 8, 0, tzinfo=UTC)
    schedule.next_run_at = due
    db.session.commit()
    tick(due + timedelta(minutes=1))  # as the scheduler fires it: a run, then the reminder
    db.session.commit()
    assert "arrest of Open Name (" in read(db.session.scalars(select(Notification)).one().text)
    assert "arrest of Open Name (" in read(db.session.scalars(select(ScheduleRun.detail)).one())
    with pytest.raises(CaseError, match=r"^Pseudonym: a person at high risk needs one"):
        cases.update_case(
            case,
            name="Open Name",
            pseudonym="",
            is_high_risk=True,
            country="UZ",
            status="detained",
            summary="",
            actor=editor,
        )
    changed = cases.update_case(
        case,
        name=None,
        pseudonym="Prisoner M.",
        is_high_risk=True,
        country="UZ",
        status="detained",
        summary="",
        actor=editor,
    )
    db.session.commit()
    assert changed == ["pseudonym", "is_high_risk", "status"]
    assert "Open Name" not in schedule.name and "Prisoner M." in schedule.name
    text = read(db.session.scalars(select(Notification)).one().text)
    assert "Open Name" not in text and "arrest of Prisoner M. (" in text
    detail = read(db.session.scalars(select(ScheduleRun.detail)).one())
    assert "Open Name" not in detail and "arrest of Prisoner M. (" in detail


def test_cases_are_listed_in_pages_by_the_name_the_viewer_may_see(app: Flask) -> None:
    viewer, admin = make_user(Role.VIEWER), make_user(Role.ADMIN)
    for number in range(5):
        cases.create_case(f"Person {number}", country="KZ", status="detained")
    cases.create_case("Hidden Person", "Zed", is_high_risk=True, country="KZ")
    db.session.commit()
    first = cases.list_cases(viewer, country="kz", per_page=4)
    assert (first.total, first.pages, len(first.cases)) == (6, 2, 4)
    second = cases.list_cases(viewer, country="KZ", page=2, per_page=4)
    # Ordered by the name shown: "Zed" sorts last, not as "Hidden Person" would.
    assert [cases.letter_name(case) for case in second.cases] == ["Person 4", "Zed"]
    assert cases.list_cases(viewer, q="hidden").total == 0
    assert cases.list_cases(admin, q="hidden").total == 1
    assert cases.list_cases(viewer, status="detained").total == 5
    assert cases.list_cases(viewer, q="50%").total == 0  # a wildcard is a character
