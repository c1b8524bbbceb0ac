"""Outside debug, a campaign cannot launch with addresses the internet cannot use.

A sender or Message-ID domain of localhost (or without a dot) and an unsubscribe address
that is empty, not https:// or this machine are errors; in debug (`campaign dev`) they stay
warnings. The page, `campaign send` and the launch itself share the one check.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from campaign.models import Campaign, CampaignStatus, Role
from campaign.services.sending import campaigns
from campaign.services.sending.campaigns import AudienceSpec, CampaignError
from tests.factories import CampaignFactory, StatementFactory
from tests.services.test_campaigns import BODY

GOOD = {"PUBLIC_URL": "https://campaign.example.org", "MESSAGE_ID_DOMAIN": ""}


def _campaign(from_address: str = "Office <office@example.org>", **options: Any) -> Campaign:
    """A draft to a@example.org whose closing names nobody (BODY)."""
    return CampaignFactory(statement__body=BODY, from_address=from_address, **options)


@pytest.mark.parametrize(
    ("settings", "from_address", "expected"),
    [
        ({}, "Campaign <campaign@localhost>", "From: the sender's domain (localhost)"),
        ({}, "Campaign <campaign@LocalHost>", "From: the sender's domain (localhost)"),
        ({}, "Campaign <campaign@intranet>", "From: the sender's domain (intranet)"),
        (
            {"MESSAGE_ID_DOMAIN": "localhost"},
            "Office <office@example.org>",
            "Message-ID: CAMPAIGN_MESSAGE_ID_DOMAIN (localhost)",
        ),
        ({"PUBLIC_URL": ""}, "Office <office@example.org>", "CAMPAIGN_PUBLIC_URL is not set"),
        (
            {"PUBLIC_URL": "http://campaign.example.org"},
            "Office <office@example.org>",
            "must start with https://",
        ),
        (
            {"PUBLIC_URL": "https://127.0.0.1:5000"},
            "Office <office@example.org>",
            "a private network (127.0.0.1)",
        ),
        (
            {"PUBLIC_URL": "https://localhost"},
            "Office <office@example.org>",
            "a private network (localhost)",
        ),
        # Addresses in other spellings, names only a local network knows, a broken port.
        ({}, "Campaign <c@127.0.0.1>", "From: the sender's domain (127.0.0.1)"),
        ({}, "Campaign <c@[192.0.2.1]>", "From: the sender's domain ([192.0.2.1])"),
        ({}, "Campaign <c@8.8.8.8>", "From: the sender's domain (8.8.8.8)"),
        (
            {},
            "Campaign <c@localhost.localdomain>",
            "From: the sender's domain (localhost.localdomain)",
        ),
        ({}, "Campaign <c@printer.local>", "From: the sender's domain (printer.local)"),
        ({}, "Campaign <c@office.lan>", "From: the sender's domain (office.lan)"),
        ({}, "Campaign <c@ngo.home.arpa>", "From: the sender's domain (ngo.home.arpa)"),
        ({}, "Campaign <c@ngo.test>", "From: the sender's domain (ngo.test)"),
        ({}, "Campaign <c@ngo.invalid>", "From: the sender's domain (ngo.invalid)"),
        (
            {"MESSAGE_ID_DOMAIN": "10.0.0.5"},
            "Office <office@example.org>",
            "Message-ID: CAMPAIGN_MESSAGE_ID_DOMAIN (10.0.0.5)",
        ),
        (
            {"MESSAGE_ID_DOMAIN": "mail.corp.internal"},
            "Office <office@example.org>",
            "Message-ID: CAMPAIGN_MESSAGE_ID_DOMAIN (mail.corp.internal)",
        ),
        (
            {"PUBLIC_URL": "https://127.1"},
            "Office <office@example.org>",
            "a private network (127.1)",
        ),
        (
            {"PUBLIC_URL": "https://0x7f.0.0.1"},
            "Office <office@example.org>",
            "a private network (0x7f.0.0.1)",
        ),
        (
            {"PUBLIC_URL": "https://campaign.internal"},
            "Office <office@example.org>",
            "a private network (campaign.internal)",
        ),
        (
            {"PUBLIC_URL": "https://campaign.localdomain"},
            "Office <office@example.org>",
            "a private network (campaign.localdomain)",
        ),
        (
            {"PUBLIC_URL": "https://c.example.org:99999"},
            "Office <office@example.org>",
            "Unsubscribe: CAMPAIGN_PUBLIC_URL (https://c.example.org:99999) has no valid port",
        ),
    ],
)
def test_outside_debug_an_address_the_internet_cannot_use_stops_the_launch(
    app: Flask, settings: dict[str, str], from_address: str, expected: str
) -> None:
    app.config.update(DEBUG=False, **{**GOOD, **settings})
    campaign = _campaign(from_address)
    errors = campaigns.check_campaign(campaign).errors
    assert [e for e in errors if expected in e], errors
    with pytest.raises(CampaignError, match=re.escape(expected)):
        campaigns.launch_campaign(campaign)
    assert campaign.status == CampaignStatus.DRAFT


def test_in_debug_the_same_addresses_are_warnings(app: Flask) -> None:
    # `campaign dev`: a sender on localhost and unsubscribe links to http://127.0.0.1.
    app.config.update(DEBUG=True, PUBLIC_URL="http://127.0.0.1:5000")
    campaign = _campaign("Campaign <campaign@localhost>")
    check = campaigns.check_campaign(campaign)
    assert check.errors == []
    assert any("From: the sender's domain (localhost)" in w for w in check.warnings)
    assert any("must start with https://" in w for w in check.warnings)
    assert campaigns.launch_campaign(campaign)


def test_a_letter_without_unsubscribe_or_tracking_needs_no_public_address(app: Flask) -> None:
    app.config.update(DEBUG=False, PUBLIC_URL="")
    campaign = _campaign(has_list_unsubscribe=False)
    assert campaigns.check_campaign(campaign).errors == []


@pytest.mark.parametrize(
    "public_url",
    [
        "https://campaign.example.org",
        "https://campaign.example.org:8443/app",
        "https://93.184.215.14",
    ],
)
def test_a_public_address_on_the_internet_passes(app: Flask, public_url: str) -> None:
    # A global address literal or an explicit port is unusual but reachable.
    app.config.update(DEBUG=False, **{**GOOD, "PUBLIC_URL": public_url})
    assert campaigns.check_campaign(_campaign()).errors == []


def test_a_real_domain_and_an_https_address_launch(app: Flask) -> None:
    app.config.update(DEBUG=False, **GOOD)
    campaign = _campaign()
    check = campaigns.check_campaign(campaign)
    assert check.errors == []
    assert not [w for w in check.warnings if "CAMPAIGN_PUBLIC_URL" in w or "domain (" in w]
    assert campaigns.launch_campaign(campaign)


def test_the_page_and_the_command_line_say_the_same_in_words(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    from campaign.extensions import db

    app.config.update(DEBUG=False, PUBLIC_URL="http://127.0.0.1:5000")
    campaign = _campaign("Campaign <campaign@localhost>")
    db.session.commit()
    login(Role.SENDER)
    page = client.get(f"/campaigns/{campaign.id}").get_data(as_text=True)
    assert "From: the sender&#39;s domain (localhost)" in page
    assert "must start with https://" in page
    refused = client.post(f"/campaigns/{campaign.id}/launch", follow_redirects=True)
    assert "Not launched:" in refused.get_data(as_text=True)

    runner: FlaskCliRunner = app.test_cli_runner()
    result = runner.invoke(args=["send", str(campaign.id)])
    assert result.exit_code == 2
    assert "From: the sender's domain (localhost)" in result.output
    assert "must start with https://" in result.output


def test_the_command_line_says_how_a_second_terminal_joins_campaign_dev(app: Flask) -> None:
    # `scripts/run` (campaign dev) in one terminal, `campaign send` in another: without
    # CAMPAIGN_DEBUG the second one is refused where the page only warned; it says why.
    from campaign.extensions import db

    app.config.update(DEBUG=False, PUBLIC_URL="")
    campaign = _campaign("Campaign <campaign@localhost>")
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["send", str(campaign.id)])
    assert result.exit_code == 2
    assert "`campaign dev` shows these as warnings" in result.output, result.output
    assert "export CAMPAIGN_DEBUG=true" in result.output


def test_a_refusal_for_other_reasons_gives_no_development_hint(app: Flask) -> None:
    from campaign.extensions import db

    app.config.update(DEBUG=False, **GOOD)
    campaign = _campaign(has_list_unsubscribe=False)
    campaign.audience = AudienceSpec(()).to_json()
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["send", str(campaign.id)])
    assert result.exit_code == 2
    assert "Audience: choose at least one list" in result.output
    assert "CAMPAIGN_DEBUG" not in result.output


def test_the_readmes_shell_steps_run_beside_campaign_dev() -> None:
    from campaign.config import PROJECT_ROOT

    readme = (PROJECT_ROOT / "README.md").read_text()
    steps = readme.split("From the shell", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    assert steps.index("export CAMPAIGN_DEBUG=true") < steps.index("campaign send")


# --- where the launch's check does not run: the worker's own settings, follow-up steps ------


def test_a_worker_without_a_usable_public_address_pauses_before_sending(app: Flask) -> None:
    from sqlalchemy import func, select

    from campaign.extensions import db
    from campaign.models import Delivery, DeliveryStatus
    from campaign.scheduling.stored_text import read
    from campaign.services.sending import batches as sending

    app.config.update(DEBUG=False, **GOOD)
    campaign = _campaign()
    assert campaigns.launch_campaign(campaign)
    db.session.commit()
    # The worker's machine has no CAMPAIGN_PUBLIC_URL: its unsubscribe links would point at
    # http://127.0.0.1:5000, where no recipient can unsubscribe.
    app.config.update(PUBLIC_URL="")
    result = sending.send_batch(campaign.id, worker="w1", commit=db.session.commit)
    db.session.expire_all()
    assert result.claimed == 0
    assert campaign.status == CampaignStatus.PAUSED
    reason = read(campaign.status_reason)
    assert "this worker's settings" in reason and "CAMPAIGN_PUBLIC_URL is not set" in reason
    queued = db.session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.campaign_id == campaign.id, Delivery.status == DeliveryStatus.QUEUED)
    )
    assert queued == 1


def test_a_follow_up_step_is_checked_like_a_launch(app: Flask) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select, update

    from campaign.extensions import db
    from campaign.models import Delivery, DeliveryStatus, FollowUpCondition, RunOutcome
    from campaign.scheduling.stored_text import read
    from campaign.scheduling.tick import tick
    from campaign.services.sending import followups
    from campaign.services.sending.followups import FollowUpError

    app.config.update(DEBUG=False, **GOOD)
    campaign = _campaign()
    assert campaigns.launch_campaign(campaign)
    db.session.execute(
        update(Delivery)
        .where(Delivery.campaign_id == campaign.id)
        .values(status=DeliveryStatus.SENT.value, sent_at=datetime.now(UTC) - timedelta(days=3))
    )
    step = followups.add_step(campaign, StatementFactory(body=BODY), 1, FollowUpCondition.NO_REPLY)
    db.session.commit()
    schedule = followups.schedule_of(step)
    assert schedule is not None and schedule.next_run_at is not None
    due = schedule.next_run_at

    app.config.update(PUBLIC_URL="http://127.0.0.1:5000")
    with pytest.raises(FollowUpError, match="follow-up 1 not sent: Unsubscribe:"):
        followups.fire_follow_up(schedule, due, due)
    db.session.rollback()
    lines = tick(due + timedelta(minutes=1)).lines
    assert [line.outcome for line in lines] == [RunOutcome.FAILED.value]
    assert "must start with https://" in read(lines[0].detail)
    letters = select(Delivery).where(Delivery.campaign_id == campaign.id, Delivery.step == 1)
    assert db.session.scalars(letters).all() == []
