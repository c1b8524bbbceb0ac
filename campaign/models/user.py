"""Staff accounts, their roles and the per-role two-factor policy."""

from __future__ import annotations

import enum
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from campaign.extensions import db
from campaign.models._types import UTCDateTime, utcnow


class Role(enum.StrEnum):
    """Roles from least to most powerful; each includes the rights of those before it."""

    VIEWER = "viewer"
    EDITOR = "editor"
    SENDER = "sender"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def includes(self, other: Role) -> bool:
        return self.rank >= other.rank

    @classmethod
    def from_(cls, minimum: Role) -> list[Role]:
        """`minimum` and the roles above it (for a query: `User.role.in_(…)`)."""
        return [role for role in cls if role.includes(minimum)]


class User(UserMixin, db.Model):  # type: ignore[name-defined]
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), default=Role.VIEWER.value)
    is_active_account: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Encrypted at rest (campaign.secret_box), like the SMTP and IMAP passwords.
    totp_secret: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # The last TOTP time step accepted: a code of that step or an earlier one is a replay.
    totp_last_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Set by an admin's reset: the next sign-in must choose a new password first.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Bumped to end every session of this user (password change, role change, lock).
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    # The interface language this person chose ("en", "fr", "ru"); "" follows the browser.
    language: Mapped[str] = mapped_column(String(8), default="", server_default="")
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def role_enum(self) -> Role:
        return Role(self.role)

    def may(self, role: Role | str) -> bool:
        """Whether this user's role is `role` or above: the one role rule. Pages ask it
        through campaign.web.access.may (the signed-in user), services ask the user they
        were given (decision 0057)."""
        return self.role_enum.includes(Role(role))

    @property
    def is_active(self) -> bool:  # Flask-Login reads this
        return self.is_active_account

    @property
    def has_totp(self) -> bool:
        return bool(self.totp_secret)

    def get_id(self) -> str:
        # The session version makes old sessions invalid after a password or role change.
        return f"{self.id}:{self.session_version}"


class RolePolicy(db.Model):  # type: ignore[name-defined]
    """Per-role security settings an admin can change (for now: mandatory two-factor)."""

    __tablename__ = "role_policies"

    role: Mapped[str] = mapped_column(String(20), primary_key=True)
    is_totp_required: Mapped[bool] = mapped_column(Boolean, default=False)


class UserSession(db.Model):  # type: ignore[name-defined]
    """One signed-in browser. The cookie holds a random token; only its hash is stored, so
    logging out (deleting the row) ends every copy of that cookie."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The network (/24 or /48) and browser it was opened from, for the account page.
    network: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(200), default="")


class PasswordResetToken(db.Model):  # type: ignore[name-defined]
    """A single-use "forgot password" link; only the token's hash is stored."""

    __tablename__ = "password_reset_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RecoveryCode(db.Model):  # type: ignore[name-defined]
    """A single-use two-factor recovery code (for a lost phone); stored hashed."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
