"""A merge keeps every letter in the survivor's history, through the purge (decision 0048)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import (
    Contact,
    Delivery,
    FollowUpCondition,
    InboundMessage,
    ReplyAnswer,
    Role,
)
from campaign.services.contacts import merge as contact_merge
from campaign.services.contacts import trash as contact_trash
from campaign.services.contacts.contacts import create_contact
from campaign.services.replies.correspondence import correspondence
from campaign.services.sending import followups
from tests.factories import StatementFactory
from tests.followups.test_followups import (  # noqa: F401 (the SMTP fixture)
    _answer,
    _fire,
    _letters,
    _sent_campaign,
    app_overrides,
)


def _contact(email: str) -> Contact:
    found = db.session.scalar(select(Contact).where(Contact.email == email))
    assert found is not None
    return found


def test_a_letter_both_records_got_stays_in_the_survivors_history_through_the_purge(
    app: Flask, client: FlaskClient, login: object
) -> None:
    campaign = _sent_campaign()
    letters = _letters(campaign.id, 0)
    _answer(letters["holiday"])  # the merged-away record's own reply to its own copy
    inbound = db.session.scalar(
        select(InboundMessage).where(InboundMessage.delivery_id == letters["holiday"].id)
    )
    assert inbound is not None
    survivor, other = _contact("replier@example.net"), _contact("holiday@example.net")
    answer = ReplyAnswer(
        inbound_id=inbound.id,
        contact_id=other.id,
        delivery_id=letters["holiday"].id,
        to_address=other.email,
        message_id="<answer-1@example.org>",
        status="sent",
    )
    db.session.add(answer)
    db.session.commit()
    survivor_id, other_id, kept_id = survivor.id, other.id, letters["holiday"].id

    contact_merge.merge_contacts(survivor, other, {})
    db.session.commit()

    def history() -> dict[int, str]:
        return {letter.delivery_id: letter.merged_address for letter in correspondence(survivor_id)}

    assert history() == {letters["replier"].id: "", kept_id: "holiday@example.net"}
    moved = db.session.get(ReplyAnswer, answer.id)
    assert moved is not None and moved.contact_id == survivor_id
    assert moved.delivery_id in history()
    login(Role.VIEWER)  # type: ignore[operator]
    page = client.get(f"/contacts/{survivor_id}").get_data(as_text=True)
    assert "sent to the merged record holiday@example.net" in page

    # 31 days later the scheduler purges the trash: the record holding that letter stays.
    merged = db.session.get(Contact, other_id)
    assert merged is not None
    merged.deleted_at = datetime.now(UTC) - timedelta(days=31)
    db.session.commit()
    assert contact_trash.purge_expired(datetime.now(UTC)) == 0
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Delivery, kept_id).contact_id == other_id  # type: ignore[union-attr]
    assert kept_id in history()
    # An administrator's "Delete now" is refused in words too.
    with pytest.raises(contact_trash.TrashError, match="merged into"):
        contact_trash.purge_contact(db.session.get(Contact, other_id))  # type: ignore[arg-type]


def test_a_follow_up_to_a_moved_letter_goes_to_the_survivors_address(app: Flask) -> None:
    campaign = _sent_campaign()
    survivor = create_contact({"email": "silent.new@example.org", "family_name": "Silent"})
    db.session.commit()
    contact_merge.merge_contacts(survivor, _contact("silent@example.net"), {})
    db.session.commit()
    step = followups.add_step(
        campaign,
        StatementFactory(title="Reminder", subject="Reminder"),
        3,
        FollowUpCondition.NO_REPLY,
    )
    db.session.commit()

    _fire(step)

    follow_ups = {row.contact_id: row.email for row in _letters(campaign.id, 1).values()}
    assert follow_ups[survivor.id] == "silent.new@example.org"
    assert "silent@example.net" not in follow_ups.values()
