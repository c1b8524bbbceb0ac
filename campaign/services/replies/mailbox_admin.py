"""Administering IMAP mailboxes: add, edit, enable, delete, each audit-logged.

Polling and the checkpoints belong to campaign.services.replies.mailboxes; this module only changes
settings, and resets a checkpoint when the settings now point at another folder.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import AuditEvent, ImapMailbox, User
from campaign.secret_box import encrypt_secret
from campaign.services.accounts.audit import record_event
from campaign.services.replies.mailboxes import (
    ALERT_AFTER,
    MailboxError,
    add_mailbox,
    settings_detail,
    validate_mailbox,
)

# Changing any of these points the mailbox at other mail: its UIDs mean nothing there.
_WHERE_FIELDS = ("host", "username", "folder")


@dataclass(frozen=True)
class MailboxSettings:
    """A mailbox's settings as typed in the form; an empty password keeps the stored one."""

    name: str
    host: str
    port: int
    security: str
    username: str
    password: str
    folder: str
    processed_folder: str

    @classmethod
    def from_form(cls, form: dict[str, str]) -> MailboxSettings:
        port = form.get("port", "").strip()
        if not port.isdecimal() or len(port) > 5:
            raise MailboxError(gettext("The port must be a number between 1 and 65535."))
        return cls(
            name=form.get("name", "").strip(),
            host=form.get("host", "").strip(),
            port=int(port),
            security=form.get("security", "").strip(),
            username=form.get("username", "").strip(),
            password=form.get("password", ""),
            folder=form.get("folder", "").strip(),
            processed_folder=form.get("processed_folder", "").strip(),
        )

    def audit_detail(self) -> dict[str, object]:
        return settings_detail(
            name=self.name,
            host=self.host,
            port=self.port,
            security=self.security,
            username=self.username,
            folder=self.folder,
            processed_folder=self.processed_folder,
            password_changed=bool(self.password),
        )


def _validate(settings: MailboxSettings, mailbox: ImapMailbox) -> None:
    validate_mailbox(
        name=settings.name,
        host=settings.host,
        port=settings.port,
        security=settings.security,
        folder=settings.folder,
        processed_folder=settings.processed_folder,
        existing=mailbox,
    )


def create_mailbox(settings: MailboxSettings, *, actor: User) -> ImapMailbox:
    """Add a mailbox to poll; the password is stored encrypted. add_mailbox audits it (the
    command line adds through it too)."""
    return add_mailbox(
        settings.name,
        host=settings.host,
        port=settings.port,
        security=settings.security,
        username=settings.username,
        password=settings.password,
        folder=settings.folder,
        processed_folder=settings.processed_folder,
        actor=actor,
    )


def update_mailbox(mailbox: ImapMailbox, settings: MailboxSettings, *, actor: User) -> bool:
    """Save new settings; True when the checkpoint was reset (the folder is read again)."""
    _validate(settings, mailbox)
    moved = any(getattr(mailbox, name) != getattr(settings, name) for name in _WHERE_FIELDS)
    mailbox.name = settings.name
    mailbox.host = settings.host
    mailbox.port = settings.port
    mailbox.security = settings.security
    mailbox.username = settings.username
    mailbox.folder = settings.folder
    mailbox.processed_folder = settings.processed_folder
    if settings.password:
        mailbox.password_encrypted = encrypt_secret(settings.password)
    if moved:
        # Already recorded messages are recognised by their Message-ID, so reading the new
        # folder from its start handles nothing twice.
        mailbox.uidvalidity = 0
        mailbox.last_uid = 0
    # New settings deserve a prompt try, not the backoff the old ones earned.
    mailbox.failures = 0
    mailbox.next_poll_at = None
    record_event(
        "mailbox.update",
        target_type="imap_mailbox",
        target_id=mailbox.id,
        actor=actor,
        detail={**settings.audit_detail(), "checkpoint_reset": moved},
    )
    db.session.flush()
    return moved


def set_enabled(mailbox: ImapMailbox, is_enabled: bool, *, actor: User) -> bool:
    """Enable or disable polling; False when it already was so."""
    if mailbox.is_enabled == is_enabled:
        return False
    mailbox.is_enabled = is_enabled
    if is_enabled:
        # A fresh start: the error that stopped it (or an older one) no longer describes it.
        mailbox.next_poll_at = None
        mailbox.failures = 0
        mailbox.last_error = ""
    record_event(
        "mailbox.enable" if is_enabled else "mailbox.disable",
        target_type="imap_mailbox",
        target_id=mailbox.id,
        actor=actor,
        detail={"name": mailbox.name},
    )
    db.session.flush()
    return True


def delete_mailbox(mailbox: ImapMailbox, *, actor: User) -> None:
    """Stop polling this mailbox for good; the mail already received stays in the inbox."""
    record_event(
        "mailbox.delete",
        target_type="imap_mailbox",
        target_id=mailbox.id,
        actor=actor,
        detail={"name": mailbox.name, "host": mailbox.host, "folder": mailbox.folder},
    )
    db.session.delete(mailbox)
    db.session.flush()


def record_poll(mailbox: ImapMailbox, summary: str, *, actor: User) -> None:
    """Note in the audit log that someone polled a mailbox by hand, and what it did."""
    record_event(
        "mailbox.poll",
        target_type="imap_mailbox",
        target_id=mailbox.id,
        actor=actor,
        detail={"summary": summary[:500]},
    )


def stopped_by_failure(mailboxes: list[ImapMailbox]) -> set[int]:
    """Ids of the disabled mailboxes whose polling a failure stopped (a refused certificate,
    no STARTTLS), not a person: their last enable/disable in the audit log gave a reason."""
    disabled = {str(m.id): m.id for m in mailboxes if not m.is_enabled and m.last_error}
    if not disabled:
        return set()
    events = db.session.execute(
        select(AuditEvent.target_id, AuditEvent.detail)
        .where(
            AuditEvent.target_type == "imap_mailbox",
            AuditEvent.target_id.in_(disabled),
            AuditEvent.action.in_(("mailbox.enable", "mailbox.disable")),
        )
        .order_by(AuditEvent.id.desc())
    )
    latest: dict[str, object] = {}
    for target_id, detail in events:
        latest.setdefault(target_id, detail)
    return {
        disabled[target_id]
        for target_id, detail in latest.items()
        if isinstance(detail, dict) and detail.get("reason")
    }


def needs_alert(mailbox: ImapMailbox) -> bool:
    """Whether the mailbox has failed often enough in a row for staff to be warned."""
    return mailbox.failures >= ALERT_AFTER
