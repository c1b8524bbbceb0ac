"""IMAP mailboxes: add them; poll them with checkpoints so nothing is missed or done twice."""

from __future__ import annotations

import contextlib
import logging
import re
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import PurePath

from flask import current_app
from flask_babel import gettext
from flask_babel.speaklater import LazyString
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from redis.exceptions import LockError
from redis.lock import Lock
from sqlalchemy import or_, select

from campaign.extensions import db
from campaign.inbound.imap import (
    TIMEOUT_SECONDS,
    MailboxUnavailable,
    connect,
    is_loopback_host,
)
from campaign.inbound.parsing import MAX_BYTES
from campaign.labels import label
from campaign.models import ImapMailbox, ImapSecurity, InboundMessage, User, utcnow
from campaign.queue import get_redis
from campaign.scheduling import stored_text
from campaign.secret_box import encrypt_secret
from campaign.services.accounts.audit import record_event
from campaign.services.backups.hold import sending_is_held
from campaign.services.replies.intake import record_inbound

log = logging.getLogger(__name__)

# Failed polls in a row after which staff are warned (each retry is logged quietly before).
ALERT_AFTER = 3
MAX_BACKOFF = timedelta(minutes=15)
# A mailbox's poll lock lives this long past its last message: a poller killed outright
# blocks that mailbox no longer than this, and a live one renews it before every message.
POLL_LOCK_SECONDS = 600
# Inbound rows polled from a mailbox have source "imap:<mailbox id>".
IMAP_SOURCE_PREFIX = "imap:"
# How many messages' sizes and Message-IDs are asked for in one FETCH.
META_CHUNK = 100
_MESSAGE_ID = re.compile(rb"<[^<>\s]{1,250}>")
_MESSAGE_ID_FIELD = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"


class MailboxError(ValueError):
    """A mailbox cannot be added as given; the message names the field."""


@dataclass
class PollReport:
    mailbox: str
    fetched: int = 0
    new: int = 0
    skipped_large: int = 0
    errors: list[str] = field(default_factory=list)
    # Another poll of this mailbox held its lock: this one did nothing.
    is_busy: bool = False
    # The time budget ran out with messages left: the next poll reads them.
    has_more: bool = False

    def summary(self) -> str:
        if self.is_busy:
            return f"{self.mailbox}: a poll is already running; nothing done"
        if self.errors:
            return f"{self.mailbox}: error: {'; '.join(self.errors)}"
        more = ", more waiting" if self.has_more else ""
        return (
            f"{self.mailbox}: fetched {self.fetched}, new {self.new}, "
            f"skipped {self.skipped_large}{more}"
        )


def validate_mailbox(
    *,
    name: str,
    host: str,
    port: int,
    security: str,
    folder: str,
    processed_folder: str,
    existing: ImapMailbox | None = None,
) -> None:
    """Raise MailboxError naming the field when these settings cannot be saved."""
    if not name:
        raise MailboxError(gettext("The mailbox name is empty."))
    same_name = find_mailbox(name)
    if same_name is not None and same_name is not existing:
        raise MailboxError(gettext("A mailbox named %(name)s exists already.", name=repr(name)))
    if not host:
        raise MailboxError(gettext("The host is empty."))
    if not 0 < port < 65536:
        raise MailboxError(gettext("The port %(port)s is not between 1 and 65535.", port=port))
    if security not in {s.value for s in ImapSecurity}:
        raise MailboxError(
            gettext(
                "The security %(security)s is not one of ssl, starttls, none.",
                security=repr(security),
            )
        )
    if security == ImapSecurity.NONE.value and not is_loopback_host(host):
        raise MailboxError(_clear_text_refused())
    if not folder:
        raise MailboxError(gettext("The folder to watch is empty."))
    if processed_folder == folder:
        raise MailboxError(gettext("The processed folder must differ from the folder watched."))


def _clear_text_refused() -> str:
    # What campaign.inbound.imap.CLEAR_TEXT_REFUSED says to a poll, for the person at the
    # form, naming the choices as the form shows them.
    return gettext(
        "Security: “%(none)s” sends the password in clear, so it is allowed only for a server "
        "on this machine (127.0.0.1, ::1, localhost): choose “%(ssl)s” or “%(starttls)s”.",
        none=label(ImapSecurity.NONE.value, "connection_security"),
        ssl=label(ImapSecurity.SSL.value, "connection_security"),
        starttls=label(ImapSecurity.STARTTLS.value, "connection_security"),
    )


def settings_detail(
    *,
    name: str,
    host: str,
    port: int,
    security: str,
    username: str,
    folder: str,
    processed_folder: str,
    password_changed: bool,
) -> dict[str, object]:
    """A mailbox's settings as the audit log keeps them: never the password, only whether
    one was given."""
    return {
        "name": name,
        "host": host,
        "port": port,
        "security": security,
        "username": username,
        "folder": folder,
        "processed_folder": processed_folder,
        "password_changed": password_changed,
    }


def add_mailbox(
    name: str,
    *,
    host: str,
    port: int,
    security: str,
    username: str,
    password: str,
    folder: str = "INBOX",
    processed_folder: str = "Processed",
    actor: User | None = None,
) -> ImapMailbox:
    """Add an IMAP mailbox to poll, audit-logged whoever adds it (the page, `campaign
    add-mailbox`); the password is stored encrypted, never logged."""
    name, host = name.strip(), host.strip()
    folder, processed_folder = folder.strip(), processed_folder.strip()
    validate_mailbox(
        name=name,
        host=host,
        port=port,
        security=security,
        folder=folder,
        processed_folder=processed_folder,
    )
    mailbox = ImapMailbox(
        name=name,
        host=host,
        port=port,
        security=security,
        username=username,
        password_encrypted=encrypt_secret(password),
        folder=folder,
        processed_folder=processed_folder,
        uidvalidity=0,
        last_uid=0,
        failures=0,
        last_error="",
        is_enabled=True,
    )
    db.session.add(mailbox)
    db.session.flush()
    record_event(
        "mailbox.create",
        target_type="imap_mailbox",
        target_id=mailbox.id,
        actor=actor,
        detail=settings_detail(
            name=name,
            host=host,
            port=port,
            security=security,
            username=username,
            folder=folder,
            processed_folder=processed_folder,
            password_changed=bool(password),
        ),
    )
    return mailbox


def find_mailbox(name: str) -> ImapMailbox | None:
    """Return the mailbox called `name`, or None."""
    return db.session.scalar(select(ImapMailbox).where(ImapMailbox.name == name))


def enabled_mailboxes() -> list[ImapMailbox]:
    """Return every enabled mailbox, by name."""
    query = select(ImapMailbox).where(ImapMailbox.is_enabled.is_(True)).order_by(ImapMailbox.name)
    return list(db.session.scalars(query))


def due_mailboxes(now: datetime | None = None) -> list[ImapMailbox]:
    """Return the enabled mailboxes whose next poll has come (backed-off ones wait); none
    while a restore hold stands (a restored copy would take the original's mail, 0087)."""
    if sending_is_held():
        return []
    now = now or utcnow()
    query = (
        select(ImapMailbox)
        .where(ImapMailbox.is_enabled.is_(True))
        .where(or_(ImapMailbox.next_poll_at.is_(None), ImapMailbox.next_poll_at <= now))
        .order_by(ImapMailbox.name)
    )
    return list(db.session.scalars(query))


def backoff(failures: int) -> timedelta:
    """How long to wait after `failures` failed polls in a row: 1, 2, 4 … minutes, at most 15."""
    return min(timedelta(minutes=2 ** max(0, min(failures, 10) - 1)), MAX_BACKOFF)


def poll_lock_key(mailbox_id: int) -> str:
    return f"campaign:{current_app.config['QUEUE_NAME']}:mailbox-{mailbox_id}-poll-lock"


def poll_mailbox(
    mailbox: ImapMailbox,
    *,
    commit: Callable[[], None],
    timeout: float = TIMEOUT_SECONDS,
    budget_seconds: float | None = None,
) -> PollReport:
    """Fetch and record the mailbox's new messages once; commit after each one.

    Workers, `campaign poll-inbox` and the page's "Poll now" all come here, and a Redis lock
    per mailbox lets only one of them poll it at a time: two would fetch and move the same
    UIDs. `budget_seconds` stops before the next message once spent (for a web request).
    """
    report = PollReport(mailbox.name)
    lock = get_redis().lock(poll_lock_key(mailbox.id), timeout=POLL_LOCK_SECONDS)
    if not lock.acquire(blocking=False):
        report.is_busy = True
        return report
    stop_at = None if budget_seconds is None else time.monotonic() + budget_seconds

    def keep_going() -> bool:
        if stop_at is not None and time.monotonic() >= stop_at:
            report.has_more = True
            return False
        return _renew(lock, mailbox)

    try:
        _poll_locked(mailbox, report, commit, timeout, keep_going)
    finally:
        with contextlib.suppress(LockError):
            lock.release()
    return report


def _renew(lock: Lock, mailbox: ImapMailbox) -> bool:
    try:
        lock.reacquire()
    except LockError:
        # Expired (one message took longer than POLL_LOCK_SECONDS): another poller may hold
        # it now, so stop; the checkpoint lets whoever polls next carry on.
        log.warning("mailbox %s: its poll lock expired; this poll stops here", _label(mailbox))
        return False
    return True


def _poll_locked(
    mailbox: ImapMailbox,
    report: PollReport,
    commit: Callable[[], None],
    timeout: float,
    keep_going: Callable[[], bool],
) -> None:
    try:
        client = connect(mailbox, timeout=timeout)
    except MailboxUnavailable as error:
        _failed(mailbox, error.reason, report, commit, pause=error.pauses)
        return
    try:
        _poll(client, mailbox, report, commit, keep_going)
    except (IMAPClientError, OSError) as error:
        db.session.rollback()
        _failed(
            mailbox, f"{mailbox.host}:{mailbox.port} failed while reading: {error}", report, commit
        )
        return
    except Exception as error:
        # A message we cannot record (a bug, a database refusal) would fail every poll at
        # the same place: back off and alert like an outage, so staff see it on the page.
        # Its text is left out: database errors quote parameters, possibly mail or secrets.
        db.session.rollback()
        reason = (
            f"unexpected {error.__class__.__name__} at {where_it_failed(error)} "
            f"after {report.fetched} message(s); see the worker log"
        )
        log.error("mailbox %s: %s", _label(mailbox), reason)
        _failed(mailbox, reason, report, commit)
        return
    finally:
        _close(client)
    mailbox.failures = 0
    mailbox.last_error = ""
    mailbox.last_polled_at = utcnow()
    mailbox.next_poll_at = None
    commit()


def _poll(
    client: IMAPClient,
    mailbox: ImapMailbox,
    report: PollReport,
    commit: Callable[[], None],
    keep_going: Callable[[], bool],
) -> None:
    selected = client.select_folder(mailbox.folder)
    uidvalidity = int(selected[b"UIDVALIDITY"])
    if uidvalidity != mailbox.uidvalidity:
        # UIDs of the old numbering mean nothing now: read the folder again. Message-IDs
        # already recorded from any mailbox keep that from handling anything twice.
        if mailbox.uidvalidity:
            log.warning(
                "mailbox %s: UIDVALIDITY changed from %s to %s; reading the folder again",
                _label(mailbox),
                mailbox.uidvalidity,
                uidvalidity,
            )
        mailbox.uidvalidity = uidvalidity
        mailbox.last_uid = 0
        commit()
    # "N:*" also answers the highest UID when it is below N: keep only the new ones.
    uids = sorted(
        u for u in client.search(["UID", f"{mailbox.last_uid + 1}:*"]) if u > mailbox.last_uid
    )
    processed_ready = False
    for start in range(0, len(uids), META_CHUNK):
        chunk = uids[start : start + META_CHUNK]
        meta = client.fetch(chunk, ["RFC822.SIZE", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        for uid in chunk:
            if not keep_going():
                return
            if uid not in meta:
                continue  # expunged by someone else meanwhile
            _handle(client, mailbox, uid, meta[uid], report)
            # The checkpoint and the message are committed together: a crash after this
            # line (before the move) leaves nothing to handle again.
            mailbox.last_uid = uid
            commit()
            if mailbox.processed_folder:
                if not processed_ready:
                    _ensure_folder(client, mailbox.processed_folder)
                    processed_ready = True
                _move(client, uid, mailbox.processed_folder)


def _handle(
    client: IMAPClient,
    mailbox: ImapMailbox,
    uid: int,
    meta: dict[bytes, object],
    report: PollReport,
) -> None:
    # Keyed on the id, not the name: a renamed mailbox still knows what it has recorded.
    source = f"{IMAP_SOURCE_PREFIX}{mailbox.id}"
    report.fetched += 1
    size = int(meta.get(b"RFC822.SIZE") or 0)  # type: ignore[call-overload]
    found = _MESSAGE_ID.search(_as_bytes(meta.get(_MESSAGE_ID_FIELD)))
    message_id = found.group().decode("ascii", "replace") if found else ""
    if message_id and _seen(message_id):
        return
    key = f"{source}:{mailbox.uidvalidity}:{uid}"
    if size > MAX_BYTES:
        # Never download it: the headers are enough to thread it and for staff to see it.
        header = _as_bytes(
            client.fetch([uid], ["BODY.PEEK[HEADER]"]).get(uid, {}).get(b"BODY[HEADER]")
        )
        result = record_inbound(header, source=source, source_key=key)
        report.skipped_large += 1
        if result.is_new:
            report.new += 1
            megabytes = size / (1024 * 1024)
            result.message.problems = [
                *result.message.problems,
                f"too large ({megabytes:.0f} MB): only its headers were fetched",
            ]
            result.message.raw_size = size
        return
    raw = _as_bytes(client.fetch([uid], ["BODY.PEEK[]"]).get(uid, {}).get(b"BODY[]"))
    if record_inbound(raw, source=source, source_key=key).is_new:
        report.new += 1


def _seen(message_id: str) -> bool:
    # Any mailbox, not only this one: a reply sent to two of our addresses, or a mailbox
    # renamed or re-pointed before its rows were keyed by id, is still recorded once. The
    # message_id index finds the few candidates; the prefix keeps files and uploads apart.
    query = (
        select(InboundMessage.id)
        .where(
            InboundMessage.message_id == message_id,
            InboundMessage.source.startswith(IMAP_SOURCE_PREFIX, autoescape=True),
        )
        .limit(1)
    )
    return db.session.scalar(query) is not None


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "replace")
    return b""


def _ensure_folder(client: IMAPClient, folder: str) -> None:
    if not client.folder_exists(folder):
        client.create_folder(folder)


def _move(client: IMAPClient, uid: int, folder: str) -> None:
    if client.has_capability("MOVE"):
        client.move([uid], folder)
        return
    client.copy([uid], folder)
    client.delete_messages([uid])
    if client.has_capability("UIDPLUS"):
        client.uid_expunge([uid])


def _failed(
    mailbox: ImapMailbox,
    reason: str | LazyString,
    report: PollReport,
    commit: Callable[[], None],
    *,
    pause: bool = False,
) -> None:
    now = utcnow()
    mailbox.failures += 1
    # A lazy reason is kept as its message, read later in each reader's language.
    stored = stored_text.dump(reason)
    mailbox.last_error = stored if len(stored) <= 2000 else str(reason)[:2000]
    mailbox.last_polled_at = now
    mailbox.next_poll_at = now + backoff(mailbox.failures)
    report.errors.append(str(reason))
    if pause and mailbox.is_enabled:
        # A refused certificate or a missing STARTTLS does not mend by waiting, and may be
        # someone in the middle: polling stops until staff enable the mailbox again.
        mailbox.is_enabled = False
        record_event(
            "mailbox.disable",
            target_type="imap_mailbox",
            target_id=mailbox.id,
            detail={"name": mailbox.name, "reason": stored_text.english(stored)},
        )
        log.warning("mailbox %s: polling paused: %s", _label(mailbox), reason)
    commit()
    if mailbox.failures >= ALERT_AFTER:
        log.warning(
            "ALERT: mailbox %s failed %s polls in a row (%s); nothing is lost, "
            "its mail waits on the server",
            _label(mailbox),
            mailbox.failures,
            reason,
        )
    else:
        log.info(
            "mailbox %s: poll failed (%s); retrying at %s",
            _label(mailbox),
            reason,
            mailbox.next_poll_at,
        )


def where_it_failed(error: BaseException) -> str:
    """Name the file, line and function an error was raised in (never its message)."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "an unknown place"
    # Our own last frame says more than the library's ("default.py in do_execute").
    ours = [frame for frame in frames if "campaign" in PurePath(frame.filename).parts]
    last = (ours or frames)[-1]
    return f"{PurePath(last.filename).name}:{last.lineno} in {last.name}"


def _label(mailbox: ImapMailbox) -> str:
    # For logs: the name and id staff know it by; never the login, often an email address.
    return f"{mailbox.id} ({mailbox.name})"


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except (IMAPClientError, OSError):
        # The connection is already gone; there is nothing to tidy.
        with contextlib.suppress(OSError):
            client.shutdown()
