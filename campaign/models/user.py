"""Staff accounts, their roles and the per-role two-factor policy."""

from __future__ import annotations

import enum
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, Integer, String
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
    totp_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Bumped to end every session of this user (password change, role change, lock).
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    # The interface language this person chose ("en", "fr", "ru"); "" follows the browser.
    language: Mapped[str] = mapped_column(String(8), default="", server_default="")
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def role_enum(self) -> Role:
        return Role(self.role)

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
