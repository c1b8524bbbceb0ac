"""A campaign's dashboard: its funnel, a chart of answers over time, non-responders, CSV.

Who sees what: counts are not private, so viewers see the funnel and the chart; the
names and addresses of the people who have not answered need an editor; the CSV, a bulk
copy of recipients' addresses, needs a sender, like the address book's export
(docs/decisions/0019-campaign-dashboard.md).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app, render_template, request, url_for
from flask_babel import format_date
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from campaign.extensions import db
from campaign.models import Campaign, CampaignStatus, Role
from campaign.params import page_number
from campaign.services.replies import dashboard
from campaign.services.sending import ledger
from campaign.web.access import allow, may
from campaign.web.downloads import file_download

bp = Blueprint("dashboard", __name__, url_prefix="/campaigns")


@bp.app_template_global()
def replies_url(campaign_id: int) -> str:
    """The campaign's replies inbox (the replies blueprint's page, whichever is installed)."""
    if "replies.index" in current_app.view_functions:
        return url_for("replies.index", campaign=campaign_id)
    return f"/replies/?campaign={campaign_id}"


# --- the chart, laid out here so the template only writes SVG attributes (no inline style) ----

CHART_WIDTH = 760
CHART_HEIGHT = 260
MARGIN_LEFT = 44
MARGIN_RIGHT = 12
MARGIN_TOP = 12
MARGIN_BOTTOM = 44
SERIES = (
    ("replies", _l("Replies")),
    ("auto_replies", _l("Auto-replies")),
    ("bounces", _l("Bounces")),
)
# At most this many date labels under the bars; more would overlap.
MAX_LABELS = 10


@dataclass(frozen=True)
class Bar:
    series: str
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int
    bars: list[Bar]
    x_ticks: list[Tick]
    y_ticks: list[Tick]


def _y_scale(peak: int) -> tuple[int, int]:
    """(axis maximum, tick step): whole numbers, at most five steps."""
    if peak <= 0:
        return 1, 1
    step = max(1, math.ceil(peak / 5))
    return step * math.ceil(peak / step), step


def _bucket_label(start: datetime, *, hourly: bool, first: bool) -> str:
    """An x-axis label: "3 Apr" ("3 avr.", "3 апр."), the hour too when hourly."""
    if hourly and not (first or start.hour == 0):
        return start.strftime("%H:00")
    # A date, not a datetime: the bucket is a UTC day, never moved to another zone.
    day = str(format_date(start.date(), "d MMM"))
    return f"{day} {start:%H:00}" if hourly else day


@bp.app_template_global()
def bucket_label(start: datetime, hourly: bool) -> str:
    """A bucket of the timeline in the table: its UTC day (and hour) in the interface locale."""
    day = str(format_date(start.date(), "medium"))
    return f"{day} {start:%H:00}" if hourly else day


def build_chart(line: dashboard.Timeline) -> Chart:
    """Grouped bars (replies, auto-replies, bounces) per bucket, with both axes' ticks."""
    left, right = MARGIN_LEFT, CHART_WIDTH - MARGIN_RIGHT
    top, bottom = MARGIN_TOP, CHART_HEIGHT - MARGIN_BOTTOM
    count = max(1, len(line.buckets))
    group = (right - left) / count
    bar_width = max(1.0, group * 0.8 / len(SERIES))
    axis_max, step = _y_scale(line.peak)
    per_unit = (bottom - top) / axis_max
    bars: list[Bar] = []
    x_ticks: list[Tick] = []
    every = max(1, math.ceil(count / MAX_LABELS))
    for index, bucket in enumerate(line.buckets):
        group_left = left + index * group + group * 0.1
        for offset, (series, label) in enumerate(SERIES):
            value = int(getattr(bucket, series))
            if not value:
                continue
            height = value * per_unit
            bars.append(
                Bar(
                    series,
                    round(group_left + offset * bar_width, 2),
                    round(bottom - height, 2),
                    round(bar_width, 2),
                    round(height, 2),
                    _(
                        "%(when)s: %(count)s %(series)s",
                        when=bucket_label(bucket.start, line.is_hourly),
                        count=value,
                        series=str(label).lower(),
                    ),
                )
            )
        if index % every == 0:
            x_ticks.append(
                Tick(
                    round(left + index * group + group / 2, 2),
                    _bucket_label(bucket.start, hourly=line.is_hourly, first=index == 0),
                )
            )
    y_ticks = [
        Tick(round(bottom - value * per_unit, 2), str(value))
        for value in range(0, axis_max + 1, step)
    ]
    return Chart(CHART_WIDTH, CHART_HEIGHT, left, right, top, bottom, bars, x_ticks, y_ticks)


# --- views -----------------------------------------------------------------------------------


@bp.route("/<int:campaign_id>/dashboard")
@allow(Role.VIEWER)
def show(campaign_id: int) -> Any:
    campaign = db.get_or_404(Campaign, campaign_id)
    line = dashboard.timeline(campaign.id)
    may_list = may(Role.EDITOR)
    page = page_number(request.args.get("page"))
    return render_template(
        "campaigns/dashboard.html",
        campaign=campaign,
        # Not the status: a campaign cancelled before its launch has no ledger either.
        is_unlaunched=campaign.launched_at is None,
        is_cancelled=campaign.status == CampaignStatus.CANCELLED,
        funnel=dashboard.funnel(campaign.id),
        figures=ledger.campaign_figures(campaign.id),
        tracking=dashboard.tracking(campaign),
        timeline=line,
        chart=build_chart(line),
        series=SERIES,
        non_responders=dashboard.non_responders(campaign.id, page=page) if may_list else None,
        may_list=may_list,
        may_export=may(Role.SENDER),
    )


@bp.route("/<int:campaign_id>/dashboard.csv")
@allow(Role.SENDER)
def export(campaign_id: int) -> Any:
    """Every recipient of the letter with their outcome, or only those who have not replied."""
    campaign = db.get_or_404(Campaign, campaign_id)
    only = request.args.get("only", "") == "non_responders"
    # A temporary file keeps a 100,000-row export out of memory.
    destination = tempfile.TemporaryFile()  # noqa: SIM115 (closed by file_download)
    try:
        dashboard.export_csv(campaign, destination, only_non_responders=only)
        db.session.commit()
    except Exception:
        destination.close()
        raise
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    name = f"campaign-{campaign.id}-{'non-responders' if only else 'recipients'}-{stamp}.csv"
    return file_download(destination, mimetype="text/csv", filename=name)
