"""Sign-in abuse limits in Redis: growing delays per network and per address, never a lock.

Failed sign-ins (a wrong password, an unknown address, a wrong two-factor code) are
counted per network (IPv4 /24, IPv6 /48) and per typed address, known or not, so a delay
says nothing about whether an address is an account. After `free` failures each further
failure makes the next attempt wait 2, 4, 8 ... seconds, never more than the cap: someone
guessing can make the real user wait at most that long, not lock them out. Attempts made
while a delay runs are refused without checking the password and are not counted.

The clock is Redis's own (TIME). Redis holds digests of addresses, never the addresses.
Forgotten-password requests have plain hourly counters (`count_requests`).
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass

from flask import current_app, has_request_context, request
from flask_babel import gettext, ngettext
from redis.exceptions import RedisError

from campaign.queue import get_redis
from campaign.tracking.buffer import ip_prefix

log = logging.getLogger(__name__)
PREFIX = "campaign:sign-in"
NETWORK = "network"
ACCOUNT = "account"

# KEYS: the counters to check. Returns {index, seconds to wait} of the first one whose
# delay runs (index 1-based), or {0, 0}.
_CHECK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i, key in ipairs(KEYS) do
  local until_ms = tonumber(redis.call('HGET', key, 'until') or '0')
  if until_ms > now then
    return {i, math.ceil((until_ms - now) / 1000)}
  end
end
return {0, 0}
"""

# KEYS: the counters a failure counts in. ARGV: cap in ms, memory in s, then the free
# failures of each key. Returns the delay in seconds each key now imposes (0: none).
_FAIL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap = tonumber(ARGV[1])
local memory = tonumber(ARGV[2])
local delays = {}
for i, key in ipairs(KEYS) do
  local failures = redis.call('HINCRBY', key, 'failures', 1)
  local free = tonumber(ARGV[i + 2])
  local delay = 0
  if failures >= free then
    delay = math.min(cap, 1000 * 2 ^ math.min(failures - free + 1, 30))
    redis.call('HSET', key, 'until', string.format('%.0f', now + delay))
  end
  redis.call('EXPIRE', key, memory + math.ceil(delay / 1000))
  delays[i] = math.ceil(delay / 1000)
end
return delays
"""

# KEYS: hourly counters. ARGV: window in s, then each key's limit. Returns {index, ttl} of
# the first full counter (nothing counted then), or {0, 0} after counting in every one.
_COUNT = """
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


class LimitsUnavailable(RuntimeError):
    """Redis could not be asked; the caller falls back (see decision 0033)."""


@dataclass(frozen=True)
class Delay:
    scope: str  # NETWORK or ACCOUNT
    seconds: int

    @property
    def message(self) -> str:
        wait = wait_words(self.seconds)
        if self.scope == NETWORK:
            return gettext(
                "Too many sign-in attempts from your network. Try again in %(wait)s.", wait=wait
            )
        return gettext(
            "Too many failed sign-in attempts for this address. Try again in %(wait)s.",
            wait=wait,
        )


def wait_words(seconds: int) -> str:
    if seconds < 60:
        return ngettext("%(num)d second", "%(num)d seconds", max(1, seconds))
    return ngettext("%(num)d minute", "%(num)d minutes", math.ceil(seconds / 60))


def client_network() -> str:
    """The requesting client's /24 or /48 ("unknown" outside a request or when unreadable)."""
    if not has_request_context():
        return "unknown"
    return ip_prefix(request.remote_addr) or "unknown"


def address_digest(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


def _network_key(network: str) -> str:
    return f"{PREFIX}:{NETWORK}:{network}"


def _account_key(email: str) -> str:
    return f"{PREFIX}:{ACCOUNT}:{address_digest(email)}"


def cap_seconds() -> int:
    return int(current_app.config["LOGIN_MAX_DELAY_MINUTES"]) * 60


def delay_for(failures: int, free: int) -> int:
    """Seconds to wait after `failures` failures when `free` are allowed (the Lua's rule)."""
    if failures < free:
        return 0
    return int(min(cap_seconds(), 2 ** min(failures - free + 1, 30)))


def current_delay(email: str, network: str | None = None) -> Delay | None:
    """The delay that stops a sign-in for `email` from this network now, if any."""
    network = network or client_network()
    try:
        scope, seconds = get_redis().register_script(_CHECK)(
            keys=[_network_key(network), _account_key(email)]
        )
    except RedisError as error:
        raise LimitsUnavailable(str(error)) from error
    if not int(scope):
        return None
    return Delay(NETWORK if int(scope) == 1 else ACCOUNT, int(seconds))


def record_failure(email: str, network: str | None = None) -> int:
    """Count a failed sign-in for `email` and this network; return the delay it started."""
    network = network or client_network()
    config = current_app.config
    cap = cap_seconds()
    try:
        delays = get_redis().register_script(_FAIL)(
            keys=[_network_key(network), _account_key(email)],
            args=[
                cap * 1000,
                max(3600, 2 * cap),
                int(config["LOGIN_NETWORK_MAX_FAILURES"]),
                int(config["LOGIN_MAX_FAILURES"]),
            ],
        )
    except RedisError as error:
        raise LimitsUnavailable(str(error)) from error
    return max(int(delay) for delay in delays)


def account_delay(email: str) -> int:
    """Seconds the address must still wait before its next sign-in (0: none; admin page)."""
    try:
        raw = get_redis().hget(_account_key(email), "until")
        now_s, now_us = get_redis().time()
    except RedisError:
        return 0
    if not raw:
        return 0
    remaining = int(raw) - (int(now_s) * 1000 + int(now_us) // 1000)
    return max(0, math.ceil(remaining / 1000))


def clear_account(email: str) -> None:
    """Forget the address's failures (a successful sign-in, an admin's unlock)."""
    try:
        get_redis().delete(_account_key(email))
    except RedisError as error:
        log.warning("sign-in failures of an address not cleared: %s", error)


def count_requests(kind: str, email: str, limits: tuple[int, int], window: int) -> int:
    """Count one request of `kind` for `email` and this network in the current window.

    `limits` are (per address, per network). Returns 0, or the seconds until the counter
    that is full empties (nothing counted then). When Redis is away nothing is limited.
    """
    keys = [
        f"{PREFIX}:{kind}:{ACCOUNT}:{address_digest(email)}",
        f"{PREFIX}:{kind}:{NETWORK}:{client_network()}",
    ]
    try:
        full, ttl = get_redis().register_script(_COUNT)(keys=keys, args=[window, *limits])
    except RedisError as error:
        log.warning("%s requests not limited: %s", kind, error)
        return 0
    return int(ttl) if int(full) else 0
