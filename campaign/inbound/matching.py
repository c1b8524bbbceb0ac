"""Threading inbound mail to the delivery it answers or reports on.

Matching only reads, and it runs for every message: the lookups select the few delivery
columns the decision needs (never the stored letter, kilobytes each, except for the weak
match that reads its Subject), through statements built once, so SQLAlchemy neither loads
ORM objects nor recomputes cache keys per message.
"""

from __future__ import annotations

import contextlib
import re
import zlib
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.policy import default as default_policy
from typing import Any

from sqlalchemy import Table, bindparam, func, select

from campaign.extensions import db
from campaign.inbound.reply_token import delivery_id_in
from campaign.models import Campaign, Delivery, MatchMethod, StatementVersion

# Reply and forward prefixes in the languages our users write in, including Outlook's
# French "RE :" and numbered ones like "Re[2]:".
_PREFIX = re.compile(
    r"^\s*(?:(?:re|aw|sv|antw|wg|fw|fwd|tr|réf|ref|ha|отв|ответ|rép|r)\s*(?:\[\d+\])?\s*:\s*)+",
    re.IGNORECASE,
)
# The weak match looks at this many of the sender's most recent deliveries.
MAX_CANDIDATES = 50
# Our letters' headers fit in this; no more of a stored letter is ever decompressed (a
# letter with a PDF attached inflates to megabytes).
_HEAD_LIMIT = 64 * 1024


@dataclass(frozen=True)
class MatchedDelivery:
    """What matching and the ledger effects need of a delivery (not the letter itself)."""

    id: int
    email: str
    status: str
    replied_at: datetime | None
    campaign_id: int
    language: str


@dataclass
class Match:
    delivery: MatchedDelivery
    method: MatchMethod
    is_weak: bool = False


_deliveries: Table = Delivery.__table__  # plain Core: rows, not ORM objects
_COLUMNS = (
    _deliveries.c.id,
    _deliveries.c.email,
    _deliveries.c.status,
    _deliveries.c.replied_at,
    _deliveries.c.campaign_id,
    _deliveries.c.language,
)
_BY_MESSAGE_IDS = select(_deliveries.c.message_id, *_COLUMNS).where(
    _deliveries.c.message_id.in_(bindparam("ids", expanding=True))
)
_BY_ID = select(*_COLUMNS).where(_deliveries.c.id == bindparam("id"))
# Letters actually sent to the address (lower(email) is what ix_deliveries_email_lower
# indexes) before the message arrived: a queued letter, or one sent after the mail was
# written, cannot be what it answers or reports on.
_SENT_TO = (
    (func.lower(_deliveries.c.email) == bindparam("address"))
    & _deliveries.c.sent_at.is_not(None)
    & (_deliveries.c.sent_at <= bindparam("received_at"))
)
_LATEST_SENT_FIRST = (_deliveries.c.sent_at.desc(), _deliveries.c.id.desc())
_LATEST_TO = select(*_COLUMNS).where(_SENT_TO).order_by(*_LATEST_SENT_FIRST).limit(1)
_CANDIDATES = (
    select(*_COLUMNS, _deliveries.c.message_blob)
    .where(_SENT_TO)
    .order_by(*_LATEST_SENT_FIRST)
    .limit(MAX_CANDIDATES)
)


def _rows(statement: Any, params: dict[str, Any]) -> Any:
    # On the session's connection: same transaction, without the ORM's per-statement work.
    return db.session.connection().execute(statement, params)


def _matched(row: Any) -> MatchedDelivery:
    return MatchedDelivery(
        row.id, row.email, row.status, row.replied_at, row.campaign_id, row.language
    )


def normalise_subject(subject: str) -> str:
    """The subject without reply prefixes, case or spacing differences."""
    return " ".join(_PREFIX.sub("", subject).split()).casefold()


def deliveries_by_message_id(ids: list[str]) -> dict[str, MatchedDelivery]:
    """Our deliveries among these Message-IDs, by Message-ID (one query)."""
    if not ids:
        return {}
    rows = _rows(_BY_MESSAGE_IDS, {"ids": list(set(ids))})
    return {row.message_id: _matched(row) for row in rows}


def latest_of(ids: list[str], found: dict[str, MatchedDelivery]) -> MatchedDelivery | None:
    """The delivery whose Message-ID comes latest in `ids`, or None."""
    for message_id in reversed(ids):
        if message_id in found:
            return found[message_id]
    return None


def latest_delivery_to(address: str, received_at: datetime) -> MatchedDelivery | None:
    """The letter last sent to `address` (any case) no later than `received_at`."""
    params = {"address": address.strip().lower(), "received_at": received_at}
    row = _rows(_LATEST_TO, params).first()
    return _matched(row) if row is not None else None


def by_reply_token(recipient_headers: list[str]) -> MatchedDelivery | None:
    """The delivery whose signed reply address the message was sent to, or None."""
    if not recipient_headers:
        return None
    # A forged or garbled token reads as None, so such mail falls through to weaker methods.
    delivery_id = delivery_id_in(recipient_headers)
    if delivery_id is None:
        return None
    row = _rows(_BY_ID, {"id": delivery_id}).first()
    return _matched(row) if row is not None else None


def match_reply(
    in_reply_to: str,
    references: list[str],
    sender: str,
    subject: str,
    recipient_headers: list[str] | None = None,
    *,
    received_at: datetime,
) -> Match | None:
    """Thread headers, then the reply token; then, weakly, the sender and the letter's subject."""
    # One lookup serves both thread headers; In-Reply-To still wins over References.
    threaded = deliveries_by_message_id([*([in_reply_to] if in_reply_to else []), *references])
    if in_reply_to in threaded:
        return Match(threaded[in_reply_to], MatchMethod.IN_REPLY_TO)
    found = latest_of(references, threaded)
    if found is not None:
        return Match(found, MatchMethod.REFERENCES)
    found = by_reply_token(recipient_headers or [])
    if found is not None:
        return Match(found, MatchMethod.REPLY_TOKEN)
    if not sender or not subject:
        return None
    wanted = normalise_subject(subject)
    if not wanted:
        return None
    params = {"address": sender.lower(), "received_at": received_at}
    for row in _rows(_CANDIDATES, params):
        candidate = _matched(row)
        # The statement's subjects cost no decompression (the version is read once per
        # campaign: the session keeps it); the letter as sent is read only when they differ.
        if wanted in {normalise_subject(s) for s in statement_subjects(candidate)}:
            return Match(candidate, MatchMethod.SENDER_SUBJECT, is_weak=True)
        sent = sent_subject(row.message_blob)
        if sent is not None and normalise_subject(sent) == wanted:
            return Match(candidate, MatchMethod.SENDER_SUBJECT, is_weak=True)
    return None


def statement_subjects(delivery: MatchedDelivery) -> set[str]:
    """The subjects of the statement version the delivery's campaign sent, in its language."""
    campaign = db.session.get(Campaign, delivery.campaign_id)
    if campaign is None or campaign.statement_version_id is None:
        return set()
    version = db.session.get(StatementVersion, campaign.statement_version_id)
    texts = (version.snapshot or {}).get("texts", {}) if version else {}
    chosen = texts.get(delivery.language) or {}
    if chosen.get("subject"):
        return {str(chosen["subject"])}
    return {str(text.get("subject", "")) for text in texts.values()} - {""}


def sent_subject(message_blob: bytes | None) -> str | None:
    """The Subject of the letter as sent, read from the first 64 KiB of it only."""
    head = _letter_head(message_blob)
    if not head:
        return None
    # Only the Subject goes through the modern policy's header parsing (RFC 2047 words):
    # parsing every header of every candidate letter that way cost more than the query.
    headers = BytesHeaderParser(policy=compat32).parsebytes(head).raw_items()
    raw_subject = next((value for name, value in headers if name.lower() == "subject"), None)
    if raw_subject is None:
        return None
    # Our own stored message; a header that will not parse only loses this source.
    with contextlib.suppress(Exception):
        return str(default_policy.header_fetch_parse("Subject", raw_subject))
    return None


def _letter_head(message_blob: bytes | None) -> bytes | None:
    """The header section of a stored letter, from a bounded prefix of its inflated bytes."""
    if not message_blob:
        return None
    try:
        prefix = zlib.decompressobj().decompress(message_blob, _HEAD_LIMIT)
    except zlib.error:
        return None
    ends = [i for i in (prefix.find(b"\r\n\r\n"), prefix.find(b"\n\n")) if i != -1]
    # Headers longer than the limit: the parser reads what is there (the Subject may be in it).
    return prefix[: min(ends)] if ends else prefix
