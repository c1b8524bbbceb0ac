"""Tracking hits served by gunicorn's asyncio worker: `gunicorn -k asgi wsgi:tracking`.

The same answers as the web application gives (the whole WSGI chain runs: ProxyFix for
the reader's network, Strict-Transport-Security, then the tracking layer of
campaign/tracking/wsgi.py), but one event loop per process instead of a thread pool: with
gthread, each request on a kept-alive connection crosses threads twice (poller to pool and
back); a bare WSGI app returning a GIF took 127 µs of CPU per request there and 49 µs here
(decision 0076).
nginx sends `/t/` here and everything else to the web application; anything else that
reaches this app is a 404, never a staff page run inside the event loop.

A hit's work is short and runs inline (a thread hand-off would cost more): it never waits
on anything slower than one Redis round trip with a 0.5 s timeout
(buffer.REDIS_TIMEOUT_SECONDS). The one database read, a click's link the process has not
cached yet, never runs on the loop: the inline pass raises NeedsDatabase there, and the
request runs again on a small thread pool, awaited at most LINK_WAIT_SECONDS (then a 503
with Retry-After). Pixels and cached clicks go on meanwhile, whatever holds the database.
"""

from __future__ import annotations

import asyncio
import gc
import io
import sys
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from campaign.tracking.batch import HitQueue
from campaign.tracking.wsgi import (
    ABANDONED,
    CLICK_PREFIX,
    HIT_QUEUE,
    NO_DATABASE,
    OPEN_PREFIX,
    NeedsDatabase,
    finished,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_NOT_FOUND_HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", b"9"),
    (b"cache-control", b"no-store"),
]
_EMPTY_INPUT = b""
# Threads reading links a process has not cached yet: a few, so that a locked or unreachable
# database holds at most these (each read gives up after wsgi.LINK_READ_TIMEOUT_MS).
LINK_READ_THREADS = 2
# How long a click waits for its link's read before the reader is told to try again: more
# than the read's own timeout, for a connection that cannot even be made.
LINK_WAIT_SECONDS = 1.5


class TrackingASGI:
    """An ASGI app answering `/t/o/…` and `/t/c/…` through `wsgi_app`, 404 for the rest."""

    def __init__(self, wsgi_app: WSGIApplication) -> None:
        self.wsgi_app = wsgi_app
        self.link_readers: ThreadPoolExecutor | None = None
        # The hits answered on this process's loop, pushed one command per loop turn.
        self.hits = HitQueue()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send, self.hits)
            return
        if kind != "http":
            return  # a websocket: refused by closing
        path: str = scope["path"]
        if scope["method"] not in ("GET", "HEAD") or not path.startswith(
            (OPEN_PREFIX, CLICK_PREFIX)
        ):
            await send(
                {"type": "http.response.start", "status": 404, "headers": _NOT_FOUND_HEADERS}
            )
            await send({"type": "http.response.body", "body": b"Not found"})
            return
        environ = _environ(scope)
        environ[NO_DATABASE] = True
        environ[HIT_QUEUE] = self.hits
        try:
            status, headers, body = _run(self.wsgi_app, environ)
        except NeedsDatabase as needed:
            status, headers, body = await self._off_the_loop(scope, needed)
        await send(
            {
                "type": "http.response.start",
                "status": int(status[:3]),
                "headers": [
                    (name.lower().encode(), value.encode("latin-1")) for name, value in headers
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _off_the_loop(
        self, scope: Scope, needed: NeedsDatabase
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        """The request run again on a link reader thread, where it may read the database."""
        if self.link_readers is None:
            self.link_readers = ThreadPoolExecutor(LINK_READ_THREADS, "tracking-link")
        environ = _environ(scope)
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self.link_readers, _run, self.wsgi_app, environ),
                LINK_WAIT_SECONDS,
            )
        except TimeoutError:
            # The read goes on in its thread (and caches the link when it comes back), but
            # counts no click: this reader is told to try again.
            environ[ABANDONED] = True
            return finished(needed.unavailable(environ), is_hit=scope["method"] == "GET")


def _run(
    wsgi_app: WSGIApplication, environ: WSGIEnvironment
) -> tuple[str, list[tuple[str, str]], bytes]:
    answer: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        answer[:] = [status, headers]
        return None

    body = b"".join(_close_after(wsgi_app(environ, start_response)))
    status, headers = answer
    return status, headers, body


def _close_after(result: Iterable[bytes]) -> Iterable[bytes]:
    try:
        yield from result
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()


def _environ(scope: Scope) -> WSGIEnvironment:
    """The WSGI environ of a body-less GET or HEAD (PEP 3333)."""
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": "",
        "PATH_INFO": scope["path"].encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] if server[1] is not None else 80),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": client[0] if client else "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(_EMPTY_INPUT),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        if name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[name] = value
            continue
        key = f"HTTP_{name}"
        # Repeated headers are joined, as a WSGI server does (X-Forwarded-For included).
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


async def _lifespan(receive: Receive, send: Send, hits: HitQueue) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            # Before the process serves anything: the application's objects (~190,000,
            # loaded once and kept) leave the collector's generations. Otherwise a full
            # collection, which the hits' short-lived objects set off now and then, walks
            # them all on the event loop: 90-600 ms during which no hit is answered
            # (decision 0080).
            gc.collect()
            gc.freeze()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            # A clean stop (SIGTERM, a restart) pushes the hits answered last.
            await hits.drain()
            await send({"type": "lifespan.shutdown.complete"})
            return
