"""What a push meets in production besides a dead Redis: a failover that leaves the old
primary answering READONLY, a Redis out of memory, and the warnings that count the hits lost.

Both pushers are tried: the tracking unit's (batch.HitQueue, on an event loop) and the web
unit's (buffer.HitPusher, one connection per thread, through the WSGI middleware).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from redis import Redis

from campaign.embedded_redis import EmbeddedRedis
from campaign.models.tracking import TrackingKind
from campaign.tracking import batch, buffer, wsgi
from campaign.tracking.tokens import make_token
from tests import servers
from tests.tracking.conftest import CountedLost

KEY = "hits"
RETRY_SECONDS = 0.05
LOST_LOGGER = "tests.tracking.push_failures"


def _run_loop(coroutine: Any) -> Any:
    """asyncio.run in a thread of its own (a browser test may hold this thread's loop)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _hit(n: int) -> buffer.Hit:
    return buffer.new_hit(
        TrackingKind.OPEN,
        campaign_id=1,
        delivery_id=n,
        link_id=None,
        remote_addr="198.51.100.7",
        user_agent="mail client",
    )


def _stored(redis: Redis) -> list[int]:
    """The delivery ids of the hits Redis holds, in order (each hit once per push)."""
    hits = [buffer.decode_hit(raw) for raw in redis.lrange(KEY, 0, -1)]
    return [hit.delivery_id for hit in hits if hit is not None]


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait on the loop (its pusher runs meanwhile) until `condition` holds."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"still waiting for {what}")


# --- a failover behind one name --------------------------------------------------------------


@dataclass
class Failover:
    """Two Redis servers behind one name (a symlinked unix socket, as a DNS name or a
    Sentinel-managed address would be): `fail_over` makes the old primary a replica, which
    keeps its clients' connections and answers their writes READONLY, and points the name at
    the new primary."""

    old: servers.RedisServer
    new: servers.RedisServer
    link: Path

    @property
    def url(self) -> str:
        return f"unix://{self.link}?password=test-redis-password"

    @staticmethod
    def socket(server: servers.RedisServer) -> str:
        return server.url.split("?")[0].removeprefix("unix://")

    def fail_over(self) -> None:
        # Port 1: no master ever answers; the old server stays a read-only replica.
        Redis.from_url(self.old.url).replicaof("127.0.0.1", 1)
        self.link.unlink()
        self.link.symlink_to(self.socket(self.new))


@pytest.fixture
def failover() -> Iterator[Failover]:
    old = servers.start_redis()
    new = servers.start_redis()
    # A short path of its own: a unix socket's path must fit in about 100 bytes.
    directory = Path(tempfile.mkdtemp(prefix="failover-"))
    link = directory / "redis.sock"
    link.symlink_to(Failover.socket(old))
    try:
        yield Failover(old, new, link)
    finally:
        old.stop()
        new.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_hits_on_the_event_loop_go_to_the_new_primary_after_a_failover(
    failover: Failover, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "REDIS_RETRY_SECONDS", RETRY_SECONDS)
    old, new = Redis.from_url(failover.old.url), Redis.from_url(failover.new.url)
    lost = CountedLost()
    queue = batch.HitQueue(max_pending=1000)
    queue.configure(buffer.HitPusher(Redis.from_url(failover.url), KEY), failover.url, lost)

    async def readers() -> None:
        queue.add(_hit(0))
        await _until(lambda: old.llen(KEY) == 1, "the first hit on the old primary")
        failover.fail_over()
        for n in range(1, 300):
            queue.add(_hit(n))
            if n % 30 == 0:
                await asyncio.sleep(RETRY_SECONDS)
        await queue.drain(timeout=10)

    _run_loop(readers())
    # Every hit answered after the failover is on the new primary, once, in order; none
    # lost, none left for the old one (where nobody would read it).
    assert _stored(new) == list(range(1, 300))
    assert _stored(old) == [0]
    assert sum(lost.noted) == 0 and not queue.pending


@pytest.mark.parametrize("limit", [0, 1000], ids=["no-limit", "per-network-limit"])
def test_hits_of_the_web_unit_go_to_the_new_primary_after_a_failover(
    failover: Failover, limit: int
) -> None:
    # With a per-network limit the script's first write is its counter's INCR, without
    # one the RPUSH: either meets READONLY inside the script.
    old, new = Redis.from_url(failover.old.url), Redis.from_url(failover.new.url)
    pusher = buffer.HitPusher(
        Redis.from_url(failover.url), KEY, per_minute=limit, rate_prefix="rate:"
    )
    assert pusher.push(_hit(0))
    failover.fail_over()
    # Each pushed (none raised), to the new primary, once.
    assert [pusher.push(_hit(n)) for n in range(1, 50)] == [True] * 49
    assert _stored(new) == list(range(1, 50))
    assert _stored(old) == [0]


# --- Redis out of memory -----------------------------------------------------------------------


def _evalsha(redis: Redis) -> tuple[int, int]:
    """EVALSHA commands Redis received so far, and how many of them it refused."""
    stats = redis.info("commandstats").get("cmdstat_evalsha") or {}
    rejected = int(stats.get("rejected_calls", 0))
    return int(stats.get("calls", 0)) + rejected, int(stats.get("failed_calls", 0)) + rejected


def test_a_push_refused_for_memory_keeps_its_hits_and_stores_each_once_when_redis_has_room(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batch, "REDIS_RETRY_SECONDS", RETRY_SECONDS)
    server = servers.start_redis()
    redis = Redis.from_url(server.url)
    lost = CountedLost()
    queue = batch.HitQueue()
    queue.configure(buffer.HitPusher(redis, KEY), server.url, lost)
    window: list[float] = []

    def connections() -> int:
        return int(redis.info("stats")["total_connections_received"])

    async def readers() -> tuple[int, int, int]:
        queue.add(_hit(1))
        await _until(lambda: redis.llen(KEY) == 1, "the first hit")
        redis.config_set("maxmemory-policy", "noeviction")
        redis.config_set("maxmemory", "1")  # every write refused: -OOM
        sent, refused = _evalsha(redis)
        opened = connections()
        started = time.monotonic()
        queue.add(_hit(2))
        queue.add(_hit(3))
        await _until(lambda: _evalsha(redis)[1] >= refused + 3, "three refused pushes")
        window.append(time.monotonic() - started)
        sent_during, refused_during = (
            now - then for now, then in zip(_evalsha(redis), (sent, refused), strict=True)
        )
        # Kept, not lost, while refused.
        assert [hit.delivery_id for hit in queue.pending] == [2, 3] and not lost.noted
        redis.config_set("maxmemory", "0")
        await _until(lambda: not queue.pending, "the kept hits pushed")
        new_connections = connections() - opened
        await queue.drain(timeout=10)
        return sent_during, refused_during, new_connections

    try:
        sent_during, refused_during, new_connections = _run_loop(readers())
        # Each kept hit stored once, in order, when Redis had room again.
        assert _stored(redis) == [1, 2, 3]
        assert sum(lost.noted) == 0
        # Sent again on the same connection (an answer from Redis is not a broken one)...
        assert new_connections == 0
        # ...and only after the retry interval each time, not in a busy loop: at most one
        # push per interval of the time it took (and the first at once).
        assert refused_during == sent_during
        assert sent_during <= window[0] / RETRY_SECONDS + 2
    finally:
        server.stop()


# --- the warnings count every hit lost -------------------------------------------------------


def _reported_lost(caplog: pytest.LogCaptureFixture) -> list[int]:
    """The counts of the lost-hits lines logged: '<n> tracking hit(s) not recorded: ...'."""
    counts = []
    for record in caplog.records:
        if record.name == LOST_LOGGER:
            message = record.getMessage()
            assert "tracking hit(s) not recorded: Redis is unavailable" in message
            counts.append(int(message.split()[0]))
    return counts


def _queue(server: EmbeddedRedis, max_pending: int) -> batch.HitQueue:
    queue = batch.HitQueue(max_pending=max_pending)
    redis = Redis.from_url(server.url, socket_timeout=2)
    lost = buffer.lost_hits_warning(logging.getLogger(LOST_LOGGER))
    queue.configure(buffer.HitPusher(redis, KEY), server.url, lost)
    return queue


def test_hits_lost_on_the_event_loop_are_all_logged_once_redis_answers_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(batch, "REDIS_RETRY_SECONDS", RETRY_SECONDS)
    server = EmbeddedRedis(tmp_path / "redis")  # not started yet: Redis is away
    process = None
    queue = _queue(server, max_pending=10)

    async def outage() -> None:
        nonlocal process
        queue.add(_hit(0))  # the pusher finds Redis away
        await asyncio.sleep(RETRY_SECONDS)
        for n in range(1, 50):
            queue.add(_hit(n))  # 9 kept, 40 lost: one line at once, the rest held back
        process = server.start(daemonize=False)
        await _until(lambda: not queue.pending, "the kept hits pushed")
        # Logged when Redis answered, not only when the process stops.
        reported.extend(_reported_lost(caplog))
        await queue.drain(timeout=10)

    reported: list[int] = []
    try:
        with caplog.at_level(logging.WARNING, logger=LOST_LOGGER):
            _run_loop(outage())
        stored = _stored(Redis.from_url(server.url))
        assert stored == list(range(10))
        # Every hit lost is in the log (the first at once, the rest when Redis answered).
        assert sum(reported) == 50 - len(stored)
        assert reported == [1, 39]
    finally:
        if process is not None:
            process.kill()
            process.wait(timeout=10)


def test_hits_lost_on_the_event_loop_are_all_logged_when_it_stops_with_redis_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(batch, "REDIS_RETRY_SECONDS", RETRY_SECONDS)
    server = EmbeddedRedis(tmp_path / "redis")  # never started
    queue = _queue(server, max_pending=10)

    async def outage_then_stop() -> None:
        for n in range(30):
            queue.add(_hit(n))  # 10 kept, 20 lost
        await asyncio.sleep(RETRY_SECONDS)
        await queue.drain(timeout=RETRY_SECONDS * 3)  # the 10 kept are lost too

    with caplog.at_level(logging.WARNING, logger=LOST_LOGGER):
        _run_loop(outage_then_stop())
    assert sum(_reported_lost(caplog)) == 30 and not queue.pending


def test_hits_lost_by_the_web_unit_are_all_logged_once_redis_answers_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Tried again at once after a failed push, rather than after a second.
    monkeypatch.setattr(buffer, "REDIS_RETRY_SECONDS", 0.0)
    secret = "s" * 40
    app = Flask(__name__)
    app.config["SECRET_KEY"] = secret
    middleware = wsgi.TrackingMiddleware(app, app.wsgi_app)
    middleware.lost_hits.logger = logging.getLogger(LOST_LOGGER)
    server = EmbeddedRedis(tmp_path / "redis")  # not started yet: Redis is away
    redis = Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=2)
    middleware.pusher = buffer.HitPusher(redis, KEY)
    token = make_token(TrackingKind.OPEN, campaign_id=1, delivery_id=1, secret_key=secret)
    environ = {"PATH_INFO": f"/t/o/{token}.gif", "REQUEST_METHOD": "GET"}

    def reader() -> None:
        assert middleware(environ, lambda *_: None) == [wsgi.PIXEL]  # type: ignore[arg-type]

    process = None
    try:
        with caplog.at_level(logging.WARNING, logger=LOST_LOGGER):
            for _ in range(20):
                reader()  # lost: one line at once, the rest held back
            process = server.start(daemonize=False)
            reader()  # stored: Redis answers again
        assert redis.llen(KEY) == 1
        assert _reported_lost(caplog) == [1, 19]
    finally:
        if process is not None:
            process.kill()
            process.wait(timeout=10)


def test_hits_lost_before_the_queue_is_configured_are_logged_once_a_minute(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A HitQueue's own warning (before the middleware gives it its own) is as rare as the
    # middleware's: not one line per hit.
    queue = batch.HitQueue(max_pending=0)
    with caplog.at_level(logging.WARNING, logger="campaign.tracking.batch"):
        for n in range(5):
            queue.add(_hit(n))
        lines = [r.getMessage() for r in caplog.records if r.name == "campaign.tracking.batch"]
        assert len(lines) == 1 and lines[0].startswith("1 tracking hit(s) not recorded")
        _run_loop(queue.drain())  # the process stops: the rest is logged
        lines = [r.getMessage() for r in caplog.records if r.name == "campaign.tracking.batch"]
    assert len(lines) == 2 and lines[1].startswith("4 tracking hit(s) not recorded")
