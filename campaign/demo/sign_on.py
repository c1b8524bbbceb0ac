"""Demo sign-on: the joint letter takes signatures at its own address, as partners would sign.

Called by `load_demo` once the statements, lists and campaigns exist. The deadline is three
weeks from today (18:00 in the organisation's zone) with a reminder 7 days before, so the
page is open and the reminder ahead whenever the demo is loaded. Three signatures are
approved (one published as "withheld"), one waits for an editor, one was never confirmed,
and a few partner organisations are invited (their e-mails counted as sent days ago: the
demo writes history, it sends nothing).

The page, its settings and the approvals go through the services an editor's clicks do.
The signatures themselves and the invitations are written directly, as the past: the only
service that records a signature is the public form (it counts the signer in Redis, which
`campaign dev` starts after the demo, and e-mails a link whose secret only that e-mail
carries), and `invite` asks a whole list or segment and e-mails each invitation, while
these four partners were invited, and e-mailed, days ago.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from campaign.extensions import db
from campaign.models import (
    Contact,
    PublishAs,
    SignatoryKind,
    Signature,
    SignatureStatus,
    SignOn,
    SignOnInvitation,
    SignOnOrder,
    Statement,
    User,
)
from campaign.models.contact import RoleType
from campaign.services.sign_on import moderation
from campaign.services.sign_on import pages as sign_on
from campaign.services.sign_on.invitations import sign_on_address
from campaign.services.sign_on.pages import organisation_zone_name

JOINT_LETTER_TITLE = "Joint letter ahead of the EU\u2013Central Asia summit"
DEADLINE_IN = timedelta(days=21)
DEADLINE_TIME = time(18, 0)
REMINDER_DAYS = 7
INVITED = 4

# Fictional partners. The withheld one is an in-country group: its name is never printed.
_APPROVED = (
    {
        "kind": SignatoryKind.ORGANISATION.value,
        "name": "Central Asian Bureau for Human Rights Monitoring",
        "acronym": "CABHRM",
        "country": "Kyrgyzstan",
        "publish_as": PublishAs.FULL.value,
        "email": "office@cabhrm.example.org",
        "language": "en",
        "wants_notice": True,
    },
    {
        "kind": SignatoryKind.ORGANISATION.value,
        "name": "Observatoire des libertés en Asie centrale",
        "acronym": "OLAC",
        "country": "France",
        "publish_as": PublishAs.FULL.value,
        "email": "contact@olac.example.org",
        "language": "fr",
        "wants_notice": False,
    },
    {
        "kind": SignatoryKind.ORGANISATION.value,
        "name": "Committee for Prisoners of Conscience",
        "country": "Turkmenistan",
        "publish_as": PublishAs.WITHHELD.value,
        "email": "cpc.secure@example.org",
        "language": "ru",
        "wants_notice": True,
    },
)
_WAITING = {
    "kind": SignatoryKind.INDIVIDUAL.value,
    "name": "Aigerim Sarsenova",
    "role": "Lawyer",
    "organisation": "Almaty Bar Association",
    "country": "Kazakhstan",
    "publish_as": PublishAs.FULL.value,
    "email": "a.sarsenova@example.org",
    "language": "ru",
    "wants_notice": True,
}
_UNCONFIRMED = {
    "kind": SignatoryKind.ORGANISATION.value,
    "name": "Tajik Human Rights Network",
    "country": "Tajikistan",
    "exile_country": "Germany",
    "publish_as": PublishAs.ORGANISATION_ONLY.value,
    "email": "network@thrn.example.org",
    "language": "en",
    "wants_notice": False,
}


@dataclass(frozen=True)
class DemoSignOn:
    sign_on_id: int
    address: str


def _signature(sign_on_row: SignOn, values: dict[str, object], status: str) -> Signature:
    now = datetime.now(UTC)
    email = str(values["email"])
    fields = {key: value for key, value in values.items() if key != "email"}
    # The past: signed (and confirmed) on the public form before the demo was loaded.
    signature = Signature(
        sign_on_id=sign_on_row.id,
        email=email,
        email_key=sign_on.email_key(email),
        name_key=sign_on.name_key(str(values["name"])),
        status=status,
        confirmed_at=None if status == SignatureStatus.UNCONFIRMED.value else now,
        **fields,
    )
    db.session.add(signature)
    db.session.flush()
    return signature


def _deadline() -> datetime:
    zone = ZoneInfo(organisation_zone_name())
    day = date.today() + DEADLINE_IN
    return datetime.combine(day, DEADLINE_TIME, tzinfo=zone).astimezone(UTC)


def load_demo_sign_on(actor: User | None = None) -> DemoSignOn | None:
    """Open the joint letter's sign-on page with signatures and invitations; flushes only."""
    statement = db.session.scalar(
        select(Statement).where(Statement.title == JOINT_LETTER_TITLE).order_by(Statement.id)
    )
    if statement is None:
        return None
    page = sign_on.open_sign_on(statement, actor=actor)
    sign_on.update_settings(
        page,
        is_open=True,
        deadline=_deadline(),
        shows_names=True,
        ordering=SignOnOrder.ORGANISATIONS_FIRST.value,
        reminder_days=REMINDER_DAYS,
        consent_text=page.consent_text or sign_on.DEFAULT_CONSENT,
        actor=actor,
    )
    partners = db.session.scalars(
        select(Contact)
        .where(Contact.role_type == RoleType.NGO.value)
        .order_by(Contact.id)
        .limit(INVITED)
    ).all()
    for number, values in enumerate(_APPROVED):
        approved = dict(values)
        if number == 0 and partners:
            # The first invited partner has signed: the invitations page shows it.
            approved["email"] = partners[0].email
        signature = _signature(page, approved, SignatureStatus.CONFIRMED.value)
        # An editor's approval: the signature becomes a signatory (a new statement version).
        moderation.approve(signature, actor=actor)
    _signature(page, dict(_WAITING), SignatureStatus.CONFIRMED.value)
    _signature(page, dict(_UNCONFIRMED), SignatureStatus.UNCONFIRMED.value)
    now = datetime.now(UTC)
    for partner in partners:
        # The past: invited, and the invitation e-mailed, three days before the demo.
        db.session.add(
            SignOnInvitation(
                sign_on_id=page.id,
                contact_id=partner.id,
                email=partner.email,
                invited_at=now - timedelta(days=3),
            )
        )
    db.session.flush()
    return DemoSignOn(page.id, sign_on_address(page))


def demo_sign_on_line() -> str:
    """What the demo commands print about the sign-on page ("" when there is none)."""
    page = db.session.scalar(select(SignOn).order_by(SignOn.id).limit(1))
    if page is None:
        return ""
    statement = db.session.get(Statement, page.statement_id)
    title = statement.title if statement else f"statement {page.statement_id}"
    return f"sign-on page of “{title}”: {sign_on_address(page)}"
