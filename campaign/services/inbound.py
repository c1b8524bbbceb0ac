"""Inbound mail: classify, match to a delivery, apply its effects on the ledger."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import zlib
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from campaign.extensions import db
from campaign.inbound.authentication import dmarc_verdict
from campaign.inbound.classify import classify
from campaign.inbound.matching import (
    Match,
    by_message_ids,
    latest_delivery_to,
    match_reply,
)
from campaign.inbound.parsing import MAX_BYTES, ParsedMessage, parse_message
from campaign.models import (
    BounceKind,
    Delivery,
    DeliveryStatus,
    InboundKind,
    InboundMessage,
    MatchMethod,
    SuppressionReason,
)
from campaign.models._types import utcnow
from campaign.services.suppressions import SuppressionError, suppress_address

log = logging.getLogger(__name__)

# zlib level 6: mail text shrinks to about a third at tens of MB/s; 9 gains little more.
_COMPRESSION_LEVEL = 6

# A bounce does not turn these into "bounced": they were never sent by this campaign.
_NOT_SENT = (
    DeliveryStatus.SUPPRESSED.value,
    DeliveryStatus.CANCELLED.value,
    DeliveryStatus.QUEUED.value,
)


@dataclass
class InboundResult:
    message: InboundMessage
    # False when these bytes (or this IMAP UID) had been recorded before.
    is_new: bool
    # Every address the bounce reports, with "hard" or "soft".
    recipients: dict[str, str] = field(default_factory=dict)


def file_source_key(raw: bytes) -> str:
    """The dedupe key of a message read from a file: the SHA-256 of its bytes."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def record_inbound(
    raw: bytes, *, source: str = "file", source_key: str | None = None
) -> InboundResult:
    """Classify and store one raw message once, applying its effects to the ledger."""
    key = source_key or file_source_key(raw)
    existing = db.session.scalar(select(InboundMessage).where(InboundMessage.source_key == key))
    if existing is not None:
        return InboundResult(existing, False, _stored_recipients(existing))
    parsed = parse_message(raw)
    verdict = classify(parsed)
    dmarc, is_unverified = dmarc_verdict(parsed)
    raw_blob = _compressed(raw, parsed)
    now = utcnow()
    record = InboundMessage(
        source=source,
        source_key=key,
        message_id=parsed.message_id,
        in_reply_to=parsed.in_reply_to,
        from_address=parsed.from_address[:320],
        subject=parsed.subject,
        received_at=_received_at(parsed, now),
        kind=verdict.kind,
        bounce_kind=verdict.bounce_kind,
        bounce_recipients=[],
        match_method=MatchMethod.NONE.value,
        is_weak_match=False,
        problems=parsed.problems,
        text=parsed.text,
        raw_size=parsed.raw_size,
        raw_blob=raw_blob,
        html=parsed.html,
        attachments=parsed.attachments,
        dmarc=dmarc,
        is_unverified=is_unverified,
        created_at=now,
    )
    recipients = dict(verdict.recipients)
    if verdict.kind == InboundKind.BOUNCE:
        _apply_bounce(record, parsed, recipients)
    else:
        _apply_reply(record, parsed, is_human=verdict.kind == InboundKind.REPLY)
    record.bounce_recipients = list(recipients)
    # A savepoint: a second poller storing the same message first must not undo our work.
    try:
        with db.session.begin_nested():
            db.session.add(record)
    except IntegrityError:
        db.session.expire_all()
        stored = db.session.scalar(select(InboundMessage).where(InboundMessage.source_key == key))
        if stored is None:
            raise
        return InboundResult(stored, False, _stored_recipients(stored))
    return InboundResult(record, True, recipients)


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


def _stored_recipients(record: InboundMessage) -> dict[str, str]:
    severity = record.bounce_kind or BounceKind.SOFT.value
    return dict.fromkeys(record.bounce_recipients or [], severity)


def _received_at(parsed: ParsedMessage, now: datetime) -> datetime:
    # The sender's clock, but never a future one: a Date in 2099 must not sort first for ever.
    if parsed.date is None or parsed.date > now:
        return now
    return parsed.date


def _apply_reply(record: InboundMessage, parsed: ParsedMessage, *, is_human: bool) -> None:
    match = match_reply(
        parsed.in_reply_to,
        parsed.references,
        parsed.from_address,
        parsed.subject,
        parsed.recipient_headers,
    )
    if match is None:
        if is_human:
            record.kind = InboundKind.UNMATCHED.value
        return
    _link(record, match)
    if is_human and match.delivery.replied_at is None:
        match.delivery.replied_at = record.received_at


def _link(record: InboundMessage, match: Match) -> None:
    record.delivery_id = match.delivery.id
    record.match_method = match.method.value
    record.is_weak_match = match.is_weak


def _apply_bounce(
    record: InboundMessage, parsed: ParsedMessage, recipients: dict[str, str]
) -> None:
    quoted = by_message_ids(parsed.quoted_message_ids) or by_message_ids(
        [*parsed.references, *([parsed.in_reply_to] if parsed.in_reply_to else [])]
    )
    if quoted is not None:
        _link(record, Match(quoted, MatchMethod.BOUNCED_MESSAGE))
        if not recipients:
            # The bounce names no address we could read, but it quotes our letter to this one.
            recipients[quoted.email.lower()] = record.bounce_kind or BounceKind.SOFT.value
    for address, severity in recipients.items():
        delivery: Delivery | None
        if quoted is not None and quoted.email.lower() == address:
            delivery = quoted
        else:
            # Only our own recipients: a bounce for an address we never wrote to is
            # backscatter, and must not put strangers on the suppression list.
            delivery = latest_delivery_to(address)
        if delivery is None:
            continue
        if record.delivery_id is None:
            _link(record, Match(delivery, MatchMethod.BOUNCED_RECIPIENT))
        if severity == BounceKind.HARD:
            _hard_bounce(delivery)


def _hard_bounce(delivery: Delivery) -> None:
    if delivery.status not in _NOT_SENT and delivery.status != DeliveryStatus.BOUNCED:
        delivery.status = DeliveryStatus.BOUNCED.value
        delivery.reason = "hard_bounce"
    # An address too broken to store cannot be written to again anyway.
    with contextlib.suppress(SuppressionError):
        suppress_address(
            delivery.email,
            SuppressionReason.HARD_BOUNCE,
            campaign_id=delivery.campaign_id,
            note="Hard bounce received",
            is_address_checked=False,
        )
