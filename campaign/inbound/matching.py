"""Threading inbound mail to the delivery it answers or reports on."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default as default_policy

from sqlalchemy import func, select

from campaign.extensions import db
from campaign.inbound.reply_token import delivery_id_in
from campaign.models import Campaign, Delivery, MatchMethod, StatementVersion
from campaign.services.ledger import raw_message

# Reply and forward prefixes in the languages our users write in, including Outlook's
# French "RE :" and numbered ones like "Re[2]:".
_PREFIX = re.compile(
    r"^\s*(?:(?:re|aw|sv|antw|wg|fw|fwd|tr|réf|ref|ha|отв|ответ|rép|r)\s*(?:\[\d+\])?\s*:\s*)+",
    re.IGNORECASE,
)
# The weak match looks at this many of the sender's most recent deliveries.
MAX_CANDIDATES = 50


@dataclass
class Match:
    delivery: Delivery
    method: MatchMethod
    is_weak: bool = False


def normalise_subject(subject: str) -> str:
    """The subject without reply prefixes, case or spacing differences."""
    return " ".join(_PREFIX.sub("", subject).split()).casefold()


def by_message_ids(ids: list[str]) -> Delivery | None:
    """The delivery whose Message-ID comes latest in `ids`, or None."""
    if not ids:
        return None
    rows = {
        row.message_id: row
        for row in db.session.scalars(select(Delivery).where(Delivery.message_id.in_(set(ids))))
    }
    for message_id in reversed(ids):
        if message_id in rows:
            return rows[message_id]
    return None


def latest_delivery_to(address: str) -> Delivery | None:
    """The most recent delivery written to `address` (any spelling of its case)."""
    return db.session.scalar(
        select(Delivery)
        .where(func.lower(Delivery.email) == address.strip().lower())
        .order_by(Delivery.created_at.desc(), Delivery.id.desc())
        .limit(1)
    )


def by_reply_token(recipient_headers: list[str]) -> Delivery | None:
    """The delivery whose signed reply address the message was sent to, or None."""
    if not recipient_headers:
        return None
    # A forged or garbled token reads as None, so such mail falls through to weaker methods.
    delivery_id = delivery_id_in(recipient_headers)
    return db.session.get(Delivery, delivery_id) if delivery_id is not None else None


def match_reply(
    in_reply_to: str,
    references: list[str],
    sender: str,
    subject: str,
    recipient_headers: list[str] | None = None,
) -> Match | None:
    """Thread headers, then the reply token; then, weakly, the sender and the letter's subject."""
    if in_reply_to:
        found = by_message_ids([in_reply_to])
        if found is not None:
            return Match(found, MatchMethod.IN_REPLY_TO)
    found = by_message_ids(references)
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
    candidates = db.session.scalars(
        select(Delivery)
        .where(func.lower(Delivery.email) == sender.lower())
        .order_by(Delivery.created_at.desc(), Delivery.id.desc())
        .limit(MAX_CANDIDATES)
    )
    for delivery in candidates:
        if wanted in {normalise_subject(s) for s in letter_subjects(delivery)}:
            return Match(delivery, MatchMethod.SENDER_SUBJECT, is_weak=True)
    return None


def letter_subjects(delivery: Delivery) -> set[str]:
    """Subjects this recipient may have seen: the one sent, else the statement version's."""
    subjects = set()
    raw = raw_message(delivery)
    if raw:
        headers = BytesHeaderParser(policy=default_policy).parsebytes(raw)
        # Our own stored message; a header that will not parse only loses this source.
        with contextlib.suppress(Exception):
            subjects.add(str(headers.get("subject", "")))
    if subjects:
        return subjects
    campaign = db.session.get(Campaign, delivery.campaign_id)
    if campaign is None or campaign.statement_version_id is None:
        return subjects
    version = db.session.get(StatementVersion, campaign.statement_version_id)
    texts = (version.snapshot or {}).get("texts", {}) if version else {}
    chosen = texts.get(delivery.language) or {}
    if chosen.get("subject"):
        subjects.add(str(chosen["subject"]))
    else:
        subjects.update(str(text.get("subject", "")) for text in texts.values())
    return {s for s in subjects if s}
