"""Answers to replies written in the app: built, sent through the campaign's account, kept.

The answer is sent inside the request (a short SMTP timeout, one message) and follows the
delivery ledger's rule (docs/decisions/0050): its row is committed as SENDING before the
SMTP conversation starts, then becomes SENT (with the exact bytes and their SHA-256), FAILED
(refused before the message was taken) or IN_DOUBT (the connection broke after the data) —
never recorded as less than what may have gone out.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr

from flask import current_app
from flask_babel import force_locale, format_date, format_time, format_timedelta, gettext
from sqlalchemy import select

from campaign.dkim import DkimError, DkimSigningError
from campaign.extensions import db
from campaign.i18n import LANGUAGES
from campaign.letters.types import RenderedLetter
from campaign.mail import (
    LetterParts,
    MessageError,
    build_message,
    encode_address,
    make_message_id,
    message_id_domain,
    organisation_name,
)
from campaign.models import (
    AnswerStatus,
    Campaign,
    Contact,
    Delivery,
    InboundKind,
    InboundMessage,
    ReplyAnswer,
    Role,
    SmtpAccount,
    User,
    utcnow,
)
from campaign.params import row_id
from campaign.secret_box import SecretUnreadable
from campaign.services.accounts.audit import record_event
from campaign.services.contacts.contacts import InvalidValue as InvalidAddress
from campaign.services.contacts.contacts import normalise_email
from campaign.services.replies import replies as reply_service
from campaign.services.replies.replies import ReplyError
from campaign.services.sending.smtp_accounts import settings_for
from campaign.smtp import Outcome, SendOutcome, SmtpConnection

log = logging.getLogger(__name__)

MAX_BODY_CHARS = 100_000
MAX_SUBJECT_CHARS = 500
# One message while a person waits: the whole conversation (connect, TLS, login, MAIL,
# RCPT, DATA, the server's last answer) must be over within this, well under gunicorn's
# 30 s worker timeout and a proxy's 60 s, whatever the account's own timeout says.
SEND_TIMEOUT_SECONDS: float = 15
# An answer still "sending" after this long was cut off (the worker or the server died
# mid-way): it is shown in doubt, as it may have gone out.
STUCK_AFTER = timedelta(minutes=5)
# References keeps the thread's start and its most recent ids (RFC 5322 3.6.4 allows
# trimming); a hostile message with thousands must not make an unsendable header.
MAX_REFERENCES = 20
DEFAULT_ACCOUNT = "default"

# Reply prefixes clients add, in the languages we write in: "Re:", "RE:", "Re[2]:", "Отв:",
# "AW:", "SV:", "Réf:"; the answer's subject gets one "Re: " whatever was there.
_REPLY_PREFIX = re.compile(r"^(?:\s*(?:re|отв|aw|sv|réf|ref)\s*(?:\[\d+\])?\s*:)+\s*", re.I)
_MESSAGE_IDS = re.compile(r"<[^<>\s]{1,250}>")


def answer_subject(subject: str) -> str:
    """ "Re: " + the subject without the reply prefixes it already had."""
    return "Re: " + _REPLY_PREFIX.sub("", " ".join(subject.split()))


def recipient_language(message: InboundMessage) -> str:
    """The language the answer is written in for its reader: the letter's (the delivery's),
    else the sender contact's first language; "" when neither is known."""
    delivery = db.session.get(Delivery, message.delivery_id) if message.delivery_id else None
    language = delivery.language if delivery is not None else ""
    if not language:
        contact = reply_service.sender_contact(message, delivery)
        languages = contact.language_list if contact is not None else []
        language = languages[0] if languages else ""
    return language if language in LANGUAGES else ""


def quoted_original(message: InboundMessage, language: str = "") -> str:
    """The original text quoted with "> ", under an attribution line, for the answer's body.
    The line ("On 3 March 2025, … wrote:") is in `language` (the reader's), when given."""
    sender = message.from_address or gettext("(no sender)")
    if language:
        with force_locale(language):
            when = format_date(message.received_at, "long")
            head = gettext("On %(date)s, %(sender)s wrote:", date=when, sender=sender)
    else:
        when = format_date(message.received_at, "long")
        head = gettext("On %(date)s, %(sender)s wrote:", date=when, sender=sender)
    lines = (message.text or "").replace("\r\n", "\n").rstrip("\n").split("\n")
    # "> text"; an already quoted line only gains a ">" (">> text"), as mail clients do.
    quoted = "\n".join(
        ">" + (line if line.startswith(">") or not line else " " + line) for line in lines
    )
    return f"\n\n{head}\n{quoted}\n"


@dataclass(frozen=True)
class AnswerDraft:
    """What the answer form starts with."""

    to: str
    subject: str
    body: str


def draft_for(message: InboundMessage) -> AnswerDraft:
    """To the sender, "Re: " + subject, the original quoted below an empty first line."""
    return AnswerDraft(
        to=message.from_address,
        subject=answer_subject(message.subject or ""),
        body=quoted_original(message, recipient_language(message)),
    )


def may_answer(message: InboundMessage) -> bool:
    """Whether staff may answer the message: anything a person wrote, never a bounce."""
    return message.kind != InboundKind.BOUNCE.value and bool(message.from_address)


def answers_to(message: InboundMessage) -> list[ReplyAnswer]:
    """Answers written to the message, oldest first."""
    query = select(ReplyAnswer).where(ReplyAnswer.inbound_id == message.id)
    return list(db.session.scalars(query.order_by(ReplyAnswer.id)))


def account_choices() -> list[tuple[str, str]]:
    """(value, name) of the SMTP accounts an unmatched reply may be answered through."""
    accounts = db.session.scalars(select(SmtpAccount).order_by(SmtpAccount.name))
    return [
        (DEFAULT_ACCOUNT, gettext("the default account (CAMPAIGN_MAIL_*)")),
        *((str(account.id), account.name) for account in accounts),
    ]


@dataclass(frozen=True)
class Route:
    """How the answer leaves: the account (None: the default), the From and Reply-To."""

    account: SmtpAccount | None
    sender: str
    reply_to: str
    campaign: Campaign | None


def route_for(message: InboundMessage, account_choice: str = "") -> Route:
    """The campaign's account and From for a matched reply; for an unmatched one the chosen
    account and the default sender (CAMPAIGN_MAIL_DEFAULT_SENDER)."""
    delivery = db.session.get(Delivery, message.delivery_id) if message.delivery_id else None
    campaign = db.session.get(Campaign, delivery.campaign_id) if delivery else None
    if campaign is not None:
        return Route(campaign.smtp_account, campaign.from_address, campaign.reply_to, campaign)
    sender = str(current_app.config["MAIL_DEFAULT_SENDER"])
    if account_choice in ("", DEFAULT_ACCOUNT):
        if not account_choice:
            raise ReplyError(gettext("Choose the SMTP account to send the answer through."))
        return Route(None, sender, "", None)
    account_id = row_id(account_choice)
    account = db.session.get(SmtpAccount, account_id) if account_id is not None else None
    if account is None:
        raise ReplyError(gettext("That SMTP account no longer exists; choose another."))
    return Route(account, sender, "", None)


def thread_headers(message: InboundMessage) -> dict[str, str]:
    """In-Reply-To (the reply's Message-ID) and References (its References + its id)."""
    own = _MESSAGE_IDS.findall(message.message_id or "")
    if not own:
        return {}
    earlier = _MESSAGE_IDS.findall(reply_service.original_header(message, "References") or "")
    if not earlier:
        earlier = _MESSAGE_IDS.findall(message.in_reply_to or "")
    chain = [mid for mid in earlier if mid != own[0]] + [own[0]]
    if len(chain) > MAX_REFERENCES:
        chain = chain[:1] + chain[-(MAX_REFERENCES - 1) :]
    return {"In-Reply-To": own[0], "References": " ".join(chain)}


def newer_answers(
    message: InboundMessage, seen_id: int, user: User, *, own: bool = False
) -> list[ReplyAnswer]:
    """Answers (not failed) sent after the page was loaded (ids above `seen_id`): by
    colleagues, or with `own` by `user` (a second click, another tab)."""
    query = select(ReplyAnswer).where(
        ReplyAnswer.inbound_id == message.id,
        ReplyAnswer.id > seen_id,
        (ReplyAnswer.author_id == user.id) if own else (ReplyAnswer.author_id != user.id),
        ReplyAnswer.status != AnswerStatus.FAILED.value,
    )
    return list(db.session.scalars(query.order_by(ReplyAnswer.id)))


class AlreadyAnswered(ReplyError):
    """The same person sent an answer after the page was loaded: ask before sending again."""


def is_stuck(answer: ReplyAnswer, now: datetime | None = None) -> bool:
    """Still "sending" long after it started: cut off mid-way, so it may have gone out."""
    return (
        answer.status == AnswerStatus.SENDING.value
        and (now or utcnow()) - answer.created_at > STUCK_AFTER
    )


def shown_status(answer: ReplyAnswer) -> str:
    """The status a person is shown: a stuck "sending" answer is in doubt."""
    return AnswerStatus.IN_DOUBT.value if is_stuck(answer) else answer.status


def counted_answers(answers: list[ReplyAnswer]) -> int:
    """How many answers went out or may have (failed ones certainly did not)."""
    return sum(1 for answer in answers if answer.status != AnswerStatus.FAILED.value)


def allowed_addresses(message: InboundMessage) -> set[str]:
    """The addresses an editor may answer to: the sender's and the matched contact's."""
    delivery = db.session.get(Delivery, message.delivery_id) if message.delivery_id else None
    contact: Contact | None = reply_service.sender_contact(message, delivery)
    found = {parseaddr(message.from_address or "")[1].strip().lower()}
    if contact is not None:
        found.add(contact.email_key)
    return {address for address in found if address}


def colleague_warning(answers: list[ReplyAnswer], now: datetime | None = None) -> str:
    """ "X answered this reply 2 minutes ago" for the latest answer in `answers`, or ""."""
    if not answers:
        return ""
    latest = answers[-1]
    who = latest.author.email if latest.author else gettext("a deleted user")
    # Negative: Babel writes "2 minutes ago" (a positive delta reads "in 2 minutes").
    elapsed = max((now or utcnow()) - latest.created_at, timedelta(seconds=1))
    ago = format_timedelta(-elapsed, add_direction=True)
    return gettext("%(user)s answered this reply %(ago)s.", user=who, ago=ago)


def _validated(to: str, subject: str, body: str) -> tuple[str, str, str]:
    to = to.strip(" \t")
    subject = " ".join(subject.split())
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    if not to:
        raise ReplyError(gettext("Type the address to answer to."))
    # One address only: a list ("a@x, b@y", "a@x; b@y") or a line break is refused rather
    # than cut to its first address, which parseaddr would do silently.
    if any(mark in to for mark in ",;\r\n"):
        raise ReplyError(
            gettext(
                "“%(to)s” is not one e-mail address: type a single address, without "
                "commas, semicolons or line breaks.",
                to=to,
            )
        )
    _display, address = parseaddr(to)
    if not address or "@" not in address:
        raise ReplyError(gettext("“%(to)s” is not one e-mail address.", to=to))
    try:
        address, _key = normalise_email(address)
        encode_address(address, field="To")
    except InvalidAddress as error:
        raise ReplyError(
            gettext("“%(to)s” cannot be used: %(reason)s", to=to, reason=error)
        ) from None
    except MessageError:
        raise ReplyError(gettext("“%(to)s” is not an address we can send to.", to=to)) from None
    if not subject:
        raise ReplyError(gettext("The subject is empty."))
    if len(subject) > MAX_SUBJECT_CHARS:
        raise ReplyError(
            gettext("The subject is longer than %(limit)d characters.", limit=MAX_SUBJECT_CHARS)
        )
    if not body.strip():
        raise ReplyError(gettext("The answer is empty."))
    if len(body) > MAX_BODY_CHARS:
        raise ReplyError(
            gettext("The answer is longer than %(limit)d characters.", limit=MAX_BODY_CHARS)
        )
    if "\x00" in body:
        raise ReplyError(gettext("The answer contains a NUL character."))
    return address, subject, body


def _letter(to_address: str, display: str, subject: str, language: str) -> RenderedLetter:
    return RenderedLetter(
        statement_id=0,
        statement_version=0,
        contact_id=None,
        language=language,
        to_name=display,
        to_address=to_address,
        cc_addresses=(),
        subject=subject,
        html_body="",
        text_body="",
        salutation="",
        closing="",
        address_block=(),
        signatory_lines=(),
    )


# What is stored in ReplyAnswer.error: "<kind>: <the server's answer as it came>", in no
# person's language; error_words() says it in the reader's language when shown.
ERROR_KINDS = ("connect", "login", "sender", "recipient", "message", "broken", "in_doubt")


def failure_code(outcome: SendOutcome) -> str:
    """The neutral record of why the answer did not go (or may have): kind and answer."""
    if outcome.kind == Outcome.IN_DOUBT:
        kind = "in_doubt"
    elif outcome.phase == "connect":
        kind = "connect"
    elif outcome.phase in ("tls", "auth") or outcome.kind == Outcome.AUTH_FAILED:
        kind = "login"
    elif outcome.code is None:
        kind = "broken"  # no answer at all: the connection broke or the time ran out
    elif outcome.phase == "mail":
        kind = "sender"
    elif outcome.phase == "rcpt":
        kind = "recipient"
    else:
        kind = "message"
    return f"{kind}: {outcome.summary}"


def error_words(answer: ReplyAnswer) -> str:
    """The stored error in words, in the current reader's language."""
    kind, _sep, server = (answer.error or "").partition(": ")
    if kind not in ERROR_KINDS:
        return answer.error or ""  # written before codes were stored
    said = server or gettext("no answer")
    if kind == "in_doubt":
        return gettext(
            "the connection was lost after the message was handed over, before the server "
            "answered: it may have been delivered (%(answer)s)",
            answer=said,
        )
    if kind == "connect":
        return gettext("the mail server could not be reached (%(answer)s)", answer=said)
    if kind == "login":
        return gettext(
            "the SMTP account's secure connection or login was refused (%(answer)s)",
            answer=said,
        )
    if kind == "broken":
        return gettext(
            "the mail server stopped answering, or took too long, before the message was "
            "handed over: it was not sent (%(answer)s)",
            answer=said,
        )
    if kind == "sender":
        return gettext("the mail server refused the sender address (%(answer)s)", answer=said)
    if kind == "recipient":
        return gettext(
            "the mail server refused the recipient %(address)s (%(answer)s)",
            address=answer.to_address,
            answer=said,
        )
    return gettext("the mail server refused the message (%(answer)s)", answer=said)


@dataclass
class SentAnswer:
    answer: ReplyAnswer
    # "X answered this reply 2 minutes ago" when a colleague answered after the page loaded.
    colleague_warning: str = ""


def send_answer(
    message: InboundMessage,
    user: User,
    *,
    to: str,
    subject: str,
    body: str,
    account_choice: str = "",
    seen_answer_id: int = 0,
    send_again: bool = False,
    commit: Callable[[], None],
) -> SentAnswer:
    """Send staff's plain-text answer to the reply, threaded, and record it in the ledger.

    Raises ReplyError (nothing stored) when the form or the account cannot be used, and
    AlreadyAnswered when `user` sent an answer after the page was loaded and did not
    confirm (`send_again`). `commit` makes the SENDING row durable before the SMTP
    conversation, and the outcome together with its audit event and the reply marked
    handled after it.
    """
    if not may_answer(message):
        raise ReplyError(gettext("A bounce is not answered: it was written by a mail server."))
    address, subject, body = _validated(to, subject, body)
    if not user.may(Role.SENDER) and address.lower() not in allowed_addresses(message):
        raise ReplyError(
            gettext(
                "editors may answer only to the sender of the message (%(allowed)s); "
                "writing to %(address)s from the organisation needs the sender role.",
                allowed=", ".join(sorted(allowed_addresses(message))),
                address=address,
            )
        )
    own = newer_answers(message, seen_answer_id, user, own=True)
    if own and not send_again:
        raise AlreadyAnswered(
            gettext(
                "you already sent an answer to this message at %(time)s; tick “Send it "
                "again” to send another.",
                time=format_time(own[-1].created_at, "short"),
            )
        )
    display = parseaddr(to.strip())[0]
    route = route_for(message, account_choice)
    try:
        settings = settings_for(route.account)
    except SecretUnreadable:
        raise ReplyError(
            gettext(
                "The stored password of the SMTP account cannot be read (was "
                "CAMPAIGN_SECRET_KEY changed?): enter it again on the account's page."
            )
        ) from None
    except DkimError as error:
        raise ReplyError(
            gettext("The account's DKIM key cannot be used (%(reason)s).", reason=error)
        ) from None
    delivery = db.session.get(Delivery, message.delivery_id) if message.delivery_id else None
    contact = reply_service.sender_contact(message, delivery)
    threading = thread_headers(message)
    message_id = make_message_id(message_id_domain(route.sender))
    try:
        data = build_message(
            # No Content-Language: staff may write in any language, whatever the contact's.
            _letter(address, display, subject, ""),
            sender=route.sender,
            reply_to=route.reply_to or None,
            message_id=message_id,
            extra_headers=threading,
            organisation=organisation_name(route.sender),
            # Plain text only: what staff typed, never a template; no HTML to escape.
            parts=LetterParts(text=body.rstrip("\n") + "\n", html=""),
        )
        if settings.dkim_signer is not None:
            data = settings.dkim_signer.sign(data)
    except (MessageError, DkimSigningError) as error:
        raise ReplyError(gettext("The answer cannot be built: %(reason)s", reason=error)) from None

    answer = ReplyAnswer(
        inbound_id=message.id,
        contact_id=contact.id if contact else None,
        delivery_id=delivery.id if delivery else None,
        smtp_account_id=route.account.id if route.account else None,
        author_id=user.id,
        to_address=address,
        subject=subject,
        body_text=body,
        message_id=message_id,
        in_reply_to=threading.get("In-Reply-To", ""),
        references=threading.get("References", ""),
        status=AnswerStatus.SENDING.value,
        created_at=utcnow(),
        # The exact bytes from the start: an answer cut off mid-way (shown in doubt) keeps
        # what may have gone out; a failed one drops them below.
        message_sha256=hashlib.sha256(data).hexdigest(),
        message_blob=zlib.compress(data, 1),
    )
    db.session.add(answer)
    db.session.flush()
    answer_id = answer.id
    commit()  # SENDING is on record before a byte goes to the server

    envelope_from = parseaddr(route.sender)[1]
    # One overall deadline for the whole conversation: each step waits only for the time
    # left (a server answering every step just in time must not hold the request).
    deadline = time.monotonic() + SEND_TIMEOUT_SECONDS
    try:
        with SmtpConnection(
            settings, helo_name=message_id_domain(route.sender), deadline=deadline
        ) as connection:
            outcome = connection.send(envelope_from, encode_address(address), data)
    except Exception as error:  # a bug mid-conversation: it may have gone out
        log.exception("answer %s: the SMTP conversation broke", answer_id)
        outcome = SendOutcome(Outcome.IN_DOUBT, None, type(error).__name__, "", "dot")

    answer = db.session.get(ReplyAnswer, answer_id) or answer
    if outcome.kind == Outcome.SENT:
        answer.status = AnswerStatus.SENT.value
        answer.sent_at = utcnow()
        answer.error = ""
    elif outcome.kind == Outcome.IN_DOUBT:
        answer.status = AnswerStatus.IN_DOUBT.value
        answer.error = failure_code(outcome)
    else:
        answer.status = AnswerStatus.FAILED.value
        answer.error = failure_code(outcome)
        # Refused before the data was taken: nothing went out, no bytes to keep.
        answer.message_sha256 = ""
        answer.message_blob = None

    warning = colleague_warning(newer_answers(message, seen_answer_id, user))
    # The audit event and "handled" go in the same commit as the outcome: an error
    # between two commits must not leave a sent answer unaudited.
    record_event(
        "inbound.answered",
        target_type="inbound_message",
        target_id=message.id,
        actor=user,
        # Ids and the outcome: never the body, the subject or the address (0050).
        detail={
            "answer_id": answer.id,
            "status": answer.status,
            "delivery_id": message.delivery_id,
        },
    )
    if answer.status != AnswerStatus.FAILED.value:
        reply_service.mark_handled(message, user)
    db.session.flush()
    commit()
    return SentAnswer(answer, warning)


def answer_message(answer: ReplyAnswer) -> bytes | None:
    """The exact bytes handed to the SMTP server, or None when none were kept."""
    if answer.message_blob is None:
        return None
    try:
        return zlib.decompress(answer.message_blob)
    except zlib.error:
        log.warning("reply answer %s: stored message does not decompress", answer.id)
        return None


def record_answer_download(answer: ReplyAnswer, user: User) -> None:
    """Note in the audit log that someone took a copy of a sent answer."""
    record_event(
        "inbound.answer_download",
        target_type="inbound_message",
        target_id=answer.inbound_id,
        actor=user,
        detail={"answer_id": answer.id},
    )
