"""Nobody but an admin learns anything about a high-risk person's real name: not from an
error message, the order of a list, a search, a count, or the answer to a guess."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import AuditEvent, Case, Role
from campaign.services.schedules import cases
from tests.factories import CaseFactory
from tests.pages import text_of

REAL_NAME = "Aziz Karimov"
PSEUDONYM = "Prisoner Z."
# A high-risk case known by its pseudonym: `CaseFactory(**HIDDEN, commit=True)`.
HIDDEN: dict[str, Any] = {
    "name": REAL_NAME,
    "pseudonym": PSEUDONYM,
    "is_high_risk": True,
    "country": "UZ",
}


def _edit(client: FlaskClient, case: Case, pseudonym: str) -> Any:
    form = {"pseudonym": pseudonym, "is_high_risk": "1", "country": "UZ", "status": "other"}
    return client.post(f"/cases/{case.id}/edit", data=form)


def _answer(response: Any) -> tuple[int, str]:
    """What the editor can observe: the status, where it leads, and the flash it shows."""
    return response.status_code, response.headers.get("Location", "")


def test_an_editor_cannot_change_a_high_risk_pseudonym_whatever_it_is(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    """A right guess of the real name is refused exactly like any other pseudonym, so it
    neither confirms the guess nor becomes the name letters, reminders and .ics show."""
    case = CaseFactory(**HIDDEN, commit=True)
    login(Role.EDITOR)
    form_page = text_of(client.get(f"/cases/{case.id}/edit"))
    field = re.search(r'<input id="case-pseudonym"[^>]*>', form_page)
    assert field is not None and "readonly" in field.group(0)
    assert f'value="{PSEUDONYM}"' in field.group(0)
    assert "Only an administrator can change the pseudonym of a person at high risk" in form_page
    wrong = _edit(client, case, "Rustam Aliev")
    right = _edit(client, case, REAL_NAME.upper())  # the right guess, in other letters
    assert wrong.status_code == right.status_code == 422
    refusal = "Pseudonym: only an administrator can change it for a person at high risk"
    for page in (text_of(wrong), text_of(right)):
        assert refusal in page
        assert "differ from the real name" not in page
        assert REAL_NAME.casefold() not in page.casefold()  # not even echoed back
        assert f'value="{PSEUDONYM}"' in page
    db.session.refresh(case)
    assert (case.pseudonym, case.name) == (PSEUDONYM, REAL_NAME)
    # The same pseudonym with other changes is saved as before.
    kept = client.post(
        f"/cases/{case.id}/edit",
        data={"pseudonym": PSEUDONYM, "is_high_risk": "1", "country": "KZ", "status": "other"},
    )
    assert kept.status_code == 302
    db.session.refresh(case)
    assert (case.pseudonym, case.country) == (PSEUDONYM, "KZ")


def test_an_admin_can_change_a_high_risk_pseudonym(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    case = CaseFactory(**HIDDEN, commit=True)
    login(Role.ADMIN)
    field = re.search(
        r'<input id="case-pseudonym"[^>]*>', text_of(client.get(f"/cases/{case.id}/edit"))
    )
    assert field is not None and "readonly" not in field.group(0)
    form = {"name": REAL_NAME, "pseudonym": "Prisoner Y.", "is_high_risk": "1", "status": "other"}
    assert client.post(f"/cases/{case.id}/edit", data=form).status_code == 302
    db.session.refresh(case)
    assert case.pseudonym == "Prisoner Y."


def test_an_admin_setting_both_names_alike_is_still_told(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    """The admin knows the real name: the check is a help to them, and tells nothing."""
    login(Role.ADMIN)
    form = {
        "name": REAL_NAME,
        "pseudonym": REAL_NAME,
        "is_high_risk": "1",
        "country": "UZ",
        "status": "other",
    }
    response = client.post("/cases/new", data=form)
    assert response.status_code == 422
    assert "it must differ from the real name" in text_of(response)


def test_the_list_is_ordered_by_pseudonym_for_an_editor(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    # By real name the order would be Aziz, Bekzod, Zafar; by pseudonym it is A, M, Z.
    cases.create_case("Zafar Open", "", is_high_risk=False)
    cases.create_case("Aziz Hidden", "Mister M.", is_high_risk=True)
    cases.create_case("Bekzod Open", "", is_high_risk=False)
    db.session.commit()
    login(Role.EDITOR)
    page = text_of(client.get("/cases/"))
    order = [name for name in re.findall(r"(Bekzod Open|Mister M\.|Zafar Open)", page)]
    assert order == ["Bekzod Open", "Mister M.", "Zafar Open"]
    assert "Aziz" not in page


def test_searching_the_real_name_finds_and_counts_nothing_for_an_editor(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    CaseFactory(**HIDDEN, commit=True)
    login(Role.EDITOR)
    for query in ("Aziz", "karimov", "aziz karimov"):
        response = client.get("/cases/", query_string={"q": query})
        assert response.status_code == 200, query
        page = text_of(response)
        assert "No cases match." in page, query
        assert PSEUDONYM not in page, query
        found = cases.list_cases(None, q=query)
        assert (found.total, found.cases) == (0, []), query
    assert PSEUDONYM in text_of(client.get("/cases/", query_string={"q": "prisoner"}))


def test_an_admin_seeing_a_real_name_is_audited(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    case = CaseFactory(**HIDDEN, commit=True)
    admin = login(Role.ADMIN)
    assert REAL_NAME in text_of(client.get(f"/cases/{case.id}"))
    assert REAL_NAME in text_of(client.get(f"/cases/{case.id}/edit"))
    assert REAL_NAME in text_of(client.get("/cases/"))
    reveals = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "case.reveal").order_by(AuditEvent.id)
    ).all()
    assert [event.actor_id for event in reveals] == [admin.id] * 3
    assert [str(event.target_id) for event in reveals[:2]] == [str(case.id)] * 2
    assert reveals[2].detail.get("case_ids") == [case.id]
    assert all(REAL_NAME not in str(event.detail) for event in reveals)


def test_every_admin_page_naming_a_high_risk_person_is_audited_once(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    """The calendar's anniversaries, a campaign's schedule page (its list of case dates), a
    date's edit form and the case page shown again after a refused form name the person in
    full for an admin: each showing is one case.reveal, with ids only."""
    from datetime import date

    from campaign.services.sending import campaigns
    from campaign.services.sending.campaigns import AudienceSpec
    from campaign.services.statements import statements

    case = CaseFactory(**HIDDEN, commit=True)
    case_date = cases.add_case_date(
        case, "arrest", date(2019, 3, 14), mark_anniversary=True, reminder_days=[7]
    )
    statement = statements.create_statement("Joint letter", language="en", subject="S", body="B")
    campaign = campaigns.create_campaign(statement, audience=AudienceSpec(()))
    db.session.commit()
    admin = login(Role.ADMIN)
    year = date.today().year + 1
    pages = {
        "calendar": lambda: client.get("/calendar/", query_string={"month": f"{year}-03"}),
        "schedule": lambda: client.get(f"/campaigns/{campaign.id}/schedule/"),
        "date": lambda: client.get(f"/cases/{case.id}/dates/{case_date.id}/edit"),
        "case after a refused form": lambda: client.post(
            f"/cases/{case.id}/dates", data={"kind": "arrest", "on": "not a date"}
        ),
    }
    for page, show in pages.items():
        before = db.session.scalar(
            select(func.count(AuditEvent.id)).where(AuditEvent.action == "case.reveal")
        )
        response = show()
        assert response.status_code in (200, 422), page
        assert REAL_NAME in text_of(response), page
        reveals = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "case.reveal")
            .order_by(AuditEvent.id)
            .offset(before)
        ).all()
        assert len(reveals) == 1, page
        assert reveals[0].actor_id == admin.id
        assert str(reveals[0].target_id) == str(case.id) or reveals[0].detail.get("case_ids") == [
            case.id
        ], page
        assert REAL_NAME not in str(reveals[0].detail), page
