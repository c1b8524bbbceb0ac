"""SMTP accounts (admins): add and edit relays and their limits; passwords never shown."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from campaign.extensions import db
from campaign.models import Role, SmtpAccount, SmtpSecurity
from campaign.services.sending import smtp_accounts as account_service
from campaign.services.sending.connection_tests import (
    check_smtp_connection,
    default_sender,
    keep_report,
    kept_report,
)
from campaign.web.access import allow, signed_in_user

bp = Blueprint("smtp_accounts", __name__, url_prefix="/smtp-accounts")

# The password is not among them: a form shown again never carries it back to the browser.
FORM_FIELDS = ("name", "host", "port", "security", "username", *account_service.LIMIT_FIELDS)


def _form_of(account: SmtpAccount) -> dict[str, str]:
    return {field: str(getattr(account, field)) for field in FORM_FIELDS}


def _render_form(
    account: SmtpAccount | None,
    form: dict[str, str],
    error: str = "",
    error_field: str = "",
    status: int = 200,
) -> Any:
    return (
        render_template(
            "smtp_accounts/form.html",
            account=account,
            form=form,
            securities=[s.value for s in SmtpSecurity],
            error=error,
            error_field=error_field,
        ),
        status,
    )


@bp.route("/")
@allow(Role.ADMIN)
def index() -> Any:
    accounts = account_service.list_accounts()
    return render_template(
        "smtp_accounts/index.html",
        default=account_service.default_settings(with_dkim=False),
        accounts=accounts,
        used_by={a.id: len(account_service.campaigns_using(a)) for a in accounts},
    )


@bp.route("/new")
@allow(Role.ADMIN)
def new() -> Any:
    return _render_form(None, {"port": "587", "security": SmtpSecurity.STARTTLS.value})


@bp.route("/new", methods=["POST"])
@allow(Role.ADMIN)
def create() -> Any:
    form = {k: request.form.get(k, "") for k in FORM_FIELDS}
    try:
        fields = account_service.fields_from_form(request.form)
        account = account_service.create_account(fields, actor=signed_in_user())
    except account_service.SmtpAccountError as problem:
        db.session.rollback()
        return _render_form(None, form, str(problem), problem.field, 422)
    db.session.commit()
    flash(_("SMTP account %(name)s added.", name=account.name), "success")
    return redirect(url_for("smtp_accounts.index"))


@bp.route("/<int:account_id>/edit")
@allow(Role.ADMIN)
def edit(account_id: int) -> Any:
    account = db.get_or_404(SmtpAccount, account_id)
    return _render_form(account, _form_of(account))


@bp.route("/<int:account_id>/edit", methods=["POST"])
@allow(Role.ADMIN)
def update(account_id: int) -> Any:
    account = db.get_or_404(SmtpAccount, account_id)
    form = {k: request.form.get(k, "") for k in FORM_FIELDS}
    try:
        fields = account_service.fields_from_form(request.form)
        account_service.update_account(account, fields, actor=signed_in_user())
    except account_service.SmtpAccountError as problem:
        db.session.rollback()
        return _render_form(account, form, str(problem), problem.field, 422)
    db.session.commit()
    flash(_("SMTP account %(name)s saved.", name=account.name), "success")
    return redirect(url_for("smtp_accounts.index"))


@bp.route("/<int:account_id>/delete")
@allow(Role.ADMIN)
def confirm_delete(account_id: int) -> Any:
    account = db.get_or_404(SmtpAccount, account_id)
    return render_template(
        "smtp_accounts/delete.html",
        account=account,
        campaigns=account_service.campaigns_using(account),
    )


@bp.route("/<int:account_id>/delete", methods=["POST"])
@allow(Role.ADMIN)
def delete(account_id: int) -> Any:
    account = db.get_or_404(SmtpAccount, account_id)
    name = account.name
    try:
        account_service.delete_account(account, actor=signed_in_user())
    except account_service.SmtpAccountError as problem:
        db.session.rollback()
        flash(_("Not deleted: %(reason)s.", reason=problem), "error")
        return redirect(url_for("smtp_accounts.index"))
    db.session.commit()
    flash(_("SMTP account %(name)s deleted.", name=name), "success")
    return redirect(url_for("smtp_accounts.index"))


# --- test the connection ---------------------------------------------------------------------


def _tested(account_id: int | None) -> Any:
    account = None if account_id is None else db.get_or_404(SmtpAccount, account_id)
    found = kept_report(request.args.get("report", ""), user_id=signed_in_user().id)
    report = None
    sender = default_sender()
    if found is not None and found[1].get("account") == (account_id or 0):
        report = found[0]
        sender = str(found[1].get("sender") or sender)
    return render_template(
        "smtp_accounts/test.html",
        account=account,
        settings=account_service.default_settings(with_dkim=False) if account is None else account,
        report=report,
        sender=sender,
    )


def _run_test(account_id: int | None) -> Any:
    account = None if account_id is None else db.get_or_404(SmtpAccount, account_id)
    sender = request.form.get("sender", "").strip()
    report = check_smtp_connection(account, sender, actor=signed_in_user())
    db.session.commit()
    # Kept server-side (it names the server, the login and the server's answers), for
    # this admin only, under a random key in the URL of the page that shows it.
    token = keep_report(
        report,
        user_id=signed_in_user().id,
        account=account_id or 0,
        sender=sender or default_sender(),
    )
    if report.is_ok:
        flash(_("The connection works; no message was sent."), "success")
    else:
        flash(_("The connection does not work; no message was sent."), "error")
    if account_id is None:
        return redirect(url_for("smtp_accounts.test_default", report=token))
    return redirect(url_for("smtp_accounts.test", account_id=account_id, report=token))


@bp.route("/<int:account_id>/test")
@allow(Role.ADMIN)
def test(account_id: int) -> Any:
    return _tested(account_id)


@bp.route("/<int:account_id>/test", methods=["POST"])
@allow(Role.ADMIN)
def run_test(account_id: int) -> Any:
    """Connect, secure, log in and try the From: nothing is sent (MAIL FROM, then RSET)."""
    return _run_test(account_id)


@bp.route("/default/test")
@allow(Role.ADMIN)
def test_default() -> Any:
    return _tested(None)


@bp.route("/default/test", methods=["POST"])
@allow(Role.ADMIN)
def run_test_default() -> Any:
    return _run_test(None)


# --- DKIM ------------------------------------------------------------------------------------


def _render_dkim(
    account: SmtpAccount,
    form: dict[str, str],
    error: str = "",
    error_field: str = "",
    status: int = 200,
) -> Any:
    from campaign.dkim import DkimError

    info = None
    key_error = ""
    try:
        info = account_service.dkim_key_info(account)
    except DkimError as problem:
        key_error = str(problem)
    return (
        render_template(
            "smtp_accounts/dkim.html",
            account=account,
            info=info,
            key_error=key_error,
            form=form,
            error=error,
            error_field=error_field,
            algorithms=("rsa", "ed25519"),
            alignment=_alignment_problems(account),
        ),
        status,
    )


def _alignment_problems(account: SmtpAccount) -> list[str]:
    # Campaigns sending through the account whose From domain its key does not cover.
    from campaign.models import Campaign

    problems = []
    for campaign in db.session.scalars(
        db.select(Campaign).where(Campaign.smtp_account_id == account.id).limit(50)
    ):
        problem = account_service.dkim_alignment_problem(account, campaign.from_address)
        if problem:
            problems.append(f"{campaign.name}: {problem}")
    return problems[:5]


def _dkim_defaults(account: SmtpAccount) -> dict[str, str]:
    return {
        # Never the live selector nor an earlier one: a new key takes a new name.
        "selector": account_service.fresh_selector(account),
        "domain": account.dkim_domain or account_service.default_dkim_domain(),
        "algorithm": account.dkim_algorithm or "rsa",
    }


@bp.route("/<int:account_id>/dkim")
@allow(Role.ADMIN)
def dkim(account_id: int) -> Any:
    account = db.get_or_404(SmtpAccount, account_id)
    return _render_dkim(account, _dkim_defaults(account))


@bp.route("/<int:account_id>/dkim", methods=["POST"])
@allow(Role.ADMIN)
def dkim_generate(account_id: int) -> Any:
    from campaign.dkim import DkimError

    account = db.get_or_404(SmtpAccount, account_id)
    form = {k: request.form.get(k, "") for k in ("selector", "domain", "algorithm")}
    try:
        account_service.set_dkim_key(
            account,
            selector=form["selector"],
            domain=form["domain"],
            algorithm=form["algorithm"],
            actor=signed_in_user(),
        )
    except DkimError as problem:
        db.session.rollback()
        return _render_dkim(account, form, str(problem), problem.field, 422)
    db.session.commit()
    flash(
        _(
            "A new DKIM key for %(name)s: publish the DNS record below before sending.",
            name=account.name,
        ),
        "success",
    )
    return redirect(url_for("smtp_accounts.dkim", account_id=account.id))


@bp.route("/<int:account_id>/dkim/remove", methods=["POST"])
@allow(Role.ADMIN)
def dkim_remove(account_id: int) -> Any:
    account = db.get_or_404(SmtpAccount, account_id)
    account_service.remove_dkim_key(account, actor=signed_in_user())
    db.session.commit()
    flash(
        _("The DKIM key of %(name)s was removed: its mail goes out unsigned.", name=account.name),
        "success",
    )
    return redirect(url_for("smtp_accounts.dkim", account_id=account.id))
