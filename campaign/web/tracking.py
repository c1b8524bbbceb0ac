"""Public open-pixel and click-redirect routes: signed tokens in, a Redis push, no DB write.

No session, no cookie, nothing cached. A click goes only to the URL recorded at send time
for that campaign; anything we did not sign is a 404, never a redirect.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from flask import Blueprint, Response, abort, current_app, redirect, request
from redis.exceptions import RedisError
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from campaign.extensions import db
from campaign.models.tracking import TrackedLink, TrackingKind
from campaign.tracking.buffer import new_hit, push_hit
from campaign.tracking.tokens import TrackingToken, read_token
from campaign.web.access import public

# cli_group=None: `campaign flush-tracking` sits beside the other top-level commands.
bp = Blueprint("tracking", __name__, cli_group=None)
log = logging.getLogger(__name__)

# A transparent 1×1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
# Link rows never change once written; a process keeps this many in memory.
LINK_CACHE_SIZE = 10_000


def _no_trace(response: BaseResponse) -> BaseResponse:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _record(token: TrackingToken) -> None:
    hit = new_hit(
        token.kind,
        campaign_id=token.campaign_id,
        delivery_id=token.delivery_id,
        link_id=token.link_id,
        remote_addr=request.remote_addr,
        user_agent=request.headers.get("User-Agent", ""),
    )
    try:
        push_hit(hit)
    except RedisError as error:
        # The reader still gets the image or the page; only the count misses this hit.
        # The error names Redis's address, never the reader's.
        log.warning("a %s hit was not recorded: Redis is unavailable (%s)", token.kind, error)


def _link_url(campaign_id: int, link_id: int) -> str | None:
    cache: dict[int, tuple[int, str]] = current_app.extensions.setdefault(
        "campaign_tracked_links", {}
    )
    if link_id not in cache:
        row = db.session.execute(
            select(TrackedLink.campaign_id, TrackedLink.url).where(TrackedLink.id == link_id)
        ).first()
        db.session.rollback()  # a read: end the transaction at once
        if row is None:
            return None
        if len(cache) >= LINK_CACHE_SIZE:
            cache.clear()
        cache[link_id] = (row.campaign_id, row.url)
    owner, url = cache[link_id]
    return url if owner == campaign_id else None


@bp.route("/t/o/<token>.gif", methods=["GET"])
@public
def open_pixel(token: str) -> Any:
    read = read_token(token)
    if read is not None and read.kind == TrackingKind.OPEN:
        _record(read)
    # The same image whatever the token: a broken image would only puzzle the reader.
    return _no_trace(Response(PIXEL, mimetype="image/gif"))


@bp.route("/t/c/<token>", methods=["GET"])
@public
def click(token: str) -> Any:
    read = read_token(token)
    if read is None or read.kind != TrackingKind.CLICK or read.link_id is None:
        abort(404)
    url = _link_url(read.campaign_id, read.link_id)
    if url is None:
        abort(404)
    _record(read)
    return _no_trace(redirect(url, code=302))


def _register_commands() -> None:
    from campaign.commands.tracking import flush_tracking_command

    bp.cli.add_command(flush_tracking_command)


_register_commands()
