"""Test the connection of an SMTP account or an IMAP mailbox, step by step, sending nothing.

The same code connects as when sending (campaign/smtp.py) and polling (campaign/inbound/
imap.py), so a test that passes means the real thing would connect too. Each step is
bounded (STEP_SECONDS) and the whole test too (OVERALL_SECONDS: a watchdog cuts the socket
of a server that keeps answering slowly); the password is never in a step, the log or the
audit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import imaplib
import json
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import getaddresses, parseaddr
from typing import Any

from flask import current_app
from flask_babel import force_locale, ngettext
from flask_babel import gettext as _
from imapclient.exceptions import IMAPClientError

from campaign.inbound.imap import MailboxUnavailable, connect
from campaign.labels import label
from campaign.models import ImapMailbox, SmtpAccount, User
from campaign.queue import get_redis
from campaign.secret_box import SecretUnreadable
from campaign.services.accounts.audit import record_event
from campaign.services.sending.smtp_accounts import default_settings, settings_for
from campaign.smtp import NO_SMTPUTF8, Outcome, SendOutcome, SmtpConnection, SmtpSettings
from campaign.tls import explain

STEP_SECONDS = 10
# The whole test, every step included: a server that answers each command just inside
# STEP_SECONDS, or drips continuation lines ("220-…") for ever, is cut off at this point.
OVERALL_SECONDS = 30


@dataclass(frozen=True)
class Step:
    """One step of a test: what was tried, whether it worked, and in words what happened."""

    name: str
    is_ok: bool
    detail: str = ""
    # What the step is, whatever the language (the audit's "failed"): password, sender, dns,
    # connect, tls, login, from, folder.
    code: str = ""


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

    @property
    def failed_code(self) -> str:
        """The code of the step that failed ("" when none did)."""
        return next((s.code for s in self.steps if not s.is_ok), "")


class _Watchdog:
    """Cuts a connection at the test's deadline, from its own thread: a read the test is
    blocked in fails at once. `cut` returns False while there is nothing to cut yet (it is
    tried again every 0.1 s until there is, or the test is over)."""

    def __init__(self, deadline: float, cut: Callable[[], bool]) -> None:
        self.fired = False
        self._deadline = deadline
        self._cut = cut
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="connection-test-watchdog")
        self._thread.daemon = True

    def _watch(self) -> None:
        if self._done.wait(max(0.0, self._deadline - time.monotonic())):
            return
        self.fired = True
        while not self._cut() and not self._done.wait(0.1):
            pass

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


def _out_of_time(step: Step) -> Step:
    detail = _(
        "the server did not finish within the %(seconds)d s a test may take (it answers too "
        "slowly or never ends its answer)",
        seconds=OVERALL_SECONDS,
    )
    return dataclasses.replace(step, detail=str(detail))


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
        text = _("no answer from DNS within %(seconds)d s", seconds=STEP_SECONDS)
        return Step(name, False, text, "dns")
    if failed or not found:
        return Step(
            name,
            False,
            _(
                "the host name %(host)s is not found in DNS (%(error)s): check its spelling",
                host=host,
                error=failed[0] if failed else "-",
            ),
            "dns",
        )
    addresses = sorted({str(info[4][0]) for info in found})
    return Step(name, True, ", ".join(addresses[:4]), "dns")


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


# --- the report between the POST and the page that shows it --------------------------------

# How long a report can be read again (its page reloaded) after the test.
REPORT_SECONDS = 600


def _report_key(token: str) -> str:
    return f"campaign:{current_app.config['QUEUE_NAME']}:connection-test:{token}"


def keep_report(report: ConnectionReport, *, user_id: int, **about: Any) -> str:
    """Keep `report` in Redis for REPORT_SECONDS for `user_id` only; return its random key.

    Not in the session: Flask's session is a signed cookie its holder can read, and a
    report names the server, the login name and the server's answers.
    """
    token = secrets.token_urlsafe(16)
    data = {**about, "user": user_id, "report": report.as_dict()}
    get_redis().setex(_report_key(token), REPORT_SECONDS, json.dumps(data))
    return token


def kept_report(token: str, *, user_id: int) -> tuple[ConnectionReport, dict[str, Any]] | None:
    """The report kept under `token` for `user_id` (and what was kept with it), or None
    when it expired, never existed or belongs to someone else."""
    if not token or len(token) > 64:
        return None
    raw = get_redis().get(_report_key(token))
    if raw is None:
        return None
    data = json.loads(raw)
    if not isinstance(data, dict) or data.get("user") != user_id:
        return None
    return ConnectionReport.from_dict(data.get("report") or {}), data


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
                "password",
            )
        )
        _audit_smtp(account, report, sender, actor)
        return report
    sender = sender.strip() or default_sender()
    problem = _sender_problem(sender)
    if problem:
        report = ConnectionReport(f"{settings.host}:{settings.port}")
        report.steps.append(Step(_("Check the From address"), False, problem, "sender"))
        # The address itself is left out of the audit: it may hold a line break.
        _audit_smtp(account, report, "", actor)
        return report
    report = _run_smtp(dataclasses.replace(settings, timeout=STEP_SECONDS), sender)
    _audit_smtp(account, report, sender, actor)
    return report


def _sender_problem(sender: str) -> str:
    """Why `sender` cannot be tried as the From ("" when it can): one plain address, no
    line break (it would end the SMTP command); non-ASCII is the server's to accept."""
    if not sender:
        return ""  # the null sender (MAIL FROM:<>) is valid SMTP
    if any(ord(char) < 32 or ord(char) == 127 for char in sender):
        return str(_("the From contains a line break or another control character"))
    found = getaddresses([sender])
    if len(found) != 1 or "@" not in found[0][1]:
        return str(
            _(
                "the From must be one plain address, such as %(example)s",
                example="office@example.org",
            )
        )
    return ""


def _run_smtp(settings: SmtpSettings, sender: str) -> ConnectionReport:
    target = f"{settings.host}:{settings.port}"
    report = ConnectionReport(target)
    deadline = time.monotonic() + OVERALL_SECONDS
    looked_up = _resolve(settings.host, settings.port)
    report.steps.append(looked_up)
    if not looked_up.is_ok:
        return report
    with (
        SmtpConnection(settings, deadline=deadline) as connection,
        _Watchdog(deadline, connection.abort) as watchdog,
    ):
        outcome = connection.check_sender(sender)
    steps = _smtp_steps(settings, target, sender, outcome)
    if (watchdog.fired or time.monotonic() >= deadline) and not steps[-1].is_ok:
        steps[-1] = _out_of_time(steps[-1])
    report.steps.extend(steps)
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
            text = str(explain(outcome.tls, target, outcome.reply))
            return [Step(connect_step, False, text, "connect")]
        if outcome.code is not None:
            detail = _("the server refused the connection: %(answer)s", answer=outcome.summary)
        else:
            detail = _unreachable(target, outcome.reply)
        return [Step(connect_step, False, detail, "connect")]
    steps.append(Step(connect_step, True, code="connect"))
    if phase == "tls":
        problem = outcome.tls
        detail = str(explain(problem, target, outcome.reply)) if problem else outcome.summary
        steps.append(Step(tls_step, False, detail, "tls"))
        return steps
    if uses_tls:
        steps.append(Step(tls_step, True, code="tls"))
    if phase == "auth":
        steps.append(
            Step(
                login_step,
                False,
                _("the server refused the login: %(answer)s", answer=outcome.summary or "-"),
                "login",
            )
        )
        return steps
    if settings.username:
        steps.append(Step(login_step, True, code="login"))
    if outcome.kind == Outcome.SENT:
        text = _("the server answered: %(answer)s", answer=outcome.summary)
        steps.append(Step(from_step, True, text, "from"))
    elif outcome.code is None and outcome.reply == NO_SMTPUTF8:
        text = _(
            "the address has characters outside ASCII and the server does not offer SMTPUTF8: "
            "use an ASCII address"
        )
        steps.append(Step(from_step, False, text, "from"))
    elif outcome.code is None and outcome.kind == Outcome.PERMANENT:
        text = _("the server cannot be asked about this address: %(error)s", error=outcome.reply)
        steps.append(Step(from_step, False, text, "from"))
    elif outcome.code is None:
        text = _("the connection was lost: %(error)s", error=outcome.reply)
        steps.append(Step(from_step, False, text, "from"))
    else:
        text = _("the relay refuses this From: %(answer)s", answer=outcome.summary)
        steps.append(Step(from_step, False, text, "from"))
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
            "failed": report.failed_code,
        },
    )


# --- IMAP -----------------------------------------------------------------------------------


def check_mailbox_connection(
    mailbox: ImapMailbox, *, actor: User | None = None
) -> ConnectionReport:
    """Connect to `mailbox`, secure, log in and open its folder (read-only). Audited."""
    target = f"{mailbox.host}:{mailbox.port}"
    report = ConnectionReport(target)
    deadline = time.monotonic() + OVERALL_SECONDS
    looked_up = _resolve(mailbox.host, mailbox.port)
    report.steps.append(looked_up)
    if looked_up.is_ok:
        report.steps.extend(_mailbox_steps(mailbox, target, deadline))
    record_event(
        "mailbox.test",
        target_type="imap_mailbox",
        target_id=mailbox.id,
        actor=actor,
        detail={
            "server": target,
            "folder": mailbox.folder,
            "ok": report.is_ok,
            "failed": report.failed_code,
        },
    )
    return report


def _mailbox_steps(mailbox: ImapMailbox, target: str, deadline: float) -> list[Step]:
    opened: list[imaplib.IMAP4] = []

    def cut() -> bool:
        sock = getattr(opened[0], "sock", None) if opened else None
        if sock is None:  # not connected yet: tried again
            return False
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        return True

    with _Watchdog(deadline, cut) as watchdog:
        steps = _mailbox_conversation(mailbox, target, deadline, opened.append)
    if (watchdog.fired or time.monotonic() >= deadline) and not steps[-1].is_ok:
        steps[-1] = _out_of_time(steps[-1])
    return steps


def _mailbox_conversation(
    mailbox: ImapMailbox, target: str, deadline: float, opened: Callable[[imaplib.IMAP4], None]
) -> list[Step]:
    connect_step = _("Connect to %(server)s", server=target)
    security = label(mailbox.security, "connection_security")
    tls_step = _("Secure the connection (%(security)s)", security=security)
    login_step = _("Log in as %(user)s", user=mailbox.username)
    folder_step = _("Open the folder %(folder)s", folder=mailbox.folder)
    uses_tls = mailbox.security != "none"
    timeout = max(1.0, min(STEP_SECONDS, deadline - time.monotonic()))
    try:
        client = connect(mailbox, timeout=timeout, opened=opened)
    except MailboxUnavailable as error:
        reason = str(error.reason)
        if error.phase == "password":
            return [Step(_("Read the stored password"), False, reason, "password")]
        if error.phase == "connect":
            with force_locale("en"):  # the cause is read from the English words
                english = str(error.reason)
            text = _imap_unreachable(target, english, reason)
            return [Step(connect_step, False, text, "connect")]
        steps = [Step(connect_step, True, code="connect")]
        if error.phase == "tls":
            return [*steps, Step(tls_step, False, reason, "tls")]
        if uses_tls:
            steps.append(Step(tls_step, True, code="tls"))
        return [*steps, Step(login_step, False, reason, "login")]
    steps = [Step(connect_step, True, code="connect")]
    if uses_tls:
        steps.append(Step(tls_step, True, code="tls"))
    steps.append(Step(login_step, True, code="login"))
    try:
        selected = client.select_folder(mailbox.folder, readonly=True)
        count = int(selected.get(b"EXISTS", 0))
        steps.append(
            Step(
                folder_step,
                True,
                ngettext("%(num)d message in it", "%(num)d messages in it", count),
                "folder",
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
                "folder",
            )
        )
    finally:
        with contextlib.suppress(IMAPClientError, OSError):
            client.logout()
    return steps


def _imap_unreachable(target: str, english: str, reason: str) -> str:
    lowered = english.lower()
    if "no answer" in lowered or "timed out" in lowered:
        return _unreachable(target, "timed out")
    if "connection refused" in lowered:
        return _unreachable(target, "refused")
    return reason
