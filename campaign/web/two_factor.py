"""Two-factor authentication pages: the code (or a recovery code) at sign-in, set-up,
moving to a new phone, new recovery codes and turning it off, all on the account."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup
from werkzeug.wrappers import Response

from campaign.config import totp_required_roles
from campaign.extensions import db
from campaign.models import Role, User
from campaign.secret_box import TOTP_SECRETS, SecretUnreadable, decrypt_secret, encrypt_secret
from campaign.services import two_factor, users
from campaign.web.access import allow, public, signed_in_user
from campaign.web.auth import finish_login, pending_user

bp = Blueprint("two_factor", __name__)
# The key being set up, encrypted: the session cookie is signed, not secret.
_SETUP_SECRET = "totp_setup_secret"  # noqa: S105 (a session key name)
# Pages a user who owes the set-up may still open.
_OPEN_DURING_SET_UP = {
    "two_factor.setup",
    "two_factor.enable",
    "auth.logout",
    "auth.set_language",
    "static",
}


@bp.record_once
def _check_setting(state: BlueprintSetupState) -> None:
    # A misspelt CAMPAIGN_TOTP_REQUIRED_ROLES stops the start, not the first sign-in.
    config = state.app.config
    totp_required_roles(str(config.get("TOTP_REQUIRED_ROLES", "auto")), bool(config.get("DEBUG")))


def _with_link(text: str, link_text: str, url: str) -> Markup:
    # Flashed messages are Markup-safe through the session: the text is escaped, the link kept.
    return Markup('{} <a href="{}">{}</a>').format(text, url, link_text)


def after_sign_in(user: User) -> Response | None:
    """The two-factor part of a finished sign-in (auth.finish_login calls it after login_user):
    set-up first for a role that requires it, an offer for everyone else without it."""
    if user.has_totp:
        return None
    if two_factor.is_totp_required(user.role_enum):
        flash(_("Your role requires two-factor authentication. Set it up to continue."), "info")
        return redirect(url_for("two_factor.setup"))
    flash(
        _with_link(
            _("Two-factor authentication keeps your account safe even if your password leaks."),
            _("Set it up now"),
            url_for("two_factor.setup"),
        ),
        "info",
    )
    return None


@bp.route("/login/verify", methods=["GET", "POST"])
@public
def verify() -> Any:
    user = pending_user()  # refused five minutes after the password, or once it changed
    if user is None:
        return redirect(url_for("auth.login"))
    recovery = request.values.get("recovery") == "1"
    error = ""
    if request.method == "POST" and recovery:
        outcome = two_factor.sign_in_with_recovery_code(user, request.form.get("recovery_code", ""))
        db.session.commit()
        if outcome.result.user:
            response = finish_login(outcome.result.user)
            _flash_recovery_notice(outcome.remaining)
            return response
        error = outcome.result.error
    elif request.method == "POST":
        result = two_factor.verify_second_factor(user, request.form.get("code", ""))
        db.session.commit()
        if result.user:
            return finish_login(result.user)
        error = result.error
    return (
        render_template("auth/verify_totp.html", error=error, recovery=recovery),
        (401 if error else 200),
    )


def _flash_recovery_notice(remaining: int) -> None:
    notice = two_factor.recovery_notice(remaining)
    if remaining <= 3:
        flash(
            _with_link(notice, _("Make new recovery codes"), url_for("two_factor.setup")),
            "warning",
        )
    else:
        flash(notice, "info")


def _candidate_secret() -> str:
    """The key offered on the set-up page: the same one until it is turned on."""
    stored = session.get(_SETUP_SECRET)
    if stored:
        try:
            return decrypt_secret(stored, purpose=TOTP_SECRETS)
        except SecretUnreadable:
            pass
    secret = two_factor.new_totp_secret()
    session[_SETUP_SECRET] = encrypt_secret(secret, purpose=TOTP_SECRETS)
    return secret


def _render_setup(error: str = "", section: str = "", status: int = 200) -> Any:
    user = signed_in_user()
    secret = _candidate_secret()
    uri = two_factor.totp_uri(user, secret)
    return (
        render_template(
            "auth/setup_totp.html",
            secret=secret,
            uri=uri,
            qr_code=two_factor.qr_code_svg(uri, _("QR code to scan with an authenticator app")),
            has_totp=user.has_totp,
            required=two_factor.is_totp_required(user.role_enum),
            remaining=two_factor.remaining_recovery_codes(user) if user.has_totp else 0,
            error=error,
            section=section,
        ),
        status,
    )


def _show_codes(codes: list[str]) -> Any:
    # Shown once, in this answer only (no-store): nothing keeps them but their hashes.
    return render_template("auth/recovery_codes.html", codes=codes)


@bp.route("/account/two-factor", methods=["GET"])
@allow(Role.VIEWER)
def setup() -> Any:
    return _render_setup()


@bp.route("/account/two-factor", methods=["POST"])
@allow(Role.VIEWER)
def enable() -> Any:
    """Turn two-factor on, or move it to a new phone (then a current code is needed too)."""
    user = signed_in_user()
    replacing = user.has_totp
    try:
        codes = two_factor.enable_totp(
            user,
            _candidate_secret(),
            request.form.get("code", ""),
            password=request.form.get("password", ""),
            current_code=request.form.get("current_code", ""),
        )
    except users.UserError as problem:
        db.session.commit()  # failures count towards the lock, like at sign-in
        return _render_setup(str(problem), "replace" if replacing else "enable", 422)
    db.session.commit()
    session.pop(_SETUP_SECRET, None)
    if replacing:
        flash(_("Your new authenticator app is set up; the old one no longer works."), "success")
    else:
        flash(_("Two-factor authentication is on for your account."), "success")
    if codes:
        return _show_codes(codes)
    return redirect(url_for("two_factor.setup"))


@bp.route("/account/two-factor/recovery-codes", methods=["POST"])
@allow(Role.VIEWER)
def new_recovery_codes() -> Any:
    try:
        codes = two_factor.regenerate_recovery_codes(
            signed_in_user(),
            password=request.form.get("password", ""),
            current_code=request.form.get("current_code", ""),
        )
    except users.UserError as problem:
        db.session.commit()
        return _render_setup(str(problem), "codes", 422)
    db.session.commit()
    flash(_("New recovery codes made; the old ones no longer work."), "success")
    return _show_codes(codes)


@bp.route("/account/two-factor/disable", methods=["POST"])
@allow(Role.VIEWER)
def disable() -> Any:
    try:
        two_factor.disable_totp(
            signed_in_user(),
            password=request.form.get("password", ""),
            current_code=request.form.get("current_code", ""),
        )
    except users.UserError as problem:
        db.session.commit()
        return _render_setup(str(problem), "disable", 422)
    db.session.commit()
    flash(_("Two-factor authentication is off for your account."), "success")
    return redirect(url_for("two_factor.setup"))


@bp.before_app_request
def _require_mandatory_totp() -> Any:
    """Users whose role requires two-factor may only reach the set-up page until it is on."""
    if not current_user.is_authenticated or current_user.has_totp:
        return None
    if getattr(current_user, "must_change_password", False):
        return None  # a forced password change comes first (web/auth.py), then this
    if request.endpoint in _OPEN_DURING_SET_UP:
        return None
    if two_factor.is_totp_required(current_user.role_enum):
        return redirect(url_for("two_factor.setup"))
    return None
