"""The launch reads its audience once and counts what it read (decision 0078).

Its check counts the contacts it is about to write instead of counting the audience again
in two queries: the figures the audit log records are the campaign check's figures, an
exclusion, a trashed and a suppressed contact included; a deleted list still refuses the
launch by name. On SQLite and PostgreSQL (the `app` fixture runs both).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, select

from campaign.extensions import db
from campaign.models import AuditEvent, Campaign, CampaignStatus, Delivery
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.contacts.suppressions import suppress_address
from campaign.services.contacts.trash import trash_contact
from campaign.services.sending import campaigns
from campaign.services.sending.campaigns import AudienceSpec, CampaignError
from campaign.services.statements import statements

BODY = "{{ salutation }}\n\nOur letter.\n\n{{ closing }}\n"
SENDER = "Office <office@hrn.example.org>"


@contextmanager
def audience_reads() -> Iterator[list[str]]:
    """The SELECTs that read list memberships (the audience) while the block runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "list_memberships" in statement:
            seen.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_the_launch_writes_and_records_what_its_one_read_counted(app: Flask) -> None:
    press, partners = lists.create_list("Press"), lists.create_list("Partners")
    people = [
        create_contact({"family_name": f"N{i}", "email": f"r{i}@example.org"}) for i in range(8)
    ]
    lists.add_contacts(press, [person.id for person in people])
    lists.add_contacts(partners, [people[1].id])  # excluded
    suppress_address("r2@example.org", "manual")
    trash_contact(people[3])
    campaign = campaigns.create_campaign(
        statements.create_statement("Letter", language="en", subject="S", body=BODY),
        audience=AudienceSpec((f"list:{press.id}",), (f"list:{partners.id}",)),
        from_address=SENDER,
    )
    db.session.commit()
    counted = campaigns.count_audience(AudienceSpec.from_json(campaign.audience))
    assert (counted.total, counted.suppressed) == (6, 1)

    with audience_reads() as reads:
        assert campaigns.launch_campaign(campaign)
    db.session.commit()
    assert len(reads) == 1, reads  # the check's count and the rows came from one read

    rows = db.session.execute(
        select(Delivery.email, Delivery.status).where(Delivery.campaign_id == campaign.id)
    ).all()
    assert sorted(email for email, _ in rows) == [f"r{i}@example.org" for i in (0, 2, 4, 5, 6, 7)]
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "campaign.launch")
    ).one()
    assert (event.detail["recipients"], event.detail["suppressed"]) == (
        counted.sendable,
        counted.suppressed,
    )


def test_a_launch_whose_list_was_deleted_is_refused_naming_it(app: Flask) -> None:
    press = lists.create_list("Press")
    lists.add_contacts(press, [create_contact({"family_name": "N", "email": "r@example.org"}).id])
    campaign = campaigns.create_campaign(
        statements.create_statement("Letter", language="en", subject="S", body=BODY),
        audience=AudienceSpec((f"list:{press.id}",)),
        from_address=SENDER,
    )
    campaign.audience = AudienceSpec((f"list:{press.id}", "list:999")).to_json()
    db.session.commit()
    with pytest.raises(CampaignError, match="'list:999' is not a list or segment"):
        campaigns.launch_campaign(campaign)
    db.session.rollback()
    launched = db.session.get(Campaign, campaign.id)
    assert launched is not None and launched.status == CampaignStatus.DRAFT.value
    assert db.session.scalar(select(Delivery.id).where(Delivery.campaign_id == campaign.id)) is None
