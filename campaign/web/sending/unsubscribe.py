"""Public one-click unsubscribe (RFC 8058): no login, no CSRF, token-authenticated.

The pages are in the recipient's language: an explicit ?lang= (or the form's `lang`), then
the contact's languages, then the browser's Accept-Language, then the letter's first
language, among the languages the interface has catalogues for; English last.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, make_response, render_template, request, url_for
from flask_babel import gettext as _
from redis.exceptions import RedisError

from campaign.extensions import csrf, db
from campaign.i18n import (
    LANGUAGES,
    autonym,
    use_visitor_language,
)
from campaign.queue import get_redis
from campaign.services.sending import unsubscribe as unsubscribe_service
from campaign.web.access import public

bp = Blueprint("unsubscribe", __name__)
log = logging.getLogger(__name__)

# Unknown tokens per client address and minute before the page answers 429: enough for a
# person mistyping a link, far too few to guess a 144-bit token (it only slows scanners).
MAX_MISSES_PER_MINUTE = 60


def _miss_key() -> str:
    return f"campaign:unsubscribe-misses:{request.remote_addr or '-'}"


def _too_many_misses() -> bool:
    try:
        raw = get_redis().get(_miss_key())
    except RedisError:
        return False  # the limit is a nicety; unsubscribing must work without Redis
    return raw is not None and int(raw) >= MAX_MISSES_PER_MINUTE


def _count_miss() -> None:
    try:
        redis = get_redis()
        if redis.incr(_miss_key()) == 1:
            redis.expire(_miss_key(), 60)
    except RedisError as error:
        log.warning("could not count an unknown unsubscribe token: %s", error)


def _reader_language(target: unsubscribe_service.UnsubscribeTarget | None) -> str:
    """Choose the page's language and make the rest of the request use it."""
    if target is None:
        return use_visitor_language()
    return use_visitor_language(*target.contact_languages, fallback=target.letter_languages[:1])


def _target(token: str) -> unsubscribe_service.UnsubscribeTarget:
    if _too_many_misses():
        _reader_language(None)
        text = _(
            "Too many unknown links were opened from your address. Wait a minute and try again."
        )
        page = render_template("error.html", code=429, title=_("Too many requests"), text=text)
        abort(make_response(page, 429))
    target = unsubscribe_service.find_target(token)
    if target is None:
        _count_miss()
        _reader_language(None)
        abort(404)  # the same page for malformed, unknown and expired tokens
    return target


def _languages(token: str, current: str) -> list[tuple[str, str, str, bool]]:
    """The language links: (tag, its name in itself, address, is the current one)."""
    return [
        (tag, autonym(tag), url_for("unsubscribe.confirm", token=token, lang=tag), tag == current)
        for tag in LANGUAGES
    ]


@bp.route("/u/<token>", methods=["GET"])
@public
def confirm(token: str) -> Any:
    # A GET never unsubscribes: mail scanners and link previewers follow every link.
    target = _target(token)
    language = _reader_language(target)
    db.session.rollback()
    return render_template(
        "unsubscribe/confirm.html",
        target=target,
        token=token,
        lang=language,
        languages=_languages(token, language),
    )


@bp.route("/u/<token>", methods=["POST"])
@public
@csrf.exempt
def one_click(token: str) -> Any:
    # Mail providers POST "List-Unsubscribe=One-Click" without cookies or a CSRF token
    # (RFC 8058); the confirmation form posts the same way. Both do the same, idempotently.
    target = _target(token)
    language = _reader_language(target)
    unsubscribe_service.unsubscribe(target)
    db.session.commit()
    return render_template(
        "unsubscribe/done.html", target=target, languages=_languages(token, language)
    )
