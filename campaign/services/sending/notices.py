"""Single e-mails to people outside a campaign's ledger: a signer's confirmation link, the
news that a joint letter went out, an invitation to sign. Sent by a worker job after the
transaction that asked for them commits, never from inside a web request.

Each kind has a builder: target id -> the messages to send now (empty when there is nothing
to send any more: a signature already confirmed, a notice already given). The builders are
listed in one table, campaign/services/sending/notice_registry.py, which create_app installs
on the app (`install`); nothing registers itself by being imported (decisions 0056, 0057).
A builder that must not send twice claims its row (a column set and committed) before
returning its messages; a failed send then costs that e-mail rather than repeating it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from flask import Flask, current_app

from campaign.extensions import db
from campaign.queue import enqueue_after_commit
from campaign.services.backups.hold import sending_is_held

log = logging.getLogger(__name__)

# The notices a restored copy still sends while its restore hold stands (decision 0087): a
# person signing in needs them, and they answer what that person just asked. The others
# (signatures, invitations and reminders to sign, the news that a letter went out) wait.
SENT_WHILE_HELD = frozenset({"password_reset", "two_factor_reset", "two_factor_guessing"})


@dataclass(frozen=True)
class Notice:
    recipient: str
    message: bytes
    # Undo the builder's claim when the SMTP server refuses this e-mail, so the job's retry
    # sends it: a mail server that is down delays a notice, it does not lose it.
    release: Callable[[], None] | None = field(default=None, compare=False)


Builder = Callable[[int], Sequence[Notice]]
EXTENSION = "campaign.notice_builders"
SEND_JOB = "workers.jobs.send_notice"
# A notice the SMTP server refused is tried again after 1, 5, 15 and 60 minutes, then 3 h.
RETRY_MINUTES = (1, 5, 15, 60, 180)


def install(app: Flask, table: Mapping[str, Builder]) -> None:
    """Make `table` (kind -> builder) the builders send_notice reads in `app` (create_app)."""
    app.extensions[EXTENSION] = dict(table)


def builders() -> Mapping[str, Builder]:
    """The current app's builders, kind -> builder."""
    found: Mapping[str, Builder] = current_app.extensions[EXTENSION]
    return found


def queue_notice(kind: str, target_id: int) -> None:
    """Send notice `kind` about `target_id` once the current transaction commits."""
    from rq import Retry

    enqueue_after_commit(
        db.session(),
        SEND_JOB,
        kind,
        target_id,
        retry=Retry(max=len(RETRY_MINUTES), interval=[m * 60 for m in RETRY_MINUTES]),
    )


def sender_address() -> str:
    return str(current_app.config["MAIL_DEFAULT_SENDER"])


def build_message(
    to: str,
    subject: str,
    text: str,
    *,
    language: str = "en",
    attachments: Sequence[tuple[str, str, bytes]] = (),
) -> bytes:
    """A plain-text notice from the organisation's address (campaign.mail.build_notice)."""
    from campaign.mail import build_notice

    return build_notice(
        to, subject, text, sender=sender_address(), language=language, attachments=attachments
    )


def send_notice(kind: str, target_id: int, *, commit: Callable[[], None]) -> int:
    """Build and send notice `kind` for `target_id`; return how many e-mails went.

    Raises campaign.mail.SendError when the SMTP server refuses, after releasing the claims
    of the e-mails not sent (RQ tries the job again later; its builder then sends just those).
    """
    from campaign.mail import SendError, send_message

    builder = builders().get(kind)
    if builder is None:
        log.error("no notice of kind %r (target %s): nothing sent", kind, target_id)
        return 0
    if kind not in SENT_WHILE_HELD and sending_is_held():
        # Nothing claimed: the builder is not called, so the row is as it was.
        log.warning(
            "notice %s for %s: not sent, this restored copy's sending is held", kind, target_id
        )
        return 0
    notices = builder(target_id)
    commit()  # a builder's claim is durable before anything is sent
    for index, notice in enumerate(notices):
        try:
            send_message(notice.message, sender=sender_address(), recipients=[notice.recipient])
        except SendError:
            for unsent in notices[index:]:
                if unsent.release is not None:
                    unsent.release()
            commit()
            log.warning(
                "notice %s for %s: the mail server refused it; retried later", kind, target_id
            )
            raise
    return len(notices)
