"""Limits per SMTP account in Redis: an even pace, a daily cap, a connection semaphore.

The clock is injected (the limiter otherwise reads Redis's own), so pacing is checked
exactly and nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator

import pytest
from redis import Redis

from campaign.rate_limit import ConnectionSemaphore, DailyLimitReached, RateLimiter
from tests import servers

# 2026-03-01 23:59:50 UTC: ten seconds before a new UTC day.
BEFORE_MIDNIGHT = 1_772_409_590.0


class FakeClock:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def redis(redis_server: servers.RedisServer) -> Iterator[Redis]:
    connection = Redis.from_url(redis_server.url)
    yield connection
    connection.close()


@pytest.fixture
def key() -> str:
    return f"test:rate:{uuid.uuid4().hex}"


def _limiter(redis: Redis, key: str, clock: FakeClock, **limits: int) -> RateLimiter:
    return RateLimiter(redis, key, clock=clock, sleep=clock.sleep, **limits)


def test_thirty_a_minute_is_one_message_every_two_seconds(redis: Redis, key: str) -> None:
    clock = FakeClock()
    limiter = _limiter(redis, key, clock, per_minute=30)
    start = clock.now
    sent_at = []
    for _ in range(31):
        limiter.acquire()
        sent_at.append(round(clock.now - start, 6))
    # Never a burst: the 31st message goes out exactly one minute after the first.
    assert sent_at == [2.0 * i for i in range(31)]


def test_workers_sharing_an_account_share_one_pace(redis: Redis, key: str) -> None:
    clock = FakeClock()
    workers = [_limiter(redis, key, clock, per_second=10) for _ in range(3)]
    stamps = []
    for round_ in range(20):
        for worker in workers:
            wait = worker.reserve()  # each worker books its slot before anyone sleeps
            stamps.append(clock.now + wait)
        clock.sleep(0.3 if round_ % 2 else 0.05)
    stamps.sort()
    gaps = {round(b - a, 6) for a, b in itertools.pairwise(stamps)}
    assert gaps == {0.1}, "three workers together send ten a second, evenly"


def test_the_stricter_limit_sets_the_pace(redis: Redis, key: str) -> None:
    clock = FakeClock()
    limiter = _limiter(redis, key, clock, per_second=10, per_minute=120)
    start = clock.now
    for _ in range(5):
        limiter.acquire()
    assert round(clock.now - start, 6) == 2.0  # 120 a minute: every 0.5 s, not every 0.1 s


def test_an_idle_account_sends_the_next_message_at_once(redis: Redis, key: str) -> None:
    clock = FakeClock()
    limiter = _limiter(redis, key, clock, per_minute=30)
    limiter.acquire()
    clock.sleep(600)  # ten quiet minutes earn no burst, but cost no wait either
    before = clock.now
    limiter.acquire()
    assert clock.now == before
    limiter.acquire()
    assert round(clock.now - before, 6) == 2.0


def test_the_daily_cap_refuses_the_next_message_until_midnight_utc(redis: Redis, key: str) -> None:
    clock = FakeClock(BEFORE_MIDNIGHT)
    limiter = _limiter(redis, key, clock, per_day=3)
    for _ in range(3):
        limiter.acquire()
    with pytest.raises(DailyLimitReached) as refused:
        limiter.acquire()
    assert refused.value.retry_after == pytest.approx(10.0)
    assert "daily limit of 3" in str(refused.value)
    # Another worker is refused too: the count is the account's, not the process's.
    with pytest.raises(DailyLimitReached):
        _limiter(redis, key, clock, per_day=3).acquire()
    clock.sleep(10)
    limiter.acquire()  # a new UTC day


def test_a_refused_message_does_not_use_up_a_pace_slot(redis: Redis, key: str) -> None:
    clock = FakeClock(BEFORE_MIDNIGHT)
    limiter = _limiter(redis, key, clock, per_day=1, per_second=1)
    limiter.acquire()
    with pytest.raises(DailyLimitReached):
        limiter.acquire()
    clock.sleep(10)
    before = clock.now
    limiter.acquire()
    assert clock.now == before


def test_no_limit_costs_no_redis_call(key: str) -> None:
    limiter = RateLimiter(None, key)  # any Redis call would fail on None
    for _ in range(100):
        limiter.acquire()
    unlimited = ConnectionSemaphore(None, key, 0)
    assert unlimited.try_acquire() and unlimited.acquire(timeout=0)
    unlimited.release()


def test_the_connection_semaphore_admits_max_connections(redis: Redis, key: str) -> None:
    clock = FakeClock()
    holders = [
        ConnectionSemaphore(redis, key, 2, ttl=60, clock=clock, sleep=clock.sleep) for _ in range(3)
    ]
    first, second, third = holders
    assert first.try_acquire() and second.try_acquire()
    assert not third.try_acquire()
    assert not third.acquire(timeout=5, poll=1)
    first.release()
    assert third.try_acquire()


def test_a_dead_holders_connection_slot_comes_back_unless_renewed(redis: Redis, key: str) -> None:
    clock = FakeClock()

    def holder() -> ConnectionSemaphore:
        return ConnectionSemaphore(redis, key, 1, ttl=60, clock=clock, sleep=clock.sleep)

    alive, dead, waiting = holder(), holder(), holder()
    assert alive.try_acquire()
    clock.sleep(50)
    assert alive.renew()  # renewed in time: still its own
    clock.sleep(50)
    assert not waiting.try_acquire()
    alive.release()
    assert dead.try_acquire()
    clock.sleep(61)  # it never renews nor releases: a killed worker
    assert waiting.try_acquire()
