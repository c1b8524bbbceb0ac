"""The tracking unit (`gunicorn -k asgi wsgi:tracking`) gives the web application's answers."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.models.tracking import TrackingEvent, TrackingKind
from campaign.queue import get_redis
from campaign.tracking import buffer
from campaign.tracking.asgi import TrackingASGI
from campaign.tracking.links import record_link
from campaign.tracking.tokens import make_token
from tests.tracking.conftest import REPORT_URL, send_campaign


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    # Behind nginx: the reader's network comes from X-Forwarded-For, as on the web unit.
    return {**app_overrides, "TRUSTED_PROXIES": 1}


def _get(
    app: Flask, path: str, *, method: str = "GET", forwarded_for: str = "203.0.113.77"
) -> tuple[int, dict[str, str], bytes]:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"host", b"campaign.example.org"),
            (b"user-agent", b"mail client"),
            (b"x-forwarded-for", forwarded_for.encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8001),
        "scheme": "http",
        "http_version": "1.1",
    }
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    asyncio.run(TrackingASGI(app.wsgi_app)(scope, receive, send))
    start, body = sent
    headers = {name.decode(): value.decode() for name, value in start["headers"]}
    return start["status"], headers, body["body"]


def test_the_tracking_unit_counts_opens_and_clicks_and_refuses_the_rest(app: Flask) -> None:
    campaign, rows = send_campaign(1, opens=True, clicks=True)
    link = record_link(campaign.id, REPORT_URL)
    db.session.commit()
    ids = {"campaign_id": campaign.id, "delivery_id": rows[0].id}
    pixel = f"/t/o/{make_token(TrackingKind.OPEN, **ids)}.gif"
    click = f"/t/c/{make_token(TrackingKind.CLICK, **ids, link_id=link)}"

    status, headers, body = _get(app, pixel)
    assert (status, headers["content-type"], body[:6]) == (200, "image/gif", b"GIF89a")
    assert headers["cache-control"] == "no-store" and "strict-transport-security" in headers
    status, headers, body = _get(app, click)
    assert (status, headers["location"], body) == (302, REPORT_URL, b"")
    # Counted nothing: a forged token, a HEAD, another campaign's link, a staff page.
    assert _get(app, pixel[:-8] + "AAAA.gif")[0] == 200
    assert _get(app, click, method="HEAD")[0] == 302
    other = make_token(TrackingKind.CLICK, **ids, link_id=link + 1000)
    assert _get(app, f"/t/c/{other}")[0] == 404
    for path in ("/login", "/", "/t/x"):
        assert _get(app, path)[0] == 404
    assert _get(app, pixel, method="POST")[0] == 404

    assert get_redis().llen(buffer.hits_key()) == 2
    assert buffer.flush_hits(commit=db.session.commit).written == 2
    events = db.session.execute(select(TrackingEvent.kind, TrackingEvent.ip_prefix)).all()
    # The reader's network, from the proxy's header, never the proxy's own address.
    assert sorted(events) == [("click", "203.0.113.0/24"), ("open", "203.0.113.0/24")]
