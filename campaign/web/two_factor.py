"""Two-factor authentication pages: the code at sign-in and the set-up on the account."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user

from campaign.extensions import db
from campaign.models import Role
from campaign.services import two_factor, users
from campaign.web.access import allow, public
from campaign.web.auth import PENDING_TOTP, finish_login, load_user

bp = Blueprint("two_factor", __name__)
_SETUP_SECRET = "totp_setup_secret"  # noqa: S105 (a session key name)


@bp.route("/login/verify", methods=["GET", "POST"])
@public
def verify() -> Any:
    pending = session.get(PENDING_TOTP)
    user = load_user(pending) if pending else None
    if user is None:
        return redirect(url_for("auth.login"))
    error = ""
    if request.method == "POST":
        result = two_factor.verify_second_factor(user, request.form.get("code", ""))
        db.session.commit()
        if result.user:
            return finish_login(result.user)
        error = result.error
    return render_template("auth/verify_totp.html", error=error), (401 if error else 200)


@bp.route("/account/two-factor", methods=["GET", "POST"])
@allow(Role.VIEWER)
def setup() -> Any:
    secret = session.get(_SETUP_SECRET) or two_factor.new_totp_secret()
    session[_SETUP_SECRET] = secret
    error = ""
    if request.method == "POST":
        try:
            two_factor.enable_totp(current_user, secret, request.form.get("code", ""))
        except users.UserError as problem:
            error = str(problem)
        else:
            db.session.commit()
            session.pop(_SETUP_SECRET, None)
            flash(_("Two-factor authentication is on for your account."), "success")
            return redirect(url_for("home.index"))
    return render_template(
        "auth/setup_totp.html",
        secret=secret,
        uri=two_factor.totp_uri(current_user, secret),
        error=error,
    )


@bp.before_app_request
def _require_mandatory_totp() -> Any:
    """Users whose role requires two-factor may only reach the set-up page until it is on."""
    if not current_user.is_authenticated or current_user.has_totp:
        return None
    if request.endpoint in {"two_factor.setup", "auth.logout", "static"}:
        return None
    if two_factor.is_totp_required(current_user.role_enum):
        return redirect(url_for("two_factor.setup"))
    return None
