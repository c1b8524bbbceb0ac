"""Audiences a letter can be checked or previewed against: lists and segments, by one key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import ContactList, Segment
from campaign.params import row_id
from campaign.services.contacts import lists, segments


@dataclass(frozen=True)
class Audience:
    key: str  # "list:3" or "segment:2"
    label: str
    query: Any


def audience_choices() -> list[tuple[str, str]]:
    """(key, label) for every list and segment, lists first."""
    found = [(f"list:{item.id}", _("List: %(name)s", name=item.name)) for item in lists.all_lists()]
    found += [
        (f"segment:{item.id}", _("Segment: %(name)s", name=item.name))
        for item in db.session.scalars(select(Segment).order_by(Segment.name))
    ]
    return found


def find_audience(key: str) -> Audience | None:
    """The list or segment a key such as "list:3" or "segment:2" names, or None."""
    kind, _, raw_id = key.partition(":")
    number = row_id(raw_id)
    if number is None:
        return None
    if kind == "list":
        contact_list = db.session.get(ContactList, number)
        if contact_list is not None:
            return Audience(key, contact_list.name, lists.members_query(contact_list))
    if kind == "segment":
        segment = db.session.get(Segment, number)
        if segment is not None:
            return Audience(key, segment.name, segments.contacts_matching(segment.definition))
    return None
