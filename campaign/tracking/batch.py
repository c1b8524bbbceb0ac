"""Tracking hits answered on an event loop, pushed to Redis in one command per loop turn.

The tracking unit (campaign/tracking/asgi.py) answers a hit at once and leaves the hit in a
HitQueue. The first hit of a loop turn starts the queue's pusher, which runs on the next
turn: it writes every waiting hit in one EVALSHA (the push script of buffer.py, which
checks the buffer's cap and each network's limit per hit) and reads the one reply, without
blocking the loop; hits answered meanwhile wait for the next command. Before, each hit
waited on its own Redis round trip inline, and the whole process with it: on this
2-vCPU machine that wait (a wake-up of Redis on the other core and one back) was most of a
hit's time (decision 0080).

What a hit no longer has is Redis's acknowledgement before its answer (the answer never
depended on it: with Redis away the reader got the image all the same). What that costs:
- the tracking process killed (SIGKILL, OOM) between an answer and the next command:
  the hits of that loop turn, written a turn later (well under a millisecond at
  5,000 hits/s; under load a command carries a few to a few dozen hits). Stopped
  cleanly (SIGTERM, a restart), the process pushes what it holds first (lifespan shutdown,
  at most DRAIN_SECONDS);
- Redis unreachable: hits are kept in the process, up to MAX_PENDING_HITS, and pushed when
  Redis answers again (tried every REDIS_RETRY_SECONDS); past that cap they are dropped
  and counted in the rare warning. A process killed or stopped while Redis is away loses
  what it kept. (Round one recorded none of them.) While Redis is away, one network (the
  push script's /24 or /48) may hold at most its per-minute limit for each minute begun
  of the outage: a flooder cannot crowd out other readers' hits with hits the limit would
  refuse anyway; the rest are counted lost as well.
- a command whose answer was lost with its connection is sent again on a new one: Redis may
  then hold some hits twice, which the flush stores once (their hit keys are unique).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from redis.asyncio.connection import ConnectionPool
from redis.exceptions import RedisError

from campaign.tracking.buffer import (
    MAX_HITS_PER_COMMAND,
    REDIS_RETRY_SECONDS,
    REDIS_TIMEOUT_SECONDS,
    Hit,
    HitPusher,
    RareWarning,
    connection_broken,
    lost_hits_warning,
    push_tries,
)

log = logging.getLogger(__name__)

# Hits a process keeps while Redis is away: 20 s of 5,000 hits/s over two processes,
# about 10 MB.
MAX_PENDING_HITS = 50_000
# How long a stopping process tries to push the hits it holds.
DRAIN_SECONDS = 2.0


class HitQueue:
    """Hits waiting for their push, on one event loop at a time."""

    def __init__(self, *, max_pending: int = MAX_PENDING_HITS) -> None:
        self.pending: list[Hit] = []
        self.max_pending = max_pending
        # Where and how to push, set on the first hit (it needs the app's configuration).
        self.pusher: HitPusher | None = None
        self.redis_url = ""
        # Hits not recorded (noted with the last error): the middleware's warning once
        # configured, logged at most once a minute either way.
        self.lost: RareWarning = lost_hits_warning(log)
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connection: Any = None
        self._last_error: BaseException | None = None
        # While Redis is away (a push failed, none succeeded since): since when
        # (time.monotonic()), and the hits each network holds meanwhile.
        self._held_since: float | None = None
        self._held_by_network: dict[str, int] = {}

    def configure(self, pusher: HitPusher, redis_url: str, lost: RareWarning) -> None:
        self.pusher, self.redis_url, self.lost = pusher, redis_url, lost

    def add(self, hit: Hit) -> None:
        """Queue `hit` for the next push (called on the loop's thread, inside a request)."""
        if len(self.pending) >= self.max_pending:
            # Redis has been away for a while: this one is not kept.
            self.lost.note(error=self._last_error or RedisError("too many hits waiting for Redis"))
            return
        if self._held_since is not None and not self._hold(hit):
            # Over its network's limit for this outage: Redis would refuse it anyway.
            self.lost.note(error=self._last_error or RedisError("too many hits from one network"))
            return
        self.pending.append(hit)
        if self._task is None:
            loop = asyncio.get_running_loop()
            if loop is not self._loop:
                # A connection belongs to its loop (tests run one loop after another).
                self._loop, self._connection = loop, None
            self._task = loop.create_task(self._push_pending())

    def _hold(self, hit: Hit) -> bool:
        """Whether `hit` may be kept while Redis is away: its network (the push script's
        rate key) holds fewer than the per-minute limit for each minute begun of the outage."""
        per_minute = self.pusher.per_minute if self.pusher is not None else 0
        if per_minute <= 0 or self._held_since is None:
            return True
        network = hit.ip_prefix or "unknown"
        held = self._held_by_network.get(network, 0)
        minutes = int((time.monotonic() - self._held_since) // 60) + 1
        if held >= per_minute * minutes:
            return False
        self._held_by_network[network] = held + 1
        return True

    async def drain(self, timeout: float = DRAIN_SECONDS) -> None:
        """Wait until every queued hit is pushed, at most `timeout`; count the rest lost, and
        log every count the warnings still hold back.

        Then closes the connection: for a stopping process (or a test's loop ending)."""
        task = self._task
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except TimeoutError:
                task.cancel()
        if self.pending:
            lost, self.pending = len(self.pending), []
            self.lost.note(
                lost, error=self._last_error or RedisError("Redis did not answer in time")
            )
        self.lost.flush()
        if self.pusher is not None:
            self.pusher.flush_warnings()
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.disconnect()

    async def _push_pending(self) -> None:
        pusher = self.pusher
        assert pusher is not None, "configure() before add()"
        try:
            while self.pending:
                hits = self.pending[:MAX_HITS_PER_COMMAND]
                try:
                    outcomes = await self._round_trip(pusher, hits)
                except (RedisError, OSError) as error:
                    # Kept, in order: pushed once Redis answers again.
                    self._last_error = error
                    if self._held_since is None:
                        self._held_since = time.monotonic()
                    await asyncio.sleep(REDIS_RETRY_SECONDS)
                    continue
                # Only this task takes from the front; requests append behind.
                del self.pending[: len(hits)]
                if self._held_since is not None:
                    # Redis answers again: its own limit applies to new hits.
                    self._held_since, self._held_by_network = None, {}
                pusher.settle(outcomes)
                # Redis answers again: the hits lost meanwhile that the warning still holds
                # back are logged now, not at the next outage.
                self.lost.flush()
        finally:
            self._task = None

    async def _round_trip(self, pusher: HitPusher, hits: list[Hit]) -> list[int]:
        """Push `hits` on the loop's connection (a new one when there is none), as
        buffer.push_tries says."""
        tries = push_tries(pusher, hits)
        reply: Any = None
        error: BaseException | None = None
        while True:
            try:
                command = tries.send(reply) if error is None else tries.throw(error)
            except StopIteration as done:
                outcomes: list[int] = done.value
                return outcomes
            connection = self._connection
            try:
                if connection is None:
                    connection = self._connection = self._new_connection()
                    await connection.connect()
                await connection.send_packed_command(command, check_health=False)
                reply, error = await connection.read_response(), None
            except (RedisError, OSError) as failed:
                if connection_broken(failed):
                    self._connection = None
                    if connection is not None:
                        await connection.disconnect()
                reply, error = None, failed

    def _new_connection(self) -> Any:
        pool = ConnectionPool.from_url(
            self.redis_url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
        return pool.connection_class(**pool.connection_kwargs)
