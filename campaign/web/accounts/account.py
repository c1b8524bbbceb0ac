"""The signed-in user's own account: open sessions, signing out everywhere, the password,
API keys."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from campaign.extensions import db
from campaign.i18n import SESSION_LANGUAGE, current_language
from campaign.models import ApiKey, Role
from campaign.services.accounts import api_keys, sessions, users
from campaign.web.access import allow, signed_in_user
from campaign.web.accounts import api_key_forms
from campaign.web.accounts.auth import current_session_token

bp = Blueprint("account", __name__, url_prefix="/account")

# What a user whose password an administrator reset may still open before choosing one.
_OPEN_BEFORE_NEW_PASSWORD = {"account.password", "auth.logout", "auth.set_language", "static"}


def _render_index(key_error: api_keys.ApiKeyError | None = None) -> Any:
    user = signed_in_user()
    token = current_session_token()
    return api_key_forms.render_keys_page(
        "account/index.html",
        user,
        key_error,
        create_url=url_for("account.create_api_key"),
        revoke_url=lambda key_id: url_for("account.revoke_api_key", key_id=key_id),
        open_sessions=[
            (row, sessions.is_current(row, token)) for row in sessions.sessions_of(user)
        ],
    )


@bp.route("")
@allow(Role.VIEWER)
def index() -> Any:
    return _render_index()


@bp.route("/api-keys", methods=["POST"])
@allow(Role.VIEWER)
def create_api_key() -> Any:
    user = signed_in_user()
    try:
        made = api_key_forms.create_from_form(user, created_by=user)
    except api_keys.ApiKeyError as problem:
        db.session.rollback()
        return _render_index(problem)
    db.session.commit()
    return api_key_forms.render_new_key(made, back_url=url_for("account.index"))


@bp.route("/api-keys/<int:key_id>/revoke", methods=["POST"])
@allow(Role.VIEWER)
def revoke_api_key(key_id: int) -> Any:
    user = signed_in_user()
    key = db.session.get(ApiKey, key_id)
    if key is None or key.user_id != user.id:
        abort(404)
    api_keys.revoke_key(key, by=user)
    db.session.commit()
    flash(_("The key %(name)s is revoked: it no longer works.", name=key.name), "success")
    return redirect(url_for("account.index") + "#api-keys-heading")


@bp.route("/sessions/end-all", methods=["POST"])
@allow(Role.VIEWER)
def end_all_sessions() -> Any:
    users.sign_out_everywhere(signed_in_user())
    db.session.commit()
    message = _("You are signed out everywhere, this browser included.")
    language = current_language()
    logout_user()
    session.clear()
    session[SESSION_LANGUAGE] = language
    flash(message, "info")
    return redirect(url_for("auth.login"))


@bp.route("/sessions/<int:session_id>/end", methods=["POST"])
@allow(Role.VIEWER)
def end_session(session_id: int) -> Any:
    if not sessions.end_one_session(signed_in_user(), session_id):
        abort(404)
    db.session.commit()
    flash(_("That session is ended."), "success")
    return redirect(url_for("account.index"))


@bp.route("/password", methods=["GET", "POST"])
@allow(Role.VIEWER)
def password() -> Any:
    user = signed_in_user()
    error = ""
    if request.method == "POST":
        try:
            users.change_password(
                user,
                request.form.get("current", ""),
                request.form.get("new", ""),
                request.form.get("repeat", ""),
                keep_token=current_session_token(),
            )
        except users.UserError as problem:
            # The failure counted against the account (a wrong current password) is kept.
            db.session.commit()
            error = str(problem)
        else:
            db.session.commit()
            login_user(user)  # this browser goes on under the new session version
            flash(_("Your password is changed; your other sessions have ended."), "success")
            return redirect(url_for("account.index"))
    page = render_template(
        "account/password.html",
        error=error,
        forced=user.must_change_password,
        min_password=users.MIN_PASSWORD_LENGTH,
        max_password=users.MAX_PASSWORD_LENGTH,
    )
    return page, (422 if error else 200)


@bp.before_app_request
def _require_new_password() -> Any:
    """After an administrator's reset, the new password comes before anything else."""
    if not current_user.is_authenticated or not current_user.must_change_password:
        return None
    endpoint = request.endpoint or ""
    # Two-factor set-up (web/two_factor.py) may come first; it sends the user on here.
    if endpoint in _OPEN_BEFORE_NEW_PASSWORD or endpoint.startswith("two_factor."):
        return None
    return redirect(url_for("account.password"))
