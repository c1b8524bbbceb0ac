"""SMTP accounts: the default one from CAMPAIGN_MAIL_*, more added in the app, with limits."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import SmtpAccount, SmtpSecurity
from campaign.secret_box import decrypt_secret

DEFAULT_KEY = "default"


@dataclass(frozen=True)
class SmtpSettings:
    """Everything needed to open a connection and pace it. `key` names the rate limits."""

    key: str
    name: str
    host: str
    port: int
    security: str  # none | starttls | ssl
    username: str
    password: str
    timeout: int
    per_second: int = 0
    per_minute: int = 0
    per_day: int = 0
    max_connections: int = 0

    def __repr__(self) -> str:  # never the password, not even in a traceback
        return f"SmtpSettings({self.name!r}, {self.host}:{self.port}, {self.security})"


def default_settings() -> SmtpSettings:
    config = current_app.config
    if config.get("MAIL_USE_SSL"):
        security = SmtpSecurity.SSL.value
    elif config.get("MAIL_USE_TLS"):
        security = SmtpSecurity.STARTTLS.value
    else:
        security = SmtpSecurity.NONE.value
    return SmtpSettings(
        key=DEFAULT_KEY,
        name="default (CAMPAIGN_MAIL_*)",
        host=str(config["MAIL_SERVER"]),
        port=int(config["MAIL_PORT"]),
        security=security,
        username=str(config.get("MAIL_USERNAME") or ""),
        password=str(config.get("MAIL_PASSWORD") or ""),
        timeout=int(config["MAIL_TIMEOUT"]),
        per_second=int(config["MAIL_RATE_PER_SECOND"]),
        per_minute=int(config["MAIL_RATE_PER_MINUTE"]),
        per_day=int(config["MAIL_RATE_PER_DAY"]),
        max_connections=int(config["MAIL_MAX_CONNECTIONS"]),
    )


def settings_for(account: SmtpAccount | None) -> SmtpSettings:
    """Connection settings of `account`, or of the default account when None."""
    if account is None:
        return default_settings()
    return SmtpSettings(
        key=f"account-{account.id}",
        name=account.name,
        host=account.host,
        port=account.port,
        security=account.security,
        username=account.username,
        password=decrypt_secret(account.password_encrypted),
        timeout=int(current_app.config["MAIL_TIMEOUT"]),
        per_second=account.per_second,
        per_minute=account.per_minute,
        per_day=account.per_day,
        max_connections=account.max_connections,
    )


def find_account(name: str) -> SmtpAccount | None:
    """The account called `name` (case-insensitive), or None."""
    return db.session.scalar(
        select(SmtpAccount).where(func.lower(SmtpAccount.name) == name.strip().lower())
    )
