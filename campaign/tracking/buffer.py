"""The Redis buffer of tracking hits: pushed by the public routes, written to SQL in batches.

A hit costs the request one RPUSH and no database write. The flusher moves a batch
atomically from the shared list to a processing list of its own, writes the events
(`hit_key` unique, inserted with ON CONFLICT DO NOTHING), sets the deliveries'
first-opened/first-clicked times, commits, and only then deletes its processing list. A
flusher that dies anywhere in between leaves its list behind; the next flush writes it
again, and the unique hit keys make that second write store nothing twice.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ReadOnlyError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from campaign.extensions import db
from campaign.models import Campaign, Delivery
from campaign.models.tracking import TrackedLink, TrackingEvent, TrackingKind

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
MAX_USER_AGENT = 200
# A flusher refreshes its liveness key each batch; one silent this long is taken for dead
# and its processing list is written by the next flush.
FLUSHER_TTL_SECONDS = 60
# Tracking must never make a click wait: a stuck Redis costs a hit, not the redirect.
REDIS_TIMEOUT_SECONDS = 0.5
# After Redis failed to answer twice in a row, a process does not try it again for this
# long: hits meanwhile are not recorded (and say so) at once, instead of each waiting up to
# twice the timeout, which on the tracking unit's event loop would hold every other hit.
REDIS_RETRY_SECONDS = 1.0

# Hits the shared list may hold. It only grows while no flusher runs (workers down); past
# this a hit is dropped rather than letting Redis fill its memory (about 150 MB here).
MAX_BUFFERED_HITS = 1_000_000
# Hits one push command carries at most (Lua's unpack() takes a few thousand values).
MAX_HITS_PER_COMMAND = 500
# At most one warning of a kind (buffer full, a network over its limit, Redis away, a link
# unread: each a RareWarning) per process per this many seconds, with the count; what is
# noted after it is logged at the next one, or sooner when the trouble is over (flush).
RARE_WARNING_SECONDS = 60.0

# Append hits ARGV[3..] to the list KEYS[1], each unless the list already holds ARGV[1]
# items (0: dropped) or, when ARGV[2] > 0, the hit's network (counter KEYS[i - 1] for
# ARGV[i], reset a minute after its first hit) has had more than ARGV[2] hits this minute
# (2: over the limit). 1 if appended. One outcome per hit, in order. One atomic round trip
# for any number of hits (one, or an event loop's turn of them: campaign/tracking/batch.py),
# so concurrent pushes cannot overshoot the cap or the limit.
_PUSH_BELOW_CAP = """
local cap, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local room = cap - redis.call('LLEN', KEYS[1])
local outcomes, taken = {}, {}
for i = 3, #ARGV do
  local outcome = 1
  if limit > 0 then
    local seen = redis.call('INCR', KEYS[i - 1])
    if seen == 1 then
      redis.call('EXPIRE', KEYS[i - 1], 60)
    end
    if seen > limit then
      outcome = 2
    end
  end
  if outcome == 1 then
    if #taken >= room then
      outcome = 0
    else
      taken[#taken + 1] = ARGV[i]
    end
  end
  outcomes[i - 2] = outcome
end
if #taken > 0 then
  redis.call('RPUSH', KEYS[1], unpack(taken))
end
return outcomes
"""
_APPENDED, _FULL, _LIMITED = 1, 0, 2

# Move up to ARGV[1] hits from the shared list to a processing list, atomically.
_TAKE_BATCH = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items > 0 then
  redis.call('LTRIM', KEYS[1], #items, -1)
  redis.call('RPUSH', KEYS[2], unpack(items))
end
return items
"""


@dataclass(frozen=True)
class Hit:
    kind: TrackingKind
    campaign_id: int
    delivery_id: int
    link_id: int | None
    occurred_at: float  # seconds since the epoch
    ip_prefix: str
    user_agent: str
    hit_key: str


@dataclass
class FlushReport:
    written: int = 0  # events stored by this flush
    duplicates: int = 0  # hits already stored (a re-run after an interrupted flush)
    dropped: int = 0  # unreadable hits, or hits of deliveries deleted since
    recovered_lists: int = 0  # processing lists of dead flushers written by this flush


def _prefix() -> str:
    return f"campaign:{current_app.config['QUEUE_NAME']}:tracking"


def hits_key() -> str:
    return f"{_prefix()}:hits"


def rate_key_prefix() -> str:
    """Where the per-network hit counters live (one key per /24 or /48, one minute each)."""
    return f"{_prefix()}:rate:"


def _flushers_key() -> str:
    return f"{_prefix()}:flushers"


def _processing_key(flusher: str) -> str:
    return f"{_prefix()}:processing:{flusher}"


def _alive_key(flusher: str) -> str:
    return f"{_prefix()}:alive:{flusher}"


def buffer_redis() -> Redis:
    """A Redis client with short timeouts, for the public routes."""
    extensions = current_app.extensions
    if "campaign_tracking_redis" not in extensions:
        from campaign.queue import redis_url

        extensions["campaign_tracking_redis"] = Redis.from_url(
            redis_url(),
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
    client: Redis = extensions["campaign_tracking_redis"]
    return client


def buffer_redis_url() -> str:
    """The Redis the buffer lives in (the tracking unit's event loop connects to it itself)."""
    from campaign.queue import redis_url

    return redis_url()


# --- the request side ----------------------------------------------------------------------

_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# A canonical dotted-decimal IPv4 address (no leading zeros, as ipaddress wants it).
_IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")


def ip_prefix(address: str | None) -> str:
    """The network a client is in, never its address: IPv4 /24, IPv6 /48 ("" if unknown)."""
    if not address:
        return ""
    # The common case, a plain IPv4 address, without the ipaddress module (a tenth of the
    # time): only canonical dotted decimals take this path, anything else the full parse.
    if _IPV4.fullmatch(address):
        return address.rpartition(".")[0] + ".0/24"
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return ""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    bits = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


def encode_hit(hit: Hit) -> str:
    return json.dumps(
        [
            hit.kind.value,
            hit.campaign_id,
            hit.delivery_id,
            hit.link_id,
            hit.occurred_at,
            hit.ip_prefix,
            hit.user_agent,
            hit.hit_key,
        ],
        separators=(",", ":"),
    )


def decode_hit(raw: bytes | str) -> Hit | None:
    try:
        kind, campaign_id, delivery_id, link_id, at, prefix, agent, key = json.loads(raw)
        return Hit(
            TrackingKind(kind),
            int(campaign_id),
            int(delivery_id),
            int(link_id) if link_id else None,
            float(at),
            str(prefix)[:50],
            str(agent)[:MAX_USER_AGENT],
            str(key)[:64],
        )
    except (ValueError, TypeError):
        return None


def new_hit(
    kind: TrackingKind,
    *,
    campaign_id: int,
    delivery_id: int,
    link_id: int | None,
    remote_addr: str | None,
    user_agent: str,
) -> Hit:
    return Hit(
        kind,
        campaign_id,
        delivery_id,
        link_id,
        round(time.time(), 3),
        ip_prefix(remote_addr),
        user_agent[:MAX_USER_AGENT],
        secrets.token_hex(16),
    )


class RareWarning:
    """Count what went wrong and log it at most once a minute (RARE_WARNING_SECONDS), with
    the count since the last line: a hit lost while Redis (or the database) is down, or
    dropped by a full buffer or a network's limit, must not write a log line per reader.

    What is noted after a line waits for the next note a minute on, or for `flush`, called
    when the trouble is over (Redis answers again) and when the process stops: every count
    noted is logged once.

    `message` takes its values by name: %(count)d, how many since the last line, and the
    `details` given to `note` (the last error, a limit).
    """

    def __init__(self, logger: logging.Logger, message: str) -> None:
        self.logger = logger
        self.message = message
        self.lock = threading.Lock()
        self.count = 0
        self.details: dict[str, object] = {}  # given to the last note
        self.warned_at: float | None = None

    def note(self, count: int = 1, **details: object) -> None:
        with self.lock:
            self.count += count
            self.details = details
            now = time.monotonic()
            if self.warned_at is not None and now - self.warned_at < RARE_WARNING_SECONDS:
                return
            count, self.count, self.warned_at = self.count, 0, now
        self.logger.warning(self.message, {"count": count, **details})

    def flush(self) -> None:
        """Log now what was noted since the last line, if anything (with the last details)."""
        if not self.count:  # the common case (a push that went through), without the lock
            return
        with self.lock:
            count, self.count, details = self.count, 0, self.details
            if not count:
                return
            self.warned_at = time.monotonic()
        self.logger.warning(self.message, {"count": count, **details})


def lost_hits_warning(logger: logging.Logger) -> RareWarning:
    """The warning of hits not recorded because Redis did not take them (either pusher)."""
    # The error names Redis's address, never the reader's.
    return RareWarning(
        logger, "%(count)d tracking hit(s) not recorded: Redis is unavailable (%(error)s)"
    )


def connection_broken(error: BaseException) -> bool:
    """Whether a push's connection is taken for broken after `error`: its owner drops it, and
    the push is sent once more on a new one (push_tries).

    Redis restarted or a timeout; or Redis answers READONLY: after a failover (Sentinel, a
    managed Redis behind one name) the old primary, made a replica, keeps its clients and
    refuses every write for ever, while a new connection reaches the new primary. The push
    script's write meets it inside the script, so it comes as a plain error whose message
    holds "-READONLY", not as ReadOnlyError. Any other error Redis answers (out of memory)
    leaves the connection alone.
    """
    if isinstance(error, (RedisConnectionError, RedisTimeoutError, OSError, ReadOnlyError)):
        return True
    return isinstance(error, ResponseError) and "READONLY" in str(error)


# What the owner of a connection does for a push (push_tries): send each command it is given
# (RESP bytes) and give back the reply, or throw in the error met (after dropping the
# connection if connection_broken says so); the push's outcomes come back when it ends
# (StopIteration's value).
PushTries = Generator[bytes, Any, list[int]]


def push_tries(pusher: HitPusher, hits: Sequence[Hit]) -> PushTries:
    """The retry policy of one push, apart from its input and output: the same for the web
    unit's pusher (HitPusher, a blocking connection per thread) and the tracking unit's
    (batch.HitQueue, on an event loop).

    The command is sent at most three times: again after loading the script when Redis
    does not know it (a restarted Redis, or a new primary, does not have it), and once more
    on a new connection when the kept one broke (connection_broken: Redis restarted, or
    the server became a read-only replica). Anything else, and a second broken connection,
    is raised to the owner.
    """
    command = pusher.command(hits)
    for attempt in range(3):
        try:
            reply = yield command
        except NoScriptError:
            if attempt == 2:
                raise
            pusher.set_sha((yield pusher.script_load_command()))
            command = pusher.command(hits)
        except (RedisError, OSError) as error:
            if attempt >= 1 or not connection_broken(error):
                raise
        else:
            return [int(outcome) for outcome in reply]
    raise AssertionError("unreachable")


class HitPusher:
    """Appends hits to the buffer until it holds `cap`; past that drops them, warning rarely.

    Every accepted hit is its own record (random hit key), so the flush stores exactly the
    hits pushed; only a full buffer (no flusher for a long while) loses any, and says so.
    A network (/24, /48) sending more than `per_minute` hits in a minute has the rest
    dropped too: a script or a scanner replaying a pixel must not write the statistics.
    """

    def __init__(
        self,
        redis: Redis,
        key: str,
        *,
        cap: int | None = None,
        per_minute: int = 0,
        rate_prefix: str = "",
    ) -> None:
        self.redis = redis
        self.key = key
        self.cap = MAX_BUFFERED_HITS if cap is None else cap
        self.per_minute = per_minute
        self.rate_prefix = rate_prefix or f"{key}:rate:"
        self._push = redis.register_script(_PUSH_BELOW_CAP)
        # One connection per thread, outside the client's pool: a hit is one EVALSHA
        # written and one integer read, and the pool's bookkeeping cost as much as that
        # round trip's own Python (decision 0076).
        self._local = threading.local()
        self._down_until = 0.0  # time.monotonic() before which Redis is not tried
        self._full = RareWarning(
            log,
            "tracking buffer full (%(cap)d hits waiting): %(count)d hit(s) dropped; is a "
            "worker running the flush (campaign flush-tracking writes it by hand)?",
        )
        # Never the network itself: the log is not where readers' whereabouts go.
        self._limited = RareWarning(
            log,
            "tracking hits over the limit of %(limit)d a minute from one network: %(count)d "
            "hit(s) not recorded (CAMPAIGN_TRACKING_HITS_PER_MINUTE)",
        )

    def push(self, hit: Hit) -> bool:
        """Append `hit`; False if the buffer was full or its network over the limit.

        Raises RedisError when Redis is away.
        """
        return self.settle(self._evalsha([hit])) == 1

    def flush_warnings(self) -> None:
        """Log the drops the full-buffer and over-the-limit warnings still hold back (a
        stopping process)."""
        self._full.flush()
        self._limited.flush()

    def command(self, hits: Sequence[Hit]) -> bytes:
        """The one Redis command (RESP) that pushes `hits` (at most MAX_HITS_PER_COMMAND)."""
        keys = [self.key]
        if self.per_minute > 0:
            prefix = self.rate_prefix
            keys += [prefix + (hit.ip_prefix or "unknown") for hit in hits]
        return _resp(
            "EVALSHA",
            self._push.sha,
            len(keys),
            *keys,
            self.cap,
            self.per_minute,
            *map(encode_hit, hits),
        )

    def script_load_command(self) -> bytes:
        """SCRIPT LOAD of the push script (a restarted Redis forgets its scripts)."""
        return _resp("SCRIPT", "LOAD", _PUSH_BELOW_CAP)

    def set_sha(self, sha: bytes | str) -> None:
        """The script's SHA as Redis gave it back to SCRIPT LOAD."""
        self._push.sha = sha.decode() if isinstance(sha, bytes) else sha

    def settle(self, outcomes: Sequence[int]) -> int:
        """Count the hits a push appended; note (and warn, rarely) the ones it dropped."""
        appended = outcomes.count(_APPENDED)
        if appended < len(outcomes):
            limited = outcomes.count(_LIMITED)
            if limited:
                self._limited.note(limited, limit=self.per_minute)
            if len(outcomes) - appended - limited:
                self._full.note(len(outcomes) - appended - limited, cap=self.cap)
        return appended

    def _evalsha(self, hits: Sequence[Hit]) -> list[int]:
        """Push `hits` on this thread's connection, as push_tries says. Raises at once
        while Redis is taken for down (REDIS_RETRY_SECONDS), and takes it for down when
        the push gave up on a broken connection."""
        if self._down_until and time.monotonic() < self._down_until:
            raise RedisConnectionError("Redis did not answer a moment ago; not tried again yet")
        connection = getattr(self._local, "connection", None)
        if connection is None:
            pool = self.redis.connection_pool
            connection = self._local.connection = pool.connection_class(**pool.connection_kwargs)
        tries = push_tries(self, hits)
        reply: Any = None
        error: BaseException | None = None
        while True:
            try:
                command = tries.send(reply) if error is None else tries.throw(error)
            except StopIteration as done:
                outcomes: list[int] = done.value
                return outcomes
            except (RedisError, OSError) as failed:
                if connection_broken(failed):
                    self._down_until = time.monotonic() + REDIS_RETRY_SECONDS
                raise
            try:
                connection.send_packed_command([command], check_health=False)
                reply, error = connection.read_response(), None
            except (RedisError, OSError) as failed:
                if connection_broken(failed):
                    connection.disconnect()
                reply, error = None, failed


def _resp(*args: str | int) -> bytes:
    """One Redis command in the protocol's own framing (RESP), packed in one go."""
    parts = [str(arg).encode() for arg in args]
    return b"*%d\r\n" % len(parts) + b"".join(
        b"$%d\r\n%s\r\n" % (len(part), part) for part in parts
    )


def hit_pusher(redis: Redis | None = None) -> HitPusher:
    """A pusher with this installation's buffer and per-network limit (in an app context)."""
    return HitPusher(
        redis or buffer_redis(),
        hits_key(),
        per_minute=int(current_app.config.get("TRACKING_HITS_PER_MINUTE", 0) or 0),
        rate_prefix=rate_key_prefix(),
    )


def push_hit(hit: Hit, redis: Redis | None = None) -> bool:
    """Append a hit to the buffer; False if it was full (raises RedisError when Redis is away)."""
    return HitPusher(redis or buffer_redis(), hits_key()).push(hit)


# --- the flush -----------------------------------------------------------------------------


def flush_hits(
    *,
    commit: Callable[[], None],
    batch_size: int = BATCH_SIZE,
    max_batches: int | None = None,
    redis: Redis | None = None,
) -> FlushReport:
    """Write buffered hits to the database in batches until the buffer is empty.

    `commit` makes each batch durable before its Redis copy is deleted (the job and the
    CLI pass db.session.commit). `max_batches` bounds one run under a flood.
    """
    from campaign.queue import get_redis

    redis = redis or get_redis()
    report = FlushReport()
    _recover_dead_flushers(redis, report, commit)
    flusher = f"{uuid.uuid4().hex[:16]}"
    processing = _processing_key(flusher)
    # Registered before any hit moves, so a crash right after the move is recovered.
    redis.set(_alive_key(flusher), "1", ex=FLUSHER_TTL_SECONDS)
    redis.sadd(_flushers_key(), flusher)
    take = redis.register_script(_TAKE_BATCH)
    batches = 0
    try:
        while max_batches is None or batches < max_batches:
            redis.expire(_alive_key(flusher), FLUSHER_TTL_SECONDS)
            items = take(keys=[hits_key(), processing], args=[batch_size])
            if not items:
                break
            batches += 1
            _write(items, report)
            commit()
            redis.delete(processing)
            if len(items) < batch_size:
                break
    finally:
        # A flusher that failed is not coming back for its list: let the next run take it.
        # (One killed outright is noticed when its liveness key expires.)
        redis.delete(_alive_key(flusher))
        if not redis.exists(processing):
            redis.srem(_flushers_key(), flusher)
    return report


def _recover_dead_flushers(redis: Redis, report: FlushReport, commit: Callable[[], None]) -> None:
    for raw in redis.smembers(_flushers_key()):
        flusher = raw.decode() if isinstance(raw, bytes) else str(raw)
        if redis.exists(_alive_key(flusher)):
            continue  # still at work
        processing = _processing_key(flusher)
        items = redis.lrange(processing, 0, -1)
        if items:
            _write(items, report)
            commit()
            report.recovered_lists += 1
        redis.delete(processing)
        redis.srem(_flushers_key(), flusher)


def _write(items: Sequence[bytes | str], report: FlushReport) -> None:
    readable = [hit for hit in (decode_hit(item) for item in items) if hit is not None]
    hits, opens_tracked = _known(readable) if readable else ([], set())
    report.dropped += len(items) - len(hits)
    if not hits:
        return
    written = _insert_events(hits)
    report.written += written
    report.duplicates += len(hits) - written
    _mark_deliveries(hits, opens_tracked)


def _known(hits: list[Hit]) -> tuple[list[Hit], set[int]]:
    """Hits whose delivery still exists in the token's campaign and whose kind that campaign
    tracks (now), foreign links made None; and the deliveries whose campaign tracks opens.

    A campaign deleted while its hits waited in Redis must not make the batch fail on a
    foreign key for ever. A campaign whose open (click) tracking is off records no open
    (click), even under a valid token: one from a letter sent before it was turned off, or
    signed by someone who has the key.
    """
    delivery_ids = {hit.delivery_id for hit in hits}
    owners = db.session.execute(
        select(
            Delivery.id, Delivery.campaign_id, Campaign.is_open_tracking, Campaign.is_click_tracking
        )
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(Delivery.id.in_(delivery_ids))
    ).all()
    campaigns: dict[int, int] = {row[0]: row[1] for row in owners}
    tracked = {
        TrackingKind.OPEN: {row[0] for row in owners if row[2]},
        TrackingKind.CLICK: {row[0] for row in owners if row[3]},
    }
    link_ids = {hit.link_id for hit in hits if hit.link_id}
    link_campaigns: dict[int, int] = (
        dict(
            db.session.execute(
                select(TrackedLink.id, TrackedLink.campaign_id).where(TrackedLink.id.in_(link_ids))
            ).all()
        )
        if link_ids
        else {}
    )
    kept = []
    for hit in hits:
        if campaigns.get(hit.delivery_id) != hit.campaign_id:
            continue
        if hit.delivery_id not in tracked[hit.kind]:
            continue
        if hit.link_id and link_campaigns.get(hit.link_id) != hit.campaign_id:
            hit = Hit(**{**hit.__dict__, "link_id": None})
        kept.append(hit)
    return kept, tracked[TrackingKind.OPEN]


def _when(hit: Hit) -> datetime:
    return datetime.fromtimestamp(hit.occurred_at, UTC)


def _insert_events(hits: list[Hit]) -> int:
    table = TrackingEvent.__table__
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(table).on_conflict_do_nothing(index_elements=["hit_key"]).returning(table.c.id)
    )
    rows: list[dict[str, Any]] = [
        {
            "campaign_id": hit.campaign_id,
            "delivery_id": hit.delivery_id,
            "kind": hit.kind.value,
            "link_id": hit.link_id,
            "occurred_at": _when(hit),
            "ip_prefix": hit.ip_prefix,
            "user_agent": hit.user_agent,
            "hit_key": hit.hit_key,
        }
        for hit in hits
    ]
    return len(db.session.execute(statement, rows).all())


def _mark_deliveries(hits: list[Hit], opens_tracked: set[int]) -> None:
    """Set each delivery's first open and first click, where not set yet.

    A click implies the letter was opened (the pixel is often blocked, a click is not),
    where the campaign tracks opens at all.
    """
    opened: dict[int, datetime] = {}
    clicked: dict[int, datetime] = {}
    for hit in hits:
        at = _when(hit)
        if hit.delivery_id in opens_tracked:
            opened[hit.delivery_id] = min(at, opened.get(hit.delivery_id, at))
        if hit.kind == TrackingKind.CLICK:
            clicked[hit.delivery_id] = min(at, clicked.get(hit.delivery_id, at))
    table = Delivery.__table__
    for column, firsts in (("opened_at", opened), ("clicked_at", clicked)):
        if not firsts:
            continue
        db.session.connection().execute(
            update(table)
            .where(table.c.id == bindparam("row_id"), table.c[column].is_(None))
            .values({column: bindparam("first_at")}),
            [{"row_id": row_id, "first_at": at} for row_id, at in firsts.items()],
        )
