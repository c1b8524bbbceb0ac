"""The dashboard page and its CSV: figures for everyone, names for editors, the file for senders."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, Delivery, Role, User
from campaign.models.tracking import TrackingKind
from campaign.services.sending import campaigns
from campaign.services.sending.campaigns import AudienceSpec
from campaign.services.statements import statements
from campaign.tracking import buffer
from campaign.tracking.links import record_link
from tests.pages import html_of, visible_text
from tests.services.test_dashboard import build


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    # A tracked campaign launches only with an address its letters' pixel and links reach.
    return {**app_overrides, "PUBLIC_URL": "https://campaign.example.org"}


Login = Callable[[Role], User]


def test_a_viewer_sees_the_funnel_and_the_chart_but_no_names(
    app: Flask, client: FlaskClient, login: Login
) -> None:
    built = build()
    login(Role.VIEWER)
    page = client.get(f"/campaigns/{built.campaign.id}/dashboard")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-count="sent">7<' in html  # Dana's letter bounced: not sent (decision 0046)
    assert 'data-percent="replied">22.2%<' in html
    assert 'data-count="bounced_hard">1<' in html
    assert 'data-count="auto_replied">2<' in html
    assert '<svg id="timeline-chart"' in html
    assert html.count('class="bar bar-replies" data-series="replies"') == 2  # two reply days
    assert 'id="timeline-table"' in html
    # The names of the people who have not answered, and the file, are for other roles.
    assert "chen@example.org" not in html
    assert "shown to editors and above" in html
    assert "dashboard.csv" not in html
    assert client.get(f"/campaigns/{built.campaign.id}/dashboard.csv").status_code == 403
    # The replies inbox is for editors: a viewer is not offered a button that says "refused".
    assert 'id="open-replies"' not in html
    campaign_page = client.get(f"/campaigns/{built.campaign.id}")
    assert campaign_page.status_code == 200
    assert 'id="open-dashboard"' in html_of(campaign_page)
    assert 'id="open-replies"' not in html_of(campaign_page)


def test_an_editor_sees_who_has_not_replied_with_links_to_them(
    app: Flask, client: FlaskClient, login: Login
) -> None:
    built = build()
    login(Role.EDITOR)
    html = client.get(f"/campaigns/{built.campaign.id}/dashboard").get_data(as_text=True)
    table = html[html.index('id="non-responders"') :]
    assert "5 recipients were sent the letter and have not replied" in visible_text(html)
    for name in ("Chen", "Eve", "Frank", "Grace", "Hank"):
        assert f"{name.lower()}@example.org" in table
    for name in ("Ana", "Ben", "Dana"):  # replied, replied, hard bounce
        assert f"{name.lower()}@example.org" not in table
    chen = built.to["Chen"].contact_id
    assert f'href="/contacts/{chen}"' in table
    assert "out of office" in table
    assert "dashboard.csv" not in html
    assert client.get(f"/campaigns/{built.campaign.id}/dashboard.csv").status_code == 403


def _read_csv(body: bytes) -> list[dict[str, str]]:
    assert body.startswith(b"\xef\xbb\xbf"), "a BOM, so Excel reads UTF-8"
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


def test_a_sender_downloads_every_recipient_or_only_those_who_have_not_replied(
    app: Flask, client: FlaskClient, login: Login
) -> None:
    built = build()
    login(Role.SENDER)
    html = client.get(f"/campaigns/{built.campaign.id}/dashboard").get_data(as_text=True)
    assert f'href="/campaigns/{built.campaign.id}/dashboard.csv"' in html

    everyone = client.get(f"/campaigns/{built.campaign.id}/dashboard.csv")
    assert everyone.status_code == 200
    assert everyone.mimetype == "text/csv"
    assert "attachment;" in everyone.headers["Content-Disposition"]
    assert everyone.headers["Cache-Control"] == "no-store"  # addresses: no cached copy
    rows = _read_csv(everyone.get_data())
    assert len(rows) == 10
    assert {r["email"]: r["bounce"] for r in rows}["dana@example.org"] == "hard"

    silent = client.get(f"/campaigns/{built.campaign.id}/dashboard.csv?only=non_responders")
    assert "non-responders" in silent.headers["Content-Disposition"]
    assert [r["email"] for r in _read_csv(silent.get_data())] == [
        f"{n}@example.org" for n in ("chen", "eve", "frank", "grace", "hank")
    ]
    exports = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "campaign.export").order_by(AuditEvent.id)
    ).all()
    assert [(e.actor_email, e.detail["rows"]) for e in exports] == [
        ("sender@example.org", 10),
        ("sender@example.org", 5),
    ]


def test_the_campaign_page_links_to_its_dashboard_and_replies(
    app: Flask, client: FlaskClient, login: Login
) -> None:
    built = build()
    # The replies inbox is for editors and above (a viewer is not offered it: see
    # test_a_viewer_sees_the_funnel_and_the_chart_but_no_names).
    login(Role.EDITOR)
    html = client.get(f"/campaigns/{built.campaign.id}").get_data(as_text=True)
    assert f'href="/campaigns/{built.campaign.id}/dashboard"' in html
    assert f"campaign={built.campaign.id}" in html  # the replies inbox of this campaign
    assert ">Replies<" in html
    assert client.get(f"/replies/?campaign={built.campaign.id}").status_code == 200


def test_a_draft_has_no_dashboard_figures(app: Flask, client: FlaskClient, login: Login) -> None:
    statement = statements.create_statement("Draft", language="en", subject="S", body="x")
    draft = campaigns.create_campaign(statement, audience=AudienceSpec(()))
    db.session.commit()
    login(Role.VIEWER)
    response = client.get(f"/campaigns/{draft.id}")
    assert response.status_code == 200
    show = response.get_data(as_text=True)
    assert f"<h1>{draft.name}</h1>" in show
    assert "/dashboard" not in show
    html = client.get(f"/campaigns/{draft.id}/dashboard").get_data(as_text=True)
    assert "has not been launched yet" in html
    assert client.get("/campaigns/999/dashboard").status_code == 404


def test_a_campaign_cancelled_before_its_launch_has_no_figures(
    app: Flask, client: FlaskClient, login: Login
) -> None:
    statement = statements.create_statement("Dropped", language="en", subject="S", body="x")
    dropped = campaigns.create_campaign(statement, audience=AudienceSpec(()))
    assert campaigns.cancel_campaign(dropped)
    db.session.commit()
    login(Role.VIEWER)
    page = client.get(f"/campaigns/{dropped.id}/dashboard")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "cancelled before it was launched" in visible_text(html)
    assert 'id="funnel"' not in html


def _hit(delivery: Delivery, kind: TrackingKind, link_id: int | None = None) -> None:
    buffer.push_hit(
        buffer.new_hit(
            kind,
            campaign_id=delivery.campaign_id,
            delivery_id=delivery.id,
            link_id=link_id,
            remote_addr="192.0.2.1",
            user_agent="Mail/1.0",
        )
    )


def test_a_tracked_campaign_shows_its_opens_and_clicks_per_link(
    app: Flask, client: FlaskClient, login: Login
) -> None:
    built = build(open_tracking=True, click_tracking=True)
    report = record_link(built.campaign.id, "https://example.org/report")
    appeal = record_link(built.campaign.id, "https://example.org/appeal")
    unclicked = record_link(built.campaign.id, "https://example.org/never")
    db.session.commit()
    for _ in range(3):
        _hit(built.to["Ana"], TrackingKind.OPEN)
    _hit(built.to["Ben"], TrackingKind.OPEN)
    _hit(built.to["Ana"], TrackingKind.CLICK, report)
    _hit(built.to["Ana"], TrackingKind.CLICK, report)
    _hit(built.to["Chen"], TrackingKind.CLICK, report)  # pixel blocked, still a reader
    _hit(built.to["Chen"], TrackingKind.CLICK, appeal)
    assert buffer.flush_hits(commit=db.session.commit).written == 8
    login(Role.VIEWER)
    html = client.get(f"/campaigns/{built.campaign.id}/dashboard").get_data(as_text=True)
    assert 'data-total="opens">4<' in html
    # Ana, Ben, Frank were marked opened by build(); Chen by his click.
    assert 'data-unique="opens">4<' in html
    assert 'data-total="clicks">4<' in html
    assert 'data-unique="clicks">2<' in html
    links = html[html.index('id="tracking-links"') :]
    rows = re.findall(
        r'<tr data-link="(\d+)"><td class="url">([^<]+)</td>'
        r"<td [^>]*>(\d+)</td><td [^>]*>(\d+)</td>",
        links,
    )
    assert [(int(i), url, int(n), int(u)) for i, url, n, u in rows] == [
        (report, "https://example.org/report", 3, 2),
        (appeal, "https://example.org/appeal", 1, 1),
        (unclicked, "https://example.org/never", 0, 0),
    ]


def test_opens_and_clicks_are_not_shown_when_the_campaign_did_not_track_them(
    app: Flask, client: FlaskClient, login: Login
) -> None:
    built = build()
    login(Role.VIEWER)
    html = client.get(f"/campaigns/{built.campaign.id}/dashboard").get_data(as_text=True)
    assert 'id="tracking-totals"' not in html
    assert "tracking was off for this campaign" in html


def test_a_campaign_counting_only_opens_shows_no_click_figures(
    app: Flask, client: FlaskClient, login: Login
) -> None:
    built = build(open_tracking=True)
    _hit(built.to["Ana"], TrackingKind.OPEN)
    buffer.flush_hits(commit=db.session.commit)
    login(Role.VIEWER)
    html = client.get(f"/campaigns/{built.campaign.id}/dashboard").get_data(as_text=True)
    assert 'data-total="opens">1<' in html
    assert 'data-tracking="clicks"' not in html and 'id="tracking-links"' not in html
