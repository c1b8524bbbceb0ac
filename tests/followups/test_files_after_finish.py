"""A statement file deleted once the first letters went out does not hold up follow-ups:
they never carry the files, so they need not find them."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Delivery, FollowUpCondition
from campaign.services.sending import campaigns, followups
from campaign.services.statements import files as statement_files
from campaign.services.statements import statements
from tests.factories import CampaignFactory
from tests.followups.test_signed_follow_ups import (  # noqa: F401 (the SMTP fixture)
    _first_statement,
    _reminder,
    _send_all,
    app_overrides,
)
from tests.services.test_statement_files import FROM, READERS, _pdf


def test_follow_ups_go_out_after_the_annex_of_the_first_letters_was_deleted(app: Flask) -> None:
    statement = _first_statement("Release the defenders", "Libérez les défenseurs")
    annex = statements.add_attachment(statement, "annex.pdf", _pdf(2000, "x"))
    campaign = CampaignFactory(statement=statement, recipients=READERS, from_address=FROM)
    statement_files.choose_files(campaign, [annex.id])
    assert campaigns.launch_campaign(campaign)
    db.session.commit()
    _send_all(campaign.id)
    db.session.expire_all()
    assert campaign.status == "finished"
    # Allowed: no letter of the campaign is waiting for it any more.
    path = statements.remove_attachment(annex)
    db.session.commit()
    path.unlink(missing_ok=True)
    step = followups.add_step(campaign, _reminder(), 7, FollowUpCondition.NO_REPLY)
    db.session.commit()
    schedule = followups.schedule_of(step)
    due = schedule.next_run_at
    followups.fire_follow_up(schedule, due, due)
    db.session.commit()

    _send_all(campaign.id)
    db.session.expire_all()

    rows = db.session.scalars(
        select(Delivery).where(Delivery.campaign_id == campaign.id, Delivery.step == 1)
    ).all()
    assert sorted((row.email, row.status) for row in rows) == [
        ("anna@example.net", "sent"),
        ("bernard@example.net", "sent"),
    ]
    assert campaign.status == "finished"
