"""SMTP accounts: the default one from CAMPAIGN_MAIL_*, more added in the app, with limits."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app
from flask_babel import gettext, ngettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.labels import label
from campaign.models import Campaign, SmtpAccount, SmtpSecurity, User
from campaign.secret_box import decrypt_secret, encrypt_secret
from campaign.services.audit import record_event
from campaign.smtp import logs_in_in_clear

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


# --- managing stored accounts ------------------------------------------------------------

MAX_LIMIT = 10_000_000
LIMIT_FIELDS = ("per_second", "per_minute", "per_day", "max_connections")
# How errors name each limit: the column headings of the accounts page.
LIMIT_LABELS = {
    "per_second": _l("Per second"),
    "per_minute": _l("Per minute"),
    "per_day": _l("Per day"),
    "max_connections": _l("Connections"),
}
_HOST = re.compile(r"[A-Za-z0-9.\-:\[\]_]+")


class SmtpAccountError(ValueError):
    """An account cannot be saved or deleted as asked; `field` names the culprit."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class AccountFields:
    """What staff enter for an account. `password` None (or empty) keeps the stored one."""

    name: str
    host: str
    port: int = 587
    security: str = SmtpSecurity.STARTTLS.value
    username: str = ""
    password: str | None = None
    per_second: int = 0
    per_minute: int = 0
    per_day: int = 0
    max_connections: int = 0

    def __repr__(self) -> str:  # the password never reaches a log or a traceback
        return f"AccountFields({self.name!r}, {self.host}:{self.port}, {self.security})"


def _whole_number(raw: str, field: str) -> int:
    raw = raw.strip()
    if not raw:
        return 0
    if not raw.isdecimal():
        raise SmtpAccountError(
            gettext(
                "%(field)s: %(value)s is not a whole number (0 or more)",
                field=LIMIT_LABELS[field],
                value=repr(raw),
            ),
            field,
        )
    return int(raw)


def fields_from_form(form: Mapping[str, str]) -> AccountFields:
    """Read an account form's text fields; raise SmtpAccountError naming a bad number."""
    port_raw = form.get("port", "").strip()
    if not port_raw.isdecimal():
        raise SmtpAccountError(
            gettext("Port: %(port)s is not a port number (1-65535)", port=repr(port_raw)), "port"
        )
    return AccountFields(
        name=form.get("name", ""),
        host=form.get("host", ""),
        port=int(port_raw),
        security=form.get("security", ""),
        username=form.get("username", ""),
        password=form.get("password") or None,
        per_second=_whole_number(form.get("per_second", ""), "per_second"),
        per_minute=_whole_number(form.get("per_minute", ""), "per_minute"),
        per_day=_whole_number(form.get("per_day", ""), "per_day"),
        max_connections=_whole_number(form.get("max_connections", ""), "max_connections"),
    )


def _clean(fields: AccountFields, account: SmtpAccount | None) -> AccountFields:
    name = " ".join(fields.name.split())
    if not name:
        raise SmtpAccountError(gettext("Name: an account needs a name"), "name")
    if len(name) > 100:
        raise SmtpAccountError(gettext("Name: at most 100 characters"), "name")
    if name.lower() == DEFAULT_KEY:
        raise SmtpAccountError(
            gettext(
                "Name: “default” is the account from the CAMPAIGN_MAIL_* settings; choose another"
            ),
            "name",
        )
    other = find_account(name)
    if other is not None and (account is None or other.id != account.id):
        raise SmtpAccountError(
            gettext("Name: an account called %(name)s exists already", name=repr(other.name)),
            "name",
        )
    host = fields.host.strip()
    if not host:
        raise SmtpAccountError(gettext("Host: the SMTP server's name is required"), "host")
    if len(host) > 255 or not _HOST.fullmatch(host):
        raise SmtpAccountError(
            gettext("Host: %(host)s is not a server name or address", host=repr(host)), "host"
        )
    if not 1 <= fields.port <= 65535:
        raise SmtpAccountError(
            gettext("Port: %(port)s is not a port number (1-65535)", port=fields.port), "port"
        )
    if fields.security not in {s.value for s in SmtpSecurity}:
        raise SmtpAccountError(gettext("Security: choose none, starttls or ssl"), "security")
    username = fields.username.strip()
    if len(username) > 320 or any(c in username for c in "\r\n"):
        raise SmtpAccountError(gettext("User name: at most 320 characters on one line"), "username")
    if fields.password is not None and any(c in fields.password for c in "\r\n"):
        raise SmtpAccountError(gettext("Password: it cannot contain a line break"), "password")
    if logs_in_in_clear(fields.security, username, host):
        raise SmtpAccountError(
            gettext(
                "Security: “%(none)s” sends the password in clear, so with a user name it is "
                "allowed only for a server on this machine (127.0.0.1, ::1, localhost): choose "
                "“%(starttls)s” or “%(ssl)s”, or leave the user name empty for a relay that "
                "takes mail from this machine without a login.",
                none=label(SmtpSecurity.NONE.value, "connection_security"),
                starttls=label(SmtpSecurity.STARTTLS.value, "connection_security"),
                ssl=label(SmtpSecurity.SSL.value, "connection_security"),
            ),
            "security",
        )
    for field in LIMIT_FIELDS:
        value = getattr(fields, field)
        if not 0 <= value <= MAX_LIMIT:
            raise SmtpAccountError(
                gettext(
                    "%(field)s: a whole number from 0 to %(limit)s",
                    field=LIMIT_LABELS[field],
                    limit=MAX_LIMIT,
                ),
                field,
            )
    return AccountFields(
        name=name,
        host=host,
        port=fields.port,
        security=fields.security,
        username=username,
        password=fields.password or None,
        per_second=fields.per_second,
        per_minute=fields.per_minute,
        per_day=fields.per_day,
        max_connections=fields.max_connections,
    )


def _audit_detail(account: SmtpAccount, *, password_changed: bool) -> dict[str, Any]:
    # Everything staff may need to reconstruct a change, except the password itself.
    return {
        "name": account.name,
        "host": account.host,
        "port": account.port,
        "security": account.security,
        "username": account.username,
        **{field: getattr(account, field) for field in LIMIT_FIELDS},
        "password_changed": password_changed,
    }


def list_accounts() -> list[SmtpAccount]:
    """The accounts added in the app, by name."""
    return list(db.session.scalars(select(SmtpAccount).order_by(func.lower(SmtpAccount.name))))


def create_account(fields: AccountFields, *, actor: User | None = None) -> SmtpAccount:
    """Store a new account, its password encrypted; raise SmtpAccountError naming the field."""
    clean = _clean(fields, None)
    account = SmtpAccount()
    _apply(account, clean)
    db.session.add(account)
    db.session.flush()
    record_event(
        "smtp_account.create",
        target_type="smtp_account",
        target_id=account.id,
        actor=actor,
        detail=_audit_detail(account, password_changed=bool(clean.password)),
    )
    return account


def update_account(
    account: SmtpAccount, fields: AccountFields, *, actor: User | None = None
) -> None:
    """Change an account; an empty password keeps the stored one."""
    clean = _clean(fields, account)
    _apply(account, clean)
    db.session.flush()
    record_event(
        "smtp_account.update",
        target_type="smtp_account",
        target_id=account.id,
        actor=actor,
        detail=_audit_detail(account, password_changed=bool(clean.password)),
    )


def _apply(account: SmtpAccount, clean: AccountFields) -> None:
    account.name = clean.name
    account.host = clean.host
    account.port = clean.port
    account.security = clean.security
    account.username = clean.username
    if clean.password:
        account.password_encrypted = encrypt_secret(clean.password)
    for field in LIMIT_FIELDS:
        setattr(account, field, getattr(clean, field))


def campaigns_using(account: SmtpAccount) -> list[tuple[int, str]]:
    """(id, name) of the campaigns that send, or will send, through `account`."""
    rows = db.session.execute(
        select(Campaign.id, Campaign.name)
        .where(Campaign.smtp_account_id == account.id)
        .order_by(Campaign.id)
    )
    return [(row[0], row[1]) for row in rows]


def delete_account(account: SmtpAccount, *, actor: User | None = None) -> None:
    """Delete an account no campaign uses; raise SmtpAccountError naming those that do."""
    users = campaigns_using(account)
    if users:
        named = ", ".join(f"{cid} ({name})" for cid, name in users[:5])
        if len(users) > 5:
            message = gettext(
                "the account %(name)s is used by campaigns %(campaigns)s and %(more)d more; "
                "a campaign's record keeps the account it was sent through, so it cannot be "
                "deleted",
                name=repr(account.name),
                campaigns=named,
                more=len(users) - 5,
            )
        else:
            message = ngettext(
                "the account %(name)s is used by campaign %(campaigns)s; "
                "a campaign's record keeps the account it was sent through, so it cannot be "
                "deleted",
                "the account %(name)s is used by campaigns %(campaigns)s; "
                "a campaign's record keeps the account it was sent through, so it cannot be "
                "deleted",
                len(users),
                name=repr(account.name),
                campaigns=named,
            )
        raise SmtpAccountError(message)
    record_event(
        "smtp_account.delete",
        target_type="smtp_account",
        target_id=account.id,
        actor=actor,
        detail=_audit_detail(account, password_changed=False),
    )
    db.session.delete(account)
    db.session.flush()
