"""Paging shows page numbers and the total: the first, the last, the current page ±2 with
ellipses between, and "N items"; the contacts table is paged with it."""

from __future__ import annotations

import re
from collections.abc import Callable
from html import unescape

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert

from campaign.extensions import db
from campaign.models import Contact, Role, User
from campaign.services.paging import page_numbers

Login = Callable[[Role], User]


@pytest.mark.parametrize(
    ("page", "pages", "expected"),
    [
        (1, 1, [1]),
        (1, 3, [1, 2, 3]),
        (1, 20, [1, 2, 3, None, 20]),
        (10, 20, [1, None, 8, 9, 10, 11, 12, None, 20]),
        (20, 20, [1, None, 18, 19, 20]),
        (5, 20, [1, 2, 3, 4, 5, 6, 7, None, 20]),  # a gap of one page shows the page
        (99, 20, [1, None, 18, 19, 20]),  # past the end: the last page
    ],
)
def test_page_numbers(page: int, pages: int, expected: list[int | None]) -> None:
    assert page_numbers(page, pages) == expected


def test_page_numbers_when_the_count_stopped_early() -> None:
    assert page_numbers(10, 200, last_known=False) == [1, None, 8, 9, 10, 11, 12, None]


def _pager(client: FlaskClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    found = re.search(r'<nav class="pager".*?</nav>', response.get_data(as_text=True), re.S)
    assert found, url
    return found.group(0)


def test_contacts_table_shows_page_numbers_and_the_total(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    app.config["CONTACTS_PER_PAGE"] = 10
    rows = [
        {"family_name": f"Person {i:03d}", "email": f"p{i}@example.org", "email_key": f"p{i}@x"}
        for i in range(123)
    ]
    db.session.execute(insert(Contact), rows)
    db.session.commit()
    login(Role.VIEWER)

    first = _pager(client, "/contacts/?sort=name")
    assert "123 items" in first
    numbers = re.findall(r'aria-label="Page (\d+)">', first)
    assert numbers == ["2", "3", "13"]  # 1 is the current page, 13 the last
    assert '<span aria-current="page"' in first and "…" in first

    # Page 7 of 13: its neighbours ±2, the first and the last, ellipses between.
    middle_url = re.search(r'href="([^"]*page=13[^"]*)"', first)
    assert middle_url
    seventh = _pager(client, unescape(middle_url.group(1)).replace("page=13", "page=7"))
    assert re.findall(r'aria-label="Page (\d+)">', seventh) == ["1", "5", "6", "8", "9", "13"]
    assert re.search(r'aria-current="page"[^>]*>7<', seventh)

    # Every contact once, in order, following the page numbers.
    seen: list[str] = []
    for number in range(1, 14):
        page = client.get(f"/contacts/?sort=name&page={number}").get_data(as_text=True)
        seen += re.findall(r">(Person \d{3})<", page)
    assert seen == [f"Person {i:03d}" for i in range(123)]

    # A page past the end shows the last one; a page that is not a number, the first.
    assert re.search(r'aria-current="page"[^>]*>13<', _pager(client, "/contacts/?page=99"))
    assert re.search(r'aria-current="page"[^>]*>1<', _pager(client, "/contacts/?page=x"))


def test_past_the_counted_pages_next_walks_on_by_cursor(
    client: FlaskClient, login: Login, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count stops at COUNT_LIMIT (patched small here: 30 rows, 3 pages of 10): the
    numbers go one page past it, a page asked for beyond is that page, and "Next" from
    there is a keyset cursor (no deep OFFSET, no row skipped when others are edited)."""
    from campaign.services.contacts import search as contact_search

    monkeypatch.setattr(contact_search, "COUNT_LIMIT", 30)
    app.config["CONTACTS_PER_PAGE"] = 10
    rows = [
        {"family_name": f"Person {i:03d}", "email": f"p{i}@example.org", "email_key": f"p{i}@x"}
        for i in range(53)
    ]
    db.session.execute(insert(Contact), rows)
    db.session.commit()
    login(Role.VIEWER)

    far = client.get("/contacts/?sort=name&page=999999").get_data(as_text=True)
    assert "No contacts match" not in far
    assert re.findall(r">(Person \d{3})<", far) == [f"Person {i:03d}" for i in range(30, 40)]
    pager = _pager(client, "/contacts/?sort=name&page=999999")
    assert "more than 30 items" in pager
    assert max(int(n) for n in re.findall(r"page=(\d+)", unescape(pager))) <= 4

    seen: list[str] = []
    url: str | None = "/contacts/?sort=name&page=1"
    while url:
        page = client.get(url).get_data(as_text=True)
        seen += re.findall(r">(Person \d{3})<", page)
        following = re.search(r'<a href="([^"]+)" rel="next"', page)
        url = unescape(following.group(1)) if following else None
        assert len(seen) <= 60
        if len(seen) > 30:
            assert url is None or "after=" in url, url
    assert seen == [f"Person {i:03d}" for i in range(53)]


def test_the_cases_list_counts_cases(client: FlaskClient, login: Login, app: Flask) -> None:
    from campaign.models import Case
    from campaign.services.schedules import cases

    total = cases.CASES_PER_PAGE + 1
    db.session.add_all([Case(name=f"Person {i:03d}", pseudonym=f"P{i}.") for i in range(total)])
    db.session.commit()
    login(Role.VIEWER)
    assert f"{total} cases" in _pager(client, "/cases/")
