"""One set of figures: the campaign page, its dashboard, `campaign status` and the CSV count a
finished campaign's letters the same way, number by number (decision 0046)."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import (
    AuditEvent,
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    Role,
)
from campaign.services.sending import ledger
from tests.factories import CampaignFactory, DeliveryFactory

BODY = "{{ salutation }}\n\nWe write about the trial.\n\n{{ closing }}\n\nAnna Sample\n"
LAUNCH = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
# What became of each letter: 6 sent, 2 bounced (one reported after it was accepted, one
# refused during the conversation), 1 failed, 2 in doubt, 2 suppressed, 1 cancelled.
OUTCOMES = (
    ["sent"] * 6
    + ["bounced_after", "bounced_refused", "failed", "in_doubt", "in_doubt"]
    + ["suppressed", "suppressed", "cancelled"]
)
EXPECTED = {
    "sent": 6,
    "bounced": 2,
    "failed": 1,
    "in_doubt": 2,
    "suppressed": 2,
    "cancelled": 1,
    "deferred": 0,
    "queued": 0,
}


def _finished_campaign() -> Campaign:
    campaign = CampaignFactory(
        statement__subject="Ahead of the summit",
        statement__body=BODY,
        recipients=[
            {"family_name": f"Person{i:02d}", "email": f"p{i:02d}@example.org"}
            for i in range(len(OUTCOMES))
        ],
        from_address="Office <office@example.org>",
        launched=True,
    )
    rows = list(
        db.session.scalars(
            select(Delivery).where(Delivery.campaign_id == campaign.id).order_by(Delivery.email)
        )
    )
    for row, outcome in zip(rows, OUTCOMES, strict=True):
        accepted = outcome in ("sent", "bounced_after")
        row.sent_at = LAUNCH + timedelta(minutes=1) if accepted else None
        row.status = {
            "bounced_after": DeliveryStatus.BOUNCED.value,
            "bounced_refused": DeliveryStatus.BOUNCED.value,
        }.get(outcome, outcome)
    # A follow-up to one of them: the letter's figures do not count it.
    DeliveryFactory(
        campaign=campaign,
        contact_id=rows[0].contact_id,
        step=1,
        email=rows[0].email,
        status=DeliveryStatus.SENT.value,
        sent_at=LAUNCH + timedelta(days=14),
    )
    campaign.status = CampaignStatus.FINISHED.value
    campaign.launched_at = LAUNCH
    db.session.commit()
    return campaign


def _figures(page: str, box: str) -> dict[str, int]:
    found = re.search(rf'<dl[^>]*id="{box}"[^>]*>(.*?)</dl>', page, re.S)
    assert found, f"no #{box}"
    return {
        key: int(value) for key, value in re.findall(r'data-figure="(\w+)">(\d+)<', found.group(1))
    }


def test_page_dashboard_status_and_csv_count_the_same(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    campaign = _finished_campaign()
    login(Role.SENDER)

    page = client.get(f"/campaigns/{campaign.id}").get_data(as_text=True)
    on_page = _figures(page, "p-figures")
    assert on_page == EXPECTED

    board = client.get(f"/campaigns/{campaign.id}/dashboard").get_data(as_text=True)
    assert _figures(board, "dashboard-figures") == EXPECTED
    funnel = {k: int(v) for k, v in re.findall(r'data-count="(\w+)">(\d+)<', board)}
    assert (funnel["sent"], funnel["bounced_hard"], funnel["failed"], funnel["in_doubt"]) == (
        6,
        2,
        1,
        2,
    )

    lines = app.test_cli_runner().invoke(args=["status", str(campaign.id)]).stdout.splitlines()
    assert lines[0] == f"campaign {campaign.id} finished"
    status = {line.split()[0]: int(line.split()[1]) for line in lines[1:]}
    in_status = {
        **{key: status[key] for key in EXPECTED if key in status},
        "queued": status["queued"] + status["sending"],
    }
    assert in_status == EXPECTED

    exported = client.get(f"/campaigns/{campaign.id}/dashboard.csv").get_data(as_text=True)
    tally = Counter(row["status"] for row in csv.DictReader(io.StringIO(exported)))
    in_csv = {key: tally.get(key, 0) for key in EXPECTED}
    in_csv["queued"] = tally.get("queued", 0) + tally.get("sending", 0)
    assert in_csv == EXPECTED
    # The export counts with the same function: its audit record keeps those figures.
    exported_event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "campaign.export")
    ).one()
    assert exported_event.detail["rows"] == len(OUTCOMES)
    assert exported_event.detail["figures"] == {**EXPECTED, "total": len(OUTCOMES)}
    assert ledger.sent_and_totals([campaign.id]) == {campaign.id: (6, len(OUTCOMES))}

    # And the list: sent of total.
    listing = client.get("/campaigns/").get_data(as_text=True)
    assert f"6 / {len(OUTCOMES)}" in listing
