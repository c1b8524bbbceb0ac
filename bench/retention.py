"""Benchmark: the daily retention run over a backlog of 100,000 old rows of each kind.

Run: .venv/bin/python bench/retention.py [--rows N] [--no-postgres]

One process: N old tracking events, N old audit entries, N old received messages and N
sent letters whose stored copies are past their period (plus as many newer rows of each,
which must stay), in a temporary SQLite database and, when it can be had, a throw-away
PostgreSQL cluster (bench/search.py). `apply_retention` is timed once with its per-run cap
(MAX_PER_RUN, what the nightly run does) and once more for the rest. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import base64
import logging
import random
import sys
import tempfile
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select, text  # noqa: E402

from campaign import create_app  # noqa: E402
from campaign.extensions import db  # noqa: E402
from campaign.models import (  # noqa: E402
    AuditEvent,
    Campaign,
    Delivery,
    InboundMessage,
    TrackingEvent,
)
from campaign.services.privacy import retention  # noqa: E402
from campaign.services.statements import statements  # noqa: E402

NOW = datetime(2027, 3, 1, 12, tzinfo=UTC)
CHUNK = 5000


def make_app(url: str, redis_url: str, instance: Path) -> Any:
    logging.disable(logging.INFO)
    app = create_app(
        {
            "SECRET_KEY": "bench-secret-key-not-for-production",
            "INSTANCE_PATH": str(instance),
            "DATABASE_URL": url,
            "REDIS_URL": redis_url,
            "QUEUE_NAME": "bench-retention",
            "PUBLIC_URL": "https://campaign.example.org",
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


def _chunks(table: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        db.session.execute(insert(table), rows[start : start + CHUNK])


def seed(count: int) -> None:
    old, new = NOW - timedelta(days=800), NOW - timedelta(days=10)
    statement = statements.create_statement("Letter", language="en", subject="S", body="Hello")
    campaign = Campaign(name="Bench", status="finished", statement_id=statement.id)
    db.session.add(campaign)
    db.session.flush()
    # A stored copy as sending leaves it: headers with a DKIM signature, a text part and an
    # HTML part (base64, as long lines are), compressed: ~3.5 KB, as in production (the
    # first version's repeated sentence compressed to ~50 bytes and flattered the figures).
    noise = random.Random(88).randbytes(3_400)
    message = (
        b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s1; b="
        + base64.b64encode(noise[:256])
        + b"\r\nSubject: About the defenders\r\n\r\n"
        + base64.encodebytes(noise)
        + b"We write about the defenders detained since March. " * 30
    )
    blob = zlib.compress(message)
    print(f"    stored copy: {len(message):,} bytes, {len(blob):,} compressed")
    _chunks(
        Delivery.__table__,
        [
            {
                "campaign_id": campaign.id,
                "step": 0,
                "email": f"r{n}@example.org",
                "status": "sent",
                "message_id": f"<m{n}@example.org>",
                "unsubscribe_token": f"t{n}",
                "sent_at": old if n < count else new,
                "message_sha256": "a" * 64,
                "message_blob": blob,
                "created_at": old,
                "updated_at": old,
            }
            for n in range(2 * count)
        ],
    )
    first = db.session.scalar(select(func.min(Delivery.id)))
    _chunks(
        TrackingEvent.__table__,
        [
            {
                "campaign_id": campaign.id,
                "delivery_id": first + n % count,
                "kind": "open",
                "occurred_at": old if n < count else new,
                "hit_key": f"h{n}",
                "ip_prefix": "192.0.2.0",
                "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Gecko/20100101",
            }
            for n in range(2 * count)
        ],
    )
    _chunks(
        AuditEvent.__table__,
        [
            {"action": "contact.update", "at": old if n < count else new, "detail": {}}
            for n in range(2 * count)
        ],
    )
    _chunks(
        InboundMessage.__table__,
        [
            {
                "source_key": f"k{n}",
                "kind": "bounce",
                # Half matched to a letter (kept as a stub for the funnel), half not (deleted).
                "delivery_id": first + n % count if n % 2 else None,
                "from_address": "mailer-daemon@example.net",
                "subject": "Undelivered Mail Returned to Sender",
                "text": "Delivery failed. " * 20,
                "raw_blob": blob,
                "created_at": old if n < count else new,
                "received_at": old if n < count else new,
            }
            for n in range(2 * count)
        ],
    )
    db.session.commit()


def run(label: str, url: str, redis_url: str, tmp: Path, count: int) -> None:
    app = make_app(url, redis_url, tmp / f"{label}-instance")
    with app.app_context():
        started = time.perf_counter()
        seed(count)
        print(f"{label}: seeded 4 × {2 * count:,} rows in {time.perf_counter() - started:.1f} s")
        timings: dict[str, float] = {}
        # Timed wrappers for this run only: the next engine's run wraps the real removers.
        originals = dict(retention._REMOVERS)
        for kind, remover in originals.items():

            def timed(cutoff: datetime, remover: Any = remover, kind: str = kind) -> Any:
                began = time.perf_counter()
                try:
                    return remover(cutoff)
                finally:
                    timings[kind] = timings.get(kind, 0.0) + time.perf_counter() - began

            retention._REMOVERS[kind] = timed
        for attempt in ("capped run", "the rest"):
            timings.clear()
            started = time.perf_counter()
            report = retention.apply_retention(NOW)
            db.session.commit()
            seconds = time.perf_counter() - started
            removed = ", ".join(f"{kind} {n:,}" for kind, n in report.removed.items() if n)
            print(f"{label}: {attempt}: {seconds:.2f} s — removed {removed or 'nothing'}")
            print("    " + ", ".join(f"{kind} {t:.2f} s" for kind, t in timings.items()))
        retention._REMOVERS.update(originals)
        db.session.remove()
        db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--no-postgres", action="store_true")
    options = parser.parse_args()
    from bench.search import postgres
    from tests import servers

    redis = servers.start_redis()
    try:
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            run("sqlite", f"sqlite:///{tmp / 'bench.sqlite3'}", redis.url, tmp, options.rows)
            if not options.no_postgres:
                with postgres() as (url, how):
                    if url:
                        run("postgres", url, redis.url, tmp, options.rows)
                    else:
                        print(f"postgres: skipped ({how})")
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
