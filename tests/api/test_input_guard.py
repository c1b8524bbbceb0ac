"""Input no field can hold is refused before any view reads it: NUL characters (a 500 on
PostgreSQL before, and stored as is on SQLite) and JSON nested a thousand levels deep (a
RecursionError and a 500 before, reachable without a key through the public sign-on submit)."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import ContactList, Role
from tests.api.helpers import bearer, new_key

JSON = {"Content-Type": "application/json"}


def _problem_field(response) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert "NUL" in problem["detail"] or "deep" in problem["detail"]
    return str(problem["errors"][0]["field"])


def test_a_nul_in_a_query_or_a_path_is_a_400_naming_it(client: FlaskClient) -> None:
    token, _ = new_key(Role.ADMIN)
    assert _problem_field(client.get("/api/v1/contacts?q=a%00b", headers=bearer(token))) == "q"
    assert _problem_field(client.get("/api/v1/suppressions?q=%00", headers=bearer(token))) == "q"
    assert _problem_field(client.get("/api/v1/sign-on/a%00b")) == "path"
    # The public sign-on page itself: the 404 of any malformed token, not a server error.
    assert client.get("/sign/a%00b").status_code == 404


def test_a_nul_in_a_json_string_is_refused_and_nothing_is_stored(client: FlaskClient) -> None:
    token, _ = new_key(Role.EDITOR)
    response = client.post(
        "/api/v1/lists", json={"name": "L\x00X", "description": ""}, headers=bearer(token)
    )
    assert _problem_field(response) == "name"
    nested = client.post(
        "/api/v1/contacts/bulk",
        json={"items": [{"email": "a@example.org", "family_name": "A"}, {"notes": "x\x00"}]},
        headers=bearer(token),
    )
    assert _problem_field(nested) == "items.1.notes"
    assert db.session.scalar(select(func.count()).select_from(ContactList)) == 0


def test_json_nested_a_thousand_levels_deep_is_a_400_even_without_a_key(
    client: FlaskClient,
) -> None:
    body = '{"name": ' + "[" * 1000 + "]" * 1000 + "}"
    response = client.post("/api/v1/sign-on/any-token/signatures", data=body, headers=JSON)
    assert _problem_field(response) == "body"
    moderate = '{"name": ' + "[" * 40 + "]" * 40 + "}"
    response = client.post("/api/v1/sign-on/any-token/signatures", data=moderate, headers=JSON)
    assert _problem_field(response) == "name" + ".0" * 32


def test_the_services_refuse_a_nul_that_a_page_form_could_send(app: object) -> None:
    import pytest

    from campaign.services.contacts import lists, suppressions

    with pytest.raises(lists.ListError):
        lists.create_list("Press\x00list")
    with pytest.raises(lists.ListError):
        lists.create_list("Press", "a\x00b")
    with pytest.raises(suppressions.SuppressionError) as refused:
        suppressions.suppress_address("x@example.org", "manual", note="a\x00b")
    assert refused.value.field == "note"
