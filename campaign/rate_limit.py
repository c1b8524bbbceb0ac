"""Sending limits per SMTP account, shared through Redis by every worker on every machine.

Per second and per minute are one even pace (GCRA with no burst: 30 a minute is one
message every 2 s, never 30 at once). A caller reserves the next free slot atomically in
a Lua script and sleeps until it comes, so many workers share one exact pace without
retry loops. Per day is a counter per UTC day. Concurrent connections are a semaphore: a
sorted set of holders whose entries expire unless renewed, so a killed worker's slot comes
back by itself. The clock is Redis's own (TIME), the same for every machine; tests inject
a fake one. A limit of 0 means none of that kind and costs no Redis call.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from typing import Any

US = 1_000_000
DAY_US = 86_400 * US

# KEYS[1] the pace key, KEYS[2] the day counters' prefix.
# ARGV: now in µs ('' = Redis TIME), interval in µs (0 = no pace), daily limit (0 = none).
# Returns {0, wait_µs} for a permit, or {-1, µs until the next UTC day} when the day is full.
_RESERVE = """
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local interval = tonumber(ARGV[2])
local day_limit = tonumber(ARGV[3])
local day_key = false
if day_limit > 0 then
  local day = math.floor(now / 86400000000)
  day_key = KEYS[2] .. ':' .. string.format('%d', day)
  local used = tonumber(redis.call('GET', day_key) or '0')
  if used >= day_limit then
    return {-1, string.format('%.0f', (day + 1) * 86400000000 - now)}
  end
end
local wait = 0
if interval > 0 then
  local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
  local slot = math.max(now, tat)
  wait = slot - now
  local next_tat = slot + interval
  redis.call('SET', KEYS[1], string.format('%.0f', next_tat),
             'PX', math.floor((next_tat - now) / 1000) + 60000)
end
if day_key then
  redis.call('INCR', day_key)
  redis.call('EXPIRE', day_key, 172800)
end
return {0, string.format('%.0f', wait)}
"""

# KEYS[1] the holders' sorted set. ARGV: now in ms ('' = Redis TIME), holder, ttl ms, limit.
# Returns 1 when the holder holds (or renewed) a slot, 0 when all are taken.
_HOLD = """
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[1])
end
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[2]) or
   redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('ZADD', KEYS[1], string.format('%.0f', now + ttl), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ttl * 2)
  return 1
end
return 0
"""


class DailyLimitReached(RuntimeError):
    """The account's messages for this UTC day are used up; `retry_after` seconds to wait."""

    def __init__(self, limit: int, retry_after: float) -> None:
        self.limit = limit
        self.retry_after = retry_after
        super().__init__(
            f"the SMTP account's daily limit of {limit} messages is reached; "
            "sending continues after midnight UTC"
        )


def pace_interval(per_second: int, per_minute: int) -> float:
    """Seconds between two messages at the stricter of the two limits (0: no pace)."""
    intervals = [1 / per_second if per_second > 0 else 0.0]
    intervals.append(60 / per_minute if per_minute > 0 else 0.0)
    return max(intervals)


class RateLimiter:
    """The pace and daily cap of one SMTP account (`key`), for every worker at once."""

    def __init__(
        self,
        redis: Any,
        key: str,
        *,
        per_second: int = 0,
        per_minute: int = 0,
        per_day: int = 0,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.redis = redis
        self.key = key
        self.interval = pace_interval(per_second, per_minute)
        self.per_day = max(0, per_day)
        self._clock = clock
        self._sleep = sleep
        self._script: Any = None

    @property
    def is_limited(self) -> bool:
        return self.interval > 0 or self.per_day > 0

    def reserve(self) -> float:
        """Take the next permit; return how many seconds to wait before using it.

        Raises DailyLimitReached (and takes nothing) when today's messages are used up.
        """
        if not self.is_limited:
            return 0.0
        if self._script is None:
            self._script = self.redis.register_script(_RESERVE)
        now = "" if self._clock is None else str(int(self._clock() * US))
        status, value = self._script(
            keys=[f"{self.key}:pace", f"{self.key}:day"],
            args=[now, str(math.ceil(self.interval * US)), str(self.per_day)],
        )
        if int(status) < 0:
            raise DailyLimitReached(self.per_day, int(value) / US)
        return int(value) / US

    def acquire(self) -> float:
        """Block until this worker may send one message (raises DailyLimitReached); return
        how long it waited (0: the permit was free at once)."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait


class ConnectionSemaphore:
    """At most `limit` connections open at once to one account, across all workers.

    A holder's slot expires `ttl` seconds after it was taken or last renewed, so a
    worker that died gives it back by itself.
    """

    def __init__(
        self,
        redis: Any,
        key: str,
        limit: int,
        *,
        ttl: float = 120.0,
        holder: str | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.redis = redis
        self.key = f"{key}:connections"
        self.limit = max(0, limit)
        self.ttl = ttl
        self.holder = holder or uuid.uuid4().hex
        self._clock = clock
        self._sleep = sleep
        self._script: Any = None
        self.held = False

    def try_acquire(self) -> bool:
        """Take (or renew) a slot now; False when every slot is held by someone else."""
        if self.limit == 0:
            self.held = True
            return True
        if self._script is None:
            self._script = self.redis.register_script(_HOLD)
        now = "" if self._clock is None else str(int(self._clock() * 1000))
        got = self._script(
            keys=[self.key], args=[now, self.holder, str(int(self.ttl * 1000)), str(self.limit)]
        )
        self.held = bool(int(got))
        return self.held

    renew = try_acquire

    def acquire(self, timeout: float, poll: float = 0.25) -> bool:
        """Wait up to `timeout` seconds for a slot; False if none came free."""
        waited = 0.0
        while not self.try_acquire():
            if waited >= timeout:
                return False
            self._sleep(poll)
            waited += poll
        return True

    def release(self) -> None:
        if self.limit and self.held:
            self.redis.zrem(self.key, self.holder)
        self.held = False


# KEYS: the counters; ARGV[1]: the window in seconds, ARGV[i + 1]: KEYS[i]'s limit.
# Counts nothing unless every counter has room; returns {0, 0}, or {i, seconds left} for
# the first full counter.
_COUNT_IN_WINDOW = """
for i, key in ipairs(KEYS) do
  local used = tonumber(redis.call('GET', key) or '0')
  if used >= tonumber(ARGV[i + 1]) then
    local ttl = redis.call('TTL', key)
    if ttl < 0 then ttl = tonumber(ARGV[1]) end
    return {i, ttl}
  end
end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, ARGV[1]) end
end
return {0, 0}
"""


def count_in_window(
    redis: Any, keys: list[str], limits: list[int] | tuple[int, ...], window: int
) -> tuple[int, int]:
    """Count one request against each of `keys` (fixed windows of `window` seconds).

    Atomic: nothing is counted unless every counter has room. Returns (0, 0) when counted,
    or (the 1-based index of the first full counter, seconds until it empties). Sign-on
    submissions and sign-in/reset requests share this one script.
    """
    full, ttl = redis.register_script(_COUNT_IN_WINDOW)(keys=keys, args=[window, *limits])
    return int(full), int(ttl)
