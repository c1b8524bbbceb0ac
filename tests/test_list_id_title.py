"""List-Id after review (issue 14, item 7): it names the statement (what recipients read
as the letter's title), never the campaign's internal name, and stays the same for the
whole campaign even when the statement is edited after the launch."""

from __future__ import annotations

import email
import email.policy
import uuid
from typing import Any

import pytest
from flask import Flask

from campaign.extensions import db
from campaign.models import Campaign
from tests.factories import CampaignFactory
from tests.fault_smtp import FaultSmtpServer
from tests.test_dkim import FROM, LETTER, _send_all


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], fault_smtp: FaultSmtpServer) -> dict[str, Any]:
    return {
        **app_overrides,
        "MAIL_SERVER": fault_smtp.host,
        "MAIL_PORT": fault_smtp.port,
        "MAIL_TIMEOUT": 10,  # no stall tested: a loaded 3-worker run can take > 1 s
        "MAIL_DEFAULT_SENDER": FROM,
        "PUBLIC_URL": "https://campaign.example.org",
        "QUEUE_NAME": f"test-{uuid.uuid4().hex[:12]}",
    }


def test_list_id_names_the_statement_not_the_internal_campaign_name(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    campaign = CampaignFactory(
        **LETTER,
        recipients=[f"p{n}@example.net" for n in range(2)],
        launched=True,
        commit=True,
    )
    stored = db.session.get(Campaign, campaign.id)
    assert stored is not None
    # Renamed and retitled after the launch: the letters keep the launched title.
    stored.name = "Test run — Joe's private list (do not send)"
    stored.statement.title = "Changed after the launch"
    db.session.commit()
    _send_all(campaign.id)
    values = {
        str(email.message_from_bytes(m.raw, policy=email.policy.default)["List-Id"])
        for m in fault_smtp.messages
    }
    assert len(fault_smtp.messages) == 2
    assert values == {f"Joint letter <campaign-{campaign.id}.lists.example.org>"}
