"""Merging two contacts who are one person: fields chosen one by one, everything else follows.

The survivor keeps its id and takes, field by field, the value the user chose; tags and copy
addresses are the union of both, notes are joined. Lists, deliveries (and so the replies
matched to them), sign-on invitations and answers to replies move to the survivor; the other
contact goes to the trash, restorable for 30 days like any deleted contact (decision 0048).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, delete, exists, select, update
from sqlalchemy.orm import aliased

from campaign.extensions import db
from campaign.labels import label
from campaign.models import (
    Campaign,
    CampaignStatus,
    Contact,
    Delivery,
    ReplyAnswer,
    SignOnInvitation,
    Suppression,
    list_memberships,
)
from campaign.scheduling import stored_text
from campaign.services.accounts.audit import record_event
from campaign.services.contacts.contacts import CONTACT_FIELDS, update_contact
from campaign.services.contacts.suppressions import find_suppression, suppress_address
from campaign.services.contacts.trash import trash_contact

# Fields the user does not choose: the union of both is kept.
UNION_FIELDS = ("tags", "cc_emails", "notes")
# A radio per field for these (the rest of CONTACT_FIELDS).
CHOSEN_FIELDS = tuple(f for f in CONTACT_FIELDS if f not in UNION_FIELDS)
BUSY = (CampaignStatus.SENDING.value, CampaignStatus.PAUSED.value)


class MergeError(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class MergeCheck:
    """What the merge page shows before anything is changed."""

    suppressed: list[str]  # the addresses of the two that are on the suppression list


def field_value(contact: Contact, field: str) -> str:
    """A field as the merge page compares and shows it: text, "yes"/"" or an ISO date."""
    value = getattr(contact, field)
    if isinstance(value, bool):
        return "yes" if value else ""
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value or "")


def default_choices(survivor: Contact, other: Contact) -> dict[str, str]:
    """For each field "survivor" or "other": the non-empty value, else the newer contact's."""
    newer = "other" if _stamp(other) > _stamp(survivor) else "survivor"
    choices = {}
    for field in CHOSEN_FIELDS:
        mine, theirs = field_value(survivor, field), field_value(other, field)
        if mine == theirs or (mine and not theirs):
            choices[field] = "survivor"
        elif theirs and not mine:
            choices[field] = "other"
        else:
            choices[field] = newer
    return choices


def _stamp(contact: Contact) -> Any:
    return contact.updated_at or contact.created_at


def differing_fields(survivor: Contact, other: Contact) -> list[str]:
    return [f for f in CHOSEN_FIELDS if field_value(survivor, f) != field_value(other, f)]


def check_merge(survivor: Contact, other: Contact) -> MergeCheck:
    """Refuse (MergeError) a merge that cannot be done; say what the page must warn of."""
    if survivor.id == other.id:
        raise MergeError(_("A contact cannot be merged with itself; choose another contact."))
    # The contact merged away may be in the trash already (a restore refused because its
    # address was reused offers this merge); the survivor must be live.
    if survivor.deleted_at is not None:
        raise MergeError(
            _("%(name)s is in the trash; restore it before merging.", name=survivor.display_name)
        )
    busy = db.session.execute(
        select(Campaign.name, Contact.id, Campaign.status)
        .join(Delivery, Delivery.campaign_id == Campaign.id)
        .join(Contact, Contact.id == Delivery.contact_id)
        .where(Delivery.contact_id.in_((survivor.id, other.id)), Campaign.status.in_(BUSY))
        .limit(1)
    ).first()
    if busy is not None:
        name = survivor.display_name if busy[1] == survivor.id else other.display_name
        raise MergeError(
            _(
                "%(name)s is a recipient of the campaign “%(campaign)s” (%(status)s); merge "
                "them once it has finished or been cancelled.",
                name=name,
                campaign=busy[0],
                status=label(busy[2], "campaign_status"),
            )
        )
    keys = {survivor.email_key: survivor.email, other.email_key: other.email}
    suppressed = db.session.scalars(
        select(Suppression.email_key).where(Suppression.email_key.in_(list(keys)))
    ).all()
    return MergeCheck([keys[k] for k in suppressed])


def merge_contacts(survivor: Contact, other: Contact, choices: Mapping[str, str]) -> list[str]:
    """Merge `other` into `survivor` with the value chosen per field; return changed fields.

    Nothing is written when the merge is refused (MergeError) or a merged value is invalid
    (ContactInputError from the contact rules).
    """
    check = check_merge(survivor, other)
    values: dict[str, str] = {}
    for field in CHOSEN_FIELDS:
        side = choices.get(field, "survivor")
        if side not in ("survivor", "other"):
            raise MergeError(_("Choose one of the two values for every field."))
        values[field] = field_value(other if side == "other" else survivor, field)
    values["tags"] = " ".join(dict.fromkeys(survivor.tag_list + other.tag_list))
    values["cc_emails"] = " ".join(dict.fromkeys(survivor.cc_list + other.cc_list))
    values["notes"] = "\n\n".join(dict.fromkeys(n for n in (survivor.notes, other.notes) if n))
    chosen_from_other = sorted(f for f in CHOSEN_FIELDS if choices.get(f) == "other")
    # The other contact leaves the live contacts first, so its address is free to take.
    trash_contact(other)
    # What stays on the other record (a letter both got from the same campaign step, with
    # its replies) shows in the survivor's history; records merged into it before follow.
    other.merged_into_id = survivor.id
    db.session.execute(
        update(Contact)
        .where(Contact.merged_into_id == other.id)
        .values(merged_into_id=survivor.id)
        .execution_options(synchronize_session=False)
    )
    changed = update_contact(survivor, values)
    moved = _move_records(survivor.id, other.id)
    _keep_suppressed(survivor, other, check)
    for contact_id, role in ((survivor.id, "survivor"), (other.id, "merged_away")):
        record_event(
            "contact.merge",
            target_type="contact",
            target_id=contact_id,
            detail={
                "role": role,
                "survivor_id": survivor.id,
                "merged_id": other.id,
                "fields_from_merged": chosen_from_other,
                "changed": changed,
                "moved": moved,
            },
        )
    return changed


def _move_records(survivor_id: int, other_id: int) -> dict[str, int]:
    """Point every row that belongs to the other contact at the survivor; count each kind."""
    moved: dict[str, int] = {}
    mine = aliased(list_memberships)
    result = db.session.execute(
        update(list_memberships)
        .where(
            list_memberships.c.contact_id == other_id,
            ~exists().where(
                mine.c.contact_id == survivor_id, mine.c.list_id == list_memberships.c.list_id
            ),
        )
        .values(contact_id=survivor_id)
        .execution_options(preserve_rowcount=True)
    )
    moved["lists"] = int(getattr(result, "rowcount", 0) or 0)
    # Lists both were on: the survivor is there already.
    db.session.execute(delete(list_memberships).where(list_memberships.c.contact_id == other_id))
    # Deliveries (and so the replies matched to them): a letter both received in the same
    # campaign step stays with the merged-away contact, as the ledger's record of that copy.
    theirs = aliased(Delivery)
    result = db.session.execute(
        update(Delivery)
        .where(
            Delivery.contact_id == other_id,
            ~exists().where(
                and_(
                    theirs.contact_id == survivor_id,
                    theirs.campaign_id == Delivery.campaign_id,
                    theirs.step == Delivery.step,
                )
            ),
        )
        .values(contact_id=survivor_id)
        .execution_options(preserve_rowcount=True)
    )
    moved["deliveries"] = int(getattr(result, "rowcount", 0) or 0)
    invited = aliased(SignOnInvitation)
    result = db.session.execute(
        update(SignOnInvitation)
        .where(
            SignOnInvitation.contact_id == other_id,
            ~exists().where(
                invited.contact_id == survivor_id,
                invited.sign_on_id == SignOnInvitation.sign_on_id,
            ),
        )
        .values(contact_id=survivor_id)
        .execution_options(preserve_rowcount=True)
    )
    moved["invitations"] = int(getattr(result, "rowcount", 0) or 0)
    result = db.session.execute(
        update(ReplyAnswer)
        .where(ReplyAnswer.contact_id == other_id)
        .values(contact_id=survivor_id)
        .execution_options(preserve_rowcount=True)
    )
    moved["answers"] = int(getattr(result, "rowcount", 0) or 0)
    db.session.flush()
    db.session.expire_all()
    return moved


def _keep_suppressed(survivor: Contact, other: Contact, check: MergeCheck) -> None:
    """If either address was suppressed, both are: the person asked not to be written to."""
    if not check.suppressed:
        return
    source = find_suppression(check.suppressed[0])
    reason = source.reason if source is not None else "manual"
    for address in (survivor.email, other.email):
        suppress_address(
            address,
            reason,
            # Kept as its message, read in each reader's language (stored_text).
            note=stored_text.dump(
                _l(
                    "kept on merging contacts #%(survivor)d and #%(merged)d",
                    survivor=survivor.id,
                    merged=other.id,
                )
            ),
            is_address_checked=False,
        )
