"""Benchmark: the JSON API through gunicorn, beside the same work through the services.

Run: .venv/bin/python bench/api.py [--contacts N] [--list-requests N] [--concurrency C]
                                   [--bulk-requests N] [--bulk-size N] [--no-postgres]

What it does, in one run, on one machine, for SQLite and then PostgreSQL (a throw-away
cluster as the tests start one, when pg_ctl exists; else CAMPAIGN_BENCH_POSTGRES_URL):
- Migrates an empty database and inserts `--contacts` generated contacts (100,000) in
  chunks; makes an admin and an API key for them through the services.
- Serves the real app (`wsgi:app`) with gunicorn, W sync workers (2).
- list: `--list-requests` (2,000) `GET /api/v1/contacts?limit=100` over C connections (8),
  each from a random place in the 100,000 (a cursor signed as the API signs them), timed
  from the first byte written to the last byte read; requests/s and p50/p99.
  Beside it, in this process and on the same database: the same pages through the
  service (`filtered_query` of services/contacts/search.py, 100 rows after the same ids),
  and the service plus the API's JSON for them (`represent` and pydantic's dump).
- bulk: `--bulk-requests` (3) `POST /api/v1/contacts/bulk` of `--bulk-size` (10,000) new
  contacts each, one at a time, then one that updates 10,000 of them; beside it, the same
  items through `importing.upsert_contacts` and a commit.

Nothing is asserted: it prints a table per database. The load generator runs on the same
2 cores as gunicorn, so the API's figures are a floor for the server alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The throw-away PostgreSQL cluster (or CAMPAIGN_BENCH_POSTGRES_URL) as bench/search.py has it.
from bench.search import postgres  # noqa: E402
from tests import servers  # noqa: E402

SECRET_KEY = "bench-secret-key-" + "x" * 32
PUBLIC_URL = "https://campaign.example.org"
QUEUE_NAME = "bench-api"
CHUNK = 5_000
PAGE = 100
GIVEN = ["Anna", "Jonas", "Claire", "Olga", "Tomasz", "Amara", "Rafael", "Nadia", "Pierre"]
FAMILY = ["Sample", "Weber", "Moreau", "Ivanova", "Kowalski", "Diallo", "Silva", "Haddad"]
ORGS = ["Ministry of Foreign Affairs", "Embassy", "Parliament", "Permanent Mission", ""]


# --- data ---------------------------------------------------------------------------------


def contact_rows(count: int, rng: random.Random) -> list[dict[str, Any]]:
    """Rows for a direct insert (the seed: as stored, not as sent)."""
    rows = []
    for i in range(count):
        email = f"seed.{i}@example{i % 40}.org"
        rows.append(
            {
                "kind": "person",
                "given_name": rng.choice(GIVEN),
                "family_name": rng.choice(FAMILY),
                "organisation": rng.choice(ORGS),
                "email": email,
                "email_key": email,
            }
        )
    return rows


def bulk_items(batch: str, count: int, rng: random.Random) -> list[dict[str, Any]]:
    """Items as a client sends them to the bulk upsert (valid, distinct addresses)."""
    return [
        {
            "email": f"bulk.{batch}.{i}@example{i % 40}.org",
            "given_name": rng.choice(GIVEN),
            "family_name": rng.choice(FAMILY),
            "organisation": rng.choice(ORGS),
        }
        for i in range(count)
    ]


# --- set-up -------------------------------------------------------------------------------


def make_app(database_url: str, redis_url: str, instance: Path) -> Any:
    from flask_migrate import upgrade
    from sqlalchemy import text

    from campaign import create_app
    from campaign.extensions import db

    logging.disable(logging.INFO)
    app = create_app(
        {
            "SECRET_KEY": SECRET_KEY,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "QUEUE_NAME": QUEUE_NAME,
            "PUBLIC_URL": PUBLIC_URL,
            "INSTANCE_PATH": str(instance),
        }
    )
    with app.app_context():
        upgrade()
        if database_url.startswith("postgres"):
            tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
            db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            db.session.commit()
    return app


def seed(app: Any, contacts: int, rng: random.Random) -> tuple[str, float]:
    """Insert the contacts; an admin and a key with every scope. (token, insert seconds)"""
    from sqlalchemy import insert, text

    from campaign.extensions import db
    from campaign.models import Contact, Role
    from campaign.services.accounts import api_keys, users

    rows = contact_rows(contacts, rng)
    with app.app_context():
        started = time.perf_counter()
        for start in range(0, len(rows), CHUNK):
            db.session.execute(insert(Contact), rows[start : start + CHUNK])
        db.session.commit()
        seconds = time.perf_counter() - started
        db.session.execute(text("ANALYZE"))
        db.session.commit()
        admin = users.create_user("bench@example.org", "a long bench password 1", Role.ADMIN)
        made = api_keys.create_key(
            admin,
            name="bench",
            scopes=api_keys.scopes_for(admin),
            expires_in_days=None,
            created_by=admin,
        )
        db.session.commit()
        return made.token, seconds


class Gunicorn:
    """gunicorn serving the app on a free port, stopped on exit (as in bench/tracking.py)."""

    def __init__(self, env: dict[str, str], workers: int) -> None:
        self.port = servers.free_port()
        command = [
            str(Path(sys.executable).parent / "gunicorn"),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--timeout",
            "300",
            "wsgi:app",
        ]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
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


def _environment(database_url: str, redis_url: str, instance: Path) -> dict[str, str]:
    return {
        "CAMPAIGN_SECRET_KEY": SECRET_KEY,
        "CAMPAIGN_DATABASE_URL": database_url,
        "CAMPAIGN_REDIS_URL": redis_url,
        "CAMPAIGN_QUEUE_NAME": QUEUE_NAME,
        "CAMPAIGN_PUBLIC_URL": PUBLIC_URL,
        "CAMPAIGN_INSTANCE_PATH": str(instance),
        # One key makes every call here: its per-minute limit would refuse most of them.
        "CAMPAIGN_API_RATE_LIMIT_PER_MINUTE": "0",
    }


# --- measuring ----------------------------------------------------------------------------


@dataclass
class Timings:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    note: str = ""
    bodies: list[bytes] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000

    def failures(self, ok: int = 200) -> int:
        return self.errors + sum(n for code, n in self.statuses.items() if code != ok)


def timed(calls: list[Callable[[], Any]]) -> Timings:
    """Run the calls one after another in this process, each timed."""
    return taking_turns([calls])[0]


def taking_turns(cases: list[list[Callable[[], Any]]]) -> list[Timings]:
    """Time several lists of calls, one call of each in turn, so that a cold cache or a
    burst of load from elsewhere on the machine weighs on all of them alike."""
    results = [Timings() for _ in cases]
    for position in range(max(len(calls) for calls in cases)):
        for calls, result in zip(cases, results, strict=True):
            if position < len(calls):
                begun = time.perf_counter()
                calls[position]()
                result.latencies.append(time.perf_counter() - begun)
    for result in results:
        result.seconds = sum(result.latencies)
    return results


async def _exchange(port: int, request: bytes) -> tuple[int, bytes]:
    """One request on a new connection (gunicorn's sync workers close each one)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        body = await (reader.readexactly(length) if length is not None else reader.read())
        return status, body
    finally:
        writer.close()


def _request(method: str, path: str, token: str, body: bytes = b"") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Accept: application/json\r\nConnection: close\r\n"
    )
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def _drive(port: int, requests: list[bytes], concurrency: int, keep: bool) -> Timings:
    result = Timings()
    position = 0

    async def connection_loop() -> None:
        nonlocal position
        while position < len(requests):
            request = requests[position]
            position += 1
            started = time.perf_counter()
            try:
                status, body = await _exchange(port, request)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                result.errors += 1
            else:
                result.latencies.append(time.perf_counter() - started)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if keep:
                    result.bodies.append(body)

    started = time.perf_counter()
    await asyncio.gather(*(connection_loop() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


def drive(port: int, requests: list[bytes], concurrency: int, keep: bool = False) -> Timings:
    return asyncio.run(_drive(port, requests, concurrency, keep))


# --- the scenarios ------------------------------------------------------------------------

#: A table row: its name, its timings, and the service row its ratio divides by (None: itself).
Row = tuple[str, Timings, Timings | None]


def list_scenario(
    app: Any, port: int, token: str, args: argparse.Namespace, rng: random.Random
) -> list[Row]:
    from sqlalchemy import func, select

    from campaign.extensions import db
    from campaign.models import Contact
    from campaign.services.contacts.search import ContactFilters, filtered_query
    from campaign.web.api.contacts import ContactPage, represent
    from campaign.web.api.conventions import encode_cursor

    with app.app_context():
        top = int(db.session.scalar(select(func.max(Contact.id))) or 0)
        afters = [rng.randrange(0, max(top - PAGE, 1)) for _ in range(args.list_requests)]
        paths = [
            f"/api/v1/contacts?limit={PAGE}"
            + (f"&cursor={encode_cursor('contacts', after)}" if after else "")
            for after in afters
        ]

        def service(after: int, as_json: bool) -> Callable[[], Any]:
            def run() -> Any:
                query = (
                    filtered_query(ContactFilters())
                    .where(Contact.id > after)
                    .order_by(Contact.id)
                    .limit(PAGE + 1)
                )
                rows = list(db.session.scalars(query))[:PAGE]
                if as_json:
                    ContactPage(
                        items=[represent(c) for c in rows], next_cursor=None
                    ).model_dump_json()
                db.session.expunge_all()
                db.session.rollback()
                return rows

            return run

        for after in afters[:50]:  # warm-up: caches and compiled statements
            service(after, True)()
        direct, direct_json = taking_turns(
            [
                [service(after, False) for after in afters],
                [service(after, True) for after in afters],
            ]
        )
    requests = [_request("GET", path, token) for path in paths]
    drive(port, requests[:50], args.concurrency)  # warm-up: each worker's first requests
    through_api = drive(port, requests, args.concurrency)
    # One connection: a request's own time, without waiting behind the others.
    alone = drive(port, requests[: max(args.list_requests // 10, 1)], 1)
    return [
        (f"service: filtered_query, {PAGE} rows", direct, None),
        ("service + the API's JSON (represent, dump)", direct_json, direct),
        (f"API: GET /contacts?limit={PAGE}, {args.concurrency} connections", through_api, direct),
        (f"API: GET /contacts?limit={PAGE}, 1 connection", alone, direct),
    ]


def bulk_scenario(
    app: Any, port: int, token: str, args: argparse.Namespace, rng: random.Random
) -> list[Row]:
    from campaign.extensions import db
    from campaign.services.contacts import importing

    size = args.bulk_size
    direct_batches = [bulk_items(f"d{n}", size, rng) for n in range(args.bulk_requests)]
    api_batches = [bulk_items(f"a{n}", size, rng) for n in range(args.bulk_requests)]
    # The update: the first batch again with every given name changed.
    direct_update = [{**item, "given_name": item["given_name"] + "a"} for item in direct_batches[0]]
    api_update = [{**item, "given_name": item["given_name"] + "a"} for item in api_batches[0]]

    def upsert(items: list[dict[str, Any]], outcomes: dict[str, int]) -> Callable[[], None]:
        def run() -> None:
            with app.app_context():
                for outcome in importing.upsert_contacts(items):
                    outcomes[outcome.status] = outcomes.get(outcome.status, 0) + 1
                db.session.commit()

        return run

    created: dict[str, int] = {}
    changed: dict[str, int] = {}

    def post(items: list[dict[str, Any]]) -> bytes:
        body = json.dumps({"items": items}).encode()
        return _request("POST", "/api/v1/contacts/bulk", token, body)

    # In turns, a service call then a request, so that the database grows alike for both.
    direct_create, direct_change = Timings(), Timings()
    api_create, api_change = Timings(), Timings()
    pairs = zip(direct_batches, api_batches, strict=True)
    turns = [(d, a, direct_create, api_create) for d, a in pairs]
    turns.append((direct_update, api_update, direct_change, api_change))
    for direct_items, api_items, direct_result, api_result in turns:
        outcomes = created if direct_result is direct_create else changed
        direct_result.latencies += timed([upsert(direct_items, outcomes)]).latencies
        answered = drive(port, [post(api_items)], 1, keep=True)
        api_result.latencies += answered.latencies
        api_result.bodies += answered.bodies
        api_result.errors += answered.errors
        for code, count in answered.statuses.items():
            api_result.statuses[code] = api_result.statuses.get(code, 0) + count
    for result in (direct_create, direct_change, api_create, api_change):
        result.seconds = sum(result.latencies)
    direct_create.note, direct_change.note = _counts(created), _counts(changed)
    api_create.note, api_change.note = _answered(api_create), _answered(api_change)
    return [
        (f"service: upsert_contacts, {size:,} new", direct_create, None),
        (f"API: POST /contacts/bulk, {size:,} new", api_create, direct_create),
        (f"service: upsert_contacts, {size:,} changed", direct_change, None),
        (f"API: POST /contacts/bulk, {size:,} changed", api_change, direct_change),
    ]


def _answered(result: Timings) -> str:
    """What the bulk answers said they did (created, updated, ...), added up."""
    counts: dict[str, int] = {}
    for body in result.bodies:
        try:
            answer = json.loads(body)
        except ValueError:
            continue
        for status in ("created", "updated", "unchanged", "failed"):
            if isinstance(answer, dict) and answer.get(status):
                counts[status] = counts.get(status, 0) + int(answer[status])
    return _counts(counts)


def _counts(outcomes: dict[str, int]) -> str:
    return ", ".join(f"{status} {count:,}" for status, count in sorted(outcomes.items()))


def print_table(title: str, rows: list[Row], unit: str) -> None:
    print(f"\n{title}")
    header = f"{'':52} {unit:>8} {'vs svc':>7} {'p50 ms':>9} {'p99 ms':>9} {'n':>6} {'failed':>6}"
    print(header)
    print("-" * len(header))
    for name, result, baseline in rows:
        base = baseline.per_second if baseline is not None else result.per_second
        ratio = result.per_second / base if base else float("nan")
        print(
            f"{name:52} {result.per_second:>8.1f} {ratio:>7.2f} {result.percentile(50):>9.1f} "
            f"{result.percentile(99):>9.1f} {len(result.latencies):>6} "
            f"{result.failures():>6}" + (f"  {result.note}" if result.note else "")
        )


def run_database(
    label: str, database_url: str, redis_url: str, workdir: Path, args: argparse.Namespace
) -> None:
    rng = random.Random(17)
    instance = workdir / label.split()[0].lower()
    instance.mkdir(parents=True, exist_ok=True)
    app = make_app(database_url, redis_url, instance)
    token, insert_seconds = seed(app, args.contacts, rng)
    print(
        f"\n== {label}: {args.contacts:,} contacts inserted in {insert_seconds:.1f} s", flush=True
    )
    server = Gunicorn(_environment(database_url, redis_url, instance), args.workers)
    try:
        listing = list_scenario(app, server.port, token, args, rng)
        print_table(f"{label} — list {PAGE} of {args.contacts:,}", listing, "req/s")
        bulk = bulk_scenario(app, server.port, token, args, rng)
        print_table(f"{label} — bulk upsert", bulk, "req/s")
        for name, result, _baseline in bulk:
            if result.latencies:
                per_item = args.bulk_size / statistics.median(result.latencies)
                print(f"  {name}: {per_item:,.0f} contacts/s (median request)")
    finally:
        server.stop()
        with app.app_context():
            from campaign.extensions import db

            db.session.remove()
            db.engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--list-requests", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--bulk-requests", type=int, default=3)
    parser.add_argument("--bulk-size", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (2)")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    print(
        f"gunicorn {args.workers} sync workers; {os.cpu_count()} cores shared with the load "
        f"generator; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    redis_server = servers.start_redis()
    try:
        with tempfile.TemporaryDirectory(prefix="campaign-bench-api-") as tmp:
            workdir = Path(tmp)
            run_database(
                "SQLite", f"sqlite:///{workdir / 'bench.sqlite3'}", redis_server.url, workdir, args
            )
            if args.no_postgres:
                print("\nPostgreSQL: skipped (--no-postgres)")
            else:
                with postgres() as (url, how):
                    if not url:
                        print(f"\nPostgreSQL: skipped ({how})")
                    else:
                        run_database(f"PostgreSQL ({how})", url, redis_server.url, workdir, args)
    finally:
        redis_server.stop()
    print(
        "\nreq/s: requests (or service calls) per second; vs svc: against the service row above it;"
        " p50/p99: latency of one request, connect to last byte (API) or one call (service)."
    )
    print(
        f"total run time {time.perf_counter() - started:.0f} s;"
        f" load average {os.getloadavg()[0]:.1f} (above the CPU count: other work competed)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
