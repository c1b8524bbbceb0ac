"""The bulk launch (COPY / one prepared INSERT, decision 0074) writes the ledger it always did.

One row per recipient, the suppressed ones marked, Message-IDs and unsubscribe tokens unique
and of their usual form, the columns left to their defaults as the ORM would fill them; the
send jobs queued when the launch commits and not before; a launch that fails half way
leaves nothing behind. On SQLite and PostgreSQL (the `app` fixture runs both).
"""

from __future__ import annotations

import math
import re
from datetime import UTC

import pytest
from flask import Flask
from sqlalchemy import func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from campaign.extensions import db
from campaign.models import (
    AuditEvent,
    Campaign,
    CampaignStatus,
    Contact,
    Delivery,
    DeliveryStatus,
)
from campaign.queue import get_queue
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.contacts.suppressions import suppress_address
from campaign.services.contacts.trash import trash_contact
from campaign.services.sending import campaigns, deliveries
from campaign.services.sending.campaigns import AudienceSpec
from campaign.services.statements import statements

BODY = "{{ salutation }}\n\nOur letter.\n\n{{ closing }}\n"
SENDER = "Office <office@hrn.example.org>"
TOKEN = re.compile(r"[A-Za-z0-9_-]{24}")
MESSAGE_ID = re.compile(r"<[0-9a-f]+\.[0-9a-f]{24}@hrn\.example\.org>")


def _draft(count: int, *, suppressed: tuple[int, ...] = (), trashed: tuple[int, ...] = ()) -> int:
    statement = statements.create_statement("Letter", language="en", subject="S", body=BODY)
    audience = lists.create_list("Press")
    contacts = [
        create_contact({"family_name": f"N{i}", "email": f"r{i}@example.org"}) for i in range(count)
    ]
    lists.add_contacts(audience, [contact.id for contact in contacts])
    for i in suppressed:
        suppress_address(f"r{i}@example.org", "manual")
    for i in trashed:
        trash_contact(contacts[i])
    campaign = campaigns.create_campaign(
        statement, audience=AudienceSpec((f"list:{audience.id}",)), from_address=SENDER
    )
    db.session.commit()
    return int(campaign.id)


def _campaign(campaign_id: int) -> Campaign:
    campaign = db.session.get(Campaign, campaign_id)
    assert campaign is not None
    return campaign


def _rows(campaign_id: int) -> list[Delivery]:
    return list(
        db.session.scalars(
            select(Delivery).where(Delivery.campaign_id == campaign_id).order_by(Delivery.id)
        )
    )


def test_one_row_per_recipient_with_the_suppressed_marked_and_every_column_filled(
    app: Flask,
) -> None:
    campaign_id = _draft(30, suppressed=(3, 17), trashed=(5,))
    assert campaigns.launch_campaign(_campaign(campaign_id))
    db.session.commit()
    rows = _rows(campaign_id)
    expected = [f"r{i}@example.org" for i in range(30) if i != 5]
    assert [row.email for row in rows] == expected  # in contact order, the trashed one left out
    assert len({row.contact_id for row in rows}) == 29
    by_email = {row.email: row for row in rows}
    for i in (3, 17):
        row = by_email[f"r{i}@example.org"]
        assert (row.status, row.reason) == (DeliveryStatus.SUPPRESSED.value, "suppressed")
    queued = [row for row in rows if row.status == DeliveryStatus.QUEUED.value]
    assert len(queued) == 27 and all(row.reason == "" for row in queued)
    # Unique and of their usual form.
    assert len({row.message_id for row in rows}) == 29
    assert all(MESSAGE_ID.fullmatch(row.message_id) for row in rows)
    assert len({row.unsubscribe_token for row in rows}) == 29
    assert all(TOKEN.fullmatch(row.unsubscribe_token) for row in rows)
    # What the ORM used to fill in, read back as the workers read it.
    for row in rows:
        assert (row.step, row.attempts, row.possible_duplicates) == (0, 0, 0)
        assert (row.claimed_by, row.last_reply, row.language, row.message_sha256) == ("",) * 4
        assert row.lease_until is None and row.sent_at is None and row.last_code is None
        assert row.created_at.tzinfo == UTC and row.created_at == row.next_attempt_at
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "campaign.launch")
    ).one()
    assert (event.detail["recipients"], event.detail["suppressed"]) == (27, 2)


def test_the_send_jobs_are_queued_when_the_launch_commits_and_not_before(app: Flask) -> None:
    app.config["SEND_BATCH_SIZE"] = 4
    queue = get_queue()
    queue.empty()
    campaign_id = _draft(10, suppressed=(0,))
    assert campaigns.launch_campaign(_campaign(campaign_id))
    assert queue.count == 0, "no worker may look for rows that are not committed"
    db.session.commit()
    assert queue.count == math.ceil(9 / 4)
    assert {job.args[0] for job in queue.jobs} == {campaign_id}


def test_a_launch_that_fails_half_way_leaves_nothing_behind(app: Flask) -> None:
    queue = get_queue()
    queue.empty()
    campaign_id = _draft(40)
    # A row the ledger's unique key will refuse, for the last contact in the launch's order:
    # the bulk insert fails after writing the 39 rows before it.
    db.session.execute(
        insert(Delivery).values(
            campaign_id=campaign_id,
            contact_id=db.session.scalar(select(func.max(Contact.id))),
            step=0,
            email="r39@example.org",
            status=DeliveryStatus.CANCELLED.value,
            message_id="<clash@hrn.example.org>",
            unsubscribe_token="clash-token",
        )
    )
    db.session.commit()
    with pytest.raises(IntegrityError):
        campaigns.launch_campaign(_campaign(campaign_id))
    db.session.rollback()
    db.session.commit()
    assert [row.message_id for row in _rows(campaign_id)] == ["<clash@hrn.example.org>"]
    assert _campaign(campaign_id).status == CampaignStatus.DRAFT.value
    assert queue.count == 0
    assert not db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "campaign.launch")
    ).all()


def test_message_ids_and_tokens_are_unique_random_and_of_their_usual_form() -> None:
    ids = deliveries.new_message_ids("hrn.example.org", 5000)
    tokens = deliveries.new_unsubscribe_tokens(5000)
    assert len(set(ids)) == len(set(tokens)) == 5000
    assert all(MESSAGE_ID.fullmatch(value) for value in ids)
    assert all(TOKEN.fullmatch(value) for value in tokens)
    # Written in rising order (decision 0074), each still fresh from the random source.
    assert ids == sorted(ids) and tokens == sorted(tokens)
    assert set(deliveries.new_unsubscribe_tokens(5000)).isdisjoint(tokens)


def test_a_left_out_column_whose_default_is_computed_is_refused_not_left_empty() -> None:
    # created_at and updated_at default to the time of the insert: the bulk paths would
    # write no value for them, so the caller must give them.
    row = {"campaign_id": 1, "contact_id": 1, "email": "r@example.org", "message_id": "<m@x>"}
    with pytest.raises(ValueError, match="created_at, updated_at"):
        deliveries.insert_deliveries([row])


def test_the_bulk_path_follows_the_driver_not_the_database() -> None:
    assert deliveries.bulk_path(postgresql.psycopg.dialect()) == "copy"
    assert deliveries.bulk_path(sqlite.pysqlite.dialect()) == "prepared"
    # No cursor.copy on these: SQLAlchemy's own executemany.
    for other in (postgresql.psycopg2.dialect(), postgresql.pg8000.dialect()):
        assert deliveries.bulk_path(other) == "core"
