"""Static contact lists: create, rename, delete, and bulk membership changes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import Integer, Select, delete, exists, func, insert, literal, select

from campaign.extensions import db
from campaign.models import Contact, ContactList, list_memberships
from campaign.services.accounts.audit import record_event

MAX_NAME = 200


class ListError(ValueError):
    """A list operation that cannot be carried out; the message is for people."""


def find_list(name: str) -> ContactList | None:
    """The list called `name`, compared without case and extra spaces."""
    cleaned = " ".join(name.split())
    return db.session.scalar(
        select(ContactList).where(func.lower(ContactList.name) == cleaned.lower())
    )


def find_or_create_list(name: str) -> ContactList:
    """The list called `name` (compared without case), created if missing."""
    return find_list(name) or create_list(name)


def _clean_name(name: str, current_id: int | None) -> str:
    cleaned = " ".join(name.split())
    if "\x00" in cleaned:
        raise ListError(_("A list name cannot contain a NUL character."))
    if not cleaned:
        raise ListError(_("A list needs a name."))
    if len(cleaned) > MAX_NAME:
        raise ListError(_("A list name can be at most %(limit)d characters long.", limit=MAX_NAME))
    clash = find_list(cleaned)
    if clash is not None and clash.id != current_id:
        raise ListError(_("A list called “%(name)s” already exists.", name=cleaned))
    return cleaned


def _clean_description(description: str) -> str:
    if "\x00" in description:
        raise ListError(_("A list's description cannot contain a NUL character."))
    return description.strip()


def create_list(name: str, description: str = "") -> ContactList:
    """Create an empty list with a unique name."""
    contact_list = ContactList(
        name=_clean_name(name, None), description=_clean_description(description)
    )
    db.session.add(contact_list)
    db.session.flush()
    record_event(
        "list.create",
        target_type="list",
        target_id=contact_list.id,
        detail={"name": contact_list.name},
    )
    return contact_list


def rename_list(contact_list: ContactList, name: str, description: str | None = None) -> None:
    """Give a list a new (unique) name and, if given, a new description."""
    old = contact_list.name
    contact_list.name = _clean_name(name, contact_list.id)
    if description is not None:
        contact_list.description = _clean_description(description)
    db.session.flush()
    if old != contact_list.name:
        record_event(
            "list.rename",
            target_type="list",
            target_id=contact_list.id,
            detail={"from": old, "to": contact_list.name},
        )


def delete_list(contact_list: ContactList) -> None:
    """Delete a list (its contacts stay); the audit log keeps its name and size."""
    record_event(
        "list.delete",
        target_type="list",
        target_id=contact_list.id,
        detail={"name": contact_list.name, "members": member_count(contact_list)},
    )
    # Memberships go explicitly: the ORM would otherwise load a large collection first.
    db.session.execute(
        delete(list_memberships).where(list_memberships.c.list_id == contact_list.id)
    )
    db.session.delete(contact_list)
    db.session.flush()


def _not_yet_member(list_id: int) -> Any:
    return ~exists().where(
        list_memberships.c.list_id == list_id,
        list_memberships.c.contact_id == Contact.id,
    )


def add_contacts(contact_list: ContactList, contact_ids: Iterable[int]) -> int:
    """Add the contacts with these ids (unknown ids and current members are skipped)."""
    ids = sorted({int(i) for i in contact_ids})
    added = 0
    # Chunks keep the IN list under every database's parameter limit.
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        added += _insert_members(
            contact_list.id,
            select(Contact).where(Contact.id.in_(chunk), Contact.deleted_at.is_(None)),
        )
    return added


def add_matching(contact_list: ContactList, query: Select[Any]) -> int:
    """Add every contact selected by `query` (a select of Contact); return how many were new."""
    return _insert_members(contact_list.id, query)


def _insert_members(list_id: int, query: Select[Any]) -> int:
    # INSERT ... SELECT: adding 50,000 contacts never loads them into Python.
    source = (
        query.with_only_columns(literal(list_id, Integer), Contact.id)
        .order_by(None)
        .limit(None)
        .where(_not_yet_member(list_id))
    )
    statement = insert(list_memberships).from_select(["list_id", "contact_id"], source)
    # rowcount of an INSERT is only kept on request (SQLAlchemy 2.1, psycopg).
    result = db.session.execute(statement.execution_options(preserve_rowcount=True))
    db.session.flush()
    return int(getattr(result, "rowcount", 0) or 0)


def remove_contacts(contact_list: ContactList, contact_ids: Iterable[int]) -> int:
    """Take these contacts off the list; return how many were members."""
    ids = sorted({int(i) for i in contact_ids})
    removed = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        result = db.session.execute(
            delete(list_memberships).where(
                list_memberships.c.list_id == contact_list.id,
                list_memberships.c.contact_id.in_(chunk),
            )
        )
        removed += int(getattr(result, "rowcount", 0) or 0)
    db.session.flush()
    return removed


def remove_matching(contact_list: ContactList, query: Select[Any]) -> int:
    """Take every contact selected by `query` off the list."""
    ids = query.with_only_columns(Contact.id).order_by(None)
    result = db.session.execute(
        delete(list_memberships).where(
            list_memberships.c.list_id == contact_list.id,
            list_memberships.c.contact_id.in_(ids.scalar_subquery()),
        )
    )
    db.session.flush()
    return int(getattr(result, "rowcount", 0) or 0)


def members_query(contact_list: ContactList | int) -> Select[Contact]:
    """Select the list's contacts (unordered)."""
    return select(Contact).where(Contact.id.in_(member_ids(contact_list)))


# A contact in the trash keeps its memberships (a restore brings them back) but is no
# member meanwhile: every member query and count goes through the live contacts.
_live_ids = select(Contact.id).where(Contact.deleted_at.is_(None))


def member_ids(contact_list: ContactList | int) -> Select[int]:
    list_id = contact_list if isinstance(contact_list, int) else contact_list.id
    return select(list_memberships.c.contact_id).where(
        list_memberships.c.list_id == list_id, list_memberships.c.contact_id.in_(_live_ids)
    )


def member_count(contact_list: ContactList) -> int:
    query = select(func.count()).where(
        list_memberships.c.list_id == contact_list.id,
        list_memberships.c.contact_id.in_(_live_ids),
    )
    return int(db.session.scalar(query) or 0)


def member_counts() -> dict[int, int]:
    """Members per list id, in one query (lists without members are absent)."""
    rows = db.session.execute(
        select(list_memberships.c.list_id, func.count())
        .where(list_memberships.c.contact_id.in_(_live_ids))
        .group_by(list_memberships.c.list_id)
    )
    return {int(list_id): int(count) for list_id, count in rows}


def all_lists() -> list[ContactList]:
    return list(db.session.scalars(select(ContactList).order_by(ContactList.name)))


def lists_of(contact: Contact) -> list[ContactList]:
    """The lists a contact belongs to, by name."""
    query = (
        select(ContactList)
        .join(list_memberships, list_memberships.c.list_id == ContactList.id)
        .where(list_memberships.c.contact_id == contact.id)
        .order_by(ContactList.name)
    )
    return list(db.session.scalars(query))
