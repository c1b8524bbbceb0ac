"""Server-side sign-in sessions: one row per signed-in browser, found by its cookie's token.

The cookie carries a random token; the database keeps only its SHA-256, so a copy of the
database opens no session, and deleting the row (logout, "sign out everywhere", a password
change, deactivation) ends every copy of the cookie at once.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, select

from campaign.extensions import db
from campaign.models import User, UserSession, utcnow
from campaign.tracking.buffer import ip_prefix

# last_seen_at is written at most this often: not a database write per request.
SEEN_GRANULARITY = timedelta(minutes=1)
USER_AGENT_LENGTH = 200


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(user: User, *, remote_addr: str | None, user_agent: str) -> str:
    """Record a new signed-in browser of `user`; return the token its cookie will carry."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    # Sessions nobody came back to are forgotten here, so the table stays small.
    idle, lifetime = _limits()
    db.session.execute(
        delete(UserSession).where(
            (UserSession.last_seen_at < now - idle) | (UserSession.created_at < now - lifetime)
        )
    )
    db.session.add(
        UserSession(
            user_id=user.id,
            token_hash=_hash(token),
            created_at=now,
            last_seen_at=now,
            network=ip_prefix(remote_addr),
            user_agent=" ".join(user_agent.split())[:USER_AGENT_LENGTH],
        )
    )
    db.session.flush()
    return token


def _limits() -> tuple[timedelta, timedelta]:
    config = current_app.config
    return (
        timedelta(minutes=int(config["SESSION_IDLE_MINUTES"])),
        timedelta(hours=int(config["SESSION_MAX_HOURS"])),
    )


def is_expired(row: UserSession) -> bool:
    idle, lifetime = _limits()
    now = utcnow()
    return now - row.last_seen_at >= idle or now - row.created_at >= lifetime


def find_session(token: str, *, activity: bool = True) -> UserSession | None:
    """The open session with this token; None (and the row deleted) once it has expired.

    Seeing the session counts as activity (unless `activity` is False: a page's background
    polling): its last_seen_at moves on, at most once a minute.
    """
    row = db.session.scalar(select(UserSession).where(UserSession.token_hash == _hash(token)))
    if row is None:
        return None
    if is_expired(row):
        db.session.delete(row)
        db.session.flush()
        return None
    now = utcnow()
    if activity and now - row.last_seen_at >= SEEN_GRANULARITY:
        row.last_seen_at = now
        db.session.flush()
    return row


def end_session(token: str) -> None:
    """End the session of this token (logout): every copy of its cookie stops working."""
    db.session.execute(delete(UserSession).where(UserSession.token_hash == _hash(token)))


def end_sessions(user: User, *, keep_token: str | None = None) -> int:
    """End every session of `user` (but the one of `keep_token`); return how many ended."""
    query = delete(UserSession).where(UserSession.user_id == user.id)
    if keep_token:
        query = query.where(UserSession.token_hash != _hash(keep_token))
    result = db.session.execute(query)
    return int(getattr(result, "rowcount", 0) or 0)


def end_one_session(user: User, session_id: int) -> bool:
    """End one of `user`'s own sessions by its number; False if they have none such."""
    result = db.session.execute(
        delete(UserSession).where(UserSession.id == session_id, UserSession.user_id == user.id)
    )
    return bool(getattr(result, "rowcount", 0))


def sessions_of(user: User) -> list[UserSession]:
    """The user's open sessions, the most recently used first (expired ones left out)."""
    rows = db.session.scalars(
        select(UserSession)
        .where(UserSession.user_id == user.id)
        .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())
    )
    return [row for row in rows if not is_expired(row)]


def is_current(row: UserSession, token: str | None) -> bool:
    return bool(token) and secrets.compare_digest(row.token_hash, _hash(token or ""))
