"""A sent campaign whose Message-IDs are the ones the corpus samples answer or quote."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Delivery, DeliveryStatus
from tests.factories import CampaignFactory

CORPUS = Path(__file__).parent / "corpus"
SUBJECT = "Release the defenders"
# Before every Date in the corpus: mail can only answer or report on a letter already sent.
SENT_AT = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
RECIPIENTS = (
    "ana@example.org",
    "ben@example.net",
    "chen@example.com",
    "dana@example.org",
    "eve@example.org",
    "frank@gmail.example",
    "grace@example.org",
    "hank@yahoo.example",
)


def corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def letter_id(address: str) -> str:
    """The Message-ID the corpus uses for our letter to `address`."""
    return f"<letter.{address.partition('@')[0]}@hro.example.org>"


def sent_campaign() -> dict[str, int]:
    """Launch a campaign to RECIPIENTS and mark it sent; address → delivery id."""
    campaign = CampaignFactory(
        statement__subject=SUBJECT,
        statement__body="{{ salutation }}\n\nText.\n",
        recipients=[
            {"email": address, "family_name": address.partition("@")[0].title()}
            for address in RECIPIENTS
        ],
        from_address="Human Rights Office <office@hro.example.org>",
        launched=True,
    )
    db.session.flush()
    found = {}
    for delivery in db.session.scalars(select(Delivery).where(Delivery.campaign_id == campaign.id)):
        delivery.message_id = letter_id(delivery.email)
        delivery.status = DeliveryStatus.SENT.value
        delivery.sent_at = SENT_AT
        found[delivery.email] = delivery.id
    db.session.commit()
    return found


def delivery(delivery_id: int) -> Delivery:
    db.session.expire_all()
    row = db.session.get(Delivery, delivery_id)
    assert row is not None
    return row
