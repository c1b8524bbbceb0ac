"""A scheduled launch the pre-send check refuses says why, in words (issue 14, item 1)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask
from flask_babel import force_locale
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import CampaignStatus
from campaign.models.schedule import ScheduleRun
from campaign.scheduling.schedules import create_send_at
from campaign.scheduling.stored_text import read
from campaign.scheduling.tick import tick
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.sending import campaigns
from campaign.services.sending.campaigns import AudienceSpec
from campaign.services.statements import statements

# Line 3 refers to a footnote nobody defined.
FLAWED = "{{ salutation }}\n\nWe write about the trial.[^3]\n\n{{ closing }}\n\nAnna Sample\n"


def test_the_run_records_the_first_problems_with_statement_language_and_line(app: Flask) -> None:
    statement = statements.create_statement("Joint letter", language="en", subject="S", body=FLAWED)
    press = lists.create_list("Press")
    lists.add_contacts(press, [create_contact({"email": "a@example.org", "family_name": "X"}).id])
    campaign = campaigns.create_campaign(
        statement, name="Summit", audience=AudienceSpec((f"list:{press.id}",))
    )
    db.session.commit()
    create_send_at(
        campaign, "2027-06-26T09:00", "Europe/Paris", now=datetime(2027, 6, 1, tzinfo=UTC)
    )
    db.session.commit()
    report = tick(datetime(2027, 6, 26, 7, tzinfo=UTC))
    assert report.summary == "0 fired, 0 skipped, 1 failed"
    run = db.session.scalars(select(ScheduleRun)).one()
    detail = read(run.detail)
    assert "letters with errors for 1 contact" in detail
    assert (
        f"statement {statement.id} “Joint letter” (English), line 3 — Footnote not defined: "
        "the reader sees “[^3]” printed as it is" in detail
    )
    db.session.refresh(campaign)
    assert campaign.status == CampaignStatus.DRAFT
    assert "line 3" in read(campaign.status_reason)
    # Kept as a message: an officer reading in French reads it in French.
    with force_locale("fr"):
        assert "ligne 3" in read(run.detail)
