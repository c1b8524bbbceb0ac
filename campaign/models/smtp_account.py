"""SMTP accounts added in the app, each with its own limits; the default comes from config."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from campaign.extensions import db
from campaign.models._types import UTCDateTime, utcnow


class SmtpSecurity(enum.StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    SSL = "ssl"


class SmtpAccount(db.Model):  # type: ignore[name-defined]
    __tablename__ = "smtp_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=587)
    security: Mapped[str] = mapped_column(String(10), default=SmtpSecurity.STARTTLS.value)
    username: Mapped[str] = mapped_column(String(320), default="")
    # Fernet ciphertext (key derived from SECRET_KEY); never shown back or logged.
    password_encrypted: Mapped[str] = mapped_column(Text, default="")
    # 0 means no limit of that kind.
    per_second: Mapped[int] = mapped_column(Integer, default=0)
    per_minute: Mapped[int] = mapped_column(Integer, default=0)
    per_day: Mapped[int] = mapped_column(Integer, default=0)
    max_connections: Mapped[int] = mapped_column(Integer, default=0)
    # DKIM: letters and notices sent through this account are signed when a key is set.
    dkim_domain: Mapped[str] = mapped_column(String(255), default="")
    dkim_selector: Mapped[str] = mapped_column(String(63), default="")
    dkim_algorithm: Mapped[str] = mapped_column(String(10), default="")
    # Fernet ciphertext of the PEM private key, like the password; never shown back or logged.
    dkim_private_key_encrypted: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
