"""Benchmark: the contacts search over the folded search key, against the LIKEs it replaced.

Run: .venv/bin/python bench/search.py [--rows N]. One process: N generated contacts are put
into a temporary SQLite database and, when it can be had, a PostgreSQL one (a throw-away
cluster started as the tests do when pg_ctl is installed, else CAMPAIGN_BENCH_POSTGRES_URL,
else PostgreSQL is skipped with a note). Names mix Latin and Cyrillic: 3,000 family names,
a fifth of them Cyrillic ("Петрова", "Иванов"), given names such as "Olga" and "Ольга".

For each query, the median of 7 runs (taking turns, so load from elsewhere hits all three) of:
- "before": the clause the search used until the search key existed, rebuilt here: on
  SQLite one LIKE per column (nine columns) and per case variant of a non-ASCII word; on
  PostgreSQL one ILIKE over the nine columns joined by spaces; counting the matches.
- "after": the real `filtered_query(ContactFilters(q=...))`, counting the matches.
- "page": the real `search_page(ContactFilters(q=...), per_page=50)`: first page, sorted
  by name, with its count.
The ratio is after / before from the same run (below 1 means the key is faster).
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

RUNS = 7
CHUNK = 5_000
QUERIES = [
    ("qwxzvj", "a word found nowhere"),
    ("olga", "Latin given name"),
    ("Ольга", "Cyrillic given name"),
    ("petrova", "Latin family name"),
    ("embassy", "common organisation word"),
    ("olga petrova", "two words"),
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
def postgres() -> Iterator[tuple[str, str]]:
    """(url, how it was had), or ("", why not)."""
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


def median_ms(*cases: Callable[[], Any]) -> list[tuple[float, Any]]:
    """(median ms, last result) of each case; the cases take turns, so a burst of load
    from elsewhere on the machine slows all of them rather than one."""
    samples: list[list[float]] = [[] for _ in cases]
    results: list[Any] = [None for _ in cases]
    for _ in range(RUNS):
        for i, run in enumerate(cases):
            started = time.perf_counter()
            results[i] = run()
            samples[i].append(time.perf_counter() - started)
    return [(statistics.median(s) * 1000, r) for s, r in zip(samples, results, strict=True)]


def measure(rows: list[dict[str, Any]]) -> tuple[float, list[dict[str, Any]]]:
    """Insert time, then one result per query (in the current app context)."""
    from sqlalchemy import func, select

    from campaign.extensions import db
    from campaign.models import Contact
    from campaign.services.contacts.search import ContactFilters, filtered_query, search_page

    insert_seconds = insert_contacts(rows)
    dialect = db.session.get_bind().dialect.name

    def count(where: Any) -> int:
        return int(db.session.scalar(select(func.count()).select_from(Contact).where(where)) or 0)

    def count_after(q: str) -> int:
        query = filtered_query(ContactFilters(q=q)).subquery()
        return int(db.session.scalar(select(func.count()).select_from(query)) or 0)

    def page(q: str) -> Any:
        result = search_page(ContactFilters(q=q), per_page=50)
        db.session.expunge_all()
        return result

    results = []
    for q, label in QUERIES:
        old = old_search_clause(q, dialect)
        (ms_before, hits_before), (ms_after, hits_after), (ms_page, first_page) = median_ms(
            partial(count, old), partial(count_after, q), partial(page, q)
        )
        # Untimed: which contacts each finds, to tell gained matches from lost ones.
        ids_before = set(db.session.scalars(select(Contact.id).where(old)))
        new_ids = filtered_query(ContactFilters(q=q)).with_only_columns(Contact.id)
        ids_after = set(db.session.scalars(new_ids))
        results.append(
            {
                "q": q,
                "label": label,
                "before": hits_before,
                "after": hits_after,
                "gained": len(ids_after - ids_before),
                "lost": len(ids_before - ids_after),
                "ms_before": ms_before,
                "ms_after": ms_after,
                "ms_page": ms_page,
                "page_total": first_page.total_label,
            }
        )
    return insert_seconds, results


def print_table(name: str, rows: int, insert_seconds: float, results: list[dict[str, Any]]) -> None:
    print(f"\n{name}: {rows:,} contacts inserted in {insert_seconds:.1f} s")
    header = (
        f"{'query':14} {'hits before':>11} {'hits after':>10} {'ms before':>9} "
        f"{'ms after':>8} {'after/before':>12} {'page ms':>8}  note"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        notes = []
        if r["gained"]:
            notes.append(f"+{r['gained']:,} cross-script/alt-spelling matches before missed")
        if r["lost"]:
            notes.append(f"LOST {r['lost']:,} that before found")
        print(
            f"{r['q']:14} {r['before']:>11,} {r['after']:>10,} {r['ms_before']:>9.1f} "
            f"{r['ms_after']:>8.1f} {r['ms_after'] / r['ms_before']:>12.2f} "
            f"{r['ms_page']:>8.1f}  {'; '.join(notes)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    started = time.perf_counter()
    rows = generate(args.rows)
    cyrillic = sum(1 for r in rows if not r["family_name"].isascii())
    print(
        f"{args.rows:,} generated contacts, {cyrillic:,} with Cyrillic names"
        f" (a quarter of those also spelled in Latin), {os.cpu_count()} CPUs;"
        f" medians of {RUNS} runs; load average {os.getloadavg()[0]:.1f}"
    )
    print("queries: " + ", ".join(f"{q!r} ({label})" for q, label in QUERIES))
    with tempfile.TemporaryDirectory(prefix="campaign-bench-search-") as tmp:
        instance = Path(tmp) / "sqlite"
        instance.mkdir()
        app = make_app(f"sqlite:///{instance}/bench.sqlite3", instance)
        with app.app_context():
            insert_seconds, results = measure(rows)
        print_table("SQLite", args.rows, insert_seconds, results)
        with postgres() as (url, how):
            if not url:
                print(f"\nPostgreSQL: skipped ({how})")
            else:
                instance = Path(tmp) / "postgres"
                instance.mkdir()
                app = make_app(url, instance)
                with app.app_context():
                    insert_seconds, results = measure(rows)
                    version = app.extensions["sqlalchemy"].engine.dialect.server_version_info
                print_table(
                    f"PostgreSQL {'.'.join(map(str, version))}, {how}",
                    args.rows,
                    insert_seconds,
                    results,
                )
    print(
        "\nbefore: the old clause (SQLite: a LIKE per column and case variant; PostgreSQL:"
        " one ILIKE over the joined columns); after: filtered_query over search_key;"
        " both count matches. page: search_page, first 50 by name, with its count."
        " after/before below 1: the key is faster."
    )
    print(
        f"total run time {time.perf_counter() - started:.0f} s;"
        f" load average {os.getloadavg()[0]:.1f} (above the CPU count: other work competed)"
    )


if __name__ == "__main__":
    main()
