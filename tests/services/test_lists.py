"""Static lists: names, bulk membership by ids and by query, deletion and its audit entry."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import AuditEvent, Contact, ContactList, list_memberships
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact, delete_contact
from campaign.services.contacts.lists import ListError
from campaign.services.contacts.segments import contacts_matching


@pytest.fixture
def contact_ids(app: Flask) -> list[int]:
    made = [
        create_contact(
            {
                "family_name": f"Person {i}",
                "email": f"p{i}@example.org",
                "country": "FR" if i % 2 else "DE",
            }
        )
        for i in range(6)
    ]
    db.session.commit()
    return [c.id for c in made]


def _member_ids(contact_list: ContactList) -> set[int]:
    return set(db.session.scalars(lists.member_ids(contact_list)))


def test_names_are_required_and_unique_ignoring_case(app: Flask) -> None:
    lists.create_list("Press")
    db.session.commit()
    with pytest.raises(ListError, match="already exists"):
        lists.create_list("  press ")
    with pytest.raises(ListError, match="needs a name"):
        lists.create_list("   ")
    other = lists.create_list("EU officials")
    with pytest.raises(ListError, match="already exists"):
        lists.rename_list(other, "PRESS")
    lists.rename_list(other, "EU  institutions")
    assert other.name == "EU institutions"


def test_add_and_remove_by_ids_skips_members_and_unknown_ids(contact_ids: list[int]) -> None:
    press = lists.create_list("Press")
    assert lists.add_contacts(press, contact_ids[:3]) == 3
    assert lists.add_contacts(press, [*contact_ids[:4], 999_999]) == 1
    assert _member_ids(press) == set(contact_ids[:4])
    assert lists.remove_contacts(press, [contact_ids[0], contact_ids[5]]) == 1
    db.session.commit()
    assert _member_ids(press) == set(contact_ids[1:4])
    assert lists.member_count(press) == 3
    assert lists.member_counts() == {press.id: 3}


def test_add_and_remove_by_segment(contact_ids: list[int]) -> None:
    french = lists.create_list("France")
    query = contacts_matching({"all": [{"field": "country", "op": "is", "value": "FR"}]})
    assert lists.add_matching(french, query) == 3
    assert lists.add_matching(french, query) == 0
    assert _member_ids(french) == {contact_ids[i] for i in (1, 3, 5)}
    assert lists.remove_matching(french, query.where(Contact.id == contact_ids[1])) == 1
    db.session.commit()
    members = db.session.scalars(lists.members_query(french)).all()
    assert {c.id for c in members} == {contact_ids[3], contact_ids[5]}


def test_deleting_a_list_keeps_its_contacts_and_is_audited(contact_ids: list[int]) -> None:
    press = lists.create_list("Press")
    lists.add_contacts(press, contact_ids)
    db.session.commit()
    lists.delete_list(press)
    db.session.commit()
    assert db.session.scalar(select(func.count(Contact.id))) == len(contact_ids)
    assert db.session.scalar(select(func.count()).select_from(list_memberships)) == 0
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "list.delete"))
    assert event is not None and event.detail == {"name": "Press", "members": 6}


def test_deleting_a_contact_removes_its_memberships(contact_ids: list[int]) -> None:
    press = lists.create_list("Press")
    lists.add_contacts(press, contact_ids[:2])
    db.session.commit()
    contact = db.session.get(Contact, contact_ids[0])
    assert contact is not None
    assert [lst.name for lst in lists.lists_of(contact)] == ["Press"]
    delete_contact(contact)
    db.session.commit()
    assert _member_ids(press) == {contact_ids[1]}
