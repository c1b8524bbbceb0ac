"""The demo's finished campaign in Chromium: its funnel, its chart, and the CSV downloaded."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from campaign.demo.loader import load_demo
from campaign.extensions import db
from campaign.models import Role
from tests.browser.conftest import LiveServer


def test_the_demo_campaigns_dashboard_shows_its_figures_and_downloads_its_csv(
    signed_in_page: Callable[..., Page], live_server: LiveServer, tmp_path: Path
) -> None:
    with live_server.app.app_context():
        load_demo(generated=400)
        db.session.commit()
        db.session.remove()
    page = signed_in_page(Role.SENDER)
    page.get_by_role("link", name="Campaigns", exact=True).click()
    page.get_by_role("link", name="Joint letter ahead of the EU–Central Asia summit (sent)").click()
    # The campaign page and its dashboard show the same figures (decision 0046).
    shown = page.locator("#p-figures")
    expect(shown.locator('[data-figure="sent"]')).to_have_text("68")
    expect(shown.locator('[data-figure="bounced"]')).to_have_text("2")
    page.locator("#open-dashboard").click()
    figures = page.locator("#dashboard-figures")
    expect(figures.locator('[data-figure="sent"]')).to_have_text("68")
    expect(figures.locator('[data-figure="bounced"]')).to_have_text("2")
    expect(page.get_by_role("heading", name="Funnel")).to_be_visible()

    funnel = page.locator("#funnel")
    # A bounce is not "sent" (decision 0046); shares are of the 70 letters handed over.
    expect(funnel.locator('[data-count="sent"]')).to_have_text("68")
    expect(funnel.locator('[data-count="replied"]')).to_have_text("9")
    expect(funnel.locator('[data-percent="replied"]')).to_have_text("12.9%")
    expect(funnel.locator('[data-count="auto_replied"]')).to_have_text("5")
    expect(funnel.locator('[data-count="bounced_hard"]')).to_have_text("2")
    expect(funnel.locator("meter")).to_have_count(6)

    # The chart is drawn by the server: bars on several days, each with its figure.
    chart = page.get_by_role(
        "img", name="Replies, auto-replies and bounces per day since the launch"
    )
    expect(chart).to_be_visible()
    reply_bars = page.locator("#timeline-chart rect[data-series=replies]")
    assert reply_bars.count() >= 3
    box = reply_bars.first.bounding_box()
    assert box is not None and box["height"] > 0, "the stylesheet does not hide the bars"
    page.get_by_text("The chart's figures as a table").click()
    expect(page.locator("#timeline-table tbody tr").last.locator("td").nth(3)).to_have_text("9")

    # Not replied: auto-repliers are listed, with the out-of-office mark.
    expect(page.locator("#non-responder-count")).to_contain_text("59 recipients")
    with page.expect_download() as started:
        page.locator("#download-csv").click()
    download = started.value
    assert download.suggested_filename.endswith(".csv")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text("utf-8-sig"))))
    assert len(rows) == 70
    assert sum(1 for r in rows if r["replied_at"]) == 9
    assert sum(1 for r in rows if r["auto_replied"] == "yes") == 5
    assert sorted(r["bounce"] for r in rows if r["bounce"]) == ["hard", "hard", "soft"]
    assert all(r["email"].endswith(("@example.org", "@example.net")) for r in rows)
