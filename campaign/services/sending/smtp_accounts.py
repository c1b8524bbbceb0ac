"""SMTP accounts: the default one from CAMPAIGN_MAIL_*, more added in the app, with limits."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app
from flask_babel import gettext, ngettext
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from sqlalchemy import func, select

from campaign import dkim
from campaign.extensions import db
from campaign.labels import label
from campaign.models import AuditEvent, Campaign, SmtpAccount, SmtpSecurity, User
from campaign.secret_box import DKIM_KEYS, SecretUnreadable, decrypt_secret, encrypt_secret
from campaign.services.accounts.audit import record_event
from campaign.smtp import SmtpSettings, logs_in_in_clear

DEFAULT_KEY = "default"


def default_settings(*, with_dkim: bool = True) -> SmtpSettings:
    """The default account (CAMPAIGN_MAIL_*); its DKIM key (CAMPAIGN_DKIM_*) read unless
    `with_dkim` is False, raising DkimError when it is set but unusable."""
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
        dkim_signer=dkim.default_signer(config) if with_dkim else None,
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
        dkim_signer=account_signer(account),
    )


# Parsed keys, per account and ciphertext: a new key (or SECRET_KEY) is a new entry, and a
# worker never decrypts nor parses a key again for each batch or letter.
_signers: dict[tuple[int, str, str, str], dkim.DkimSigner] = {}
_signers_lock = threading.Lock()


def account_signer(account: SmtpAccount) -> dkim.DkimSigner | None:
    """The account's DKIM signer, or None when it has no key; SecretUnreadable or DkimError
    when the stored key cannot be used (nothing is then sent unsigned)."""
    if not account.dkim_private_key_encrypted:
        return None
    cache_key = (
        account.id,
        account.dkim_domain,
        account.dkim_selector,
        account.dkim_private_key_encrypted,
    )
    with _signers_lock:
        found = _signers.get(cache_key)
    if found is None:
        try:
            pem = decrypt_secret(account.dkim_private_key_encrypted, purpose=DKIM_KEYS)
        except SecretUnreadable:
            raise dkim.DkimError(
                gettext(
                    "the stored DKIM key of the SMTP account “%(name)s” cannot be read (was "
                    "CAMPAIGN_SECRET_KEY changed?): create a new key on the account's page",
                    name=account.name,
                ),
                "key",
            ) from None
        found = dkim.signer_from_pem(account.dkim_domain, account.dkim_selector, pem)
        with _signers_lock:
            if len(_signers) > 256:
                _signers.clear()
            _signers[cache_key] = found
    return found


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


# --- DKIM keys -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DkimKeyInfo:
    """What staff see of an account's key: never the private part."""

    domain: str
    selector: str
    algorithm: str
    record_name: str
    record_value: str
    zone_line: str
    # What DNS web panels ask for: the host relative to the domain, and the type.
    record_host: str = ""
    record_type: str = "TXT"


def dkim_key_info(account: SmtpAccount) -> DkimKeyInfo | None:
    """The account's DKIM domain, selector and DNS record, or None when it has no key.

    The public key is kept in no column of its own: it is derived from the stored private
    key (decrypted for this page only, never shown).
    """
    if not account.dkim_private_key_encrypted:
        return None
    signer = account_signer(account)
    assert signer is not None
    return DkimKeyInfo(
        domain=signer.domain,
        selector=signer.selector,
        algorithm=signer.algorithm,
        record_name=dkim.record_name(signer.selector, signer.domain),
        record_value=dkim.record_value(signer.algorithm, signer.public_b64),
        zone_line=signer.record,
        record_host=f"{signer.selector}._domainkey",
    )


def default_dkim_domain() -> str:
    """The domain of CAMPAIGN_MAIL_DEFAULT_SENDER: the usual d= of a new key."""
    from email.utils import parseaddr

    return parseaddr(str(current_app.config.get("MAIL_DEFAULT_SENDER") or ""))[1].rpartition("@")[2]


def set_dkim_key(
    account: SmtpAccount,
    *,
    selector: str,
    domain: str = "",
    algorithm: str = dkim.RSA,
    key_pem: str | None = None,
    source: str = "",
    actor: User | None = None,
) -> DkimKeyInfo:
    """Generate (or import `key_pem`) the account's DKIM key, stored encrypted; audited.

    Raises dkim.DkimError naming the field (selector, domain, algorithm, key); nothing is
    stored then. A new key replaces the old one: rotation is a new selector (decision 0042).
    """
    clean_selector = dkim.check_selector(selector)
    clean_domain = dkim.check_domain(domain or default_dkim_domain())
    _refuse_used_selector(account, clean_selector, clean_domain)
    refuse_selector_of_another_account(account, clean_selector, clean_domain)
    if key_pem is None:
        if algorithm not in dkim.ALGORITHMS:
            raise dkim.DkimError(gettext("Algorithm: choose rsa or ed25519"), "algorithm")
        key_pem = dkim.generate_key(algorithm)
        imported = False
    else:
        imported = True
    # Parsed before anything is written: a bad file leaves the account as it was.
    signer = dkim.signer_from_pem(clean_domain, clean_selector, key_pem, source=source)
    previous = {
        "selector": account.dkim_selector,
        "domain": account.dkim_domain,
        "algorithm": account.dkim_algorithm,
    }
    account.dkim_domain = signer.domain
    account.dkim_selector = signer.selector
    account.dkim_algorithm = signer.algorithm
    account.dkim_private_key_encrypted = encrypt_secret(key_pem, purpose=DKIM_KEYS)
    db.session.flush()
    record_event(
        "smtp_account.dkim_key",
        target_type="smtp_account",
        target_id=account.id,
        actor=actor,
        detail={
            "name": account.name,
            "domain": signer.domain,
            "selector": signer.selector,
            "algorithm": signer.algorithm,
            "imported": imported,
            "replaced": previous if previous["selector"] else None,
        },
    )
    info = dkim_key_info(account)
    assert info is not None
    return info


def _earlier_selectors(account: SmtpAccount) -> set[tuple[str, str]]:
    """(selector, domain) of every key the account had, from the audit log."""
    events = db.session.scalars(
        select(AuditEvent.detail).where(
            AuditEvent.target_type == "smtp_account",
            AuditEvent.target_id == str(account.id),
            AuditEvent.action.in_(("smtp_account.dkim_key", "smtp_account.dkim_key_remove")),
        )
    )
    return {
        (str(detail.get("selector") or "").lower(), str(detail.get("domain") or "").lower())
        for detail in events
        if isinstance(detail, dict)
    }


def _selectors_of_others(account: SmtpAccount | None) -> dict[tuple[str, str], str]:
    """(selector, domain) → the name of the account that holds it, for every account but
    `account` (None: the default account): their current keys, the keys they had (from the
    audit log, deleted accounts included) and the default account's CAMPAIGN_DKIM_* pair.

    One DNS name holds one TXT record: two accounts with different keys under the same
    selector and domain would leave one of them failing every check (decision 0042).
    """
    own_id = None if account is None else str(account.id)
    taken: dict[tuple[str, str], str] = {}
    events = db.session.execute(
        select(AuditEvent.target_id, AuditEvent.detail).where(
            AuditEvent.target_type == "smtp_account",
            AuditEvent.action.in_(("smtp_account.dkim_key", "smtp_account.dkim_key_remove")),
        )
    )
    for target_id, detail in events:
        if target_id == own_id or not isinstance(detail, dict):
            continue
        pair = (str(detail.get("selector") or "").lower(), str(detail.get("domain") or "").lower())
        if all(pair):
            taken[pair] = str(detail.get("name") or "")
    for other in db.session.scalars(select(SmtpAccount)):
        if account is not None and other.id == account.id:
            continue
        if other.dkim_selector and other.dkim_domain:
            taken[(other.dkim_selector.lower(), other.dkim_domain.lower())] = other.name
    if account is not None:
        config = current_app.config
        selector = str(config.get("DKIM_SELECTOR") or "").strip().lower()
        domain = str(config.get("DKIM_DOMAIN") or "").strip().rstrip(".").lower()
        if selector and domain:
            taken[(selector, domain)] = _DEFAULT_HOLDER
    return taken


# Who holds a selector when it is the default account's (no account can be named so).
_DEFAULT_HOLDER = "\x00default"


def fresh_selector(account: SmtpAccount | None, domain: str = "") -> str:
    """A selector free at `domain`: never used by this account nor held by any other one
    (the default account: None): "campaign202607", then "…b", "…c"."""
    base = dkim.default_selector()
    if account is None:
        domain = (domain or default_dkim_domain()).lower()
        used: set[tuple[str, str]] = set()
    else:
        domain = (domain or account.dkim_domain or default_dkim_domain()).lower()
        used = _earlier_selectors(account) | {
            (account.dkim_selector.lower(), account.dkim_domain.lower())
        }
    used |= set(_selectors_of_others(account))
    for suffix in ["", *"bcdefghijklmnopqrstuvwxyz"]:
        if (base + suffix, domain) not in used:
            return base + suffix
    return base + time.strftime("%d%H%M", time.gmtime())


def refuse_selector_of_another_account(
    account: SmtpAccount | None, selector: str, domain: str
) -> None:
    """DkimError when another account (or the default one) holds or held `selector` at
    `domain`: only one TXT record can be published under that name."""
    holder = _selectors_of_others(account).get((selector.lower(), domain.lower()))
    if holder is None:
        return
    values = {
        "selector": selector,
        "domain": domain,
        "record": dkim.record_name(selector, domain),
        "example": fresh_selector(account, domain),
    }
    if holder == _DEFAULT_HOLDER:
        message = gettext(
            "Selector: “%(selector)s” at %(domain)s is the selector of the default account "
            "(CAMPAIGN_DKIM_SELECTOR): only one DNS record can be published under %(record)s, "
            "so the two keys cannot both verify. Each account takes its own selector, e.g. "
            "“%(example)s”",
            **values,
        )
    else:
        message = gettext(
            "Selector: “%(selector)s” at %(domain)s is the selector of the SMTP account "
            "“%(account)s”: only one DNS record can be published under %(record)s, so the "
            "two keys cannot both verify. Each account takes its own selector, e.g. "
            "“%(example)s”",
            account=holder,
            **values,
        )
    raise dkim.DkimError(message, "selector")


def _refuse_used_selector(account: SmtpAccount, selector: str, domain: str) -> None:
    """DkimError when `selector` at `domain` is the account's live key or was used before.

    The record published for it holds the old public key: letters signed with a new key
    under that name would fail every check until DNS changed, and letters still in transit
    signed with the old one would fail after (decision 0042). The earlier selectors are
    read from the audit log.
    """
    if (account.dkim_selector.lower(), account.dkim_domain.lower()) == (selector, domain):
        raise dkim.DkimError(
            gettext(
                "Selector: “%(selector)s” is the selector of the key in use: the published "
                "record would no longer match a new key under it, and letters would fail DKIM "
                "checks until DNS changed. A new key takes a new selector, e.g. “%(example)s”",
                selector=selector,
                example=fresh_selector(account, domain),
            ),
            "selector",
        )
    if (selector, domain) in _earlier_selectors(account):
        raise dkim.DkimError(
            gettext(
                "Selector: “%(selector)s” was used before by this account: its DNS record "
                "may still be published with the old key, and the published record would "
                "no longer match a new one. A new key takes a new selector, e.g. "
                "“%(example)s”",
                selector=selector,
                example=fresh_selector(account, domain),
            ),
            "selector",
        )


def remove_dkim_key(account: SmtpAccount, *, actor: User | None = None) -> None:
    """Forget the account's DKIM key: its messages go out unsigned from now on; audited."""
    if not account.dkim_private_key_encrypted:
        return
    record_event(
        "smtp_account.dkim_key_remove",
        target_type="smtp_account",
        target_id=account.id,
        actor=actor,
        detail={
            "name": account.name,
            "domain": account.dkim_domain,
            "selector": account.dkim_selector,
            "algorithm": account.dkim_algorithm,
        },
    )
    account.dkim_domain = ""
    account.dkim_selector = ""
    account.dkim_algorithm = ""
    account.dkim_private_key_encrypted = ""
    db.session.flush()


def dkim_alignment_problem(account: SmtpAccount | None, from_address: str) -> LazyString | None:
    """Why the account's DKIM signature would not align with `from_address` (DMARC), or None."""
    from email.utils import parseaddr

    from_domain = parseaddr(from_address)[1].rpartition("@")[2].lower()
    if account is None:
        domain = str(current_app.config.get("DKIM_DOMAIN") or "").strip().lower()
    else:
        domain = account.dkim_domain if account.dkim_private_key_encrypted else ""
    if not domain or not from_domain or dkim.aligned(domain, from_domain):
        return None
    if account is None:
        return _l(
            "DKIM: the default account (the mail server set in the configuration) signs for "
            "%(dkim)s, but the From address is at %(sender)s, so receivers applying DMARC will "
            "not count the signature; give it a key for %(sender)s (campaign dkim-key default) "
            "or send from an address at %(dkim)s",
            dkim=domain,
            sender=from_domain,
        )
    return _l(
        "DKIM: the SMTP account “%(account)s” signs for %(dkim)s, but the From address is at "
        "%(sender)s, so receivers applying DMARC will not count the signature; give the "
        "account a key for %(sender)s (campaign dkim-key) or send from an address at %(dkim)s",
        account=account.name,
        dkim=domain,
        sender=from_domain,
    )
