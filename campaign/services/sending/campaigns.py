"""Campaigns: build one, check it, launch it into the ledger, pause, resume and cancel it."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parseaddr
from operator import itemgetter
from typing import Any

from flask import current_app, has_request_context
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext
from redis.exceptions import RedisError
from sqlalchemy import Select, and_, false, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from campaign.extensions import db
from campaign.mail import MessageError, check_header_value, message_id_domain
from campaign.models import (
    CLAIMABLE,
    Campaign,
    CampaignStatus,
    Contact,
    Delivery,
    DeliveryStatus,
    SmtpAccount,
    Statement,
    Suppression,
    User,
)
from campaign.queue import get_redis
from campaign.scheduling import pacing
from campaign.scheduling.stored_text import Said, Text, english, joined, labelled, said
from campaign.services.accounts.audit import record_event
from campaign.services.backups.hold import SENDING_HELD, sending_is_held
from campaign.services.contacts.audiences import find_audience
from campaign.services.planner_statistics import refresh_statistics
from campaign.services.privacy import erased_addresses
from campaign.services.sending import followups, presend_runs
from campaign.services.sending.deliveries import (
    enqueue_send_jobs,
    insert_deliveries,
    new_delivery_rows,
    read_recipients,
    unless_gone,
)
from campaign.services.sending.errors import CampaignError as CampaignError
from campaign.services.sending.smtp_accounts import dkim_alignment_problem
from campaign.services.statements import files as statement_files
from campaign.services.statements import statements
from campaign.services.statements.presend import PresendReport, launch_address_problems
from campaign.tracking.links import base_url_problem

log = logging.getLogger(__name__)


def N_(message: str) -> str:
    return message


# Reasons stored in English as they are (the CLI prints them) and read through the catalogue.
PAUSED_BY_STAFF = N_("paused by staff")
CANCELLED_BY_STAFF = N_("cancelled by staff")


# A campaign in these states can be launched; any other was launched already.
LAUNCHABLE = (CampaignStatus.DRAFT.value, CampaignStatus.SCHEDULED.value)


class PresendRefused(CampaignError):
    """The pre-send check found letters with errors and no override with a reason was given.

    `report` is what the check found: the scheduler words its record from it.
    """

    def __init__(self, message: Text, report: PresendReport, field: str = "override") -> None:
        super().__init__(message, field)
        self.report = report


@dataclass(frozen=True)
class AudienceSpec:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> AudienceSpec:
        data = data or {}
        return cls(tuple(data.get("include") or ()), tuple(data.get("exclude") or ()))

    def to_json(self) -> dict[str, list[str]]:
        return {"include": list(self.include), "exclude": list(self.exclude)}


@dataclass(frozen=True)
class AudienceCount:
    total: int  # contacts in the audience, exclusions applied
    suppressed: int  # of those, on the suppression list

    @property
    def sendable(self) -> int:
        return self.total - self.suppressed


@dataclass
class CampaignCheck:
    """What stands in the way of a launch (errors) and what staff should know (warnings)."""

    errors: list[Said] = field(default_factory=list)
    warnings: list[Said] = field(default_factory=list)
    count: AudienceCount = AudienceCount(0, 0)
    # Among the errors, addresses `campaign dev` would only warn about (decision 0037).
    address_errors: bool = False


# --- audience ----------------------------------------------------------------------------


def _member_ids(keys: Iterable[str], field_name: str) -> list[Select[Any]]:
    found = []
    for key in keys:
        audience = find_audience(key)
        if audience is None:
            raise CampaignError(
                _l("'%(key)s' is not a list or segment (it may have been deleted)", key=key),
                field_name,
            )
        found.append(audience.query.with_only_columns(Contact.id).order_by(None))
    return found


def audience_query(spec: AudienceSpec) -> Select[Any]:
    """The contacts of the included lists and segments, minus the excluded ones."""
    included = _member_ids(spec.include, "include")
    excluded = _member_ids(spec.exclude, "exclude")
    # Contacts in the trash are nobody's audience.
    query = select(Contact).where(Contact.deleted_at.is_(None))
    if not included:
        return query.where(false())
    query = query.where(
        Contact.id.in_(included[0].union(*included[1:]) if len(included) > 1 else included[0])
    )
    for sub in excluded:
        query = query.where(Contact.id.not_in(sub))
    return query


def _suppressed_clause() -> Any:
    return Contact.email_key.in_(select(Suppression.email_key))


def recipients_query(campaign: Campaign) -> Select[Any]:
    """The contacts a launch would write to: the audience minus the suppression list.

    The pre-send check runs over these (in the page and the CLI alike): a suppressed
    contact gets no letter, so problems with their letter block nothing.
    """
    return audience_query(AudienceSpec.from_json(campaign.audience)).where(~_suppressed_clause())


def count_audience(spec: AudienceSpec) -> AudienceCount:
    """How many contacts the audience holds, and how many of them are suppressed."""
    refresh_statistics()
    ids = audience_query(spec).with_only_columns(Contact.id).subquery()
    total = db.session.scalar(select(func.count()).select_from(ids)) or 0
    suppressed = (
        db.session.scalar(
            select(func.count())
            .select_from(Contact)
            .where(Contact.id.in_(select(ids.c.id)), _suppressed_clause())
        )
        or 0
    )
    return AudienceCount(total, suppressed)


# --- building ----------------------------------------------------------------------------


def _clean_mailbox(value: str, field_name: str, label: str, *, required: bool) -> str:
    """`label` is the header's name (From, Reply-To), the same in every language."""
    value = value.strip()
    if not value:
        if required:
            raise CampaignError(_l("%(field)s: an address is required", field=label), field_name)
        return ""
    try:
        check_header_value(label, value)
    except MessageError as error:
        raise CampaignError(str(error), field_name) from None
    address = parseaddr(value)[1]
    if "@" not in address or address.startswith("@") or address.endswith("@"):
        raise CampaignError(
            _l("%(field)s: '%(value)s' is not an email address", field=label, value=value),
            field_name,
        )
    return value


def _validate_audience(spec: AudienceSpec) -> None:
    _member_ids(spec.include, "include")
    _member_ids(spec.exclude, "exclude")


def statement_to_send(statement_id: int | None) -> Statement:
    """The statement a campaign is built from; CampaignError naming `statement_id` if none."""
    statement = db.session.get(Statement, statement_id) if statement_id is not None else None
    if statement is None:
        raise CampaignError(_l("Statement: choose the statement to send"), "statement_id")
    return statement


def chosen_account(account_id: int | None, *, given: bool) -> SmtpAccount | None:
    """The SMTP account a campaign sends through (None: the default account when none was
    `given`); CampaignError naming `smtp_account_id` when the one given does not exist."""
    if not given:
        return None
    account = db.session.get(SmtpAccount, account_id) if account_id is not None else None
    if account is None:
        raise CampaignError(
            _l("SMTP account: that account no longer exists; choose another"), "smtp_account_id"
        )
    return account


def create_campaign(
    statement: Statement,
    *,
    name: str = "",
    audience: AudienceSpec,
    from_address: str = "",
    reply_to: str = "",
    smtp_account: SmtpAccount | None = None,
    is_pdf_attached: bool | None = None,
    has_list_unsubscribe: bool = True,
    is_open_tracking: bool = False,
    is_click_tracking: bool = False,
    actor: User | None = None,
) -> Campaign:
    """Save a draft campaign; raise CampaignError naming the field that is wrong."""
    campaign = Campaign(
        statement_id=statement.id,
        status=CampaignStatus.DRAFT.value,
        created_by_id=actor.id if actor else None,
    )
    db.session.add(campaign)
    # The audience lookups query the database; an autoflush would insert the half-built row.
    with db.session.no_autoflush:
        update_campaign(
            campaign,
            name=name or statement.title,
            audience=audience,
            from_address=from_address or str(current_app.config["MAIL_DEFAULT_SENDER"]),
            reply_to=reply_to,
            smtp_account=smtp_account,
            is_pdf_attached=(
                statement.is_pdf_attached if is_pdf_attached is None else is_pdf_attached
            ),
            has_list_unsubscribe=has_list_unsubscribe,
            is_open_tracking=is_open_tracking,
            is_click_tracking=is_click_tracking,
        )
    record_event("campaign.create", target_type="campaign", target_id=campaign.id, actor=actor)
    return campaign


def update_campaign(
    campaign: Campaign,
    *,
    name: str,
    audience: AudienceSpec,
    from_address: str,
    reply_to: str,
    smtp_account: SmtpAccount | None,
    is_pdf_attached: bool,
    has_list_unsubscribe: bool,
    is_open_tracking: bool,
    is_click_tracking: bool,
    statement: Statement | None = None,
) -> None:
    """Change a draft; a launched campaign's settings are fixed."""
    if campaign.status not in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED):
        raise CampaignError(
            _l(
                "the campaign is %(status)s; only a draft can be changed",
                status=labelled(campaign.status, "campaign_status"),
            )
        )
    name = " ".join(name.split())
    if not name:
        raise CampaignError(_l("Name: a campaign needs a name"), "name")
    if len(name) > 300:
        raise CampaignError(_l("Name: at most 300 characters"), "name")
    _validate_audience(audience)
    campaign.name = name
    if statement is not None:
        campaign.statement_id = statement.id
    campaign.audience = audience.to_json()
    campaign.from_address = _clean_mailbox(from_address, "from_address", "From", required=True)
    campaign.reply_to = _clean_mailbox(reply_to, "reply_to", "Reply-To", required=False)
    campaign.smtp_account_id = smtp_account.id if smtp_account else None
    campaign.is_pdf_attached = is_pdf_attached
    campaign.has_list_unsubscribe = has_list_unsubscribe
    campaign.is_open_tracking = is_open_tracking
    campaign.is_click_tracking = is_click_tracking
    db.session.flush()


def _domain(mailbox: str) -> str:
    return parseaddr(mailbox)[1].rpartition("@")[2].lower()


def check_campaign(
    campaign: Campaign,
    *,
    size_probe: statement_files.SizeProbe | None = None,
    count: AudienceCount | None = None,
) -> CampaignCheck:
    """Everything a launch would refuse (errors) or staff should know (warnings);
    `size_probe` is the SMTP server's size limit when the caller asked it already, `count`
    the audience's when the caller read it already (the launch: decision 0078)."""
    check = CampaignCheck()
    spec = AudienceSpec.from_json(campaign.audience)
    if not spec.include:
        check.errors.append(said(_l("Audience: choose at least one list or segment")))
    elif count is not None:
        check.count = count
    else:
        try:
            check.count = count_audience(spec)
        except CampaignError as error:
            check.errors.append(_said(error))
    if spec.include and check.count.total == 0:
        check.errors.append(said(_l("Audience: the chosen lists and segments hold no contacts")))
    elif check.count.total and check.count.sendable == 0:
        check.errors.append(
            said(
                lazy_ngettext(
                    "Audience: the %(num)d contact is on the suppression list",
                    "Audience: all %(num)d contacts are on the suppression list",
                    check.count.total,
                )
            )
        )
    elif check.count.suppressed:
        check.warnings.append(
            said(
                lazy_ngettext(
                    "%(num)d of %(total)d contacts is on the suppression list and will not be "
                    "written to",
                    "%(num)d of %(total)d contacts are on the suppression list and will not be "
                    "written to",
                    check.count.suppressed,
                    total=check.count.total,
                )
            )
        )
    for label, value, required in (
        ("From", campaign.from_address, True),
        ("Reply-To", campaign.reply_to, False),
    ):
        try:
            _clean_mailbox(value, "", label, required=required)
        except CampaignError as error:
            check.errors.append(_said(error))
    statement = db.session.get(Statement, campaign.statement_id)
    if statement is None or not statement.texts:
        check.errors.append(said(_l("Statement: it has no text to send")))
    tracking_problem = ""
    if campaign.is_open_tracking or campaign.is_click_tracking:
        tracking_problem = base_url_problem(
            str(current_app.config.get("PUBLIC_URL") or ""), debug=current_app.debug
        )
        if tracking_problem:
            check.errors.append(said(_l("Tracking: %(problem)s", problem=tracking_problem)))
    # Addresses the internet cannot use: errors outside debug, warnings in `campaign dev`.
    address_problems = launch_address_problems(
        campaign.from_address,
        settings=dict(current_app.config),
        links_here=not tracking_problem
        and (
            campaign.has_list_unsubscribe or campaign.is_open_tracking or campaign.is_click_tracking
        ),
    )
    (check.warnings if current_app.debug else check.errors).extend(
        said(problem) for problem in address_problems
    )
    check.address_errors = bool(address_problems) and not current_app.debug
    # The chosen files vs. EHLO SIZE.
    statement_files.add_size_problems(campaign, check, size_probe)
    account = campaign.smtp_account
    login = account.username if account else str(current_app.config["MAIL_USERNAME"])
    if "@" in login and _domain(campaign.from_address) != login.rpartition("@")[2].lower():
        check.warnings.append(
            said(
                _l(
                    "From: the address's domain (%(domain)s) differs from the SMTP account's "
                    "(%(account_domain)s); the relay may refuse the messages or recipients' "
                    "providers may mark them as spam (SPF/DMARC)",
                    domain=_domain(campaign.from_address),
                    account_domain=login.rpartition("@")[2],
                )
            )
        )
    dkim_problem = dkim_alignment_problem(account, campaign.from_address)  # decision 0042
    if dkim_problem is not None:
        check.warnings.append(said(dkim_problem))
    return check


def _said(error: CampaignError) -> Said:
    """The error's message in words now, its message kept (a plain one as it is)."""
    if isinstance(error.message, Said):
        return error.message
    if isinstance(error.message, str):
        return said(joined("", [error.message]))
    return said(error.message)


# --- launching ---------------------------------------------------------------------------


class PresendNeeded(CampaignError):
    """No current pre-send result, and too many letters to check in a web request: the
    check runs as a job from the campaign's page (or the API) first (decision 0071)."""


def presend_report(campaign: Campaign) -> PresendReport | None:
    """The pre-send check of every letter a launch of `campaign` would send; None when it
    cannot run (no statement, no list or segment: the campaign check names what is missing).

    A stored result is reused while nothing it depends on changed (presend_runs). Otherwise
    the check runs here and is stored, except in a web request over more than
    presend_runs.INLINE_LIMIT letters or INLINE_SECONDS: PresendNeeded, the job's to run.
    Outside requests (the CLI, the scheduler's worker) it always runs here.
    """
    spec = AudienceSpec.from_json(campaign.audience)
    statement = db.session.get(Statement, campaign.statement_id)
    if statement is None or not spec.include:
        return None
    try:
        query = recipients_query(campaign)
    except CampaignError:
        return None  # the campaign check names the missing list or segment
    deps = presend_runs.dependencies(campaign, query)
    stored = presend_runs.current_report(campaign, query, deps)
    if stored is not None:
        return stored
    if not has_request_context():
        return presend_runs.run_here(campaign, query, deps=deps)
    needed = PresendNeeded(
        lazy_ngettext(
            "the pre-send check of the %(num)d letter has not run since it last changed; "
            "start it on the campaign's page and launch when it has finished",
            "the pre-send check of the %(num)d letters has not run since they last changed; "
            "start it on the campaign's page and launch when it has finished",
            deps.recipients,
        ),
        "presend",
    )
    if deps.recipients > presend_runs.INLINE_LIMIT:
        raise needed
    try:
        return presend_runs.run_here(
            campaign, query, deps=deps, seconds=presend_runs.INLINE_SECONDS
        )
    except presend_runs.CheckTooLong:
        raise needed from None


@dataclass(frozen=True)
class _Presend:
    """What the launch's own pre-send check found, and the override asked for."""

    report: PresendReport | None
    override: bool
    reason: str


def check_and_launch(
    campaign: Campaign,
    *,
    actor: User | None = None,
    override: bool = False,
    override_reason: str = "",
    at: datetime | None = None,
) -> bool:
    """Check the campaign and every letter, then launch it; False if it was already launched.

    The one launch rule (decision 0056): the page and `campaign send` (through
    launch.launch_now), the scheduler and the yearly copies all launch here, and nobody
    tells it what the checks found. The campaign check's errors refuse the launch
    (CampaignError). So does the pre-send check, run here: letters with errors for any
    contact refuse it (PresendRefused) unless `override` is given with a non-empty
    `override_reason`, which the audit log records with the number of contacts concerned.

    `at` is the launch time (the scheduler passes the tick's time, so `campaign tick --now`
    dates follow-up steps from the simulated launch); default now.
    """
    # Before the row is locked: the pre-send check renders every letter.
    report = presend_report(campaign) if campaign.status in LAUNCHABLE else None
    checked = _Presend(report, override, " ".join(override_reason.split()))
    return _launch(campaign, actor=actor, at=at, checked=checked)


def launch_campaign(
    campaign: Campaign, *, actor: User | None = None, at: datetime | None = None
) -> bool:
    """Write the campaign's ledger rows and queue the sending WITHOUT the pre-send check;
    False if it was already launched. Raises CampaignError when the campaign check refuses.

    For code that made the letters itself (tests, the demo, benchmarks); people and the
    scheduler launch through check_and_launch. It takes no count of pre-send errors: no
    caller can claim a check it did not run, and the audit log says none was run.
    """
    return _launch(campaign, actor=actor, at=at, checked=None)


def _launch(
    campaign: Campaign, *, actor: User | None, at: datetime | None, checked: _Presend | None
) -> bool:
    if sending_is_held():
        raise CampaignError(SENDING_HELD)
    # The SMTP server is asked before the row is locked: it may take up to its deadline.
    size_probe = statement_files.size_probe(campaign) if campaign.status in LAUNCHABLE else None
    locked = db.session.execute(
        select(Campaign)
        .where(Campaign.id == campaign.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    if locked.status not in LAUNCHABLE:
        return False  # launching twice is a no-op: the ledger already exists
    # One read of the audience, each contact with whether the suppression list holds it:
    # the check counts these rows instead of counting the audience again (decision 0078).
    contacts = _read_audience(locked)
    check = check_campaign(
        locked,
        size_probe=size_probe,
        count=(
            None
            if contacts is None
            else AudienceCount(len(contacts), sum(map(itemgetter(2), contacts)))
        ),
    )
    if check.errors:
        raise CampaignError(joined("; ", check.errors))
    presend_errors, overridden = 0, False
    if checked is not None:
        report = checked.report if checked.report is not None else presend_report(locked)
        presend_errors = report.contacts_with_errors if report is not None else 0
        if report is not None and presend_errors and not checked.override:
            raise PresendRefused(
                lazy_ngettext(
                    "the pre-send check found letters with errors for %(num)d contact; fix "
                    "them or launch with the override",
                    "the pre-send check found letters with errors for %(num)d contacts; fix "
                    "them or launch with the override",
                    presend_errors,
                ),
                report,
            )
        if report is not None and presend_errors and not checked.reason:
            raise PresendRefused(
                _l("Override: say why the campaign is launched despite the errors."),
                report,
                "override_reason",
            )
        overridden = bool(presend_errors)
    # The status moves in one conditional UPDATE: SQLite ignores FOR UPDATE, and of two
    # launches at the same moment (a double click) the second must find nothing to do
    # rather than fail on the ledger's unique key.
    status_before = locked.status
    moved = db.session.execute(
        update(Campaign)
        .where(Campaign.id == locked.id, Campaign.status.in_(LAUNCHABLE))
        .values(status=CampaignStatus.SENDING.value)
        .execution_options(synchronize_session=False)
    )
    if int(getattr(moved, "rowcount", 0) or 0) != 1:
        return False
    # The rest of the launch's writes are in a savepoint: a contact erased or deleted
    # meanwhile fails the ledger's foreign key, and the launch is undone whole while the
    # caller's transaction (a tick's) stays usable. It opens after the UPDATE on purpose:
    # with pysqlite a SAVEPOINT before any write opens the transaction itself, and its
    # RELEASE would commit the launch before the caller decides.
    try:
        with db.session.begin_nested():
            statement = db.session.get(Statement, locked.statement_id)
            assert statement is not None
            version = statements.latest_version(statement) or statements.record_version(
                statement, "frozen for a campaign", actor=actor
            )
            locked.statement_version_id = version.id

            domain = message_id_domain(locked.from_address)
            assert contacts is not None  # the check refuses an audience it could not read
            rows = new_delivery_rows(locked, contacts, domain)
            launched = at or datetime.now(UTC)
            # A send-at with pacing (office hours, a window of days) dates each row's first
            # attempt; workers claim rows only when that time comes.
            pacing_text = pacing.pace_rows(locked, rows, launched)
            # In bulk (COPY on PostgreSQL), in this transaction: jobs are queued after its
            # commit.
            insert_deliveries(rows)
    except IntegrityError as error:
        if not _contact_gone(error):
            raise
        db.session.execute(
            update(Campaign)
            .where(Campaign.id == locked.id)
            .values(status=status_before)
            .execution_options(synchronize_session=False)
        )
        raise CampaignError(
            _l(
                "A contact of this audience was erased or deleted while the campaign was "
                "being launched; nothing was sent. Launch it again."
            )
        ) from None

    locked.status = CampaignStatus.SENDING.value
    locked.status_reason = ""
    locked.launched_at = launched
    locked.launched_by_id = actor.id if actor else None
    locked.is_presend_overridden = overridden
    queued = check.count.sendable  # the contacts read above, less the suppressed
    record_event(
        "campaign.launch",
        target_type="campaign",
        target_id=locked.id,
        actor=actor,
        detail={
            "recipients": queued,
            "suppressed": len(rows) - queued,
            "statement_version": version.number,
            "presend_checked": checked is not None,
            "presend_errors": presend_errors,
            "override": overridden,
            "pacing": pacing_text,
        },
    )
    if checked is not None and overridden:
        record_event(
            "campaign.presend_override",
            target_type="campaign",
            target_id=locked.id,
            actor=actor,
            detail={"reason": checked.reason, "contacts_with_errors": presend_errors},
        )
    db.session.flush()
    # Follow-up steps added to the draft are due N days after launch: date them now, in the
    # launch's transaction, whichever path launched (page, CLI, scheduled send, yearly copy).
    followups.schedule_steps(locked)
    enqueue_send_jobs(locked.id, queued)
    return True


def _contact_gone(error: IntegrityError) -> bool:
    """Whether the ledger refused a letter for its contact's foreign key (a contact erased or
    deleted by another session after the launch read the audience)."""
    if getattr(error.orig, "sqlstate", None) == "23503":  # PostgreSQL: foreign_key_violation
        return True
    return "FOREIGN KEY constraint failed" in str(error.orig)  # SQLite


def _read_audience(campaign: Campaign) -> list[tuple[int, str, bool]] | None:
    """(contact id, address, is suppressed) of the campaign's audience in contact order;
    None when it cannot be read (no list chosen, one deleted: the check says which)."""
    spec = AudienceSpec.from_json(campaign.audience)
    if not spec.include:
        return None
    refresh_statistics()  # as count_audience: PostgreSQL plans the read with them
    try:
        query = audience_query(spec)
    except CampaignError:
        return None
    try:
        erased = erased_addresses.erased_key_test()
    except erased_addresses.ErasureKeyMissing as error:
        raise CampaignError(str(error)) from None
    columns = (Contact.id, Contact.email, _suppressed_clause())
    if erased is None:
        return read_recipients(query.with_only_columns(*columns).order_by(Contact.id))
    # Less any person erased on request, whatever path re-added them, tested on the
    # contact's own key (decision 0090); read this way only once someone was erased.
    db.session.flush()
    return [
        (contact_id, email, bool(is_suppressed))
        for contact_id, email, is_suppressed, email_key in db.session.execute(
            query.with_only_columns(*columns, Contact.email_key).order_by(Contact.id)
        )
        if not erased(email_key)
    ]


# --- pause, resume, cancel ----------------------------------------------------------------


def stop_flag_key(campaign_id: int) -> str:
    """The Redis key that tells running batches to stop (pause, cancel) before their next letter."""
    return f"campaign:{current_app.config['QUEUE_NAME']}:campaign:{campaign_id}:stop"


def _raise_stop_flag(campaign_id: int, status: str) -> None:
    # Only batches already running read it, and none outlives its job's timeout. If Redis is
    # away the batches still find the new status in the database, within a second.
    expiry = max(3600, 2 * int(current_app.config["SEND_LEASE_SECONDS"]))
    try:
        get_redis().set(stop_flag_key(campaign_id), status, ex=expiry)
    except RedisError as error:
        log.warning("campaign %s: the stop flag could not be raised (%s)", campaign_id, error)


def _lower_stop_flag(campaign_id: int) -> None:
    try:
        get_redis().delete(stop_flag_key(campaign_id))
    except RedisError as error:
        log.warning("campaign %s: the stop flag could not be lowered (%s)", campaign_id, error)


def _set_status(
    campaign: Campaign,
    allowed: Iterable[CampaignStatus],
    new: CampaignStatus,
    action: str,
    reason: str,
    actor: User | None,
) -> bool:
    if campaign.status not in {s.value for s in allowed}:
        return False
    campaign.status = new.value
    campaign.status_reason = reason
    record_event(
        f"campaign.{action}",
        target_type="campaign",
        target_id=campaign.id,
        actor=actor,
        # The audit log keeps words: a reason stored as a message (stored_text) in English.
        detail={"reason": english(reason)} if reason else None,
    )
    db.session.flush()
    return True


def pause_campaign(
    campaign: Campaign, *, reason: str = PAUSED_BY_STAFF, actor: User | None = None
) -> bool:
    """Stop sending after the messages in flight; False if the campaign was not sending."""
    if not _set_status(
        campaign, [CampaignStatus.SENDING], CampaignStatus.PAUSED, "pause", reason, actor
    ):
        return False
    _raise_stop_flag(campaign.id, CampaignStatus.PAUSED.value)
    return True


def resume_campaign(campaign: Campaign, *, actor: User | None = None) -> bool:
    """Carry on sending a paused campaign; False if it was not paused, or the restore hold
    stands (nothing is sent until an admin confirms)."""
    if sending_is_held():
        return False
    if not _set_status(
        campaign, [CampaignStatus.PAUSED], CampaignStatus.SENDING, "resume", "", actor
    ):
        return False
    _lower_stop_flag(campaign.id)
    remaining = (
        db.session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(
                Delivery.campaign_id == campaign.id,
                Delivery.status.in_([s.value for s in CLAIMABLE]),
            )
        )
        or 0
    )
    enqueue_send_jobs(campaign.id, remaining)
    return True


def cancel_campaign(campaign: Campaign, *, actor: User | None = None) -> bool:
    """Stop for good: recipients not yet written to are marked cancelled."""
    if not _set_status(
        campaign,
        [
            CampaignStatus.DRAFT,
            CampaignStatus.SCHEDULED,
            CampaignStatus.SENDING,
            CampaignStatus.PAUSED,
        ],
        CampaignStatus.CANCELLED,
        "cancel",
        CANCELLED_BY_STAFF,
        actor,
    ):
        return False
    _raise_stop_flag(campaign.id, CampaignStatus.CANCELLED.value)
    # A row that may already have reached the server stays in doubt (reason "cancelled"):
    # cancelling stops what has not gone, it does not unsay what may have.
    db.session.execute(
        update(Delivery)
        .where(
            Delivery.campaign_id == campaign.id,
            Delivery.status.in_([s.value for s in CLAIMABLE]),
            Delivery.reason == "",
        )
        .values(
            status=unless_gone(DeliveryStatus.CANCELLED.value),
            reason="cancelled",
            next_attempt_at=None,
            updated_at=datetime.now(UTC),
        )
    )
    campaign.finished_at = datetime.now(UTC)
    db.session.flush()
    return True


def retry_now(campaign: Campaign, *, actor: User | None = None) -> int:
    """Make the campaign's deferred and in-doubt rows due now; return how many.

    Only a sending campaign (a paused one retries them at its resume, a finished or cancelled
    one has nothing left to try). In-doubt rows keep their Message-ID and stay counted as
    possible duplicates. Audited.
    """
    if campaign.status != CampaignStatus.SENDING.value:
        raise CampaignError(
            _l("Only a campaign that is sending can retry its letters now; resume it first.")
            if campaign.status == CampaignStatus.PAUSED.value
            else _l("This campaign is not sending: it has no letters to retry.")
        )
    now = datetime.now(UTC)
    result = db.session.execute(
        update(Delivery)
        .where(
            Delivery.campaign_id == campaign.id,
            Delivery.status.in_([DeliveryStatus.DEFERRED.value, DeliveryStatus.IN_DOUBT.value]),
            Delivery.reason == "",
            Delivery.next_attempt_at > now,
        )
        .values(next_attempt_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    record_event(
        "campaign.retry",
        target_type="campaign",
        target_id=campaign.id,
        actor=actor,
        detail={"rows": count},
    )
    if count:
        enqueue_send_jobs(campaign.id, count)
    db.session.flush()
    return count


# --- where it stands ---------------------------------------------------------------------


def is_open() -> Any:
    """SQL: the row is still someone's work (claimable, being sent, or in doubt and retried).

    An in-doubt row with a reason is final: it may have reached the server, and will not be
    tried again (the campaign was cancelled, the give-up time passed, ...; decision 0035).
    """
    return or_(
        Delivery.status.in_(
            [
                DeliveryStatus.QUEUED.value,
                DeliveryStatus.DEFERRED.value,
                DeliveryStatus.SENDING.value,
            ]
        ),
        and_(Delivery.status == DeliveryStatus.IN_DOUBT.value, Delivery.reason == ""),
    )


def status_counts(campaign_id: int, *, step: int | None = None) -> dict[str, int]:
    """Deliveries per status (of one step when given), every status present (zero when none)."""
    counts = dict.fromkeys((s.value for s in DeliveryStatus), 0)
    query = select(Delivery.status, func.count()).where(Delivery.campaign_id == campaign_id)
    if step is not None:
        query = query.where(Delivery.step == step)
    for status, count in db.session.execute(query.group_by(Delivery.status)):
        counts[status] = count
    return counts
