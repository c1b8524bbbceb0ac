"""A sent campaign whose Message-IDs are the ones the corpus samples answer or quote."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Delivery, DeliveryStatus
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.sending import campaigns
from campaign.services.sending.campaigns import AudienceSpec
from campaign.services.statements import statements

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
    statement = statements.create_statement(
        "Joint letter", language="en", subject=SUBJECT, body="{{ salutation }}\n\nText.\n"
    )
    contact_list = lists.create_list(f"List {uuid.uuid4().hex[:6]}")
    ids = [
        create_contact({"email": address, "family_name": address.partition("@")[0].title()}).id
        for address in RECIPIENTS
    ]
    lists.add_contacts(contact_list, ids)
    campaign = campaigns.create_campaign(
        statement,
        audience=AudienceSpec((f"list:{contact_list.id}",)),
        from_address="Human Rights Office <office@hro.example.org>",
    )
    assert campaigns.launch_campaign(campaign)
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
