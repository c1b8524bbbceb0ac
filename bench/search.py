"""Benchmark: the contacts search at 100,000 contacts, with its indexes, against the scan
it replaces and the LIKEs before the search key (issue 18, decisions 0032 and 0070).

Run: .venv/bin/python bench/search.py [--rows N] [--no-postgres]. One process: N generated
contacts are put into a temporary SQLite database and, when it can be had, a PostgreSQL one
(a throw-away cluster started as the tests do when pg_ctl is installed, else
CAMPAIGN_BENCH_POSTGRES_URL, else PostgreSQL is skipped with a note). Names mix Latin and
Cyrillic: 3,000 family names, a fifth of them Cyrillic ("Петрова", "Иванов"), given names
such as "Olga" and "Ольга".

For each query, RUNS timings (taking turns, so load from elsewhere hits all of them) of:
- "before": the clause the search used until the search key existed, rebuilt here: on
  SQLite one LIKE per column (nine columns) and per case variant of a non-ASCII word; on
  PostgreSQL one ILIKE over the nine columns joined by spaces; counting the matches
  (OLD_RUNS timings only: it is slow and only a reference).
- "scan": today's rule without an index (one LIKE per folded word over search_key).
- "index": the real `filtered_query(ContactFilters(q=...))`, counting the matches; it uses
  the pg_trgm GIN index / the SQLite FTS5 trigram table of migration 0021.
- "page": the real `numbered_page(ContactFilters(q=...), per_page=50)`: the count (exact up
  to 10,000) and the first page sorted by name, which is what a person waits for.
p50 and p99 pool the timings of every query, beside the issue's aim (≤ 30 ms / ≤ 100 ms).
Then the write cost of the index: a bulk INSERT of 10,000 contacts with and without it (two
rounds taking turns, the best of each), and the time migration 0021 takes to build it over
the table.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RUNS = 15
OLD_RUNS = 3
CHUNK = 5_000
WRITE_ROWS = 10_000
QUERIES = [
    ("qwxzvj", "a word found nowhere"),
    ("olga", "Latin given name"),
    ("Ольга", "Cyrillic given name"),
    ("petrova", "Latin family name"),
    ("embassy", "common organisation word"),
    ("olga petrova", "two words"),
    ("ov", "2 characters: no trigram, a scan"),
    ("a", "1 character: a scan"),
]

# Family names: 2,400 Latin (stem + ending) and 600 Cyrillic, "Petrova" and "Петрова",
# "Ivanov" and "Иванов" among them and also drawn more often (COMMON).
LATIN_ENDINGS = [
    "ova",
    "ov",
    "son",
    "sen",
    "mann",
    "ski",
    "ska",
    "ez",
    "ini",
    "elli",
    "escu",
    "ic",
    "berg",
    "stein",
    "ard",
]
CYRILLIC_STEMS = [
    "Петр",
    "Иван",
    "Смирн",
    "Кузнец",
    "Соколь",
    "Морозк",
    "Волк",
    "Лебед",
    "Козл",
    "Новик",
    "Павл",
    "Семён",
    "Голуб",
    "Виноград",
    "Богдан",
    "Ворон",
    "Фёдор",
    "Михайл",
    "Белк",
    "Тарас",
    "Рахим",
    "Каримж",
    "Юсуп",
    "Назар",
    "Алиев",
    "Бердымух",
    "Хасан",
    "Ташкент",
    "Самарканд",
    "Бухар",
    "Ахмед",
    "Жукъ",
    "Орл",
    "Зайц",
    "Медвед",
    "Сорок",
    "Гусь",
    "Щерб",
    "Ёлк",
    "Чайк",
]
CYRILLIC_ENDINGS = [
    "ов",
    "ова",
    "ин",
    "ина",
    "енко",
    "ский",
    "ская",
    "ев",
    "ева",
    "ян",
    "ович",
    "иди",
    "ук",
    "юк",
    "ай",
]
COMMON = [("Petrova", False), ("Ivanov", False), ("Петрова", True), ("Иванов", True)]
LATIN_GIVEN = [
    "Olga",
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
    "Dilnoza",
    "Berdi",
    "Anna",
    "Maria",
    "Sofia",
    "Elena",
    "Ivan",
    "Sergei",
    "Tatiana",
    "Jean",
    "Luc",
    "Ines",
    "Karim",
    "Farid",
    "Gulnara",
    "Timur",
    "Aziz",
    "Ewa",
    "Piotr",
    "Hans",
    "Greta",
    "Liam",
    "Noah",
    "Emma",
    "Mia",
]
CYRILLIC_GIVEN = [
    "Ольга",
    "Иван",
    "Сергей",
    "Татьяна",
    "Наталья",
    "Дильноза",
    "Тимур",
    "Гульнара",
    "Алексей",
    "Мария",
    "Елена",
    "Дмитрий",
    "Анна",
    "Фарид",
    "Юлия",
]
PATRONYMICS = ["Ивановна", "Сергеевна", "Петровна", "Алексеевич", "Дмитриевич", "Тимурович"]
ORGS = [
    "Embassy of Uzbekistan in France",
    "Embassy of France in Uzbekistan",
    "Embassy of Germany in Kazakhstan",
    "Embassy of Turkmenistan in Belgium",
    "European Parliament",
    "European External Action Service",
    "OHCHR Special Procedures",
    "Ministry for Europe and Foreign Affairs",
    "Federal Foreign Office",
    "Paris daily newspaper",
    "Partner bureau for human rights (fictional)",
    "Council of the European Union",
    "Посольство Республики Узбекистан во Франции",
    "Министерство иностранных дел",
    "Правозащитный центр (вымышленный)",
    "Редакция газеты",
]
TITLES = [
    "Ambassador",
    "Counsellor",
    "First Secretary",
    "Member of the European Parliament",
    "Special Rapporteur",
    "Journalist",
    "Desk officer",
    "Посол",
    "Советник",
    "Первый секретарь",
    "Журналист",
]
ROLES = ["ambassador", "official", "mep", "un_sr", "journalist", "ngo", "minister", "other"]
COUNTRIES = ["FR", "DE", "UZ", "TM", "KZ", "EU", "UN", "PL", "BE", "RU"]
RISKS = ["public", "public", "public", "low", "elevated", "high"]
LANGS = ["en", "fr", "ru", "ru en", "fr en ru"]
TAGS = ["press", "eu mep", "un torture", "diplomat france", "partner", ""]


def latin(text: str) -> str:
    """A transliteration as people write it in Latin ("Ольга" → "Olga")."""
    from anyascii import anyascii

    return anyascii(text).replace("'", "")


def family_names(rng: random.Random) -> tuple[list[str], list[str]]:
    syllables = [c + v for c in "bdfghklmnprstvz" for v in "aeiou"]
    stems = {"Petr", "Ivan", "Smirn", "Muell", "Kowal", "Dubo", "Rossi"}
    while len(stems) < 160:
        stems.add((rng.choice(syllables) + rng.choice(syllables) + rng.choice("nrlsk")).title())
    latin_names = [stem + ending for stem in sorted(stems) for ending in LATIN_ENDINGS]
    cyrillic_names = [stem + ending for stem in CYRILLIC_STEMS for ending in CYRILLIC_ENDINGS]
    return latin_names, cyrillic_names


def generate(rows: int, seed: int = 11) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    latin_family, cyrillic_family = family_names(rng)
    everyone = [(name, False) for name in latin_family] + [(n, True) for n in cyrillic_family]
    out = []
    for i in range(rows):
        # Surnames are heavy-tailed: a few common ones take 4 in 100 rows.
        family, cyrillic = rng.choice(COMMON if rng.random() < 0.04 else everyone)
        given = rng.choice(CYRILLIC_GIVEN if cyrillic else LATIN_GIVEN)
        patronymic = rng.choice(PATRONYMICS) if cyrillic and i % 2 == 0 else ""
        # A quarter of the Cyrillic names also carry their Latin spelling (for letters in
        # Latin script); half have an address made of the transliterated name.
        alt = cyrillic and i % 4 == 1
        if cyrillic and i % 2 == 1:
            email = f"office.{i}@mid{i % 20}.example"
        else:
            local = f"{latin(given)}.{latin(family)}".lower()
            email = f"{local}.{i}@example{i % 40}.org"
        out.append(
            {
                "kind": "person",
                "given_name": given,
                "family_name": family,
                "patronymic": patronymic,
                "given_name_alt": latin(given) if alt else "",
                "family_name_alt": latin(family) if alt else "",
                "patronymic_alt": latin(patronymic) if alt else "",
                "grammatical_gender": rng.choice(["f", "m", "unknown"]),
                "role_type": rng.choice(ROLES),
                "position_title": rng.choice(TITLES),
                "organisation": rng.choice(ORGS),
                "country": rng.choice(COUNTRIES),
                "languages": rng.choice(LANGS),
                "email": email,
                "email_key": email.lower(),
                "tags": rng.choice(TAGS),
                "risk_level": rng.choice(RISKS),
            }
        )
    return out


# --------------------------------------------------------------------------- the old clause

OLD_COLUMNS = (
    "given_name",
    "family_name",
    "patronymic",
    "given_name_alt",
    "family_name_alt",
    "patronymic_alt",
    "organisation",
    "email_key",
    "position_title",
)


def old_search_clause(q: str, dialect: str) -> Any:
    """The search clause as it was before the search key (rebuilt from the old service)."""
    from sqlalchemy import String, and_, literal, or_

    from campaign.models import Contact
    from campaign.services.contacts.segments import escape_like

    columns = [getattr(Contact, name) for name in OLD_COLUMNS]
    clauses = []
    if dialect != "sqlite":
        # One ILIKE over the columns joined by spaces.
        text = columns[0].expression
        for column in columns[1:]:
            text = text + literal(" ", String) + column
        for word in q.split():
            clauses.append(text.ilike(f"%{escape_like(word)}%", escape="\\"))
        return and_(*clauses)
    for word in q.split():
        # SQLite's LIKE folds ASCII only: non-ASCII words were tried in their usual spellings.
        variants = (
            [word]
            if word.isascii()
            else list(
                dict.fromkeys([word, word.lower(), word.capitalize(), word.title(), word.upper()])
            )
        )
        clauses.append(
            or_(
                *(
                    column.like(f"%{escape_like(v)}%", escape="\\")
                    for column in columns
                    for v in variants
                )
            )
        )
    return and_(*clauses)


# --------------------------------------------------------------------------- databases


def make_app(database_url: str, instance: Path) -> Any:
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


@contextmanager
def postgres(wanted: bool = True) -> Iterator[tuple[str, str]]:
    """(url, how it was had), or ("", why not): "--no-postgres" when not `wanted`."""
    if not wanted:
        yield "", "--no-postgres"
        return
    from tests import servers

    if servers._postgres_bin_dir() is not None:
        # Always a throw-away cluster: the tests' CAMPAIGN_TEST_POSTGRES_URL is not ours to fill.
        saved = os.environ.pop("CAMPAIGN_TEST_POSTGRES_URL", None)
        try:
            server = servers.start_postgres()
        except BaseException as error:  # pytest.skip / pytest.fail outcomes
            if isinstance(error, KeyboardInterrupt):
                raise
            yield "", f"a throw-away cluster could not be started ({error})"
            return
        finally:
            if saved is not None:
                os.environ["CAMPAIGN_TEST_POSTGRES_URL"] = saved
        try:
            yield server.url, "throw-away cluster (tests/servers.py, fsync off)"
        finally:
            server.stop()
        return
    given = os.environ.get("CAMPAIGN_BENCH_POSTGRES_URL", "")
    yield given, "CAMPAIGN_BENCH_POSTGRES_URL" if given else "no pg_ctl and no URL"


def insert_contacts(rows: list[dict[str, Any]]) -> float:
    """Insert the rows in chunks through the session (the key is filled by its hook)."""
    from sqlalchemy import insert, text

    from campaign.extensions import db
    from campaign.models import Contact

    started = time.perf_counter()
    for start in range(0, len(rows), CHUNK):
        # Copies: the session's hook writes search_key into the dicts it is given.
        db.session.execute(insert(Contact), [dict(r) for r in rows[start : start + CHUNK]])
    db.session.commit()
    seconds = time.perf_counter() - started
    db.session.execute(text("ANALYZE"))
    db.session.commit()
    return seconds


def cpu_clock(backend_pid: int | None) -> Callable[[], float]:
    """Seconds of CPU used so far by this process and, when it runs on this machine, the
    PostgreSQL backend serving our connection (/proc/<pid>/schedstat, in nanoseconds;
    parallel query workers are not counted)."""
    path = Path(f"/proc/{backend_pid}/schedstat") if backend_pid else None
    if path is not None and not os.access(path, os.R_OK):
        path = None

    def clock() -> float:
        used = time.process_time()
        if path is not None:
            used += int(path.read_text().split()[0]) / 1e9
        return used

    return clock


def timed(
    cases: list[Callable[[], Any]], runs: int, clock: Callable[[], float]
) -> list[tuple[list[float], list[float], Any]]:
    """(wall ms samples, CPU ms samples, last result) of each case; the cases take turns,
    so a burst of load from elsewhere on the machine slows all of them rather than one."""
    out: list[tuple[list[float], list[float], Any]] = [([], [], None) for _ in cases]
    for _ in range(runs):
        for i, run in enumerate(cases):
            cpu, started = clock(), time.perf_counter()
            result = run()
            out[i][0].append((time.perf_counter() - started) * 1000)
            out[i][1].append((clock() - cpu) * 1000)
            out[i] = (out[i][0], out[i][1], result)
    return out


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def scan_clause(q: str) -> Any:
    """Today's rule with no index: one LIKE per folded word over the search key. On
    PostgreSQL `search_key || ''` keeps the planner off the trigram index."""
    from sqlalchemy import and_

    from campaign.models import Contact
    from campaign.models.search_key import fold
    from campaign.services.contacts.segments import escape_like

    words = [w for w in (fold(word) for word in q.split()) if w]
    key = Contact.search_key + ""
    return and_(*(key.like(f"%{escape_like(w)}%", escape="\\") for w in words))


def measure(rows: list[dict[str, Any]]) -> tuple[float, list[dict[str, Any]], dict[str, Any]]:
    """Insert time, one result per query, and the pooled samples (in the app context)."""
    from sqlalchemy import and_, func, select, text

    from campaign.extensions import db
    from campaign.models import Contact
    from campaign.services.contacts.search import ContactFilters, filtered_query, numbered_page

    insert_seconds = insert_contacts(rows)
    dialect = db.session.get_bind().dialect.name
    backend = None
    if dialect == "postgresql":
        # The session keeps this connection (and backend) until it commits: nothing below does.
        backend = int(db.session.execute(text("SELECT pg_backend_pid()")).scalar_one())
    clock = cpu_clock(backend)

    def count(where: Any) -> int:
        return int(db.session.scalar(select(func.count()).select_from(Contact).where(where)) or 0)

    def count_after(q: str) -> int:
        query = filtered_query(ContactFilters(q=q)).subquery()
        return int(db.session.scalar(select(func.count()).select_from(query)) or 0)

    def page(q: str) -> Any:
        result = numbered_page(ContactFilters(q=q), per_page=50)
        db.session.expunge_all()
        return result

    pooled: dict[str, list[float]] = {"scan": [], "after": [], "page": [], "cpu_after": []}
    pooled["cpu_page"] = []
    results = []
    for q, label in QUERIES:
        old = old_search_clause(q, dialect)
        live = Contact.deleted_at.is_(None)
        [(ms_before, _, hits_before)] = timed([partial(count, old)], OLD_RUNS, clock)
        scan, after, first = timed(
            [partial(count, and_(live, scan_clause(q))), partial(count_after, q), partial(page, q)],
            RUNS,
            clock,
        )
        pooled["scan"] += scan[0]
        pooled["after"] += after[0]
        pooled["page"] += first[0]
        pooled["cpu_after"] += after[1]
        pooled["cpu_page"] += first[1]
        # Untimed: which contacts each finds, to tell gained matches from lost ones, and
        # that the index changed nothing against today's scan.
        ids_before = set(db.session.scalars(select(Contact.id).where(old)))
        ids_scan = set(db.session.scalars(select(Contact.id).where(live, scan_clause(q))))
        new_ids = filtered_query(ContactFilters(q=q)).with_only_columns(Contact.id)
        ids_after = set(db.session.scalars(new_ids))
        results.append(
            {
                "q": q,
                "label": label,
                "before": hits_before,
                "after": after[2],
                "gained": len(ids_after - ids_before),
                "lost": len(ids_before - ids_after),
                "differ": len(ids_after ^ ids_scan),
                "ms_before": statistics.median(ms_before),
                "ms_scan": statistics.median(scan[0]),
                "ms_after": statistics.median(after[0]),
                "ms_page": statistics.median(first[0]),
                "cpu_page": statistics.median(first[1]),
                "page_total": first[2].total_label,
            }
        )
    db.session.rollback()
    return insert_seconds, results, pooled


def write_cost(rows: int) -> dict[str, float]:
    """Rows/s of a bulk INSERT of `rows` contacts (the import's path, the key filled by the
    session's hook) with the search index and without it (migration 0021 undone), and the
    seconds migration 0021 takes to build the index over the table as it then is."""
    import importlib.util

    from alembic.migration import MigrationContext
    from alembic.operations import Operations
    from sqlalchemy import func, insert, select, text

    from campaign.extensions import db
    from campaign.models import Contact

    path = ROOT / "migrations" / "versions" / "0021_search_index.py"
    spec = importlib.util.spec_from_file_location("migration_0021", path)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)

    def migrate(step: str) -> float:
        db.session.remove()
        started = time.perf_counter()
        with (
            db.engine.begin() as connection,
            Operations.context(MigrationContext.configure(connection)),
        ):
            getattr(migration, step)()
        return time.perf_counter() - started

    def batch(tag: str) -> list[dict[str, Any]]:
        fresh = generate(rows, seed=sum(map(ord, tag)))
        for row in fresh:
            row["email"] = row["email_key"] = f"{tag}.{row['email_key']}"
        return fresh

    def timed_insert(tag: str) -> tuple[float, float]:
        """(rows/s by the clock, rows/s by CPU: this process and the PostgreSQL backend),
        the commit included (on SQLite it brings the index up to date)."""
        backend = None
        if db.session.get_bind().dialect.name == "postgresql":
            backend = int(db.session.execute(text("SELECT pg_backend_pid()")).scalar_one())
        clock = cpu_clock(backend)
        fresh = batch(tag)
        cpu, started = clock(), time.perf_counter()
        for start in range(0, len(fresh), CHUNK):
            db.session.execute(insert(Contact), fresh[start : start + CHUNK])
        db.session.commit()
        return rows / (time.perf_counter() - started), rows / (clock() - cpu)

    # Two rounds, taking turns (with, without, with, without); the best of each.
    out: dict[str, float] = {"with": 0, "cpu_with": 0, "without": 0, "cpu_without": 0}
    for round_ in range(2):
        wall, cpu = timed_insert(f"with{round_}")
        out["with"], out["cpu_with"] = max(out["with"], wall), max(out["cpu_with"], cpu)
        migrate("downgrade")
        wall, cpu = timed_insert(f"without{round_}")
        out["without"], out["cpu_without"] = max(out["without"], wall), max(out["cpu_without"], cpu)
        out["contacts"] = float(db.session.scalar(select(func.count()).select_from(Contact)) or 0)
        out["backfill"] = migrate("upgrade")
    return out


def print_table(
    name: str,
    rows: int,
    insert_seconds: float,
    results: list[dict[str, Any]],
    pooled: dict[str, Any],
    cost: dict[str, float],
) -> None:
    print(f"\n{name}: {rows:,} contacts inserted in {insert_seconds:.1f} s")
    header = (
        f"{'query':14} {'hits before':>11} {'hits now':>9} {'ms before':>9} {'ms scan':>8} "
        f"{'ms index':>8} {'index/scan':>10} {'page ms':>8} {'page cpu':>8}  note"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        notes = []
        if r["gained"]:
            notes.append(f"+{r['gained']:,} cross-script/alt-spelling matches before missed")
        if r["lost"]:
            notes.append(f"LOST {r['lost']:,} that before found")
        if r["differ"]:
            notes.append(f"INDEX DIFFERS from the scan on {r['differ']:,} contacts")
        print(
            f"{r['q']:14} {r['before']:>11,} {r['after']:>9,} {r['ms_before']:>9.1f} "
            f"{r['ms_scan']:>8.1f} {r['ms_after']:>8.1f} {r['ms_after'] / r['ms_scan']:>10.2f} "
            f"{r['ms_page']:>8.1f} {r['cpu_page']:>8.1f}  {'; '.join(notes)}"
        )
    n = len(pooled["after"])
    print(f"all {len(results)} queries pooled ({n} timings each):")
    print(f"  {'':34} {'p50 ms':>7} {'p99 ms':>7}   aim")
    for key, label in (
        ("scan", "today's scan (count, no index)"),
        ("after", "indexed search (count)"),
        ("page", "contacts page (count + first 50)"),
        ("cpu_after", "  CPU of the indexed search"),
        ("cpu_page", "  CPU of the contacts page"),
    ):
        aim = "≤ 30 / ≤ 100" if key in ("after", "page") else ""
        p50, p99 = percentile(pooled[key], 0.5), percentile(pooled[key], 0.99)
        print(f"  {label:34} {p50:>7.1f} {p99:>7.1f}   {aim}")
    print(
        f"write cost, bulk INSERT of {WRITE_ROWS:,} contacts (key hook, commit included):"
        f" with the index {cost['with']:,.0f} rows/s ({cost['cpu_with']:,.0f} by CPU),"
        f" without {cost['without']:,.0f} rows/s ({cost['cpu_without']:,.0f} by CPU):"
        f" {cost['cpu_with'] / cost['cpu_without']:.2f}× by CPU, i.e."
        f" {(1 / cost['cpu_with'] - 1 / cost['cpu_without']) * 1e6:,.1f} µs of CPU a row;"
        f" migration 0021 builds it over {cost['contacts']:,.0f} contacts in"
        f" {cost['backfill']:.1f} s"
    )


def run_engine(name: str, url: str, instance: Path, rows: list[dict[str, Any]]) -> None:
    app = make_app(url, instance)
    with app.app_context():
        insert_seconds, results, pooled = measure(rows)
        cost = write_cost(WRITE_ROWS)
        version = app.extensions["sqlalchemy"].engine.dialect.server_version_info
    if name == "PostgreSQL":
        name = f"PostgreSQL {'.'.join(map(str, version))}"
    print_table(name, len(rows), insert_seconds, results, pooled, cost)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = generate(args.rows)
    cyrillic = sum(1 for r in rows if not r["family_name"].isascii())
    print(
        f"{args.rows:,} generated contacts, {cyrillic:,} with Cyrillic names"
        f" (a quarter of those also spelled in Latin), {os.cpu_count()} CPUs;"
        f" {RUNS} runs a query ({OLD_RUNS} of the old clause); load average"
        f" {os.getloadavg()[0]:.1f}"
    )
    print("queries: " + ", ".join(f"{q!r} ({label})" for q, label in QUERIES))
    with tempfile.TemporaryDirectory(prefix="campaign-bench-search-") as tmp:
        instance = Path(tmp) / "sqlite"
        instance.mkdir()
        run_engine("SQLite", f"sqlite:///{instance}/bench.sqlite3", instance, rows)
        with postgres() as (url, how):
            if args.no_postgres or not url:
                print(f"\nPostgreSQL: skipped ({'--no-postgres' if args.no_postgres else how})")
            else:
                instance = Path(tmp) / "postgres"
                instance.mkdir()
                print(f"\nPostgreSQL: {how}")
                run_engine("PostgreSQL", url, instance, rows)
    print(
        "\nms before: the old clause (SQLite: a LIKE per column and case variant; PostgreSQL:"
        " one ILIKE over the joined columns); ms scan: today's LIKE per word over search_key"
        " with no index; ms index: filtered_query (pg_trgm GIN / FTS5 trigram); all three"
        " count matches (medians). page: numbered_page, page 1 of 50 by name with its count,"
        " as the contacts page shows it. page cpu: this process plus the PostgreSQL backend."
        " p50/p99 pool every query's timings, short queries (no trigram: a scan) included."
    )
    print(
        f"total run time {time.perf_counter() - started:.0f} s;"
        f" load average {os.getloadavg()[0]:.1f} (above the CPU count: other work competed)"
    )


if __name__ == "__main__":
    main()
