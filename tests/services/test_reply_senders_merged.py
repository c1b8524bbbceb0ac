"""A reply to a letter that went to a record merged away is shown from the survivor."""

from __future__ import annotations

from flask import Flask

from campaign.extensions import db
from campaign.models import Delivery, InboundMessage
from campaign.services.contacts import merge as contact_merge
from campaign.services.contacts.contacts import create_contact
from campaign.services.replies import replies


def test_the_sender_of_a_reply_to_a_merged_away_record_is_its_survivor(app: Flask) -> None:
    survivor = create_contact({"email": "anna@example.org", "family_name": "Bekova"})
    other = create_contact({"email": "a.bekova@example.org", "family_name": "Bekova"})
    db.session.commit()
    contact_merge.merge_contacts(survivor, other, {})
    db.session.commit()
    # The letter both got from the same campaign step stayed on the merged-away record.
    message = InboundMessage(id=10**6, from_address="a.bekova@example.org")
    letter = Delivery(contact_id=other.id)
    found = replies.sender_contacts([(message, letter)])
    assert found[message.id].id == survivor.id
    assert replies.sender_contact(message, letter).display_name == survivor.display_name
