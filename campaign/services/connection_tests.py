"""Test the connection of an SMTP account or an IMAP mailbox, step by step, sending nothing.

The same code connects as when sending (campaign/smtp.py) and polling (campaign/inbound/
imap.py), so a test that passes means the real thing would connect too. Each step is
bounded (STEP_SECONDS); the password is never in a step, the log or the audit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from flask_babel import ngettext
from imapclient.exceptions import IMAPClientError

from campaign.inbound.imap import MailboxUnavailable, connect
from campaign.labels import label
from campaign.models import ImapMailbox, SmtpAccount, User
from campaign.secret_box import SecretUnreadable
from campaign.services.audit import record_event
from campaign.services.smtp_accounts import SmtpSettings, default_settings, settings_for
from campaign.smtp import Outcome, SendOutcome, SmtpConnection
from campaign.tls import explain

STEP_SECONDS = 10


@dataclass(frozen=True)
class Step:
    """One step of a test: what was tried, whether it worked, and in words what happened."""

    name: str
    is_ok: bool
    detail: str = ""


@dataclass
class ConnectionReport:
    target: str  # "host:port"
    steps: list[Step] = field(default_factory=list)

    @property
    def is_ok(self) -> bool:
        return bool(self.steps) and all(step.is_ok for step in self.steps)

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for the session between the POST and the page that shows it)."""
        return {"target": self.target, "steps": [dataclasses.asdict(s) for s in self.steps]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConnectionReport:
        return cls(str(data.get("target", "")), [Step(**s) for s in data.get("steps", [])])


def _resolve(host: str, port: int) -> Step:
    """Look the host name up, within STEP_SECONDS (getaddrinfo itself has no timeout)."""
    name = _("Look up %(host)s", host=host)
    found: list[Any] = []
    failed: list[BaseException] = []

    def lookup() -> None:
        try:
            found.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as error:
            failed.append(error)

    thread = threading.Thread(target=lookup, name="connection-test-dns", daemon=True)
    thread.start()
    thread.join(STEP_SECONDS)
    if thread.is_alive():
        return Step(name, False, _("no answer from DNS within %(seconds)d s", seconds=STEP_SECONDS))
    if failed or not found:
        return Step(
            name,
            False,
            _(
                "the host name %(host)s is not found in DNS (%(error)s): check its spelling",
                host=host,
                error=failed[0] if failed else "-",
            ),
        )
    addresses = sorted({str(info[4][0]) for info in found})
    return Step(name, True, ", ".join(addresses[:4]))


def _unreachable(target: str, text: str) -> str:
    lowered = text.lower()
    if "refused" in lowered:
        return _(
            "nothing answers on %(server)s (connection refused): check the port", server=target
        )
    if "timed out" in lowered or "timeout" in lowered:
        return _(
            "no answer from %(server)s within %(seconds)d s: a firewall may block the port",
            server=target,
            seconds=STEP_SECONDS,
        )
    return _("cannot connect to %(server)s: %(error)s", server=target, error=text)


# --- SMTP -----------------------------------------------------------------------------------


def default_sender() -> str:
    """The address a test tries as From when none is given: the installation's default."""
    return parseaddr(str(current_app.config.get("MAIL_DEFAULT_SENDER") or ""))[1]


def check_smtp_connection(
    account: SmtpAccount | None, sender: str = "", *, actor: User | None = None
) -> ConnectionReport:
    """Connect to `account` (None: the default one), secure, log in and try `sender` as From.

    Sends no message: MAIL FROM, then RSET. Audited; the caller commits.
    """
    try:
        settings = settings_for(account) if account is not None else default_settings()
    except SecretUnreadable:
        report = ConnectionReport(f"{account.host}:{account.port}" if account else "")
        report.steps.append(
            Step(
                _("Read the stored password"),
                False,
                _("it cannot be read (was CAMPAIGN_SECRET_KEY changed?): enter it again"),
            )
        )
        _audit_smtp(account, report, sender, actor)
        return report
    sender = sender.strip() or default_sender()
    report = _run_smtp(dataclasses.replace(settings, timeout=STEP_SECONDS), sender)
    _audit_smtp(account, report, sender, actor)
    return report


def _run_smtp(settings: SmtpSettings, sender: str) -> ConnectionReport:
    target = f"{settings.host}:{settings.port}"
    report = ConnectionReport(target)
    looked_up = _resolve(settings.host, settings.port)
    report.steps.append(looked_up)
    if not looked_up.is_ok:
        return report
    with SmtpConnection(settings) as connection:
        outcome = connection.check_sender(sender)
    report.steps.extend(_smtp_steps(settings, target, sender, outcome))
    return report


def _smtp_steps(
    settings: SmtpSettings, target: str, sender: str, outcome: SendOutcome
) -> list[Step]:
    connect_step = _("Connect to %(server)s", server=target)
    security = label(settings.security, "connection_security")
    tls_step = _("Secure the connection (%(security)s)", security=security)
    login_step = _("Log in as %(user)s", user=settings.username)
    from_step = _("Ask the server to accept mail from %(sender)s", sender=sender)
    uses_tls = settings.security != "none"
    phase = outcome.phase
    steps: list[Step] = []
    # Every step before the one that failed worked.
    if phase == "connect" or (phase == "tls" and outcome.tls is not None and not uses_tls):
        if outcome.tls is not None:  # security "none" with a login elsewhere: never connected
            return [Step(connect_step, False, str(explain(outcome.tls, target, outcome.reply)))]
        if outcome.code is not None:
            detail = _("the server refused the connection: %(answer)s", answer=outcome.summary)
        else:
            detail = _unreachable(target, outcome.reply)
        return [Step(connect_step, False, detail)]
    steps.append(Step(connect_step, True))
    if phase == "tls":
        problem = outcome.tls
        detail = str(explain(problem, target, outcome.reply)) if problem else outcome.summary
        steps.append(Step(tls_step, False, detail))
        return steps
    if uses_tls:
        steps.append(Step(tls_step, True))
    if phase == "auth":
        steps.append(
            Step(
                login_step,
                False,
                _("the server refused the login: %(answer)s", answer=outcome.summary or "-"),
            )
        )
        return steps
    if settings.username:
        steps.append(Step(login_step, True))
    if outcome.kind == Outcome.SENT:
        steps.append(
            Step(from_step, True, _("the server answered: %(answer)s", answer=outcome.summary))
        )
    elif outcome.code is None:
        steps.append(
            Step(from_step, False, _("the connection was lost: %(error)s", error=outcome.reply))
        )
    else:
        steps.append(
            Step(
                from_step,
                False,
                _("the relay refuses this From: %(answer)s", answer=outcome.summary),
            )
        )
    return steps


def _audit_smtp(
    account: SmtpAccount | None, report: ConnectionReport, sender: str, actor: User | None
) -> None:
    record_event(
        "smtp_account.test",
        target_type="smtp_account",
        target_id=account.id if account is not None else "default",
        actor=actor,
        detail={
            "server": report.target,
            "from": sender,
            "ok": report.is_ok,
            "failed": next((s.name for s in report.steps if not s.is_ok), ""),
        },
    )


# --- IMAP -----------------------------------------------------------------------------------


def check_mailbox_connection(
    mailbox: ImapMailbox, *, actor: User | None = None
) -> ConnectionReport:
    """Connect to `mailbox`, secure, log in and open its folder (read-only). Audited."""
    target = f"{mailbox.host}:{mailbox.port}"
    report = ConnectionReport(target)
    looked_up = _resolve(mailbox.host, mailbox.port)
    report.steps.append(looked_up)
    if looked_up.is_ok:
        report.steps.extend(_mailbox_steps(mailbox, target))
    record_event(
        "mailbox.test",
        target_type="imap_mailbox",
        target_id=mailbox.id,
        actor=actor,
        detail={
            "server": target,
            "folder": mailbox.folder,
            "ok": report.is_ok,
            "failed": next((s.name for s in report.steps if not s.is_ok), ""),
        },
    )
    return report


def _mailbox_steps(mailbox: ImapMailbox, target: str) -> list[Step]:
    connect_step = _("Connect to %(server)s", server=target)
    security = label(mailbox.security, "connection_security")
    tls_step = _("Secure the connection (%(security)s)", security=security)
    login_step = _("Log in as %(user)s", user=mailbox.username)
    folder_step = _("Open the folder %(folder)s", folder=mailbox.folder)
    uses_tls = mailbox.security != "none"
    try:
        client = connect(mailbox, timeout=STEP_SECONDS)
    except MailboxUnavailable as error:
        reason = str(error.reason)
        if error.phase == "connect":
            return [Step(connect_step, False, _imap_unreachable(target, reason))]
        steps = [Step(connect_step, True)]
        if error.phase == "tls":
            return [*steps, Step(tls_step, False, reason)]
        if uses_tls:
            steps.append(Step(tls_step, True))
        return [*steps, Step(login_step, False, reason)]
    steps = [Step(connect_step, True)]
    if uses_tls:
        steps.append(Step(tls_step, True))
    steps.append(Step(login_step, True))
    try:
        selected = client.select_folder(mailbox.folder, readonly=True)
        count = int(selected.get(b"EXISTS", 0))
        steps.append(
            Step(
                folder_step,
                True,
                ngettext("%(num)d message in it", "%(num)d messages in it", count),
            ),
        )
    except (IMAPClientError, OSError) as error:
        steps.append(
            Step(
                folder_step,
                False,
                _(
                    "the folder %(folder)s does not exist or cannot be opened (%(error)s)",
                    folder=mailbox.folder,
                    error=error,
                ),
            )
        )
    finally:
        with contextlib.suppress(IMAPClientError, OSError):
            client.logout()
    return steps


def _imap_unreachable(target: str, reason: str) -> str:
    lowered = reason.lower()
    if "no answer" in lowered or "timed out" in lowered:
        return _unreachable(target, "timed out")
    if "connection refused" in lowered:
        return _unreachable(target, "refused")
    return reason
