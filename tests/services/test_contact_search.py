"""The contacts table query: search, filters, sorting and keyset pages."""

from __future__ import annotations

import random

import pytest
from flask import Flask
from sqlalchemy import insert

from campaign.extensions import db
from campaign.models import Contact
from campaign.services.contacts import lists, segments
from campaign.services.contacts.contacts import create_contact
from campaign.services.contacts.search import (
    SORTS,
    ContactFilters,
    decode_cursor,
    filtered_query,
    search_page,
)


def _ids(filters: ContactFilters) -> set[int]:
    return set(db.session.scalars(filtered_query(filters).with_only_columns(Contact.id)))


@pytest.fixture
def sample(app: Flask) -> dict[str, int]:
    rows = {
        "ivanov": create_contact(
            {
                "given_name": "Pavel",
                "family_name": "Ivanov",
                "family_name_alt": "Иванов",
                "email": "p.ivanov@example.org",
                "role_type": "official",
                "country": "RU",
                "languages": "ru en",
                "tags": "eu-mep",
            }
        ),
        "muster": create_contact(
            {
                "given_name": "Marta",
                "family_name": "Muster",
                "email": "m.muster@example.org",
                "organisation": "European External Action Service",
                "role_type": "official",
                "country": "EU",
                "languages": "en ru",
                "tags": "eu",
                "risk_level": "public",
            }
        ),
        "press": create_contact(
            {
                "given_name": "Nadia",
                "family_name": "Primerova",
                "email": "n.primerova@example.org",
                "position_title": "Correspondent",
                "role_type": "journalist",
                "country": "LV",
                "languages": "ru",
                "tags": "press",
                "risk_level": "elevated",
            }
        ),
    }
    db.session.commit()
    return {k: v.id for k, v in rows.items()}


def test_free_text_searches_names_alt_script_organisation_email_position(
    sample: dict[str, int],
) -> None:
    assert _ids(ContactFilters(q="ivanov")) == {sample["ivanov"]}
    assert _ids(ContactFilters(q="иванов")) == {sample["ivanov"]}
    assert _ids(ContactFilters(q="ИВАНОВ")) == {sample["ivanov"]}
    assert _ids(ContactFilters(q="external action")) == {sample["muster"]}
    assert _ids(ContactFilters(q="PRIMEROVA@")) == {sample["press"]}
    assert _ids(ContactFilters(q="correspondent")) == {sample["press"]}
    assert _ids(ContactFilters(q="100%")) == set()


def test_filters_combine(sample: dict[str, int]) -> None:
    assert _ids(ContactFilters(role_type="official")) == {sample["ivanov"], sample["muster"]}
    assert _ids(ContactFilters(role_type="official", country="eu")) == {sample["muster"]}
    assert _ids(ContactFilters(language="en")) == {sample["ivanov"], sample["muster"]}
    assert _ids(ContactFilters(tag="eu")) == {sample["muster"]}
    assert _ids(ContactFilters(risk_level="elevated")) == {sample["press"]}
    assert _ids(ContactFilters(country="not a country")) == set()


def test_list_and_segment_filters(sample: dict[str, int]) -> None:
    press = lists.create_list("Press")
    lists.add_contacts(press, [sample["press"]])
    segment = segments.save_segment(
        "Russian speakers", {"all": [{"field": "language", "op": "is", "value": "ru"}]}
    )
    db.session.commit()
    assert _ids(ContactFilters(list_id=press.id)) == {sample["press"]}
    assert _ids(ContactFilters(segment_id=segment.id, tag="eu")) == {sample["muster"]}
    assert _ids(ContactFilters(segment_id=segment.id + 1)) == set()


def test_filters_read_from_request_args_ignore_unknown_keys() -> None:
    filters = ContactFilters.from_args(
        {"q": "  a   b ", "list": "3", "segment": "x", "is_admin": "1", "country": "FR"}
    )
    assert filters == ContactFilters(q="a b", country="FR", list_id=3)
    assert filters.as_args() == {"q": "a b", "country": "FR", "list": "3"}


def _many_contacts(count: int) -> None:
    rng = random.Random(7)
    families = ["Adams", "Baker", "Clark", "Dupont", "Évora", "Иванов", "Zhou", ""]
    rows = []
    for i in range(count):
        rows.append(
            {
                "family_name": rng.choice(families),
                "given_name": rng.choice(["Ann", "Bob", "", "Émile"]),
                "organisation": rng.choice(["Org A", "Org B", "Org C"]),
                "country": rng.choice(["FR", "DE", "UZ"]),
                "role_type": rng.choice(["mep", "ngo", "official"]),
                "risk_level": rng.choice(["public", "low"]),
                "email": f"c{i}@example.org",
                "email_key": f"c{i}@example.org",
            }
        )
    db.session.execute(insert(Contact), rows)
    db.session.commit()


@pytest.mark.parametrize("sort", sorted(SORTS))
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("q", ["", "org"])
def test_pages_return_each_contact_exactly_once_in_order(
    app: Flask, sort: str, descending: bool, q: str
) -> None:
    _many_contacts(320)
    filters = ContactFilters(q=q)
    columns = [*SORTS[sort], Contact.id]
    ordering = [c.desc() if descending else c.asc() for c in columns]
    expected = list(
        db.session.scalars(
            filtered_query(filters).with_only_columns(Contact.id).order_by(*ordering)
        )
    )
    seen: list[int] = []
    cursor = ""
    pages = 0
    while True:
        page = search_page(filters, sort=sort, descending=descending, after=cursor, per_page=50)
        seen.extend(c.id for c in page.contacts)
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 7
    assert seen == expected

    # And walking back from the last page gives the same pages in reverse.
    back: list[int] = []
    page = search_page(filters, sort=sort, descending=descending, after=cursor, per_page=50)
    back = [c.id for c in page.contacts]
    while page.prev_cursor:
        page = search_page(
            filters, sort=sort, descending=descending, before=page.prev_cursor, per_page=50
        )
        back = [c.id for c in page.contacts] + back
    assert back == expected


def test_counts_are_exact_below_the_limit_and_capped_above(app: Flask) -> None:
    _many_contacts(120)
    page = search_page(ContactFilters(), per_page=10)
    assert (page.total, page.total_is_exact) == (120, True)
    from campaign.services.contacts import search as contact_search

    assert contact_search.count_filtered(ContactFilters(), limit=100) == (100, False)


def test_bad_cursors_and_sorts_give_the_first_page(app: Flask) -> None:
    _many_contacts(30)
    first = search_page(ContactFilters(), per_page=10)
    for cursor in ["garbage", "W10", "WyJhIiwgIngiXQ", "!!!!"]:
        assert decode_cursor(cursor, "name") is None
        page = search_page(ContactFilters(), after=cursor, per_page=10)
        assert [c.id for c in page.contacts] == [c.id for c in first.contacts]
    odd = search_page(ContactFilters(), sort="password_hash; drop table", per_page=10)
    assert odd.sort == "name"


def test_a_search_in_one_script_finds_names_written_in_the_other(app: Flask) -> None:
    olga = create_contact(
        {"given_name": "Ольга", "family_name": "Петрова", "email": "o.petrova@example.org"}
    )
    latin = create_contact(
        {"given_name": "Olga", "family_name": "Petrova", "email": "olga.p@example.org"}
    )
    other = create_contact({"given_name": "Oleg", "family_name": "Sidorov", "email": "os@x.org"})
    dilnoza = create_contact(
        {"given_name": "Дильноза", "family_name": "Намунова", "email": "dn@example.org"}
    )
    db.session.commit()
    both = {olga.id, latin.id}
    assert _ids(ContactFilters(q="Olga")) == both
    assert _ids(ContactFilters(q="Ольга")) == both
    assert _ids(ContactFilters(q="petrova")) == both
    assert _ids(ContactFilters(q="ПЕТРОВА")) == both
    assert _ids(ContactFilters(q="Olga Петрова")) == both
    # The soft sign transliterates to nothing: "Dilnoza" finds "Дильноза".
    assert _ids(ContactFilters(q="Dilnoza")) == {dilnoza.id}
    assert other.id not in _ids(ContactFilters(q="olga"))


def test_a_bulk_insert_and_an_edit_keep_the_search_key(app: Flask) -> None:
    db.session.execute(
        insert(Contact),
        [{"family_name": "Иванова", "email": "i@example.org", "email_key": "i@example.org"}],
    )
    db.session.commit()
    [found] = db.session.scalars(filtered_query(ContactFilters(q="ivanova")))
    found.family_name = "Смирнова"
    db.session.commit()
    assert _ids(ContactFilters(q="ivanova")) == set()
    assert _ids(ContactFilters(q="smirnova")) == {found.id}
