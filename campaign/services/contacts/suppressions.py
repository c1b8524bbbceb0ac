"""The suppression list: add, remove, look up and page through addresses nobody may write to."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from flask import has_request_context, request
from flask_babel import gettext
from sqlalchemy import Insert, Select, Table, func, insert, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from campaign.extensions import db
from campaign.models import AuditEvent, Suppression, SuppressionReason, User, utcnow
from campaign.services.accounts.audit import record_event
from campaign.services.contacts.contacts import normalise_email
from campaign.services.privacy import erased_addresses

PER_PAGE = 50
MAX_NOTE = 2000


class SuppressionError(ValueError):
    """An address cannot be put on the list as asked; the message names the field."""

    def __init__(self, message: str, field: str = "email") -> None:
        super().__init__(message)
        self.field = field


def mask_email(address: str) -> str:
    """Show enough of an address for its owner to recognise it, not enough to harvest it."""
    local, at, domain = address.partition("@")
    if not at:
        return "***"
    shown = local[:1] if len(local) <= 3 else local[:2]
    return f"{shown}***@{domain}"


def _reason(reason: SuppressionReason | str) -> SuppressionReason:
    try:
        found = SuppressionReason(reason)
    except ValueError:
        found = None
    # "erased" entries keep an address's keyed hash, never the address: an erasure makes them.
    if found is None or found is SuppressionReason.ERASED:
        known = ", ".join(r.value for r in SuppressionReason if r is not SuppressionReason.ERASED)
        raise SuppressionError(
            gettext("Reason: %(reason)s is not one of %(known)s", reason=repr(reason), known=known),
            "reason",
        )
    return found


def find_suppression(email: str) -> Suppression | None:
    """The list's entry for `email` (any spelling of the same address), or None."""
    try:
        _, key = normalise_email(email)
    except ValueError:
        return None
    found = db.session.scalar(select(Suppression).where(Suppression.email_key == key))
    # A person erased on request is on the list by a keyed hash (decision 0090).
    return found if found is not None else erased_addresses.erased_entry_if_any(email)


def is_suppressed(email: str) -> bool:
    """Whether no campaign may write to `email`."""
    return find_suppression(email) is not None


# The bounce path (one per hard bounce, thousands in a bulk import): statements built once.
_suppressions: Table = Suppression.__table__
_ADD: dict[str, Insert] = {
    name: dialect_insert(_suppressions)
    .on_conflict_do_nothing(index_elements=["email_key"])
    .returning(_suppressions.c.id)
    for name, dialect_insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}
_AUDIT = insert(AuditEvent.__table__)


def suppress_bounced_address(email: str, *, campaign_id: int | None, note: str = "") -> bool:
    """`suppress_address` for a hard bounce, in two Core statements; True when newly added.

    The same entry and the same audit event as `suppress_address(email, "hard_bounce",
    is_address_checked=False)`, without loading ORM objects: no actor (the bounce is
    mail, not a person), and an address we wrote to is stored even if today's rules
    would refuse it. Raises SuppressionError only for an empty address.
    """
    stored, key = _storable(email, is_address_checked=False)
    if erased_addresses.erased_entry_if_any(stored) is not None:
        return False  # erased on request: on the list already, by its hash alone
    now = utcnow()
    connection = db.session.connection()
    new_id = connection.scalar(
        _ADD[connection.dialect.name],
        {
            "email_key": key,
            "email": stored,
            "reason": SuppressionReason.HARD_BOUNCE.value,
            "note": note.strip()[:MAX_NOTE],
            "campaign_id": campaign_id,
            "created_by_id": None,
            "created_at": now,
        },
    )
    if new_id is None:
        return False  # already on the list: audited when it was added
    connection.execute(
        _AUDIT,
        {
            "at": now,
            "actor_id": None,
            "actor_email": "",
            "action": "suppression.add",
            "target_type": "suppression",
            "target_id": str(new_id),
            "remote_addr": (request.remote_addr or "") if has_request_context() else "cli",
            "detail": _added_detail(stored, SuppressionReason.HARD_BOUNCE, campaign_id),
        },
    )
    return True


def _storable(email: str, *, is_address_checked: bool) -> tuple[str, str]:
    """(the address as stored, its key); SuppressionError when it cannot be stored."""
    try:
        return normalise_email(email)
    except ValueError as error:
        if is_address_checked or not email.strip():
            raise SuppressionError(gettext("Email: %(reason)s", reason=error)) from None
        return email.strip(), email.strip().lower()


def _added_detail(
    stored: str, why: SuppressionReason, campaign_id: int | None
) -> dict[str, object]:
    # The address is personal data: the audit log keeps a masked form only.
    return {"email": mask_email(stored), "reason": why.value, "campaign_id": campaign_id}


def suppress_address(
    email: str,
    reason: SuppressionReason | str,
    *,
    campaign_id: int | None = None,
    note: str = "",
    actor: User | None = None,
    is_address_checked: bool = True,
) -> Suppression:
    """Put `email` on the suppression list (idempotent: an existing entry is returned as is).

    Raises SuppressionError (a ValueError) naming the field when the address is not valid.
    `is_address_checked=False` stores an address we have written to as it is, even if
    today's rules would refuse it: a person's "stop" must never fail on a technicality.
    """
    stored, key = _storable(email, is_address_checked=is_address_checked)
    why = _reason(reason)
    note = note.strip()
    if "\x00" in note:
        raise SuppressionError(gettext("Note: a NUL character cannot be stored."), "note")
    if len(note) > MAX_NOTE:
        raise SuppressionError(
            gettext("Note: at most %(count)d characters", count=MAX_NOTE), "note"
        )
    existing = db.session.scalar(select(Suppression).where(Suppression.email_key == key))
    if existing is not None:
        return existing
    erased = erased_addresses.erased_entry_if_any(stored)
    if erased is not None:
        return erased  # erased on request: the hash stops every letter; never the address again
    # ON CONFLICT DO NOTHING: two one-click POSTs for one address at once (mail providers do
    # that) must both succeed, the second finding the row the first wrote.
    insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    new_id = db.session.scalar(
        insert(Suppression)
        .values(
            email_key=key,
            email=stored,
            reason=why.value,
            note=note,
            campaign_id=campaign_id,
            created_by_id=actor.id if actor else None,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["email_key"])
        .returning(Suppression.id)
    )
    entry = db.session.scalar(select(Suppression).where(Suppression.email_key == key))
    assert entry is not None
    if new_id is None:
        return entry  # someone else suppressed it a moment ago; they audited it
    record_event(
        "suppression.add",
        target_type="suppression",
        target_id=entry.id,
        actor=actor,
        detail=_added_detail(stored, why, campaign_id),
    )
    return entry


def remove_suppression(suppression: Suppression, *, actor: User | None = None) -> None:
    """Take an address off the list so campaigns may write to it again."""
    record_event(
        "suppression.remove",
        target_type="suppression",
        target_id=suppression.id,
        actor=actor,
        detail={
            "email": mask_email(suppression.email),
            "reason": suppression.reason,
            "added_at": suppression.created_at.isoformat() if suppression.created_at else "",
        },
    )
    db.session.delete(suppression)
    db.session.flush()


def counts_by_reason() -> dict[str, int]:
    """Entries per reason, every reason present (zero when none)."""
    counts = dict.fromkeys((r.value for r in SuppressionReason), 0)
    for reason, count in db.session.execute(
        select(Suppression.reason, func.count()).group_by(Suppression.reason)
    ):
        counts[reason] = counts.get(reason, 0) + count
    return counts


def matching_suppressions(query: str = "", reason: str = "") -> Select[Any]:
    """Entries matching part of an address or note and a reason (unordered); the page and
    the API filter alike."""
    statement = select(Suppression)
    text = query.strip().lower()
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        statement = statement.where(
            or_(
                Suppression.email_key.like(pattern, escape="\\"),
                func.lower(Suppression.note).like(pattern, escape="\\"),
            )
        )
    if reason:
        statement = statement.where(Suppression.reason == reason)
    return statement


@dataclass
class SuppressionPage:
    items: list[Suppression]
    total: int
    page: int
    pages: int


def search_suppressions(
    query: str = "", reason: str = "", *, page: int = 1, per_page: int = PER_PAGE
) -> SuppressionPage:
    """One page of entries, newest first, matching part of an address or note and a reason."""
    statement = matching_suppressions(query, reason)
    total = (
        db.session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
        or 0
    )
    pages = max(1, math.ceil(total / per_page))
    page = min(max(1, page), pages)
    items = list(
        db.session.scalars(
            statement.order_by(Suppression.created_at.desc(), Suppression.id.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
    )
    return SuppressionPage(items, total, page, pages)
