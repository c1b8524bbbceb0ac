"""Sign-in abuse limits in Redis: growing delays per network and per address from that
network, never a lock.

Failed sign-ins (a wrong password, an unknown address, a wrong two-factor code) are
counted per network (IPv4 /24, IPv6 /48) and per typed address *from that network*, known
or not, so a delay says nothing about whether an address is an account, and failures from
one network never delay the same address from another: a stranger cannot keep the real
user out. After `free` failures each further failure makes the next attempt wait 2, 4, 8
... seconds, never more than the cap. Attempts made while a delay runs are refused without
checking the password and are not counted.

The clock is Redis's own (TIME). Redis holds digests of addresses, never the addresses.
Forgotten-password requests have plain counters (`count_requests`, `count_daily`).
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
from campaign.rate_limit import count_in_window
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


def _account_key(email: str, network: str) -> str:
    return f"{PREFIX}:{ACCOUNT}:{address_digest(email)}:{network}"


def _networks_key(email: str) -> str:
    # The networks an address has failures from (for the admin's page and "Unlock").
    return f"{PREFIX}:{ACCOUNT}-networks:{address_digest(email)}"


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
            keys=[_network_key(network), _account_key(email, network)]
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
    memory = max(3600, 2 * cap)
    try:
        redis = get_redis()
        delays = redis.register_script(_FAIL)(
            keys=[_network_key(network), _account_key(email, network)],
            args=[
                cap * 1000,
                memory,
                int(config["LOGIN_NETWORK_MAX_FAILURES"]),
                int(config["LOGIN_MAX_FAILURES"]),
            ],
        )
        index = redis.pipeline()
        index.hset(_networks_key(email), network, "1")
        index.expire(_networks_key(email), memory + cap)
        index.execute()
    except RedisError as error:
        raise LimitsUnavailable(str(error)) from error
    return max(int(delay) for delay in delays)


def _failed_networks(email: str) -> list[str]:
    return [
        network.decode() if isinstance(network, bytes) else str(network)
        for network in get_redis().hkeys(_networks_key(email))
    ]


def account_delay(email: str) -> int:
    """The longest wait the address has from any network (0: none; the admin's page)."""
    try:
        networks = _failed_networks(email)
        waits = [get_redis().hget(_account_key(email, network), "until") for network in networks]
        now_s, now_us = get_redis().time()
    except RedisError:
        return 0
    latest = max((int(raw) for raw in waits if raw), default=0)
    remaining = latest - (int(now_s) * 1000 + int(now_us) // 1000)
    return max(0, math.ceil(remaining / 1000))


def clear_account(email: str) -> None:
    """Forget the address's failures from every network (an admin's unlock, a new password)."""
    try:
        keys = [_account_key(email, network) for network in _failed_networks(email)]
        get_redis().delete(_networks_key(email), *keys)
    except RedisError as error:
        log.warning("sign-in failures of an address not cleared: %s", error)


def clear_network_failures(email: str, network: str | None = None) -> None:
    """Forget the address's failures from this network (a successful sign-in from it); the
    failures from other networks stay (the real user's success frees no guesser)."""
    network = network or client_network()
    try:
        pipe = get_redis().pipeline()
        pipe.delete(_account_key(email, network))
        pipe.hdel(_networks_key(email), network)
        pipe.execute()
    except RedisError as error:
        log.warning("sign-in failures of an address not cleared: %s", error)


def count_requests(kind: str, email: str, limits: tuple[int, int], window: int) -> int:
    """Count one request of `kind` for `email` from this network in the current window.

    `limits` are (per address from this network, per network): requests from elsewhere
    never count against the address. Returns 0, or the seconds until the counter that is
    full empties (nothing counted then). When Redis is away nothing is limited.
    """
    network = client_network()
    keys = [
        f"{PREFIX}:{kind}:{ACCOUNT}:{address_digest(email)}:{network}",
        f"{PREFIX}:{kind}:{NETWORK}:{network}",
    ]
    return _count(kind, keys, limits, window)


def count_network_requests(kind: str, limit: int, window: int) -> int:
    """Count one request of `kind` from this network; as count_requests, per network only."""
    return _count(kind, [f"{PREFIX}:{kind}:{NETWORK}:{client_network()}"], (limit,), window)


def count_daily(kind: str, email: str, limit: int) -> bool:
    """Count one more `kind` for `email` today, whoever asks; True once past `limit`.

    The day starts at the first one. When Redis is away it is never past the limit.
    """
    key = f"{PREFIX}:{kind}:daily:{address_digest(email)}"
    try:
        count = int(get_redis().incr(key))
        if count == 1:
            get_redis().expire(key, 86400)
    except RedisError as error:
        log.warning("%s not counted per day: %s", kind, error)
        return False
    return count > limit


def _count(kind: str, keys: list[str], limits: tuple[int, ...], window: int) -> int:
    try:
        full, ttl = count_in_window(get_redis(), keys, limits, window)
    except RedisError as error:
        log.warning("%s requests not limited: %s", kind, error)
        return 0
    return ttl if full else 0
