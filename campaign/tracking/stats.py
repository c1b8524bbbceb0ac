"""Open and click counts of a campaign, from the stored tracking events."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import distinct, func, select

from campaign.extensions import db
from campaign.models import Delivery
from campaign.models.tracking import TrackedLink, TrackingEvent, TrackingKind


@dataclass(frozen=True)
class LinkClicks:
    link_id: int
    url: str
    clicks: int
    unique_clicks: int  # deliveries that clicked it


@dataclass(frozen=True)
class TrackingCounts:
    opens: int  # pixel loads
    unique_opens: int  # deliveries opened (by the pixel or by a click)
    clicks: int
    unique_clicks: int  # deliveries that clicked at least one link
    # Every link recorded at send time, most clicked first (unclicked ones too, at 0).
    links: list[LinkClicks] = field(default_factory=list)


def tracking_counts(campaign_id: int) -> TrackingCounts:
    """Count the campaign's opens and clicks: totals, unique deliveries, clicks per link.

    Every letter of the campaign counts (follow-ups too: each carries its own tokens).
    Hits still waiting in the Redis buffer are not counted until the next flush (seconds).
    """
    per_kind = {
        kind: (int(total), int(unique))
        for kind, total, unique in db.session.execute(
            select(
                TrackingEvent.kind,
                func.count(),
                func.count(distinct(TrackingEvent.delivery_id)),
            )
            .where(TrackingEvent.campaign_id == campaign_id)
            .group_by(TrackingEvent.kind)
        )
    }
    opens, _ = per_kind.get(TrackingKind.OPEN.value, (0, 0))
    # A click proves the letter was opened even where its pixel was blocked: unique opens
    # are the deliveries marked opened, by a pixel or by a click.
    unique_opens = int(
        db.session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.campaign_id == campaign_id, Delivery.opened_at.is_not(None))
        )
        or 0
    )
    clicks, unique_clicks = per_kind.get(TrackingKind.CLICK.value, (0, 0))
    link_clicks = (
        select(
            TrackingEvent.link_id.label("link_id"),
            func.count().label("clicks"),
            func.count(distinct(TrackingEvent.delivery_id)).label("unique_clicks"),
        )
        .where(
            TrackingEvent.campaign_id == campaign_id,
            TrackingEvent.kind == TrackingKind.CLICK.value,
        )
        .group_by(TrackingEvent.link_id)
        .subquery()
    )
    links = [
        LinkClicks(link_id, url, int(n or 0), int(u or 0))
        for link_id, url, n, u in db.session.execute(
            select(
                TrackedLink.id, TrackedLink.url, link_clicks.c.clicks, link_clicks.c.unique_clicks
            )
            .outerjoin(link_clicks, link_clicks.c.link_id == TrackedLink.id)
            .where(TrackedLink.campaign_id == campaign_id)
            .order_by(link_clicks.c.clicks.desc().nulls_last(), TrackedLink.id)
        )
    ]
    return TrackingCounts(opens, unique_opens, clicks, unique_clicks, links)
