"""The replies inbox: list, read and triage received mail; upload .eml and mbox files.

Replies are private correspondence: editors and above read and triage them; only admins may
download an original message. A received message's HTML is only ever shown sanitised, in a
sandboxed frame whose own response forbids every network source (FRAME_CSP).
"""

from __future__ import annotations

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
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext

from campaign.extensions import csrf, db
from campaign.inbound.sanitise import FRAME_CSP, safe_html
from campaign.models import (
    AnswerStatus,
    Campaign,
    Delivery,
    InboundKind,
    InboundMessage,
    ReplyAnswer,
    Role,
    User,
)
from campaign.params import page_number, row_id
from campaign.services.replies import answers as reply_answers
from campaign.services.replies import replies as reply_service
from campaign.services.replies.intake import raw_message_of
from campaign.services.replies.replies import InboxFilter, ReplyError
from campaign.services.sending import ledger
from campaign.web.access import allow, may, signed_in_user

bp = Blueprint("replies", __name__, url_prefix="/replies")

# The inbox's tabs name each kind of mail in the plural; a single message shows its kind
# with the "inbound_kind" label table (campaign.labels).
KIND_LABELS = {
    InboundKind.REPLY.value: _l("Human replies"),
    InboundKind.AUTO_REPLY.value: _l("Auto-replies"),
    InboundKind.BOUNCE.value: _l("Bounces"),
    InboundKind.UNMATCHED.value: _l("Unmatched"),
}


@bp.app_context_processor
def _open_reply_count() -> dict[str, object]:
    # A callable: the count is queried only when the menu shows the Replies link.
    return {"open_reply_count": reply_service.open_reply_count}


def _message(message_id: int) -> InboundMessage:
    message: InboundMessage = db.get_or_404(InboundMessage, message_id)
    return message


def _filter_from_args(source: Any = None) -> InboxFilter:
    source = request.args if source is None else source
    return InboxFilter(
        kind=source.get("kind") or None,
        state=source.get("state") or None,
        campaign_id=row_id(source.get("campaign")),
        assigned_to_id=signed_in_user().id if source.get("mine") == "1" else None,
        search=source.get("q"),
    )


def _filter_args(found: InboxFilter) -> dict[str, Any]:
    """The inbox's filter as URL arguments, carried from the inbox to a message and back."""
    return {
        "kind": found.kind,
        "state": found.state,
        "campaign": found.campaign_id,
        "mine": "1" if found.assigned_to_id is not None else None,
        "q": found.search,
    }


def _back_to(message: InboundMessage) -> Any:
    return redirect(url_for("replies.show", message_id=message.id))


# --- the inbox ----------------------------------------------------------------------------


@bp.route("/")
@allow(Role.EDITOR)
def index() -> Any:
    found = _filter_from_args()
    campaign = db.session.get(Campaign, found.campaign_id) if found.campaign_id else None
    if found.campaign_id and campaign is None:
        abort(404)
    return render_template(
        "replies/index.html",
        found=found,
        campaign=campaign,
        mine=request.args.get("mine") == "1",
        inbox=reply_service.inbox_page(found, page=page_number(request.args.get("page"))),
        counts=reply_service.kind_counts(found),
        kind_labels=KIND_LABELS,
        filter_args=_filter_args(found),
        users=reply_service.triage_users(),
    )


@bp.route("/bulk", methods=["POST"])
@allow(Role.EDITOR)
def bulk() -> Any:
    """Mark handled or assign the messages ticked in the inbox, in one request."""
    found = _filter_from_args(request.form)
    back = redirect(url_for("replies.index", **_filter_args(found)))
    raw_ids = request.form.getlist("ids")
    if len(raw_ids) > reply_service.PER_PAGE:
        flash(
            _(
                "Nothing changed: at most %(limit)d messages (one page) can be changed at once.",
                limit=reply_service.PER_PAGE,
            ),
            "error",
        )
        return back
    ids = [found_id for raw in raw_ids if (found_id := row_id(raw))]
    action = request.form.get("action")
    try:
        if action == "handled":
            count = reply_service.bulk_mark_handled(ids, signed_in_user())
            db.session.commit()
            flash(
                ngettext(
                    "%(num)d message marked handled.", "%(num)d messages marked handled.", count
                ),
                "success",
            )
        elif action == "assign":
            raw = request.form.get("user_id", "")
            assignee = None
            if not raw:
                flash(_("Nothing changed: choose whom to assign the messages to."), "error")
                return back
            if raw != "none":
                user_id = row_id(raw)
                assignee = db.session.get(User, user_id) if user_id is not None else None
                if assignee is None:
                    flash(_("Not assigned: that user no longer exists."), "error")
                    return back
            count = reply_service.bulk_assign(ids, signed_in_user(), assignee)
            db.session.commit()
            who = assignee.email if assignee else _("nobody")
            flash(
                ngettext(
                    "%(num)d message assigned to %(user)s.",
                    "%(num)d messages assigned to %(user)s.",
                    count,
                    user=who,
                ),
                "success",
            )
        else:
            flash(_("Choose what to do with the selected messages."), "error")
    except ReplyError as error:
        db.session.rollback()
        flash(_("Nothing changed: %(reason)s", reason=error), "error")
    return back


def _render_show(
    message: InboundMessage,
    *,
    draft: Any = None,
    error: str = "",
    ask_again: bool = False,
    seen: int | None = None,
    status: int = 200,
) -> Any:
    found = _filter_from_args()
    delivery = db.session.get(Delivery, message.delivery_id) if message.delivery_id else None
    campaign = db.session.get(Campaign, delivery.campaign_id) if delivery else None
    may_attach = reply_service.may_attach(message)
    answers = reply_answers.answers_to(message)
    may_answer = reply_answers.may_answer(message)
    return render_template(
        "replies/show.html",
        filter_args=_filter_args(found),
        sender=reply_service.sender_contact(message, delivery),
        answers=answers,
        answer_statuses={a.id: reply_answers.shown_status(a) for a in answers},
        stuck_ids={a.id for a in answers if reply_answers.is_stuck(a)},
        answer_errors={a.id: reply_answers.error_words(a) for a in answers if a.error},
        answered_count=reply_answers.counted_answers(answers),
        ask_again=ask_again,
        # Asking "send again?" keeps what the page had seen: only the tick confirms.
        last_answer_id=seen if seen is not None else (answers[-1].id if answers else 0),
        may_answer=may_answer,
        draft=draft or (reply_answers.draft_for(message) if may_answer else None),
        answer_error=error,
        account_choices=reply_answers.account_choices() if delivery is None else [],
        message=message,
        headers=reply_service.original_headers(message),
        delivery=delivery,
        campaign=campaign,
        # The letter it answers, decoded the way the delivery page decodes it.
        letter=ledger.delivery_evidence(delivery) if delivery else None,
        users=reply_service.triage_users(),
        campaigns=reply_service.campaign_filter_choices() if may_attach else [],
        may_attach=may_attach,
        may_download=may(Role.ADMIN),
        may_see_evidence=may(Role.SENDER),
        has_raw=message.raw_blob is not None,
        max_note=reply_service.MAX_NOTE_CHARS,
        max_answer=reply_answers.MAX_BODY_CHARS,
    ), status


@bp.route("/<int:message_id>")
@allow(Role.EDITOR)
def show(message_id: int) -> Any:
    return _render_show(_message(message_id))


@bp.route("/<int:message_id>/answer", methods=["POST"])
@allow(Role.EDITOR)
def answer(message_id: int) -> Any:
    """Send staff's answer through the campaign's SMTP account, inside this request."""
    message = _message(message_id)
    form = request.form
    draft = reply_answers.AnswerDraft(
        to=form.get("to", ""), subject=form.get("subject", ""), body=form.get("body", "")
    )
    seen = row_id(form.get("seen") or "0")
    if seen is None:
        # Checked before anything is stored or sent (a number past any id broke the query).
        return _render_show(
            message,
            draft=draft,
            error=_("Not sent: the form is damaged (its “seen” field); reload the page."),
            status=400,
        )
    try:
        sent = reply_answers.send_answer(
            message,
            signed_in_user(),
            to=draft.to,
            subject=draft.subject,
            body=draft.body,
            account_choice=form.get("account", ""),
            seen_answer_id=seen,
            send_again=form.get("again") == "1",
            commit=db.session.commit,
        )
    except reply_answers.AlreadyAnswered as error:
        db.session.rollback()
        return _render_show(
            message,
            draft=draft,
            error=_("Not sent: %(reason)s", reason=error),
            ask_again=True,
            seen=seen,
            status=409,
        )
    except ReplyError as error:
        db.session.rollback()
        # Nothing was stored: the page comes back with what was typed.
        return _render_show(
            message, draft=draft, error=_("Not sent: %(reason)s", reason=error), status=400
        )
    status = sent.answer.status
    if status == AnswerStatus.SENT:
        flash(_("Answer sent to %(address)s.", address=sent.answer.to_address), "success")
    elif status == AnswerStatus.IN_DOUBT:
        flash(
            _(
                "The answer may have been delivered: %(reason)s. Check with the recipient "
                "before sending it again.",
                reason=reply_answers.error_words(sent.answer),
            ),
            "warning",
        )
    else:
        flash(_("Not sent: %(reason)s", reason=reply_answers.error_words(sent.answer)), "error")
    if sent.colleague_warning:
        flash(sent.colleague_warning, "warning")
    return redirect(url_for("replies.show", message_id=message.id, _anchor="answers"))


@bp.route("/<int:message_id>/answers/<int:answer_id>.eml")
@allow(Role.EDITOR)
def answer_original(message_id: int, answer_id: int) -> Any:
    """The exact answer as handed to the SMTP server (evidence), always as a download."""
    found: ReplyAnswer = db.get_or_404(ReplyAnswer, answer_id)
    if found.inbound_id != message_id:
        abort(404)
    raw = reply_answers.answer_message(found)
    if raw is None:
        abort(404)
    reply_answers.record_answer_download(found, signed_in_user())
    db.session.commit()
    response = Response(raw, mimetype="message/rfc822")
    response.headers["Content-Disposition"] = f'attachment; filename="answer-{found.id}.eml"'
    response.headers["Content-Security-Policy"] = "sandbox"
    return response


@bp.route("/<int:message_id>/html")
@allow(Role.EDITOR)
def html(message_id: int) -> Any:
    """The sanitised HTML as its own document, for the page's sandboxed frame only."""
    message = _message(message_id)
    response = Response(
        render_template("replies/frame.html", body=safe_html(message.html)),
        mimetype="text/html",
    )
    # These replace the app's defaults for this response only: framed by our own page,
    # no script, no network source of any kind, a unique origin (sandbox).
    response.headers["Content-Security-Policy"] = f"{FRAME_CSP}; sandbox"
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/<int:message_id>/original")
@allow(Role.ADMIN)
def original(message_id: int) -> Any:
    message = _message(message_id)
    raw = raw_message_of(message)
    if raw is None:
        abort(404)
    reply_service.record_download(message, signed_in_user())
    db.session.commit()
    # Always a download, never rendered: the bytes are whatever the sender chose.
    response = Response(raw, mimetype="application/octet-stream")
    response.headers["Content-Disposition"] = f'attachment; filename="reply-{message.id}.eml"'
    response.headers["Content-Security-Policy"] = "sandbox"
    return response


# --- triage -------------------------------------------------------------------------------


@bp.route("/<int:message_id>/handled", methods=["POST"])
@allow(Role.EDITOR)
def handled(message_id: int) -> Any:
    message = _message(message_id)
    is_handled = request.form.get("handled") == "1"
    if reply_service.mark_handled(message, signed_in_user(), is_handled):
        db.session.commit()
        flash(_("Marked handled.") if is_handled else _("Open again."), "success")
    else:
        flash(_("Already handled.") if is_handled else _("Already open."), "info")
    if not is_handled:
        return _back_to(message)
    # On to the next open message of the same inbox view, oldest first.
    found = _filter_from_args(request.form)
    following = reply_service.next_unhandled(found, message)
    if following is None:
        flash(_("Nothing else is waiting here."), "info")
        return redirect(url_for("replies.index", **_filter_args(found)))
    return redirect(url_for("replies.show", message_id=following.id, **_filter_args(found)))


@bp.route("/<int:message_id>/assign", methods=["POST"])
@allow(Role.EDITOR)
def assign(message_id: int) -> Any:
    message = _message(message_id)
    raw = request.form.get("user_id", "")
    assignee = None
    if raw:
        user_id = row_id(raw)
        assignee = db.session.get(User, user_id) if user_id is not None else None
        if assignee is None:
            flash(_("Not assigned: that user no longer exists."), "error")
            return _back_to(message)
    try:
        reply_service.assign(message, signed_in_user(), assignee)
    except ReplyError as error:
        db.session.rollback()
        flash(_("Not assigned: %(reason)s", reason=error), "error")
        return _back_to(message)
    db.session.commit()
    if assignee:
        flash(_("Assigned to %(email)s.", email=assignee.email), "success")
    else:
        flash(_("Assigned to nobody."), "success")
    return _back_to(message)


@bp.route("/<int:message_id>/notes", methods=["POST"])
@allow(Role.EDITOR)
def add_note(message_id: int) -> Any:
    message = _message(message_id)
    try:
        reply_service.add_note(message, signed_in_user(), request.form.get("text", ""))
    except ReplyError as error:
        db.session.rollback()
        flash(_("Note not added: %(reason)s", reason=error), "error")
        return _back_to(message)
    db.session.commit()
    flash(_("Note added."), "success")
    return _back_to(message)


@bp.route("/<int:message_id>/attach", methods=["POST"])
@allow(Role.EDITOR)
def attach(message_id: int) -> Any:
    message = _message(message_id)
    campaign_id = row_id(request.form.get("campaign_id"))
    email = request.form.get("email", "").strip()
    campaign = db.session.get(Campaign, campaign_id) if campaign_id is not None else None
    if campaign is None or not email:
        flash(_("Not attached: choose the campaign and type the recipient's address."), "error")
        return _back_to(message)
    delivery = reply_service.find_delivery(campaign.id, email)
    if delivery is None:
        flash(
            _(
                "Not attached: %(campaign)s did not write to %(email)s.",
                campaign=campaign.name,
                email=email,
            ),
            "error",
        )
        return _back_to(message)
    try:
        reply_service.attach_to_delivery(message, delivery, signed_in_user())
    except ReplyError as error:
        db.session.rollback()
        flash(_("Not attached: %(reason)s", reason=error), "error")
        return _back_to(message)
    db.session.commit()
    flash(
        _(
            "Attached to the letter %(campaign)s sent to %(email)s.",
            campaign=campaign.name,
            email=delivery.email,
        ),
        "success",
    )
    return _back_to(message)


# --- uploads ------------------------------------------------------------------------------


NO_LENGTH = _l(
    "The upload did not say how large it is (no Content-Length), so it was not read. "
    "Upload from the form in a browser, or give the files to the `campaign inbound` command."
)


def _upload_cap() -> int:
    return int(current_app.config["INBOUND_UPLOAD_MAX_MB"]) * 1024 * 1024


def _render_upload(outcomes: list[Any] | None = None, error: str = "", status: int = 200) -> Any:
    return render_template(
        "replies/upload.html",
        outcomes=outcomes,
        error=error,
        max_mb=current_app.config["INBOUND_UPLOAD_MAX_MB"],
        kind_labels=KIND_LABELS,
    ), status


@bp.route("/upload", methods=["GET", "POST"])
@allow(Role.EDITOR)
# Checked by hand below, after the size: CSRFProtect's own before_request hook reads the
# whole multipart body (request.form) before any view runs, which would defeat the cap.
@csrf.exempt
def upload() -> Any:
    if request.method == "GET":
        return _render_upload()
    too_large = _(
        "The upload is larger than the %(size)s MB accepted at once "
        "(CAMPAIGN_INBOUND_UPLOAD_MAX_MB). Upload fewer files at a time, "
        "or give large mailboxes to the `campaign inbound` command.",
        size=current_app.config["INBOUND_UPLOAD_MAX_MB"],
    )
    # Browsers always send the length of a form upload: refuse before reading a byte of
    # the body. A body without one (chunked, from a script) is refused too rather than read
    # up to a limit: werkzeug leaves the half-spooled file of an interrupted parse open.
    if request.content_length is None:
        return _render_upload(error=str(NO_LENGTH), status=411)
    if request.content_length > _upload_cap():
        return _render_upload(error=too_large, status=413)
    # Whatever the headers claim, the parser reads no further than the cap.
    request.max_content_length = _upload_cap()
    if current_app.config["WTF_CSRF_ENABLED"]:
        csrf.protect()
    files = [f for f in request.files.getlist("files") if f.filename]
    if not files:
        return _render_upload(error=_("Choose one or more .eml or mbox files."), status=400)
    outcomes = []
    for file in files:
        outcomes.extend(
            reply_service.ingest_upload(file.filename or "", file.read(), signed_in_user())
        )
    db.session.commit()
    return _render_upload(outcomes)
