"""The demo's finished campaign: launched, marked sent, then answered, bounced and auto-replied.

Nothing is sent: the letters are composed as the sending path composes them and recorded
as sent a few days ago. The answers are raw RFC 5322 messages (campaign/demo/data/
inbound_mail.txt) fed through record_inbound, the path `campaign inbound` and the IMAP
poller take, so the inbox and the dashboard show what real mail would produce.
"""

from __future__ import annotations

import hashlib
import random
import re
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.header import Header
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from importlib import resources
from string import Template

from sqlalchemy import select

from campaign.extensions import db
from campaign.inbound.reply_token import reply_address
from campaign.models import (
    Campaign,
    CampaignStatus,
    Contact,
    Delivery,
    DeliveryStatus,
    StatementVersion,
    User,
    utcnow,
)
from campaign.queue import discard_pending_jobs
from campaign.services.replies.intake import record_inbound
from campaign.services.sending import campaigns
from campaign.services.sending.deliveries import SEND_JOB
from campaign.services.sending.unsubscribe import unsubscribe_url
from campaign.services.statements.complete_letters import compose_letter
from campaign.services.statements.salutation_rules import current_rule_set

AUDIENCE = "EU officials"
# Launched this many days before the demo is loaded, so the chart has several days.
DAYS_AGO = 4
_SECTION = re.compile(r"^=== (?P<name>[\w.]+) ===$", re.M)
# Subject prefixes of the out-of-office answers, as mail programs write them.
_AUTO_SUBJECT = {
    "en": "Automatic reply: ",
    "fr": "Réponse automatique : ",
    "ru": "Автоматический ответ: ",
    "de": "Abwesenheitsnotiz: ",
}
# (template, hours after the launch): human replies spread over the days since.
_REPLIES = [
    ("reply.en.short", 1.5),
    ("reply.en.thanks", 5),
    ("reply.fr", 22),
    ("reply.en.briefing", 27),
    ("reply.ru", 30),
    ("reply.html.hostile", 46),
    ("reply.en.question", 52),
    ("reply.de", 75),
    ("reply.en.thanks", 80),
]
_AUTO_REPLIES = [
    ("auto.en", 0.2),
    ("auto.fr", 0.5),
    ("auto.ru", 3),
    ("auto.de", 20),
    ("auto.en", 26),
]
_BOUNCES = [("bounce.postfix_hard", 0.1), ("bounce.exchange_hard", 0.3), ("bounce.postfix_soft", 4)]


@dataclass
class FinishedCampaign:
    campaign_id: int
    sent: int
    # Inbound messages recorded, per kind (reply, auto_reply, bounce, unmatched).
    inbound: dict[str, int] = field(default_factory=dict)


def mail_templates() -> dict[str, str]:
    """The sections of inbound_mail.txt by name."""
    text = resources.files("campaign.demo.data").joinpath("inbound_mail.txt").read_text("utf-8")
    found: dict[str, str] = {}
    matches = list(_SECTION.finditer(text))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        found[match["name"]] = text[match.end() + 1 : end].rstrip("\n") + "\n"
    return found


def create_finished_campaign(*, actor: User | None, seed: int) -> FinishedCampaign | None:
    """Launch the joint letter to the EU officials list, mark it sent days ago, record answers."""
    from campaign.models import Statement
    from campaign.services.contacts.lists import find_list

    statement = db.session.scalar(select(Statement).order_by(Statement.id).limit(1))
    audience = find_list(AUDIENCE)
    if statement is None or audience is None:
        return None
    campaign = campaigns.create_campaign(
        statement,
        name=f"{statement.title} (sent)",
        audience=campaigns.AudienceSpec((f"list:{audience.id}",)),
        # Without the PDF: composing seventy letters stays well under a second.
        is_pdf_attached=False,
        actor=actor,
    )
    if not campaigns.launch_campaign(campaign, actor=actor):
        return None
    _drop_send_jobs(campaign.id)
    rnd = random.Random(seed)  # noqa: S311 (repeatable demo data, not a secret)
    launched = (utcnow() - timedelta(days=DAYS_AGO)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    sent = _mark_sent(campaign, launched, rnd)
    result = FinishedCampaign(campaign.id, len(sent))
    _record_answers(campaign, sent, launched, rnd, result)
    return result


def _drop_send_jobs(campaign_id: int) -> None:
    # The launch queued send jobs for after the commit; the demo sends nothing, and a job
    # would need a Redis server while the demo loads.
    discard_pending_jobs(db.session(), SEND_JOB, campaign_id)


@dataclass(frozen=True)
class _Sent:
    delivery: Delivery
    name: str
    subject: str


def _mark_sent(campaign: Campaign, launched: datetime, rnd: random.Random) -> list[_Sent]:
    """Compose each queued letter as the sender would and record it sent in the launch hour."""
    rows = db.session.execute(
        select(Delivery, Contact)
        .join(Contact, Contact.id == Delivery.contact_id)
        .where(
            Delivery.campaign_id == campaign.id,
            Delivery.status == DeliveryStatus.QUEUED.value,
        )
        .order_by(Delivery.id)
    ).all()
    offsets = sorted(rnd.randint(5, 3300) for _ in rows)
    rules = current_rule_set()
    version = db.session.get(StatementVersion, campaign.statement_version_id)
    sent: list[_Sent] = []
    for (delivery, contact), seconds in zip(rows, offsets, strict=True):
        composed = compose_letter(
            version,
            contact,
            rules=rules,
            sender=campaign.from_address,
            reply_to=campaign.reply_to or reply_address(delivery.id),
            message_id=delivery.message_id,
            extra_headers={
                "List-Unsubscribe": f"<{unsubscribe_url(delivery.unsubscribe_token)}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
            attach_pdf=False,
        )
        # The past: no service marks a letter sent days ago (the sender marks it as it sends).
        delivery.attempts = 1
        delivery.next_attempt_at = None
        delivery.language = composed.letter.language
        if composed.message is None:
            delivery.status = DeliveryStatus.FAILED.value
            delivery.reason = "letter_error"
            delivery.last_reply = composed.error
            continue
        delivery.status = DeliveryStatus.SENT.value
        delivery.sent_at = launched + timedelta(seconds=seconds)
        delivery.last_code = 250
        delivery.last_reply = "250 2.0.0 Ok: queued (demo: nothing was sent)"
        delivery.message_sha256 = hashlib.sha256(composed.message).hexdigest()
        delivery.message_blob = zlib.compress(composed.message, 1)
        sent.append(_Sent(delivery, contact.display_name, composed.letter.subject))
    # The past as well: launched and finished days before the demo was loaded.
    campaign.launched_at = launched
    campaign.status = CampaignStatus.FINISHED.value
    campaign.finished_at = max(
        (s.delivery.sent_at for s in sent if s.delivery.sent_at), default=launched
    )
    db.session.flush()
    return sent


def _record_answers(
    campaign: Campaign,
    sent: list[_Sent],
    launched: datetime,
    rnd: random.Random,
    result: FinishedCampaign,
) -> None:
    templates = mail_templates()
    unused = list(sent)
    rnd.shuffle(unused)

    def take(language: str = "") -> _Sent | None:
        # A recipient who reads the answer's language, when there is one left.
        for index, candidate in enumerate(unused):
            if not language or candidate.delivery.language == language:
                return unused.pop(index)
        return unused.pop(0) if unused else None

    messages: list[bytes] = []
    for name, hours in _BOUNCES:
        target = take()
        if target:
            messages.append(_bounce(templates[name], campaign, target, launched + _h(hours)))
    auto_repliers: list[_Sent] = []
    for name, hours in _AUTO_REPLIES:
        target = take(name.rpartition(".")[2])
        if target:
            auto_repliers.append(target)
            messages.append(
                _auto_reply(templates[name], name[-2:], campaign, target, launched + _h(hours))
            )
    # Someone back in the office answers in person after their out-of-office: still a reply.
    returning = auto_repliers[:1]
    for index, (name, hours) in enumerate(_REPLIES):
        language = name.split(".")[1] if name.count(".") == 1 else "en"
        target = returning.pop() if index == len(_REPLIES) - 1 and returning else take(language)
        if target:
            messages.append(_reply(templates[name], campaign, target, launched + _h(hours)))
    messages.append(_unmatched(templates["unmatched"], campaign, launched + _h(33)))
    for raw in messages:
        recorded = record_inbound(raw)
        kind = recorded.kind
        result.inbound[kind] = result.inbound.get(kind, 0) + 1


def _h(hours: float) -> timedelta:
    return timedelta(hours=hours)


def _fill(template: str, target: _Sent | None, **values: str) -> str:
    names = {"recipient_name": target.name if target else "", **values}
    return Template(template).substitute(names)


def _answer(
    campaign: Campaign, target: _Sent, subject: str, at: datetime, domain: str
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = formataddr((target.name, target.delivery.email))
    message["To"] = campaign.from_address
    message["Subject"] = subject
    message["Date"] = format_datetime(at)
    message["Message-ID"] = make_msgid(domain=domain)
    message["In-Reply-To"] = target.delivery.message_id
    message["References"] = target.delivery.message_id
    return message


def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "example.org"


def _reply(template: str, campaign: Campaign, target: _Sent, at: datetime) -> bytes:
    message = _answer(campaign, target, f"Re: {target.subject}", at, _domain(target.delivery.email))
    body = _fill(template, target)
    if body.lstrip().startswith("<html"):
        message.set_content(body, subtype="html")
    else:
        message.set_content(body)
    return message.as_bytes()


def _auto_reply(
    template: str, language: str, campaign: Campaign, target: _Sent, at: datetime
) -> bytes:
    subject = _AUTO_SUBJECT[language] + target.subject
    message = _answer(campaign, target, subject, at, _domain(target.delivery.email))
    # Each mail program marks its out-of-office differently; the classifier knows them all.
    if language in ("en", "ru"):
        message["Auto-Submitted"] = "auto-replied"
    elif language == "fr":
        message["X-Autoreply"] = "yes"
    message.set_content(_fill(template, target))
    return message.as_bytes()


def _unmatched(template: str, campaign: Campaign, at: datetime) -> bytes:
    message = EmailMessage()
    message["From"] = formataddr(("A reader", "reader@unknown.example"))
    message["To"] = campaign.from_address
    message["Subject"] = "Your statement about the summit"
    message["Date"] = format_datetime(at)
    message["Message-ID"] = make_msgid(domain="unknown.example")
    message.set_content(_fill(template, None))
    return message.as_bytes()


def _bounce(template: str, campaign: Campaign, target: _Sent, at: datetime) -> bytes:
    mta_id = hashlib.sha256(f"{target.delivery.message_id}{at}".encode()).hexdigest()[:12].upper()
    text = _fill(
        template,
        target,
        date=format_datetime(at),
        office=campaign.from_address,
        office_email=parseaddr(campaign.from_address)[1],
        recipient=target.delivery.email,
        letter_id=target.delivery.message_id,
        subject=Header(target.subject, "utf-8").encode(),
        mta_id=mta_id,
        boundary=f"{mta_id}.demo/mail.hro-demo.example.org",
    )
    return text.replace("\n", "\r\n").encode("utf-8")
