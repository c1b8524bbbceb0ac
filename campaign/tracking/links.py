"""Putting tracking into a letter's HTML part: the open pixel and click links.

Only the HTML alternative changes; the text part keeps the real addresses. The HTML is our
own renderer's output (Markdown with raw HTML off, then an autoescaped layout), so links are
`<a ... href="...">` with a quoted, HTML-escaped value: a pattern over those attributes is
exact here, where it would not be on arbitrary HTML.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from campaign.extensions import db
from campaign.models.tracking import TrackedLink, TrackingKind
from campaign.tracking.tokens import make_token

_HREF = re.compile(r"""(<a\b[^>]*?\bhref=)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_TRACKED_SCHEMES = ("http://", "https://")
# Links longer than this stay as they are: no mail client needs them and the table stays small.
MAX_URL_LENGTH = 4000


def base_url_problem(public_url: str, *, debug: bool) -> str:
    """Why a letter's pixel and links could not point at `public_url` ("" when they can).

    Without CAMPAIGN_PUBLIC_URL they would point at the development address, which no
    reader can reach; over plain HTTP a reader's clicks (and tokens) would cross the
    network unencrypted, which only a machine in debug mode may accept.
    """
    if not public_url.strip():
        return (
            "CAMPAIGN_PUBLIC_URL is not set, so the open pixel and tracked links would point "
            "at no address readers can reach; set it to this app's public https:// address "
            "or turn tracking off"
        )
    parts = urlsplit(public_url.strip())
    if parts.scheme != "https" and not (debug and parts.scheme == "http"):
        return (
            f"CAMPAIGN_PUBLIC_URL ({public_url}) must start with https:// for tracked letters "
            "(readers' clicks would travel unencrypted)"
        )
    if not parts.hostname:
        return f"CAMPAIGN_PUBLIC_URL ({public_url}) names no host"
    return ""


def open_url(base_url: str, *, campaign_id: int, delivery_id: int) -> str:
    token = make_token(TrackingKind.OPEN, campaign_id=campaign_id, delivery_id=delivery_id)
    return f"{base_url}/t/o/{token}.gif"


def click_url(base_url: str, *, campaign_id: int, delivery_id: int, link_id: int) -> str:
    token = make_token(
        TrackingKind.CLICK, campaign_id=campaign_id, delivery_id=delivery_id, link_id=link_id
    )
    return f"{base_url}/t/c/{token}"


def add_open_pixel(page: str, pixel_url: str) -> str:
    """Put a 1×1 image just before </body> (at the end when there is none)."""
    image = f'<img src="{html.escape(pixel_url)}" alt="" width="1" height="1">'
    ends = list(_BODY_END.finditer(page))
    if not ends:
        return page + image
    at = ends[-1].start()
    return page[:at] + image + "\n" + page[at:]


def is_trackable(url: str, base_url: str) -> bool:
    """Whether a click on `url` may go through a tracking redirect.

    Not mailto: or page anchors, not links to this app (the unsubscribe page must work
    even when tracking links are blocked), not absurdly long ones.
    """
    lowered = url.strip().lower()
    if not lowered.startswith(_TRACKED_SCHEMES) or len(url) > MAX_URL_LENGTH:
        return False
    own = base_url.lower()
    return not (lowered == own or lowered.startswith(own + "/") or lowered.startswith(own + "?"))


def rewrite_links(page: str, rewrite: Callable[[str], str | None]) -> str:
    """Replace each link's address by `rewrite(address)`, unless that gives None."""

    def replace(match: re.Match[str]) -> str:
        url = html.unescape(match.group(3))
        new = rewrite(url)
        if new is None:
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}{html.escape(new)}{match.group(2)}"

    return _HREF.sub(replace, page)


def url_sha256(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()


def record_link(campaign_id: int, url: str) -> int:
    """Return the id of the campaign's TrackedLink for `url`, inserting it if new.

    Two workers may meet the same new link at once: the insert does nothing on a conflict
    with the unique (campaign, hash) and the select then finds the other's row.
    """
    digest = url_sha256(url)
    table = TrackedLink.__table__
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    db.session.execute(
        insert(table)
        .values(campaign_id=campaign_id, url=url, url_sha256=digest)
        .on_conflict_do_nothing(index_elements=["campaign_id", "url_sha256"])
    )
    link_id = db.session.scalar(
        select(TrackedLink.id).where(
            TrackedLink.campaign_id == campaign_id, TrackedLink.url_sha256 == digest
        )
    )
    assert link_id is not None  # inserted above or by the writer we conflicted with
    return int(link_id)


class LetterTracking:
    """What one send batch puts into its letters: pixel, click links, or both.

    Link ids are remembered for the batch, so a campaign's links cost a query each once per
    batch, not once per letter. New links are committed (`commit`) before the letter that
    carries them is sent: a click on a sent letter must always find its link.
    """

    def __init__(
        self,
        campaign_id: int,
        *,
        base_url: str,
        opens: bool,
        clicks: bool,
        commit: Callable[[], None],
    ) -> None:
        self.campaign_id = campaign_id
        self.base_url = base_url.rstrip("/")
        self.opens = opens
        self.clicks = clicks
        self.commit = commit
        self._link_ids: dict[str, int] = {}

    def link_id(self, url: str) -> int:
        if url not in self._link_ids:
            self._link_ids[url] = record_link(self.campaign_id, url)
            self.commit()
        return self._link_ids[url]

    def transform_for(self, delivery_id: int) -> Callable[[str], str]:
        """The HTML transform for one delivery's letter (compose_letter's html_transform)."""

        def track(page: str) -> str:
            if self.clicks:
                page = rewrite_links(page, lambda url: self._click(url, delivery_id))
            if self.opens:
                pixel = open_url(
                    self.base_url, campaign_id=self.campaign_id, delivery_id=delivery_id
                )
                page = add_open_pixel(page, pixel)
            return page

        return track

    def _click(self, url: str, delivery_id: int) -> str | None:
        if not is_trackable(url, self.base_url):
            return None
        return click_url(
            self.base_url,
            campaign_id=self.campaign_id,
            delivery_id=delivery_id,
            link_id=self.link_id(url),
        )
