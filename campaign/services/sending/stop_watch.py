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

Whenever the watch cannot be sure (no connection, an error, a reconnection that would have
lost the tracking) it says so (None), and the caller asks Redis as before, then the
database: never "not stopped" by default (decision 0082).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from redis.exceptions import RedisError

from campaign.queue import get_redis

log = logging.getLogger(__name__)

# How the watch's connection is named in CLIENT LIST.
CLIENT_NAME = "campaign-stop-watch"


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
            connection = pool.connection_class(
                **{**pool.connection_kwargs, "protocol": 3, "client_name": CLIENT_NAME}
            )
        except (TypeError, ValueError, RedisError) as error:
            log.info("stop flag: no tracking connection (%s); Redis is asked each time", error)
            return
        self.connection = connection
        try:
            connection.connect()
            connection.send_command("CLIENT", "TRACKING", "ON", check_health=False)
            reply = connection.read_response()
            if reply not in (b"OK", "OK"):
                raise RedisError(f"CLIENT TRACKING ON: {reply!r}")
        except (RedisError, OSError) as error:
            # Redis older than 6, or away: the caller asks Redis itself, then the database.
            log.info("stop flag: client tracking unavailable (%s)", error)
            self.close()
        except BaseException:
            self.close()  # the job's timeout: it goes on, unmasked
            raise

    def close(self) -> None:
        connection, self.connection = self.connection, None
        self.known = None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.disconnect()

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
            # Anything that arrived unasked is an invalidation (or a flush): ask again.
            while connection.can_read(timeout=0):
                connection.read_response(push_request=True)
                self.known = None
            if self.known is None:
                connection.send_command("EXISTS", self.key, check_health=False)
                self.asked += 1
                # An invalidation pushed before this reply concerns an older state and is
                # read (and dropped) on the way; one pushed after it waits for the next look.
                self.known = bool(connection.read_response())
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
