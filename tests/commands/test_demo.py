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
    campaign = db.session.scalars(
        select(Campaign).where(Campaign.status == CampaignStatus.DRAFT)
    ).one()
    assert campaign.name.startswith("Demo: ")
    check = campaigns.check_campaign(campaign)
    assert check.errors == []
    assert check.count.sendable == 48, "the UN special procedures list"


def test_load_demo_leaves_a_finished_campaign_with_replies_auto_replies_and_bounces(
    app: Flask,
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
    from campaign.services import dashboard

    _load(app)
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
