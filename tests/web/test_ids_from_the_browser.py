"""Ids typed or sent by a browser: anything no row can have is "not found", never a 500.

isdigit() accepts "²", which int() refuses, and PostgreSQL refuses to compare an INTEGER
column with a number past 2,147,483,647; campaign/params.py reads every such id.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from campaign.extensions import db
from campaign.models import Role, User
from campaign.params import MAX_ROW_ID, NO_ROW, filter_id, page_number, row_id
from campaign.services.accounts.audit import record_event
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from tests.pages import html_of

Login = Callable[[Role], User]

# Not ids: a superscript digit, an 11-digit number, one past the column's range, a sign.
ODD_IDS = ("²", "99999999999", str(MAX_ROW_ID + 1), "-1", "1 2")


def test_row_id_reads_only_ids_a_row_can_have() -> None:
    assert row_id("42") == 42
    assert row_id(" 7 ") == 7
    assert row_id(str(MAX_ROW_ID)) == MAX_ROW_ID
    assert row_id(12) == 12
    for odd in (*ODD_IDS, "", None, "x", "+3", "1e3", "4.0"):
        assert row_id(odd) is None, odd


def test_filter_id_finds_nothing_for_a_number_no_row_can_have() -> None:
    assert filter_id("3") == 3
    assert filter_id("99999999999") == filter_id(str(MAX_ROW_ID + 1)) == NO_ROW
    for odd in ("", None, "²", "-1", "x"):
        assert filter_id(odd) is None, odd


def test_page_number_is_one_unless_a_whole_number_from_one() -> None:
    assert page_number("3") == 3
    for odd in ("", None, "0", "²", "-2", "x", "9" * 30):
        assert page_number(odd) == 1, odd


@pytest.mark.parametrize("odd", ODD_IDS)
def test_audit_page_before_an_odd_id_shows_the_newest_events(
    client: FlaskClient, login: Login, odd: str
) -> None:
    for i in range(3):
        record_event("test.event", target_type="thing", target_id=i)
    db.session.commit()
    login(Role.ADMIN)
    response = client.get("/audit/", query_string={"action": "test.event", "before": odd})
    assert response.status_code == 200
    assert [int(t) for t in re.findall(r"thing (\d+)", html_of(response))] == [2, 1, 0]


@pytest.mark.parametrize("odd", ODD_IDS)
def test_contacts_filtered_by_an_odd_list_or_segment_id(
    client: FlaskClient, login: Login, odd: str
) -> None:
    create_contact(
        {"family_name": "Beispiel", "email": "l.beispiel@example.org", "role_type": "mep"}
    )
    lists.create_list("Diplomats")
    db.session.commit()
    login(Role.VIEWER)
    for name in ("list", "segment"):
        response = client.get("/contacts/", query_string={name: odd})
        assert response.status_code == 200, (name, odd)
        shown = "l.beispiel@example.org" in html_of(response)
        if odd.isdecimal():
            # A number no list can have is a list not found: it finds nobody (as a list since
            # deleted does), not everybody.
            assert not shown, (name, odd)
            assert "No contacts match." in html_of(response), (name, odd)
        else:
            # Not a number at all: no filter, as for "abc".
            assert shown, (name, odd)


@pytest.mark.parametrize("last_id", [10**20, MAX_ROW_ID + 1, -(10**20)])
def test_a_hand_made_cursor_with_an_id_past_the_column_is_ignored(
    client: FlaskClient, login: Login, last_id: int
) -> None:
    login(Role.VIEWER)
    create_contact({"email": "a@example.org", "family_name": "Abbott"})
    db.session.commit()
    cursor = base64.urlsafe_b64encode(json.dumps(["abbott", "", last_id]).encode()).decode()
    for direction in ("after", "before"):
        page = client.get(f"/contacts/?sort=name&{direction}={cursor.rstrip('=')}")
        assert page.status_code == 200, (direction, last_id)
        assert "Abbott" in html_of(page)


def test_an_eleven_digit_id_in_a_path_is_not_found(client: FlaskClient, login: Login) -> None:
    login(Role.ADMIN)
    for path in (
        "/contacts/99999999999",
        f"/contacts/{MAX_ROW_ID + 1}",
        "/campaigns/99999999999",
        "/statements/99999999999",
    ):
        assert client.get(path).status_code == 404, path
    # The largest id a row can have is looked up, and found missing, like any other.
    assert client.get(f"/contacts/{MAX_ROW_ID}").status_code == 404
