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
from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from campaign.extensions import db
from campaign.models import Contact, Delivery, DeliveryStatus, User
from campaign.services.accounts.audit import record_event
from campaign.services.paging import Page, clamp_page, offset_of
from campaign.services.sending.deliveries import unless_gone

TRASH_DAYS = 30
PURGE_BATCH = 500
TRASH_PAGE = 100


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
    # A record merged away that still holds letters (the survivor's history shows them) is
    # kept, not purged: `merged_into` is that survivor (decision 0048).
    merged_into: Contact | None = None
    keeps_letters: bool = False

    @property
    def days_left(self) -> int:
        left = self.purge_on - datetime.now(UTC)
        return max(0, left.days + (1 if left.seconds else 0))


def live() -> Any:
    """The clause every contact query adds: not in the trash."""
    return Contact.deleted_at.is_(None)


def _holds_letters() -> Any:
    """SQL: the contact still has deliveries (the ledger's letters to it)."""
    return exists().where(Delivery.contact_id == Contact.id)


def _kept_for_history() -> Any:
    """SQL: a record merged into a live contact that still holds letters: never purged."""
    return and_(Contact.merged_into_id.is_not(None), _holds_letters())


def trash_contact(contact: Contact, *, actor: User | None = None) -> None:
    """Move a contact to the trash; its letters not yet sent are cancelled."""
    if contact.deleted_at is not None:
        return
    now = datetime.now(UTC)
    contact.deleted_at = now
    contact.deleted_by_id = actor.id if actor is not None else _current_user_id()
    cancel_open_letters(Delivery.contact_id == contact.id)
    db.session.flush()
    record_event(
        "contact.trash",
        target_type="contact",
        target_id=contact.id,
        actor=actor,
        detail={"email": contact.email, "name": contact.display_name},
    )


def cancel_open_letters(*where: Any) -> int:
    """Cancel the letters still to be tried (queued, deferred, in doubt and retried) of the
    deliveries `where` selects; return how many.

    A row being sent now is left to its batch, which records it cancelled when it reaches
    it (or hands it back, and the next claim cancels it here). A row that may already have
    reached the server stays in doubt, now final (reason "contact_deleted"): the ledger never
    says less than what may have gone out.
    """
    result = db.session.execute(
        update(Delivery)
        .where(
            *where,
            or_(
                Delivery.status.in_([DeliveryStatus.QUEUED.value, DeliveryStatus.DEFERRED.value]),
                and_(Delivery.status == DeliveryStatus.IN_DOUBT.value, Delivery.reason == ""),
            ),
        )
        .values(
            status=unless_gone(DeliveryStatus.CANCELLED.value),
            reason="contact_deleted",
            next_attempt_at=None,
            updated_at=datetime.now(UTC),
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


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
    by_key: dict[str, list[int]] = {}
    for c in contacts:
        by_key.setdefault(c.email_key, []).append(c.id)
    holders: dict[int, Contact] = {}
    for start in range(0, len(by_key), 500):
        keys = list(by_key)[start : start + 500]
        for holder in db.session.scalars(
            select(Contact).where(Contact.email_key.in_(keys), live())
        ):
            for trashed_id in by_key[holder.email_key]:
                holders[trashed_id] = holder
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
    try:
        # The check above and this write are not one step: a contact created with the same
        # address in between is refused by the unique index, and said in words here.
        with db.session.begin_nested():
            contact.deleted_at = None
            contact.deleted_by_id = None
            # Its own letters are its own again, no longer shown in the survivor's history.
            contact.merged_into_id = None
            db.session.flush()
    except IntegrityError:
        raise TrashError(
            _(
                "%(name)s cannot be restored: another contact took its address %(address)s "
                "a moment ago. Merge the two contacts instead, or change that contact's "
                "address first.",
                name=contact.display_name,
                address=contact.email,
            )
        ) from None
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
    survivor = db.session.get(Contact, contact.merged_into_id) if contact.merged_into_id else None
    if survivor is not None and db.session.scalar(
        select(_holds_letters()).where(Contact.id == contact.id)
    ):
        raise TrashError(
            _(
                "%(name)s was merged into %(other)s and holds letters shown in that contact's "
                "history; it is kept for them.",
                name=contact.display_name,
                other=survivor.display_name,
            )
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
                .where(
                    Contact.deleted_at.is_not(None),
                    Contact.deleted_at < cutoff,
                    ~_kept_for_history(),
                )
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


def trashed_contacts(page: int = 1, per_page: int | None = None) -> Page[TrashedContact]:
    """One page of the contacts in the trash, the most recently deleted first."""
    per_page = per_page or TRASH_PAGE
    total = count_trashed()
    page = clamp_page(page, total, per_page)
    rows = db.session.execute(
        select(Contact, User.email)
        .outerjoin(User, User.id == Contact.deleted_by_id)
        .where(Contact.deleted_at.is_not(None))
        .order_by(Contact.deleted_at.desc(), Contact.id.desc())
        .offset(offset_of(page, per_page))
        .limit(per_page)
    ).all()
    survivor_ids = {c.merged_into_id for c, _who in rows if c.merged_into_id}
    survivors = (
        {c.id: c for c in db.session.scalars(select(Contact).where(Contact.id.in_(survivor_ids)))}
        if survivor_ids
        else {}
    )
    holding = (
        set(
            db.session.scalars(
                select(Delivery.contact_id)
                .where(Delivery.contact_id.in_([c.id for c, _who in rows if c.merged_into_id]))
                .distinct()
            )
        )
        if survivors
        else set()
    )
    entries = [
        TrashedContact(
            contact,
            who or "",
            _aware(contact.deleted_at) + timedelta(days=TRASH_DAYS),
            merged_into=survivors.get(contact.merged_into_id or 0),
            keeps_letters=contact.id in holding and contact.merged_into_id in survivors,
        )
        for contact, who in rows
    ]
    return Page(entries, page, per_page, total)


def count_trashed() -> int:
    return int(
        db.session.scalar(select(func.count(Contact.id)).where(Contact.deleted_at.is_not(None)))
        or 0
    )


def _aware(moment: datetime | None) -> datetime:
    assert moment is not None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
