"""The EHLO SIZE probe of the pre-launch check has one overall deadline: a server that drips
its greeting a byte a second cannot hold a page or a launch; the answer is kept per account
in Redis for every process."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from campaign.extensions import db
from campaign.models import Campaign
from campaign.services.sending import campaigns
from campaign.services.statements import files as statement_files
from campaign.services.statements import statements
from tests.factories import CampaignFactory, StatementFactory
from tests.services.test_statement_files import BILINGUAL, FROM, READERS, _pdf


class DrippingServer:
    """Accepts connections and sends an SMTP greeting one byte a second, never finishing."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._drip, args=(client,), daemon=True).start()

    def _drip(self, client: socket.socket) -> None:
        with client:
            greeting = b"220-mx.slow.example ESMTP " + b"." * 100_000
            for byte in greeting:
                if self.stopped.wait(1.0):
                    return
                try:
                    client.sendall(bytes([byte]))
                except OSError:
                    return

    def stop(self) -> None:
        self.stopped.set()
        self.listener.close()


@pytest.fixture
def dripping_server() -> Iterator[DrippingServer]:
    server = DrippingServer()
    yield server
    server.stop()


def _in_thread(app: Flask, work: Any) -> list[Any]:
    """Run `work()` in its own app context; [result] once it returned (a hang gives [])."""
    done: list[Any] = []

    def run() -> None:
        with app.app_context():
            done.append(work())
            db.session.remove()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    # Far beyond the deadline: only a probe without one is still running by then.
    thread.join(60)
    return done


def test_a_dripping_server_gives_a_warning_within_the_deadline_and_is_asked_once(
    app: Flask, dripping_server: DrippingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statement_files, "PROBE_DEADLINE", 3.0)
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=dripping_server.port)
    statement = StatementFactory(**BILINGUAL)
    annex = statements.add_attachment(statement, "annexe.pdf", _pdf(5000, "x"))
    campaign = CampaignFactory(statement=statement, recipients=READERS, from_address=FROM)
    statement_files.choose_files(campaign, [annex.id])
    db.session.commit()
    campaign_id = campaign.id

    def check() -> tuple[list[str], list[str]]:
        found = db.session.get(Campaign, campaign_id)
        assert found is not None
        result = campaigns.check_campaign(found)
        return [str(e) for e in result.errors], [str(w) for w in result.warnings]

    done = _in_thread(app, check)
    assert done, "the check did not return: the probe has no overall deadline"
    errors, warnings = done[0]
    assert not [e for e in errors if "Files" in e]
    assert any(
        "could not be asked for its size limit" in w and "did not answer in time" in w
        for w in warnings
    ), warnings
    # Asked again (another page, another process): the answer kept in Redis is used.
    again = _in_thread(app, check)
    assert again and again[0][1] == warnings
    assert dripping_server.accepted == 1

    # The launch is not held either: a warning does not stop it.
    launched = _in_thread(
        app, lambda: campaigns.launch_campaign(db.session.get(Campaign, campaign_id))
    )
    assert launched == [True]
