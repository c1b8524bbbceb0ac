"""`campaign load-demo`: sample and generated contacts, lists, segments, first admin; once only."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy import text as sql
from sqlalchemy.orm import close_all_sessions

from campaign import create_app
from campaign.extensions import db
from campaign.models import AuditEvent, Contact, ContactList, Segment, User, list_memberships
from campaign.queue import get_queue, get_redis
from campaign.services.accounts import users
from campaign.services.contacts.segments import count_matching
from tests import servers
from tests.conftest import _base_overrides, _empty_postgres, close_redis, fresh_sqlite_copy

# Most tests read what one `load-demo` left: the demo is loaded once per engine in this test
# process, and each test gets its own copy of the result, so what one test writes (a tick
# launching the yearly campaign) no other sees. SQLite: a copy of the loaded file.
# PostgreSQL: the loaded rows kept in a schema of their own, copied back into the emptied
# tables (decision 0085). Session-scoped: the slow tests run first, apart from the rest of
# this module (decision 0081), and a module fixture would be made again after them. The
# tests of the load itself (a second load, a given password, a refused contact) still load
# into their own empty database.
_SNAPSHOT = "demo_snapshot"


@dataclass(frozen=True)
class LoadedDemo:
    output: str  # what `campaign load-demo` printed
    queued: int  # the jobs in the queue right after it


def _load_once(app: Flask) -> LoadedDemo:
    with app.app_context():
        get_redis().flushdb()
        # The tests' autouse English terminal is function-scoped: said here for this load.
        result = app.test_cli_runner().invoke(args=["load-demo"], env={"LANGUAGE": "en"})
        assert result.exit_code == 0, result.output
        loaded = LoadedDemo(output=str(result.output), queued=get_queue().count)
        db.session.remove()
    return loaded


@pytest.fixture(scope="session")
def _demo_sqlite(
    sqlite_template: Path,
    redis_server: servers.RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, LoadedDemo]:
    folder = tmp_path_factory.mktemp("demo-sqlite")
    path = folder / "demo.sqlite3"
    shutil.copyfile(sqlite_template, path)
    app = create_app(_base_overrides(folder / "instance", redis_server.url, f"sqlite:///{path}"))
    loaded = _load_once(app)
    with app.app_context():
        # Everything in the file itself (no write-ahead log beside it) before it is copied.
        with db.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        close_all_sessions()
        db.engine.dispose()
    close_redis(app)
    return path, loaded


@pytest.fixture(scope="session")
def _demo_postgres(
    postgres_migrated: str,
    redis_server: servers.RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, LoadedDemo]]:
    app = create_app(
        _base_overrides(tmp_path_factory.mktemp("demo-pg"), redis_server.url, postgres_migrated)
    )
    _empty_postgres(app)
    loaded = _load_once(app)
    with app.app_context():
        names = [table.name for table in db.metadata.sorted_tables]  # parents first
        kept = [f'DROP SCHEMA IF EXISTS "{_SNAPSHOT}" CASCADE', f'CREATE SCHEMA "{_SNAPSHOT}"']
        kept += [
            f'CREATE TABLE "{_SNAPSHOT}"."{n}" AS SELECT * FROM "{n}"'  # noqa: S608 — our tables
            for n in names
        ]
        db.session.execute(sql("; ".join(kept)))
        filled = [
            name
            for name in names
            if db.session.scalar(sql(f'SELECT EXISTS (SELECT FROM "{_SNAPSHOT}"."{name}")'))  # noqa: S608
        ]
        used = db.session.execute(
            sql(
                "SELECT sequencename::text, last_value FROM pg_sequences "
                "WHERE schemaname = current_schema() AND last_value IS NOT NULL"
            )
        ).all()
        db.session.commit()
        restore = "; ".join(
            [
                f'INSERT INTO "{n}" SELECT * FROM "{_SNAPSHOT}"."{n}"'  # noqa: S608 — our tables
                for n in filled
            ]
            + [f"SELECT setval('\"{name}\"', {value})" for name, value in used]
        )
        db.session.remove()
    yield restore, loaded
    with app.app_context():
        db.session.execute(sql(f'DROP SCHEMA IF EXISTS "{_SNAPSHOT}" CASCADE'))
        db.session.commit()
        db.session.remove()
    close_redis(app)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """As tests/conftest.py's, but a test that asks for `demo` gets the loaded demo's copy."""
    wants_demo = "demo" in request.fixturenames
    if request.param == "postgres":
        if wants_demo:
            request.getfixturevalue("_demo_postgres")  # loaded before the app empties the tables
        url: str = request.getfixturevalue("postgres_migrated")
        return url
    url = fresh_sqlite_copy(request)
    if wants_demo:
        loaded_file, _loaded = request.getfixturevalue("_demo_sqlite")
        # fresh_sqlite_copy's path, with nothing beside it: the loaded demo in its place.
        shutil.copyfile(loaded_file, url.removeprefix("sqlite:///"))
    return url


@pytest.fixture
def demo(request: pytest.FixtureRequest, app: Flask) -> LoadedDemo:
    """What one `load-demo` printed; the database holds what it loaded (a copy of its own)."""
    if db.engine.dialect.name == "postgresql":
        restore, loaded = request.getfixturevalue("_demo_postgres")
        db.session.execute(sql(restore))
        db.session.commit()
        return loaded
    _path, loaded = request.getfixturevalue("_demo_sqlite")
    return loaded  # type: ignore[no-any-return]


def _load(app: Flask, env: dict[str, str] | None = None) -> str:
    result = app.test_cli_runner().invoke(args=["load-demo"], env=env or {})
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    return str(result.output)


def _contact(email: str) -> Contact:
    contact = db.session.scalar(select(Contact).where(Contact.email_key == email))
    assert contact is not None, email
    return contact


def test_load_demo_creates_the_sample_contacts_with_their_protocol_fields(
    app: Flask, demo: LoadedDemo
) -> None:

    ambassador = _contact("amb.uz@example.org")
    assert (ambassador.given_name, ambassador.family_name) == ("Dilnoza", "Namunova")
    assert ambassador.role_type == "ambassador"
    assert ambassador.style == "excellency"
    assert ambassador.grammatical_gender == "f"
    assert ambassador.languages == "ru fr"
    assert ambassador.country == "UZ"
    assert ambassador.tags == "diplomat uzbekistan"

    president = _contact("euco@example.org")
    assert president.role_type == "eu_council_president"
    assert president.cc_emails == "cabinet.euco@example.org"

    working_group = _contact("wgad@example.org")
    assert working_group.kind == "mandate"
    assert working_group.grammatical_gender == "unknown"
    assert working_group.given_name == ""

    assert _contact("t.przyklad@example.org").family_name == "Przykład"
    assert _contact("n.primerova@example.org").risk_level == "elevated"


def test_load_demo_generates_hundreds_of_contacts_spread_like_a_real_address_book(
    app: Flask, demo: LoadedDemo
) -> None:
    output = demo.output
    contacts = db.session.scalars(select(Contact)).all()
    assert 400 <= len(contacts) <= 450
    assert f"loaded {len(contacts)} contacts, 5 lists, 2 segments" in output

    roles = Counter(c.role_type for c in contacts)
    assert {
        "ambassador",
        "official",
        "minister",
        "mep",
        "un_sr",
        "un_wg",
        "journalist",
        "ngo",
    } <= set(roles)
    assert max(roles.values()) < len(contacts) / 3, roles

    countries = Counter(c.country for c in contacts)
    assert {"KZ", "KG", "TJ", "TM", "UZ", "FR", "DE", "EU", "UN"} <= set(countries)
    languages = Counter(tag for c in contacts for tag in c.languages.split())
    assert {"en", "fr", "ru", "de"} <= set(languages)
    assert Counter(c.grammatical_gender for c in contacts).keys() == {"f", "m", "unknown"}
    assert set(Counter(c.risk_level for c in contacts)) == {"public", "low", "elevated", "high"}

    cyrillic = [c for c in contacts if c.family_name_alt]
    assert len(cyrillic) > 50
    assert all(c.patronymic and c.patronymic_alt for c in cyrillic)
    assert any(c.family_name_alt == "Исмаилов" for c in cyrillic)

    # Fictional addresses only, on the domains reserved for examples.
    for contact in contacts:
        for address in [contact.email, *contact.cc_list]:
            assert address.endswith(("@example.org", "@example.net")), address


def test_load_demo_groups_contacts_into_lists_and_saves_working_segments(
    app: Flask, demo: LoadedDemo
) -> None:
    sizes: dict[str, int] = {
        name: size
        for name, size in db.session.execute(
            select(ContactList.name, func.count(list_memberships.c.contact_id))
            .join(list_memberships)
            .group_by(ContactList.name)
        )
    }
    assert set(sizes) == {
        "EU officials",
        "UN special procedures",
        "Press",
        "Diplomats",
        "Partner NGOs",
    }
    assert all(size >= 10 for size in sizes.values()), sizes
    press = db.session.scalars(
        select(Contact).join(list_memberships).join(ContactList).where(ContactList.name == "Press")
    ).all()
    assert {c.role_type for c in press} == {"journalist"}

    segments = {s.name: s for s in db.session.scalars(select(Segment))}
    assert set(segments) == {"Russian-speaking diplomats", "High-risk contacts"}
    for segment in segments.values():
        assert 0 < count_matching(segment.definition) < 413
    speakers = count_matching(segments["Russian-speaking diplomats"].definition)
    assert speakers == db.session.scalar(
        select(func.count(Contact.id)).where(
            Contact.languages.contains("ru"), Contact.tags.contains("diplomat")
        )
    )


def test_load_demo_creates_the_first_admin_once_and_loads_nothing_twice(app: Flask) -> None:
    first = _load(app, {"CAMPAIGN_DEMO_ADMIN_PASSWORD": "a demo password for tests"})
    assert "created admin@example.org with password: a demo password for tests" in first
    assert users.authenticate("admin@example.org", "a demo password for tests").user is not None
    db.session.commit()
    counts = (
        db.session.scalar(select(func.count(Contact.id))),
        db.session.scalar(select(func.count(ContactList.id))),
        db.session.scalar(select(func.count(Segment.id))),
        db.session.scalar(select(func.count(User.id))),
    )

    second = _load(app)
    assert "demo data not loaded" in second
    assert "created" not in second
    assert counts == (
        db.session.scalar(select(func.count(Contact.id))),
        db.session.scalar(select(func.count(ContactList.id))),
        db.session.scalar(select(func.count(Segment.id))),
        db.session.scalar(select(func.count(User.id))),
    )
    assert (
        db.session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "demo.load"))
        == 1
    )


def test_the_demo_goes_through_the_services_a_user_s_own_data_goes_through(
    app: Flask, demo: LoadedDemo
) -> None:

    actions = Counter(db.session.scalars(select(AuditEvent.action)))
    # One import of the contacts file, each list and segment saved, each signature approved.
    assert actions["contacts.import"] == 1
    assert (actions["list.create"], actions["segment.create"]) == (5, 2)
    assert actions["signature.approve"] == 3
    imported = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "contacts.import")
    ).one()
    assert imported.actor_email == "admin@example.org"
    assert imported.detail is not None
    assert (imported.detail["imported"], imported.detail["rejected"]) == (413, 0)
    # The services' e-mails (signature links, invitations, letters) were never queued.
    assert demo.queued == 0


def test_a_demo_contact_the_contact_rules_refuse_stops_the_load(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    from campaign.demo import loader

    rows = loader.sample_contact_rows()
    rows[1]["email"] = "not an address"
    monkeypatch.setattr(loader, "sample_contact_rows", lambda: rows)
    with pytest.raises(ValueError, match=r"demo contact on line 3 \(not an address\): "):
        loader.load_demo(generated=0)


def test_a_random_admin_password_is_printed_and_works(app: Flask, demo: LoadedDemo) -> None:
    output = demo.output
    line = next(line for line in output.splitlines() if line.startswith("created admin@"))
    password = line.rsplit(": ", 1)[1]
    assert len(password) >= 12
    assert users.authenticate("admin@example.org", password).user is not None


def test_load_demo_leaves_a_draft_campaign_that_passes_its_checks(
    app: Flask, demo: LoadedDemo
) -> None:
    from campaign.models import Campaign, CampaignStatus
    from campaign.services.sending import campaigns

    campaign = db.session.scalars(
        select(Campaign).where(
            Campaign.status == CampaignStatus.DRAFT, Campaign.name.startswith("Demo: ")
        )
    ).one()
    check = campaigns.check_campaign(campaign)
    assert check.errors == []
    assert check.count.sendable == 48, "the UN special procedures list"


def test_load_demo_leaves_a_finished_campaign_with_replies_auto_replies_and_bounces(
    app: Flask, demo: LoadedDemo
) -> None:
    import hashlib
    import zlib
    from datetime import timedelta

    from campaign.models import (
        Campaign,
        CampaignStatus,
        Delivery,
        DeliveryStatus,
        InboundMessage,
        Suppression,
    )
    from campaign.models._types import utcnow
    from campaign.services.replies import dashboard

    campaign = db.session.scalars(
        select(Campaign).where(Campaign.status == CampaignStatus.FINISHED)
    ).one()
    assert campaign.name == "Joint letter ahead of the EU\u2013Central Asia summit (sent)"
    assert campaign.launched_at is not None
    assert utcnow() - campaign.launched_at > timedelta(days=3)

    # Every letter is recorded as the sending path records it: the bytes and their hash.
    deliveries = db.session.scalars(select(Delivery).where(Delivery.campaign_id == campaign.id))
    sent = [d for d in deliveries if d.sent_at is not None]
    assert len(sent) == 70, "the EU officials list"
    for delivery in sent:
        assert delivery.message_blob is not None
        raw = zlib.decompress(delivery.message_blob)
        assert hashlib.sha256(raw).hexdigest() == delivery.message_sha256
        assert f"Message-ID: {delivery.message_id}".encode() in raw
        assert campaign.launched_at <= delivery.sent_at <= campaign.launched_at + timedelta(hours=1)

    # The answers went through record_inbound: matched, classified, applied to the ledger.
    inbound = db.session.scalars(select(InboundMessage)).all()
    kinds = Counter(m.kind for m in inbound)
    assert kinds == {"reply": 9, "auto_reply": 5, "bounce": 3, "unmatched": 1}
    bounces = Counter(m.bounce_kind for m in inbound if m.kind == "bounce")
    assert bounces == {"hard": 2, "soft": 1}
    assert all(m.delivery_id for m in inbound if m.kind != "unmatched")
    hard = [m.delivery for m in inbound if m.bounce_kind == "hard"]
    assert {d.status for d in hard} == {DeliveryStatus.BOUNCED.value}
    suppressed = set(db.session.scalars(select(Suppression.email_key)))
    assert {d.email.lower() for d in hard} <= suppressed
    subjects = {m.subject.partition(":")[0] for m in inbound if m.kind == "auto_reply"}
    assert {"Automatic reply", "R\u00e9ponse automatique ", "Abwesenheitsnotiz"} <= subjects
    assert any("\u0410\u0432\u0442\u043e\u043c\u0430\u0442" in s for s in subjects)
    hostile = [m for m in inbound if "<script>" in m.html]
    assert len(hostile) == 1 and "https://tracker.example/" in hostile[0].html

    # The dashboard has something to show, spread over several days.
    funnel = dashboard.funnel(campaign.id)
    assert (funnel.count("replied"), funnel.count("auto_replied")) == (9, 5)
    assert (funnel.count("bounced_hard"), funnel.count("bounced_soft")) == (2, 1)
    line = dashboard.timeline(campaign.id)
    assert not line.is_hourly
    assert sum(1 for b in line.buckets if b.replies) >= 3
    assert dashboard.non_responders(campaign.id).total == 70 - 9 - 2


def _next_26_june_9_paris() -> datetime:
    """When the demo's yearly campaign is next due, worked out by hand (not by the scheduler)."""
    paris = ZoneInfo("Europe/Paris")
    today = datetime.now(paris)
    this_year = datetime(today.year, 6, 26, 9, tzinfo=paris)
    due = this_year if today < this_year else this_year.replace(year=today.year + 1)
    return due.astimezone(UTC)


def test_load_demo_schedules_a_yearly_campaign_a_follow_up_a_summit_and_an_anniversary(
    app: Flask, demo: LoadedDemo
) -> None:
    from campaign.models import CalendarEvent, Case

    runner = app.test_cli_runner()
    listing = runner.invoke(args=["schedules"])
    assert listing.exit_code == 0, listing.output
    rows = [line.split("\t") for line in listing.output.splitlines()]
    by_name = {row[2]: row for row in rows}

    due = _next_26_june_9_paris()
    yearly = by_name["26 June: justice for torture victims"]
    assert yearly[1] == "yearly_campaign"
    assert yearly[3] == f"next {due:%Y-%m-%d %H:%M} UTC ({due.year}-06-26 09:00 Europe/Paris)"
    # The follow-up waits for a launch: it has no date of its own until then.
    follow_up = by_name["26 June: justice for torture victims: follow-up 1"]
    assert (follow_up[1], follow_up[3]) == ("follow_up", "no next run")

    summit = by_name["Reminder: EU\u2013Central Asia summit, 7 days before"]
    reminder_day = date.today() + timedelta(days=21 - 7)
    assert summit[1] == "reminder"
    assert f"({reminder_day.isoformat()} 09:00 Europe/Paris)" in summit[3]

    anniversary = by_name["Anniversary of the arrest of Prisoner J. (14 March 2019), 7 days before"]
    assert anniversary[1] == "reminder" and "-03-07 09:00 Europe/Paris)" in anniversary[3]
    # A person at high risk is named by the pseudonym wherever staff lists show the case.
    assert "Namunov" not in listing.output

    summit_event = db.session.scalars(
        select(CalendarEvent).where(CalendarEvent.name == "EU\u2013Central Asia summit")
    ).one()
    assert (summit_event.place, summit_event.countries) == (
        "Samarkand, Uzbekistan",
        ["KZ", "KG", "TJ", "TM", "UZ"],
    )
    assert (
        db.session.scalar(
            select(func.count(CalendarEvent.id)).where(CalendarEvent.is_builtin.is_(True))
        )
        >= 10
    )
    case = db.session.scalars(select(Case)).one()
    assert (case.is_high_risk, case.country, case.status) == (True, "UZ", "sentenced")
    assert [(d.kind, d.is_anniversary_marked) for d in sorted(case.dates, key=lambda d: d.on)] == [
        ("arrest", True),
        ("sentence", False),
    ]
    assert all(d.legal_reference and d.source for d in case.dates)


def test_a_tick_on_26_june_launches_the_demo_yearly_campaign_for_that_year(
    app: Flask, demo: LoadedDemo
) -> None:
    from campaign.models import Campaign, CampaignStatus

    due = _next_26_june_9_paris()
    now = (due + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%MZ")
    result = app.test_cli_runner().invoke(args=["tick", "--now", now])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()

    fired = [line for line in lines if line.startswith("fired\t")]
    name = f"26 June: justice for torture victims {due.year}"
    assert fired == [
        "fired\tyearly_campaign\t26 June: justice for torture victims\t"
        f"due {due:%Y-%m-%d %H:%M} UTC\tcampaign {name!r} launched: 48 recipients queued"
    ]
    # The summit's reminder, the arrest anniversary and the sign-on page's reminder fell
    # months earlier: skipped, and said.
    skipped = [line for line in lines if line.startswith("skipped\t")]
    assert skipped and all(line.endswith("late: not sent") for line in skipped)
    assert lines[-1] == f"1 fired, {len(skipped)} skipped"

    db.session.expire_all()
    launched = db.session.scalars(select(Campaign).where(Campaign.name == name)).one()
    assert launched.status == CampaignStatus.SENDING
    # Running the same tick again (a second worker, a retry) launches nothing more.
    again = app.test_cli_runner().invoke(args=["tick", "--now", now])
    assert again.output.splitlines()[-1] == "0 fired, 0 skipped"


def test_the_demo_follow_up_fires_14_days_after_the_yearly_launch(
    app: Flask, demo: LoadedDemo
) -> None:
    due = _next_26_june_9_paris()
    runner = app.test_cli_runner()
    runner.invoke(args=["tick", "--now", (due + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%MZ")])
    later = (due + timedelta(days=14, minutes=1)).strftime("%Y-%m-%dT%H:%MZ")
    result = runner.invoke(args=["tick", "--now", later])
    assert any(
        line.startswith("fired\tfollow_up\t26 June: justice for torture victims")
        for line in result.output.splitlines()
    ), result.output


def test_every_demo_statement_passes_campaign_check_in_each_of_its_languages(
    app: Flask, demo: LoadedDemo
) -> None:
    """The demo's campaigns, its yearly campaign and its follow-up letter are sent by the
    scheduler, which never overrides the pre-send check: none of their texts may have an
    error (a missing signature, a footnote pointing nowhere…) for anybody on the lists."""
    from campaign.models import Statement

    runner = app.test_cli_runner()
    checked = []
    for statement in db.session.scalars(select(Statement).order_by(Statement.id)):
        for text in statement.texts:
            for list_name in ("UN special procedures", "Diplomats"):
                args = ["check", str(statement.id), "--list", list_name, "--lang", text.language]
                result = runner.invoke(args=args)
                assert result.exit_code == 0, (statement.title, text.language, result.output)
                checked.append((statement.title, text.language))
    assert ("Follow-up: justice for torture victims in Central Asia", "en") in checked
