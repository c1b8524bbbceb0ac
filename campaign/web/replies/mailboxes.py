"""IMAP mailboxes (admins): the mailboxes replies are read from, their health, "Poll now"."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from campaign.extensions import db
from campaign.models import ImapMailbox, ImapSecurity, Role, utcnow
from campaign.services.replies import mailbox_admin
from campaign.services.replies.mailbox_admin import MailboxSettings
from campaign.services.replies.mailboxes import ALERT_AFTER, MailboxError, poll_mailbox
from campaign.services.sending.connection_tests import (
    check_mailbox_connection,
    keep_report,
    kept_report,
)
from campaign.web.access import allow, signed_in_user

bp = Blueprint("mailboxes", __name__, url_prefix="/mailboxes")

# "Poll now" runs in the request: a silent server costs at most this long to give up on,
# and a big backlog at most about the budget (the workers read the rest).
PAGE_TIMEOUT_SECONDS = 10
PAGE_BUDGET_SECONDS = 20

# The password is not among them: a form shown again never carries it back to the browser.
FORM_FIELDS = ("name", "host", "port", "security", "username", "folder", "processed_folder")


def _form_of(mailbox: ImapMailbox) -> dict[str, str]:
    return {name: str(getattr(mailbox, name)) for name in FORM_FIELDS}


def _render_form(
    mailbox: ImapMailbox | None, form: dict[str, str], error: str = "", status: int = 200
) -> Any:
    return render_template(
        "mailboxes/form.html",
        mailbox=mailbox,
        form=form,
        securities=[s.value for s in ImapSecurity],
        # A variable, not a literal in the template: Jinja would fold "none"|label(...) once,
        # at compile time, in whichever language the first page was shown in.
        clear_text=ImapSecurity.NONE.value,
        error=error,
    ), status


def _back() -> Any:
    return redirect(url_for("mailboxes.index"))


@bp.route("/")
@allow(Role.ADMIN)
def index() -> Any:
    mailboxes = list(db.session.scalars(db.select(ImapMailbox).order_by(ImapMailbox.name)))
    return render_template(
        "mailboxes/index.html",
        mailboxes=mailboxes,
        alerting=[m for m in mailboxes if mailbox_admin.needs_alert(m)],
        stopped=mailbox_admin.stopped_by_failure(mailboxes),
        alert_after=ALERT_AFTER,
        now=utcnow(),
    )


@bp.route("/new", methods=["GET", "POST"])
@allow(Role.ADMIN)
def new() -> Any:
    if request.method == "GET":
        blank = {"port": "993", "security": ImapSecurity.SSL.value, "folder": "INBOX"}
        return _render_form(None, {**blank, "processed_folder": "Processed"})
    form = {name: request.form.get(name, "") for name in FORM_FIELDS}
    try:
        settings = MailboxSettings.from_form({**form, "password": request.form.get("password", "")})
        mailbox = mailbox_admin.create_mailbox(settings, actor=signed_in_user())
    except MailboxError as error:
        db.session.rollback()
        return _render_form(None, form, str(error), 422)
    db.session.commit()
    flash(_("Mailbox %(name)s added; it is polled within a minute.", name=mailbox.name), "success")
    return _back()


@bp.route("/<int:mailbox_id>/edit", methods=["GET", "POST"])
@allow(Role.ADMIN)
def edit(mailbox_id: int) -> Any:
    mailbox = db.get_or_404(ImapMailbox, mailbox_id)
    if request.method == "GET":
        return _render_form(mailbox, _form_of(mailbox))
    form = {name: request.form.get(name, "") for name in FORM_FIELDS}
    try:
        settings = MailboxSettings.from_form({**form, "password": request.form.get("password", "")})
        reset = mailbox_admin.update_mailbox(mailbox, settings, actor=signed_in_user())
    except MailboxError as error:
        db.session.rollback()
        return _render_form(db.session.get(ImapMailbox, mailbox_id), form, str(error), 422)
    db.session.commit()
    if reset:
        saved = _(
            "Mailbox %(name)s saved. It now points at another folder: "
            "that folder is read from its start.",
            name=mailbox.name,
        )
    else:
        saved = _("Mailbox %(name)s saved.", name=mailbox.name)
    flash(saved, "success")
    return _back()


@bp.route("/<int:mailbox_id>/enabled", methods=["POST"])
@allow(Role.ADMIN)
def set_enabled(mailbox_id: int) -> Any:
    mailbox = db.get_or_404(ImapMailbox, mailbox_id)
    is_enabled = request.form.get("enabled") == "1"
    if mailbox_admin.set_enabled(mailbox, is_enabled, actor=signed_in_user()):
        db.session.commit()
        if is_enabled:
            flash(_("Mailbox %(name)s enabled.", name=mailbox.name), "success")
        else:
            flash(_("Mailbox %(name)s disabled: it is not polled.", name=mailbox.name), "success")
    return _back()


@bp.route("/<int:mailbox_id>/delete", methods=["GET", "POST"])
@allow(Role.ADMIN)
def delete(mailbox_id: int) -> Any:
    mailbox = db.get_or_404(ImapMailbox, mailbox_id)
    if request.method == "GET":
        return render_template("mailboxes/delete.html", mailbox=mailbox)
    name = mailbox.name
    mailbox_admin.delete_mailbox(mailbox, actor=signed_in_user())
    db.session.commit()
    flash(
        _("Mailbox %(name)s deleted; the mail already received stays in the inbox.", name=name),
        "success",
    )
    return _back()


@bp.route("/<int:mailbox_id>/poll", methods=["POST"])
@allow(Role.ADMIN)
def poll(mailbox_id: int) -> Any:
    """Poll one mailbox now, in this request, under the lock the workers' polls take."""
    mailbox = db.get_or_404(ImapMailbox, mailbox_id)
    report = poll_mailbox(
        mailbox,
        commit=db.session.commit,
        timeout=PAGE_TIMEOUT_SECONDS,
        budget_seconds=PAGE_BUDGET_SECONDS,
    )
    mailbox_admin.record_poll(mailbox, report.summary(), actor=signed_in_user())
    db.session.commit()
    if report.is_busy:
        flash(
            _(
                "A poll of %(name)s is already running; its results show here when it ends.",
                name=mailbox.name,
            ),
            "info",
        )
    elif report.errors:
        flash(_("Poll failed: %(errors)s", errors="; ".join(report.errors)), "error")
    else:
        polled = _(
            "Polled %(name)s: %(fetched)d fetched, %(new)d new, "
            "%(large)d too large (headers only).",
            name=mailbox.name,
            fetched=report.fetched,
            new=report.new,
            large=report.skipped_large,
        )
        if report.has_more:
            polled += " " + _("More messages wait: the workers read them next.")
        flash(polled, "success")
    return _back()


@bp.route("/<int:mailbox_id>/test")
@allow(Role.ADMIN)
def test(mailbox_id: int) -> Any:
    mailbox = db.get_or_404(ImapMailbox, mailbox_id)
    found = kept_report(request.args.get("report", ""), user_id=signed_in_user().id)
    report = found[0] if found is not None and found[1].get("mailbox") == mailbox_id else None
    return render_template("mailboxes/test.html", mailbox=mailbox, report=report)


@bp.route("/<int:mailbox_id>/test", methods=["POST"])
@allow(Role.ADMIN)
def run_test(mailbox_id: int) -> Any:
    """Connect, secure, log in and open the folder read-only: nothing is fetched or moved."""
    mailbox = db.get_or_404(ImapMailbox, mailbox_id)
    report = check_mailbox_connection(mailbox, actor=signed_in_user())
    db.session.commit()
    # Server-side, for this admin only (not in the session cookie its holder can read).
    token = keep_report(report, user_id=signed_in_user().id, mailbox=mailbox_id)
    if report.is_ok:
        flash(_("The connection works."), "success")
    else:
        flash(_("The connection does not work."), "error")
    return redirect(url_for("mailboxes.test", mailbox_id=mailbox_id, report=token))
