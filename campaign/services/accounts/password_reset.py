"""Forgotten passwords: single-use links sent by e-mail, valid for one hour.

The link's token is 32 random bytes drawn by the worker that writes the e-mail, just
before it sends it: it is never stored nor queued, only its SHA-256 is in the database, so
neither a copy of the database nor the server's secret key opens an account. Asking for
a link answers the same whether the address is an account or not, and costs the same:
both paths write one audit event and queue one job; only an account's job sends anything.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta

from flask import render_template
from flask_babel import force_locale, gettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from campaign.extensions import db
from campaign.i18n import supported
from campaign.models import PasswordResetToken, User, utcnow
from campaign.services.accounts import sign_in_limits, users
from campaign.services.accounts.audit import record_event
from campaign.services.sending.notices import Notice, build_message, queue_notice
from campaign.services.sending.unsubscribe import public_url

log = logging.getLogger(__name__)
KIND = "password_reset"
LINK_LIFETIME = timedelta(hours=1)
# Requests for one address from one network (/24, /48), and from one network, in an hour:
# requests from other networks never count against the address's owner.
PER_ADDRESS_PER_HOUR = 3
PER_NETWORK_PER_HOUR = 10
# E-mails sent to one address in a day, whoever asks: more requests get the same answer and
# send nothing (nobody can fill someone's mailbox with links).
EMAILS_PER_ADDRESS_PER_DAY = 5
# Openings of the link page (GET or POST) from one network in an hour.
PAGE_PER_NETWORK_PER_HOUR = 30
SUBJECT = _l("Choose a new password")


class TooManyRequests(users.UserError):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LinkRefused(users.UserError):
    """A link that cannot set a password (unknown, changed, used, expired, account off)."""


def request_reset(email: str) -> None:
    """E-mail a link to the account of `email` if there is an active one; nothing otherwise.

    Raises TooManyRequests (for any address, an account or not) past the hourly limits.
    """
    wait = sign_in_limits.count_requests(
        KIND, email, (PER_ADDRESS_PER_HOUR, PER_NETWORK_PER_HOUR), 3600
    )
    if wait:
        raise TooManyRequests(
            gettext(
                "Too many requests for a new password from this address or network. "
                "Try again in %(wait)s.",
                wait=sign_in_limits.wait_words(wait),
            ),
            wait,
        )
    # Counted for every address, an account or not, so the answer and the work stay alike.
    over_daily_cap = sign_in_limits.count_daily(KIND, email, EMAILS_PER_ADDRESS_PER_DAY)
    user = users.find_user(email) if "@" in email else None
    if user is None or not user.is_active_account or over_daily_cap:
        typed = email.strip()[:320] if "@" in email else "(not an email address)"
        detail: dict[str, object] = {"email": typed, "sent": False}
        if over_daily_cap:
            detail["reason"] = "daily limit of e-mails to this address"
        record_event(
            "user.password_reset_requested",
            target_type="user" if user else "",
            target_id=user.id if user else "",
            detail=detail,
        )
        queue_notice(KIND, 0)  # sends nothing: the same work as for an account
        return
    now = utcnow()
    row = PasswordResetToken(
        user_id=user.id,
        # No token exists yet (the worker draws it): the hash of 32 random bytes nobody keeps.
        token_hash=_hash(secrets.token_urlsafe(32)),
        created_at=now,
        expires_at=now + LINK_LIFETIME,
    )
    db.session.add(row)
    db.session.flush()
    record_event(
        "user.password_reset_requested",
        target_type="user",
        target_id=user.id,
        detail={"email": user.email, "sent": True},
    )
    queue_notice(KIND, row.id)


def page_refusal() -> int:
    """Count one opening of a link page from this network; seconds to wait if over the limit."""
    return sign_in_limits.count_network_requests(
        "password_reset_page", PAGE_PER_NETWORK_PER_HOUR, 3600
    )


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def reset_url(token: str) -> str:
    return f"{public_url()}/login/reset/{token}"


def check_link(token: str) -> tuple[PasswordResetToken, User]:
    """The link's row and account, or LinkRefused saying why in words."""
    row = db.session.scalar(
        select(PasswordResetToken).where(PasswordResetToken.token_hash == _hash(token))
    )
    user = db.session.get(User, row.user_id) if row is not None else None
    if row is None or user is None or not user.is_active_account:
        raise LinkRefused(
            gettext(
                "This link is not valid. Copy the whole link from the e-mail, or ask for a new one."
            )
        )
    if row.used_at is not None:
        raise LinkRefused(
            gettext(
                "This link has already been used or a newer password was set. "
                "Ask for a new one if you need it."
            )
        )
    if utcnow() >= row.expires_at:
        raise LinkRefused(gettext("This link has expired. Ask for a new one."))
    return row, user


def use_link(token: str, new: str, repeat: str) -> User:
    """Set the password of the link's account; the link and all sessions end.

    The link is spent by a conditional update: of two requests with one link at the same
    moment, only the one that spends it sets a password.
    """
    row, user = check_link(token)
    if new != repeat:
        raise users.UserError(gettext("The two new passwords do not match."))
    spent = db.session.execute(
        update(PasswordResetToken)
        .where(
            PasswordResetToken.id == row.id,
            PasswordResetToken.used_at.is_(None),
            PasswordResetToken.expires_at > utcnow(),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if getattr(spent, "rowcount", 0) != 1:
        raise LinkRefused(
            gettext(
                "This link has already been used or a newer password was set. "
                "Ask for a new one if you need it."
            )
        )
    users.set_password(user, new, action="user.password_reset_used", advise=False)
    return user


# --- the e-mail ------------------------------------------------------------------------------


def _email_language(user: User) -> str:
    return supported(user.language) or "en"


def reset_email(row_id: int) -> list[Notice]:
    row = db.session.get(PasswordResetToken, row_id) if row_id else None
    if row is None or row.used_at is not None or utcnow() >= row.expires_at:
        return []
    user = db.session.get(User, row.user_id)
    if user is None or not user.is_active_account:
        return []
    # Drawn now and kept nowhere but in the e-mail; send_notice commits the hash before
    # sending. A retried job draws another: the latest e-mail's link is the one that works.
    token = secrets.token_urlsafe(32)
    row.token_hash = _hash(token)
    language = _email_language(user)
    with force_locale(language):
        text = render_template(
            "email/password_reset.txt",
            link=reset_url(token),
            minutes=int(LINK_LIFETIME.total_seconds() // 60),
            email=user.email,
        )
        subject = str(SUBJECT)
    message = build_message(user.email, subject, text, language=language)
    return [Notice(user.email, message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))]
