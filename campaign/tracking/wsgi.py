"""The open pixel and click redirect, served in front of Flask's request pipeline.

A tracking hit needs none of what a staff page needs (session, sign-in, CSRF, two-factor
and access checks, security headers for HTML): going through them cost each hit about
four times a bare route. This WSGI layer answers `/t/o/<token>.gif` and `/t/c/<token>`
itself, inside an application context (for the configuration and the database), and
passes every other request on to Flask untouched.

A click goes only to the URL recorded at send time for that campaign; anything we did not
sign is a 404, never a redirect. Nothing is written to the database here: a hit is one
Redis push, written to SQL in batches by the flusher (campaign/tracking/buffer.py).

A link's row is read once per process, then cached. That read waits at most
LINK_READ_TIMEOUT_MS on PostgreSQL (a lock on tracked_links, a busy server): past it the
reader gets a short "try again" page (503, Retry-After) rather than a hanging tab. Under the
asyncio tracking server the read never runs on the event loop (campaign/tracking/asgi.py).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flask_babel import force_locale
from flask_babel import gettext as _
from redis.exceptions import RedisError
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header
from werkzeug.urls import iri_to_uri

from campaign.extensions import db
from campaign.i18n import LANGUAGES, choose_language
from campaign.models.tracking import TrackedLink, TrackingKind
from campaign.tracking.batch import HitQueue
from campaign.tracking.buffer import (
    HitPusher,
    RareWarning,
    buffer_redis_url,
    hit_pusher,
    lost_hits_warning,
    new_hit,
)
from campaign.tracking.tokens import TrackingToken, read_token, tracking_key

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from flask import Flask

log = logging.getLogger(__name__)

OPEN_PREFIX = "/t/o/"
CLICK_PREFIX = "/t/c/"
# A transparent 1×1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
# Link rows never change once written; a process keeps this many in memory.
LINK_CACHE_SIZE = 10_000
# A link's read waits at most this long on PostgreSQL (statement_timeout, lock waits
# included); a cold read takes about a millisecond.
LINK_READ_TIMEOUT_MS = 500
# How long a reader is asked to wait before trying a link again that could not be read.
RETRY_AFTER_SECONDS = 5
# Set in the environ by the asyncio server (asgi.py): a click whose link is not cached
# raises NeedsDatabase instead of reading it there, on the event loop. A client cannot
# set it (request headers become HTTP_* keys).
NO_DATABASE = "campaign.tracking.no_database"
# Set in the environ by the asyncio server (asgi.py): its HitQueue, which pushes the hits of
# a loop turn in one command instead of each hit waiting on Redis inline (decision 0080).
HIT_QUEUE = "campaign.tracking.hit_queue"
# Set by the asyncio server when it gave up waiting on a link's read and answered 503: the
# read, finishing later in its thread, then counts no click (the reader will click again).
ABANDONED = "campaign.tracking.abandoned"
_HEADERS = [
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", "default-src 'none'"),
]


# Status line, headers, body.
_Answer = tuple[str, list[tuple[str, str]], bytes]


class NeedsDatabase(Exception):
    """A click's link is not cached and the environ asked for no database read (NO_DATABASE).

    `unavailable` gives the 503 answer, for a server that gives up waiting on the read."""

    def __init__(self, unavailable: Callable[[WSGIEnvironment], _Answer]) -> None:
        super().__init__("the link is not cached")
        self.unavailable = unavailable


def finished(answer: _Answer, *, is_hit: bool) -> _Answer:
    """`answer` with the headers every tracking answer carries, and its body (none to a HEAD)."""
    status, headers, body = answer
    return (
        status,
        [*headers, *_HEADERS, ("Content-Length", str(len(body)))],
        body if is_hit else b"",
    )


class TrackingMiddleware:
    """Answer tracking hits; hand everything else to `next_app` (Flask's own wsgi_app)."""

    def __init__(self, flask_app: Flask, next_app: WSGIApplication) -> None:
        self.flask_app = flask_app
        self.next_app = next_app
        # Derived once: a hit's check is then one HMAC (decision 0076).
        self.key = tracking_key(str(flask_app.config["SECRET_KEY"]))
        # Replaced whole when full, never cleared: a thread between its check and its read
        # would find its entry gone.
        self.link_cache: dict[int, tuple[int, str]] = {}
        # Made on the first hit (inside an app context), then shared by the process's threads.
        self.pusher: HitPusher | None = None
        # The error names Redis's (or the database's) address, never the reader's.
        self.lost_hits = lost_hits_warning(log)
        self.unread_links = RareWarning(
            log,
            "%(count)d click(s) answered 503: their link could not be read from the database"
            " (%(error)s)",
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        if not path.startswith(("/t/o/", "/t/c/")) or environ.get("REQUEST_METHOD") not in (
            "GET",
            "HEAD",
        ):
            return self.next_app(environ, start_response)
        # Link scanners and preview fetchers check a link with HEAD before (or instead of)
        # following it: they get the same answer, but only a GET is a reader's hit.
        is_hit = environ["REQUEST_METHOD"] == "GET"
        status, headers, body = finished(self._answer(path, environ, is_hit=is_hit), is_hit=is_hit)
        start_response(status, headers)
        return [body]

    def _answer(self, path: str, environ: WSGIEnvironment, *, is_hit: bool) -> _Answer:
        if path.startswith(OPEN_PREFIX) and path.endswith(".gif"):
            read = read_token(path[len(OPEN_PREFIX) : -len(".gif")], key=self.key)
            if read is not None and read.kind == TrackingKind.OPEN and is_hit:
                self._record(read, environ)
            # The same image whatever the token: a broken image would only puzzle the reader.
            return "200 OK", [("Content-Type", "image/gif")], PIXEL
        if path.startswith(CLICK_PREFIX):
            read = read_token(path[len(CLICK_PREFIX) :], key=self.key)
            if read is not None and read.kind == TrackingKind.CLICK and read.link_id is not None:
                try:
                    url = self._link_url(read.campaign_id, read.link_id, environ)
                except SQLAlchemyError as error:
                    # Not counted: the reader will click again, and the hit counts then.
                    self.unread_links.note(error=error)
                    return self.unavailable(environ)
                if url is not None:
                    if is_hit and not environ.get(ABANDONED):
                        self._record(read, environ)
                    return "302 Found", [("Location", url)], b""
        return "404 Not Found", [("Content-Type", "text/plain; charset=utf-8")], b"Not found"

    def _link_url(self, campaign_id: int, link_id: int, environ: WSGIEnvironment) -> str | None:
        cached = self.link_cache.get(link_id)
        if cached is None:
            if environ.get(NO_DATABASE):
                raise NeedsDatabase(self.unavailable)
            row = self._read_link(link_id)
            if row is None:
                return None
            cache = self.link_cache
            if len(cache) >= LINK_CACHE_SIZE:
                cache = self.link_cache = {}
            cached = cache[link_id] = row
        owner, url = cached
        # Another campaign's link id under a valid token of this one: no redirect.
        return url if owner == campaign_id else None

    def _read_link(self, link_id: int) -> tuple[int, str] | None:
        # Core, not the ORM: the first click of a process must not wait for every
        # mapper of the application to be configured (a second, on a busy machine).
        links = TrackedLink.__table__
        with self.flask_app.app_context(), db.engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                # For this read's transaction only (rolled back when the connection goes
                # back to the pool).
                connection.execute(text(f"SET LOCAL statement_timeout = {LINK_READ_TIMEOUT_MS}"))
            row = connection.execute(
                select(links.c.campaign_id, links.c.url).where(links.c.id == link_id)
            ).first()
        # Kept as the Location header carries it: a link recorded with "é" or a space,
        # percent-encoded (an IRI made a URI); the header is Latin-1 on the wire.
        return None if row is None else (row.campaign_id, iri_to_uri(row.url))

    def unavailable(self, environ: WSGIEnvironment) -> _Answer:
        """A click whose link cannot be read now: 503, try again in a few seconds."""
        header = environ.get("HTTP_ACCEPT_LANGUAGE", "")
        wanted = parse_accept_header(header[:1000], LanguageAccept)
        language = choose_language((tag for tag, _q in wanted), LANGUAGES) or LANGUAGES[0]
        with self.flask_app.app_context(), force_locale(language):
            message = _("This link cannot be opened just now. Please try again in a minute.")
        return (
            "503 Service Unavailable",
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Retry-After", str(RETRY_AFTER_SECONDS)),
            ],
            message.encode("utf-8"),
        )

    def _record(self, token: TrackingToken, environ: WSGIEnvironment) -> None:
        hit = new_hit(
            token.kind,
            campaign_id=token.campaign_id,
            delivery_id=token.delivery_id,
            link_id=token.link_id,
            remote_addr=environ.get("REMOTE_ADDR"),
            user_agent=environ.get("HTTP_USER_AGENT", ""),
        )
        queue: HitQueue | None = environ.get(HIT_QUEUE)
        if queue is not None:
            # On the tracking unit's event loop: pushed with the loop turn's other hits.
            if queue.pusher is None:
                with self.flask_app.app_context():
                    queue.configure(hit_pusher(), buffer_redis_url(), self.lost_hits)
            queue.add(hit)
            return
        try:
            if self.pusher is None:
                with self.flask_app.app_context():
                    self.pusher = hit_pusher()
            # A full buffer, or a network over its limit, drops the hit and warns (rarely)
            # by itself; the reader gets the same answer either way.
            self.pusher.push(hit)
        except RedisError as error:
            # The reader still gets the image or the page; only the count misses this hit.
            self.lost_hits.note(error=error)
        else:
            # Redis answers again: the hits lost meanwhile that the warning still holds back
            # are logged now, not at the next outage.
            self.lost_hits.flush()


def install(app: Flask) -> None:
    """Put the tracking layer in front of Flask (and behind ProxyFix, which wraps later)."""
    wrapped: Callable[..., Any] = TrackingMiddleware(app, app.wsgi_app)
    app.wsgi_app = wrapped  # type: ignore[method-assign]
