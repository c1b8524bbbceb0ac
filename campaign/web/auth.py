"""Signing in and out (two-factor verification and set-up are in web/two_factor.py)."""

from __future__ import annotations

import unicodedata
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import refresh
from flask_login import current_user, login_user, logout_user

from campaign.extensions import db
from campaign.i18n import SESSION_LANGUAGE, current_language, remember_visitor_language
from campaign.models import Role, User
from campaign.services import two_factor, users
from campaign.web.access import allow, public, signed_in_user

bp = Blueprint("auth", __name__)
# The user whose password was right and who still owes a two-factor code (web/two_factor.py).
PENDING_TOTP = "pending_totp_user"


def load_user(user_id: str) -> User | None:
    try:
        raw_id, version = user_id.split(":")
        user = db.session.get(User, int(raw_id))
    except (ValueError, TypeError):
        return None
    if user is None or str(user.session_version) != version or not user.is_active_account:
        return None
    return user


def _has_control_character(value: str) -> bool:
    # CR/LF would split the Location header (Werkzeug refuses it: a 500 after the commit).
    return any(unicodedata.category(character) == "Cc" for character in value)


def _safe_next(target: str | None) -> str:
    # Only same-site relative paths: never an open redirect to another host.
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and not _has_control_character(target)
    ):
        parts = urlsplit(target)
        if not parts.netloc and not parts.scheme:
            return target
    return url_for("home.index")


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> Any:
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    # The page's language links (?lang=): the choice stays for this browser until sign-in.
    remember_visitor_language(request.args.get("lang"))
    error = ""
    if request.method == "POST":
        result = users.authenticate(request.form.get("email", ""), request.form.get("password", ""))
        db.session.commit()
        if result.user and result.needs_totp:
            session[PENDING_TOTP] = result.user.get_id()
            return redirect(url_for("two_factor.verify", next=request.args.get("next")))
        if result.user:
            return finish_login(result.user)
        error = result.error
    return render_template("auth/login.html", error=error), (401 if error else 200)


def finish_login(user: User) -> Any:
    chosen = session.get(SESSION_LANGUAGE)  # a language picked on the sign-in page
    session.clear()  # a fresh session at login: no fixation
    if chosen and not user.language:
        session[SESSION_LANGUAGE] = chosen  # validated again whenever it is read
    login_user(user)
    if two_factor.is_totp_required(user.role_enum) and not user.has_totp:
        flash(_("Your role requires two-factor authentication. Set it up to continue."), "info")
        return redirect(url_for("two_factor.setup"))
    return redirect(_safe_next(request.args.get("next")))


@bp.route("/account/language", methods=["POST"])
@allow(Role.VIEWER)
def set_language() -> Any:
    try:
        users.set_interface_language(signed_in_user(), request.form.get("language", ""))
    except users.UserError as problem:
        flash(str(problem), "error")
    else:
        db.session.commit()
        refresh()  # this request's flash below is already in the new language
        flash(_("The interface language is changed."), "success")
    return redirect(_safe_next(request.form.get("next")))


@bp.route("/logout", methods=["POST"])
@allow(Role.VIEWER)
def logout() -> Any:
    signed_out = _("You are signed out.")  # in their language, before they are forgotten
    language = current_language()
    logout_user()
    session.clear()
    # The sign-in page it leads to speaks the language the flash above is written in.
    session[SESSION_LANGUAGE] = language
    flash(signed_out, "info")
    return redirect(url_for("auth.login"))
