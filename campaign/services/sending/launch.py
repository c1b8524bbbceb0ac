"""Launch confirmation: what a launch would do, in figures, and a signed token of what was shown.

The confirmation page (and `campaign send`) shows a `LaunchSummary`; the confirm carries a
token signed with the installation's secret that names the recipient count, a fingerprint
of exactly who they are and the campaign's last change. A confirm whose token no longer
matches (the page was left open while a list changed) launches nothing: the page is shown
again with the new figures and what changed (decision 0046).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import current_app
from flask_babel import format_timedelta, ngettext
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import Select, func, select

from campaign.extensions import db
from campaign.i18n import language_name
from campaign.models import Campaign, Contact, SmtpAccount, Statement, StatementText, User
from campaign.services.sending import campaigns as campaign_service
from campaign.services.sending.campaigns import CampaignCheck, CampaignError, presend_report
from campaign.services.statements import statements as statement_service
from campaign.services.statements.presend import PresendReport

TOKEN_SALT = "campaign.launch-confirmation"  # noqa: S105 (a namespace, not a secret)
# A confirmation page older than this launches nothing: it is shown again (decision 0046).
TOKEN_MAX_AGE_SECONDS = 12 * 3600


class ConfirmationError(ValueError):
    """The confirm cannot launch: the token is missing, forged, or for another campaign."""


@dataclass(frozen=True)
class Pace:
    """The SMTP account's limits (0: none) and the expected duration of the sending."""

    per_second: int
    per_minute: int
    per_day: int
    seconds: int | None  # None: no limit set, the server's speed decides

    def limits_text(self) -> str:
        parts = []
        if self.per_second:
            parts.append(
                ngettext("%(num)d letter a second", "%(num)d letters a second", self.per_second)
            )
        if self.per_minute:
            parts.append(
                ngettext("%(num)d letter a minute", "%(num)d letters a minute", self.per_minute)
            )
        if self.per_day:
            parts.append(ngettext("%(num)d letter a day", "%(num)d letters a day", self.per_day))
        if not parts:
            return _("no limit set: as fast as the mail server accepts them")
        return _("at most %(limits)s", limits=", ".join(parts))

    def duration_text(self) -> str:
        if self.seconds is None:
            # No pace to reckon with: the mail server's speed decides, whatever the count.
            return _("unknown: no limit is set, so the mail server's speed decides")
        if self.seconds < 60:
            return _("less than a minute")
        return _(
            "about %(duration)s",
            duration=format_timedelta(timedelta(seconds=self.seconds), granularity="minute"),
        )


def expected_pace(account: SmtpAccount | None, letters: int) -> Pace:
    """How fast `letters` letters leave through `account` (None: the server settings)."""
    if account is not None:
        limits = (account.per_second, account.per_minute, account.per_day)
    else:
        config = current_app.config
        limits = (
            int(config["MAIL_RATE_PER_SECOND"]),
            int(config["MAIL_RATE_PER_MINUTE"]),
            int(config["MAIL_RATE_PER_DAY"]),
        )
    per_second, per_minute, per_day = (max(0, int(v or 0)) for v in limits)
    intervals = [1 / per_second if per_second else 0.0, 60 / per_minute if per_minute else 0.0]
    interval = max(intervals)
    if not interval and not per_day:
        return Pace(per_second, per_minute, per_day, None)
    # The first letter leaves at once; each next one waits its interval.
    seconds = max(0, letters - 1) * interval
    if per_day and letters > per_day:
        # Each full day's quota waits for the next day.
        seconds = max(seconds, (math.ceil(letters / per_day) - 1) * 86400.0)
    return Pace(per_second, per_minute, per_day, math.ceil(seconds))


@dataclass
class LaunchSummary:
    """Everything the confirmation names before a launch."""

    campaign_id: int
    check: CampaignCheck
    report: PresendReport | None
    account_name: str  # "" for the server settings
    pace: Pace
    fingerprint: str
    updated_at: str
    contacts: str = ""  # the recipients' last edit (a bulk edit of roles, say)
    letter: str = ""  # the statement's latest version and last edit
    account: str = ""  # the SMTP account's last change
    schedule: str = ""  # the send-at or the yearly rule's next date
    languages: list[tuple[str, int]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return self.check.count.sendable

    @property
    def presend_errors(self) -> int:
        return self.report.contacts_with_errors if self.report is not None else 0

    @property
    def is_blocked(self) -> bool:
        return bool(self.check.errors)

    def language_lines(self) -> list[str]:
        return language_lines(self.languages)


def language_split(report: PresendReport | None) -> list[tuple[str, int]]:
    """(language, letters) from the pre-send check, the most letters first."""
    found = report.languages if report is not None else {}
    return sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))


def language_lines(languages: list[tuple[str, int]]) -> list[str]:
    """ "English: 12" per language, in the interface language."""
    return [
        _("%(language)s: %(num)d", language=language_name(code) if code else _("unknown"), num=n)
        for code, n in languages
    ]


def audience_fingerprint(campaign: Campaign) -> tuple[str, str]:
    """A hash of who exactly would be written to (changes when anyone joins or leaves) and
    the recipients' last edit (a role or language changed since), read in one query."""
    digest = hashlib.sha256()
    try:
        query: Select[Any] = campaign_service.recipients_query(campaign)
    except CampaignError:
        return "", ""
    last = ""
    rows = db.session.execute(
        query.with_only_columns(Contact.id, Contact.updated_at).order_by(Contact.id)
    )
    for contact_id, updated_at in rows:
        digest.update(f"{contact_id},".encode())
        if updated_at is not None:
            last = max(last, updated_at.isoformat())
    return digest.hexdigest(), last


def _stamp(campaign: Campaign) -> str:
    return campaign.updated_at.isoformat() if campaign.updated_at else ""


def _letter_stamp(campaign: Campaign) -> str:
    """Changes when the letter does: a new version, or an edit of the statement or a text."""
    statement = db.session.get(Statement, campaign.statement_id)
    if statement is None:
        return ""
    version = statement_service.latest_version(statement)
    edited = db.session.scalar(
        select(func.max(StatementText.updated_at)).where(StatementText.statement_id == statement.id)
    )
    return "|".join(
        (
            str(version.id if version is not None else ""),
            statement.updated_at.isoformat() if statement.updated_at else "",
            edited.isoformat() if edited else "",
        )
    )


def _schedule_stamp(campaign: Campaign) -> str:
    from campaign.scheduling.actions import yearly_schedule_of

    yearly = yearly_schedule_of(campaign)
    when = yearly.next_run_at if yearly is not None else campaign.send_at
    return when.isoformat() if when else ""


def summarise_launch(campaign: Campaign, *, with_report: bool = True) -> LaunchSummary:
    """What launching `campaign` now would do: recipients, account, pace, languages, problems."""
    check = campaign_service.check_campaign(campaign)
    report = presend_report(campaign) if with_report else None
    account = campaign.smtp_account
    languages = language_split(report)
    fingerprint, contacts = audience_fingerprint(campaign)
    return LaunchSummary(
        campaign_id=campaign.id,
        check=check,
        report=report,
        account_name=account.name if account is not None else "",
        pace=expected_pace(account, check.count.sendable),
        fingerprint=fingerprint,
        updated_at=_stamp(campaign),
        contacts=contacts,
        languages=languages,
        letter=_letter_stamp(campaign),
        account=(
            account.updated_at.isoformat() if account is not None and account.updated_at else ""
        ),
        schedule=_schedule_stamp(campaign),
    )


def _clock() -> int:
    """The signer's clock (tests move it to age a page)."""
    return int(time.time())


class _Signer(TimestampSigner):
    def get_timestamp(self) -> int:
        return _clock()


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        str(current_app.config["SECRET_KEY"]), salt=TOKEN_SALT, signer=_Signer
    )


def sign_summary(summary: LaunchSummary) -> str:
    """The token the confirm form carries: what the person saw, signed."""
    return str(
        _serializer().dumps(
            {
                "campaign": summary.campaign_id,
                "count": summary.count,
                "audience": summary.fingerprint,
                "contacts": summary.contacts,
                "updated": summary.updated_at,
                "letter": summary.letter,
                "account": summary.account,
                "schedule": summary.schedule,
            }
        )
    )


def changes_since(token: str, summary: LaunchSummary) -> list[str]:
    """What changed between the page that was confirmed and now, in words; [] if nothing.

    Raises ConfirmationError for a token that is missing, forged or for another campaign.
    """
    if not token:
        raise ConfirmationError(_("the confirmation is missing; review the figures and confirm"))
    try:
        shown = _serializer().loads(token, max_age=TOKEN_MAX_AGE_SECONDS)
    except SignatureExpired:
        return [
            ngettext(
                "The page was shown more than %(num)d hour ago: review it again.",
                "The page was shown more than %(num)d hours ago: review it again.",
                TOKEN_MAX_AGE_SECONDS // 3600,
            )
        ]
    except BadSignature:
        raise ConfirmationError(
            _("the confirmation could not be read; review the figures and confirm")
        ) from None
    if not isinstance(shown, dict) or shown.get("campaign") != summary.campaign_id:
        raise ConfirmationError(_("the confirmation was for another campaign"))
    changes = []
    if shown.get("count") != summary.count:
        changes.append(
            ngettext(
                "The number of recipients changed: %(then)s when the page was shown, %(num)d now.",
                "The number of recipients changed: %(then)s when the page was shown, %(num)d now.",
                summary.count,
                then=shown.get("count"),
            )
        )
    elif shown.get("audience") != summary.fingerprint:
        changes.append(
            _(
                "The recipients changed since the page was shown: the same number, but not "
                "the same people."
            )
        )
    elif shown.get("contacts", "") != summary.contacts:
        changes.append(
            _(
                "The recipients' details were edited since the page was shown (a role, a "
                "language or a name): their letters may read differently."
            )
        )
    if shown.get("updated") != summary.updated_at:
        changes.append(_("The campaign's settings were changed since the page was shown."))
    if shown.get("letter") != summary.letter:
        changes.append(_("The letter was edited since the page was shown."))
    if shown.get("account") != summary.account:
        changes.append(_("The SMTP account was changed since the page was shown."))
    if shown.get("schedule") != summary.schedule:
        changes.append(_("The campaign's schedule changed since the page was shown."))
    return changes


def launch_now(
    campaign: Campaign,
    *,
    actor: User | None = None,
    override: bool = False,
    override_reason: str = "",
) -> Campaign | None:
    """A launch by hand (the confirmation page, `campaign send`); the campaign whose letters
    went, or None when it was already launched. Raises CampaignError (PresendRefused when
    letters have errors and no override with a reason was given): the checks, the override
    and its audit are check_and_launch's, the one launch rule (decision 0056).

    A yearly campaign sends its next copy now, in place of that date's (the rule moves to
    the following year); a campaign with a send-at loses it first (audited), so its letters
    leave at once and the calendar no longer lists the date (decision 0046).
    """
    from campaign.scheduling import actions, schedules

    yearly = actions.yearly_schedule_of(campaign)
    if yearly is not None:
        return actions.launch_yearly_now(
            campaign,
            yearly,
            actor=actor,
            override=override,
            override_reason=override_reason,
        )
    schedules.cancel_send_at(campaign, actor=actor)
    launched = campaign_service.check_and_launch(
        campaign,
        actor=actor,
        override=override,
        override_reason=override_reason,
    )
    return campaign if launched else None
