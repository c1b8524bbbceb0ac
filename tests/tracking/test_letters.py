"""What tracking changes in the letters sent: nothing when off; when on, the HTML part only."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.models.tracking import TrackedLink, TrackingKind
from campaign.tracking.tokens import read_token
from tests.fault_smtp import FaultSmtpServer
from tests.tracking.conftest import PUBLIC_URL, REPORT_URL, part, send_campaign, sent_message

_HREFS = re.compile(r'href="([^"]*)"')
_PIXEL = re.compile(r'<img src="([^"]*)" alt="" width="1" height="1">')


def test_with_tracking_off_letters_have_no_pixel_and_their_own_links(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    _campaign, rows = send_campaign(2)
    for row in rows:
        message = sent_message(fault_smtp, row)
        html = part(message, "html")
        assert "/t/" not in message.as_string()
        assert not _PIXEL.search(html)
        assert "https://example.org/report?year=2024&amp;lang=en" in html
        assert "http://example.net/appeal" in html
    assert db.session.scalars(select(TrackedLink)).all() == []


def test_with_opens_on_the_html_part_carries_a_pixel_of_its_own_delivery(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    campaign, rows = send_campaign(2, opens=True)
    for row in rows:
        message = sent_message(fault_smtp, row)
        html, text = part(message, "html"), part(message, "plain")
        (pixel,) = _PIXEL.findall(html)
        assert pixel.startswith(f"{PUBLIC_URL}/t/o/") and pixel.endswith(".gif")
        token = read_token(pixel.removeprefix(f"{PUBLIC_URL}/t/o/").removesuffix(".gif"))
        assert token is not None
        assert (token.kind, token.campaign_id, token.delivery_id) == (
            TrackingKind.OPEN,
            campaign.id,
            row.id,
        )
        assert html.index(pixel) < html.index("</body>")
        assert "/t/" not in text
        # Opens only: the links are the real ones.
        assert "http://example.net/appeal" in _HREFS.findall(html)


def test_with_clicks_on_web_links_go_through_recorded_redirects(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    campaign, rows = send_campaign(2, clicks=True)
    links = {
        link.url: link.id
        for link in db.session.scalars(
            select(TrackedLink).where(TrackedLink.campaign_id == campaign.id)
        )
    }
    # One row per URL for the whole campaign, not one per letter.
    assert set(links) == {REPORT_URL, "http://example.net/appeal"}
    for row in rows:
        message = sent_message(fault_smtp, row)
        html, text = part(message, "html"), part(message, "plain")
        hrefs = _HREFS.findall(html)
        tracked = [h for h in hrefs if h.startswith(f"{PUBLIC_URL}/t/c/")]
        assert len(tracked) == 2
        targets = set()
        for href in tracked:
            token = read_token(href.removeprefix(f"{PUBLIC_URL}/t/c/"))
            assert token is not None and token.delivery_id == row.id
            assert token.campaign_id == campaign.id
            targets.add(token.link_id)
        assert targets == set(links.values())
        # Not rewritten: mail addresses and links to this app (the unsubscribe page).
        assert "mailto:office@example.org" in hrefs
        assert f"{PUBLIC_URL}/u/some-token" in hrefs
        assert REPORT_URL not in html.replace("&amp;", "&")
        assert not _PIXEL.search(html)  # clicks only: no pixel
        # The text part keeps the real addresses.
        assert REPORT_URL in text and "/t/c/" not in text


def test_a_second_campaign_gets_its_own_link_rows(app: Flask, fault_smtp: FaultSmtpServer) -> None:
    first, _ = send_campaign(1, clicks=True)
    second, _ = send_campaign(1, clicks=True)
    urls = db.session.execute(
        select(TrackedLink.campaign_id, TrackedLink.url).order_by(TrackedLink.id)
    ).all()
    assert sorted(urls) == sorted(
        [
            (first.id, REPORT_URL),
            (first.id, "http://example.net/appeal"),
            (second.id, REPORT_URL),
            (second.id, "http://example.net/appeal"),
        ]
    )


def test_a_worker_without_a_usable_public_address_sends_untracked_letters(
    app: Flask, fault_smtp: FaultSmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The web app that launched had CAMPAIGN_PUBLIC_URL; the worker that sends has not.
    # Links to 127.0.0.1 would be dead in every letter. In debug the worker sends without
    # tracking; outside debug it pauses the campaign instead (tests/test_launch_checks.py).
    campaign, rows = send_campaign(
        2, opens=True, clicks=True, worker_config={"PUBLIC_URL": "", "DEBUG": True}
    )
    for row in rows:
        html = part(sent_message(fault_smtp, row), "html")
        assert "/t/" not in html and not _PIXEL.search(html)
        assert "http://example.net/appeal" in _HREFS.findall(html)
        assert "127.0.0.1" not in html
    assert db.session.scalars(select(TrackedLink)).all() == []
    warnings = [
        r.getMessage() for r in caplog.records if r.name == "campaign.services.sending.batches"
    ]
    assert any(
        f"campaign {campaign.id}" in w
        and "without open and click tracking" in w
        and "CAMPAIGN_PUBLIC_URL" in w
        for w in warnings
    ), warnings
