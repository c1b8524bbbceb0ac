"""A campaign's stop flag as a running batch reads it: kept here, and Redis says when it changes.

Pause and cancel raise a flag in Redis (campaigns.stop_flag_key) that every running batch
reads before each letter. Asking Redis each time cost a round trip a letter (decision 0073:
`EXISTS` written before the letter was built, its answer read after). Now a batch opens one
connection of its own with RESP3 client-side tracking (`CLIENT TRACKING ON`, Redis >= 6):
the flag is read once, and Redis pushes an invalidation on that connection as soon as the
key is written, deleted, expires or the database is flushed. Before each letter the batch
looks, without waiting, whether anything arrived; only then does it ask again. A flag raised
is seen before the next letter once Redis has sent the invalidation, which it does while
it executes the write, before the pause's own request is answered.

A connection can also die in silence (a NAT entry dropped, a partition, a proxy switching
its backend): no byte, no EOF, no reset arrives, and the invalidation with it. So the local
answer is trusted only for TRUST_SECONDS after the last exchange Redis confirmed (zero: not
at all): once half of that has passed, a PING is written before the next letter is built,
and its PONG is read before that letter's SMTP conversation (replies come in order: once
the PONG is read, every invalidation written before it has been read too). No PONG within
REPLY_SECONDS: the watch closes and answers None.

Whenever the watch cannot be sure (no connection, an error, a reconnection that would have
lost the tracking, a PING unanswered) it says so (None), and the caller asks Redis on its
main connection as before, then the database (decision 0082).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redis.exceptions import RedisError
from rq.timeouts import BaseTimeoutException

from campaign.queue import get_redis

log = logging.getLogger(__name__)

# How the watch's connection is named in CLIENT LIST.
CLIENT_NAME = "campaign-stop-watch"

# How long the local answer is trusted after the last exchange Redis confirmed on the watch's
# connection; a PING is written ahead once half of it has passed (decision 0082). Zero: a
# PING before every letter, its PONG read before that letter's SMTP conversation, so even a
# connection that died in silence lets no more than the letter in hand go (~25 µs a letter).
TRUST_SECONDS = 0.0
# How long a PING's answer is awaited before the watch gives up (and the batch asks Redis on
# its main connection). Also the watch connection's socket timeout is kept short.
REPLY_SECONDS = 0.1
SOCKET_TIMEOUT_SECONDS = 1.0

# Whether this process has already said that tracking is refused (once a process, not once a
# batch: a refusal is a server's or a proxy's setting, and the next batch meets it too).
_refusal_told = False


def _tell_refusal(error: object) -> None:
    global _refusal_told
    if _refusal_told:
        return
    _refusal_told = True
    log.warning(
        "stop flag: Redis client tracking unavailable (%s); every letter now waits for one "
        "EXISTS round trip on the main connection (decision 0082)",
        error,
    )


class StopWatch:
    """One batch's view of one Redis key: `is_up()` costs no round trip while nothing changed.

    Use as a context manager (the connection is closed at the end). Not thread-safe: the
    batch's own thread only.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self.connection: Any = None
        # True/False: what Redis last said and has not taken back since; None: ask again.
        self.known: bool | None = None
        self.asked = 0  # how many times Redis was asked (tests, the decision's figures)
        self.pinged = 0  # how many PINGs were written (tests, the decision's figures)
        # time.monotonic() when the last request Redis has answered was written; the local
        # answer holds for TRUST_SECONDS after it.
        self.confirmed_at = 0.0
        # When the PING awaiting its PONG was written; None when none is pending.
        self.ping_sent_at: float | None = None

    def __enter__(self) -> StopWatch:
        self.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Open the tracking connection; on any trouble the watch stays closed (None)."""
        pool = get_redis().connection_pool
        try:
            # RESP3 whatever the pool speaks: the invalidations come on this connection.
            kwargs = {**pool.connection_kwargs, "protocol": 3, "client_name": CLIENT_NAME}
            # A reply begun is finished quickly or the watch gives up (and says None).
            kwargs["socket_timeout"] = SOCKET_TIMEOUT_SECONDS
            if "path" not in kwargs:  # TCP: a silent peer is found by the kernel too
                kwargs["socket_keepalive"] = True
                if kwargs.get("socket_connect_timeout") is None:
                    kwargs["socket_connect_timeout"] = SOCKET_TIMEOUT_SECONDS
            connection = pool.connection_class(**kwargs)
        except (TypeError, ValueError, RedisError) as error:
            _tell_refusal(error)
            return
        self.connection = connection
        try:
            connection.connect()
            sent_at = time.monotonic()
            connection.send_command("CLIENT", "TRACKING", "ON", check_health=False)
            reply = connection.read_response()
            if reply not in (b"OK", "OK"):
                raise RedisError(f"CLIENT TRACKING ON: {reply!r}")
            self.confirmed_at = sent_at
        except (RedisError, OSError) as error:
            # Redis older than 6, a proxy, an ACL, or away: the caller asks Redis itself,
            # then the database.
            _tell_refusal(error)
            self.close()
        except BaseException:
            self.close()  # the job's timeout: it goes on, unmasked
            raise

    def close(self) -> None:
        connection, self.connection = self.connection, None
        self.known = None
        self.ping_sent_at = None
        if connection is None:
            return
        try:
            connection.disconnect()
        except BaseTimeoutException:
            raise  # the job's timeout (an Exception in RQ): never swallowed
        except Exception:  # noqa: S110 - a connection that fails to close is closed enough
            pass

    def prepare(self) -> None:
        """Before a letter is built: write a PING if the local answer's trust runs low.

        Its PONG is read in `is_up()`, after the letter was built, so it rarely waits.
        """
        connection = self.connection
        if connection is None or self.ping_sent_at is not None:
            return
        now = time.monotonic()
        if now - self.confirmed_at < TRUST_SECONDS / 2:
            return
        try:
            self._ping(connection, now)
        except (RedisError, OSError) as error:
            log.info("stop flag: the tracking connection failed (%s)", error)
            self.close()
        except BaseException:
            self.close()
            raise

    def _ping(self, connection: Any, now: float) -> None:
        if getattr(connection, "_sock", None) is None:
            raise RedisError("the tracking connection was closed")
        connection.send_command("PING", check_health=False)
        self.pinged += 1
        self.ping_sent_at = now

    def _await_pong(self, connection: Any) -> bool:
        """Read up to the pending PING's PONG; False if it did not come in REPLY_SECONDS."""
        deadline = time.monotonic() + REPLY_SECONDS
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not connection.can_read(timeout=remaining):
                return False
            reply = connection.read_response(push_request=True)
            if reply in (b"PONG", "PONG"):
                # Everything Redis wrote before it has been read: confirmed as of the PING.
                self.confirmed_at = self.ping_sent_at or self.confirmed_at
                self.ping_sent_at = None
                return True
            self.known = None  # an invalidation (or a flush) written before the PONG

    def is_up(self) -> bool | None:
        """Whether the flag is up, as Redis last told this connection; None if unknown."""
        connection = self.connection
        if connection is None:
            return None
        try:
            # (`_sock`: redis-py's `is_connected` property is newer than our floor, 5.3.)
            if getattr(connection, "_sock", None) is None:
                # Never reconnect silently: a new connection would not be tracking.
                raise RedisError("the tracking connection was closed")
            stale = time.monotonic() - self.confirmed_at >= TRUST_SECONDS
            if self.ping_sent_at is None and self.known is not None and stale:
                # Trusted too long without word from Redis (prepare() was not called, or the
                # letter took long): ask now.
                self._ping(connection, time.monotonic())
            if self.ping_sent_at is not None and not self._await_pong(connection):
                # Silent: perhaps half-open. Never "not stopped" on a silent connection.
                raise RedisError(f"no PONG within {REPLY_SECONDS} s")
            # Anything that arrived unasked is an invalidation (or a flush): ask again. Also
            # after a PONG: a pause written while the letter was built comes after it.
            while connection.can_read(timeout=0):
                if connection.read_response(push_request=True) in (b"PONG", "PONG"):
                    raise RedisError("an unexpected PONG")
                self.known = None
            if self.known is None:
                sent_at = time.monotonic()
                connection.send_command("EXISTS", self.key, check_health=False)
                self.asked += 1
                if not connection.can_read(timeout=REPLY_SECONDS):
                    raise RedisError(f"no answer to EXISTS within {REPLY_SECONDS} s")
                # An invalidation pushed before this reply concerns an older state and is
                # read (and dropped) on the way; one pushed after it waits for the next look.
                self.known = bool(connection.read_response())
                self.confirmed_at = sent_at
            return self.known
        except (RedisError, OSError) as error:
            log.info("stop flag: the tracking connection failed (%s)", error)
            self.close()
            return None
        except BaseException:
            # A signal (the job's timeout) interrupted a read: the state is unknown and the
            # connection goes; the exception goes on unmasked.
            self.close()
            raise
