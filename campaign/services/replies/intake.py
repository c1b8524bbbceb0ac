"""Inbound mail: classify, match to a delivery, apply its effects on the ledger.

Everything about a message is decided before anything is written (classification and
matching only read); then one INSERT ... ON CONFLICT (source_key) DO NOTHING RETURNING id
stores it, and only a message that this call stored changes the ledger. That keeps a
message stored once and applied once without a lookup first or a savepoint: a message
recorded before, or by a second poller at the same moment, gets no id back, and the
result is the row stored first. It is also what makes the path cheap (decision 0016, "Measured"):
no ORM unit of work per message, only statements built once.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, Table, bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm.util import identity_key

from campaign.extensions import db
from campaign.inbound.authentication import dmarc_verdict
from campaign.inbound.classify import Classification, classify
from campaign.inbound.matching import (
    Match,
    MatchedDelivery,
    by_reply_token,
    deliveries_by_message_id,
    latest_delivery_to,
    latest_of,
    match_reply,
)
from campaign.inbound.parsing import MAX_BYTES, ParsedMessage, parse_message
from campaign.models import (
    BounceKind,
    Contact,
    Delivery,
    DeliveryStatus,
    InboundKind,
    InboundMessage,
    MatchMethod,
    WebhookEventType,
    utcnow,
)
from campaign.services.contacts.suppressions import SuppressionError, suppress_bounced_address
from campaign.services.privacy import erased_addresses
from campaign.services.webhooks import payloads as webhook_payloads
from campaign.services.webhooks.events import record_webhook_event

log = logging.getLogger(__name__)

# zlib level 6: mail text shrinks to about a third at tens of MB/s; 9 gains little more.
_COMPRESSION_LEVEL = 6

# A bounce does not turn these into "bounced": they were never sent by this campaign.
_NOT_SENT = (
    DeliveryStatus.SUPPRESSED.value,
    DeliveryStatus.CANCELLED.value,
    DeliveryStatus.QUEUED.value,
)

_inbound: Table = InboundMessage.__table__
_deliveries: Table = Delivery.__table__
_STORED_ID = select(_inbound.c.id).where(_inbound.c.source_key == bindparam("key"))
_contacts: Table = Contact.__table__
_COPY_ADDRESSES = (
    select(_contacts.c.cc_emails)
    .join(_deliveries, _deliveries.c.contact_id == _contacts.c.id)
    .where(_deliveries.c.id == bindparam("delivery_id"))
)
# The conditions make each effect happen once even if two messages race for one delivery;
# the earliest answer's time wins whichever of them is recorded first.
_MARK_REPLIED = (
    update(_deliveries)
    .where(
        _deliveries.c.id == bindparam("delivery_id"),
        or_(
            _deliveries.c.replied_at.is_(None),
            _deliveries.c.replied_at > bindparam("replied_at"),
        ),
    )
    .values(replied_at=bindparam("replied_at"))
)
_MARK_BOUNCED = (
    update(_deliveries)
    .where(
        _deliveries.c.id == bindparam("delivery_id"),
        _deliveries.c.status.not_in([*_NOT_SENT, DeliveryStatus.BOUNCED.value]),
    )
    .values(status=DeliveryStatus.BOUNCED.value, reason="hard_bounce")
)
_STORE: dict[str, Insert] = {
    name: dialect.insert(_inbound)
    .on_conflict_do_nothing(index_elements=["source_key"])
    .returning(_inbound.c.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


@dataclass
class InboundResult:
    """What recording one message did; `message` is its stored row, read when first asked for."""

    inbound_id: int
    # False when these bytes (or this IMAP UID) had been recorded before.
    is_new: bool
    kind: str
    delivery_id: int | None
    bounce_kind: str | None
    # Every address the bounce reports, with "hard" or "soft".
    recipients: dict[str, str] = field(default_factory=dict)
    _message: InboundMessage | None = field(default=None, repr=False)

    @property
    def message(self) -> InboundMessage:
        # Loaded on demand: the CLI needs only the fields above, and loading the row back
        # would cost the full path more than its INSERT does.
        if self._message is None:
            self._message = db.session.get(InboundMessage, self.inbound_id)
            if self._message is None:
                raise LookupError(f"inbound message {self.inbound_id} is not stored (rolled back?)")
        return self._message


@dataclass
class _Filing:
    """Where a message goes: decided by reading only, applied once it is stored."""

    kind: str
    match: Match | None = None
    # The human answer to this delivery (None when it is not one, or it was answered before).
    answers: MatchedDelivery | None = None
    hard_bounced: list[MatchedDelivery] = field(default_factory=list)
    # Copy (Cc) addresses of a proven letter that failed for good: (address, letter).
    hard_bounced_copies: list[tuple[str, MatchedDelivery]] = field(default_factory=list)


def file_source_key(raw: bytes) -> str:
    """The dedupe key of a message read from a file: the SHA-256 of its bytes."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def record_inbound(
    raw: bytes, *, source: str = "file", source_key: str | None = None
) -> InboundResult:
    """Classify and store one raw message once, applying its effects to the ledger."""
    key = source_key or file_source_key(raw)
    # The lookups below are plain Core statements, which do not autoflush: changes still
    # pending in the session (a test's, a caller's) must be visible to them.
    db.session.flush()
    # No lookup of the key first: the INSERT below finds a message stored before. A
    # duplicate costs a parse instead of a query, and new mail (nearly all of it: the IMAP
    # poller keeps UID checkpoints) saves that query.
    parsed = parse_message(raw)
    verdict = classify(parsed)
    dmarc, is_unverified = dmarc_verdict(parsed)
    raw_blob = _compressed(raw, parsed)
    now = utcnow()
    received_at = _received_at(parsed, now)
    recipients = dict(verdict.recipients)
    if verdict.kind == InboundKind.BOUNCE:
        filing = _file_bounce(parsed, verdict, recipients, received_at)
    else:
        filing = _file_reply(parsed, verdict.kind, received_at, is_unverified=is_unverified)
    match = filing.match
    erased = _erased_in(parsed, match, recipients)
    values: dict[str, Any] = {
        "source": source,
        "source_key": key,
        "message_id": parsed.message_id,
        "in_reply_to": parsed.in_reply_to,
        "from_address": parsed.from_address[:320],
        "subject": parsed.subject,
        "received_at": received_at,
        "kind": filing.kind,
        "bounce_kind": verdict.bounce_kind,
        "bounce_recipients": list(recipients),
        "delivery_id": match.delivery.id if match else None,
        "match_method": match.method.value if match else MatchMethod.NONE.value,
        "is_weak_match": match.is_weak if match else False,
        "problems": parsed.problems,
        "text": parsed.text,
        "raw_size": parsed.raw_size,
        "raw_blob": raw_blob,
        "html": parsed.html,
        "attachments": parsed.attachments,
        "dmarc": dmarc,
        "is_unverified": is_unverified,
        "created_at": now,
    }
    if erased:
        # About a person erased on request (a late bounce or reply): the row is kept for the
        # counts, as the erasure leaves it; nothing that names them is stored (0090).
        for address in erased:
            recipients.pop(address, None)
        values.update(
            from_address="",
            subject="[erased]",
            text="",
            html="",
            raw_blob=None,
            attachments=[],
            problems=[],
            bounce_recipients=list(recipients),
        )
    connection = db.session.connection()
    stored_id = connection.scalar(_STORE[connection.dialect.name], values)
    if stored_id is None:
        # Stored before, by an earlier run or by another poller a moment ago: that one
        # counts, and this one changes nothing.
        existing = _stored(key)
        if existing is None:
            raise LookupError(f"inbound message {key!r} conflicted but is not stored")
        return _already_stored(existing)
    _apply(filing, received_at)
    if filing.kind == InboundKind.REPLY.value and match is not None:
        record_webhook_event(
            WebhookEventType.REPLY_RECEIVED,
            webhook_payloads.reply_event(stored_id, match.delivery.id, received_at),
        )
    return InboundResult(
        stored_id,
        True,
        kind=filing.kind,
        delivery_id=values["delivery_id"],
        bounce_kind=verdict.bounce_kind,
        recipients=recipients,
    )


def _erased_in(parsed: ParsedMessage, match: Match | None, recipients: dict[str, str]) -> set[str]:
    """The addresses of people erased on request the message is from or reports on (a
    bounce's recipients); {""} for a message matched to a letter whose row an erasure
    anonymised. Empty, with no query, when nobody was ever erased here."""
    found: set[str] = set()
    if match is not None and not match.delivery.email:
        found.add("")
    test = erased_addresses.copy_key_test()
    if test is not None:
        for address in (parsed.from_address, *recipients):
            if address and test(erased_addresses.address_key(address)):
                found.add(address)
    return found


def _stored(key: str) -> InboundMessage | None:
    stored_id = db.session.connection().scalar(_STORED_ID, {"key": key})
    return db.session.get(InboundMessage, stored_id) if stored_id is not None else None


def _already_stored(record: InboundMessage) -> InboundResult:
    severity = record.bounce_kind or BounceKind.SOFT.value
    return InboundResult(
        record.id,
        False,
        kind=record.kind,
        delivery_id=record.delivery_id,
        bounce_kind=record.bounce_kind,
        recipients=dict.fromkeys(record.bounce_recipients or [], severity),
        _message=record,
    )


def _compressed(raw: bytes, parsed: ParsedMessage) -> bytes | None:
    if len(raw) > MAX_BYTES:
        parsed.flag("too large to keep the original")
        return None
    return zlib.compress(raw, _COMPRESSION_LEVEL)


def raw_message_of(record: InboundMessage) -> bytes | None:
    """The message's original bytes as received, or None when they were not kept."""
    if record.raw_blob is None:
        return None
    try:
        return zlib.decompress(record.raw_blob)
    except zlib.error:
        # Never written by us in this shape; the download says "not kept" instead of failing.
        log.warning("inbound message %s: stored original does not decompress", record.id)
        return None


def _received_at(parsed: ParsedMessage, now: datetime) -> datetime:
    # The sender's clock, but never a future one: a Date in 2099 must not sort first for ever.
    if parsed.date is None or parsed.date > now:
        return now
    return parsed.date


def _file_reply(
    parsed: ParsedMessage, kind: str, received_at: datetime, *, is_unverified: bool
) -> _Filing:
    is_human = kind == InboundKind.REPLY
    match = match_reply(
        parsed.in_reply_to,
        parsed.references,
        parsed.from_address,
        parsed.subject,
        parsed.recipient_headers,
        received_at=received_at,
    )
    if match is None:
        return _Filing(InboundKind.UNMATCHED.value if is_human else kind)
    # Only a strong match from a sender DMARC did not refute counts as an answer on its own:
    # a weak or unverified one would drop the recipient from the non-responders (and their
    # follow-ups) before anyone looked. A person confirming it on the replies page counts it.
    counts = is_human and not match.is_weak and not is_unverified
    replied_at = match.delivery.replied_at
    earlier = replied_at is None or replied_at > received_at
    return _Filing(kind, match, answers=match.delivery if counts and earlier else None)


def _file_bounce(
    parsed: ParsedMessage,
    verdict: Classification,
    recipients: dict[str, str],
    received_at: datetime,
) -> _Filing:
    """Which letters the bounce is proven to report on; only those change the ledger.

    Anyone can send a text naming an address: a bounce counts only when it quotes one of
    our Message-IDs (the returned letter's headers, or its own In-Reply-To/References) or
    came to a signed per-delivery reply address. An address-only bounce is linked, weakly,
    to the letter last sent there, for a person to check, and changes nothing else.
    """
    filing = _Filing(InboundKind.BOUNCE.value)
    threads = [*parsed.references, *([parsed.in_reply_to] if parsed.in_reply_to else [])]
    # One lookup for both: the letter quoted inside the bounce wins over the thread headers.
    ours = deliveries_by_message_id([*parsed.quoted_message_ids, *threads])
    quoted = latest_of(parsed.quoted_message_ids, ours) or latest_of(threads, ours)
    method = MatchMethod.BOUNCED_MESSAGE
    if quoted is None:
        quoted = by_reply_token(parsed.recipient_headers)
        method = MatchMethod.REPLY_TOKEN
    if quoted is not None:
        filing.match = Match(quoted, method)
        if not recipients and quoted.email.lower() not in verdict.delivered:
            # The bounce names no address we could read, but it quotes our letter to this one.
            recipients[quoted.email.lower()] = verdict.bounce_kind or BounceKind.SOFT.value
    # The letters the bounce proves it concerns, by the address each was written to.
    proven = {delivery.email.lower(): delivery for delivery in ours.values()}
    if quoted is not None:
        proven[quoted.email.lower()] = quoted
    copies: frozenset[str] | None = None
    for address, severity in recipients.items():
        original = verdict.original_recipients.get(address, address)
        delivery = proven.get(original) or proven.get(address)
        if delivery is None and quoted is not None:
            if copies is None:
                copies = _copy_addresses(quoted)
            if original in copies or address in copies:
                # A copy of the letter failed, not the letter to the contact: the copy
                # address is what goes on the list, the contact's letter reached them.
                if severity == BounceKind.HARD:
                    filing.hard_bounced_copies.append((original, quoted))
                continue
        is_other_recipient = address in parsed.quoted_recipients or (
            original in parsed.quoted_recipients
        )
        if (
            delivery is None
            and quoted is not None
            and len(recipients) == 1
            and quoted.email.lower() not in verdict.delivered
            and not is_other_recipient
        ):
            # One letter quoted, one address reported under another name: an alias or a
            # forward expanded the address we wrote to. The letter is what bounced (unless
            # the report says it reached the address we wrote to, or the quoted letter
            # names the reported address among its own recipients: then another recipient
            # of the same message, a Cc, is what failed).
            delivery = quoted
        if delivery is not None:
            if severity == BounceKind.HARD and delivery not in filing.hard_bounced:
                filing.hard_bounced.append(delivery)
        elif filing.match is None:
            # Only our own recipients: a bounce for an address we never wrote to is
            # backscatter and is linked to nothing.
            sent = latest_delivery_to(original, received_at) or (
                latest_delivery_to(address, received_at) if original != address else None
            )
            if sent is not None:
                filing.match = Match(sent, MatchMethod.BOUNCED_RECIPIENT, is_weak=True)
    return filing


def _copy_addresses(letter: MatchedDelivery) -> frozenset[str]:
    """The copy (Cc) addresses the contact of `letter` carries: lower-cased."""
    value = db.session.connection().scalar(_COPY_ADDRESSES, {"delivery_id": letter.id})
    return frozenset(address.lower() for address in (value or "").split())


def _apply(filing: _Filing, received_at: datetime) -> None:
    """The ledger's changes for a message this call has just stored."""
    if filing.answers is not None:
        _update_delivery(
            _MARK_REPLIED,
            {"delivery_id": filing.answers.id, "replied_at": received_at},
            changed=("replied_at",),
        )
    for delivery in filing.hard_bounced:
        _hard_bounce(delivery)
    for address, letter in filing.hard_bounced_copies:
        with contextlib.suppress(SuppressionError):
            suppress_bounced_address(
                address,
                campaign_id=letter.campaign_id,
                note=f"Hard bounce received (copy of the letter to {letter.email})",
            )


def _hard_bounce(delivery: MatchedDelivery) -> None:
    if delivery.status not in _NOT_SENT and delivery.status != DeliveryStatus.BOUNCED:
        changed = _update_delivery(
            _MARK_BOUNCED, {"delivery_id": delivery.id}, changed=("status", "reason")
        )
        if changed:
            record_webhook_event(
                WebhookEventType.DELIVERY_BOUNCED,
                webhook_payloads.delivery_event(delivery.id, utcnow(), email=True),
            )
    # An address too broken to store cannot be written to again anyway.
    with contextlib.suppress(SuppressionError):
        suppress_bounced_address(
            delivery.email, campaign_id=delivery.campaign_id, note="Hard bounce received"
        )


def _update_delivery(statement: Any, params: dict[str, Any], *, changed: tuple[str, ...]) -> int:
    """Run `statement` on one delivery; how many rows it changed (0 or 1)."""
    result = db.session.connection().execute(statement, params)
    # A Delivery this session already holds must not keep showing the values from before.
    if db.session.identity_map:
        held = db.session.identity_map.get(identity_key(Delivery, params["delivery_id"]))
        if held is not None:
            db.session.expire(held, [*changed, "updated_at"])
    return int(getattr(result, "rowcount", 0) or 0)
