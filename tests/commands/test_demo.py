"""`campaign load-demo`: sample and generated contacts, lists, segments, first admin; once only."""

from __future__ import annotations

from collections import Counter

from flask import Flask
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import AuditEvent, Contact, ContactList, Segment, User, list_memberships
from campaign.services import users
from campaign.services.segments import count_matching


def _load(app: Flask, env: dict[str, str] | None = None) -> str:
    result = app.test_cli_runner().invoke(args=["load-demo"], env=env or {})
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    return str(result.output)


def _contact(email: str) -> Contact:
    contact = db.session.scalar(select(Contact).where(Contact.email_key == email))
    assert contact is not None, email
    return contact


def test_load_demo_creates_the_sample_contacts_with_their_protocol_fields(app: Flask) -> None:
    _load(app)

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
    app: Flask,
) -> None:
    output = _load(app)
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


def test_load_demo_groups_contacts_into_lists_and_saves_working_segments(app: Flask) -> None:
    _load(app)
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


def test_a_random_admin_password_is_printed_and_works(app: Flask) -> None:
    output = _load(app)
    line = next(line for line in output.splitlines() if line.startswith("created admin@"))
    password = line.rsplit(": ", 1)[1]
    assert len(password) >= 12
    assert users.authenticate("admin@example.org", password).user is not None


def test_load_demo_leaves_a_draft_campaign_that_passes_its_checks(app: Flask) -> None:
    from campaign.models import Campaign, CampaignStatus
    from campaign.services import campaigns

    _load(app)
    campaign = db.session.scalars(select(Campaign)).one()
    assert campaign.status == CampaignStatus.DRAFT
    assert campaign.name.startswith("Demo: ")
    check = campaigns.check_campaign(campaign)
    assert check.errors == []
    assert check.count.sendable == 48, "the UN special procedures list"
