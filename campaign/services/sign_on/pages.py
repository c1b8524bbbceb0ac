"""A statement's sign-on page: creating it, its settings, and what the public may see.

The page's address carries a random token (`SignOn.token`), the only key to it: no login,
nothing guessable. Who may sign, and when: `accepting` (open, and before the deadline).
What the public sees: the statement's approved signatories as they chose to be published
(`public_signatories`), or only their count. Signatures themselves are handled in
`signatures` (submitting, confirming), `sign_on_moderation` (editors) and
`sign_on_invitations` (partners invited, reminders, the notice after sending).
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from babel import Locale
from babel.dates import format_datetime, get_timezone_name
from flask_babel import get_locale
from flask_babel import gettext as _
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.i18n import current_language
from campaign.letters.countries import CountryNames, load_country_names
from campaign.models import (
    PublishAs,
    Schedule,
    ScheduleKind,
    Signatory,
    SignatoryKind,
    Signature,
    SignatureStatus,
    SignOn,
    SignOnOrder,
    Statement,
    User,
)
from campaign.services.accounts.audit import record_event
from campaign.services.schedules.advocacy_calendar import CalendarError, organisation_zone
from campaign.services.statements import statements


def N_(message: str) -> str:  # gettext's conventional name for "mark, translate later"
    """Mark a string for the catalogues without translating it here."""
    return message


# Stored in English with each new page; shown in the reader's language while unchanged (an
# editor's own wording is data, shown as written).
DEFAULT_CONSENT = N_(
    "I agree that the name I give is published with this statement as I chose above, and "
    "that the organisers keep my e-mail address to confirm my signature and, if I ask, to "
    "tell me when the letter has been sent. My address is never published or shared."
)
MAX_CONSENT_CHARS = 2000


def consent_text(sign_on: SignOn) -> str:
    """The consent words signers read: the default in the reader's language, else as written."""
    if sign_on.consent_text.strip() == DEFAULT_CONSENT:
        return _(DEFAULT_CONSENT)
    return sign_on.consent_text


class SignOnError(ValueError):
    """A sign-on setting cannot be saved as given; `field` names the culprit."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def sign_on_of(statement: Statement) -> SignOn | None:
    return db.session.scalar(select(SignOn).where(SignOn.statement_id == statement.id))


def by_token(token: str) -> SignOn | None:
    """The sign-on page with this address token, or None (callers answer 404 either way)."""
    if not token or len(token) > 64:
        return None
    found = db.session.scalar(select(SignOn).where(SignOn.token == token))
    # The lookup is by index; compare again in constant time so a near-miss takes as long.
    if found is None or not secrets.compare_digest(found.token, token):
        return None
    return found


def open_sign_on(statement: Statement, *, actor: User | None = None) -> SignOn:
    """The statement's sign-on page, created (open, no deadline) if it has none."""
    existing = sign_on_of(statement)
    if existing is not None:
        return existing
    sign_on = SignOn(
        statement_id=statement.id,
        token=secrets.token_urlsafe(24),
        consent_text=DEFAULT_CONSENT,
        created_by_id=actor.id if actor else None,
    )
    db.session.add(sign_on)
    db.session.flush()
    record_event("sign_on.create", target_type="statement", target_id=statement.id, actor=actor)
    return sign_on


def update_settings(
    sign_on: SignOn,
    *,
    is_open: bool,
    deadline: datetime | None,
    shows_names: bool,
    ordering: str,
    reminder_days: int | None,
    consent_text: str,
    actor: User | None = None,
    now: datetime | None = None,
) -> SignOn:
    """Change the page's settings; SignOnError names the field that is wrong."""
    now = now or datetime.now(UTC)
    if deadline is not None and deadline.tzinfo is None:
        raise SignOnError(_("Deadline: give it with its time zone"), "deadline")
    if deadline is not None and is_open and deadline <= now and deadline != sign_on.deadline:
        raise SignOnError(
            _("Deadline: it is in the past; the page would close at once"), "deadline"
        )
    try:
        ordering = SignOnOrder(ordering).value
    except ValueError:
        from campaign.labels import label

        raise SignOnError(
            _(
                "Order: “%(value)s” is not one of: %(choices)s",
                value=ordering,
                choices=", ".join(label(o.value, "sign_on_order") for o in SignOnOrder),
            ),
            "ordering",
        ) from None
    if reminder_days is not None:
        if deadline is None:
            raise SignOnError(
                _("Reminder: a reminder needs a deadline to count from"), "reminder_days"
            )
        if not 1 <= reminder_days <= 60:
            raise SignOnError(_("Reminder: 1 to 60 days before the deadline"), "reminder_days")
    # Empty means the standard wording, which each signer reads in their own language.
    consent = consent_text.strip() or DEFAULT_CONSENT
    if len(consent) > MAX_CONSENT_CHARS:
        raise SignOnError(
            _(
                "Consent: at most %(limit)s characters (not %(length)s)",
                limit=MAX_CONSENT_CHARS,
                length=len(consent),
            ),
            "consent_text",
        )
    if (
        ordering == SignOnOrder.ORGANISATIONS_FIRST.value
        and sign_on.ordering != ordering
        and (statement := db.session.get(Statement, sign_on.statement_id)) is not None
    ):
        # The letters print the list in its stored order: make it the page's order.
        statements.put_organisations_first(statement, actor=actor)
    sign_on.is_open = is_open
    sign_on.deadline = deadline
    sign_on.shows_names = shows_names
    sign_on.ordering = ordering
    sign_on.reminder_days = reminder_days
    sign_on.consent_text = consent
    db.session.flush()
    record_event(
        "sign_on.settings",
        target_type="statement",
        target_id=sign_on.statement_id,
        actor=actor,
        detail={
            "is_open": is_open,
            "deadline": deadline.isoformat() if deadline else None,
            "shows_names": shows_names,
            "ordering": ordering,
            "reminder_days": reminder_days,
        },
    )
    sync_reminder(sign_on, now=now)
    return sign_on


def deadline_zone() -> str:
    """The zone a deadline is read in: the organisation's (CAMPAIGN_TIMEZONE), else UTC."""
    try:
        return organisation_zone().key
    except CalendarError:
        return "UTC"


def deadline_words(moment: datetime, language: str | None = None) -> str:
    """A deadline as its reader writes it, in the organisation's zone, the zone named:
    "6 December 2026, 18:00 (Central European Standard Time)", "6 декабря 2026 г., 18:00
    (Центральная Европа, стандартное время)". `language` defaults to the current locale."""
    locale = Locale.parse(language) if language else (get_locale() or Locale.parse("en"))
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(deadline_zone())
    local = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(zone)
    pattern = f"{locale.date_formats['long'].pattern}, {locale.time_formats['short'].pattern}"
    shown = format_datetime(local, pattern, tzinfo=zone, locale=locale)
    return f"{shown} ({get_timezone_name(local, 'long', locale=locale)})"


# --- The reminder before the deadline (its e-mails: invitations.py) ------------------------


def organisation_zone_name() -> str:
    return deadline_zone()


def reminder_due(sign_on: SignOn) -> datetime | None:
    """When the reminder goes: `reminder_days` before the deadline, at its local time of day."""
    if sign_on.deadline is None or not sign_on.reminder_days:
        return None
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(organisation_zone_name())
    # Wall-clock arithmetic in the zone: a deadline at 18:00 is reminded at 18:00, even
    # across a change of clocks in between.
    local = sign_on.deadline.astimezone(zone)
    return (local - timedelta(days=sign_on.reminder_days)).astimezone(UTC)


def reminder_of(sign_on: SignOn) -> Schedule | None:
    """The page's reminder schedule, if it ever had one."""
    for schedule in db.session.scalars(
        select(Schedule)
        .where(Schedule.kind == ScheduleKind.SIGN_ON_REMINDER.value)
        .order_by(Schedule.id)
    ):
        if (schedule.rule or {}).get("sign_on_id") == sign_on.id:
            return schedule
    return None


def sync_reminder(sign_on: SignOn, *, now: datetime | None = None) -> Schedule | None:
    """Keep the page's one reminder schedule in step with its deadline and reminder days.

    No deadline, no reminder days, a closed page, or a reminder time already past: the
    schedule (if any) is disabled, not deleted, so the scheduler's record of it stays.
    """
    now = now or datetime.now(UTC)
    schedule = reminder_of(sign_on)
    due = reminder_due(sign_on)
    if due is None or due <= now or not sign_on.is_open:
        if schedule is not None:
            schedule.is_enabled = False
            schedule.next_run_at = None
            db.session.flush()
        return schedule
    statement = db.session.get(Statement, sign_on.statement_id)
    name = f"Sign-on reminder: {statement.title if statement else sign_on.statement_id}"
    if schedule is None:
        schedule = Schedule(kind=ScheduleKind.SIGN_ON_REMINDER.value)
        db.session.add(schedule)
    schedule.name = name[:300]
    schedule.timezone = organisation_zone_name()
    schedule.rule = {"sign_on_id": sign_on.id, "days_before": sign_on.reminder_days}
    schedule.next_run_at = due
    schedule.is_enabled = True
    db.session.flush()
    return schedule


def closed_reason(sign_on: SignOn, now: datetime | None = None) -> str:
    """Why the page takes no signatures now ("" when it does), in the signer's terms."""
    now = now or datetime.now(UTC)
    if not sign_on.is_open:
        return _("This statement is closed for signatures.")
    if sign_on.deadline is not None and now >= sign_on.deadline:
        return _(
            "The deadline to sign this statement has passed (%(deadline)s).",
            deadline=deadline_words(sign_on.deadline),
        )
    return ""


def accepting(sign_on: SignOn, now: datetime | None = None) -> bool:
    return closed_reason(sign_on, now) == ""


# --- what the public sees ----------------------------------------------------------------


@dataclass(frozen=True)
class PublicSignatory:
    """One approved signer as they chose to be published (never their e-mail address)."""

    kind: str
    name: str  # "" when withheld
    detail: str  # acronym, role, organisation, country as published
    is_withheld: bool


def _published(signatory: Signatory, language: str, countries: CountryNames) -> PublicSignatory:
    if signatory.publish_as == PublishAs.WITHHELD.value:
        return PublicSignatory(signatory.kind, "", "", True)
    if signatory.publish_as == PublishAs.ORGANISATION_ONLY.value:
        if signatory.kind == SignatoryKind.ORGANISATION.value:
            return PublicSignatory(signatory.kind, signatory.name, "", False)
        if not signatory.organisation:
            # A person who asked for their organisation only, and gave none: nothing of
            # theirs may show (the letters print the withheld line for them too).
            return PublicSignatory(SignatoryKind.INDIVIDUAL.value, "", "", True)
        return PublicSignatory(SignatoryKind.ORGANISATION.value, signatory.organisation, "", False)
    parts: list[str] = []
    if signatory.kind == SignatoryKind.ORGANISATION.value:
        if signatory.acronym:
            parts.append(signatory.acronym)
    else:
        parts.extend(p for p in (signatory.role, signatory.organisation) if p)
    if signatory.country:
        # As the letters print it: the table's name in the reader's language ("Belgium"
        # typed, "Belgique" read); text that names no country stays as the signer wrote it.
        parts.append(countries.printed(signatory.country, language))
    return PublicSignatory(signatory.kind, signatory.name, ", ".join(parts), False)


def ordered_signatories(statement: Statement, ordering: str) -> list[Signatory]:
    """The statement's signatories in the page's order: organisations then individuals
    (each in the order they were approved), or the editors' custom order."""
    signatories = sorted(statement.signatories, key=lambda s: (s.position, s.id))
    if ordering == SignOnOrder.ORGANISATIONS_FIRST.value:
        signatories.sort(key=lambda s: 0 if s.kind == SignatoryKind.ORGANISATION.value else 1)
    return signatories


def public_signatories(sign_on: SignOn, language: str | None = None) -> list[PublicSignatory]:
    """The approved signers as the public page lists them, countries named in `language`
    (the reader's; by default the language this request or job reads in)."""
    statement = db.session.get(Statement, sign_on.statement_id)
    if statement is None:
        return []
    language = language or current_language()
    countries = load_country_names()
    return [
        _published(s, language, countries) for s in ordered_signatories(statement, sign_on.ordering)
    ]


def signature_counts(sign_on: SignOn) -> dict[str, int]:
    """How many signatures are in each state (for the editors' page)."""
    counts = dict.fromkeys((status.value for status in SignatureStatus), 0)
    for status, count in db.session.execute(
        select(Signature.status, func.count())
        .where(Signature.sign_on_id == sign_on.id)
        .group_by(Signature.status)
    ):
        counts[status] = int(count)
    return counts


# --- keys for spotting the same signer twice --------------------------------------------

_NOT_WORD = re.compile(r"[^\w]+", re.UNICODE)
# Words that make no difference between two spellings of one organisation's name.
_FILLER = frozenset({"the", "la", "le", "les", "l", "of", "de", "du", "des", "and", "et"})


def name_key(name: str) -> str:
    """The name folded for comparison: no case, accents, punctuation or filler words.

    "Association for Human Rights in Central Asia" and "association for human-rights in
    central asia." give the same key; an editor still decides whether to merge.
    """
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    words = [w for w in _NOT_WORD.sub(" ", plain).split() if w not in _FILLER]
    return " ".join(words)[:300]


def email_key(address: str) -> str:
    return address.strip().lower()[:320]


def as_signatory_values(signature: Signature) -> dict[str, Any]:
    """The Signatory fields a signature becomes when approved."""
    return {
        "kind": signature.kind,
        "name": signature.name,
        "acronym": signature.acronym,
        "role": signature.role,
        "organisation": signature.organisation,
        "country": signature.country,
        "exile_country": signature.exile_country,
        "publish_as": signature.publish_as,
    }
