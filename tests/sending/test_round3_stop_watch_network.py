"""The stop flag's watch over a real network fault (decision 0082): the watch's connection
goes silent (half-open: a NAT entry dropped, a partition, a proxy switching its backend)
while the rest of Redis works. No byte, no EOF, no reset arrives, so the watch would keep
answering "not stopped"; it trusts its answer only for a bounded time and then asks on that
connection, and a pause recorded after the silence began still stops the next letter.

A TCP proxy between the application and Redis (a thread of this test) stops forwarding
Redis's bytes to the watch's connection, and only to it: a real fault on a real socket."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from flask import Flask

from campaign import smtp
from campaign.extensions import db
from campaign.models import Campaign
from campaign.services.sending import campaigns, stop_watch
from tests.fault_smtp import FaultSmtpServer
from tests.services.test_sending import _launch, _send, sending_overrides

# How long the watch's connection has been silent when the pause comes: more than the
# 0.1 s for which the watch trusts its own answer.
SILENT_FOR = 0.3


class SilencingProxy:
    """TCP in front of Redis's Unix socket; `silence()` holds Redis's bytes to the watch."""

    def __init__(self, unix_path: str) -> None:
        self.path = unix_path
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(50)
        self.port = self.listener.getsockname()[1]
        self.watches: set[int] = set()
        self.silenced: set[int] = set()
        self.closing = False
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def silence(self) -> None:
        """From now on, nothing Redis writes reaches the watch (held, never closed)."""
        assert self.watches, "the batch watches the flag on a connection of its own"
        self.silenced |= self.watches

    def close(self) -> None:
        self.closing = True
        self.silenced.clear()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        number = 0
        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            number += 1
            server = socket.socket(socket.AF_UNIX)
            server.connect(self.path)
            self.sockets += [client, server]
            for args in ((client, server, number, True), (server, client, number, False)):
                threading.Thread(target=self._pump, args=args, daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, number: int, up: bool) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)
                return
            if up and stop_watch.CLIENT_NAME.encode() in data:
                self.watches.add(number)
            while not up and number in self.silenced and not self.closing:
                time.sleep(0.01)
            try:
                sink.sendall(data)
            except OSError:
                return


@pytest.fixture
def proxy(app_overrides: dict[str, Any]) -> Iterator[SilencingProxy]:
    url = urlparse(app_overrides["REDIS_URL"])
    assert url.scheme == "unix", "the test Redis listens on a Unix socket"
    running = SilencingProxy(url.path)
    yield running
    running.close()


@pytest.fixture
def app_overrides(
    app_overrides: dict[str, Any], fault_smtp: FaultSmtpServer, proxy: SilencingProxy
) -> dict[str, Any]:
    password = parse_qs(urlparse(app_overrides["REDIS_URL"]).query)["password"][0]
    return {
        **sending_overrides(app_overrides, fault_smtp),
        "REDIS_URL": f"redis://:{password}@127.0.0.1:{proxy.port}/0",
    }


def test_a_pause_after_the_watch_went_silent_stops_the_next_letter(
    app: Flask, fault_smtp: FaultSmtpServer, proxy: SilencingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign, _ = _launch(60)
    original = smtp.SmtpConnection.send
    begun_after_pause = {"n": 0, "paused": False}

    def send(self: smtp.SmtpConnection, *args: Any, **kwargs: Any) -> smtp.SendOutcome:
        if begun_after_pause["paused"]:
            begun_after_pause["n"] += 1
        outcome = original(self, *args, **kwargs)
        if len(fault_smtp.messages) == 3:
            # The watch's connection dies in silence, and a while later (longer than the
            # watch trusts its own answer, stop_watch.TRUST_SECONDS) staff press Pause in
            # another request.
            proxy.silence()
            time.sleep(SILENT_FOR)

            def press() -> None:
                with app.app_context():
                    assert campaigns.pause_campaign(db.session.get(Campaign, campaign.id))
                    db.session.commit()
                    db.session.remove()

            thread = threading.Thread(target=press)
            thread.start()
            thread.join(timeout=30)
            begun_after_pause["paused"] = True
        return outcome

    monkeypatch.setattr(smtp.SmtpConnection, "send", send)
    result = _send(campaign.id)
    # No letter was begun after the pause was recorded (the letter in hand had gone).
    assert begun_after_pause["n"] == 0
    assert len(fault_smtp.messages) == 3 and result.sent == 3
    counts = campaigns.status_counts(campaign.id)
    assert (counts["sent"], counts["queued"]) == (3, 57)
