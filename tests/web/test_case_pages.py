"""The case pages: list, new and edit, key dates with anniversaries, links to campaigns, who
sees a high-risk person's real name, and the statement preview merging a campaign's cases."""

from __future__ import annotations

import mailbox
import re
from datetime import date, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.devmail import DevmailSink
from campaign.extensions import db
from campaign.models import AuditEvent, Campaign, CampaignStatus, Case, CaseDate, Role, Schedule
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.schedules import cases
from campaign.services.sending import campaigns
from campaign.services.sending.campaigns import AudienceSpec
from campaign.services.statements import statements
from tests.conftest import TEST_PASSWORD, make_user
from tests.pages import csrf_token, text_of

REAL_NAME = "Dilshod Real-Name"
PSEUDONYM = "Prisoner J."
TODAY = date.today()
# An arrest whose anniversary falls in the current month, so the default calendar shows it.
ARRESTED = date(TODAY.year - 3, TODAY.month, min(TODAY.day, 28))
CASE_BODY = (
    "{{ salutation }}\n\nWe write about:\n\n"
    "{% for case in cases %}- {{ case.name }} ({{ case.country_name }})"
    "{% for d in case.dates %}, {{ d.kind }} on {{ d.on_text }}{% endfor %}\n"
    "{% endfor %}\n{{ closing }}\n"
)


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    return {**app_overrides, "TIMEZONE": "Europe/Paris"}


def _field_error(page: str, field: str) -> str:
    found = re.search(rf'id="e-{field}"[^>]*>(.*?)</p>', page, re.S)
    assert found, f"no error shown for {field}"
    return found.group(1)


def _high_risk_case() -> Case:
    case = cases.create_case(
        REAL_NAME, PSEUDONYM, is_high_risk=True, country="UZ", status="sentenced"
    )
    cases.add_case_date(
        case, "arrest", ARRESTED, "Art. 221", "Lawyer's statement", mark_anniversary=True
    )
    db.session.commit()
    return case


def _reminders(case_date_id: int) -> list[Schedule]:
    query = select(Schedule).where(Schedule.case_date_id == case_date_id)
    return list(db.session.scalars(query))


def test_an_editor_creates_a_case_and_its_dates_through_the_pages(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    login(Role.EDITOR)
    assert "New case" in text_of(client.get("/cases/"))
    response = client.post(
        "/cases/new",
        data={"name": "Azamjon Formonov", "country": "uz", "status": "sentenced", "summary": "x"},
    )
    assert response.status_code == 302
    case = db.session.scalars(select(Case)).one()
    assert response.headers["Location"].endswith(f"/cases/{case.id}")
    data = {
        "kind": "arrest",
        "on": "2015-07-12",
        "legal_reference": "Art. 165 Criminal Code",
        "source": "HRW report",
        "mark_anniversary": "1",
        "reminder_days": "7, 1",
    }
    assert client.post(f"/cases/{case.id}/dates", data=data).status_code == 302
    sentence = {"kind": "sentence", "on": "2015-10-01", "source": "Court verdict"}
    assert client.post(f"/cases/{case.id}/dates", data=sentence).status_code == 302
    page = text_of(client.get(f"/cases/{case.id}"))
    table = page[page.index('id="case-dates"') :]
    for words in ("Arrest", "12 July 2015", "Art. 165 Criminal Code", "HRW report"):
        assert words in table
    assert "staff reminded 1 day before, 7 days before" in table
    assert "Sentence" in table and "1 October 2015" in table
    assert "Uzbekistan (UZ)" in page and "Sentenced" in page
    [arrest] = [d for d in case.dates if d.kind == "arrest"]
    assert sorted(s.rule["days_before"] for s in _reminders(arrest.id)) == [1, 7]
    listing = text_of(client.get("/cases/?country=UZ&status=sentenced"))
    assert "Azamjon Formonov" in listing
    released = client.get("/cases/?status=released")
    assert released.status_code == 200 and "No cases match." in text_of(released)
    assert "Azamjon Formonov" not in text_of(released)
    actions = db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert "case.create" in actions and actions.count("case.date_add") == 2


def test_an_editor_never_sees_a_high_risk_real_name(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    case = _high_risk_case()
    login(Role.EDITOR)
    pages = {
        "list": text_of(client.get("/cases/")),
        "case": text_of(client.get(f"/cases/{case.id}")),
        "edit": text_of(client.get(f"/cases/{case.id}/edit")),
        "calendar": text_of(client.get("/calendar/")),
        "calendar list": text_of(client.get("/calendar/?view=list")),
    }
    for where, page in pages.items():
        assert REAL_NAME not in page, where
        assert "Real-Name" not in page, where
    assert PSEUDONYM in pages["list"] and PSEUDONYM in pages["case"]
    assert f"Arrest of {PSEUDONYM}" in pages["calendar"]
    assert 'name="name"' not in pages["edit"]  # the field is not there at all
    # Searching the real name does not tell which pseudonym hides it.
    searched = client.get("/cases/?q=real-name")
    assert searched.status_code == 200 and "No cases match." in text_of(searched)
    assert PSEUDONYM not in text_of(searched)
    assert PSEUDONYM in text_of(client.get("/cases/?q=prisoner"))
    # An edit keeps the stored name, whatever is posted; the pseudonym is an admin's to
    # change (decision 0038); lifting the high risk is refused.
    form = {
        "name": "Replaced",
        "pseudonym": "Prisoner K.",
        "is_high_risk": "1",
        "country": "UZ",
        "status": "released",
    }
    renamed = client.post(f"/cases/{case.id}/edit", data=form)
    assert renamed.status_code == 422
    assert "only an administrator can change it" in _field_error(text_of(renamed), "pseudonym")
    form["pseudonym"] = PSEUDONYM
    assert client.post(f"/cases/{case.id}/edit", data=form).status_code == 302
    db.session.refresh(case)
    assert (case.name, case.pseudonym, case.status) == (REAL_NAME, PSEUDONYM, "released")
    lifted = client.post(f"/cases/{case.id}/edit", data={**form, "is_high_risk": ""})
    assert lifted.status_code == 422
    assert "only an administrator can lift it" in _field_error(text_of(lifted), "is_high_risk")
    assert REAL_NAME not in text_of(lifted)
    db.session.refresh(case)
    assert case.is_high_risk
    # No audit event carries a name.
    for event in db.session.scalars(select(AuditEvent)):
        assert "Real-Name" not in str(event.detail) and "Prisoner" not in str(event.detail)


def test_an_admin_sees_and_edits_the_real_name(client: FlaskClient, login: Any, app: Flask) -> None:
    case = _high_risk_case()
    login(Role.ADMIN)
    assert REAL_NAME in text_of(client.get("/cases/"))
    assert REAL_NAME in text_of(client.get(f"/cases/{case.id}"))
    assert f'value="{REAL_NAME}"' in text_of(client.get(f"/cases/{case.id}/edit"))
    assert f"Arrest of {REAL_NAME}" in text_of(client.get("/calendar/"))
    assert PSEUDONYM in text_of(client.get("/cases/?q=real-name"))
    form = {
        "name": "Dilshod Corrected",
        "pseudonym": "Prisoner K.",
        "is_high_risk": "1",
        "country": "UZ",
        "status": "sentenced",
    }
    assert client.post(f"/cases/{case.id}/edit", data=form).status_code == 302
    db.session.refresh(case)
    assert (case.name, case.pseudonym) == ("Dilshod Corrected", "Prisoner K.")
    # Reminder names follow the new pseudonym.
    [reminder] = _reminders(case.dates[0].id)
    assert "Prisoner K." in reminder.name


def test_marking_a_case_high_risk_needs_a_pseudonym(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    login(Role.EDITOR)
    form = {"name": "Someone At Risk", "is_high_risk": "1", "country": "TM", "status": "detained"}
    response = client.post("/cases/new", data=form)
    assert response.status_code == 422
    page = text_of(response)
    assert "a person at high risk needs one" in _field_error(page, "pseudonym")
    assert 'value="Someone At Risk"' in page and 'value="TM"' in page  # kept
    assert db.session.scalars(select(Case)).all() == []
    bad_country = client.post("/cases/new", data={**form, "pseudonym": "X.", "country": "ZZ"})
    assert bad_country.status_code == 422
    assert "'ZZ' is not a country code" in _field_error(text_of(bad_country), "country")


def test_a_future_date_is_refused_with_a_message_naming_date(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    case = cases.create_case("Someone", country="KZ")
    db.session.commit()
    login(Role.EDITOR)
    day = TODAY + timedelta(days=1)
    tomorrow = day.isoformat()
    data = {"kind": "release", "on": tomorrow, "source": "kept", "mark_anniversary": "1"}
    response = client.post(f"/cases/{case.id}/dates", data=data)
    assert response.status_code == 422
    page = text_of(response)
    in_words = f"{day.day} {day:%B} {day.year}"  # the interface's date, in English here
    assert _field_error(page, "on").startswith(f"Date: {in_words} is in the future")
    assert 'value="kept"' in page
    bad_days = client.post(
        f"/cases/{case.id}/dates", data={**data, "on": "2020-01-01", "reminder_days": "a week"}
    )
    assert bad_days.status_code == 422
    assert "'a week' is not a number of days" in _field_error(text_of(bad_days), "reminder_days")
    assert db.session.scalars(select(CaseDate)).all() == []
    assert db.session.scalars(select(Schedule)).all() == []


def test_a_29_february_date_shows_when_its_anniversary_falls(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    case = cases.create_case("Someone", country="TM")
    db.session.commit()
    login(Role.EDITOR)
    data = {"kind": "arrest", "on": "2016-02-29", "mark_anniversary": "1", "reminder_days": "0"}
    response = client.post(f"/cases/{case.id}/dates", data=data, follow_redirects=True)
    page = text_of(response)
    assert "fires on 28 February in years without 29 February" in page
    assert "29 February 2016" in page
    [case_date] = case.dates
    edit = text_of(client.get(f"/cases/{case.id}/dates/{case_date.id}/edit"))
    assert "fires on 28 February in years without 29 February" in edit


def test_editing_a_dates_reminders_and_removing_a_marked_date(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    case = _high_risk_case()
    [arrest] = case.dates
    arrest_id = arrest.id
    assert [s.rule["days_before"] for s in _reminders(arrest_id)] == [7]
    login(Role.EDITOR)
    url = f"/cases/{case.id}/dates/{arrest_id}/edit"
    form = {"kind": "arrest", "on": ARRESTED.isoformat(), "mark_anniversary": "1"}
    assert client.post(url, data={**form, "reminder_days": "30, 1"}).status_code == 302
    assert sorted(s.rule["days_before"] for s in _reminders(arrest_id)) == [1, 30]
    runner = app.test_cli_runner()
    listing = runner.invoke(args=["schedules"]).output
    assert "30 days before" in listing and PSEUDONYM in listing and REAL_NAME not in listing
    response = client.post(f"/cases/{case.id}/dates/{arrest_id}/remove", follow_redirects=True)
    assert "Arrest date removed and its 2 reminders" in text_of(response)
    assert db.session.get(CaseDate, arrest_id) is None
    assert _reminders(arrest_id) == []
    assert db.session.scalars(select(Schedule)).all() == []
    result = runner.invoke(args=["schedules"])
    assert result.exit_code == 0 and result.output == "no schedules\n"
    assert PSEUDONYM not in result.output
    calendar = client.get("/calendar/")
    assert calendar.status_code == 200 and "<h1>Advocacy calendar</h1>" in text_of(calendar)
    assert "Arrest of" not in text_of(calendar)


def test_linking_and_unlinking_a_campaign(client: FlaskClient, login: Any, app: Flask) -> None:
    case = _high_risk_case()
    statement = statements.create_statement("Letter", language="en", subject="S", body=CASE_BODY)
    draft = Campaign(name="Free them", statement_id=statement.id)
    done = Campaign(name="Last year", statement_id=statement.id)
    done.status = CampaignStatus.FINISHED.value
    db.session.add_all([draft, done])
    db.session.commit()
    login(Role.EDITOR)
    page = text_of(client.get(f"/cases/{case.id}"))
    options = page[page.index('id="link-campaign"') :]
    assert "Free them" in options and "Last year" not in options.split("</select>")[0]
    response = client.post(f"/cases/{case.id}/campaigns", data={"campaign_id": str(draft.id)})
    assert response.status_code == 302
    assert [c.id for c in cases.linked_campaigns(case)] == [draft.id]
    page = text_of(client.get(f"/cases/{case.id}"))
    assert f'href="/campaigns/{draft.id}"' in page
    refused = client.post(f"/cases/{case.id}/campaigns", data={"campaign_id": str(done.id)})
    assert refused.status_code == 422
    assert "Last year is finished" in _field_error(text_of(refused), "campaign_id")
    unlink = f"/cases/{case.id}/campaigns/{draft.id}/unlink"
    assert client.post(unlink).status_code == 302
    assert cases.linked_campaigns(case) == []


def test_a_viewer_reads_but_cannot_post(client: FlaskClient, login: Any, app: Flask) -> None:
    case = _high_risk_case()
    campaign_statement = statements.create_statement("L", language="en", subject="S", body="x")
    campaign = Campaign(name="C", statement_id=campaign_statement.id)
    db.session.add(campaign)
    db.session.commit()
    login(Role.VIEWER)
    page = text_of(client.get(f"/cases/{case.id}"))
    assert PSEUDONYM in page and "Art. 221" in page
    listing = client.get("/cases/")
    assert listing.status_code == 200 and PSEUDONYM in text_of(listing)
    assert "Add a date" not in page and "New case" not in text_of(listing)
    date_id = case.dates[0].id
    posts = {
        "/cases/new": {"name": "X"},
        f"/cases/{case.id}/edit": {"pseudonym": "Y", "is_high_risk": "1", "status": "other"},
        f"/cases/{case.id}/dates": {"kind": "arrest", "on": "2020-01-01"},
        f"/cases/{case.id}/dates/{date_id}/edit": {"kind": "arrest", "on": "2020-01-01"},
        f"/cases/{case.id}/dates/{date_id}/remove": {},
        f"/cases/{case.id}/campaigns": {"campaign_id": str(campaign.id)},
    }
    for url, data in posts.items():
        assert client.post(url, data=data).status_code == 403, url
    assert client.get("/cases/new").status_code == 403
    assert len(db.session.scalars(select(Case)).all()) == 1
    assert db.session.get(CaseDate, date_id) is not None
    assert cases.linked_campaigns(case) == []


@pytest.mark.parametrize("csrf_enabled", [True])
def test_case_forms_need_the_csrf_token(client: FlaskClient, app: Flask) -> None:
    user = make_user(Role.EDITOR)
    client.post(
        "/login",
        data={
            "email": user.email,
            "password": TEST_PASSWORD,
            "csrf_token": csrf_token(client, "/login"),
        },
    )
    form = {"name": "Someone", "status": "detained"}
    assert client.post("/cases/new", data=form).status_code == 400
    assert db.session.scalars(select(Case)).all() == []
    token = csrf_token(client, "/cases/new")
    assert client.post("/cases/new", data={**form, "csrf_token": token}).status_code == 302
    assert len(db.session.scalars(select(Case)).all()) == 1


def test_the_preview_merges_the_cases_of_a_campaign_using_the_statement(
    client: FlaskClient, login: Any, app: Flask
) -> None:
    case = _high_risk_case()
    statement = statements.create_statement(
        "Free the bloggers", language="en", subject="Free them", body=CASE_BODY
    )
    audience = lists.create_list("Ministry")
    contact = create_contact({"email": "minister@example.net", "family_name": "Minister"})
    lists.add_contacts(audience, [contact.id])
    spec = AudienceSpec((f"list:{audience.id}",))
    linked = campaigns.create_campaign(statement, name="Bloggers 2026", audience=spec)
    campaigns.create_campaign(statement, name="Without cases", audience=spec)
    cases.link_case(linked, case)
    db.session.commit()
    login(Role.EDITOR)
    url = f"/statements/{statement.id}/preview/"
    page = text_of(client.get(url))
    # The default is the most recent campaign with linked cases, not merely the newest one.
    assert f"- {PSEUDONYM} (Uzbekistan), arrest on {ARRESTED.day}" in page
    assert REAL_NAME not in page
    assert "with the cases linked to" in page and "Bloggers 2026" in page
    assert "Without cases (no linked cases)" in page
    part = text_of(client.get(f"{url}html?contact={contact.id}&cases_from={linked.id}"))
    assert PSEUDONYM in part
    none = text_of(client.get(f"{url}?cases_from=none"))
    assert PSEUDONYM not in none.split('id="preview-text"')[1]
    # The test sent to oneself merges the same cases as the preview on screen.
    config = app.config["CAMPAIGN_CONFIG"]
    with DevmailSink(config.devmail_path, config.MAIL_SERVER, config.MAIL_PORT):
        response = client.post(
            f"/statements/{statement.id}/preview/send-test",
            data={"contact": contact.id, "lang": "", "cases_from": str(linked.id)},
        )
        assert response.status_code == 302
    [received] = mailbox.Maildir(config.devmail_path, create=False)
    message = message_from_bytes(bytes(received), policy=default_policy)
    text_part = message.get_body(preferencelist=("plain",))
    assert text_part is not None and PSEUDONYM in text_part.get_content()
