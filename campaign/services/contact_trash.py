"""The contacts' trash: delete moves a contact there for 30 days, restorable, then purged.

A contact in the trash keeps its row, its list memberships and its history, but every query
that lists, counts, searches or targets contacts leaves it out (`deleted_at IS NULL`); its
address is free for a new live contact meanwhile. Suppressions are keyed by address and are
never touched here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import delete, func, select, update

from campaign.extensions import db
from campaign.models import Contact, Delivery, DeliveryStatus, User
from campaign.services.audit import record_event

TRASH_DAYS = 30
PURGE_BATCH = 500


class TrashError(ValueError):
    """A trash operation was refused; the message says why in the reader's language."""

    def __init__(self, message: str, *, other_id: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        # The live contact that holds the address now (a restore then offers a merge).
        self.other_id = other_id


@dataclass(frozen=True)
class TrashedContact:
    contact: Contact
    deleted_by: str
    purge_on: datetime

    @property
    def days_left(self) -> int:
        left = self.purge_on - datetime.now(UTC)
        return max(0, left.days + (1 if left.seconds else 0))


def live() -> Any:
    """The clause every contact query adds: not in the trash."""
    return Contact.deleted_at.is_(None)


def trash_contact(contact: Contact, *, actor: User | None = None) -> None:
    """Move a contact to the trash; its letters not yet sent are cancelled."""
    if contact.deleted_at is not None:
        return
    now = datetime.now(UTC)
    contact.deleted_at = now
    contact.deleted_by_id = actor.id if actor is not None else _current_user_id()
    db.session.execute(
        update(Delivery)
        .where(
            Delivery.contact_id == contact.id,
            Delivery.status.in_([DeliveryStatus.QUEUED.value, DeliveryStatus.DEFERRED.value]),
        )
        .values(
            status=DeliveryStatus.CANCELLED.value,
            reason="contact_deleted",
            next_attempt_at=None,
            updated_at=now,
        )
    )
    db.session.flush()
    record_event(
        "contact.trash",
        target_type="contact",
        target_id=contact.id,
        actor=actor,
        detail={"email": contact.email, "name": contact.display_name},
    )


def _current_user_id() -> int | None:
    from flask import has_request_context
    from flask_login import current_user

    if has_request_context() and current_user.is_authenticated:
        return int(current_user.id)
    return None


def address_holder(contact: Contact) -> Contact | None:
    """The live contact, other than `contact`, that has its address now."""
    return db.session.scalar(
        select(Contact).where(
            Contact.email_key == contact.email_key, live(), Contact.id != contact.id
        )
    )


def address_holders(contacts: list[Contact]) -> dict[int, Contact]:
    """For each trashed contact whose address a live contact has now: that live contact."""
    by_key = {c.email_key: c.id for c in contacts}
    holders: dict[int, Contact] = {}
    for start in range(0, len(by_key), 500):
        keys = list(by_key)[start : start + 500]
        for holder in db.session.scalars(
            select(Contact).where(Contact.email_key.in_(keys), live())
        ):
            holders[by_key[holder.email_key]] = holder
    return holders


def restore_contact(contact: Contact) -> None:
    """Bring a contact back from the trash; refused (TrashError) if its address was reused."""
    if contact.deleted_at is None:
        raise TrashError(_("%(name)s is not in the trash.", name=contact.display_name))
    holder = address_holder(contact)
    if holder is not None:
        raise TrashError(
            _(
                "%(name)s cannot be restored: its address %(address)s now belongs to "
                "%(other)s (#%(id)d). Merge the two contacts instead, or change that "
                "contact's address first.",
                name=contact.display_name,
                address=contact.email,
                other=holder.display_name,
                id=holder.id,
            ),
            other_id=holder.id,
        )
    contact.deleted_at = None
    contact.deleted_by_id = None
    db.session.flush()
    record_event(
        "contact.restore",
        target_type="contact",
        target_id=contact.id,
        detail={"email": contact.email, "name": contact.display_name},
    )


def purge_contact(contact: Contact) -> None:
    """Delete a contact in the trash for good (an administrator's "Delete now")."""
    if contact.deleted_at is None:
        raise TrashError(
            _("%(name)s is not in the trash; delete it first.", name=contact.display_name)
        )
    record_event(
        "contact.delete",
        target_type="contact",
        target_id=contact.id,
        detail={"email": contact.email, "name": contact.display_name, "from_trash": True},
    )
    db.session.delete(contact)
    db.session.flush()


def purge_expired(now: datetime) -> int:
    """Delete for good the contacts in the trash for more than 30 days; return how many."""
    cutoff = now - timedelta(days=TRASH_DAYS)
    purged = 0
    while True:
        ids = list(
            db.session.scalars(
                select(Contact.id)
                .where(Contact.deleted_at.is_not(None), Contact.deleted_at < cutoff)
                .order_by(Contact.id)
                .limit(PURGE_BATCH)
            )
        )
        if not ids:
            break
        # Memberships and invitations go by ON DELETE CASCADE; deliveries and answers keep
        # their row with the contact set to NULL, so the ledger stays whole.
        db.session.execute(delete(Contact).where(Contact.id.in_(ids)))
        purged += len(ids)
    if purged:
        record_event(
            "contact.purge",
            target_type="contact",
            detail={"count": purged, "older_than_days": TRASH_DAYS},
        )
    db.session.flush()
    return purged


def purge_after_tick(now: datetime, commit: Callable[[], None]) -> int:
    """The scheduler's hook: purge what is due at every tick (cheap when nothing is)."""
    purged = purge_expired(now)
    if purged:
        commit()
    return purged


def trashed_contacts() -> list[TrashedContact]:
    """The contacts in the trash, the most recently deleted first."""
    rows = db.session.execute(
        select(Contact, User.email)
        .outerjoin(User, User.id == Contact.deleted_by_id)
        .where(Contact.deleted_at.is_not(None))
        .order_by(Contact.deleted_at.desc(), Contact.id.desc())
        .limit(1000)
    ).all()
    return [
        TrashedContact(contact, who or "", _aware(contact.deleted_at) + timedelta(days=TRASH_DAYS))
        for contact, who in rows
    ]


def count_trashed() -> int:
    return int(
        db.session.scalar(select(func.count(Contact.id)).where(Contact.deleted_at.is_not(None)))
        or 0
    )


def _aware(moment: datetime | None) -> datetime:
    assert moment is not None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _register() -> None:
    from campaign.scheduling.tick import AFTER_TICK

    if purge_after_tick not in AFTER_TICK:
        AFTER_TICK.append(purge_after_tick)


_register()
