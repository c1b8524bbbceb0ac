"""API keys: made on a user's account page or with `campaign api-key create`, shown once,
stored as a SHA-256, acting as their user and never with more than that user's role allows.

A key reads `cak_<prefix>_<secret>`: the prefix finds the row, the secret is compared with
the stored hash in constant time. The scopes name what a key may do per resource group
("contacts:read", "campaigns:write"); on every call the user's current role is checked too,
so a demoted or deactivated user's keys lose what the user lost.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select

from campaign.extensions import db
from campaign.models import ApiIdempotency, ApiKey, Role, User, utcnow
from campaign.services.accounts.audit import record_event

TOKEN_START = "cak_"  # noqa: S105 — the keys' visible start, not a secret
MAX_KEYS_PER_USER = 50
MAX_EXPIRY_DAYS = 3650

#: Resource groups and the least role that may read or write each (the pages' rules).
GROUPS: dict[str, tuple[Role, Role]] = {
    "contacts": (Role.VIEWER, Role.EDITOR),
    "statements": (Role.VIEWER, Role.EDITOR),
    "campaigns": (Role.VIEWER, Role.EDITOR),
    # The inbox and the sign-on pages are editors' pages (they show correspondence and
    # signers' addresses): a viewer's key with these scopes could do nothing.
    "replies": (Role.EDITOR, Role.EDITOR),
    "sign_on": (Role.EDITOR, Role.EDITOR),
    "calendar": (Role.VIEWER, Role.EDITOR),
    "suppressions": (Role.ADMIN, Role.ADMIN),
}
GROUP_LABELS = {
    "contacts": _l("Contacts, lists and segments"),
    "statements": _l("Statements and letters"),
    "campaigns": _l("Campaigns and deliveries"),
    "replies": _l("Replies"),
    "sign_on": _l("Sign-on pages and signatures"),
    "calendar": _l("Calendar and cases"),
    "suppressions": _l("Suppression list"),
}
ACCESSES = ("read", "write")
ACCESS_LABELS = {"read": _l("read"), "write": _l("read and write")}


class ApiKeyError(ValueError):
    """A key request that cannot be granted; the message is shown to the user."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def all_scopes() -> list[str]:
    return [f"{group}:{access}" for group in GROUPS for access in ACCESSES]


def scope_role(scope: str) -> Role:
    """The least role a scope needs; unknown scopes raise ApiKeyError."""
    group, _, access = scope.partition(":")
    if group not in GROUPS or access not in ACCESSES:
        raise ApiKeyError(str(_l("Unknown scope: %(scope)s", scope=scope)), "scopes")
    read_role, write_role = GROUPS[group]
    return read_role if access == "read" else write_role


def scopes_for(user: User) -> list[str]:
    """The scopes this user's role allows a key to have."""
    return [scope for scope in all_scopes() if user.may(scope_role(scope))]


def has_scope(key: ApiKey, scope: str) -> bool:
    """A write scope includes reading the same group."""
    group, _, access = scope.partition(":")
    granted = set(key.scopes or [])
    return scope in granted or (access == "read" and f"{group}:write" in granted)


def shown_as(key: ApiKey) -> str:
    """How pages and the command line show a key: its visible start and prefix, "cak_<prefix>_…"."""
    return f"{TOKEN_START}{key.prefix}_…"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    token: str  # shown once, never stored


def create_key(
    user: User,
    *,
    name: str,
    scopes: list[str],
    expires_in_days: int | None,
    created_by: User | None,
) -> NewKey:
    """Make a key for `user`; `created_by` is the user themself or an admin, or None for
    the server's operator at the command line (`campaign api-key create`)."""
    name = name.strip()
    if not name:
        raise ApiKeyError(str(_l("Give the key a name.")), "name")
    if len(name) > 100:
        raise ApiKeyError(str(_l("The name is longer than 100 characters.")), "name")
    if created_by is not None and created_by.id != user.id and not created_by.may(Role.ADMIN):
        raise ApiKeyError(str(_l("Only an admin can make a key for another user.")), "user")
    if not user.is_active_account:
        raise ApiKeyError(str(_l("This account is deactivated.")), "user")
    wanted = sorted(set(scopes))
    if not wanted:
        raise ApiKeyError(str(_l("Choose at least one scope.")), "scopes")
    for scope in wanted:
        if not user.may(scope_role(scope)):
            raise ApiKeyError(
                str(_l("The scope %(scope)s needs a role this user does not have.", scope=scope)),
                "scopes",
            )
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
        raise ApiKeyError(
            str(_l("The expiry must be between 1 and %(most)s days.", most=MAX_EXPIRY_DAYS)),
            "expires",
        )
    count = len(list_keys(user))
    if count >= MAX_KEYS_PER_USER:
        raise ApiKeyError(
            str(_l("This user already has %(count)s live keys; revoke one first.", count=count)),
            "name",
        )
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    expires_at: datetime | None = None
    if expires_in_days is not None:
        expires_at = utcnow() + timedelta(days=expires_in_days)
    key = ApiKey(
        user_id=user.id,
        name=name,
        prefix=prefix,
        secret_hash=_hash(secret),
        scopes=wanted,
        created_by_id=created_by.id if created_by is not None else None,
        expires_at=expires_at,
    )
    db.session.add(key)
    db.session.flush()
    record_event(
        "api_key.created",
        target_type="api_key",
        target_id=key.id,
        actor=created_by,
        detail={"prefix": prefix, "user": user.email, "name": name, "scopes": wanted},
    )
    return NewKey(key, f"{TOKEN_START}{prefix}_{secret}")


def list_keys(user: User, *, include_revoked: bool = False) -> list[ApiKey]:
    query = select(ApiKey).where(ApiKey.user_id == user.id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(db.session.scalars(query.order_by(ApiKey.created_at.desc(), ApiKey.id.desc())))


def revoke_key(key: ApiKey, *, by: User | None) -> None:
    """Revoke `key` (at once, for good); `by` is its user or an admin, or None for the
    server's operator at the command line."""
    if by is not None and by.id != key.user_id and not by.may(Role.ADMIN):
        raise ApiKeyError(str(_l("Only an admin can revoke another user's key.")), "key")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        record_event(
            "api_key.revoked",
            target_type="api_key",
            target_id=key.id,
            actor=by,
            detail={"prefix": key.prefix, "user": key.user.email},
        )


def is_live(key: ApiKey, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return (
        key.revoked_at is None
        and (key.expires_at is None or key.expires_at > now)
        and key.user is not None
        and key.user.is_active_account
    )


def matching_key(token: str) -> ApiKey | None:
    """The key this whole token names (prefix and secret both right), live or not; None
    for an unknown prefix or a wrong secret."""
    if not token.startswith(TOKEN_START):
        return None
    prefix, _, secret = token[len(TOKEN_START) :].partition("_")
    if not prefix or not secret or len(prefix) > 24:
        return None
    key = db.session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None:
        _hash(secret)  # the same work whether the prefix exists or not
        return None
    if not hmac.compare_digest(key.secret_hash, _hash(secret)):
        return None
    return key


def authenticate(token: str) -> ApiKey | None:
    """The live key this token names, or None (unknown, wrong secret, revoked, expired,
    or its user deactivated). Only the holder of the whole token may learn, from
    `matching_key`, why their key stopped working."""
    key = matching_key(token)
    if key is None or not is_live(key):
        return None
    return key


#: How long the answer to a POST sent with an Idempotency-Key is kept for its retries. The
#: answers hold contacts' data, so they do not outlive the retries they are for.
IDEMPOTENCY_KEEP = timedelta(hours=24)


def forget_old_idempotency_answers(now: datetime | None = None) -> int:
    """Delete the kept answers older than IDEMPOTENCY_KEEP (the reconciler calls this)."""
    cutoff = (now or utcnow()) - IDEMPOTENCY_KEEP
    result = db.session.execute(delete(ApiIdempotency).where(ApiIdempotency.created_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
