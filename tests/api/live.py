"""The app served on a real port in a thread, for tests that talk HTTP to it (Schemathesis).

Unlike tests/browser's `live_server`, this serves the test's own `app` (the `app` fixture of
tests/conftest.py, so on SQLite and on PostgreSQL) and starts no RQ worker or mail sink:
API calls need neither, and jobs they enqueue just wait in the test's Redis.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    # HTTP/1.1 keeps connections open between a test's requests (a requests.Session).
    protocol_version = "HTTP/1.1"

    def log_request(self, *args: object, **kwargs: object) -> None:
        pass


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 with a thread per request; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="api-live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
