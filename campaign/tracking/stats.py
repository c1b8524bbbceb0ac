"""Open and click counts of a campaign, from the stored tracking events."""

from __future__ import annotations

from typing import Any

from sqlalchemy import distinct, func, select

from campaign.extensions import db
from campaign.models import Delivery
from campaign.models.tracking import TrackedLink, TrackingEvent, TrackingKind


def tracking_counts(campaign_id: int) -> dict[str, Any]:
    """Count the campaign's opens and clicks: totals, unique deliveries, clicks per link.

    {"opens": pixel loads, "unique_opens": deliveries opened (clicks included),
     "clicks": int, "unique_clicks": deliveries that clicked,
     "links": [{"link_id", "url", "clicks", "unique_clicks"}, ...] most clicked first}.
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
        {"link_id": link_id, "url": url, "clicks": int(n or 0), "unique_clicks": int(u or 0)}
        for link_id, url, n, u in db.session.execute(
            select(
                TrackedLink.id, TrackedLink.url, link_clicks.c.clicks, link_clicks.c.unique_clicks
            )
            .outerjoin(link_clicks, link_clicks.c.link_id == TrackedLink.id)
            .where(TrackedLink.campaign_id == campaign_id)
            .order_by(link_clicks.c.clicks.desc().nulls_last(), TrackedLink.id)
        )
    ]
    return {
        "opens": opens,
        "unique_opens": unique_opens,
        "clicks": clicks,
        "unique_clicks": unique_clicks,
        "links": links,
    }
