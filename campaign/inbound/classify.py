"""Telling a bounce from an auto-reply from a human answer, and a hard bounce from a soft one."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from flufl.bounce import all_failures

from campaign.inbound.parsing import ParsedMessage, as_email_message

log = logging.getLogger(__name__)

_BOUNCE_SENDERS = re.compile(
    r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon|microsoftexchange[0-9a-f]*)@", re.I
)
_BOUNCE_SUBJECTS = re.compile(
    r"undeliver|returned mail|mail delivery (failed|failure|system|subsystem)|"
    r"delivery status notification|delivery (has )?failed|failure notice|"
    r"delivery failure|non[- ]?delivery|could not be delivered|"
    r"warning: could not send message|delayed mail|message delayed|"
    r"nicht zustellbar|unzustellbar|non remis|non distribuable|échec de (la )?remise|"
    r"не доставлено|недоставлен",
    re.I,
)
_DELAY_SUBJECTS = re.compile(r"\(delay\)|delayed|warning:|verzögert|retard", re.I)
# Phrases no human answer uses in a subject, found anywhere in it.
_AUTO_PHRASES = re.compile(
    r"out of (the )?office|automatic reply|auto(matic)?[- ]?(reply|response)|autoreply|"
    r"réponse automatique|réponse auto\b|message d'absence|"
    r"автоматический ответ|автоответ|нет на месте|вне офиса|"
    r"abwesenheitsnotiz|automatische antwort|nicht im büro|außer haus|ausser haus",
    re.I,
)
# Words a person may also use ("Absence of due process"): only when the subject opens with them.
_AUTO_OPENINGS = re.compile(
    r"^\s*(absence|absent|vacation|on leave|away|thank you for (your )?(message|email|letter)|"
    r"thanks for (your )?(message|email)|we have received|your (message|email) (has been|was) "
    r"received|acknowledg|accusé de réception|en congés?|"
    r"отсутств|в отпуске|ваше (письмо|сообщение) получено|"
    r"urlaub|eingangsbestätigung|abwesend)",
    re.I,
)
_PRECEDENCE_AUTO = {"bulk", "junk", "list", "auto_reply"}
_SMTP_PERMANENT = re.compile(r"\b5\.\d{1,3}\.\d{1,3}\b|\b55[0-4]\b")
_FREE_TEXT_ADDRESS = re.compile(
    r"<?([A-Za-z0-9._%+'=-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63})>?"
)


@dataclass
class Classification:
    kind: str  # bounce | auto_reply | reply (matched later; unmatched replies become "unmatched")
    bounce_kind: str | None = None
    # Address → "hard" | "soft", in the order the bounce reports them.
    recipients: dict[str, str] = field(default_factory=dict)
    # Final-Recipient → the Original-Recipient the same DSN block names, when they differ:
    # `recipients` reports the address we wrote to, before an alias or forward rewrote it.
    original_recipients: dict[str, str] = field(default_factory=dict)
    # Addresses the report says were delivered (relayed, expanded): not bounced, whatever
    # the report says of its other recipients.
    delivered: frozenset[str] = frozenset()


def classify(parsed: ParsedMessage) -> Classification:
    """Say what kind of message `parsed` is; bounces with each reported address's severity."""
    if _looks_like_bounce(parsed):
        recipients = bounce_recipients(parsed)
        kind = "hard" if "hard" in recipients.values() else "soft"
        if not recipients:
            kind = "hard" if _free_text_severity(parsed) == "hard" else "soft"
        originals = original_recipients(parsed) if parsed.dsn else {}
        delivered = frozenset(
            address
            for recipient in parsed.dsn
            if recipient.action in _DELIVERED
            for address in (recipient.address, recipient.final)
            if address
        )
        return Classification("bounce", kind, recipients, originals, delivered)
    if is_auto_reply(parsed):
        return Classification("auto_reply")
    return Classification("reply")


def _is_dsn(parsed: ParsedMessage) -> bool:
    return parsed.content_type == "multipart/report" and parsed.report_type == "delivery-status"


def _looks_like_bounce(parsed: ParsedMessage) -> bool:
    if _is_dsn(parsed) or parsed.dsn:
        return True
    if "x-failed-recipients" in parsed.headers:
        return True
    if _BOUNCE_SENDERS.match(parsed.from_address):
        return True
    # A bounce comes with the null reverse path; a person writing "undeliverable" does not.
    null_path = parsed.headers.get("return-path", "").strip() in ("<>", "")
    return bool(_BOUNCE_SUBJECTS.search(parsed.subject)) and (
        null_path or "mailer" in parsed.from_address or "daemon" in parsed.from_address
    )


def is_auto_reply(parsed: ParsedMessage) -> bool:
    """RFC 3834 and the de-facto headers, a null Return-Path, or an out-of-office subject."""
    headers = parsed.headers
    if headers.get("auto-submitted", "no").split(";")[0].strip().lower() != "no":
        return True
    if "x-autoreply" in headers or "x-autorespond" in headers:
        return True
    if headers.get("precedence", "").strip().lower() in _PRECEDENCE_AUTO:
        return True
    if headers.get("return-path", "").strip() == "<>":
        return True
    return bool(_AUTO_PHRASES.search(parsed.subject) or _AUTO_OPENINGS.match(parsed.subject))


_DELIVERED = ("delivered", "relayed", "expanded")


def _status_severity(action: str, status: str) -> str:
    # Some MTAs leave Action out, others write "error" (OpenSMTPD); a 5.x.x status alone
    # still means the address is gone. A "failed" with a 4.x.x status gave up on a
    # temporary fault (a full mailbox, a queue that expired): the address may work again.
    if action in ("failed", "error", "") and status.startswith("5"):
        return "hard"
    return "soft"


def bounce_recipients(parsed: ParsedMessage) -> dict[str, str]:
    """Each address the bounce reports → "hard" or "soft" (unknown counts as soft), by the
    address we sent to; an address the report also says was delivered is not listed."""
    found: dict[str, str] = {}
    delivered = {r.address for r in parsed.dsn if r.action in _DELIVERED}
    for recipient in parsed.dsn:
        if recipient.action in _DELIVERED or recipient.address in delivered:
            continue
        severity = _status_severity(recipient.action, recipient.status)
        if found.get(recipient.address) != "hard":
            found[recipient.address] = severity
    if found or parsed.dsn:
        return found
    temporary, permanent = _detector_failures(parsed)
    for address in permanent:
        found[address] = "hard"
    for address in temporary:
        found.setdefault(address, "soft")
    failed_header = parsed.headers.get("x-failed-recipients", "")
    for address in _FREE_TEXT_ADDRESS.findall(failed_header):
        found.setdefault(address.lower(), _free_text_severity(parsed))
    return found


def original_recipients(parsed: ParsedMessage) -> dict[str, str]:
    """Final-Recipient → Original-Recipient for the DSN blocks that carry both and differ."""
    found: dict[str, str] = {}
    for recipient in parsed.dsn:
        if recipient.final and recipient.final != recipient.address:
            found.setdefault(recipient.final, recipient.address)
    return found


def _detector_failures(parsed: ParsedMessage) -> tuple[list[str], list[str]]:
    message = as_email_message(parsed)
    if message is None:
        return [], []
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a detector tripping over a hostile message must not stop the rest
        log.warning("bounce detectors failed on an inbound message", exc_info=True)
        parsed.flag("bounce detectors failed")
        return [], []
    return _addresses(temporary), _addresses(permanent)


def _addresses(values: frozenset[bytes] | frozenset[str]) -> list[str]:
    found = []
    for value in values:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        text = text.strip().strip("<>").lower()
        if "@" in text:
            found.append(text)
    return sorted(found)


def _free_text_severity(parsed: ParsedMessage) -> str:
    """Hard only on a permanent SMTP code in the text; anything unclear is soft."""
    if _DELAY_SUBJECTS.search(parsed.subject):
        return "soft"
    text = parsed.text[:20_000]
    if _SMTP_PERMANENT.search(text):
        return "hard"
    return "soft"
