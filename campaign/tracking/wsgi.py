"""The open pixel and click redirect, served in front of Flask's request pipeline.

A tracking hit needs none of what a staff page needs (session, sign-in, CSRF, two-factor
and access checks, security headers for HTML): going through them cost each hit about
four times a bare route. This WSGI layer answers `/t/o/<token>.gif` and `/t/c/<token>`
itself, inside an application context (for the configuration and the database), and
passes every other request on to Flask untouched.

A click goes only to the URL recorded at send time for that campaign; anything we did not
sign is a 404, never a redirect. Nothing is written to the database here: a hit is one
Redis push, written to SQL in batches by the flusher (campaign/tracking/buffer.py).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from sqlalchemy import select

from campaign.extensions import db
from campaign.models.tracking import TrackedLink, TrackingKind
from campaign.tracking.buffer import HitPusher, hit_pusher, new_hit
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
_HEADERS = [
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", "default-src 'none'"),
]


# Status line, headers, body.
_Answer = tuple[str, list[tuple[str, str]], bytes]


class TrackingMiddleware:
    """Answer tracking hits; hand everything else to `next_app` (Flask's own wsgi_app)."""

    def __init__(self, flask_app: Flask, next_app: WSGIApplication) -> None:
        self.flask_app = flask_app
        self.next_app = next_app
        # Derived once: a hit's check is then one HMAC (decision 0076).
        self.key = tracking_key(str(flask_app.config["SECRET_KEY"]))
        self.link_cache: dict[int, tuple[int, str]] = {}
        # Made on the first hit (inside an app context), then shared by the process's threads.
        self.pusher: HitPusher | None = None

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
        status, headers, body = self._answer(path, environ, is_hit=is_hit)
        start_response(status, [*headers, *_HEADERS, ("Content-Length", str(len(body)))])
        return [body] if is_hit else [b""]

    def _answer(
        self, path: str, environ: WSGIEnvironment, *, is_hit: bool
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        if path.startswith(OPEN_PREFIX) and path.endswith(".gif"):
            read = read_token(path[len(OPEN_PREFIX) : -len(".gif")], key=self.key)
            if read is not None and read.kind == TrackingKind.OPEN and is_hit:
                self._record(read, environ)
            # The same image whatever the token: a broken image would only puzzle the reader.
            return "200 OK", [("Content-Type", "image/gif")], PIXEL
        if path.startswith(CLICK_PREFIX):
            read = read_token(path[len(CLICK_PREFIX) :], key=self.key)
            if read is not None and read.kind == TrackingKind.CLICK and read.link_id is not None:
                url = self._link_url(read.campaign_id, read.link_id)
                if url is not None:
                    if is_hit:
                        self._record(read, environ)
                    return "302 Found", [("Location", url)], b""
        return "404 Not Found", [("Content-Type", "text/plain; charset=utf-8")], b"Not found"

    def _link_url(self, campaign_id: int, link_id: int) -> str | None:
        if link_id not in self.link_cache:
            # Core, not the ORM: the first click of a process must not wait for every
            # mapper of the application to be configured (a second, on a busy machine).
            links = TrackedLink.__table__
            with self.flask_app.app_context(), db.engine.connect() as connection:
                row = connection.execute(
                    select(links.c.campaign_id, links.c.url).where(links.c.id == link_id)
                ).first()
            if row is None:
                return None
            if len(self.link_cache) >= LINK_CACHE_SIZE:
                self.link_cache.clear()
            self.link_cache[link_id] = (row.campaign_id, row.url)
        owner, url = self.link_cache[link_id]
        # Another campaign's link id under a valid token of this one: no redirect.
        return url if owner == campaign_id else None

    def _record(self, token: TrackingToken, environ: WSGIEnvironment) -> None:
        hit = new_hit(
            token.kind,
            campaign_id=token.campaign_id,
            delivery_id=token.delivery_id,
            link_id=token.link_id,
            remote_addr=environ.get("REMOTE_ADDR"),
            user_agent=environ.get("HTTP_USER_AGENT", ""),
        )
        try:
            if self.pusher is None:
                with self.flask_app.app_context():
                    self.pusher = hit_pusher()
            # A full buffer, or a network over its limit, drops the hit and warns (rarely)
            # by itself; the reader gets the same answer either way.
            self.pusher.push(hit)
        except RedisError as error:
            # The reader still gets the image or the page; only the count misses this hit.
            # The error names Redis's address, never the reader's.
            log.warning("a %s hit was not recorded: Redis is unavailable (%s)", token.kind, error)


def install(app: Flask) -> None:
    """Put the tracking layer in front of Flask (and behind ProxyFix, which wraps later)."""
    wrapped: Callable[..., Any] = TrackingMiddleware(app, app.wsgi_app)
    app.wsgi_app = wrapped  # type: ignore[method-assign]
