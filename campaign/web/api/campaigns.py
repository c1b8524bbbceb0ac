"""Campaigns through the API: create a draft, run the pre-send check, launch it, pause,
resume or cancel it, and read where its sending stands.

The same services as the campaign pages and `campaign send`
(campaign.services.sending.campaigns): the builder's checks, the campaign check and the
pre-send check of every letter, the ONE launch rule (`launch.launch_now`, the confirmation
page's launch, which goes through `check_and_launch`: the checks, the override with its
reason, and its audit are there), and the progress figures of the campaign page. Building
needs the editor role and launching, pausing, resuming and cancelling the sender role, as on
the pages.
"""

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from flask import Response, url_for
from flask_babel import gettext as _
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt
from redis.exceptions import RedisError
from sqlalchemy import select

from campaign.extensions import db
from campaign.labels import label
from campaign.models import Campaign, CampaignStatus, Role, SmtpAccount
from campaign.params import MAX_ROW_ID
from campaign.scheduling.stored_text import read
from campaign.services.backups.hold import SENDING_HELD, sending_is_held
from campaign.services.sending import campaigns as campaign_service
from campaign.services.sending import launch as launching
from campaign.services.sending import ledger, presend_runs
from campaign.services.sending.campaigns import AudienceSpec, CampaignError, PresendRefused
from campaign.services.statements import files as statement_files
from campaign.services.statements import presend
from campaign.services.statements.presend import PresendReport
from campaign.web.access import signed_in_user
from campaign.web.api.auth import operation
from campaign.web.api.blueprint import bp
from campaign.web.api.conventions import PageQuery, found, idempotent, page, with_etag
from campaign.web.api.problems import ApiProblem, invalid

log = logging.getLogger(__name__)

CampaignStatusCode = Literal["draft", "scheduled", "sending", "paused", "finished", "cancelled"]
EDITABLE = (CampaignStatus.DRAFT.value, CampaignStatus.SCHEDULED.value)
# A check lists this many problems of each kind at most (the launch page's bound); its
# figures count them all.
MAX_PROBLEMS = 200
# `list:<id>` or `segment:<id>`; the service names one that is not a list or segment.
AudienceKey = Annotated[str, Field(max_length=100)]


# --- models ----------------------------------------------------------------------------------


class CampaignListQuery(PageQuery):
    model_config = ConfigDict(extra="forbid")

    status: CampaignStatusCode | None = Field(None, description="Only campaigns in this state.")


class Audience(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include: list[AudienceKey] = Field(
        max_length=100,
        description="Lists and segments written to: `list:<id>` or `segment:<id>`.",
    )
    exclude: list[AudienceKey] = Field(
        default_factory=list, max_length=100, description="Their contacts are left out."
    )


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    statement_id: StrictInt = Field(ge=1, le=MAX_ROW_ID)
    audience: Audience
    name: str = Field("", max_length=1000, description="Default: the statement's title.")
    from_address: str = Field("", max_length=400, description="Default: the configured sender.")
    reply_to: str = Field("", max_length=400)
    smtp_account_id: StrictInt | None = Field(
        None,
        ge=1,
        le=MAX_ROW_ID,
        description="Default (null): the configured account; ids: GET /smtp-accounts.",
    )
    is_pdf_attached: StrictBool | None = Field(
        None, description="Attach a PDF of the letter; default: as the statement says."
    )
    has_list_unsubscribe: StrictBool = Field(True, description="RFC 8058 one-click unsubscribe.")
    is_open_tracking: StrictBool = Field(False, description="Off unless asked for.")
    is_click_tracking: StrictBool = Field(False, description="Off unless asked for.")
    attached_file_ids: list[StrictInt] = Field(
        default_factory=list,
        max_length=100,
        description="Files of the statement to attach: the `id` of "
        "entries in GET /statements/{id} `files`.",
    )


class SmtpAccountOut(BaseModel):
    id: int = Field(description="What `smtp_account_id` takes.")
    name: str


class SmtpAccountList(BaseModel):
    items: list[SmtpAccountOut]


class AudienceOut(BaseModel):
    include: list[str]
    exclude: list[str]


class CampaignSummary(BaseModel):
    id: int
    name: str
    status: CampaignStatusCode
    statement_id: int
    created_at: datetime
    launched_at: datetime | None
    finished_at: datetime | None


class CampaignList(BaseModel):
    items: list[CampaignSummary]
    next_cursor: str | None


class CampaignOut(CampaignSummary):
    status_reason: str = Field(description="Why it is paused, cancelled or finished early.")
    statement_version: int | None = Field(description="The version frozen at launch.")
    audience: AudienceOut
    from_address: str
    reply_to: str
    smtp_account_id: int | None
    is_pdf_attached: bool
    has_list_unsubscribe: bool
    is_open_tracking: bool
    is_click_tracking: bool
    attached_file_ids: list[int]
    is_presend_overridden: bool


class ProgressOut(BaseModel):
    """Where the sending stands: the campaign page's figures (the letter, follow-ups apart)."""

    campaign_id: int
    status: CampaignStatusCode
    status_reason: str
    is_ended: bool
    counts: dict[str, int] = Field(description="Letters per ledger status.")
    total: int
    processed: int
    percent: int
    sent: int
    deferred: int
    failed: int
    bounced: int
    suppressed: int
    in_doubt: int
    cancelled: int
    queued: int
    remaining: int
    rate_per_minute: float
    eta_seconds: int | None


class AudienceCountOut(BaseModel):
    total: int = Field(description="Contacts in the audience, exclusions applied.")
    suppressed: int = Field(description="Of those, on the suppression list.")
    sendable: int


class ContactProblemOut(BaseModel):
    contact_id: int | None
    email: str
    language: str
    severity: Literal["error", "warning"]
    code: str
    message: str


class TextProblemOut(BaseModel):
    language: str
    line: int = Field(description="1-based line of the text; 0: the subject; -1: no one line.")
    where: str
    severity: Literal["error", "warning"]
    code: str
    message: str


class PresendOut(BaseModel):
    """The pre-send check: every recipient's letter rendered and read (nothing written)."""

    statement_id: int
    statement_version: int
    checked: int
    errors: int
    warnings: int
    contacts_with_errors: int
    languages: dict[str, int] = Field(description="Recipients per letter language.")
    codes: dict[str, int] = Field(description="Problems per code.")
    text_problems: list[TextProblemOut]
    problems: list[ContactProblemOut]
    problems_listed: int = Field(
        description=f"How many entries `problems` holds: all of them, or the first "
        f"{MAX_PROBLEMS} when there are more (`errors` and `warnings` count them all; "
        f"`text_problems` is cut at {MAX_PROBLEMS} too)."
    )
    summary: str


class CheckProgressOut(BaseModel):
    """The pre-send check running as a job (decision 0071)."""

    status: Literal["not_started", "queued", "running", "stopped"] = Field(
        description=(
            "`not_started`: no result for the letters as they are now, and no job: POST "
            "the check. `queued`: waiting for a worker (if it lasts, is the worker "
            "running?). `running`: a worker reads the letters. `stopped`: it failed, could "
            "not be queued or stopped answering (`reason`); POST the check again."
        )
    )
    checked: int = Field(description="Letters read so far.")
    total: int
    percent: int
    reason: str = Field("", description="Why it stopped (`stopped`), in words; else empty.")


class CheckOut(BaseModel):
    campaign_id: int
    errors: list[str] = Field(description="What stops the launch.")
    warnings: list[str]
    audience: AudienceCountOut
    presend: PresendOut | None = Field(
        description=(
            "null when it cannot run (no statement text, no list or segment), and while no "
            "current result exists (`progress` says why: not started, queued, running, "
            "stopped)."
        )
    )
    launchable: bool = Field(
        description=(
            "No errors and a current pre-send result without errors: a launch needs no "
            "override. false while `presend` is null (nothing checked yet)."
        )
    )
    needs_override: bool = Field(
        description=(
            "Only letters' errors (in a current `presend` result) stand in the way: a launch "
            "needs override and reason. false while `presend` is null."
        )
    )
    progress: CheckProgressOut | None = Field(
        None,
        description=(
            "While no current pre-send result exists for letters that can be checked: "
            "whether the job is started and how far it is; read the Location until "
            "`presend` is filled. null when `presend` is filled or cannot run."
        ),
    )


class LaunchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    override: StrictBool = Field(
        False, description="Launch although some letters have errors (needs `reason`)."
    )
    reason: str = Field(
        "", max_length=1000, description="Why, when overriding: kept in the audit log."
    )


# --- helpers ---------------------------------------------------------------------------------


def _campaign(campaign_id: int) -> Campaign:
    return found(Campaign, campaign_id, _("There is no campaign with this id."))


def _summary_fields(campaign: Campaign) -> dict[str, Any]:
    return {
        "id": campaign.id,
        "name": campaign.name,
        "status": campaign.status,
        "statement_id": campaign.statement_id,
        "created_at": campaign.created_at,
        "launched_at": campaign.launched_at,
        "finished_at": campaign.finished_at,
    }


def _representation(campaign: Campaign) -> CampaignOut:
    spec = AudienceSpec.from_json(campaign.audience)
    version = campaign.statement_version
    return CampaignOut(
        **_summary_fields(campaign),
        status_reason=read(campaign.status_reason),
        statement_version=version.number if version is not None else None,
        audience=AudienceOut(include=list(spec.include), exclude=list(spec.exclude)),
        from_address=campaign.from_address,
        reply_to=campaign.reply_to,
        smtp_account_id=campaign.smtp_account_id,
        is_pdf_attached=campaign.is_pdf_attached,
        has_list_unsubscribe=campaign.has_list_unsubscribe,
        is_open_tracking=campaign.is_open_tracking,
        is_click_tracking=campaign.is_click_tracking,
        attached_file_ids=list(campaign.attached_file_ids or []),
        is_presend_overridden=campaign.is_presend_overridden,
    )


def _progress(campaign: Campaign) -> ProgressOut:
    figures = ledger.campaign_progress(campaign).to_json()
    return ProgressOut(
        campaign_id=campaign.id,
        **{name: figures[name] for name in ProgressOut.model_fields if name != "campaign_id"},
    )


def _status_word(campaign: Campaign) -> str:
    return label(campaign.status, "campaign_status").lower()


def _unlaunched(campaign_id: int) -> Campaign:
    """The campaign, if it is still a draft or scheduled; else 409."""
    campaign = _campaign(campaign_id)
    if campaign.status not in EDITABLE:
        raise ApiProblem(
            409,
            _(
                "This campaign was already launched (it is %(status)s).",
                status=_status_word(campaign),
            ),
        )
    return campaign


def _presend(report: PresendReport) -> PresendOut:
    def severity(value: str) -> Literal["error", "warning"]:
        return "error" if value == "error" else "warning"

    return PresendOut(
        statement_id=report.statement_id,
        statement_version=report.statement_version,
        checked=report.checked,
        errors=report.errors,
        warnings=report.warnings,
        contacts_with_errors=report.contacts_with_errors,
        languages=dict(report.languages),
        codes=dict(report.codes),
        text_problems=[
            TextProblemOut(
                language=p.language,
                line=p.line,
                where=p.where,
                severity=severity(p.problem.severity),
                code=p.problem.code,
                message=p.problem.message,
            )
            for p in report.text_problems[:MAX_PROBLEMS]
        ],
        problems=[
            ContactProblemOut(
                contact_id=p.contact_id,
                email=p.email,
                language=p.language,
                severity=severity(p.problem.severity),
                code=p.problem.code,
                message=p.problem.message,
            )
            for p in report.problems[:MAX_PROBLEMS]
        ],
        problems_listed=min(len(report.problems), MAX_PROBLEMS),
        summary=report.summary(),
    )


# --- campaigns -------------------------------------------------------------------------------


@bp.get("/campaigns")
@operation(
    "campaigns:read", query=CampaignListQuery, responses={200: CampaignList}, tags=("campaigns",)
)
def list_campaigns(query: CampaignListQuery) -> CampaignList:
    """List campaigns, oldest first."""
    chosen = select(Campaign)
    if query.status is not None:
        chosen = chosen.where(Campaign.status == query.status)
    rows, next_cursor = page(
        chosen, Campaign.id, purpose="campaigns", limit=query.limit, cursor=query.cursor
    )
    return CampaignList(
        items=[CampaignSummary(**_summary_fields(c)) for c in rows], next_cursor=next_cursor
    )


@bp.get("/smtp-accounts")
@operation("campaigns:read", responses={200: SmtpAccountList}, tags=("campaigns",))
def list_smtp_accounts() -> SmtpAccountList:
    """The SMTP accounts a campaign can send through: their ids and names, by name.

    Read-only; hosts, users and passwords stay on the settings pages."""
    rows = db.session.scalars(select(SmtpAccount).order_by(SmtpAccount.name)).all()
    return SmtpAccountList(items=[SmtpAccountOut(id=a.id, name=a.name) for a in rows])


@bp.post("/campaigns")
@operation(
    "campaigns:write",
    role=Role.EDITOR,
    json=CampaignIn,
    responses={201: CampaignOut},
    tags=("campaigns",),
    errors=(409,),
    writes=True,
)
@idempotent
def create_campaign(json: CampaignIn) -> Response:
    """Create a draft campaign: a statement, an audience, an SMTP account and options.

    Checked as the campaign builder checks it (the lists and segments exist, the From and
    Reply-To are addresses, the files are the statement's); tracking is off unless asked."""
    try:
        statement = campaign_service.statement_to_send(json.statement_id)
        account = campaign_service.chosen_account(
            json.smtp_account_id, given=json.smtp_account_id is not None
        )
        campaign = campaign_service.create_campaign(
            statement,
            name=json.name,
            audience=AudienceSpec(tuple(json.audience.include), tuple(json.audience.exclude)),
            from_address=json.from_address,
            reply_to=json.reply_to,
            smtp_account=account,
            is_pdf_attached=json.is_pdf_attached,
            has_list_unsubscribe=json.has_list_unsubscribe,
            is_open_tracking=json.is_open_tracking,
            is_click_tracking=json.is_click_tracking,
            actor=signed_in_user(),
        )
        statement_files.choose_files(campaign, json.attached_file_ids)
    except CampaignError as error:
        if error.field in ("include", "exclude"):
            error.field = f"audience.{error.field}"
        raise invalid(error.field or "campaign", str(error)) from None
    return with_etag(
        _representation(campaign),
        201,
        location=url_for("api.get_campaign", campaign_id=campaign.id),
    )


@bp.get("/campaigns/<int:campaign_id>")
@operation("campaigns:read", responses={200: CampaignOut}, tags=("campaigns",), errors=(404,))
def get_campaign(campaign_id: int) -> Response:
    """Read a campaign's settings and state."""
    return with_etag(_representation(_campaign(campaign_id)))


@bp.get("/campaigns/<int:campaign_id>/status")
@operation("campaigns:read", responses={200: ProgressOut}, tags=("campaigns",), errors=(404,))
def campaign_status(campaign_id: int) -> ProgressOut:
    """Where the sending stands: the figures of the campaign page."""
    return _progress(_campaign(campaign_id))


@bp.post("/campaigns/<int:campaign_id>/check")
@operation(
    "campaigns:write",
    role=Role.EDITOR,
    responses={200: CheckOut, 202: CheckOut},
    tags=("campaigns",),
    errors=(404, 409, 503),
    writes=True,
)
def check_campaign(campaign_id: int) -> Any:
    """The pre-send check of a draft: what stops a launch, and every letter read.

    The campaign page's check (audience, addresses, files, tracking) and the pre-send
    check of each recipient's letter (`campaign check`'s figures). A result stored since
    nothing changed is answered as it is; a small audience is checked in the request; a
    larger one is checked by a job (one a campaign): the answer is 202 with `progress` and
    a Location to read until `presend` is filled (503 when the job queue does not answer).
    Needs `campaigns:write`: it may start a job and it stores the result."""
    campaign = _unlaunched(campaign_id)
    try:
        return _check_out(campaign)
    except campaign_service.PresendNeeded:
        run = presend_runs.start(
            campaign, campaign_service.recipients_query(campaign), actor=signed_in_user()
        )
        key = run.run_key
        try:
            db.session.commit()  # the job is queued once its row is (not after the answer)
        except RedisError:
            log.exception("pre-send check of campaign %s: the queue did not take it", campaign_id)
            # The row is committed, the session's transaction ended in its after_commit.
            db.session.close()
            presend_runs.not_queued(campaign_id, key)
            db.session.commit()
            raise ApiProblem(503, presend_runs.failure_text(presend_runs.NOT_QUEUED)) from None
        return with_etag(
            _check_out(campaign, run=False),
            202,
            location=url_for("api.campaign_check", campaign_id=campaign.id),
        )


@bp.get("/campaigns/<int:campaign_id>/check")
@operation(
    "campaigns:read",
    role=Role.EDITOR,
    responses={200: CheckOut},
    tags=("campaigns",),
    errors=(404, 409),
)
def campaign_check(campaign_id: int) -> CheckOut:
    """The pre-send check as it stands: the stored result while current (`presend`), or
    the job's `progress`; nothing is checked or started (POST does)."""
    return _check_out(_unlaunched(campaign_id), run=False)


def _check_out(campaign: Campaign, *, run: bool = True) -> CheckOut:
    """The check's answer; `run`: check the letters here when no result is current
    (PresendNeeded when there are too many)."""
    check = campaign_service.check_campaign(campaign)
    progress = None
    if run:
        report = campaign_service.presend_report(campaign)
    else:
        report, progress = _stored_check(campaign)
    presend_errors = bool(report is not None and report.has_errors)
    # Nothing is claimed launchable without a current result of the letters.
    return CheckOut(
        campaign_id=campaign.id,
        errors=[str(e) for e in check.errors],
        warnings=[str(w) for w in check.warnings],
        audience=AudienceCountOut(
            total=check.count.total,
            suppressed=check.count.suppressed,
            sendable=check.count.sendable,
        ),
        presend=_presend(report) if report is not None else None,
        launchable=not check.errors and report is not None and not presend_errors,
        needs_override=not check.errors and presend_errors,
        progress=progress,
    )


def _stored_check(campaign: Campaign) -> tuple[PresendReport | None, CheckProgressOut | None]:
    """The stored result if current, else where the job stands (not started, queued,
    running, stopped); (None, None) when the check cannot run."""
    if campaign.statement_id is None:
        return None, None
    try:
        recipients = campaign_service.recipients_query(campaign)
    except CampaignError:
        return None, None
    found = presend_runs.state(campaign, recipients)
    if found.report is not None:
        return found.report, None
    status: Literal["not_started", "queued", "running", "stopped"] = "not_started"
    if found.is_running:
        status = "queued" if found.is_waiting else "running"
    elif found.is_failed:
        status = "stopped"
    running = found.is_running or found.is_failed
    return None, CheckProgressOut(
        status=status,
        checked=found.checked if running else 0,
        total=found.total,
        percent=found.percent if running else 0,
        reason=found.failure,
    )


@bp.post("/campaigns/<int:campaign_id>/launch")
@operation(
    "campaigns:write",
    role=Role.SENDER,
    json=LaunchIn,
    responses={202: CampaignOut},
    tags=("campaigns",),
    errors=(404, 409),
    writes=True,
)
@idempotent
def launch_campaign(campaign_id: int, json: LaunchIn) -> Response:
    """Launch a draft: its ledger is written and its letters queued (sender role).

    The launch runs the campaign check and the pre-send check itself. Letters with errors
    refuse it (422 naming them) unless `override` is true with a `reason`, which the audit
    log keeps. A launched campaign is never launched again (409); with an `Idempotency-Key`
    a retried request gets the first answer. A yearly campaign sends its next copy now (the
    answer is that copy)."""
    campaign = _unlaunched(campaign_id)
    try:
        launched = launching.launch_now(
            campaign,
            actor=signed_in_user(),
            override=json.override,
            override_reason=json.reason,
        )
    except PresendRefused as error:
        db.session.rollback()
        if error.field == "override_reason":
            raise invalid("reason", str(error)) from None
        lines = presend.problem_lines(error.report, errors_only=True)
        raise ApiProblem(
            422,
            _("Not launched: %(error)s.", error=str(error)),
            errors=[{"field": "override", "message": str(error)}]
            + [{"field": "letters", "message": str(line)} for line in lines[:MAX_PROBLEMS]],
        ) from None
    except CampaignError as error:
        db.session.rollback()
        check = campaign_service.check_campaign(_campaign(campaign_id))
        messages = [str(e) for e in check.errors] or [str(error)]
        raise ApiProblem(
            422,
            _("Not launched: %(error)s.", error=str(error)),
            errors=[{"field": error.field or "campaign", "message": m} for m in messages],
        ) from None
    if launched is None:
        raise ApiProblem(409, _("This campaign was already launched; nothing was queued twice."))
    return with_etag(
        _representation(launched),
        202,
        location=url_for("api.campaign_status", campaign_id=launched.id),
    )


@bp.post("/campaigns/<int:campaign_id>/pause")
@operation(
    "campaigns:write",
    role=Role.SENDER,
    responses={200: ProgressOut},
    tags=("campaigns",),
    errors=(404, 409),
    writes=True,
)
def pause_campaign(campaign_id: int) -> ProgressOut:
    """Pause a sending campaign: letters handed to the server finish, no new ones start."""
    campaign = _campaign(campaign_id)
    if not campaign_service.pause_campaign(campaign, actor=signed_in_user()):
        raise ApiProblem(
            409,
            _(
                "Not paused: the campaign is %(status)s, not sending.",
                status=_status_word(campaign),
            ),
        )
    return _progress(campaign)


@bp.post("/campaigns/<int:campaign_id>/resume")
@operation(
    "campaigns:write",
    role=Role.SENDER,
    responses={200: ProgressOut},
    tags=("campaigns",),
    errors=(404, 409),
    writes=True,
)
def resume_campaign(campaign_id: int) -> ProgressOut:
    """Resume a paused campaign: sending carries on where it stopped."""
    campaign = _campaign(campaign_id)
    if not campaign_service.resume_campaign(campaign, actor=signed_in_user()):
        if sending_is_held():  # the service refuses while a restore hold stands: say why
            raise ApiProblem(409, _("Not resumed: %(reason)s.", reason=SENDING_HELD))
        raise ApiProblem(
            409,
            _(
                "Not resumed: the campaign is %(status)s, not paused.",
                status=_status_word(campaign),
            ),
        )
    return _progress(campaign)


@bp.post("/campaigns/<int:campaign_id>/cancel")
@operation(
    "campaigns:write",
    role=Role.SENDER,
    responses={200: ProgressOut},
    tags=("campaigns",),
    errors=(404, 409),
    writes=True,
)
def cancel_campaign(campaign_id: int) -> ProgressOut:
    """Cancel a campaign for good: recipients not yet written to will not be."""
    campaign = _campaign(campaign_id)
    if not campaign_service.cancel_campaign(campaign, actor=signed_in_user()):
        raise ApiProblem(
            409,
            _("Not cancelled: the campaign is already %(status)s.", status=_status_word(campaign)),
        )
    return _progress(campaign)
