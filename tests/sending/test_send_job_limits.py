"""A send job run in the worker's own process (decision 0077) never holds the worker past its
timeout: a relay that dribbles its replies cannot keep it, RQ's stop-job command does not
kill the worker's process group, and the job's timeout is never taken for a bad letter."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from rq.timeouts import JobTimeoutException, UnixSignalDeathPenalty
from sqlalchemy import select

from campaign.config import PROJECT_ROOT
from campaign.extensions import db
from campaign.models import Delivery, DeliveryStatus
from campaign.services.sending import batches
from campaign.smtp import SmtpConnection, SmtpSettings
from tests import servers
from tests.burst_worker import app_for, launch_to_envoys, worker_settings
from tests.fault_smtp import FaultSmtpServer
from tests.services.test_sending import _launch, _rows, app_overrides  # noqa: F401


class Dribbler:
    """An SMTP server that takes the message, then answers its final dot with a continuation
    line ("250-still thinking") every 0.5 s, for ever: each line within any read timeout."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection, connection.makefile("rb") as lines:
            try:
                connection.sendall(b"220 hi\r\n")
                in_data = False
                while not self.stop.is_set():
                    line = lines.readline()
                    if not line:
                        return
                    if in_data:
                        if line == b".\r\n":
                            break
                        continue
                    command = line[:4].upper()
                    if command == b"EHLO":
                        connection.sendall(b"250-x\r\n250 8BITMIME\r\n")
                    elif command == b"DATA":
                        connection.sendall(b"354 go\r\n")
                        in_data = True
                    else:
                        connection.sendall(b"250 ok\r\n")
                while not self.stop.is_set():
                    connection.sendall(b"250-still thinking\r\n")
                    time.sleep(0.5)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


@pytest.fixture
def dribbler() -> Any:
    server = Dribbler()
    yield server
    server.close()


def test_the_jobs_timeout_is_not_held_by_a_dribbling_relay(dribbler: Dribbler) -> None:
    # What the job's SIGALRM does in the worker: the exception unwinds through the
    # connection's exit, which sends no QUIT (whose answer the relay would hold for ever).
    settings = SmtpSettings("k", "n", "127.0.0.1", dribbler.port, "none", "", "", timeout=2)
    connection = SmtpConnection(settings, helo_name="example.org")
    # Cuts the connection should the test hang (what it did before the fix): it then fails.
    rescue = threading.Timer(10, connection.abort)
    rescue.start()
    started = time.monotonic()
    try:
        with pytest.raises(JobTimeoutException):  # noqa: SIM117 - the order is the point
            with UnixSignalDeathPenalty(1, JobTimeoutException, job_id="t"), connection:
                connection.send("a@example.org", "b@example.org", b"Subject: x\r\n\r\nhi\r\n")
    finally:
        rescue.cancel()
    assert time.monotonic() - started < 10, "the job's timeout waited for the relay"


def test_a_send_job_held_by_a_relay_frees_the_worker_and_its_rows(
    tmp_path: Path, sqlite_template: Path, redis_server: servers.RedisServer, dribbler: Dribbler
) -> None:
    settings = worker_settings(tmp_path, sqlite_template, redis_server)
    settings.update(
        {
            "CAMPAIGN_MAIL_SERVER": "127.0.0.1",
            "CAMPAIGN_MAIL_PORT": str(dribbler.port),
            "CAMPAIGN_MAIL_TIMEOUT": "2",
            "CAMPAIGN_MAIL_DEFAULT_SENDER": "HRN <office@hrn.example.org>",
            "CAMPAIGN_PUBLIC_URL": "https://campaign.example.org",
            "CAMPAIGN_SEND_LEASE_SECONDS": "3",  # the send job's timeout
            "CAMPAIGN_SEND_HEARTBEAT_SECONDS": "1",  # a lease of 4 s
        }
    )
    app = app_for(settings)
    with app.app_context():
        campaign_id, emails = launch_to_envoys(3)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
        env.update(settings)
        worker = subprocess.Popen(
            [sys.executable, "-m", "workers", "--burst", "--log-level", "WARNING"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            # The burst worker ends once its one job ended: the job's timeout (3 s), not the
            # relay, decides (before decision 0077's fix it ran for ever).
            output = worker.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            worker.kill()
            output = worker.communicate()[0]
            pytest.fail(f"the worker was still held 60 s after a 3 s job timeout:\n{output}")
        # The lease is renewed no more: the reconciler takes the rows back once it ends.
        deadline = time.monotonic() + 30
        while True:
            db.session.rollback()
            leases = db.session.scalars(
                select(Delivery.lease_until).where(Delivery.campaign_id == campaign_id)
            ).all()
            if all(lease is None or lease < batches._now() for lease in leases):
                break
            assert time.monotonic() < deadline, f"leases still renewed: {leases}\n{output}"
            time.sleep(0.2)
        batches.reconcile(commit=db.session.commit)
        rows = db.session.execute(
            select(Delivery.email, Delivery.status).where(Delivery.campaign_id == campaign_id)
        ).all()
        # The letter in flight may have gone out: in doubt; the two others go again.
        assert sorted(rows) == [
            (emails[0], DeliveryStatus.IN_DOUBT.value),
            (emails[1], DeliveryStatus.QUEUED.value),
            (emails[2], DeliveryStatus.QUEUED.value),
        ], output


_KILL_HORSE_WITH_NO_HORSE = """
import logging
from workers.__main__ import CampaignWorker
from workers.context import stop_requested
worker = CampaignWorker.__new__(CampaignWorker)  # the constructor would need Redis
worker._horse_pid, worker.name, worker.log = 0, "w", logging.getLogger("w")
worker.kill_horse()  # what RQ's stop-job and stop-execution commands call
print("alive; job asked to stop:", stop_requested(), flush=True)
"""


def test_stopping_a_send_job_run_in_the_worker_kills_no_process() -> None:
    # In a session of its own: RQ's kill_horse with no horse killed the process group.
    finished = subprocess.run(
        [sys.executable, "-c", _KILL_HORSE_WITH_NO_HORSE],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
        check=False,
    )
    assert finished.returncode == 0, (finished.returncode, finished.stderr[-2000:])
    assert "alive; job asked to stop: True" in finished.stdout
    assert finished.returncode != -signal.SIGKILL


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database's matter
def test_the_jobs_timeout_while_a_letter_is_built_marks_no_row_failed(
    app: Any, fault_smtp: FaultSmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign, _ = _launch(2)
    compose = batches.compose_letter

    def compose_then_time_out(*args: Any, **kwargs: Any) -> Any:
        compose(*args, **kwargs)
        raise JobTimeoutException("the job's SIGALRM landed while the letter was built")

    monkeypatch.setattr(batches, "compose_letter", compose_then_time_out)
    with pytest.raises(JobTimeoutException):
        batches.send_batch(campaign.id, worker="test-worker", commit=db.session.commit)
    db.session.rollback()
    # Never tried: not failed, and nothing went out; the lease brings the rows back.
    assert not fault_smtp.messages
    assert {row.status for row in _rows(campaign.id)} == {DeliveryStatus.SENDING.value}
