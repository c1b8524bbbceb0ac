"""Benchmark: an access-request export of one person with many letters (decision 0089).

Run: .venv/bin/python bench/subject_export.py [--letters N] [--others M]. One process, a
throw-away SQLite database (tables made from the models): one contact with N letters, each
with its stored copy (~3 kB, zlib as the sender keeps it), and M letters to other people
in the same campaigns, a reply and an open per hundred letters. Prints the time to find
what is stored (collect_subject), the time to write the ZIP, its size, and the peak of
Python memory (tracemalloc) while writing: the export streams a chunk of rows at a time,
so the peak should not grow with N.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
import tracemalloc
import zlib
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from campaign import create_app  # noqa: E402
from campaign.extensions import db  # noqa: E402
from campaign.models import (  # noqa: E402
    Campaign,
    Contact,
    Delivery,
    InboundMessage,
    Statement,
    TrackingEvent,
)
from campaign.services.privacy import subject_export  # noqa: E402

ADDRESS = "olga.petrova@example.org"


def _letter(n: int) -> bytes:
    head = (
        f"From: Campaign <campaign@example.org>\r\nTo: {ADDRESS}\r\nSubject: Letter {n}\r\n"
        f"Message-ID: <l{n}@example.org>\r\n\r\n"
    ).encode()
    return head + (f"Paragraph {n} of a joint letter about a detained journalist. " * 50).encode()


def seed(letters: int, others: int) -> None:
    now = datetime.now(UTC)
    statement = Statement(title="Bench")
    db.session.add(statement)
    db.session.flush()
    campaign = Campaign(name="Bench", statement_id=statement.id)
    db.session.add(campaign)
    person = Contact(email=ADDRESS, email_key=ADDRESS, family_name="Petrova")
    db.session.add(person)
    db.session.flush()
    rows = []
    for n in range(letters + others):
        mine = n < letters
        data = _letter(n)
        rows.append(
            {
                "campaign_id": campaign.id,
                "contact_id": person.id if mine else None,
                "step": n,
                "email": ADDRESS if mine else f"other{n}@example.org",
                "status": "sent",
                "message_id": f"<l{n}@example.org>",
                "unsubscribe_token": f"t{n}",
                "sent_at": now,
                "message_sha256": hashlib.sha256(data).hexdigest(),
                "message_blob": zlib.compress(data, 1),
                "created_at": now,
                "updated_at": now,
            }
        )
        if len(rows) == 5000:
            db.session.execute(insert(Delivery), rows)
            rows = []
    if rows:
        db.session.execute(insert(Delivery), rows)
    for n in range(0, letters, 100):
        db.session.add(InboundMessage(source_key=f"k{n}", delivery_id=n + 1, from_address=ADDRESS))
        db.session.add(
            TrackingEvent(campaign_id=campaign.id, delivery_id=n + 1, kind="open", hit_key=f"h{n}")
        )
    db.session.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--letters", type=int, default=10_000)
    parser.add_argument("--others", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        app = create_app(
            {
                "SECRET_KEY": "bench-secret-key-not-for-production",
                "INSTANCE_PATH": str(Path(directory) / "instance"),
                "DATABASE_URL": f"sqlite:///{directory}/export.sqlite3",
                "REDIS_URL": "redis://127.0.0.1:1/0",  # never reached: no job is queued
                "PUBLIC_URL": "https://campaign.example.org",
            }
        )
        with app.app_context():
            db.create_all()
            seed(args.letters, args.others)
            db.session.expunge_all()
            started = time.perf_counter()
            record = subject_export.collect_subject(ADDRESS)
            found = time.perf_counter() - started
            target = Path(directory) / "export.zip"
            tracemalloc.start()
            started = time.perf_counter()
            with target.open("wb") as stream:
                subject_export.write_export(record, stream)
            written = time.perf_counter() - started
            _current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(f"letters {args.letters:,} (others {args.others:,})")
            print(f"collect_subject   {found:8.2f} s")
            print(f"write_export      {written:8.2f} s  ({args.letters / written:,.0f} letters/s)")
            print(f"ZIP size          {target.stat().st_size / 1e6:8.1f} MB")
            print(f"peak Python heap  {peak / 1e6:8.1f} MB while writing")


if __name__ == "__main__":
    main()
