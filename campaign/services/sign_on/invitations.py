"""Partners invited to sign, the one reminder before the deadline, and the notice after sending.

Every e-mail here is a notice (campaign.services.sending.notices) sent by a worker after the commit
that asked for it, and each claims its row before it goes, so nobody gets one twice:
- an invitation claims `SignOnInvitation.invited_at`;
- the reminder claims `SignOnInvitation.reminded_at`; the scheduler fires it once, from ONE
  schedule per sign-on page (kind sign_on_reminder) that `pages.sync_reminder` keeps at the
  deadline minus `reminder_days`, at the deadline's time of day in the organisation's zone;
- the notice after sending claims `Signature.notified_at`: when a campaign is launched, each
  approved signer who asked, and whose signatory is in the version the campaign froze, is
  told when and to whom (by role and institution, never an address) with the letter as PDF.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parseaddr
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from flask_babel import force_locale, ngettext
from flask_babel import gettext as _
from sqlalchemy import Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from campaign.extensions import db
from campaign.labels import LABELS, label
from campaign.letters.salutations import primary_language
from campaign.letters.signatories import withheld_text
from campaign.models import (
    Campaign,
    Contact,
    Delivery,
    DeliveryStatus,
    Schedule,
    Signature,
    SignatureStatus,
    SignOn,
    SignOnInvitation,
    Statement,
    StatementVersion,
    Suppression,
    User,
)
from campaign.models.contact import RiskLevel, RoleType
from campaign.services.accounts.audit import record_event
from campaign.services.backups.hold import SENDING_HELD, sending_is_held
from campaign.services.contacts import suppressions
from campaign.services.privacy import erased_addresses
from campaign.services.sending.campaigns import AudienceSpec, CampaignError, audience_query
from campaign.services.sending.notices import (
    Notice,
    build_message,
    queue_notice,
    sender_address,
)
from campaign.services.sending.unsubscribe import public_url
from campaign.services.sign_on.pages import (
    closed_reason,
    deadline_words,
    deadline_zone,
    email_key,
    sign_on_of,
)
from campaign.services.statements.complete_letters import compose_letter

INVITATION = "sign_on_invitation"
REMINDER = "sign_on_reminder"
SENT = "sign_on_sent"
# The languages these e-mails are written in; any other reader gets English.
LANGUAGES = ("en", "fr", "ru")
# A signer who has done anything beyond an unconfirmed form is not reminded to sign: an
# approved, waiting, merged or even rejected signer has answered the invitation.
ANSWERED = (
    SignatureStatus.CONFIRMED.value,
    SignatureStatus.APPROVED.value,
    SignatureStatus.MERGED.value,
    SignatureStatus.REJECTED.value,
)
# Recipients at risk are counted in the notice after sending, never described.
_UNDESCRIBED_RISKS = (RiskLevel.ELEVATED.value, RiskLevel.HIGH.value)
# The notice lists at most this many distinct role/institution lines, then "and N more".
MAX_RECIPIENT_LINES = 60


class InvitationError(ValueError):
    """Invitations cannot be sent as asked; `field` names the form field at fault."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def sign_on_address(sign_on: SignOn, language: str = "") -> str:
    """The public page's absolute address (what invitations and the CLI give out); with a
    language, the page opens in it whatever the reader's browser says."""
    address = f"{public_url()}/sign/{sign_on.token}"
    return f"{address}?{urlencode({'lang': language})}" if language else address


# --- invitations -------------------------------------------------------------------------


@dataclass(frozen=True)
class InviteResult:
    invited: int  # new invitations, each e-mailed after the commit
    already: int  # contacts of the audience invited before: not e-mailed again
    suppressed: int  # on the suppression list: not invited


_invitations: Table = SignOnInvitation.__table__
_INSERT_NEW = {
    name: dialect.insert(_invitations)
    .on_conflict_do_nothing(index_elements=["sign_on_id", "contact_id"])
    .returning(_invitations.c.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def _is_suppressed_clause() -> Any:
    return Contact.email_key.in_(select(Suppression.email_key))


def invite(sign_on: SignOn, audience_key: str, actor: User | None = None) -> InviteResult:
    """Invite the contacts of a list or segment to sign; each contact once, ever."""
    if sending_is_held():
        raise InvitationError(str(SENDING_HELD), "audience")
    reason = closed_reason(sign_on)
    if reason:
        raise InvitationError(
            _(
                "Audience: nobody can be invited, the page takes no signatures. %(reason)s",
                reason=reason,
            ),
            "audience",
        )
    if not audience_key:
        raise InvitationError(_("Audience: choose a list or segment to invite"), "audience")
    try:
        query = audience_query(AudienceSpec((audience_key,)))
    except CampaignError:
        raise InvitationError(
            _(
                "Audience: “%(audience)s” is not a list or segment (it may have been deleted)",
                audience=audience_key,
            ),
            "audience",
        ) from None
    try:
        erased = erased_addresses.erased_key_test()
    except erased_addresses.ErasureKeyMissing as error:
        raise InvitationError(str(error), "audience") from None
    members = [
        (contact_id, email, is_suppressed or (erased is not None and erased(key)))
        for contact_id, email, is_suppressed, key in db.session.execute(
            query.with_only_columns(
                Contact.id, Contact.email, _is_suppressed_clause(), Contact.email_key
            ).order_by(Contact.id)
        )
    ]
    insert = _INSERT_NEW[db.session.get_bind().dialect.name]
    now = datetime.now(UTC)
    invited = already = suppressed = 0
    for contact_id, email, is_suppressed in members:
        if is_suppressed:
            suppressed += 1
            continue
        # Inserted one by one, skipping a contact already there: two editors inviting the
        # same list at once add each contact once and e-mail them once.
        new_id = db.session.execute(
            insert,
            {"sign_on_id": sign_on.id, "contact_id": contact_id, "email": email, "created_at": now},
        ).scalar()
        if new_id is None:
            already += 1
            continue
        invited += 1
        queue_notice(INVITATION, int(new_id))
    record_event(
        "sign_on.invite",
        target_type="statement",
        target_id=sign_on.statement_id,
        actor=actor,
        detail={
            "audience": audience_key,
            "invited": invited,
            "already": already,
            "suppressed": suppressed,
        },
    )
    return InviteResult(invited, already, suppressed)


@dataclass(frozen=True)
class Invitee:
    invitation: SignOnInvitation
    contact_name: str
    signature_status: str  # "" when they have not signed


# The state shown for an invitee with several signatures (two names, a duplicate …).
_STATUS_RANK = {
    SignatureStatus.APPROVED.value: 5,
    SignatureStatus.CONFIRMED.value: 4,
    SignatureStatus.MERGED.value: 3,
    SignatureStatus.REJECTED.value: 2,
    SignatureStatus.UNCONFIRMED.value: 1,
}


def _statuses_by_email(sign_on: SignOn) -> dict[str, str]:
    best: dict[str, str] = {}
    for key, status in db.session.execute(
        select(Signature.email_key, Signature.status).where(Signature.sign_on_id == sign_on.id)
    ):
        if _STATUS_RANK.get(status, 0) > _STATUS_RANK.get(best.get(key, ""), 0):
            best[key] = status
    return best


def invitees(sign_on: SignOn) -> list[Invitee]:
    """Everyone invited, with whether they were e-mailed, reminded and have signed."""
    statuses = _statuses_by_email(sign_on)
    rows = db.session.execute(
        select(SignOnInvitation, Contact)
        .join(Contact, Contact.id == SignOnInvitation.contact_id)
        .where(SignOnInvitation.sign_on_id == sign_on.id)
        .order_by(SignOnInvitation.id)
    ).all()
    return [
        Invitee(invitation, contact.display_name, statuses.get(email_key(invitation.email), ""))
        for invitation, contact in rows
    ]


def _has_answered(sign_on: SignOn, address: str) -> bool:
    found = db.session.scalar(
        select(func.count())
        .select_from(Signature)
        .where(
            Signature.sign_on_id == sign_on.id,
            Signature.email_key == email_key(address),
            Signature.status.in_(ANSWERED),
        )
    )
    return bool(found)


def _is_suppressed(address: str) -> bool:
    # The suppression list's own check: plain entries and erased people's keyed hashes.
    return suppressions.is_suppressed(address)


# --- the reminder schedule -----------------------------------------------------------------


def invitations_to_remind(sign_on: SignOn) -> list[SignOnInvitation]:
    """Invitees e-mailed, not reminded yet, who have not answered."""
    answered = {
        key
        for key in db.session.scalars(
            select(Signature.email_key).where(
                Signature.sign_on_id == sign_on.id, Signature.status.in_(ANSWERED)
            )
        )
    }
    pending = db.session.scalars(
        select(SignOnInvitation)
        .where(
            SignOnInvitation.sign_on_id == sign_on.id,
            SignOnInvitation.invited_at.is_not(None),
            SignOnInvitation.reminded_at.is_(None),
            # No reminder to a contact moved to the trash since the invitation.
            SignOnInvitation.contact_id.in_(select(Contact.id).where(Contact.deleted_at.is_(None))),
        )
        .order_by(SignOnInvitation.id)
    )
    return [inv for inv in pending if email_key(inv.email) not in answered]


def fire_sign_on_reminder(schedule: Schedule, due_at: datetime, now: datetime) -> tuple[str, None]:
    """The scheduler's action: queue the reminder for each invitee who has not signed.

    The e-mails go after the tick commits (notices), each claimed then: a tick that fails
    to commit sends nothing, and one run twice reminds nobody twice.
    """
    sign_on = db.session.get(SignOn, int((schedule.rule or {}).get("sign_on_id") or 0))
    if sign_on is None:
        return "the sign-on page no longer exists: nobody reminded", None
    reason = closed_reason(sign_on, now)
    if reason:
        return f"nobody reminded: {reason}", None
    pending = invitations_to_remind(sign_on)
    for invitation in pending:
        queue_notice(REMINDER, invitation.id)
    plural = "" if len(pending) == 1 else "s"
    return f"reminder e-mailed to {len(pending)} invitee{plural} who have not signed", None


# --- the e-mails' language and words ----------------------------------------------------------


def email_language(wanted: list[str], statement: Statement) -> str:
    """The first of the reader's languages that the statement has and we write in; else en."""
    available = {primary_language(tag) for tag in statement.languages}
    for tag in wanted:
        primary = primary_language(tag)
        if primary in LANGUAGES and primary in available:
            return primary
    return "en"


def _day(value: date, language: str) -> str:
    from campaign.letters.formatting import format_date

    return format_date(value, language)


def _organisation() -> str:
    from campaign.mail import organisation_name

    return organisation_name()


def _recipients_count(count: int) -> str:
    return ngettext("%(num)d recipient", "%(num)d recipients", count)


def _more(count: int) -> str:
    return ngettext("and %(num)d more", "and %(num)d more", count)


def _unnamed(count: int) -> str:
    return ngettext("%(num)d other recipient", "%(num)d other recipients", count)


def recipient_description(contact: Contact) -> str:
    """A recipient by role and institution ("Ambassador, Embassy of …"); never a name or address."""
    described = contact.role_type in LABELS["role_type"] and contact.role_type != RoleType.OTHER
    role = " ".join(contact.position_title.split()) or (
        label(contact.role_type, "role_type") if described else ""
    )
    institution = " ".join(contact.organisation.split())
    return ", ".join(part for part in (role, institution) if part)


# --- notice builders -------------------------------------------------------------------------


def _claim(model: Any, column: str, row_id: int) -> bool:
    """Set `column` to now on the row if it is still empty; True if this call set it."""
    moved = db.session.execute(
        update(model)
        .where(model.id == row_id, getattr(model, column).is_(None))
        .values({column: datetime.now(UTC)})
        .execution_options(synchronize_session=False)
    )
    return int(getattr(moved, "rowcount", 0) or 0) == 1


def _unclaim(model: Any, column: str, row_id: int) -> Callable[[], None]:
    """What undoes `_claim` when the mail server refuses the e-mail (notices retries it)."""

    def release() -> None:
        db.session.execute(
            update(model)
            .where(model.id == row_id)
            .values({column: None})
            .execution_options(synchronize_session=False)
        )

    return release


def _invitation_parts(invitation_id: int) -> tuple[SignOnInvitation, SignOn, Statement, str] | None:
    invitation = db.session.get(SignOnInvitation, invitation_id)
    if invitation is None:
        return None
    sign_on = db.session.get(SignOn, invitation.sign_on_id)
    statement = db.session.get(Statement, sign_on.statement_id) if sign_on else None
    contact = db.session.get(Contact, invitation.contact_id)
    if sign_on is None or statement is None:
        return None
    if contact is not None and contact.deleted_at is not None:
        return None  # moved to the trash since it was invited: no e-mail
    language = email_language(contact.language_list if contact else [], statement)
    return invitation, sign_on, statement, language


def build_invitation(invitation_id: int) -> list[Notice]:
    """The invitation e-mail, once; nothing if the page closed or the address is suppressed."""
    parts = _invitation_parts(invitation_id)
    if parts is None:
        return []
    invitation, sign_on, statement, language = parts
    if closed_reason(sign_on) or _is_suppressed(invitation.email):
        return []
    if not _claim(SignOnInvitation, "invited_at", invitation.id):
        return []
    title, organisation = statement.title, _organisation()
    with force_locale(language):
        subject = _("Invitation to sign: %(title)s", title=title)
        paragraphs = [
            _("Hello,"),
            _(
                "%(organisation)s invites you to sign the joint statement “%(title)s”.",
                organisation=organisation,
                title=title,
            ),
            _("Read the statement and add your name or your organisation's here:")
            + "\n"
            + sign_on_address(sign_on, language),
        ]
        if sign_on.deadline:
            paragraphs.append(
                _("Signatures close on %(deadline)s.", deadline=deadline_words(sign_on.deadline))
            )
        paragraphs += [
            _(
                "You choose how your signature is published, including “%(withheld)s”. Each "
                "signature is confirmed by e-mail before it counts, and your e-mail address "
                "is never published.",
                withheld=withheld_text(language),
            ),
            organisation,
        ]
    text = "\n\n".join(paragraphs) + "\n"
    message = build_message(invitation.email, subject, text, language=language)
    release = _unclaim(SignOnInvitation, "invited_at", invitation.id)
    return [Notice(invitation.email, message, release)]


def build_reminder(invitation_id: int) -> list[Notice]:
    """The reminder, once, to an invitee who still has not signed while the page is open."""
    parts = _invitation_parts(invitation_id)
    if parts is None:
        return []
    invitation, sign_on, statement, language = parts
    if (
        closed_reason(sign_on)
        or sign_on.deadline is None
        or invitation.invited_at is None
        or _has_answered(sign_on, invitation.email)
        or _is_suppressed(invitation.email)
    ):
        return []
    if not _claim(SignOnInvitation, "reminded_at", invitation.id):
        return []
    title, organisation = statement.title, _organisation()
    local_day = sign_on.deadline.astimezone(ZoneInfo(deadline_zone())).date()
    with force_locale(language):
        subject = _(
            "Reminder: sign “%(title)s” by %(day)s", title=title, day=_day(local_day, language)
        )
        paragraphs = [
            _("Hello,"),
            _(
                "The joint statement “%(title)s” takes signatures until %(deadline)s. You were "
                "invited to sign it and we have not received your signature yet.",
                title=title,
                deadline=deadline_words(sign_on.deadline),
            ),
            _("If you wish to sign, please do so here before the deadline:")
            + "\n"
            + sign_on_address(sign_on, language),
            _(
                "If you have already signed, please follow the confirmation link we e-mailed "
                "you: an unconfirmed signature does not count. This is the only reminder we send."
            ),
            organisation,
        ]
    text = "\n\n".join(paragraphs) + "\n"
    message = build_message(invitation.email, subject, text, language=language)
    release = _unclaim(SignOnInvitation, "reminded_at", invitation.id)
    return [Notice(invitation.email, message, release)]


# --- the notice after sending -------------------------------------------------------------


def _frozen_signatory_ids(version: StatementVersion | None) -> set[int]:
    if version is None:
        return set()
    return {
        int(item["id"])
        for item in (version.snapshot or {}).get("signatories", [])
        if item.get("id") is not None
    }


def notify_signers(campaign: Campaign) -> int:
    """Queue the notice for each approved signer who asked and is in the frozen version.

    Called when the campaign has finished sending (sending.finish_if_done), in that
    transaction: the notices go after its commit. A cancelled campaign never finishes, so
    nobody is told it went out.
    """
    statement = db.session.get(Statement, campaign.statement_id)
    sign_on = sign_on_of(statement) if statement is not None else None
    if sign_on is None or campaign.statement_version_id is None:
        return 0
    frozen = _frozen_signatory_ids(db.session.get(StatementVersion, campaign.statement_version_id))
    if not frozen:
        return 0
    signatures = db.session.scalars(
        select(Signature.id).where(
            Signature.sign_on_id == sign_on.id,
            Signature.status == SignatureStatus.APPROVED.value,
            Signature.wants_notice.is_(True),
            Signature.notified_at.is_(None),
            Signature.signatory_id.in_(frozen),
        )
    ).all()
    for signature_id in signatures:
        queue_notice(SENT, int(signature_id))
    return len(signatures)


def _launched_campaign_of(signature: Signature, statement_id: int) -> Campaign | None:
    """The first launched campaign of the statement whose frozen version holds the signer."""
    campaigns = db.session.scalars(
        select(Campaign)
        .where(
            Campaign.statement_id == statement_id,
            Campaign.launched_at.is_not(None),
            Campaign.statement_version_id.is_not(None),
        )
        .order_by(Campaign.launched_at, Campaign.id)
    )
    for campaign in campaigns:
        version = db.session.get(StatementVersion, campaign.statement_version_id)
        if signature.signatory_id in _frozen_signatory_ids(version):
            return campaign
    return None


def recipient_lines(campaign: Campaign, language: str) -> tuple[int, list[str]]:
    """How many were written to, and them by role and institution (counted when alike)."""
    contacts = db.session.scalars(
        select(Contact)
        .join(Delivery, Delivery.contact_id == Contact.id)
        .where(
            Delivery.campaign_id == campaign.id,
            Delivery.step == 0,
            Delivery.status != DeliveryStatus.SUPPRESSED.value,
        )
        .order_by(Contact.id)
    ).all()
    described: Counter[str] = Counter()
    unnamed = 0
    for contact in contacts:
        text = "" if contact.risk_level in _UNDESCRIBED_RISKS else recipient_description(contact)
        if text:
            described[text] += 1
        else:
            unnamed += 1
    lines = [
        f"- {text}" + (f" ({count})" if count > 1 else "")
        for text, count in sorted(described.items(), key=lambda item: item[0].casefold())
    ]
    if len(lines) > MAX_RECIPIENT_LINES:
        rest = sum(count for _, count in sorted(described.items())[MAX_RECIPIENT_LINES:])
        lines = [*lines[:MAX_RECIPIENT_LINES], f"- {_more(rest)}"]
    if unnamed:
        lines.append(f"- {_unnamed(unnamed)}")
    return len(contacts), lines


def neutral_recipient(language: str, address: str) -> SimpleNamespace:
    """A reader with no name, role or address: the letter as sent, without anyone's details."""
    return SimpleNamespace(
        id=None,
        kind="organisation",
        given_name="",
        family_name="",
        patronymic="",
        given_name_alt="",
        family_name_alt="",
        patronymic_alt="",
        grammatical_gender="unknown",
        role_type=RoleType.OTHER.value,
        style="none",
        honorific="",
        position_title="",
        organisation="",
        country="",
        time_zone="",
        languages=language,
        email=address,
        cc_emails="",
        salutation_override="",
    )


def letter_pdf_for_signers(version: StatementVersion, language: str) -> tuple[str, bytes] | None:
    """The frozen version as a PDF for a neutral recipient; None if it cannot be made."""
    # The reader's address is only checked, never printed: the sender's own will do.
    address = parseaddr(sender_address())[1] or "office@example.org"
    composed = compose_letter(version, neutral_recipient(language, address), with_pdf=True)
    if composed.pdf is None:
        return None
    return composed.pdf_filename, composed.pdf


def build_sent_notice(signature_id: int) -> list[Notice]:
    """Tell a signer who asked that the letter went out, to whom, with its PDF; once."""
    signature = db.session.get(Signature, signature_id)
    if (
        signature is None
        or signature.status != SignatureStatus.APPROVED.value
        or not signature.wants_notice
        or signature.notified_at is not None
    ):
        return []
    sign_on = db.session.get(SignOn, signature.sign_on_id)
    statement = db.session.get(Statement, sign_on.statement_id) if sign_on else None
    if statement is None:
        return []
    campaign = _launched_campaign_of(signature, statement.id)
    if campaign is None or campaign.launched_at is None:
        return []
    if not _claim(Signature, "notified_at", signature.id):
        return []
    language = email_language([signature.language], statement)
    version = db.session.get(StatementVersion, campaign.statement_version_id)
    assert version is not None
    pdf = letter_pdf_for_signers(version, language)
    title = str((version.snapshot or {}).get("title") or statement.title)
    organisation = _organisation()
    with force_locale(language):
        count, lines = recipient_lines(campaign, language)
        subject = _("Sent: %(title)s", title=title)
        paragraphs = [
            _("Hello,"),
            _(
                "You asked to be told when the joint statement “%(title)s”, which you signed, "
                "was sent.",
                title=title,
            ),
            _(
                "It went out on %(day)s to %(count)s:",
                day=_day(campaign.launched_at.astimezone(UTC).date(), language),
                count=_recipients_count(count),
            )
            + "\n\n"
            + "\n".join(lines),
        ]
        if pdf:
            paragraphs.append(_("The letter as sent is attached (PDF)."))
        paragraphs += [_("Thank you for signing."), organisation]
    text = "\n\n".join(paragraphs) + "\n"
    message = build_message(
        signature.email,
        subject,
        text,
        language=language,
        attachments=[(pdf[0], "application/pdf", pdf[1])] if pdf else [],
    )
    return [Notice(signature.email, message, _unclaim(Signature, "notified_at", signature.id))]
