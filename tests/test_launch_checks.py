"""Outside debug, a campaign cannot launch with addresses the internet cannot use.

A sender or Message-ID domain of localhost (or without a dot) and an unsubscribe address
that is empty, not https:// or this machine are errors; in debug (`campaign dev`) they stay
warnings. The page, `campaign send` and the launch itself share the one check.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from campaign.models import Campaign, CampaignStatus, Role
from campaign.services import campaigns
from campaign.services.campaigns import AudienceSpec, CampaignError
from tests.services.test_campaigns import _list, _statement

GOOD = {"PUBLIC_URL": "https://campaign.example.org", "MESSAGE_ID_DOMAIN": ""}


def _campaign(from_address: str = "Office <office@example.org>", **options: Any) -> Campaign:
    press = _list("Press", ["a@example.org"])
    return campaigns.create_campaign(
        _statement(),
        audience=AudienceSpec((f"list:{press.id}",)),
        from_address=from_address,
        **options,
    )


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
    ],
)
def test_outside_debug_an_address_the_internet_cannot_use_stops_the_launch(
    app: Flask, settings: dict[str, str], from_address: str, expected: str
) -> None:
    app.config.update(DEBUG=False, **{**GOOD, **settings})
    campaign = _campaign(from_address)
    errors = campaigns.check_campaign(campaign).errors
    assert [e for e in errors if expected in e], errors
    with pytest.raises(CampaignError, match=expected.replace("(", r"\(").replace(")", r"\)")):
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
