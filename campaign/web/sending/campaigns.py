"""Campaigns: build, launch and follow a campaign's sending."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import format_timedelta, ngettext
from flask_babel import gettext as _
from redis.exceptions import RedisError
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from campaign.extensions import db
from campaign.labels import choices, label
from campaign.models import (
    Campaign,
    CampaignStatus,
    Delivery,
    Role,
    SmtpAccount,
    Statement,
    StatementAttachment,
)
from campaign.params import page_number, row_id
from campaign.scheduling import summary as schedule_summary
from campaign.scheduling.stored_text import read
from campaign.services.backups.hold import SENDING_HELD, sending_is_held
from campaign.services.contacts.audiences import audience_choices
from campaign.services.sending import campaigns as campaign_service
from campaign.services.sending import launch as confirmation
from campaign.services.sending import ledger, letter_tests, presend_runs
from campaign.services.sending.campaigns import AudienceSpec, CampaignError
from campaign.services.statements import files as statement_files
from campaign.web.access import allow, may, signed_in_user

log = logging.getLogger(__name__)
bp = Blueprint("campaigns", __name__, url_prefix="/campaigns")

EDITABLE = (CampaignStatus.DRAFT.value, CampaignStatus.SCHEDULED.value)
# The launch page lists this many pre-send problems at most; the summary counts them all.
MAX_PROBLEMS = 200


def _status_labels() -> dict[str, str]:
    """Delivery statuses and their labels in the interface language, in the ledger's order."""
    return dict(choices("delivery_status"))


@bp.app_template_global("read_stored")
def read_stored(stored: str | None) -> str:
    """A text the scheduler stored (a status reason, a run's detail) in the reader's words."""
    return read(stored)


# --- the builder form ----------------------------------------------------------------------


@dataclass
class CampaignForm:
    """The builder's fields as the user typed them, kept when the save is refused."""

    name: str = ""
    statement_id: str = ""
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    from_address: str = ""
    reply_to: str = ""
    smtp_account_id: str = ""
    is_pdf_attached: bool = False
    has_list_unsubscribe: bool = True
    is_open_tracking: bool = False
    is_click_tracking: bool = False
    attached_file_ids: list[str] = field(default_factory=list)

    @classmethod
    def from_request(cls, form: MultiDict[str, str]) -> CampaignForm:
        return cls(
            name=form.get("name", ""),
            statement_id=form.get("statement_id", ""),
            include=form.getlist("include"),
            exclude=form.getlist("exclude"),
            from_address=form.get("from_address", ""),
            reply_to=form.get("reply_to", ""),
            smtp_account_id=form.get("smtp_account_id", ""),
            is_pdf_attached="is_pdf_attached" in form,
            has_list_unsubscribe="has_list_unsubscribe" in form,
            is_open_tracking="is_open_tracking" in form,
            is_click_tracking="is_click_tracking" in form,
            attached_file_ids=form.getlist("attached_file_ids"),
        )

    @classmethod
    def from_campaign(cls, campaign: Campaign) -> CampaignForm:
        spec = AudienceSpec.from_json(campaign.audience)
        return cls(
            name=campaign.name,
            statement_id=str(campaign.statement_id),
            include=list(spec.include),
            exclude=list(spec.exclude),
            from_address=campaign.from_address,
            reply_to=campaign.reply_to,
            smtp_account_id=str(campaign.smtp_account_id or ""),
            is_pdf_attached=campaign.is_pdf_attached,
            has_list_unsubscribe=campaign.has_list_unsubscribe,
            is_open_tracking=campaign.is_open_tracking,
            is_click_tracking=campaign.is_click_tracking,
            attached_file_ids=[str(i) for i in campaign.attached_file_ids or []],
        )

    @classmethod
    def blank(cls, statement: Statement | None) -> CampaignForm:
        return cls(
            name=statement.title if statement else "",
            statement_id=str(statement.id) if statement else "",
            from_address=str(current_app.config["MAIL_DEFAULT_SENDER"] or ""),
            is_pdf_attached=bool(statement and statement.is_pdf_attached),
        )

    @property
    def audience(self) -> AudienceSpec:
        return AudienceSpec(tuple(self.include), tuple(self.exclude))


def _statement_of(form: CampaignForm) -> Statement:
    return campaign_service.statement_to_send(row_id(form.statement_id))


def _account_of(form: CampaignForm) -> SmtpAccount | None:
    return campaign_service.chosen_account(
        row_id(form.smtp_account_id), given=bool(form.smtp_account_id)
    )


def _save(form: CampaignForm, campaign: Campaign | None) -> Campaign:
    statement = _statement_of(form)
    account = _account_of(form)
    options: dict[str, Any] = {
        "name": form.name,
        "audience": form.audience,
        "from_address": form.from_address,
        "reply_to": form.reply_to,
        "smtp_account": account,
        "is_pdf_attached": form.is_pdf_attached,
        "has_list_unsubscribe": form.has_list_unsubscribe,
        "is_open_tracking": form.is_open_tracking,
        "is_click_tracking": form.is_click_tracking,
    }
    if campaign is None:
        campaign = campaign_service.create_campaign(statement, actor=signed_in_user(), **options)
    else:
        campaign_service.update_campaign(campaign, statement=statement, **options)
    statement_files.choose_files(campaign, form.attached_file_ids)
    return campaign


def _render_builder(
    form: CampaignForm, campaign: Campaign | None, error: CampaignError | None = None
) -> Any:
    statements = list(db.session.scalars(select(Statement).order_by(Statement.title, Statement.id)))
    accounts = list(db.session.scalars(select(SmtpAccount).order_by(SmtpAccount.name)))
    try:
        count_text = _count_text(campaign_service.count_audience(form.audience))
    except CampaignError as problem:
        count_text = str(problem)
    return render_template(
        "campaigns/form.html",
        form=form,
        campaign=campaign,
        error=error,
        statements=statements,
        accounts=accounts,
        choices=audience_choices(),
        count_text=count_text,
        files=_statement_files(form),
    ), (422 if error else 200)


def _statement_files(form: CampaignForm) -> list[StatementAttachment]:
    """The files of the form's statement, to choose from."""
    statement_id = row_id(form.statement_id)
    if statement_id is None:
        return []
    return list(
        db.session.scalars(
            select(StatementAttachment)
            .where(StatementAttachment.statement_id == statement_id)
            .order_by(StatementAttachment.id)
        )
    )


def _count_text(found: campaign_service.AudienceCount) -> str:
    return ngettext(
        "%(num)d contact, %(suppressed)d suppressed, %(sendable)d will be written to",
        "%(num)d contacts, %(suppressed)d suppressed, %(sendable)d will be written to",
        found.total,
        suppressed=found.suppressed,
        sendable=found.sendable,
    )


@bp.route("/new", methods=["GET", "POST"])
@allow(Role.EDITOR)
def new() -> Any:
    if request.method == "GET":
        statement_id = row_id(request.args.get("statement", ""))
        statement = db.session.get(Statement, statement_id) if statement_id is not None else None
        return _render_builder(CampaignForm.blank(statement), None)
    form = CampaignForm.from_request(request.form)
    try:
        campaign = _save(form, None)
    except CampaignError as error:
        db.session.rollback()
        return _render_builder(form, None, error)
    db.session.commit()
    flash(
        _(
            "Campaign %(name)s saved as a draft. Check it below before launching.",
            name=campaign.name,
        ),
        "success",
    )
    return redirect(url_for("campaigns.show", campaign_id=campaign.id))


@bp.route("/<int:campaign_id>/edit", methods=["GET", "POST"])
@allow(Role.EDITOR)
def edit(campaign_id: int) -> Any:
    campaign = db.get_or_404(Campaign, campaign_id)
    if campaign.status not in EDITABLE:
        flash(
            _(
                "The campaign is %(status)s: its settings can no longer change.",
                status=label(campaign.status, "campaign_status").lower(),
            ),
            "error",
        )
        return redirect(url_for("campaigns.show", campaign_id=campaign.id))
    if request.method == "GET":
        return _render_builder(CampaignForm.from_campaign(campaign), campaign)
    form = CampaignForm.from_request(request.form)
    try:
        _save(form, campaign)
    except CampaignError as error:
        db.session.rollback()
        return _render_builder(form, db.session.get(Campaign, campaign_id), error)
    db.session.commit()
    flash(_("Campaign saved."), "success")
    return redirect(url_for("campaigns.show", campaign_id=campaign.id))


@bp.route("/count", methods=["POST"])
@allow(Role.EDITOR)
def count() -> Any:
    """The live count: the builder's audience in, {"total", "suppressed", "sendable"} out."""
    form = CampaignForm.from_request(request.form)
    try:
        found = campaign_service.count_audience(form.audience)
    except CampaignError as error:
        return {"error": str(error), "field": error.field}, 422
    return {
        "total": found.total,
        "suppressed": found.suppressed,
        "sendable": found.sendable,
        "text": _count_text(found),
    }


# --- list and campaign page ----------------------------------------------------------------


@bp.route("/")
@allow(Role.VIEWER)
def index() -> Any:
    campaigns = list(
        db.session.scalars(select(Campaign).order_by(Campaign.created_at.desc(), Campaign.id))
    )
    return render_template(
        "campaigns/index.html",
        campaigns=campaigns,
        totals=ledger.sent_and_totals(c.id for c in campaigns),
        schedules=schedule_summary.campaign_schedules(campaigns),
        may_build=may(Role.EDITOR),
    )


@bp.route("/<int:campaign_id>")
@allow(Role.VIEWER)
def show(campaign_id: int) -> Any:
    campaign = db.get_or_404(Campaign, campaign_id)
    is_draft = campaign.status in EDITABLE
    check = campaign_service.check_campaign(campaign) if is_draft else None
    letters = _letters_check(campaign) if is_draft and may(Role.EDITOR) else None
    planned = schedule_summary.campaign_schedules([campaign]).get(campaign.id)
    return render_template(
        "campaigns/show.html",
        campaign=campaign,
        schedule_text=planned.text() if planned is not None else "",
        is_scheduled=planned is not None and planned.first_send is not None,
        is_draft=is_draft,
        check=check,
        report=letters.report if letters is not None else None,
        letters=letters,
        check_age=result_age(letters),
        check_text=progress_text(letters) if letters is not None else "",
        max_problems=MAX_PROBLEMS,
        progress=None if is_draft else ledger.campaign_progress(campaign),
        audience_labels=dict(audience_choices()),
        status_labels=_status_labels(),
        may_edit=may(Role.EDITOR),
        may_send=may(Role.SENDER),
    )


def _recipients(campaign: Campaign) -> Any:
    """The campaign's recipients query; None when the check cannot run (no statement, no
    list or segment: the campaign check names what is missing)."""
    if campaign.statement_id is None or not AudienceSpec.from_json(campaign.audience).include:
        return None
    try:
        return campaign_service.recipients_query(campaign)
    except CampaignError:
        return None


def _letters_check(campaign: Campaign) -> presend_runs.CheckState | None:
    """The pre-send check as the draft page shows it: the stored result while current;
    else checked here for a small audience (stored, so the next visit reads it), else the
    job's progress or a button to start it (decision 0071)."""
    recipients = _recipients(campaign)
    if recipients is None:
        return None
    found = presend_runs.state(campaign, recipients)
    if (
        found.report is not None
        or found.is_running
        or found.is_slow
        or found.recipients > presend_runs.INLINE_LIMIT
    ):
        return found
    # Too slow for a request: remembered on the run's row, the next visit shows the button.
    with contextlib.suppress(presend_runs.CheckTooLong):
        presend_runs.run_here(campaign, recipients, seconds=presend_runs.INLINE_SECONDS)
    # This GET writes the campaign's one presend_runs row: a cache of what the letters say
    # now, the same whoever asks and however often (decision 0071).
    db.session.commit()
    return presend_runs.state(campaign, recipients)


def result_age(found: presend_runs.CheckState | None) -> str:
    """How long ago the stored result was made: "3 minutes ago" ("just now" under a
    minute, and when the clocks of the worker and the web app disagree)."""
    age = found.age if found is not None else None
    if age is None:
        return ""
    if age < timedelta(minutes=1):
        return _("just now")
    return format_timedelta(-age, add_direction=True)


def progress_text(found: presend_runs.CheckState) -> str:
    """How far the check is, in words: waiting for a worker, or n of N letters read."""
    if found.is_waiting:
        return _("Waiting for a worker to take the check. If this lasts, is the worker running?")
    # The plural agrees with the letters read ("1 lettre lue sur 3").
    return ngettext(
        "%(num)d letter of %(total)s read (%(percent)s%%)",
        "%(num)d letters of %(total)s read (%(percent)s%%)",
        found.checked,
        total=found.total,
        percent=found.percent,
    )


def _check_progress(found: presend_runs.CheckState) -> dict[str, Any]:
    return {
        "is_running": found.is_running,
        "is_waiting": found.is_waiting,
        "checked": found.checked,
        "total": found.total,
        "percent": found.percent,
        "text": progress_text(found),
    }


@bp.route("/<int:campaign_id>/check", methods=["POST"])
@allow(Role.EDITOR)
def start_check(campaign_id: int) -> Any:
    """Start the pre-send check as a job (one a campaign: a second press joins the first)."""
    campaign = db.get_or_404(Campaign, campaign_id)
    recipients = _recipients(campaign) if campaign.status in EDITABLE else None
    if recipients is not None:
        run = presend_runs.start(campaign, recipients, actor=signed_in_user())
        key = run.run_key
        try:
            db.session.commit()  # the job is queued once the row is
        except RedisError:
            log.exception("pre-send check of campaign %s: the queue did not take it", campaign_id)
            # The row is committed, the session's transaction ended in its after_commit.
            db.session.close()
            presend_runs.not_queued(campaign_id, key)
            db.session.commit()
            flash(presend_runs.failure_text(presend_runs.NOT_QUEUED), "error")
        else:
            flash(_("The pre-send check is running; this page shows its progress."), "info")
    return redirect(url_for("campaigns.show", campaign_id=campaign_id, _anchor="letters-check"))


@bp.route("/<int:campaign_id>/check")
@allow(Role.EDITOR)
def check_progress(campaign_id: int) -> Any:
    """The pre-send check's progress, for the page's poll."""
    campaign = db.get_or_404(Campaign, campaign_id)
    recipients = _recipients(campaign)
    if recipients is None:
        return {"is_running": False, "checked": 0, "total": 0, "percent": 0, "text": ""}
    return _check_progress(presend_runs.state(campaign, recipients))


@bp.route("/<int:campaign_id>/progress")
@allow(Role.VIEWER)
def progress(campaign_id: int) -> Any:
    campaign = db.get_or_404(Campaign, campaign_id)
    return ledger.campaign_progress(campaign).to_json()


# --- launch, pause, resume, cancel ------------------------------------------------------


def _already_launched(campaign: Campaign) -> Any:
    flash(
        _(
            "This campaign was already launched (it is %(status)s).",
            status=label(campaign.status, "campaign_status").lower(),
        ),
        "info",
    )
    return redirect(url_for("campaigns.show", campaign_id=campaign.id))


def _render_confirmation(
    campaign: Campaign,
    summary: confirmation.LaunchSummary,
    *,
    changes: list[str] | None = None,
    problem: str = "",
    status: int = 200,
) -> Any:
    planned = schedule_summary.campaign_schedules([campaign]).get(campaign.id)
    return render_template(
        "campaigns/confirm.html",
        campaign=campaign,
        summary=summary,
        check=summary.check,
        report=summary.report,
        token=confirmation.sign_summary(summary),
        changes=changes or [],
        problem=problem,
        max_problems=MAX_PROBLEMS,
        schedule_text=planned.text() if planned is not None else "",
        is_yearly=planned is not None and planned.is_yearly,
    ), status


@bp.route("/<int:campaign_id>/launch", methods=["GET", "POST"])
@allow(Role.SENDER)
def launch(campaign_id: int) -> Any:
    """GET: the confirmation (who, through what, how fast, which problems); POST: launch.

    Without a current pre-send result for more letters than a request checks, the campaign
    page is shown again with the check to start (decision 0071)."""
    try:
        return _launch_page(campaign_id)
    except campaign_service.PresendNeeded as error:
        db.session.rollback()
        flash(_("Not launched: %(error)s.", error=str(error)), "error")
        return redirect(url_for("campaigns.show", campaign_id=campaign_id, _anchor="letters-check"))


def _launch_page(campaign_id: int) -> Any:
    campaign = db.get_or_404(Campaign, campaign_id)
    if campaign.status not in EDITABLE:
        return _already_launched(campaign)
    if request.method == "GET":
        summary = confirmation.summarise_launch(campaign)
        db.session.commit()  # a pre-send check run for the page is stored for the launch
        return _render_confirmation(campaign, summary)
    # The token names no pre-send figure: the launch runs the check itself (decision 0056),
    # so a confirm reads it only when the page is shown again.
    summary = confirmation.summarise_launch(campaign, with_report=False)
    try:
        changes = confirmation.changes_since(request.form.get("token", ""), summary)
    except confirmation.ConfirmationError as error:
        return _render_confirmation(
            campaign,
            confirmation.summarise_launch(campaign),
            problem=_("Not launched: %(error)s.", error=str(error)),
            status=400,
        )
    if changes:
        # The page was left open while the audience or the settings changed: ask again.
        return _render_confirmation(
            campaign, confirmation.summarise_launch(campaign), changes=changes, status=409
        )
    if request.form.get("confirm") != "1":
        return _render_confirmation(
            campaign,
            confirmation.summarise_launch(campaign),
            problem=_("Not launched: tick the box to confirm the launch."),
            status=422,
        )
    try:
        launched = confirmation.launch_now(
            campaign,
            actor=signed_in_user(),
            override=request.form.get("override") == "1",
            override_reason=request.form.get("override_reason", ""),
        )
    except CampaignError as error:
        db.session.rollback()
        campaign = db.get_or_404(Campaign, campaign_id)
        # An override without its reason is the form's to fix, in the service's words.
        problem = (
            str(error)
            if error.field == "override_reason"
            else _("Not launched: %(error)s.", error=str(error))
        )
        return _render_confirmation(
            campaign, confirmation.summarise_launch(campaign), problem=problem, status=422
        )
    if launched is None:
        db.session.rollback()
        flash(_("This campaign was already launched; nothing was queued twice."), "info")
        return redirect(url_for("campaigns.show", campaign_id=campaign_id))
    db.session.commit()
    if launched.id != campaign_id:
        flash(
            _(
                "“%(name)s” launched now in place of its date: the letters are being sent; "
                "the yearly rule goes on next year.",
                name=launched.name,
            ),
            "success",
        )
    else:
        flash(_("Campaign launched: the letters are being sent."), "success")
    return redirect(url_for("campaigns.show", campaign_id=launched.id))


# --- a test letter to staff ---------------------------------------------------------------


def _render_test_letter(
    campaign: Campaign, contact_id: str, user_ids: list[str], error: str = ""
) -> Any:
    return render_template(
        "campaigns/test_letter.html",
        campaign=campaign,
        contacts=letter_tests.contact_choices(campaign),
        staff=letter_tests.staff_choices(),
        chosen_contact=contact_id,
        chosen_users=set(user_ids),
        error=error,
    ), (422 if error else 200)


@bp.route("/<int:campaign_id>/test-letter", methods=["GET", "POST"])
@allow(Role.EDITOR)
def test_letter(campaign_id: int) -> Any:
    """Send the letter one contact would get to yourself or colleagues, marked [Test]."""
    campaign = db.get_or_404(Campaign, campaign_id)
    if request.method == "GET":
        return _render_test_letter(campaign, "", [str(signed_in_user().id)])
    contact_id = request.form.get("contact_id", "")
    user_ids = request.form.getlist("user_ids")
    try:
        result = letter_tests.send_test_letter(
            campaign,
            row_id(contact_id),
            [i for i in (row_id(u) for u in user_ids) if i is not None],
            actor=signed_in_user(),
        )
    except letter_tests.TestLetterError as error:
        if error.audited:
            db.session.commit()  # the copies that left and the failure stay in the audit log
        else:
            db.session.rollback()
        return _render_test_letter(campaign, contact_id, user_ids, str(error))
    db.session.commit()
    flash(
        _(
            "Test letter “%(subject)s” sent to %(addresses)s. It is not counted in the "
            "campaign's figures.",
            subject=result.subject,
            addresses=", ".join(result.sent_to),
        ),
        "success",
    )
    return redirect(url_for("campaigns.show", campaign_id=campaign.id))


@bp.route("/<int:campaign_id>/pause", methods=["POST"])
@allow(Role.SENDER)
def pause(campaign_id: int) -> Any:
    campaign = db.get_or_404(Campaign, campaign_id)
    if campaign_service.pause_campaign(campaign, actor=signed_in_user()):
        db.session.commit()
        flash(
            _("Paused: letters already handed to the server finish; no new ones start."),
            "success",
        )
    else:
        flash(
            _(
                "Not paused: the campaign is %(status)s, not sending.",
                status=label(campaign.status, "campaign_status").lower(),
            ),
            "error",
        )
    return redirect(url_for("campaigns.show", campaign_id=campaign.id))


@bp.route("/<int:campaign_id>/resume", methods=["POST"])
@allow(Role.SENDER)
def resume(campaign_id: int) -> Any:
    campaign = db.get_or_404(Campaign, campaign_id)
    if campaign_service.resume_campaign(campaign, actor=signed_in_user()):
        db.session.commit()
        flash(_("Resumed: sending carries on where it stopped."), "success")
    elif sending_is_held():
        flash(_("Not resumed: %(reason)s.", reason=SENDING_HELD), "error")
    else:
        flash(
            _(
                "Not resumed: the campaign is %(status)s, not paused.",
                status=label(campaign.status, "campaign_status").lower(),
            ),
            "error",
        )
    return redirect(url_for("campaigns.show", campaign_id=campaign.id))


@bp.route("/<int:campaign_id>/retry", methods=["POST"])
@allow(Role.SENDER)
def retry(campaign_id: int) -> Any:
    campaign = db.get_or_404(Campaign, campaign_id)
    try:
        count = campaign_service.retry_now(campaign, actor=signed_in_user())
    except campaign_service.CampaignError as error:
        flash(str(error.message), "error")
    else:
        db.session.commit()
        flash(
            ngettext(
                "%(num)d deferred or in-doubt letter is tried again now.",
                "%(num)d deferred or in-doubt letters are tried again now.",
                count,
            ),
            "success",
        )
    return redirect(url_for("campaigns.show", campaign_id=campaign.id))


@bp.route("/<int:campaign_id>/cancel", methods=["GET", "POST"])
@allow(Role.SENDER)
def cancel(campaign_id: int) -> Any:
    campaign = db.get_or_404(Campaign, campaign_id)
    if request.method == "GET":
        progress_now = None if campaign.status in EDITABLE else ledger.campaign_progress(campaign)
        return render_template("campaigns/cancel.html", campaign=campaign, progress=progress_now)
    if campaign_service.cancel_campaign(campaign, actor=signed_in_user()):
        db.session.commit()
        flash(_("Cancelled: recipients not yet written to will not be."), "success")
    else:
        flash(
            _(
                "Not cancelled: the campaign is already %(status)s.",
                status=label(campaign.status, "campaign_status").lower(),
            ),
            "error",
        )
    return redirect(url_for("campaigns.show", campaign_id=campaign.id))


# --- the ledger and the evidence ------------------------------------------------------------


@bp.route("/<int:campaign_id>/deliveries")
@allow(Role.VIEWER)
def deliveries(campaign_id: int) -> Any:
    campaign = db.get_or_404(Campaign, campaign_id)
    found = ledger.ledger_page(
        campaign.id,
        status=request.args.get("status", ""),
        search=request.args.get("q", ""),
        page=page_number(request.args.get("page")),
    )
    return render_template(
        "campaigns/deliveries.html",
        campaign=campaign,
        ledger_page=found,
        counts=campaign_service.status_counts(campaign.id),
        status_labels=_status_labels(),
        may_see_evidence=may(Role.SENDER),
    )


def _delivery_of(campaign_id: int, delivery_id: int) -> Delivery:
    delivery = db.get_or_404(Delivery, delivery_id)
    if delivery.campaign_id != campaign_id:
        abort(404)
    return delivery


@bp.route("/<int:campaign_id>/deliveries/<int:delivery_id>")
@allow(Role.SENDER)
def delivery(campaign_id: int, delivery_id: int) -> Any:
    campaign = db.get_or_404(Campaign, campaign_id)
    found = _delivery_of(campaign.id, delivery_id)
    return render_template(
        "campaigns/delivery.html",
        campaign=campaign,
        delivery=found,
        evidence=ledger.delivery_evidence(found),
    )


@bp.route("/<int:campaign_id>/deliveries/<int:delivery_id>/raw")
@allow(Role.SENDER)
def delivery_raw(campaign_id: int, delivery_id: int) -> Any:
    found = _delivery_of(campaign_id, delivery_id)
    raw = ledger.raw_message(found)
    if raw is None:
        abort(404)
    response = Response(raw, mimetype="message/rfc822")
    # Always a download: the browser must never render a sent message as a page.
    response.headers["Content-Disposition"] = (
        f'attachment; filename="campaign-{campaign_id}-delivery-{delivery_id}.eml"'
    )
    response.headers["Content-Security-Policy"] = "sandbox"
    return response
