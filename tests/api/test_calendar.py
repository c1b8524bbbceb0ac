"""Calendar events and cases through the API: read only, and a high-risk person's real name
never in any answer, whoever's key asks."""

from __future__ import annotations

import json
from datetime import date

from flask.testing import FlaskClient

from campaign.extensions import db
from campaign.models import Case, Role
from campaign.services.schedules import advocacy_calendar, cases
from tests.api.helpers import bearer, new_key
from tests.factories import CaseFactory

REAL_NAME = "Gulnara Rakhimovna Yusupova"
PSEUDONYM = "G.R."


def _high_risk_case() -> int:
    case: Case = CaseFactory(
        name=REAL_NAME,
        pseudonym=PSEUDONYM,
        is_high_risk=True,
        country="UZ",
        status="detained",
        summary="A journalist held since the spring.",
    )
    cases.add_case_date(case, "arrest", date(2021, 3, 14), legal_reference="Art. 159")
    db.session.commit()
    return int(case.id)


def test_a_high_risk_real_name_is_in_no_answer_even_for_an_admin(client: FlaskClient) -> None:
    hidden = _high_risk_case()
    open_case: Case = CaseFactory(name="Azamat Bekov", country="KG", status="charged")
    db.session.commit()
    token, _key = new_key(Role.ADMIN)
    answers = [
        client.get("/api/v1/cases", headers=bearer(token)),
        client.get(f"/api/v1/cases/{hidden}", headers=bearer(token)),
        # Searching the real name finds nothing: it would tell which pseudonym hides whom.
        client.get("/api/v1/cases", query_string={"q": "Yusupova"}, headers=bearer(token)),
        client.get("/api/v1/cases", query_string={"q": "g.r."}, headers=bearer(token)),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 200]
    for answer in answers:
        text = answer.get_data(as_text=True)
        assert "Yusupova" not in text and "Gulnara" not in text
    listed = answers[0].get_json()["items"]
    assert [(c["id"], c["name"]) for c in listed] == [
        (hidden, PSEUDONYM),
        (open_case.id, "Azamat Bekov"),
    ]
    one = answers[1].get_json()
    assert one["is_high_risk"] is True and one["status"] == "detained"
    assert one["dates"][0]["kind"] == "arrest" and one["dates"][0]["on"] == "2021-03-14"
    assert answers[2].get_json()["items"] == []
    assert [c["id"] for c in answers[3].get_json()["items"]] == [hidden]
    # Nor in the contract, nor in the audit of these calls.
    assert REAL_NAME not in json.dumps(client.get("/api/v1/openapi.json").get_json())


def test_cases_filter_and_page_with_a_cursor(client: FlaskClient) -> None:
    for number in range(5):
        CaseFactory(name=f"Person {number}", country="TJ" if number % 2 else "UZ")
    db.session.commit()
    token, _key = new_key(Role.VIEWER, ["calendar:read"])
    first = client.get("/api/v1/cases", query_string={"limit": 2}, headers=bearer(token))
    body = first.get_json()
    assert len(body["items"]) == 2 and body["next_cursor"]
    rest = client.get(
        "/api/v1/cases", query_string={"cursor": body["next_cursor"]}, headers=bearer(token)
    ).get_json()
    assert [c["name"] for c in body["items"] + rest["items"]] == [f"Person {n}" for n in range(5)]
    assert rest["next_cursor"] is None
    tajik = client.get("/api/v1/cases", query_string={"country": "tj"}, headers=bearer(token))
    assert [c["name"] for c in tajik.get_json()["items"]] == ["Person 1", "Person 3"]
    wrong = client.get("/api/v1/cases", query_string={"status": "free"}, headers=bearer(token))
    assert wrong.status_code == 422
    assert wrong.get_json()["errors"][0]["field"] == "status"


def test_events_list_and_read(client: FlaskClient) -> None:
    event = advocacy_calendar.add_event(
        "EU–Central Asia summit",
        date(2027, 5, 20),
        date(2027, 5, 21),
        place="Samarkand",
        countries=["UZ"],
        kind="summit",
    )
    db.session.commit()
    token, _key = new_key(Role.VIEWER, ["calendar:read"])
    listed = client.get(
        "/api/v1/calendar/events", query_string={"builtin": "false"}, headers=bearer(token)
    )
    assert listed.status_code == 200
    assert [e["name"] for e in listed.get_json()["items"]] == ["EU–Central Asia summit"]
    one = client.get(f"/api/v1/calendar/events/{event.id}", headers=bearer(token)).get_json()
    assert one["starts_on"] == "2027-05-20" and one["countries"] == ["UZ"]
    assert one["kind"] == "summit" and one["created_at"].endswith("Z")


def test_missing_rows_scopes_and_writes(client: FlaskClient) -> None:
    token, _key = new_key(Role.VIEWER, ["calendar:read"])
    assert client.get("/api/v1/cases/999999", headers=bearer(token)).status_code == 404
    assert client.get("/api/v1/cases/99999999999", headers=bearer(token)).status_code == 404
    assert client.get("/api/v1/calendar/events/999999", headers=bearer(token)).status_code == 404
    other, _ = new_key(Role.ADMIN, ["replies:read"])
    refused = client.get("/api/v1/cases", headers=bearer(other))
    assert refused.status_code == 403 and refused.get_json()["required_scope"] == "calendar:read"
    # Read only: there is nothing to write through the API.
    assert client.post("/api/v1/cases", json={}, headers=bearer(token)).status_code == 405
    unknown = client.get("/api/v1/cases", query_string={"colour": "red"}, headers=bearer(token))
    assert unknown.status_code == 422
