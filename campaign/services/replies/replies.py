"""The replies inbox: find received mail, triage it (handle, assign, note, attach), upload more."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from typing import Any

from flask_babel import format_number, gettext
from sqlalchemy import Select, func, or_, select

from campaign.extensions import db
from campaign.inbound.parsing import storable
from campaign.inbound.sources import messages_in_upload
from campaign.models import (
    Campaign,
    Contact,
    Delivery,
    InboundKind,
    InboundMessage,
    InboundNote,
    MatchMethod,
    Role,
    User,
    utcnow,
)
from campaign.services.accounts.audit import record_event
from campaign.services.paging import Page, clamp_page, offset_of
from campaign.services.replies.intake import record_inbound

PER_PAGE = 50
MAX_NOTE_CHARS = 5_000
KINDS = (
    InboundKind.REPLY.value,
    InboundKind.AUTO_REPLY.value,
    InboundKind.BOUNCE.value,
    InboundKind.UNMATCHED.value,
)
STATES = ("open", "handled")


class ReplyError(ValueError):
    """A triage action was refused; the message says why, for the person who asked."""


# --- finding ------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboxFilter:
    """What the inbox shows; unknown values from the browser are dropped, never an error."""

    kind: str | None = None
    state: str | None = None
    campaign_id: int | None = None
    assigned_to_id: int | None = None
    search: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            object.__setattr__(self, "kind", None)
        if self.state not in STATES:
            object.__setattr__(self, "state", None)
        object.__setattr__(self, "search", (self.search or "").strip() or None)


def _conditions(found: InboxFilter, *, with_kind: bool = True) -> list[Any]:
    conditions: list[Any] = []
    if with_kind and found.kind:
        conditions.append(InboundMessage.kind == found.kind)
    if found.state == "open":
        conditions.append(InboundMessage.handled_at.is_(None))
    elif found.state == "handled":
        conditions.append(InboundMessage.handled_at.is_not(None))
    if found.campaign_id is not None:
        conditions.append(Delivery.campaign_id == found.campaign_id)
    if found.assigned_to_id is not None:
        conditions.append(InboundMessage.assigned_to_id == found.assigned_to_id)
    if found.search:
        needle = found.search.lower()
        conditions.append(
            or_(
                func.lower(InboundMessage.from_address).contains(needle, autoescape=True),
                func.lower(InboundMessage.subject).contains(needle, autoescape=True),
            )
        )
    return conditions


def inbox_query(
    kind: str | None = None,
    state: str | None = None,
    campaign_id: int | None = None,
    assigned_to_id: int | None = None,
    search: str | None = None,
) -> Select[InboundMessage, Delivery, Campaign]:
    """Select (message, its delivery, its campaign) matching the filter, newest first."""
    found = InboxFilter(kind, state, campaign_id, assigned_to_id, search)
    return (
        select(InboundMessage, Delivery, Campaign)
        .outerjoin(Delivery, Delivery.id == InboundMessage.delivery_id)
        .outerjoin(Campaign, Campaign.id == Delivery.campaign_id)
        .where(*_conditions(found))
        .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
    )


def matching_messages(found: InboxFilter) -> Select[InboundMessage]:
    """The messages the inbox's filter finds, unordered (the JSON API pages them by id)."""
    return (
        select(InboundMessage)
        .outerjoin(Delivery, Delivery.id == InboundMessage.delivery_id)
        .where(*_conditions(found))
    )


@dataclass(frozen=True)
class InboxRow:
    message: InboundMessage
    delivery: Delivery | None
    campaign: Campaign | None
    # The contact who wrote it (by the letter it answers, else by address), if any.
    sender: Contact | None = None


def sender_contacts(pairs: list[tuple[InboundMessage, Delivery | None]]) -> dict[int, Contact]:
    """The live contact behind each message (by id): the contact the matched letter went to
    (or, when that record was merged away, the contact it was merged into), else the live
    contact with the sender's address. A few queries for a whole page."""
    contact_ids = {d.contact_id for _m, d in pairs if d is not None and d.contact_id}
    by_id = _live_contacts(contact_ids)
    found: dict[int, Contact] = {}
    wanted: dict[str, list[int]] = {}
    for message, delivery in pairs:
        contact = by_id.get(delivery.contact_id or 0) if delivery is not None else None
        if contact is not None:
            found[message.id] = contact
        elif message.from_address:
            wanted.setdefault(message.from_address.strip().lower(), []).append(message.id)
    if wanted:
        query = select(Contact).where(
            Contact.email_key.in_(list(wanted)), Contact.deleted_at.is_(None)
        )
        for contact in db.session.scalars(query):
            for message_id in wanted.get(contact.email_key, []):
                found[message_id] = contact
    return found


# Merges point a merged-away record at its survivor (merging the survivor later repoints
# them), so one step is the rule; a few more are followed in case, never a loop.
MAX_MERGE_HOPS = 5


def _live_contacts(contact_ids: set[int]) -> dict[int, Contact]:
    """Each id's live contact: itself, or for a merged-away record the survivor it leads to."""
    found: dict[int, Contact] = {}
    # id asked for -> the record now looked at
    pending = {contact_id: contact_id for contact_id in contact_ids}
    for _hop in range(MAX_MERGE_HOPS):
        if not pending:
            break
        rows = {
            contact.id: contact
            for contact in db.session.scalars(
                select(Contact).where(Contact.id.in_(set(pending.values())))
            )
        }
        following: dict[int, int] = {}
        for asked, current in pending.items():
            contact = rows.get(current)
            if contact is None:
                continue
            if contact.deleted_at is None:
                found[asked] = contact
            elif contact.merged_into_id:
                following[asked] = contact.merged_into_id
        pending = following
    return found


def sender_contact(message: InboundMessage, delivery: Delivery | None) -> Contact | None:
    """The live contact who wrote `message`, or None (see sender_contacts)."""
    return sender_contacts([(message, delivery)]).get(message.id)


def inbox_page(found: InboxFilter, page: int = 1, per_page: int = PER_PAGE) -> Page[InboxRow]:
    """One page of the inbox; a page past the end shows the last one."""
    query = inbox_query(
        found.kind, found.state, found.campaign_id, found.assigned_to_id, found.search
    )
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = clamp_page(page, total, per_page)
    rows = db.session.execute(query.offset(offset_of(page, per_page)).limit(per_page)).all()
    senders = sender_contacts([(row[0], row[1]) for row in rows])
    return Page(
        items=[InboxRow(*row, sender=senders.get(row[0].id)) for row in rows],
        page=page,
        per_page=per_page,
        total=total,
    )


def next_unhandled(found: InboxFilter, current: InboundMessage) -> InboundMessage | None:
    """The oldest open message under the same filter (human replies when it names no kind),
    other than `current`: where staff go after handling one."""
    narrowed = InboxFilter(
        kind=found.kind or InboundKind.REPLY.value,
        state="open",
        campaign_id=found.campaign_id,
        assigned_to_id=found.assigned_to_id,
        search=found.search,
    )
    query = (
        select(InboundMessage)
        .outerjoin(Delivery, Delivery.id == InboundMessage.delivery_id)
        .where(*_conditions(narrowed), InboundMessage.id != current.id)
        .order_by(InboundMessage.received_at, InboundMessage.id)
        .limit(1)
    )
    return db.session.scalar(query)


def kind_counts(found: InboxFilter) -> dict[str, int]:
    """How many messages of each kind the filter finds (its own kind aside), for the tabs."""
    query = (
        select(InboundMessage.kind, func.count())
        .outerjoin(Delivery, Delivery.id == InboundMessage.delivery_id)
        .where(*_conditions(found, with_kind=False))
        .group_by(InboundMessage.kind)
    )
    counts = dict.fromkeys(KINDS, 0)
    for kind, count in db.session.execute(query):
        counts[kind] = int(count)
    return counts


def open_reply_count() -> int:
    """Human replies nobody has handled yet (the number beside "Replies" in the menu)."""
    query = (
        select(func.count())
        .select_from(InboundMessage)
        .where(
            InboundMessage.kind == InboundKind.REPLY.value,
            InboundMessage.handled_at.is_(None),
        )
    )
    return db.session.scalar(query) or 0


def triage_users() -> list[User]:
    """Active users who may triage replies, the people a message can be assigned to."""
    allowed = [role.value for role in Role.from_(Role.EDITOR)]
    query = (
        select(User)
        .where(User.is_active_account.is_(True), User.role.in_(allowed))
        .order_by(User.email)
    )
    return list(db.session.scalars(query))


def find_delivery(campaign_id: int, email: str) -> Delivery | None:
    """The campaign's latest letter to `email` (any case), or None."""
    query = (
        select(Delivery)
        .where(
            Delivery.campaign_id == campaign_id,
            func.lower(Delivery.email) == email.strip().lower(),
        )
        .order_by(Delivery.step.desc(), Delivery.id.desc())
        .limit(1)
    )
    return db.session.scalar(query)


# --- triage -------------------------------------------------------------------------------


def _audit(action: str, message: InboundMessage, user: User, **detail: Any) -> None:
    # Ids only: the audit log is read by every admin and kept for years; the sender, the
    # subject and colleagues' notes stay in the inbox, where access and deletion apply.
    record_event(
        f"inbound.{action}",
        target_type="inbound_message",
        target_id=message.id,
        actor=user,
        detail={"delivery_id": message.delivery_id, **detail},
    )


def mark_handled(message: InboundMessage, user: User, handled: bool = True) -> bool:
    """Mark the message handled (or open again); False when it already was."""
    if (message.handled_at is not None) == handled:
        return False
    message.handled_at = utcnow() if handled else None
    message.handled_by_id = user.id if handled else None
    _audit("handled" if handled else "reopened", message, user)
    db.session.flush()
    return True


def assign(message: InboundMessage, user: User, assignee: User | None) -> None:
    """Give the message to a colleague (None: to nobody)."""
    if assignee is not None and not (assignee.is_active_account and assignee.may(Role.EDITOR)):
        raise ReplyError(
            gettext(
                "%(email)s cannot triage replies (an editor or above can).", email=assignee.email
            )
        )
    if message.assigned_to_id == (assignee.id if assignee else None):
        return
    message.assigned_to_id = assignee.id if assignee else None
    _audit("assigned", message, user, assignee_id=assignee.id if assignee else None)
    db.session.flush()


def _chosen(ids: list[int]) -> list[InboundMessage]:
    if not ids:
        raise ReplyError(gettext("No message was selected."))
    if len(ids) > PER_PAGE:
        raise ReplyError(
            gettext("at most %(limit)d messages (one page) can be changed at once.", limit=PER_PAGE)
        )
    query = select(InboundMessage).where(InboundMessage.id.in_(set(ids)))
    return list(db.session.scalars(query.order_by(InboundMessage.id)))


def _audit_bulk(action: str, user: User, changed: list[InboundMessage], **detail: Any) -> None:
    # One event per action, with the count and the ids (never senders or subjects).
    record_event(
        f"inbound.bulk_{action}",
        target_type="inbound_message",
        actor=user,
        detail={"count": len(changed), "ids": [m.id for m in changed], **detail},
    )


def bulk_mark_handled(ids: list[int], user: User) -> int:
    """Mark the selected messages handled; how many were still open."""
    now = utcnow()
    changed = [message for message in _chosen(ids) if message.handled_at is None]
    for message in changed:
        message.handled_at = now
        message.handled_by_id = user.id
    if changed:
        _audit_bulk("handled", user, changed)
    db.session.flush()
    return len(changed)


def bulk_assign(ids: list[int], user: User, assignee: User | None) -> int:
    """Give the selected messages to a colleague (None: to nobody); how many changed."""
    if assignee is not None and not (assignee.is_active_account and assignee.may(Role.EDITOR)):
        raise ReplyError(
            gettext(
                "%(email)s cannot triage replies (an editor or above can).", email=assignee.email
            )
        )
    target = assignee.id if assignee else None
    changed = [message for message in _chosen(ids) if message.assigned_to_id != target]
    for message in changed:
        message.assigned_to_id = target
    if changed:
        _audit_bulk("assigned", user, changed, assignee_id=target)
    db.session.flush()
    return len(changed)


def add_note(message: InboundMessage, user: User, text: str) -> InboundNote:
    """Add a colleague's note to the message."""
    text = text.strip()
    if not text:
        raise ReplyError(gettext("The note is empty."))
    if len(text) > MAX_NOTE_CHARS:
        raise ReplyError(
            gettext(
                "The note has %(length)s characters; %(limit)s at most are kept.",
                length=format_number(len(text)),
                limit=format_number(MAX_NOTE_CHARS),
            )
        )
    note = InboundNote(inbound_id=message.id, author_id=user.id, text=text, created_at=utcnow())
    db.session.add(note)
    db.session.flush()  # the note's id, for the audit event
    _audit("note", message, user, note_id=note.id)
    db.session.flush()
    db.session.expire(message, ["notes"])
    return note


def may_attach(message: InboundMessage) -> bool:
    """Whether a person may link the message to a letter: unlinked mail and weak matches.

    Unlinked includes an auto-reply the matcher could not place. Never a bounce (matched
    by the addresses it reports), never a strong match (its headers name the letter;
    moving it would mark someone else's letter answered).
    """
    if message.kind == InboundKind.BOUNCE.value:
        return False
    return message.delivery_id is None or message.is_weak_match


def attach_to_delivery(message: InboundMessage, delivery: Delivery, user: User) -> None:
    """Link a message to the letter it answers, as a person decided (unlinked or weak).

    An auto-reply stays an auto-reply and leaves `replied_at` alone: it is not an answer.
    """
    if message.kind == InboundKind.BOUNCE.value:
        raise ReplyError(gettext("A bounce is matched by the addresses it reports, not by hand."))
    if not may_attach(message):
        raise ReplyError(
            gettext(
                "It is already matched to its letter by its own headers; "
                "only unlinked messages and weak matches are attached by hand."
            )
        )
    previous = db.session.get(Delivery, message.delivery_id) if message.delivery_id else None
    if message.kind == InboundKind.UNMATCHED.value:
        message.kind = InboundKind.REPLY.value
    message.delivery_id = delivery.id
    message.match_method = MatchMethod.MANUAL.value
    message.is_weak_match = False
    if previous is not None and previous.id != delivery.id:
        _forget_reply(previous, message)
    if message.kind == InboundKind.REPLY.value:
        # The earliest answer wins, whichever was confirmed first.
        current = delivery.replied_at
        delivery.replied_at = (
            message.received_at if current is None else min(current, message.received_at)
        )
    _audit(
        "attached",
        message,
        user,
        campaign_id=delivery.campaign_id,
        previous_delivery_id=previous.id if previous else None,
    )
    db.session.flush()


def _forget_reply(delivery: Delivery, moved: InboundMessage) -> None:
    # A weak match that a person moved elsewhere: the first delivery was never answered,
    # unless another human reply still points at it.
    db.session.flush()
    earliest = db.session.scalar(
        select(func.min(InboundMessage.received_at)).where(
            InboundMessage.delivery_id == delivery.id,
            InboundMessage.kind == InboundKind.REPLY.value,
            InboundMessage.id != moved.id,
        )
    )
    delivery.replied_at = earliest


# --- uploads ------------------------------------------------------------------------------


@dataclass
class UploadOutcome:
    """What happened to one uploaded message, as the upload page lists it."""

    label: str
    inbound_id: int | None = None
    kind: str = ""
    delivery: Delivery | None = None
    campaign_name: str = ""
    is_duplicate: bool = False
    bounce: str | None = None
    problems: list[str] = field(default_factory=list)


def ingest_upload(filename: str, data: bytes, user: User) -> list[UploadOutcome]:
    """Record every message of an uploaded .eml or mbox file; one outcome each."""
    outcomes: list[UploadOutcome] = []
    for label, raw in messages_in_upload(filename, data):
        outcome = UploadOutcome(label)
        outcomes.append(outcome)
        if raw is None:
            outcome.problems.append(gettext("could not be read"))
            continue
        try:
            # One message that breaks the store must not lose the others of the same file.
            with db.session.begin_nested():
                result = record_inbound(raw, source="upload")
        except Exception as error:  # reported on the page, per message
            outcome.problems.append(gettext("not recorded: %(error)s", error=type(error).__name__))
            continue
        message = result.message
        outcome.inbound_id = message.id
        outcome.kind = message.kind
        outcome.is_duplicate = not result.is_new
        outcome.bounce = message.bounce_kind
        outcome.problems.extend(message.problems or [])
        if message.delivery_id is not None:
            outcome.delivery = db.session.get(Delivery, message.delivery_id)
            campaign = (
                db.session.get(Campaign, outcome.delivery.campaign_id) if outcome.delivery else None
            )
            outcome.campaign_name = campaign.name if campaign else ""
    record_event(
        "inbound.upload",
        target_type="upload",
        actor=user,
        # Counts, not the file name: exported mail is often named after its subject.
        detail={
            "messages": len(outcomes),
            "new": sum(1 for o in outcomes if o.inbound_id and not o.is_duplicate),
            "duplicates": sum(1 for o in outcomes if o.is_duplicate),
            "failed": sum(1 for o in outcomes if o.inbound_id is None),
        },
    )
    return outcomes


def record_download(message: InboundMessage, user: User) -> None:
    """Note in the audit log that someone took a copy of the original message."""
    _audit("download", message, user)


def campaign_filter_choices() -> list[tuple[int, str]]:
    """(id, name) of launched campaigns (the only ones with letters to answer), newest first."""
    query = (
        select(Campaign.id, Campaign.name)
        .where(Campaign.launched_at.is_not(None))
        .order_by(Campaign.created_at.desc(), Campaign.id.desc())
    )
    return [(campaign_id, name) for campaign_id, name in db.session.execute(query)]


# Headers the message page shows beside those stored in columns.
SHOWN_HEADERS = ("To", "Cc", "Date")
# Enough for any real header block; the page must not inflate a 25 MB original to show three.
HEADER_PREFIX_BYTES = 256 * 1024


def _original_prefix(message: InboundMessage) -> bytes | None:
    # The first bytes of the stored original, decompressed no further than that.
    if message.raw_blob is None:
        return None
    try:
        return zlib.decompressobj().decompress(message.raw_blob, HEADER_PREFIX_BYTES)
    except zlib.error:
        return None  # the download reports (and logs) a damaged original


def original_header(message: InboundMessage, name: str) -> str | None:
    """One header of the stored original, unfolded (None: not kept, absent or unreadable)."""
    head = _original_prefix(message)
    if head is None:
        return None
    try:
        parsed = BytesHeaderParser(policy=default_policy).parsebytes(head)
    except Exception:  # hostile headers have broken the stdlib parser before
        return None
    try:
        value = parsed.get(name)
    except Exception:  # a malformed header: what was sent, undecoded
        value = _raw_header(parsed, name)
    return None if value is None else " ".join(storable(str(value)).split())


def original_headers(message: InboundMessage) -> dict[str, str]:
    """To, Cc and Date as received (none when the raw bytes were not kept)."""
    head = _original_prefix(message)
    if head is None:
        return {}
    try:
        parsed = BytesHeaderParser(policy=default_policy).parsebytes(head)
    except Exception:  # hostile headers have broken the stdlib parser before
        return {}
    shown: dict[str, str] = {}
    for name in SHOWN_HEADERS:
        try:
            value = parsed.get(name)
        except Exception:  # a malformed header: show what was sent, undecoded
            value = _raw_header(parsed, name)
        if value is not None:
            shown[name] = " ".join(storable(str(value)).split())[:2000]
    return shown


def _raw_header(parsed: Any, name: str) -> str | None:
    for key, value in parsed.raw_items():
        if key.lower() == name.lower():
            return str(value)
    return None
