"""Editors' work on a sign-on page's signatures: approve, reject, correct, merge, order.

An approved signature becomes a Signatory of the statement through the statements service,
which records a new statement version: a campaign launched earlier keeps the version it
froze, and later approvals, corrections and merges land in the next one. Audit events hold
ids only, never a signer's name or address (decision 0029).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select, update

from campaign.extensions import db
from campaign.labels import label
from campaign.models import (
    InstallationSetting,
    PublishAs,
    Signatory,
    SignatoryKind,
    Signature,
    SignatureStatus,
    SignOn,
    SignOnOrder,
    Statement,
    User,
    WebhookEventType,
)
from campaign.services.accounts.audit import record_event
from campaign.services.sending.notices import Notice, build_message, queue_notice
from campaign.services.sign_on.pages import as_signatory_values, name_key
from campaign.services.sign_on.signatures import SignatureInputError, clean_form, email_language
from campaign.services.statements import statements
from campaign.services.webhooks import payloads as webhook_payloads
from campaign.services.webhooks.events import record_webhook_event


class ModerationError(ValueError):
    """A moderation step that cannot be done as asked; `field` names the form field, if any."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


# The fields an editor may correct, their longest values (the columns' sizes, for the form)
# and their labels on the editors' pages.
EDITABLE_LIMITS = {
    "name": 300,
    "acronym": 50,
    "role": 200,
    "organisation": 300,
    "country": 100,
    "exile_country": 100,
}
EDITABLE_FIELDS = ("kind", *EDITABLE_LIMITS, "publish_as")
FIELD_LABELS = {
    "kind": _l("Kind"),
    "name": _l("Name"),
    "acronym": _l("Acronym"),
    "role": _l("Role"),
    "organisation": _l("Organisation"),
    "country": _l("Country"),
    "exile_country": _l("Based in exile in"),
    "publish_as": _l("Publish as"),
}
_MODERATED = (SignatureStatus.CONFIRMED.value, SignatureStatus.APPROVED.value)


def _now() -> datetime:
    return datetime.now(UTC)


# "This signature cannot be approved: <why>", one sentence per step and per state.
_CANNOT = {
    "approved": _l("This signature cannot be approved: %(reason)s"),
    "rejected": _l("This signature cannot be rejected: %(reason)s"),
    "edited": _l("This signature cannot be edited: %(reason)s"),
    "merged": _l("This signature cannot be merged: %(reason)s"),
}
_BECAUSE = {
    SignatureStatus.UNCONFIRMED.value: _l(
        "it is not confirmed by the signer yet (they have not followed the link e-mailed to them)."
    ),
    SignatureStatus.MERGED.value: _l("it was merged into another one."),
    SignatureStatus.CONFIRMED.value: _l("it is confirmed already."),
    SignatureStatus.APPROVED.value: _l("it is approved already."),
    SignatureStatus.REJECTED.value: _l("it is rejected already."),
}


def _status_problem(signature: Signature, verb: str) -> str:
    """Why `signature` cannot be `verb`ed in its state, in the editor's terms."""
    reason = _BECAUSE.get(signature.status)
    because = (
        str(reason)
        if reason is not None
        else _("its state is “%(state)s”.", state=label(signature.status, "signature_status"))
    )
    return str(_CANNOT[verb]) % {"reason": because}


def _statement_of(signature: Signature) -> Statement:
    sign_on = db.session.get(SignOn, signature.sign_on_id)
    statement = db.session.get(Statement, sign_on.statement_id) if sign_on else None
    if statement is None:
        raise ModerationError(_("This signature's statement no longer exists."))
    return statement


def _signatory_of(signature: Signature) -> Signatory | None:
    if signature.signatory_id is None:
        return None
    return db.session.get(Signatory, signature.signatory_id)


def _moderated(signature: Signature, actor: User | None) -> None:
    signature.moderated_at = _now()
    signature.moderated_by_id = actor.id if actor else None


def _audit(action: str, signature: Signature, actor: User | None, **ids: Any) -> None:
    record_event(
        action,
        target_type="signature",
        target_id=signature.id,
        actor=actor,
        detail={"sign_on_id": signature.sign_on_id, **ids},
    )


# --- approve and reject --------------------------------------------------------------------


def _claim(signature: Signature, allowed: tuple[str, ...], doing: str) -> str:
    """Take the signature for one moderation step; return its status before the step.

    A conditional UPDATE: of two editors approving at once (or a double click), the second
    finds the row changed and is told so, instead of adding the signer to the list twice.
    """
    before = signature.status
    result = db.session.execute(
        update(Signature)
        .where(Signature.id == signature.id, Signature.status.in_(allowed))
        .values(moderated_at=_now())
    )
    db.session.refresh(signature)
    if int(getattr(result, "rowcount", 0) or 0) != 1 or signature.status != before:
        raise ModerationError(_status_problem(signature, doing))
    return before


def approve(signature: Signature, *, actor: User | None = None) -> Signatory:
    """Make a confirmed signature a signatory of the statement (a new statement version)."""
    if signature.status != SignatureStatus.CONFIRMED.value:
        raise ModerationError(_status_problem(signature, "approved"))
    _claim(signature, (SignatureStatus.CONFIRMED.value,), "approved")
    statement = _statement_of(signature)
    sign_on = db.session.get(SignOn, signature.sign_on_id)
    signatory = statements.add_signatory(
        statement,
        as_signatory_values(signature),
        actor=actor,
        organisations_first=sign_on is not None
        and sign_on.ordering == SignOnOrder.ORGANISATIONS_FIRST.value,
    )
    signature.status = SignatureStatus.APPROVED.value
    signature.signatory_id = signatory.id
    _moderated(signature, actor)
    db.session.flush()
    _audit("signature.approve", signature, actor, signatory_id=signatory.id)
    record_webhook_event(
        WebhookEventType.SIGNATURE_APPROVED,
        webhook_payloads.signature_event(signature.id, signature.moderated_at or _now()),
    )
    return signatory


def reject(signature: Signature, *, actor: User | None = None) -> None:
    """Refuse a confirmed signature; an approved one also leaves the statement's list."""
    if signature.status not in _MODERATED:
        raise ModerationError(_status_problem(signature, "rejected"))
    _claim(signature, _MODERATED, "rejected")
    signatory = _signatory_of(signature)
    if signatory is not None:
        statements.remove_signatory(signatory, actor=actor)
    signature.status = SignatureStatus.REJECTED.value
    signature.signatory_id = None
    _moderated(signature, actor)
    db.session.flush()
    _audit(
        "signature.reject",
        signature,
        actor,
        signatory_id=signatory.id if signatory is not None else None,
    )


# --- corrections ---------------------------------------------------------------------------


def clean_fields(signature: Signature, changes: Mapping[str, str]) -> dict[str, str]:
    """The signer's fields as they would be saved; ModerationError names the field at fault.

    The public form's own rules (campaign.services.sign_on.signatures.clean_form): one line each,
    within the columns' sizes, no control characters, a name, a known kind and way to
    publish; the fields another kind of signer fills in are emptied.
    """
    form = {**changes, "email": signature.email, "consent": "yes"}
    try:
        values = clean_form(form)
    except SignatureInputError as error:
        field, message = next(iter(error.errors.items()))
        raise ModerationError(message, field) from None
    return {field: values[field] for field in EDITABLE_FIELDS}


def signer_fields(signature: Signature) -> dict[str, str]:
    return {field: str(getattr(signature, field) or "") for field in EDITABLE_FIELDS}


def edit(
    signature: Signature, changes: Mapping[str, str], *, actor: User | None = None
) -> list[tuple[str, str, str]]:
    """Correct a confirmed or approved signature; return (field, before, after) per change.

    An approved signature's signatory is corrected too (a new statement version), and the
    signer is e-mailed what changed, once the transaction commits.
    """
    if signature.status not in _MODERATED:
        raise ModerationError(_status_problem(signature, "edited"))
    values = clean_fields(signature, changes)
    before = signer_fields(signature)
    changed = [(f, before[f], values[f]) for f in EDITABLE_FIELDS if before[f] != values[f]]
    if not changed:
        return []
    new_key = name_key(values["name"])
    if new_key != signature.name_key:
        clash = db.session.scalar(
            select(Signature.id).where(
                Signature.sign_on_id == signature.sign_on_id,
                Signature.email_key == signature.email_key,
                Signature.name_key == new_key,
                Signature.id != signature.id,
            )
        )
        if clash is not None:
            raise ModerationError(
                _(
                    "Name: the same signer has another signature under this name; "
                    "merge the two instead"
                ),
                "name",
            )
    for field, _old, new in changed:
        setattr(signature, field, new)
    signature.name_key = new_key
    _moderated(signature, actor)
    signatory = _signatory_of(signature)
    if signatory is not None:
        data = {**as_signatory_values(signature), "group_label": signatory.group_label}
        statements.update_signatory(signatory, data, actor=actor)
    _remember_edit(signature, changed)
    db.session.flush()
    _audit("signature.edit", signature, actor, fields=[field for field, _o, _n in changed])
    queue_notice("signature_edited", signature.id)
    return changed


# The corrections waiting to be e-mailed are kept in the database, in the transaction that
# made them, so a rolled-back edit tells nobody; the notice's builder takes them out. They
# hold a signer's words, so they go in no audit event (decision 0029).
_PENDING_EDITS = "sign_on.pending_edit.{}"


def _remember_edit(signature: Signature, changed: list[tuple[str, str, str]]) -> None:
    name = _PENDING_EDITS.format(signature.id)
    row = db.session.get(InstallationSetting, name)
    if row is None:
        row = InstallationSetting(name=name, value="[]")
        db.session.add(row)
    pending = json.loads(row.value or "[]")
    # Two corrections before the e-mail goes: the first "before" and the last "after".
    for field, old, new in changed:
        earlier = next((item for item in pending if item[0] == field), None)
        if earlier is None:
            pending.append([field, old, new])
        else:
            earlier[2] = new
    row.value = json.dumps([item for item in pending if item[1] != item[2]])


def edit_notice_text(
    language: str, title: str, changed: list[tuple[str, str, str]]
) -> tuple[str, str]:
    """The subject and body telling a signer what an editor corrected, in their language
    (English when there is no catalogue for it)."""
    with force_locale(email_language(language)):

        def shown(field: str, value: str) -> str:
            if field == "kind":
                return label(value, "signatory_kind")
            if field == "publish_as":
                return label(value, "publish_as")
            return _("“%(value)s”", value=value) if value else "—"

        lines = [
            "  "
            + _(
                "%(field)s: %(before)s → %(after)s",
                field=str(FIELD_LABELS[field]),
                before=shown(field, old),
                after=shown(field, new),
            )
            for field, old, new in changed
        ]
        subject = _("Your signature on “%(title)s” was corrected", title=title)
        intro = _("An editor of “%(title)s” corrected your signature:", title=title)
        body = "\n".join(
            [
                _("Hello,"),
                "",
                intro,
                "",
                *lines,
                "",
                _("If this is not right, please reply to this e-mail."),
                "",
            ]
        )
    return subject, body


def edit_notices(signature_id: int) -> list[Notice]:
    row = db.session.get(InstallationSetting, _PENDING_EDITS.format(signature_id))
    if row is None:
        return []  # told already (two edits, two jobs: the first sent both)
    changed = [(str(f), str(o), str(n)) for f, o, n in json.loads(row.value or "[]")]
    # The claim, committed by send_notice before sending: a second job deletes nothing
    # (it waits for the first's row lock, or follows its commit on SQLite) and sends nothing.
    name, value = row.name, row.value
    result = db.session.execute(delete(InstallationSetting).where(InstallationSetting.name == name))
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        return []
    db.session.expunge(row)
    signature = db.session.get(Signature, signature_id)
    if signature is None or not changed:
        return []
    title = _statement_of(signature).title
    subject, text = edit_notice_text(signature.language, title, changed)
    # Content-Language: the language the e-mail is written in, not the stored tag.
    language = email_language(signature.language)
    message = build_message(signature.email, subject, text, language=language)

    def release() -> None:  # the mail server refused it: the retry finds it again
        db.session.add(InstallationSetting(name=name, value=value))

    return [Notice(signature.email, message, release)]


# --- duplicates ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DuplicateGroup:
    """Signatures that may be one signer twice, and why they were put together."""

    signatures: list[Signature]
    reasons: list[str]


def duplicate_groups(sign_on: SignOn) -> list[DuplicateGroup]:
    """Confirmed and approved signatures sharing a folded name, or an organisation's acronym.

    Unconfirmed signatures are never compared: nobody has vouched for them yet.
    """
    rows = list(
        db.session.scalars(
            select(Signature)
            .where(Signature.sign_on_id == sign_on.id, Signature.status.in_(_MODERATED))
            .order_by(Signature.id)
        )
    )
    parent = {s.id: s.id for s in rows}

    def root(item: int) -> int:
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    reasons: dict[tuple[str, str], list[int]] = {}
    for signature in rows:
        if signature.name_key:
            reasons.setdefault(("name", signature.name_key), []).append(signature.id)
        acronym = signature.acronym.strip().casefold()
        if acronym and signature.kind == SignatoryKind.ORGANISATION.value:
            reasons.setdefault(("acronym", acronym), []).append(signature.id)
    for ids in reasons.values():
        for other in ids[1:]:
            parent[root(other)] = root(ids[0])
    members: dict[int, list[Signature]] = {}
    for signature in rows:
        members.setdefault(root(signature.id), []).append(signature)
    by_id = {s.id: s for s in rows}
    groups: list[DuplicateGroup] = []
    for group in members.values():
        if len(group) < 2:
            continue
        head = root(group[0].id)
        why = [
            _("same acronym %(acronym)s", acronym=by_id[ids[0]].acronym.strip().upper())
            if kind == "acronym"
            else _("same name (ignoring case, accents and punctuation)")
            for (kind, _key), ids in reasons.items()
            if len(ids) > 1 and root(ids[0]) == head
        ]
        groups.append(DuplicateGroup(group, sorted(set(why))))
    return groups


def merge(duplicate: Signature, keep: Signature, *, actor: User | None = None) -> None:
    """Fold `duplicate` into `keep`: it leaves the statement's list if it was on it."""
    if duplicate.id == keep.id:
        raise ModerationError(_("Choose another signature to keep: a signature is itself."))
    if duplicate.sign_on_id != keep.sign_on_id:
        raise ModerationError(_("Both signatures must be on the same sign-on page."))
    if duplicate.status not in _MODERATED:
        raise ModerationError(_status_problem(duplicate, "merged"))
    if keep.status not in _MODERATED:
        raise ModerationError(
            _(
                "The signature to keep must be confirmed or approved (it is “%(state)s”); "
                "keep another one.",
                state=label(keep.status, "signature_status"),
            )
        )
    if duplicate.status == SignatureStatus.APPROVED.value and (
        keep.status != SignatureStatus.APPROVED.value
    ):
        # Else the signer would silently leave the letter until someone approves the other.
        raise ModerationError(
            _(
                "The signature to keep is not approved yet, but this one is: approve the one "
                "to keep first, or keep this one instead."
            )
        )
    _claim(duplicate, _MODERATED, "merged")
    _keep_the_more_private_choice(duplicate, keep, actor)
    signatory = _signatory_of(duplicate)
    if signatory is not None:
        statements.remove_signatory(signatory, actor=actor)
    duplicate.status = SignatureStatus.MERGED.value
    duplicate.merged_into_id = keep.id
    duplicate.signatory_id = None
    _moderated(duplicate, actor)
    db.session.flush()
    _audit(
        "signature.merge",
        duplicate,
        actor,
        kept_signature_id=keep.id,
        removed_signatory_id=signatory.id if signatory is not None else None,
    )


# From most to least public: a merge keeps the more private of the two choices, since a
# signer who signed again asking to be withheld must not end up published in full.
_PRIVACY = (PublishAs.FULL.value, PublishAs.ORGANISATION_ONLY.value, PublishAs.WITHHELD.value)


def _keep_the_more_private_choice(
    duplicate: Signature, keep: Signature, actor: User | None
) -> None:
    if duplicate.wants_notice:
        keep.wants_notice = True  # asked once to be told when it goes out: still asked
    rank = {choice: index for index, choice in enumerate(_PRIVACY)}
    if rank.get(duplicate.publish_as, 0) <= rank.get(keep.publish_as, 0):
        return
    keep.publish_as = duplicate.publish_as
    kept_signatory = _signatory_of(keep)
    if kept_signatory is not None:
        values = {**as_signatory_values(keep), "group_label": kept_signatory.group_label}
        statements.update_signatory(kept_signatory, values, actor=actor)


# --- order ---------------------------------------------------------------------------------


def move(sign_on: SignOn, signatory: Signatory, offset: int, *, actor: User | None = None) -> bool:
    """Move a signatory up (-1) or down (+1) in the custom order; False if it cannot go."""
    if sign_on.ordering != SignOnOrder.CUSTOM.value:
        raise ModerationError(
            _(
                "Order: the list is sorted organisations first; choose the custom order to "
                "move signatories by hand"
            ),
            "ordering",
        )
    if signatory.statement_id != sign_on.statement_id:
        raise ModerationError(_("This signatory belongs to another statement."))
    moved = statements.move_signatory(signatory, offset, actor=actor)
    if moved:
        record_event(
            "sign_on.signatory.move",
            target_type="statement",
            target_id=sign_on.statement_id,
            actor=actor,
            detail={"signatory_id": signatory.id, "offset": offset},
        )
    return moved
