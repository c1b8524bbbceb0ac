"""What the pixel and the click route refuse to count: campaigns without tracking, and floods.

The reader always gets the image (or the redirect): a broken image would only puzzle them,
and a link must keep working. What changes is what is recorded.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import Campaign, Delivery
from campaign.models.tracking import TrackingEvent, TrackingKind
from campaign.tracking import buffer
from campaign.tracking.tokens import make_token
from tests.fault_smtp import FaultSmtpServer
from tests.tracking.conftest import REPORT_URL, send_campaign
from tests.tracking.test_hits import _paths

LIMIT = 5


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    return {**app_overrides, "TRACKING_HITS_PER_MINUTE": LIMIT}


def _flush() -> buffer.FlushReport:
    return buffer.flush_hits(commit=db.session.commit)


def _events(campaign_id: int, kind: TrackingKind | None = None) -> int:
    query = select(func.count()).select_from(TrackingEvent)
    query = query.where(TrackingEvent.campaign_id == campaign_id)
    if kind is not None:
        query = query.where(TrackingEvent.kind == kind.value)
    return int(db.session.scalar(query) or 0)


def _open_path(row: Delivery) -> str:
    """The pixel a letter of `row`'s campaign would carry, signed with the app's key (what
    someone holding the key, or a letter from before tracking was turned off, sends us)."""
    token = make_token(TrackingKind.OPEN, campaign_id=row.campaign_id, delivery_id=row.id)
    return f"/t/o/{token}.gif"


def _is_pixel(response: Any) -> bool:
    return bool(response.status_code == 200 and response.data.startswith(b"GIF89a"))


def test_a_campaign_without_open_tracking_records_no_open(
    app: Flask, client: FlaskClient, fault_smtp: FaultSmtpServer
) -> None:
    campaign, rows = send_campaign(1, opens=False, clicks=True)
    _pixel, links = _paths(fault_smtp, rows[0])
    assert _pixel == ""  # its letters carry no pixel
    response = client.get(_open_path(rows[0]))
    assert _is_pixel(response)
    # A click is counted (click tracking is on), but it implies no open: opens are not
    # tracked for this campaign.
    assert client.get(links[REPORT_URL]).status_code == 302
    _flush()
    assert _events(campaign.id, TrackingKind.OPEN) == 0
    assert _events(campaign.id, TrackingKind.CLICK) == 1
    db.session.expire_all()
    row = db.session.get(Delivery, rows[0].id)
    assert row is not None and row.opened_at is None and row.clicked_at is not None


def test_tracking_turned_off_after_sending_records_nothing_more(
    app: Flask, client: FlaskClient, fault_smtp: FaultSmtpServer
) -> None:
    campaign, rows = send_campaign(1, opens=True, clicks=True)
    pixel, links = _paths(fault_smtp, rows[0])
    stored = db.session.get(Campaign, campaign.id)
    assert stored is not None
    stored.is_open_tracking = False
    stored.is_click_tracking = False
    db.session.commit()
    assert _is_pixel(client.get(pixel))
    clicked = client.get(links[REPORT_URL])
    assert clicked.status_code == 302 and clicked.headers["Location"] == REPORT_URL
    _flush()
    assert _events(campaign.id) == 0
    db.session.expire_all()
    row = db.session.get(Delivery, rows[0].id)
    assert row is not None and row.opened_at is None and row.clicked_at is None


def test_hits_beyond_the_limit_of_one_network_are_answered_but_not_recorded(
    app: Flask, client: FlaskClient, fault_smtp: FaultSmtpServer
) -> None:
    campaign, rows = send_campaign(1, opens=True, clicks=True)
    pixel, links = _paths(fault_smtp, rows[0])
    # Two addresses of one /24 share its limit.
    for n in range(LIMIT + 3):
        address = f"192.0.2.{10 + n % 2}"
        assert _is_pixel(client.get(pixel, environ_base={"REMOTE_ADDR": address}))
    # A click beyond the limit still takes the reader to the page.
    beyond = client.get(links[REPORT_URL], environ_base={"REMOTE_ADDR": "192.0.2.200"})
    assert beyond.status_code == 302 and beyond.headers["Location"] == REPORT_URL
    # Another network has its own allowance; so does an IPv6 /48.
    assert _is_pixel(client.get(pixel, environ_base={"REMOTE_ADDR": "198.51.100.7"}))
    for n in range(LIMIT + 2):
        address = f"2001:db8:1:{n}::1"
        assert _is_pixel(client.get(pixel, environ_base={"REMOTE_ADDR": address}))
    _flush()
    by_network = dict(
        db.session.execute(
            select(TrackingEvent.ip_prefix, func.count())
            .where(TrackingEvent.campaign_id == campaign.id)
            .group_by(TrackingEvent.ip_prefix)
        ).all()
    )
    assert by_network == {"192.0.2.0/24": LIMIT, "198.51.100.0/24": 1, "2001:db8:1::/48": LIMIT}


def test_the_limit_is_per_minute(
    app: Flask, client: FlaskClient, fault_smtp: FaultSmtpServer
) -> None:
    campaign, rows = send_campaign(1, opens=True)
    pixel, _ = _paths(fault_smtp, rows[0])
    for _ in range(LIMIT + 1):
        client.get(pixel, environ_base={"REMOTE_ADDR": "203.0.113.5"})
    # The network's count lasts a minute at most; once it has expired the network starts
    # afresh (expiry stood in for by deleting the key, rather than waiting a minute).
    redis = buffer.buffer_redis()
    (counter,) = redis.scan_iter(f"{buffer.rate_key_prefix()}*")
    assert 0 < redis.ttl(counter) <= 60
    redis.delete(counter)
    client.get(pixel, environ_base={"REMOTE_ADDR": "203.0.113.5"})
    _flush()
    assert _events(campaign.id) == LIMIT + 1
