"""Hits answered on the tracking unit's event loop, pushed one command per loop turn (0080)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from redis import Redis

from campaign.embedded_redis import EmbeddedRedis
from campaign.extensions import db
from campaign.models.tracking import TrackingKind
from campaign.queue import get_redis
from campaign.tracking import batch, buffer
from campaign.tracking.asgi import TrackingASGI
from campaign.tracking.tokens import make_token
from tests.tracking.conftest import CountedLost, send_campaign


def _run_loop(coroutine: Any) -> Any:
    """asyncio.run in a thread of its own (a browser test may hold this thread's loop)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _pixel(tracking: TrackingASGI, path: str) -> int:
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": b"",
        "headers": [(b"user-agent", b"mail client")],
        "client": ("198.51.100.7", 40000),
        "server": ("127.0.0.1", 8001),
    }
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await tracking(scope, receive, send)
    return statuses[0]


def _evalsha_calls() -> int:
    stats = get_redis().info("commandstats").get("cmdstat_evalsha") or {}
    return int(stats.get("calls", 0))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_hits_answered_together_are_pushed_together_and_each_is_stored_once(
    app: Flask,
) -> None:
    campaign, rows = send_campaign(4, opens=True)
    paths = [
        f"/t/o/{make_token(TrackingKind.OPEN, campaign_id=campaign.id, delivery_id=row.id)}.gif"
        for row in rows
    ] * 50
    tracking = TrackingASGI(app.wsgi_app)
    before = _evalsha_calls()

    async def readers() -> list[int]:
        statuses = await asyncio.gather(*(_pixel(tracking, path) for path in paths))
        await tracking.hits.drain()
        return statuses

    assert _run_loop(readers()) == [200] * 200
    # 200 hits answered in one loop turn: a command or two, not one each.
    assert _evalsha_calls() - before <= 2
    assert buffer.flush_hits(commit=db.session.commit).written == 200
    db.session.expire_all()
    assert all(row.opened_at is not None for row in rows)


def test_hits_answered_while_redis_is_away_are_kept_and_pushed_when_it_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "REDIS_RETRY_SECONDS", 0.05)
    server = EmbeddedRedis(tmp_path / "redis")
    process = server.start(daemonize=False)
    assert process is not None
    redis = Redis.from_url(server.url, socket_timeout=2)
    lost = CountedLost()
    queue = batch.HitQueue(max_pending=120)
    queue.configure(buffer.HitPusher(redis, "hits"), server.url, lost)
    hits = [
        buffer.new_hit(
            TrackingKind.OPEN,
            campaign_id=1,
            delivery_id=n,
            link_id=None,
            remote_addr="198.51.100.7",
            user_agent="mail client",
        )
        for n in range(250)
    ]

    async def outage() -> None:
        nonlocal process
        for hit in hits[:100]:
            queue.add(hit)
        await asyncio.sleep(0.2)  # pushed, and acknowledged by Redis
        assert process is not None
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        # Answered while Redis is away: 120 kept, the rest dropped and counted.
        for hit in hits[100:]:
            queue.add(hit)
        await asyncio.sleep(0.3)  # the pusher tries, fails, waits, tries again
        process = server.start(daemonize=False)
        await queue.drain(timeout=10)

    try:
        _run_loop(outage())
        stored = [buffer.decode_hit(raw) for raw in redis.lrange("hits", 0, -1)]
        assert sum(lost.noted) == 30 and not queue.pending
        assert [hit.delivery_id for hit in stored if hit] == list(range(220))
    finally:
        if process is not None:
            process.kill()
            process.wait(timeout=10)


def test_one_network_flooding_while_redis_is_away_does_not_crowd_out_other_readers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "REDIS_RETRY_SECONDS", 0.05)
    server = EmbeddedRedis(tmp_path / "redis")  # not started yet: Redis is away
    process = None
    redis = Redis.from_url(server.url, socket_timeout=2)
    lost = CountedLost()
    queue = batch.HitQueue(max_pending=1000)
    pusher = buffer.HitPusher(redis, "hits", per_minute=50, rate_prefix="rate:")
    queue.configure(pusher, server.url, lost)

    def hit(n: int, address: str) -> buffer.Hit:
        return buffer.new_hit(
            TrackingKind.OPEN,
            campaign_id=1,
            delivery_id=n,
            link_id=None,
            remote_addr=address,
            user_agent="mail client",
        )

    # 2,000 hits from one /24, and among them one each from 100 other readers' networks.
    flood = [hit(n, "203.0.113.9") for n in range(2000)]
    others = [hit(10_000 + n, f"10.0.{n}.1") for n in range(100)]
    hits = [h for n, h in enumerate(flood) for h in ([others[n // 20], h] if n % 20 == 0 else [h])]

    async def outage() -> None:
        nonlocal process
        queue.add(others[0])  # the pusher finds Redis away
        await asyncio.sleep(0.1)
        for one in hits[1:]:
            queue.add(one)
        process = server.start(daemonize=False)
        await queue.drain(timeout=10)

    try:
        _run_loop(outage())
        stored = [buffer.decode_hit(raw) for raw in redis.lrange("hits", 0, -1)]
        ids = [one.delivery_id for one in stored if one]
        assert sorted(n for n in ids if n >= 10_000) == list(range(10_000, 10_100))
        flooder = [n for n in ids if n < 10_000]
        assert 0 < len(flooder) <= 50
        assert sum(lost.noted) == 2000 - len(flooder) and not queue.pending
    finally:
        if process is not None:
            process.kill()
            process.wait(timeout=10)
