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
