"""Signing in and out, server-side sessions, forgotten passwords (two-factor verification
and set-up are in web/two_factor.py)."""

from __future__ import annotations

import time
import unicodedata
from typing import Any
from urllib.parse import urlsplit

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
from flask_babel import gettext as _
from flask_babel import refresh
from flask_login import current_user, login_user, logout_user
from markupsafe import Markup
from werkzeug.wrappers import Response

from campaign.extensions import db
from campaign.i18n import SESSION_LANGUAGE, current_language, remember_visitor_language
from campaign.models import Role, User
from campaign.services.accounts import password_reset, sessions, two_factor, users
from campaign.services.accounts.sign_in_limits import wait_words
from campaign.web.access import allow, public, signed_in_user

bp = Blueprint("auth", __name__)
# The user whose password was right and who still owes a two-factor code (web/two_factor.py).
PENDING_TOTP = "pending_totp_user"
# When the password was right (seconds since the epoch): the code is owed within PENDING_LIFETIME.
PENDING_TOTP_SINCE = "pending_totp_since"
PENDING_LIFETIME = 5 * 60
# Set by the pages' scripts on requests nobody asked for (progress polling): they do not count
# as activity, so the idle timeout still ends a session left open on such a page.
BACKGROUND_HEADER = "X-Background-Request"
# The signed-in browser's session token (services/sessions.py keeps only its hash).
SESSION_TOKEN = "session_token"  # noqa: S105 (a session key name)


def load_user(user_id: str) -> User | None:
    """The active user an id of the form "id:session_version" names (or None)."""
    try:
        raw_id, version = user_id.split(":")
        user = db.session.get(User, int(raw_id))
    except (ValueError, TypeError):
        return None
    if user is None or str(user.session_version) != version or not user.is_active_account:
        return None
    return user


def pending_user() -> User | None:
    """The user whose password was right in this browser less than five minutes ago and who
    still owes a two-factor code (None otherwise; the half-finished sign-in is then dropped).

    The id carries the session version, so a password change, an admin reset, a reset link,
    `set-password` or "sign out everywhere" since then ends it too.
    """
    pending, since = session.get(PENDING_TOTP), session.get(PENDING_TOTP_SINCE)
    user = load_user(pending) if isinstance(pending, str) else None
    fresh = isinstance(since, int) and 0 <= time.time() - since < PENDING_LIFETIME
    if user is None or not fresh:
        session.pop(PENDING_TOTP, None)
        session.pop(PENDING_TOTP_SINCE, None)
        return None
    return user


def load_session_user(user_id: str) -> User | None:
    """Flask-Login's loader: the user of this browser's open server-side session.

    A cookie whose session row is gone (logout, sign out everywhere, idle, too old, a
    password change elsewhere) signs in nobody, however valid its signature. So does a
    remember-me cookie, which carries no session token.
    """
    user = load_user(user_id)
    token = session.get(SESSION_TOKEN)
    if user is None or not isinstance(token, str):
        return None
    row = sessions.find_session(token, activity=request.headers.get(BACKGROUND_HEADER) != "poll")
    # The loader runs at the start of the request (_load_session_user below): nothing of
    # the view is in this transaction yet, only the session's own bookkeeping.
    db.session.commit()
    if row is None or row.user_id != user.id:
        return None
    return user


def current_session_token() -> str | None:
    token = session.get(SESSION_TOKEN)
    return token if isinstance(token, str) else None


@bp.before_app_request
def _load_session_user() -> None:
    # Load the user first thing, so the session's last-seen time is written (and committed)
    # before any view has changed anything.
    if request.endpoint != "static":
        _ = current_user.is_authenticated


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
        if result.retry_after:
            page = render_template("auth/login.html", error=result.error)
            response = make_response(page, 429)
            response.headers["Retry-After"] = str(result.retry_after)
            return response
        if result.user and result.needs_totp:
            session[PENDING_TOTP] = result.user.get_id()
            session[PENDING_TOTP_SINCE] = int(time.time())
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
    token = sessions.open_session(
        user, remote_addr=request.remote_addr, user_agent=request.user_agent.string
    )
    db.session.commit()
    session[SESSION_TOKEN] = token
    login_user(user)
    if user.must_change_password:
        flash(_("An administrator reset your password: choose a new one to continue."), "info")
        return redirect(url_for("account.password"))
    # Set-up first where the role requires it, else an offer.
    return after_sign_in(user) or redirect(_safe_next(request.args.get("next")))


def with_link(text: str, link_text: str, url: str) -> Markup:
    # Flashed messages are Markup-safe through the session: the text is escaped, the link kept.
    return Markup('{} <a href="{}">{}</a>').format(text, url, link_text)


def after_sign_in(user: User) -> Response | None:
    """The two-factor part of a finished sign-in (finish_login calls it after login_user):
    set-up first for a role that requires it, an offer for everyone else without it.

    Here, not in two_factor.py, because that blueprint finishes its sign-ins through this
    module; the set-up pages it links to stay there.
    """
    if user.has_totp:
        return None
    if two_factor.is_totp_required(user.role_enum):
        flash(_("Your role requires two-factor authentication. Set it up to continue."), "info")
        return redirect(url_for("two_factor.setup"))
    flash(
        with_link(
            _("Two-factor authentication keeps your account safe even if your password leaks."),
            _("Set it up now"),
            url_for("two_factor.setup"),
        ),
        "info",
    )
    return None


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
    token = current_session_token()
    if token:
        sessions.end_session(token)  # every copy of this browser's cookie stops working
        db.session.commit()
    logout_user()
    session.clear()
    # The sign-in page it leads to speaks the language the flash above is written in.
    session[SESSION_LANGUAGE] = language
    flash(signed_out, "info")
    return redirect(url_for("auth.login"))


def _no_referrer(response: Any) -> Any:
    # The reset link's token is in the address: never send it to another page or site.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/login/forgot", methods=["GET", "POST"])
@public
def forgot_password() -> Any:
    if current_user.is_authenticated:
        return redirect(url_for("account.password"))
    if request.method == "GET":
        return render_template("auth/forgot_password.html", sent=False, error="")
    address = request.form.get("email", "").strip()[:320]
    try:
        password_reset.request_reset(address)
    except password_reset.TooManyRequests as refused:
        db.session.rollback()
        page = render_template("auth/forgot_password.html", sent=False, error=str(refused))
        response = make_response(page, 429)
        response.headers["Retry-After"] = str(refused.retry_after)
        return response
    db.session.commit()
    # The same page whether the address is an account or not.
    return render_template("auth/forgot_password.html", sent=True, address=address, error="")


@bp.route("/login/reset/<token>", methods=["GET", "POST"])
@public
def reset_password(token: str) -> Any:
    wait = password_reset.page_refusal()
    if wait:
        refused = _(
            "Too many requests from your network. Try again in %(wait)s.", wait=wait_words(wait)
        )
        page = render_template("auth/reset_password.html", refused=refused, error="")
        response = _no_referrer(make_response(page, 429))
        response.headers["Retry-After"] = str(wait)
        return response
    try:
        password_reset.check_link(token)
    except password_reset.LinkRefused as refused:
        page = render_template("auth/reset_password.html", refused=str(refused), error="")
        return _no_referrer(make_response(page, 410))
    error = ""
    if request.method == "POST":
        try:
            password_reset.use_link(
                token, request.form.get("new", ""), request.form.get("repeat", "")
            )
        except users.UserError as problem:
            db.session.rollback()
            error = str(problem)
        else:
            db.session.commit()
            if current_user.is_authenticated:
                logout_user()
            session.clear()
            flash(_("Your new password is set. Sign in with it."), "success")
            return redirect(url_for("auth.login"))
    page = render_template(
        "auth/reset_password.html",
        refused="",
        error=error,
        min_password=users.MIN_PASSWORD_LENGTH,
        max_password=users.MAX_PASSWORD_LENGTH,
    )
    return _no_referrer(make_response(page, 422 if error else 200))
