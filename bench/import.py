"""Benchmark: importing 100,000 generated contacts from CSV, against a plain csv read.

Run: .venv/bin/python bench/import.py [--rows N] [--no-postgres]. PostgreSQL is a
throw-away cluster started as the tests do when pg_ctl is installed, else
CAMPAIGN_BENCH_POSTGRES_URL, else skipped with a note. Each case runs in a fresh process,
so timings are not slowed by a memory tracer and memory is the process's own: "peak MB" is
the growth of peak RSS (getrusage ru_maxrss) during the case, over the RSS after start-up
(app built, database migrated). It includes SQLite's C allocations. Every case runs at a
quarter and at all of the rows: flat memory means the two peaks are about equal. The full
file is also imported without the contacts search's index (migration 0021: an FTS5 table
kept by triggers on SQLite, a pg_trgm GIN index on PostgreSQL), to show what that index
costs every contact insert. "CPU s" is the case's own CPU time (user + system), steadier
than the wall clock on a shared machine. Issue 18's aim: at least 25,000 rows/s at 100,000
rows, memory flat. --before PATH (a checkout such as 1c16f40) runs that code's import of
the full file too, in the same run. Also times the contacts page (server side, Flask test
client) over 100,000 contacts when campaign/web/contacts/contacts.py exists.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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
# Names as contact files hold them: Latin letters with accents, and a few in Cyrillic.
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
    "Zoë",
    "José",
    "Åsa",
    "Hélène",
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
    "O'Brien",
    "Müller",
]
# About 1 row in 20 carries its names in Cyrillic (given, family).
CYRILLIC = [("Ольга", "Петрова"), ("Иван", "Смирнов"), ("Дильноза", "Намунова")]
# Most addresses are plain ASCII (people's names without accents), about 1 in 20 is at an
# internationalised (IDN) domain, and 1 in 500 has non-ASCII letters before the @.
ASCII_FOLD = str.maketrans("ëéèåäöüłçñ", "eeeaaoulcn")
IDN_DOMAINS = ["außenministerium-beispiel.de", "bücher-probe.example", "пример-мид.рф"]
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
            local = f"{given}.{family}".lower().translate(ASCII_FOLD).replace("'", "")
            if i % 20 == 3:
                given, family = rng.choice(CYRILLIC)
            if i % 500 == 7:
                local = f"{given.lower()}.{family.lower()}"  # zoë.müller@, ольга.петрова@
            domain = rng.choice(IDN_DOMAINS) if i % 20 == 11 else f"example{i % 40}.org"
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
                    f"{local}.{i}@{domain}",
                    f"office.{i}@example.org" if i % 10 == 0 else "",
                    rng.choice(RISKS),
                    rng.choice(TAGS),
                ]
            )


GENERATED = (
    "generated rows: names mostly Latin with accents, 1 in 20 in Cyrillic; addresses mostly "
    "plain ASCII, 1 in 20 at an IDN domain, 1 in 500 with non-ASCII letters before the @"
)


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def plain_csv_read(path: Path) -> int:
    count = 0
    with path.open(encoding="utf-8", newline="") as stream:
        for _row in csv.reader(stream):
            count += 1
    return count


def make_app(database_url: str, instance: Path) -> Any:
    import logging

    from campaign import create_app

    logging.disable(logging.INFO)
    app = create_app(
        {
            "DEBUG": True,
            "TESTING": True,
            "WTF_CSRF_ENABLED": False,
            "SESSION_COOKIE_SECURE": False,
            "INSTANCE_PATH": str(instance),
            "DATABASE_URL": database_url,
            "IMPORT_MAX_MB": 1024,
        }
    )
    with app.app_context():
        from flask_migrate import upgrade
        from sqlalchemy import text

        from campaign.extensions import db

        upgrade()
        if database_url.startswith("postgres"):
            tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
            db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            db.session.commit()
    return app


AIM_ROWS_PER_SECOND = 25_000
# The contacts search's index (migration 0021), as its downgrade removes it.
WITHOUT_SEARCH_INDEX = {
    "sqlite": [
        "DROP TRIGGER IF EXISTS contacts_search_au",
        "DROP TRIGGER IF EXISTS contacts_search_ad",
        "DROP TRIGGER IF EXISTS contacts_search_ai",
        "DROP TABLE IF EXISTS contacts_search_queue",
        "DROP TABLE IF EXISTS contacts_search",
    ],
    "postgresql": ["DROP INDEX IF EXISTS ix_contacts_search_key_trgm"],
}


def drop_search_index() -> None:
    from campaign.extensions import db

    connection = db.session.connection()
    for statement in WITHOUT_SEARCH_INDEX.get(connection.dialect.name, []):
        connection.exec_driver_sql(statement)
    db.session.commit()


def empty_postgres(url: str) -> None:
    """Drop every table (and the extensions) of the database, for another checkout's
    migrations; the bench's own throw-away cluster, never the tests'."""
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_case(case: str, path: Path, database_url: str, instance: Path) -> dict[str, Any]:
    """One measurement, in this (fresh) process."""
    if case == "baseline":
        before = peak_rss_bytes()
        cpu = cpu_seconds()
        started = time.perf_counter()
        rows = plain_csv_read(path) - 1
        return {
            "seconds": time.perf_counter() - started,
            "cpu": cpu_seconds() - cpu,
            "rows": rows,
            "peak": peak_rss_bytes() - before,
        }
    app = make_app(database_url, instance)
    from campaign.extensions import db
    from campaign.services.contacts import importing

    with app.app_context():
        if case == "import-without-index":
            drop_search_index()
        info, rows_reader = importing.open_contact_file(path)
        rows_reader.close()
        mapping = importing.auto_mapping(info.headers)
        before = peak_rss_bytes()
        cpu = cpu_seconds()
        started = time.perf_counter()
        result = importing.import_contacts(path, mapping, rejects_path=instance / "rej.csv")
        db.session.commit()
        seconds = time.perf_counter() - started
        assert result.rejected == 0, result.summary()
        measured: dict[str, Any] = {
            "seconds": seconds,
            "cpu": cpu_seconds() - cpu,
            "rows": result.imported,
            "peak": peak_rss_bytes() - before,
        }
        if case == "import+page":
            measured["page"] = time_contacts_page(app)
    return measured


def time_contacts_page(app: Any) -> dict[str, float]:
    """Server time of the contacts table over the imported contacts (median of 5)."""
    from campaign.extensions import db
    from campaign.models import Role
    from campaign.services.accounts.users import create_user

    with app.app_context():
        create_user("bench@example.org", "bench password long enough", Role.VIEWER)
        db.session.commit()
    client = app.test_client()
    client.post(
        "/login", data={"email": "bench@example.org", "password": "bench password long enough"}
    )
    timings = {}
    for label, url in [
        ("first page", "/contacts/"),
        ("search 'exemple'", "/contacts/?q=exemple"),
        ("filter country=FR", "/contacts/?country=FR"),
    ]:
        samples = []
        for _ in range(5):
            started = time.perf_counter()
            response = client.get(url)
            samples.append(time.perf_counter() - started)
            assert response.status_code == 200, (url, response.status_code)
        timings[label] = sorted(samples)[2]
    return timings


def child(
    case: str, path: Path, database_url: str, instance: Path, code: Path | None = None
) -> dict[str, Any]:
    output = subprocess.run(
        [
            sys.executable,
            __file__,
            "--case",
            case,
            "--file",
            str(path),
            "--database-url",
            database_url,
            "--instance",
            str(instance),
            *(["--code", str(code)] if code else []),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--case", default="")
    parser.add_argument("--file", type=Path)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--instance", type=Path)
    parser.add_argument(
        "--before",
        type=Path,
        help="a checkout of the code before issue 18 (such as 1c16f40): its import is run "
        "on the full file too, beside today's",
    )
    parser.add_argument("--code", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.code:
        sys.path.insert(0, str(args.code))  # the child imports that checkout's campaign
        if args.database_url.startswith("postgres"):
            empty_postgres(args.database_url)  # that checkout's migrations start afresh
    if args.case:
        print(json.dumps(run_case(args.case, args.file, args.database_url, args.instance)))
        return
    from bench.search import postgres

    has_page = (ROOT / "campaign" / "web" / "contacts" / "contacts.py").exists()
    table: list[tuple[str, int, dict[str, Any]]] = []
    page: dict[str, float] = {}
    notes: list[str] = []
    print(f"load average at start {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)", flush=True)
    with tempfile.TemporaryDirectory(prefix="campaign-bench-") as tmp:
        base = Path(tmp)
        sizes = [args.rows // 4, args.rows]
        files = {}
        for n in sizes:
            files[n] = base / f"contacts-{n}.csv"
            generate(files[n], n)
        print(
            f"file: {args.rows:,} rows, {files[args.rows].stat().st_size / 1e6:.1f} MB,"
            f" {os.cpu_count()} CPUs"
        )
        print(GENERATED)
        for n in sizes:
            table.append(("csv module read (baseline)", n, child("baseline", files[n], "", base)))

        def run_target(label: str, url: str) -> None:
            nonlocal page
            cases = [(n, "import") for n in sizes] + [(args.rows, "import-without-index")]
            if args.before:
                cases.append((args.rows, "before"))
            for n, case in cases:
                instance = base / f"{label}-{case}-{n}"
                instance.mkdir()
                db_url = f"sqlite:///{instance}/bench.sqlite3" if url == "sqlite" else url
                name = f"import -> {label}"
                code = None
                if case == "before":
                    # Its own migrations (before 1c16f40's successors: no search index).
                    case, code = "import", args.before
                    name += f", before ({args.before.name})"
                elif case == "import-without-index":
                    name += ", no search index"
                elif has_page and n == args.rows and label == "SQLite":
                    case = "import+page"
                measured = child(case, files[n], db_url, instance, code)
                page = measured.pop("page", page)
                table.append((name, n, measured))

        run_target("SQLite", "sqlite")
        if args.no_postgres:
            notes.append("PostgreSQL: skipped (--no-postgres)")
        else:
            with postgres() as (url, how):
                if url:
                    notes.append(f"PostgreSQL: {how}")
                    run_target("PostgreSQL", url)
                else:
                    notes.append(f"PostgreSQL: skipped ({how})")
    baseline_rate = {n: m["rows"] / m["seconds"] for name, n, m in table if "baseline" in name}
    print()
    print(
        f"{'case':48} {'rows':>8} {'seconds':>8} {'CPU s':>6} {'rows/s':>9} {'aim':>9}"
        f" {'peak MB':>8} {'x baseline':>10}"
    )
    for name, n, m in table:
        rate = m["rows"] / m["seconds"]
        aim = f">= {AIM_ROWS_PER_SECOND:,}" if name.startswith("import") and n == args.rows else ""
        print(
            f"{name:48} {n:>8,} {m['seconds']:>8.2f} {m['cpu']:>6.2f} {rate:>9,.0f} {aim:>9}"
            f" {m['peak'] / 1e6:>8.1f} {baseline_rate[n] / rate:>10.1f}"
        )
    for note in notes:
        print(note)
    print("\npeak MB: growth of peak RSS (ru_maxrss) during the case, in a fresh process.")
    print("CPU s: the case process's own CPU time (PostgreSQL's server work is not in it).")
    print("x baseline: how many times longer per row than the plain csv read.")
    print("no search index: migration 0021's index dropped before the import (its write cost).")
    if page:
        print(f"\ncontacts page, server time at {args.rows:,} contacts (median of 5, test client):")
        for label, seconds in page.items():
            print(f"  {label:24} {seconds * 1000:8.1f} ms")
    elif not has_page:
        print("\ncontacts page: skipped (campaign/web/contacts/contacts.py does not exist yet)")


if __name__ == "__main__":
    main()
