"""A contact's page lists the letters sent to them and what came back."""

from __future__ import annotations

import re
from collections.abc import Callable

from flask.testing import FlaskClient

from campaign.extensions import db
from campaign.models import Delivery, Role, User
from campaign.services.replies.intake import record_inbound
from tests.inbound.helpers import corpus, delivery, sent_campaign

Login = Callable[[Role], User]


def _correspondence(client: FlaskClient, contact_id: int) -> str:
    page = client.get(f"/contacts/{contact_id}").get_data(as_text=True)
    found = re.search(r'<table id="correspondence">.*?</table>', page, re.S)
    return found.group() if found else ""


def test_a_contact_shows_its_letter_and_reply_with_a_link_for_editors(
    client: FlaskClient, login: Login
) -> None:
    sent = sent_campaign()
    reply = record_inbound(corpus("reply_in_reply_to.eml")).message
    db.session.commit()
    letter: Delivery = delivery(sent["ana@example.org"])
    login(Role.EDITOR)

    table = _correspondence(client, int(letter.contact_id or 0))

    assert "Joint letter" in table or f"/campaigns/{letter.campaign_id}" in table
    assert f'href="/replies/{reply.id}"' in table
    assert ">Reply<" in table
    # Replied time is filled in, as the ledger says.
    assert letter.replied_at is not None
    assert f'datetime="{letter.replied_at.isoformat()}"' in table


def test_an_auto_reply_is_shown_as_such_and_viewers_get_no_link(
    client: FlaskClient, login: Login
) -> None:
    sent = sent_campaign()
    record_inbound(corpus("ooo_fr.eml"))
    db.session.commit()
    letter = delivery(sent["ben@example.net"])
    login(Role.VIEWER)

    table = _correspondence(client, int(letter.contact_id or 0))

    assert "Automatic reply" in table
    assert "/replies/" not in table
    # An out-of-office answer is not a reply: the "Replied" column stays empty.
    assert letter.replied_at is None


def test_a_contact_never_written_to_says_so(client: FlaskClient, login: Login) -> None:
    sent = sent_campaign()
    other = delivery(sent["grace@example.org"])
    db.session.delete(other)
    db.session.commit()
    login(Role.VIEWER)

    page = client.get(f"/contacts/{other.contact_id}").get_data(as_text=True)

    assert "No letter has been sent to this contact yet." in page
