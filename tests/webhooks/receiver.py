"""A real HTTPS webhook receiver on 127.0.0.1 (certificate from tests/tls_ca.py), in-process.

receiver.answers = [500, 204]      # what the next requests get (then 204 for ever)
receiver.answers = [("slow", 3)]   # wait 3 s (or until stopped) before answering 204
receiver.answers = [("redirect", "https://127.0.0.1:1/x")]
receiver.requests                  # what arrived: path, headers (lower-cased), body
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.tls_ca import ServerCertificate


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    def __init__(self, certificate: ServerCertificate) -> None:
        self.answers: list[Any] = []
        self.requests: list[Received] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.requests.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    answer = receiver.answers.pop(0) if receiver.answers else 204
                if isinstance(answer, tuple) and answer[0] == "slow":
                    receiver.stopping.wait(answer[1])
                    answer = 204
                if isinstance(answer, tuple) and answer[0] == "redirect":
                    self.send_response(302)
                    self.send_header("Location", answer[1])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                payload = b"ok" * 10_000  # longer than the client reads: it stops at a few KB
                self.send_response(int(answer))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client read its few KB and left
                    self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        context = certificate.server_context()
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        # shutdown() waits for the loop's next look at its flag: every 50 ms, not every 500 ms.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, host: str = "127.0.0.1", path: str = "/hook") -> str:
        return f"https://{host}:{self.port}{path}"

    def bodies(self) -> list[bytes]:
        with self.lock:
            return [r.body for r in self.requests]


@contextmanager
def running_receiver(certificate: ServerCertificate) -> Iterator[Receiver]:
    receiver = Receiver(certificate)
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.stopping.set()
        receiver.server.shutdown()
        receiver.server.server_close()
