"""Two-factor authentication pages: the code (or a recovery code) at sign-in, set-up,
moving to a new phone, new recovery codes and turning it off, all on the account."""

from __future__ import annotations

import json
import time
from typing import Any

from flask import (
    Blueprint,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask_babel import gettext as _
from flask_login import current_user

from campaign.config import totp_required_roles
from campaign.extensions import db
from campaign.models import Role
from campaign.secret_box import TOTP_SECRETS, SecretUnreadable, decrypt_secret, encrypt_secret
from campaign.services.accounts import two_factor, users
from campaign.web.access import allow, public, signed_in_user
from campaign.web.accounts.auth import finish_login, pending_user, with_link

bp = Blueprint("two_factor", __name__)
# The key being set up, encrypted: the session cookie is signed, not secret; and when it
# was made (seconds since the epoch): after SETUP_KEY_LIFETIME a new key is offered.
_SETUP_SECRET = "totp_setup_secret"  # noqa: S105 (a session key name)
_SETUP_SINCE = "totp_setup_since"
SETUP_KEY_LIFETIME = 10 * 60
# New recovery codes, encrypted, between the form that made them and the page that shows
# them once (post-redirect-get: reloading that page submits nothing).
_NEW_CODES = "totp_new_recovery_codes"
_NEW_CODES_SINCE = "totp_new_recovery_codes_since"
_CODES_LIFETIME = 10 * 60
# Pages a user who owes the set-up may still open.
_OPEN_DURING_SET_UP = {
    "two_factor.setup",
    "two_factor.enable",
    "two_factor.show_recovery_codes",
    "auth.logout",
    "auth.set_language",
    "static",
}


@bp.record_once
def _check_setting(state: BlueprintSetupState) -> None:
    # A misspelt CAMPAIGN_TOTP_REQUIRED_ROLES stops the start, not the first sign-in.
    config = state.app.config
    totp_required_roles(str(config.get("TOTP_REQUIRED_ROLES", "auto")), bool(config.get("DEBUG")))


@bp.route("/login/verify", methods=["GET", "POST"])
@public
def verify() -> Any:
    user = pending_user()  # refused five minutes after the password, or once it changed
    if user is None:
        return redirect(url_for("auth.login"))
    recovery = request.values.get("recovery") == "1"
    result = None
    if request.method == "POST" and recovery:
        outcome = two_factor.sign_in_with_recovery_code(user, request.form.get("recovery_code", ""))
        db.session.commit()
        if outcome.result.user:
            response = finish_login(outcome.result.user)
            _flash_recovery_notice(outcome.remaining)
            return response
        result = outcome.result
    elif request.method == "POST":
        result = two_factor.verify_second_factor(user, request.form.get("code", ""))
        db.session.commit()
        if result.user:
            return finish_login(result.user)
    error = result.error if result else ""
    page = render_template(
        "auth/verify_totp.html",
        error=error,
        recovery=recovery,
        # Nothing left to sign in with but the phone: the page says whom to ask.
        no_codes_left=two_factor.remaining_recovery_codes(user) == 0,
    )
    if result is not None and result.retry_after:
        response = make_response(page, 429)
        response.headers["Retry-After"] = str(result.retry_after)
        return response
    return page, (401 if error else 200)


def _flash_recovery_notice(remaining: int) -> None:
    notice = two_factor.recovery_notice(remaining)
    if remaining <= 3:
        flash(
            with_link(notice, _("Make new recovery codes"), url_for("two_factor.setup")),
            "warning",
        )
    else:
        flash(notice, "info")


def _stored_candidate() -> str | None:
    """The key offered earlier in this browser, unless it is older than SETUP_KEY_LIFETIME."""
    stored, since = session.get(_SETUP_SECRET), session.get(_SETUP_SINCE)
    if not stored or not isinstance(since, int):
        return None
    if not 0 <= time.time() - since < SETUP_KEY_LIFETIME:
        return None
    try:
        return decrypt_secret(stored, purpose=TOTP_SECRETS)
    except SecretUnreadable:
        return None


def _candidate_secret() -> str:
    """The key offered on the set-up page: the same one for ten minutes, then a new one."""
    secret = _stored_candidate()
    if secret:
        return secret
    secret = two_factor.new_totp_secret()
    session[_SETUP_SECRET] = encrypt_secret(secret, purpose=TOTP_SECRETS)
    session[_SETUP_SINCE] = int(time.time())
    return secret


def _render_setup(error: str = "", section: str = "", status: int = 200) -> Any:
    user = signed_in_user()
    secret = _candidate_secret()
    uri = two_factor.totp_uri(user, secret)
    return (
        render_template(
            "auth/setup_totp.html",
            secret=two_factor.grouped_key(secret),
            uri=uri,
            qr_code=two_factor.qr_code_svg(uri, _("QR code to scan with an authenticator app")),
            has_totp=user.has_totp,
            required=two_factor.is_totp_required(user.role_enum),
            remaining=two_factor.remaining_recovery_codes(user) if user.has_totp else 0,
            key_minutes=SETUP_KEY_LIFETIME // 60,
            error=error,
            section=section,
        ),
        status,
    )


def _show_codes(codes: list[str]) -> Any:
    """Keep the new codes (encrypted) for the page that shows them once, and go there: a
    reload of that page asks for nothing again and counts no failure."""
    session[_NEW_CODES] = encrypt_secret(json.dumps(codes), purpose=TOTP_SECRETS)
    session[_NEW_CODES_SINCE] = int(time.time())
    return redirect(url_for("two_factor.show_recovery_codes"), 303)


@bp.route("/account/two-factor/recovery-codes", methods=["GET"])
@allow(Role.VIEWER)
def show_recovery_codes() -> Any:
    # Shown once (no-store): then they leave the session; only their hashes are kept.
    stored, since = session.pop(_NEW_CODES, None), session.pop(_NEW_CODES_SINCE, None)
    codes: list[str] = []
    if stored and isinstance(since, int) and 0 <= time.time() - since < _CODES_LIFETIME:
        try:
            codes = json.loads(decrypt_secret(stored, purpose=TOTP_SECRETS))
        except (SecretUnreadable, ValueError):
            codes = []
    if not codes:
        flash(
            _(
                "Recovery codes are shown only once. If you did not keep them, make new ones "
                "below (the old ones then stop working)."
            ),
            "info",
        )
        return redirect(url_for("two_factor.setup"))
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
    candidate = _stored_candidate()
    if candidate is None:  # shown too long ago (or never): not a failure, a new key
        session.pop(_SETUP_SECRET, None)
        problem = _(
            "The key shown on this page expired after %(num)d minutes. A new one is shown: "
            "scan it (or type it) again, then enter the new code.",
            num=SETUP_KEY_LIFETIME // 60,
        )
        return _render_setup(problem, "replace" if replacing else "enable", 422)
    try:
        codes = two_factor.enable_totp(
            user,
            candidate,
            request.form.get("code", ""),
            password=request.form.get("password", ""),
            current_code=request.form.get("current_code", ""),
        )
    except users.UserError as problem:
        db.session.commit()  # failures count towards the lock, like at sign-in
        return _render_setup(str(problem), "replace" if replacing else "enable", 422)
    db.session.commit()
    session.pop(_SETUP_SECRET, None)
    session.pop(_SETUP_SINCE, None)
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
