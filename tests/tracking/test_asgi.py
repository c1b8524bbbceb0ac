"""The tracking unit (`gunicorn -k asgi wsgi:tracking`) gives the web application's answers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import runpy
import threading
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from gunicorn.config import make_settings
from sqlalchemy import select, text

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


def _run_loop(coroutine: Any) -> Any:
    """asyncio.run in a thread of its own: a browser test of the same pytest worker may
    have left Playwright's event loop running in this thread."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _get(
    app: Flask, path: str, *, method: str = "GET", forwarded_for: str = "203.0.113.77"
) -> tuple[int, dict[str, str], bytes]:
    return _run_loop(_call(TrackingASGI(app.wsgi_app), path, method, forwarded_for))


async def _call(
    tracking: TrackingASGI,
    path: str,
    method: str = "GET",
    forwarded_for: str = "203.0.113.77",
    language: str = "en",
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
            (b"accept-language", language.encode()),
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

    await tracking(scope, receive, send)
    # The hit is pushed on the loop's next turn, with any others answered meanwhile.
    await tracking.hits.drain()
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


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_click_waiting_on_a_locked_link_table_holds_no_pixel_and_gets_a_retry_page(
    app: Flask,
) -> None:
    campaign, rows = send_campaign(1, opens=True, clicks=True)
    link = record_link(campaign.id, REPORT_URL)
    db.session.commit()
    ids = {"campaign_id": campaign.id, "delivery_id": rows[0].id}
    pixel = f"/t/o/{make_token(TrackingKind.OPEN, **ids)}.gif"
    click = f"/t/c/{make_token(TrackingKind.CLICK, **ids, link_id=link)}"
    tracking = TrackingASGI(app.wsgi_app)
    # A migration (or a long transaction) holds tracked_links while this process has not
    # cached the link yet.
    locker = db.engine.connect()
    locker.execute(text("LOCK TABLE tracked_links IN ACCESS EXCLUSIVE MODE"))
    # Only so that a click read on the event loop (the fault) ends the test: never reached.
    release = threading.Timer(5, locker.rollback)
    release.start()
    done: list[str] = []

    async def hit(name: str, path: str) -> tuple[int, dict[str, str], bytes]:
        answer = await _call(tracking, path, language="fr-CH,fr;q=0.9")
        done.append(name)
        return answer

    async def click_then_pixel() -> tuple[int, dict[str, str], bytes]:
        clicking = asyncio.create_task(hit("click", click))
        await asyncio.sleep(0)  # the click starts first
        await hit("pixel", pixel)
        return await clicking

    try:
        status, headers, body = _run_loop(click_then_pixel())
    finally:
        release.cancel()
        locker.rollback()
        locker.close()
    # The pixel did not wait on the click's read; the reader got a page saying try again.
    assert done == ["pixel", "click"]
    assert (status, headers["retry-after"], headers["cache-control"]) == (503, "5", "no-store")
    assert "Veuillez réessayer" in body.decode()  # in the reader's language
    # The lock gone, the same click redirects; the pixel and this click were counted,
    # never the click that got the 503.
    status, headers, _body = _run_loop(_call(tracking, click))
    assert (status, headers["location"]) == (302, REPORT_URL)
    assert get_redis().llen(buffer.hits_key()) == 2


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_link_recorded_with_non_latin_characters_is_sent_percent_encoded(app: Flask) -> None:
    campaign, rows = send_campaign(1, clicks=True)
    link = record_link(campaign.id, "https://example.org/отчёт 2024?q=права#итог")
    db.session.commit()
    ids = {"campaign_id": campaign.id, "delivery_id": rows[0].id}
    status, headers, _body = _get(
        app, f"/t/c/{make_token(TrackingKind.CLICK, **ids, link_id=link)}"
    )
    assert status == 302
    assert headers["location"] == (
        "https://example.org/%D0%BE%D1%82%D1%87%D1%91%D1%82%202024"
        "?q=%D0%BF%D1%80%D0%B0%D0%B2%D0%B0#%D0%B8%D1%82%D0%BE%D0%B3"
    )


def test_the_shipped_gunicorn_settings_open_no_control_socket() -> None:
    # Its default path ($HOME/.gunicorn) is read-only under ProtectSystem=strict, and the
    # web and tracking units would share it.
    settings = runpy.run_path(str(Path(__file__).parents[2] / "deploy" / "gunicorn.conf.py"))
    assert "control_socket_disable" in make_settings()
    assert settings["control_socket_disable"] is True
