"""Benchmark: `write_backup` and `restore_backup` (decision 0087): time and archive size for
the demo installation and for 100,000 contacts with 100,000 deliveries, on both engines.

Run: flock /tmp/machine.lock .venv/bin/python bench/backup.py [--contacts N] [--no-postgres]

For each source (the demo loaded through `load_demo`; N generated contacts in one list and a
campaign launched to all of them, so N ledger rows), on SQLite and on PostgreSQL (a
throw-away cluster as bench/search.py starts one, else CAMPAIGN_BENCH_POSTGRES_URL): the
backup's wall and CPU seconds and the archive's size, then its restore into a fresh
database of the same engine and into one of the other engine (the drill), each with its
wall seconds (decrypting and checking, migrations, loading, the forward migration and
the hold). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.search import postgres  # noqa: E402
from campaign import create_app  # noqa: E402
from campaign.extensions import db  # noqa: E402
from campaign.models import Campaign, Delivery  # noqa: E402
from campaign.services.backups.archive import new_identity, write_backup  # noqa: E402
from campaign.services.backups.restore import restore_backup  # noqa: E402
from campaign.services.sending import campaigns  # noqa: E402

STARTED = time.perf_counter()


def log(message: str) -> None:
    print(f"  · {time.perf_counter() - STARTED:6.1f} s  {message}", file=sys.stderr, flush=True)


def make_app(url: str, redis_url: str, instance: Path, *, migrate: bool) -> Any:
    logging.disable(logging.INFO)
    app = create_app(
        {
            "SECRET_KEY": "bench-secret-key-not-for-production",
            "INSTANCE_PATH": str(instance),
            "DATABASE_URL": url,
            "REDIS_URL": redis_url,
            "QUEUE_NAME": f"bench-backup-{secrets.token_hex(3)}",
            "PUBLIC_URL": "https://campaign.hrn.example.org",
            "MAIL_DEFAULT_SENDER": "Human Rights Network <campaign@hrn.example.org>",
        }
    )
    if migrate:
        with app.app_context():
            from flask_migrate import upgrade

            upgrade()
    return app


class Databases:
    """Fresh empty databases on demand: SQLite files, PostgreSQL databases on one cluster."""

    def __init__(self, folder: Path, postgres_url: str) -> None:
        self.folder = folder
        self.postgres_url = postgres_url
        self.made: list[str] = []

    def new(self, engine: str) -> str:
        name = f"bench_{secrets.token_hex(4)}"
        if engine == "sqlite":
            return f"sqlite:///{self.folder / (name + '.sqlite3')}"
        admin = create_engine(self.postgres_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
        self.made.append(name)
        return make_url(self.postgres_url).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if not self.made:
            return
        admin = create_engine(self.postgres_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            for name in self.made:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def seed_demo() -> str:
    from campaign.demo.loader import load_demo

    load_demo(admin_password="bench demo password, long enough")  # noqa: S106
    db.session.commit()
    return "demo"


def seed_generated(count: int) -> str:
    from bench.launch import seed

    campaign_id = seed(count)
    campaign = db.session.get(Campaign, campaign_id)
    assert campaign is not None
    assert campaigns.launch_campaign(campaign)
    db.session.commit()
    rows = db.session.scalar(select(func.count()).select_from(Delivery))
    return f"{count:,} contacts, {rows:,} deliveries"


def close(app: Any) -> None:
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def timed_restore(archive: Path, identity: Path, url: str, redis_url: str, folder: Path) -> float:
    instance = folder / f"restored-{secrets.token_hex(3)}"
    app = make_app(url, redis_url, instance, migrate=False)
    with app.app_context():
        started = time.perf_counter()
        restore_backup(archive, identity)
        seconds = time.perf_counter() - started
    close(app)
    shutil.rmtree(instance, ignore_errors=True)
    return seconds


def run_case(
    label: str, engine: str, databases: Databases, redis_url: str, folder: Path, count: int
) -> list[str]:
    url = databases.new(engine)
    app = make_app(url, redis_url, folder / f"source-{engine}-{label}", migrate=True)
    with app.app_context():
        log(f"{engine}: seeding {label}")
        described = seed_demo() if label == "demo" else seed_generated(count)
        text, public = new_identity()
        identity = folder / f"identity-{secrets.token_hex(3)}.txt"
        identity.write_text(text)
        archive = folder / f"{engine}-{label}.age"
        log(f"{engine}: backing up {described}")
        t0, c0 = time.perf_counter(), time.process_time()
        manifest = write_backup(archive, [public])
        backup_wall, backup_cpu = time.perf_counter() - t0, time.process_time() - c0
    close(app)
    rows = sum(manifest.table_counts.values())
    lines = []
    for target in ("sqlite", "postgresql") if databases.postgres_url else ("sqlite",):
        log(f"{engine} archive: restoring into {target}")
        seconds = timed_restore(archive, identity, databases.new(target), redis_url, folder)
        lines.append(
            f"| {described} | {engine} | {rows:,} | {backup_wall:.1f} s ({backup_cpu:.1f} s CPU) "
            f"| {manifest.size_bytes / 1_000_000:.1f} MB | {target} | {seconds:.1f} s |"
        )
    archive.unlink(missing_ok=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--no-postgres", action="store_true")
    options = parser.parse_args()
    from tests import servers

    redis = servers.start_redis()
    folder = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    lines: list[str] = []
    try:
        with postgres(not options.no_postgres) as (postgres_url, how):
            log(f"PostgreSQL: {how}")
            databases = Databases(folder, postgres_url)
            try:
                engines = ["sqlite"] + (["postgresql"] if postgres_url else [])
                for label in ("demo", "generated"):
                    for engine in engines:
                        lines += run_case(
                            label, engine, databases, redis.url, folder, options.contacts
                        )
            finally:
                databases.drop_all()
    finally:
        redis.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print("| Data | Backed up from | Rows | Backup | Archive | Restored into | Restore |")
    print("|---|---|---|---|---|---|---|")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
