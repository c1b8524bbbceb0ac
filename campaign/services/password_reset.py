"""Forgotten passwords: single-use links sent by e-mail, valid for one hour.

The link's token is derived with the server's key from its row (like a signer's
confirmation link), so the worker that writes the e-mail can make it again without the
token being stored or queued; the database keeps only its SHA-256. Asking for a link
answers the same whether the address is an account or not, and costs the same: both
paths write one audit event and queue one job; only an account's job sends anything.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from datetime import UTC, datetime, timedelta

from flask import current_app, render_template
from flask_babel import force_locale, gettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from campaign.extensions import db
from campaign.i18n import supported
from campaign.models import PasswordResetToken, User
from campaign.models._types import utcnow
from campaign.services import sign_in_limits, users
from campaign.services.audit import record_event
from campaign.services.notices import NOTICES, Notice, build_message, queue_notice
from campaign.services.unsubscribe import public_url

log = logging.getLogger(__name__)
KIND = "password_reset"
LINK_LIFETIME = timedelta(hours=1)
# Requests per address and per network (/24, /48) in an hour.
PER_ADDRESS_PER_HOUR = 3
PER_NETWORK_PER_HOUR = 10
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
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
    user = users.find_user(email) if "@" in email else None
    if user is None or not user.is_active_account:
        typed = email.strip()[:320] if "@" in email else "(not an email address)"
        record_event("user.password_reset_requested", detail={"email": typed, "sent": False})
        queue_notice(KIND, 0)  # sends nothing: the same work as for an account
        return
    row = PasswordResetToken(
        user_id=user.id,
        token_hash=secrets.token_hex(32),  # a placeholder until the id is known
        created_at=utcnow(),
    )
    row.expires_at = row.created_at + LINK_LIFETIME
    db.session.add(row)
    db.session.flush()
    row.token_hash = _hash(_token_for(row))
    record_event(
        "user.password_reset_requested",
        target_type="user",
        target_id=user.id,
        detail={"email": user.email, "sent": True},
    )
    queue_notice(KIND, row.id)


def _token_for(row: PasswordResetToken) -> str:
    stamp = (row.expires_at - _EPOCH) // timedelta(microseconds=1)
    message = f"password-reset:{row.id}:{row.user_id}:{stamp}".encode()
    key = str(current_app.config["SECRET_KEY"]).encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


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
    """Set the password of the link's account; the link and all sessions end."""
    row, user = check_link(token)
    if new != repeat:
        raise users.UserError(gettext("The two new passwords do not match."))
    users.set_password(user, new, action="user.password_reset_used")
    row.used_at = utcnow()
    return user


# --- the e-mail ------------------------------------------------------------------------------


def _email_language(user: User) -> str:
    return supported(user.language) or "en"


def _reset_email(row_id: int) -> list[Notice]:
    row = db.session.get(PasswordResetToken, row_id) if row_id else None
    if row is None or row.used_at is not None or utcnow() >= row.expires_at:
        return []
    user = db.session.get(User, row.user_id)
    if user is None or not user.is_active_account:
        return []
    token = _token_for(row)
    if _hash(token) != row.token_hash:
        log.warning("password reset %s: made with another secret key; not sent", row.id)
        return []
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


NOTICES[KIND] = _reset_email
