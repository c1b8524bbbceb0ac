"""Bulk edits of contacts: tags, role, languages, risk level and lists over many contacts.

The request only resolves the selection (the contact ids, at the confirm) and stores a
ContactBulkEdit row; an RQ job applies it in batches, committing after each and counting
`done`, so 100,000 contacts never ride on a web request and the page shows the progress.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import func, select, update

from campaign.extensions import db
from campaign.labels import label
from campaign.models import BulkEditStatus, Contact, ContactBulkEdit, ContactList, User
from campaign.params import row_id
from campaign.services.accounts.audit import record_event
from campaign.services.contacts import lists as list_service
from campaign.services.contacts.contacts import FIELD_PARSERS

JOB = "workers.jobs.apply_contact_bulk_edit"
BATCH = 500
JOB_TIMEOUT = 4 * 3600
# The form's fields, in the order the pages list them. "set_" keeps them apart from the
# contacts page's filters (role_type, risk_level...), which travel in the same form.
KEYS = (
    "add_tags",
    "remove_tags",
    "set_role_type",
    "set_languages",
    "set_risk_level",
    "add_list",
    "remove_list",
)


class BulkEditError(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_changes(form: Mapping[str, str]) -> dict[str, Any]:
    """The changes asked for by the form; BulkEditError names the first bad value."""
    changes: dict[str, Any] = {}
    try:
        for key in ("add_tags", "remove_tags"):
            tags = FIELD_PARSERS["tags"](form.get(key, "")).split()
            if tags:
                changes[key] = tags
        for key in ("role_type", "risk_level", "languages"):
            if form.get(f"set_{key}", "").strip():
                changes[key] = FIELD_PARSERS[key](form[f"set_{key}"])
    except ValueError as problem:
        raise BulkEditError(str(problem)) from None
    for key in ("add_list", "remove_list"):
        raw = form.get(key, "").strip()
        if raw:
            number = row_id(raw)
            contact_list = db.session.get(ContactList, number) if number is not None else None
            if contact_list is None:
                raise BulkEditError(_("That list no longer exists; choose another."))
            changes[key] = contact_list.id
    if set(changes.get("add_tags", ())) & set(changes.get("remove_tags", ())):
        raise BulkEditError(_("A tag cannot be both added and removed."))
    if "add_list" in changes and changes.get("add_list") == changes.get("remove_list"):
        raise BulkEditError(_("A list cannot be both added to and removed from."))
    if not changes:
        raise BulkEditError(_("Choose at least one change."))
    return changes


def describe_changes(changes: Mapping[str, Any]) -> list[str]:
    """Each change in words, for the confirmation page, the progress page and the audit."""
    lines = []
    if changes.get("add_tags"):
        lines.append(_("Add the tags: %(tags)s", tags=", ".join(changes["add_tags"])))
    if changes.get("remove_tags"):
        lines.append(_("Remove the tags: %(tags)s", tags=", ".join(changes["remove_tags"])))
    if changes.get("role_type"):
        lines.append(
            _("Set the role type to %(role)s", role=label(changes["role_type"], "role_type"))
        )
    if changes.get("languages"):
        lines.append(_("Set the languages to %(languages)s", languages=changes["languages"]))
    if changes.get("risk_level"):
        lines.append(
            _("Set the risk level to %(risk)s", risk=label(changes["risk_level"], "risk_level"))
        )
    if changes.get("add_list"):
        lines.append(_("Add to the list “%(name)s”", name=_list_name(changes["add_list"])))
    if changes.get("remove_list"):
        lines.append(_("Remove from the list “%(name)s”", name=_list_name(changes["remove_list"])))
    return lines


def describe_filters(filters: Any) -> str:
    """The contacts page's filters in words ("Role type: Journalist; List: “Press”")."""
    from babel import Locale, UnknownLocaleError
    from flask_babel import get_locale

    from campaign.letters.countries import load_country_names
    from campaign.models import Segment

    parts: list[tuple[str, str]] = []
    if filters.q:
        parts.append((_("Search"), f"“{filters.q}”"))
    if filters.role_type:
        parts.append((_("Role type"), label(filters.role_type, "role_type")))
    if filters.country:
        locale = str(get_locale() or "en")
        name = load_country_names().short(filters.country, locale)
        parts.append((_("Country"), name or filters.country))
    if filters.language:
        try:
            language = Locale.parse(filters.language.replace("-", "_")).get_display_name(
                get_locale()
            )
        except (ValueError, TypeError, UnknownLocaleError):
            language = None
        parts.append((_("Language"), language or filters.language))
    if filters.tag:
        parts.append((_("Tag"), filters.tag))
    if filters.risk_level:
        parts.append((_("Risk"), label(filters.risk_level, "risk_level")))
    if filters.list_id:
        parts.append((_("List"), f"“{_list_name(filters.list_id)}”"))
    if filters.segment_id:
        segment = db.session.get(Segment, filters.segment_id)
        parts.append((_("Segment"), f"“{segment.name}”" if segment else f"#{filters.segment_id}"))
    return "; ".join(_("%(field)s: %(value)s", field=f, value=v) for f, v in parts)


def _list_name(list_id: int) -> str:
    contact_list = db.session.get(ContactList, list_id)
    return contact_list.name if contact_list is not None else f"#{list_id}"


def resolve_ids(query: Any) -> list[int]:
    """The live contact ids a selection (a select of Contact) holds now, in id order."""
    ids = query.with_only_columns(Contact.id).where(Contact.deleted_at.is_(None))
    return [int(i) for i in db.session.scalars(ids.order_by(Contact.id))]


def count_selection(query: Any) -> int:
    """How many live contacts a selection holds now (counted by the database)."""
    ids = query.with_only_columns(Contact.id).where(Contact.deleted_at.is_(None)).order_by(None)
    return int(db.session.scalar(select(func.count()).select_from(ids.subquery())) or 0)


def ticked_query(ids: list[int]) -> Any:
    return select(Contact).where(Contact.id.in_(ids or [0]))


def create_bulk_edit(
    changes: dict[str, Any], contact_ids: list[int], selection_label: str, actor: User | None
) -> ContactBulkEdit:
    """Store the edit and enqueue its job (after the caller commits); audited once."""
    if not contact_ids:
        raise BulkEditError(_("No contacts are selected; tick some or change the filters."))
    edit = ContactBulkEdit(
        created_by_id=actor.id if actor is not None else None,
        changes=changes,
        contact_ids=contact_ids,
        selection_label=selection_label[:2000],
        status=BulkEditStatus.QUEUED.value,
        total=len(contact_ids),
        done=0,
    )
    db.session.add(edit)
    db.session.flush()
    record_event(
        "contact.bulk_edit",
        target_type="contact_bulk_edit",
        target_id=edit.id,
        actor=actor,
        detail={"count": len(contact_ids), "changes": changes, "selection": selection_label},
    )
    from campaign.queue import enqueue_after_commit

    enqueue_after_commit(
        db.session(), JOB, edit.id, job_id=f"contact-bulk-edit-{edit.id}", job_timeout=JOB_TIMEOUT
    )
    return edit


CONFIRM_TTL = 86_400
_PENDING = "pending"


def _confirm_key(token: str) -> str:
    from flask import current_app

    return f"campaign:{current_app.config['QUEUE_NAME']}:bulk-confirm:{token}"


def new_confirm_token() -> str:
    """A token for one confirmation form: confirming it twice makes one edit."""
    import secrets

    return secrets.token_urlsafe(16)


def take_confirm_token(token: str) -> int | str | None:
    """None when this confirmation is the first (the token is now taken); else the id of
    the edit it made already, or "pending" while that first submission is still running."""
    from campaign.queue import get_redis

    if not token:
        return None
    key = _confirm_key(token[:64])
    redis = get_redis()
    if redis.set(key, _PENDING, nx=True, ex=CONFIRM_TTL):
        return None
    found = redis.get(key)
    text = found.decode() if isinstance(found, bytes) else str(found or "")
    return int(text) if text.isdecimal() else _PENDING


def settle_confirm_token(token: str, edit_id: int | None) -> None:
    """Record the edit a token made (or free the token when nothing was made)."""
    from campaign.queue import get_redis

    if not token:
        return
    key = _confirm_key(token[:64])
    if edit_id is None:
        get_redis().delete(key)
    else:
        get_redis().set(key, str(edit_id), ex=CONFIRM_TTL)


# A running edit whose heartbeat (updated_at) is older than this lost its worker (killed,
# the machine gone): a batch of BATCH contacts takes seconds, so two minutes is ample.
STALE_AFTER = timedelta(minutes=2)


class BulkEditTakenOver(RuntimeError):
    """The edit is no longer this run's (the reconciler queued it again): stop quietly."""


def claim_bulk_edit(edit_id: int) -> bool:
    """queued -> running for this worker; False when another run has it or it is done."""
    result = db.session.execute(
        update(ContactBulkEdit)
        .where(
            ContactBulkEdit.id == edit_id,
            ContactBulkEdit.status == BulkEditStatus.QUEUED.value,
        )
        .values(status=BulkEditStatus.RUNNING.value, updated_at=datetime.now(UTC))
        .execution_options(preserve_rowcount=True)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def _enqueue(edit_id: int) -> None:
    from campaign.queue import enqueue_after_commit

    # No fixed job id: the job that gives the edit back may still be running under it.
    enqueue_after_commit(db.session(), JOB, edit_id, job_timeout=JOB_TIMEOUT)


def requeue_stale(now: datetime | None = None) -> list[int]:
    """Queue again the running edits whose worker is gone (no heartbeat for STALE_AFTER).

    `done` counts the batches committed, so the next run carries on after them; each batch
    is applied once, and applying one twice would change nothing more anyway.
    """
    limit = (now or datetime.now(UTC)) - STALE_AFTER
    stale = db.session.scalars(
        select(ContactBulkEdit).where(
            ContactBulkEdit.status == BulkEditStatus.RUNNING.value,
            func.coalesce(ContactBulkEdit.updated_at, ContactBulkEdit.created_at) < limit,
        )
    ).all()
    for edit in stale:
        edit.status = BulkEditStatus.QUEUED.value
        edit.updated_at = now or datetime.now(UTC)
        _enqueue(edit.id)
    db.session.flush()
    return [edit.id for edit in stale]


def _still_ours(edit_id: int, done_before: int, done_now: int) -> bool:
    """Record a batch's progress only if this run still holds the edit (compare and set)."""
    result = db.session.execute(
        update(ContactBulkEdit)
        .where(
            ContactBulkEdit.id == edit_id,
            ContactBulkEdit.status == BulkEditStatus.RUNNING.value,
            ContactBulkEdit.done == done_before,
        )
        .values(done=done_now, updated_at=datetime.now(UTC))
        .execution_options(preserve_rowcount=True, synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def run_bulk_edit(
    edit_id: int,
    *,
    commit: Callable[[], None],
    should_stop: Callable[[], bool] | None = None,
) -> ContactBulkEdit:
    """Apply the edit batch by batch, committing after each (done counts what is applied).

    Asked to stop (`should_stop`, between batches), it gives the edit back: queued again,
    with a job for the next worker, carrying on after the batches done.
    """
    edit = db.session.get(ContactBulkEdit, edit_id)
    if edit is None:
        raise LookupError(f"contact bulk edit {edit_id} does not exist")
    ids = list(edit.contact_ids)
    changes = dict(edit.changes)
    add_list = db.session.get(ContactList, changes["add_list"]) if changes.get("add_list") else None
    remove_list = (
        db.session.get(ContactList, changes["remove_list"]) if changes.get("remove_list") else None
    )
    start = edit.done
    while start < len(ids):
        chunk = ids[start : start + BATCH]
        for contact in db.session.scalars(
            select(Contact).where(Contact.id.in_(chunk), Contact.deleted_at.is_(None))
        ):
            _apply(contact, changes)
        if add_list is not None:
            list_service.add_contacts(add_list, chunk)
        if remove_list is not None:
            list_service.remove_contacts(remove_list, chunk)
        if not _still_ours(edit_id, start, start + len(chunk)):
            raise BulkEditTakenOver(f"contact bulk edit {edit_id} was queued again")
        start += len(chunk)
        commit()
        db.session.refresh(edit)
        if should_stop is not None and should_stop() and start < len(ids):
            edit.status = BulkEditStatus.QUEUED.value
            edit.updated_at = datetime.now(UTC)
            _enqueue(edit.id)
            db.session.flush()
            return edit
    edit.status = BulkEditStatus.DONE.value
    edit.finished_at = datetime.now(UTC)
    db.session.flush()
    return edit


def mark_failed(edit_id: int, error: Exception) -> None:
    edit = db.session.get(ContactBulkEdit, edit_id)
    if edit is not None:
        edit.status = BulkEditStatus.FAILED.value
        edit.error = f"{type(error).__name__}: {error}"[:2000]
        edit.finished_at = datetime.now(UTC)
        db.session.flush()


def _apply(contact: Contact, changes: Mapping[str, Any]) -> None:
    tags = [t for t in contact.tag_list if t not in changes.get("remove_tags", ())]
    tags += [t for t in changes.get("add_tags", ()) if t not in tags]
    if tags != contact.tag_list:
        contact.tags = " ".join(tags)
    for key in ("role_type", "languages", "risk_level"):
        if changes.get(key) and getattr(contact, key) != changes[key]:
            setattr(contact, key, changes[key])


def progress_of(edit: ContactBulkEdit) -> dict[str, Any]:
    percent = 100 if edit.total == 0 else int(edit.done * 100 / edit.total)
    return {
        "status": edit.status,
        "done": edit.done,
        "total": edit.total,
        "percent": percent,
        "is_done": edit.status in (BulkEditStatus.DONE.value, BulkEditStatus.FAILED.value),
        "message": ngettext(
            "%(done)d of %(num)d contact changed",
            "%(done)d of %(num)d contacts changed",
            edit.total,
            done=edit.done,
        ),
    }
