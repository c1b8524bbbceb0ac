"""Nobody but an admin learns anything about a high-risk person's real name: not from an
error message, the order of a list, a search, a count, or the answer to a guess."""

from __future__ import annotations

import html
import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, Case, Role
from campaign.services import cases

REAL_NAME = "Aziz Karimov"
PSEUDONYM = "Prisoner Z."


def _text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def _hidden_case() -> Case:
    case = cases.create_case(REAL_NAME, PSEUDONYM, is_high_risk=True, country="UZ")
    db.session.commit()
    return case


def _edit(client: FlaskClient, case: Case, pseudonym: str) -> Any:
    form = {"pseudonym": pseudonym, "is_high_risk": "1", "country": "UZ", "status": "other"}
    return client.post(f"/cases/{case.id}/edit", data=form)


def _answer(response: Any) -> tuple[int, str]:
    """What the editor can observe: the status, where it leads, and the flash it shows."""
    return response.status_code, response.headers.get("Location", "")


def test_an_editor_guessing_the_real_name_gets_the_same_answer_as_for_any_pseudonym(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    case = _hidden_case()
    login(Role.EDITOR)
    wrong = _edit(client, case, "Rustam Aliev")
    wrong_page = _text(client.get(wrong.headers["Location"]))
    right = _edit(client, case, REAL_NAME.upper())  # the right guess, in other letters
    right_page = _text(client.get(right.headers["Location"]))
    assert _answer(right) == _answer(wrong) == (302, f"/cases/{case.id}")
    assert "differ from the real name" not in right_page
    assert "Case saved." in wrong_page and "Case saved." in right_page
    # The right guess is kept as asked (refusing it would tell), and admins are told.
    db.session.refresh(case)
    assert case.pseudonym == REAL_NAME.upper() and case.name == REAL_NAME
    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "case.update").order_by(AuditEvent.id)
    ).all()
    flags = [bool((event.detail or {}).get("pseudonym_matches_real_name")) for event in events]
    assert flags == [False, True]
    assert all(REAL_NAME.casefold() not in str(event.detail).casefold() for event in events)


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
    assert "it must differ from the real name" in _text(response)


def test_the_list_is_ordered_by_pseudonym_for_an_editor(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    # By real name the order would be Aziz, Bekzod, Zafar; by pseudonym it is A, M, Z.
    cases.create_case("Zafar Open", "", is_high_risk=False)
    cases.create_case("Aziz Hidden", "Mister M.", is_high_risk=True)
    cases.create_case("Bekzod Open", "", is_high_risk=False)
    db.session.commit()
    login(Role.EDITOR)
    page = _text(client.get("/cases/"))
    order = [name for name in re.findall(r"(Bekzod Open|Mister M\.|Zafar Open)", page)]
    assert order == ["Bekzod Open", "Mister M.", "Zafar Open"]
    assert "Aziz" not in page


def test_searching_the_real_name_finds_and_counts_nothing_for_an_editor(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    _hidden_case()
    login(Role.EDITOR)
    for query in ("Aziz", "karimov", "aziz karimov"):
        page = _text(client.get("/cases/", query_string={"q": query}))
        assert PSEUDONYM not in page, query
        found = cases.list_cases(None, q=query)
        assert (found.total, found.cases) == (0, []), query
    assert PSEUDONYM in _text(client.get("/cases/", query_string={"q": "prisoner"}))


def test_an_admin_seeing_a_real_name_is_audited(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    case = _hidden_case()
    admin = login(Role.ADMIN)
    assert REAL_NAME in _text(client.get(f"/cases/{case.id}"))
    assert REAL_NAME in _text(client.get(f"/cases/{case.id}/edit"))
    assert REAL_NAME in _text(client.get("/cases/"))
    reveals = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "case.reveal").order_by(AuditEvent.id)
    ).all()
    assert [event.actor_id for event in reveals] == [admin.id] * 3
    assert [str(event.target_id) for event in reveals[:2]] == [str(case.id)] * 2
    assert reveals[2].detail.get("case_ids") == [case.id]
    assert all(REAL_NAME not in str(event.detail) for event in reveals)
