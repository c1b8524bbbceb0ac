"""Opening and clicking a tracked letter: the public routes, the Redis buffer and the flush."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import Delivery
from campaign.models.tracking import TrackedLink, TrackingEvent, TrackingKind
from campaign.queue import get_redis
from campaign.tracking import buffer
from campaign.tracking.links import record_link
from campaign.tracking.stats import tracking_counts
from campaign.tracking.tokens import make_token, read_token
from tests.fault_smtp import FaultSmtpServer
from tests.tracking.conftest import PUBLIC_URL, REPORT_URL, part, send_campaign, sent_message

_HREFS = re.compile(r'href="([^"]*)"')
_PIXEL = re.compile(r'<img src="([^"]*)" alt="" width="1" height="1">')


def _paths(fault_smtp: FaultSmtpServer, row: Delivery) -> tuple[str, dict[str, str]]:
    """(the pixel's path, {real URL: click path}) from the letter `row` received."""
    html = part(sent_message(fault_smtp, row), "html")
    pixel = next(iter(_PIXEL.findall(html)), "")  # "" when the campaign counts no opens
    clicks = [h for h in _HREFS.findall(html) if h.startswith(f"{PUBLIC_URL}/t/c/")]
    links = {
        link.id: link.url
        for link in db.session.scalars(
            select(TrackedLink).where(TrackedLink.campaign_id == row.campaign_id)
        )
    }
    by_url = {}
    for href in clicks:
        token = read_token(href.rsplit("/", 1)[1])
        assert token is not None and token.link_id is not None
        by_url[links[token.link_id]] = href.removeprefix(PUBLIC_URL)
    return pixel.removeprefix(PUBLIC_URL), by_url


def _flush() -> buffer.FlushReport:
    return buffer.flush_hits(commit=db.session.commit)


def _events(**where: Any) -> int:
    query = select(func.count()).select_from(TrackingEvent)
    for name, value in where.items():
        query = query.where(getattr(TrackingEvent, name) == value)
    return int(db.session.scalar(query) or 0)


def test_opens_and_clicks_are_counted_after_a_flush(
    app: Flask, client: FlaskClient, fault_smtp: FaultSmtpServer
) -> None:
    campaign, rows = send_campaign(3, opens=True, clicks=True)
    pixel, links = _paths(fault_smtp, rows[0])
    for _ in range(3):
        response = client.get(pixel, headers={"User-Agent": "Mail/1.0"})
        assert response.status_code == 200
        assert response.mimetype == "image/gif" and response.data.startswith(b"GIF89a")
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "Set-Cookie" not in response.headers
    response = client.get(links[REPORT_URL])
    assert response.status_code == 302
    assert response.headers["Location"] == REPORT_URL
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "Set-Cookie" not in response.headers
    # The second recipient only clicks (their mail client blocked the pixel).
    _, other_links = _paths(fault_smtp, rows[1])
    assert client.get(other_links["http://example.net/appeal"]).status_code == 302

    # Nothing is in the database until the flush; everything is after it.
    assert _events() == 0
    report = _flush()
    assert report.written == 5
    counts = tracking_counts(campaign.id)
    assert counts.opens == 3 and counts.unique_opens == 2  # a click implies an open
    assert counts.clicks == 2 and counts.unique_clicks == 2
    per_link = {link.url: link.clicks for link in counts.links}
    assert per_link == {REPORT_URL: 1, "http://example.net/appeal": 1}
    db.session.expire_all()
    first, second, third = (db.session.get(Delivery, row.id) for row in rows)
    assert first is not None and second is not None and third is not None
    assert first.opened_at is not None and first.clicked_at is not None
    assert second.opened_at is not None and second.clicked_at is not None
    assert third.opened_at is None and third.clicked_at is None
    agents = set(
        db.session.scalars(select(TrackingEvent.user_agent).where(TrackingEvent.kind == "open"))
    )
    assert agents == {"Mail/1.0"}


def test_n_hits_make_n_events_and_a_second_flush_adds_none(
    app: Flask, client: FlaskClient, fault_smtp: FaultSmtpServer
) -> None:
    _campaign, rows = send_campaign(1, opens=True, clicks=True)
    pixel, links = _paths(fault_smtp, rows[0])
    for _ in range(7):
        client.get(pixel)
    for _ in range(5):
        client.get(links[REPORT_URL])
    first = _flush()
    second = _flush()
    assert (first.written, second.written) == (12, 0)
    assert _events(kind="open") == 7 and _events(kind="click") == 5


def test_a_flush_in_small_batches_stores_every_hit_once(
    app: Flask, client: FlaskClient, fault_smtp: FaultSmtpServer
) -> None:
    _campaign, rows = send_campaign(1, opens=True)
    pixel, _ = _paths(fault_smtp, rows[0])
    for _ in range(25):
        client.get(pixel)
    report = buffer.flush_hits(commit=db.session.commit, batch_size=4)
    assert report.written == 25 and _events() == 25
    assert get_redis().llen(buffer.hits_key()) == 0


def test_a_flush_interrupted_after_its_commit_stores_nothing_twice(
    app: Flask, client: FlaskClient, fault_smtp: FaultSmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _campaign, rows = send_campaign(1, opens=True)
    pixel, _ = _paths(fault_smtp, rows[0])
    for _ in range(6):
        client.get(pixel)

    redis = get_redis()
    original_delete = Redis.delete

    def crash_on_processing_delete(self: Redis, *names: Any) -> Any:
        if any(b":processing:" in (n if isinstance(n, bytes) else n.encode()) for n in names):
            raise ConnectionError("the flusher died after its commit")
        return original_delete(self, *names)

    monkeypatch.setattr(Redis, "delete", crash_on_processing_delete)
    with pytest.raises(ConnectionError):
        _flush()
    monkeypatch.undo()
    assert _events() == 6  # committed before the crash

    for _ in range(2):
        client.get(pixel)  # more hits meanwhile
    report = _flush()
    assert report.recovered_lists == 1
    assert report.duplicates == 6 and report.written == 2
    assert _events() == 8
    assert not list(redis.scan_iter(f"{buffer.hits_key().rsplit(':', 1)[0]}:processing:*"))


def test_hits_left_by_a_killed_flusher_are_written_by_the_next_flush(
    app: Flask, client: FlaskClient, fault_smtp: FaultSmtpServer
) -> None:
    _campaign, rows = send_campaign(1, opens=True)
    pixel, _ = _paths(fault_smtp, rows[0])
    for _ in range(4):
        client.get(pixel)
    # What a flusher SIGKILLed before its commit leaves: its hits moved to its processing
    # list, itself registered, its liveness key expired.
    redis = get_redis()
    prefix = buffer.hits_key().rsplit(":", 1)[0]
    redis.lmove(buffer.hits_key(), f"{prefix}:processing:dead", "LEFT", "RIGHT")
    redis.lmove(buffer.hits_key(), f"{prefix}:processing:dead", "LEFT", "RIGHT")
    redis.sadd(f"{prefix}:flushers", "dead")
    report = _flush()
    assert report.recovered_lists == 1 and report.written == 4
    assert _events() == 4


def test_a_running_flusher_s_list_is_left_to_it(
    app: Flask, client: FlaskClient, fault_smtp: FaultSmtpServer
) -> None:
    _campaign, rows = send_campaign(1, opens=True)
    pixel, _ = _paths(fault_smtp, rows[0])
    client.get(pixel)
    redis = get_redis()
    prefix = buffer.hits_key().rsplit(":", 1)[0]
    redis.lmove(buffer.hits_key(), f"{prefix}:processing:busy", "LEFT", "RIGHT")
    redis.sadd(f"{prefix}:flushers", "busy")
    redis.set(f"{prefix}:alive:busy", "1", ex=60)
    assert _flush().written == 0
    redis.delete(f"{prefix}:alive:busy")
    assert _flush().written == 1


def test_the_stored_address_is_a_network_never_the_reader_s_address(
    app: Flask, client: FlaskClient, fault_smtp: FaultSmtpServer
) -> None:
    _campaign, rows = send_campaign(1, opens=True)
    pixel, _ = _paths(fault_smtp, rows[0])
    client.get(pixel, environ_base={"REMOTE_ADDR": "203.0.113.77"})
    client.get(pixel, environ_base={"REMOTE_ADDR": "2001:db8:1234:5678::9"})
    _flush()
    prefixes = set(db.session.scalars(select(TrackingEvent.ip_prefix)))
    assert prefixes == {"203.0.113.0/24", "2001:db8:1234::/48"}
    raw = b"".join(get_redis().lrange(buffer.hits_key(), 0, -1))
    assert b"203.0.113.77" not in raw


@pytest.mark.parametrize(
    ("address", "stored"),
    [
        ("198.51.100.250", "198.51.100.0/24"),
        ("::ffff:198.51.100.250", "198.51.100.0/24"),
        ("2001:db8:abcd:12::1", "2001:db8:abcd::/48"),
        ("fe80::1%eth0", "fe80::/48"),
        ("not an address", ""),
        (None, ""),
    ],
)
def test_ip_prefix(address: str | None, stored: str) -> None:
    assert buffer.ip_prefix(address) == stored


def test_a_click_goes_only_to_a_url_recorded_for_its_campaign(
    app: Flask, client: FlaskClient, fault_smtp: FaultSmtpServer
) -> None:
    first, rows = send_campaign(1, clicks=True)
    second, _ = send_campaign(1, clicks=True)
    _, links = _paths(fault_smtp, rows[0])
    other_campaign_link = record_link(second.id, "https://elsewhere.example/")
    db.session.commit()
    attempts = [
        # A correctly signed token naming another campaign's link.
        make_token(
            TrackingKind.CLICK,
            campaign_id=first.id,
            delivery_id=rows[0].id,
            link_id=other_campaign_link,
        ),
        # A link id that does not exist.
        make_token(
            TrackingKind.CLICK, campaign_id=first.id, delivery_id=rows[0].id, link_id=999_999
        ),
        # An open token used as a click.
        make_token(TrackingKind.OPEN, campaign_id=first.id, delivery_id=rows[0].id),
        # A real click token with one character changed, and plain garbage.
        _tamper(links[REPORT_URL].rsplit("/", 1)[1]),
        "https:%2F%2Fevil.example",
    ]
    for token in attempts:
        response = client.get(f"/t/c/{token}")
        assert response.status_code == 404, token
        assert "Location" not in response.headers
    assert client.get("/t/c/?next=https://evil.example").status_code == 404
    assert get_redis().llen(buffer.hits_key()) == 0  # nothing recorded for any of them


def test_a_garbled_open_token_still_gets_the_image_but_counts_nothing(
    app: Flask, client: FlaskClient
) -> None:
    response = client.get("/t/o/garbled.gif")
    assert response.status_code == 200 and response.mimetype == "image/gif"
    assert get_redis().llen(buffer.hits_key()) == 0


def _tamper(token: str) -> str:
    return token[:5] + ("A" if token[5] != "A" else "B") + token[6:]


def test_with_redis_down_a_click_still_redirects_and_the_pixel_still_loads(
    app: Flask, client: FlaskClient, fault_smtp: FaultSmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    _campaign, rows = send_campaign(1, opens=True, clicks=True)
    pixel, links = _paths(fault_smtp, rows[0])
    # Nothing listens on port 1: every Redis call fails at once.
    app.extensions["campaign_tracking_redis"] = Redis.from_url(
        "redis://127.0.0.1:1/0", socket_connect_timeout=0.5
    )
    response = client.get(links[REPORT_URL], environ_base={"REMOTE_ADDR": "192.0.2.55"})
    assert response.status_code == 302 and response.headers["Location"] == REPORT_URL
    assert client.get(pixel).status_code == 200
    warnings = [r.getMessage() for r in caplog.records if r.name == "campaign.tracking.wsgi"]
    # One warning for the first lost hit; the next are counted into the next one, a minute
    # on (tests/tracking/test_fast_path.py).
    assert len(warnings) == 1 and "1 tracking hit(s) not recorded" in warnings[0]
    assert not any("192.0.2" in w for w in warnings)


def test_campaign_flush_tracking_prints_how_many_events_it_wrote(
    app: Flask, client: FlaskClient, fault_smtp: FaultSmtpServer
) -> None:
    _campaign, rows = send_campaign(1, opens=True)
    pixel, _ = _paths(fault_smtp, rows[0])
    for _ in range(3):
        client.get(pixel)
    result = app.test_cli_runner().invoke(args=["flush-tracking"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "3 events written"
    assert _events() == 3
    again = app.test_cli_runner().invoke(args=["flush-tracking"])
    assert again.output.strip() == "0 events written"


def test_two_workers_recording_the_same_new_link_at_once_share_one_row(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    campaign, _ = send_campaign(1, clicks=True)
    campaign_id = campaign.id
    barrier = threading.Barrier(4)
    ids: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        with app.app_context():
            try:
                barrier.wait()
                ids.append(record_link(campaign_id, "https://example.org/new"))
                db.session.commit()
            except BaseException as error:  # reported below, in the test's thread
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(ids) == 4 and len(set(ids)) == 1
    rows = db.session.scalar(
        select(func.count())
        .select_from(TrackedLink)
        .where(TrackedLink.url == "https://example.org/new")
    )
    assert rows == 1


def test_a_head_request_gets_the_same_answer_but_counts_nothing(
    app: Flask, client: FlaskClient, fault_smtp: FaultSmtpServer
) -> None:
    # Link scanners (mail security gateways, chat previews) check links with HEAD.
    _campaign, rows = send_campaign(1, opens=True, clicks=True)
    pixel, links = _paths(fault_smtp, rows[0])
    image = client.head(pixel)
    assert image.status_code == 200 and image.mimetype == "image/gif"
    assert image.data == b""
    click = client.head(links[REPORT_URL])
    assert click.status_code == 302 and click.headers["Location"] == REPORT_URL
    assert get_redis().llen(buffer.hits_key()) == 0
    assert _flush().written == 0
    db.session.expire_all()
    delivery = db.session.get(Delivery, rows[0].id)
    assert delivery is not None and delivery.opened_at is None and delivery.clicked_at is None
    # The reader's own GETs are counted as ever.
    client.get(pixel)
    client.get(links[REPORT_URL])
    assert _flush().written == 2
    assert _events(kind="open") == 1 and _events(kind="click") == 1


def test_a_full_buffer_drops_hits_with_one_warning_and_takes_them_again_after_a_flush(
    app: Flask,
    client: FlaskClient,
    fault_smtp: FaultSmtpServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # No flusher runs (workers down): the list must stop growing before Redis's memory does.
    monkeypatch.setattr(buffer, "MAX_BUFFERED_HITS", 3)
    _campaign, rows = send_campaign(1, opens=True, clicks=True)
    pixel, links = _paths(fault_smtp, rows[0])
    for _ in range(5):
        assert client.get(pixel).status_code == 200
    # The reader's click still goes through when its hit cannot be kept.
    response = client.get(links[REPORT_URL])
    assert response.status_code == 302 and response.headers["Location"] == REPORT_URL
    assert get_redis().llen(buffer.hits_key()) == 3
    warnings = [r.getMessage() for r in caplog.records if r.name == "campaign.tracking.buffer"]
    assert len(warnings) == 1, warnings  # three drops, one warning
    assert "buffer full" in warnings[0] and "flush" in warnings[0]
    # Every kept hit is stored, once; with room again, hits are kept again.
    assert _flush().written == 3
    client.get(links[REPORT_URL])
    assert _flush().written == 1
    assert _events(kind="open") == 3 and _events(kind="click") == 1


def test_the_full_buffer_warning_counts_what_was_dropped_since_the_last_one(
    app: Flask, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(buffer.time, "monotonic", lambda: clock[0])
    pusher = buffer.HitPusher(get_redis(), buffer.hits_key(), cap=1)
    hit = buffer.new_hit(
        TrackingKind.OPEN,
        campaign_id=1,
        delivery_id=1,
        link_id=None,
        remote_addr=None,
        user_agent="",
    )
    assert pusher.push(hit)
    assert [pusher.push(hit) for _ in range(4)] == [False] * 4
    clock[0] += buffer.RARE_WARNING_SECONDS
    assert not pusher.push(hit)
    warnings = [r.getMessage() for r in caplog.records if r.name == "campaign.tracking.buffer"]
    assert len(warnings) == 2
    assert "1 hit(s) dropped" in warnings[0] and "4 hit(s) dropped" in warnings[1]
