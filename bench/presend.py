"""Benchmark: the pre-send check's letters per second on one core, against render_letter alone.

Run: .venv/bin/python bench/presend.py [--recipients N] [--profile]. One process, one core,
a throw-away SQLite database (tables made from the models). The statement is the longest
seed statement with a salutation and a closing; the contacts vary in name, gender, role and
organisation as a press list does. Times are CPU seconds of this process
(time.process_time), the median of three runs, so other work on the machine moves them
little.

- "render_letter loop (baseline)": the contacts loaded as ORM objects, then render_letter
  for each: what a careful developer would write first, and what the check did per letter
  before issue 18 (it also read each letter, so it was slower than this baseline).
- "pre-send check": presend.check_audience over the campaign's recipients query, the
  whole check as the job runs it (reading the audience, rendering, reading the bodies,
  the report).
- "job (stored result)": the RQ job's body in this process: the fingerprint, the check
  with its progress written every batch, and the result stored.

Issue 18's aim: the check itself at ≥ 2,000 letters/s per core (decision 0071).
`--profile` prints the top of a cProfile of the check.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select, update  # noqa: E402

from campaign import create_app  # noqa: E402
from campaign.demo.statements import parse_seed_statements  # noqa: E402
from campaign.extensions import db  # noqa: E402
from campaign.models import Campaign, Contact  # noqa: E402
from campaign.services.contacts import lists  # noqa: E402
from campaign.services.contacts.contacts import clean_contact_data  # noqa: E402
from campaign.services.sending import campaigns  # noqa: E402
from campaign.services.sending.campaigns import AudienceSpec  # noqa: E402
from campaign.services.statements import presend, statements  # noqa: E402
from campaign.services.statements.salutation_rules import current_rule_set  # noqa: E402

AIM = 2000  # letters/s per core (issue 18)
SENDER = "Human Rights Network <campaign@hrn.example.org>"
GIVEN = ["Anna", "Jonas", "Claire", "Tomasz", "Amara", "Nadia", "Pierre", "Aigerim", "Zoë"]
FAMILY = ["Lindqvist", "Moreau", "Kowalski", "Okafor", "Haddad", "Dupont", "Nurlanova"]
ROLES = ["ambassador", "minister", "mep", "journalist", "other"]


def seed(recipients: int) -> int:
    """A statement, `recipients` contacts in a list and a draft campaign to it; its id."""
    text = resources.files("campaign.demo.data").joinpath("seed_statements.txt").read_text()
    found = max(parse_seed_statements(text), key=lambda s: len(s.body))
    body = "{{ salutation }}\n\n" + found.body + "\n\n{{ closing }}\n"
    statement = statements.create_statement(
        found.title, language="en", subject=found.title[:200], body=body
    )
    rows = [
        clean_contact_data(
            {
                "given_name": GIVEN[n % len(GIVEN)],
                "family_name": f"{FAMILY[n % len(FAMILY)]} {n}",
                "grammatical_gender": "f" if n % 2 else "m",
                "role_type": ROLES[n % len(ROLES)],
                "organisation": f"Embassy {n % 97}",
                "country": "SE",
                "languages": "en",
                "email": f"envoy{n:06d}@mission{n % 53}.example",
            }
        )
        for n in range(recipients)
    ]
    for start in range(0, len(rows), 2000):
        db.session.execute(insert(Contact), rows[start : start + 2000])
    contact_list = lists.create_list("Envoys")
    lists.add_matching(contact_list, select(Contact))
    campaign = campaigns.create_campaign(
        statement, audience=AudienceSpec((f"list:{contact_list.id}",)), from_address=SENDER
    )
    db.session.commit()
    return int(campaign.id)


REPEATS = 3


def cpu(function: Callable[[], Any]) -> float:
    """CPU seconds of one call, the median of REPEATS (the session emptied before each)."""
    times = []
    for _ in range(REPEATS):
        db.session.expire_all()
        db.session.expunge_all()
        started = time.process_time()
        function()
        times.append(time.process_time() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--profile", action="store_true", help="print the check's profile top")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        app = create_app(
            {
                "SECRET_KEY": "bench-secret-key-not-for-production",
                "INSTANCE_PATH": str(Path(directory) / "instance"),
                "DATABASE_URL": f"sqlite:///{directory}/presend.sqlite3",
                "REDIS_URL": "redis://127.0.0.1:1/0",  # never reached: no job is queued
                "MAIL_DEFAULT_SENDER": SENDER,
                "PUBLIC_URL": "https://campaign.hrn.example.org",
            }
        )
        with app.app_context(), app.test_request_context():
            db.create_all()
            campaign_id = seed(args.recipients)
            run(campaign_id, args.recipients, profile=args.profile)


def run(campaign_id: int, recipients: int, *, profile: bool) -> None:
    from campaign.letters.letter import render_letter
    from campaign.services.statements.statements import letter_source

    def campaign() -> Campaign:
        found = db.session.get(Campaign, campaign_id)
        assert found is not None
        return found

    def statement() -> Any:
        return campaign().statement

    def baseline() -> None:
        source = letter_source(statement())
        rules = current_rule_set()
        contacts = list(db.session.scalars(campaigns.recipients_query(campaign())))
        for contact in contacts:
            render_letter(source, contact, rules=rules)

    def check() -> None:
        report = presend.check_audience(
            statement(), campaigns.recipients_query(campaign()), rules=current_rule_set()
        )
        assert report.checked == recipients, report.checked

    rows: list[tuple[str, float]] = [("render_letter loop (baseline)", cpu(baseline))]
    rows.append(("pre-send check", cpu(check)))
    job = _job(campaign_id)
    if job is not None:
        rows.append(("job (stored result)", cpu(job)))
    base = recipients / rows[0][1]
    print(f"\nPre-send check, {recipients:,} letters, one process (CPU time)\n")
    print(f"{'case':<32}{'CPU s':>9}{'letters/s':>12}{'× baseline':>12}{'aim':>10}")
    for name, seconds in rows:
        rate = recipients / seconds
        aim = f"≥ {AIM:,}" if name != rows[0][0] else ""
        print(f"{name:<32}{seconds:>9.2f}{rate:>12,.0f}{rate / base:>12.2f}{aim:>10}")
    if profile:
        profiler = cProfile.Profile()
        db.session.expunge_all()
        profiler.runcall(check)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue())


def _job(campaign_id: int) -> Callable[[], Any] | None:
    """The job's body run here: claimed, checked batch by batch (progress written and
    committed after each), stored (None before presend_runs exists)."""
    try:
        from campaign.models import PresendRun
        from campaign.services.sending import presend_runs
    except ImportError:
        return None
    db.session.add(PresendRun(campaign_id=campaign_id, run_key="bench"))
    db.session.commit()

    def body() -> None:
        db.session.execute(update(PresendRun).values(status="queued", run_key="bench"))
        assert presend_runs.claim(campaign_id, "bench")
        db.session.commit()
        presend_runs.run_job(
            campaign_id, "bench", campaigns.recipients_query, commit=db.session.commit
        )

    return body


if __name__ == "__main__":
    main()
