"""A contact's correspondence: the letters sent to them and what came back, newest first."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Campaign, Delivery, InboundMessage

# The contact page shows this many letters; older ones stay in each campaign's ledger.
MAX_LETTERS = 100


@dataclass
class Answer:
    id: int
    kind: str
    bounce_kind: str | None
    subject: str
    received_at: datetime
    is_weak_match: bool


@dataclass
class LetterSent:
    delivery_id: int
    campaign_id: int
    campaign_name: str
    status: str
    sent_at: datetime | None
    replied_at: datetime | None
    answers: list[Answer] = field(default_factory=list)


def correspondence(contact_id: int) -> list[LetterSent]:
    """Letters written to the contact (any campaign) with the replies, auto-replies and
    bounces matched to each."""
    rows = db.session.execute(
        select(
            Delivery.id,
            Delivery.campaign_id,
            Campaign.name,
            Delivery.status,
            Delivery.sent_at,
            Delivery.replied_at,
        )
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(Delivery.contact_id == contact_id)
        .order_by(Delivery.created_at.desc(), Delivery.id.desc())
        .limit(MAX_LETTERS)
    ).all()
    letters = {row[0]: LetterSent(*row) for row in rows}
    if not letters:
        return []
    answers = db.session.execute(
        select(
            InboundMessage.delivery_id,
            InboundMessage.id,
            InboundMessage.kind,
            InboundMessage.bounce_kind,
            InboundMessage.subject,
            InboundMessage.received_at,
            InboundMessage.is_weak_match,
        )
        .where(InboundMessage.delivery_id.in_(list(letters)))
        .order_by(InboundMessage.received_at)
    ).all()
    for row in answers:
        answer = Answer(
            row.id, row.kind, row.bounce_kind, row.subject, row.received_at, row.is_weak_match
        )
        letters[int(row.delivery_id)].answers.append(answer)
    return list(letters.values())
