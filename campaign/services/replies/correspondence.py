"""A contact's correspondence: the letters sent to them and what came back, newest first."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_, select

from campaign.extensions import db
from campaign.models import Campaign, Contact, Delivery, InboundMessage, ReplyAnswer, User

# The contact page shows this many letters; older ones stay in each campaign's ledger.
MAX_LETTERS = 100


@dataclass
class StaffAnswer:
    """An answer staff wrote in the app to one of the contact's replies."""

    id: int
    status: str
    author_email: str
    created_at: datetime
    sent_at: datetime | None


@dataclass
class Answer:
    id: int
    kind: str
    bounce_kind: str | None
    subject: str
    received_at: datetime
    is_weak_match: bool
    # What staff answered to it from the app, oldest first.
    staff_answers: list[StaffAnswer] = field(default_factory=list)


@dataclass
class LetterSent:
    delivery_id: int
    campaign_id: int
    campaign_name: str
    status: str
    sent_at: datetime | None
    replied_at: datetime | None
    # Set when the letter went to a record merged into this contact: that record's address.
    merged_address: str = ""
    answers: list[Answer] = field(default_factory=list)


def correspondence(contact_id: int) -> list[LetterSent]:
    """Letters written to the contact (any campaign) with the replies, auto-replies and
    bounces matched to each, and the answers staff sent to those replies from the app.

    The letters that stayed on a record merged into this contact (both had the same letter
    of a campaign) are the contact's too; each says which record it went to (decision 0048).
    """
    merged = select(Contact.id).where(Contact.merged_into_id == contact_id)
    rows = db.session.execute(
        select(
            Delivery.id,
            Delivery.campaign_id,
            Campaign.name,
            Delivery.status,
            Delivery.sent_at,
            Delivery.replied_at,
            Delivery.contact_id,
            Delivery.email,
        )
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(or_(Delivery.contact_id == contact_id, Delivery.contact_id.in_(merged)))
        .order_by(Delivery.created_at.desc(), Delivery.id.desc())
        .limit(MAX_LETTERS)
    ).all()
    letters = {
        row[0]: LetterSent(*row[:6], merged_address="" if row[6] == contact_id else row[7])
        for row in rows
    }
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
        .order_by(InboundMessage.received_at, InboundMessage.id)
    ).all()
    by_id: dict[int, Answer] = {}
    for row in answers:
        answer = Answer(
            row.id, row.kind, row.bounce_kind, row.subject, row.received_at, row.is_weak_match
        )
        letters[int(row.delivery_id)].answers.append(answer)
        by_id[answer.id] = answer
    if by_id:
        staff = db.session.execute(
            select(
                ReplyAnswer.inbound_id,
                ReplyAnswer.id,
                ReplyAnswer.status,
                User.email,
                ReplyAnswer.created_at,
                ReplyAnswer.sent_at,
            )
            .outerjoin(User, User.id == ReplyAnswer.author_id)
            .where(ReplyAnswer.inbound_id.in_(list(by_id)))
            .order_by(ReplyAnswer.id)
        ).all()
        for found in staff:
            by_id[found.inbound_id].staff_answers.append(
                StaffAnswer(
                    found.id, found.status, found.email or "", found.created_at, found.sent_at
                )
            )
    return list(letters.values())
