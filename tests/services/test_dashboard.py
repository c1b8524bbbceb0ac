"""The dashboard's figures on a campaign whose every recipient's fate is known."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Campaign, Delivery, DeliveryStatus, InboundMessage
from campaign.services.replies import dashboard
from campaign.services.sending import campaigns
from campaign.services.sending.campaigns import AudienceSpec
from campaign.services.statements import statements
from tests.factories import CampaignFactory, DeliveryFactory, InboundMessageFactory


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    # A tracked campaign launches only with an address its letters' pixel and links reach.
    return {**app_overrides, "PUBLIC_URL": "https://campaign.example.org"}


LAUNCH = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
NAMES = ["Ana", "Ben", "Chen", "Dana", "Eve", "Frank", "Grace", "Hank", "Ida", "Jon"]


@dataclass
class Built:
    campaign: Campaign
    # given name → delivery
    to: dict[str, Delivery]


def _inbound(delivery: Delivery, kind: str, at: datetime, bounce: str | None = None) -> None:
    InboundMessageFactory(delivery=delivery, kind=kind, received_at=at, bounce_kind=bounce)


def build(
    *, open_tracking: bool = False, click_tracking: bool = False, name_of_ana: str = "Ana"
) -> Built:
    """Ten recipients: two replied, two auto-replied (one of them replied too), one hard and
    one soft bounce, three silent, one refused before sending and one suppressed."""
    people = [
        {
            "given_name": name_of_ana if name == "Ana" else name,
            "family_name": "Sample",
            "email": f"{name.lower()}@example.org",
            "organisation": "Embassy (fictional)",
            "position_title": "Counsellor",
        }
        for name in NAMES
    ]
    campaign = CampaignFactory(
        statement__subject="Ahead of the summit",
        statement__body="{{ salutation }}\n",
        recipients=people,
        from_address="Office <office@example.org>",
        is_open_tracking=open_tracking,
        is_click_tracking=click_tracking,
        launched=True,
    )
    campaign.launched_at = LAUNCH
    to = {
        d.email.partition("@")[0].title(): d
        for d in db.session.scalars(select(Delivery).where(Delivery.campaign_id == campaign.id))
    }
    for name, delivery in to.items():
        delivery.status = DeliveryStatus.SENT.value
        delivery.sent_at = LAUNCH + timedelta(minutes=NAMES.index(name))
        delivery.language = "en"
    day = timedelta(days=1)
    to["Ana"].replied_at = LAUNCH + day
    to["Ben"].replied_at = LAUNCH + 2 * day
    to["Ana"].opened_at = to["Ben"].opened_at = to["Frank"].opened_at = LAUNCH + day
    to["Dana"].status = DeliveryStatus.BOUNCED.value
    to["Ida"].status, to["Ida"].sent_at = DeliveryStatus.FAILED.value, None
    to["Jon"].status, to["Jon"].sent_at = DeliveryStatus.SUPPRESSED.value, None
    db.session.flush()
    _inbound(to["Ana"], "auto_reply", LAUNCH + timedelta(hours=2))
    _inbound(to["Ana"], "reply", LAUNCH + day)
    _inbound(to["Ben"], "reply", LAUNCH + 2 * day)
    _inbound(to["Ben"], "reply", LAUNCH + 3 * day)  # a second message: still one replier
    _inbound(to["Chen"], "auto_reply", LAUNCH + day)
    _inbound(to["Chen"], "auto_reply", LAUNCH + 4 * day)  # and again: one auto-replier
    _inbound(to["Dana"], "bounce", LAUNCH + timedelta(minutes=5), "hard")
    _inbound(to["Eve"], "bounce", LAUNCH + day, "soft")
    # A follow-up's reply is not the letter's: it must not change the letter's funnel.
    DeliveryFactory(
        campaign=campaign,
        contact_id=to["Grace"].contact_id,
        step=1,
        email="grace@example.org",
        status=DeliveryStatus.SENT.value,
        sent_at=LAUNCH + 3 * day,
        replied_at=LAUNCH + 4 * day,
    )
    db.session.commit()
    return Built(campaign, to)


def test_funnel_counts_each_recipient_once_with_percentages_of_letters_handed_over(
    app: Flask,
) -> None:
    built = build()
    result = dashboard.funnel(built.campaign.id)
    figures = {stage.key: (stage.count, stage.percent) for stage in result.stages}
    # Nine letters reached a mail server: seven accepted, Dana's bounced, Ida's refused.
    # A bounce is not "sent" (decision 0046): the campaign page says the same.
    assert result.attempted == 9
    assert figures == {
        "sent": (7, 77.8),
        "failed": (1, 11.1),
        "delivered": (6, 66.7),
        "bounced_hard": (1, 11.1),
        "bounced_soft": (1, 11.1),
        "replied": (2, 22.2),
        "auto_replied": (2, 22.2),
    }


def test_an_unconfirmed_bounce_is_not_counted_as_a_bounce(app: Flask) -> None:
    built = build()
    # It names Frank's address but quotes none of our letters: it may be forged.
    _inbound(built.to["Frank"], "bounce", LAUNCH + timedelta(days=1), "hard")
    db.session.flush()
    unconfirmed = db.session.scalars(
        select(InboundMessage).where(InboundMessage.delivery_id == built.to["Frank"].id)
    ).one()
    unconfirmed.is_weak_match = True
    db.session.commit()

    figures = {stage.key: stage.count for stage in dashboard.funnel(built.campaign.id).stages}

    assert (figures["bounced_hard"], figures["delivered"]) == (1, 6)


def test_funnel_shows_opens_only_when_the_campaign_tracked_them(app: Flask) -> None:
    built = build(open_tracking=True)
    result = dashboard.funnel(built.campaign.id)
    assert result.count("opened") == 3
    assert "clicked" not in {stage.key for stage in result.stages}


def test_a_campaign_with_nothing_sent_has_zero_percentages(app: Flask) -> None:
    built = build()
    db.session.execute(
        Delivery.__table__.update()
        .where(Delivery.campaign_id == built.campaign.id)
        .values(sent_at=None, status=DeliveryStatus.QUEUED.value)
    )
    db.session.commit()
    result = dashboard.funnel(built.campaign.id)
    assert {(s.count, s.percent) for s in result.stages} == {(0, 0.0)}


def test_timeline_counts_first_events_per_day_with_running_totals(app: Flask) -> None:
    built = build()
    line = dashboard.timeline(built.campaign.id, now=LAUNCH + timedelta(days=5))
    assert not line.is_hourly
    days = [
        (b.start.date().isoformat(), b.replies, b.auto_replies, b.bounces) for b in line.buckets
    ]
    assert days == [
        ("2026-03-02", 0, 1, 1),
        ("2026-03-03", 1, 1, 1),
        ("2026-03-04", 1, 0, 0),
        ("2026-03-05", 0, 0, 0),
        ("2026-03-06", 0, 0, 0),
        ("2026-03-07", 0, 0, 0),
    ]
    last = line.buckets[-1]
    # The running totals end at the funnel's figures.
    assert (last.replies_total, last.auto_replies_total, last.bounces_total) == (2, 2, 2)
    assert line.peak == 1


def test_timeline_is_per_hour_for_a_campaign_younger_than_three_days(app: Flask) -> None:
    built = build()
    line = dashboard.timeline(built.campaign.id, now=LAUNCH + timedelta(hours=53))
    assert line.is_hourly
    # One bar per hour from the launch's hour (9:00) to now's (14:00 two days later).
    assert line.buckets[0].start == datetime(2026, 3, 2, 9, tzinfo=UTC)
    assert line.buckets[-1].start == datetime(2026, 3, 4, 14, tzinfo=UTC)
    assert len(line.buckets) == 54
    hours = {b.start: (b.replies, b.auto_replies, b.bounces) for b in line.buckets}
    assert hours[datetime(2026, 3, 2, 9, tzinfo=UTC)] == (0, 0, 1)  # Dana's bounce, 9:35
    assert hours[datetime(2026, 3, 2, 11, tzinfo=UTC)] == (0, 1, 0)  # Ana's out-of-office
    assert hours[datetime(2026, 3, 3, 9, tzinfo=UTC)] == (1, 1, 1)


def test_a_draft_has_no_timeline(app: Flask) -> None:
    statement = statements.create_statement("Draft", language="en", subject="S", body="x")
    draft = campaigns.create_campaign(statement, audience=AudienceSpec(()))
    db.session.commit()
    assert dashboard.timeline(draft.id).buckets == []


def test_non_responders_keep_auto_repliers_and_drop_repliers_and_hard_bounces(
    app: Flask,
) -> None:
    built = build()
    found = dashboard.non_responders(built.campaign.id)
    assert found.total == 5
    assert [(r.name, r.has_auto_replied) for r in found.items] == [
        ("Chen Sample", True),
        ("Eve Sample", False),
        ("Frank Sample", False),
        ("Grace Sample", False),
        ("Hank Sample", False),
    ]
    first = found.items[0]
    assert (first.email, first.role, first.organisation) == (
        "chen@example.org",
        "Counsellor",
        "Embassy (fictional)",
    )
    assert first.sent_at == LAUNCH + timedelta(minutes=2)
    # The query issue 6's follow-ups reuse selects the same deliveries.
    ids = set(db.session.scalars(dashboard.non_responder_ids_query(built.campaign.id)))
    assert ids == {built.to[n].id for n in ("Chen", "Eve", "Frank", "Grace", "Hank")}


def test_non_responders_are_paged(app: Flask) -> None:
    built = build()
    second = dashboard.non_responders(built.campaign.id, page=2, per_page=2)
    assert (second.page, second.pages, second.has_previous, second.has_next) == (2, 3, True, True)
    assert [r.name for r in second.items] == ["Frank Sample", "Grace Sample"]
    # A page past the end shows the last one rather than nothing.
    assert dashboard.non_responders(built.campaign.id, page=99, per_page=2).page == 3


def _csv(campaign: Campaign, *, only_non_responders: bool = False) -> list[dict[str, str]]:
    """The dashboard's CSV export of `campaign`, read back as a spreadsheet would."""
    out = io.BytesIO()
    count = dashboard.export_csv(campaign, out, only_non_responders=only_non_responders)
    body = out.getvalue()
    assert body.startswith(b"\xef\xbb\xbf"), "a BOM, so Excel reads UTF-8"
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert count == len(rows)
    return rows


def test_export_has_one_row_per_recipient_with_its_outcome(app: Flask) -> None:
    built = build()
    rows = _csv(built.campaign)
    assert len(rows) == 10
    assert list(rows[0]) == list(dashboard.BASE_COLUMNS)
    by_email = {r["email"]: r for r in rows}
    assert by_email["ana@example.org"] == {
        "name": "Ana Sample",
        "email": "ana@example.org",
        "language": "en",
        "status": "sent",
        "sent_at": "2026-03-02 09:30:00",
        "replied_at": "2026-03-03 09:30:00",
        "auto_replied": "yes",
        "bounce": "",
    }
    assert by_email["dana@example.org"]["bounce"] == "hard"
    assert by_email["eve@example.org"]["bounce"] == "soft"
    assert by_email["jon@example.org"]["status"] == "suppressed"
    assert by_email["jon@example.org"]["sent_at"] == ""


def test_export_of_non_responders_and_tracking_columns(app: Flask) -> None:
    built = build(open_tracking=True)
    rows = _csv(built.campaign, only_non_responders=True)
    assert [r["email"] for r in rows] == [
        f"{n}@example.org" for n in ("chen", "eve", "frank", "grace", "hank")
    ]
    assert "opened_at" in rows[0] and "clicked_at" not in rows[0]
    assert next(r for r in rows if r["email"] == "frank@example.org")["opened_at"] == (
        "2026-03-03 09:30:00"
    )


@pytest.mark.parametrize("given", ['=HYPERLINK("http://x")', "+1-555", "-2", "@SUM(A1)"])
def test_export_cells_that_a_spreadsheet_would_run_are_neutralised(app: Flask, given: str) -> None:
    built = build(name_of_ana=given)
    rows = _csv(built.campaign)
    ana = next(r for r in rows if r["email"] == "ana@example.org")
    assert ana["name"] == f"'{given} Sample"
