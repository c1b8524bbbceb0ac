"""Benchmark: importing 100,000 generated contacts from CSV, against a plain csv read.

Run: .venv/bin/python bench/import.py [--rows N] (CAMPAIGN_BENCH_POSTGRES_URL adds a
PostgreSQL run). Prints rows/s, seconds and peak memory per case and the ratio to the
baseline. Memory is the tracemalloc peak of Python allocations during the case (it does
not include SQLite's own C allocations); the run is repeated at a quarter of the rows to
show whether memory grows with the file.
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import random
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HEADERS = [
    "given_name",
    "family_name",
    "grammatical_gender",
    "role_type",
    "style",
    "position_title",
    "organisation",
    "country",
    "languages",
    "email",
    "secretariat_email",
    "risk_level",
    "tags",
]
GIVEN = [
    "Dilnoza",
    "Berdi",
    "Claire",
    "Jonas",
    "Marta",
    "Lena",
    "Tomasz",
    "Amara",
    "Rafael",
    "Nadia",
    "Pierre",
    "Aigerim",
    "Müller",
    "Zoë",
    "Ольга",
    "Иван",
    "José",
    "Åsa",
]
FAMILY = [
    "Namunova",
    "Misalov",
    "Exemple",
    "Probe",
    "Muster",
    "Beispiel",
    "Przykład",
    "Sample",
    "Ejemplo",
    "Primerova",
    "Témoin",
    "Qazaqova",
    "Петрова",
    "O'Brien",
]
ROLES = ["ambassador", "official", "mep", "un_sr", "journalist", "ngo", "minister", "other"]
ORGS = [
    "European Parliament",
    "OHCHR Special Procedures",
    "Paris daily newspaper",
    "Ministry for Europe and Foreign Affairs",
    "Embassy of Uzbekistan in France",
    "Partner bureau for human rights (fictional)",
    "European External Action Service",
]
COUNTRIES = ["FR", "DE", "UZ", "TM", "KZ", "EU", "UN", "PL", "LV", "BE", "NL"]
LANGS = ["en", "fr", "ru", "de", "en;fr", "ru;en", "fr;en;ru"]
RISKS = ["public", "public", "public", "low", "elevated", "high"]
TAGS = ["press", "eu;mep", "un;torture", "diplomat;france", "partner", "eu", "detention"]


def generate(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(HEADERS)
        for i in range(rows):
            given, family = rng.choice(GIVEN), rng.choice(FAMILY)
            role = rng.choice(ROLES)
            writer.writerow(
                [
                    given,
                    family,
                    rng.choice(["f", "m", ""]),
                    role,
                    "excellency" if role == "ambassador" else "",
                    f"{role.replace('_', ' ').title()} {i % 97}",
                    rng.choice(ORGS),
                    rng.choice(COUNTRIES),
                    rng.choice(LANGS),
                    f"{given.lower()}.{i}@example{i % 40}.org",
                    f"office.{i}@example.org" if i % 10 == 0 else "",
                    rng.choice(RISKS),
                    rng.choice(TAGS),
                ]
            )


@dataclass
class Measured:
    name: str
    rows: int
    seconds: float
    peak_bytes: int


def measure(name: str, rows: int, work: Callable[[], Any]) -> Measured:
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return Measured(name, rows, seconds, peak)


def plain_csv_read(path: Path) -> int:
    count = 0
    with path.open(encoding="utf-8", newline="") as stream:
        for _row in csv.reader(stream):
            count += 1
    return count


def import_into(database_url: str, instance: Path, path: Path) -> Callable[[], Any]:
    from campaign import create_app

    app = create_app(
        {
            "DEBUG": True,
            "TESTING": True,
            "INSTANCE_PATH": str(instance),
            "DATABASE_URL": database_url,
            "IMPORT_MAX_MB": 1024,
        }
    )
    with app.app_context():
        from flask_migrate import upgrade

        from campaign.extensions import db

        upgrade()
        if database_url.startswith("postgres"):
            from sqlalchemy import text

            tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
            db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            db.session.commit()

    def work() -> None:
        from campaign.extensions import db
        from campaign.services import importing

        with app.app_context():
            info, rows = importing.open_contact_file(path)
            rows.close()
            mapping = importing.auto_mapping(info.headers)
            result = importing.import_contacts(path, mapping, rejects_path=instance / "rej.csv")
            db.session.commit()
            assert result.rejected == 0, result.summary()
            db.session.remove()
            db.engine.dispose()

    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    import logging

    logging.disable(logging.INFO)
    results: list[Measured] = []
    with tempfile.TemporaryDirectory(prefix="campaign-bench-") as tmp:
        base = Path(tmp)
        sizes = [args.rows // 4, args.rows]
        files = {}
        for n in sizes:
            files[n] = base / f"contacts-{n}.csv"
            generate(files[n], n)
        big = files[args.rows]
        print(f"file: {args.rows:,} rows, {big.stat().st_size / 1e6:.1f} MB")
        results.append(
            measure("csv module read (baseline)", args.rows, lambda: plain_csv_read(big))
        )
        targets = [("SQLite", "sqlite")]
        if os.environ.get("CAMPAIGN_BENCH_POSTGRES_URL"):
            targets.append(("PostgreSQL", os.environ["CAMPAIGN_BENCH_POSTGRES_URL"]))
        for label, url in targets:
            for n in sizes:
                instance = base / f"{label}-{n}"
                instance.mkdir()
                db_url = f"sqlite:///{instance}/bench.sqlite3" if url == "sqlite" else url
                work = import_into(db_url, instance, files[n])
                results.append(measure(f"import -> {label}", n, work))
    baseline = results[0]
    print()
    print(f"{'case':34} {'rows':>8} {'seconds':>8} {'rows/s':>9} {'peak MB':>8} {'x baseline':>10}")
    for r in results:
        rate = r.rows / r.seconds
        ratio = r.seconds / (baseline.seconds * r.rows / baseline.rows)
        print(
            f"{r.name:34} {r.rows:>8,} {r.seconds:>8.2f} {rate:>9,.0f} "
            f"{r.peak_bytes / 1e6:>8.1f} {ratio:>10.1f}"
        )
    print("\npeak MB: tracemalloc peak of Python allocations during the case.")
    print("x baseline: time per row relative to the plain csv read.")


if __name__ == "__main__":
    main()
