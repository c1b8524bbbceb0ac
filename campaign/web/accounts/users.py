"""Account administration (admins only): create, roles, (de)activate, unlock, two-factor rules,
anyone's API keys."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from campaign.extensions import db
from campaign.labels import label
from campaign.models import ApiKey, Role, User, utcnow
from campaign.services.accounts import api_keys, two_factor
from campaign.services.accounts import users as user_service
from campaign.web.access import allow, signed_in_user
from campaign.web.accounts import api_key_forms

bp = Blueprint("users", __name__, url_prefix="/users")


def _role(raw: str | None) -> Role:
    try:
        return Role(raw or "")
    except ValueError:
        abort(400)


def _render_index(error: str = "", form: dict[str, str] | None = None, status: int = 200) -> Any:
    accounts = list(db.session.scalars(select(User).order_by(User.email)))
    return (
        render_template(
            "users/index.html",
            accounts=accounts,
            roles=list(Role),
            totp_required={role: two_factor.is_totp_required(role) for role in Role},
            now=utcnow(),
            # Seconds each account must still wait after failed sign-ins (0: none).
            delays={
                account.id: max(user_service.sign_in_delay(account), two_factor.code_delay(account))
                for account in accounts
            },
            min_password=user_service.MIN_PASSWORD_LENGTH,
            error=error,
            form=form or {},
        ),
        status,
    )


@bp.route("/")
@allow(Role.ADMIN)
def index() -> Any:
    return _render_index()


@bp.route("/", methods=["POST"])
@allow(Role.ADMIN)
def create() -> Any:
    form = {k: request.form.get(k, "") for k in ("email", "display_name", "role")}
    try:
        user = user_service.create_user(
            form["email"],
            request.form.get("password", ""),
            _role(form["role"]),
            display_name=form["display_name"].strip()[:200],
        )
    except user_service.UserError as problem:
        db.session.rollback()
        return _render_index(str(problem), form, 422)
    db.session.commit()
    flash(
        _(
            "Account %(email)s created with role %(role)s.",
            email=user.email,
            role=label(user.role, "role"),
        ),
        "success",
    )
    return redirect(url_for("users.index"))


@bp.route("/<int:user_id>/role", methods=["POST"])
@allow(Role.ADMIN)
def change_role(user_id: int) -> Any:
    user = db.get_or_404(User, user_id)
    role = _role(request.form.get("role"))
    try:
        user_service.change_role(user, role, actor=signed_in_user())
    except user_service.UserError as problem:
        flash(str(problem), "error")
        return redirect(url_for("users.index"))
    db.session.commit()
    flash(
        _(
            "%(email)s is now %(role)s; their open sessions have ended.",
            email=user.email,
            role=label(role.value, "role"),
        ),
        "success",
    )
    return redirect(url_for("users.index"))


@bp.route("/<int:user_id>/active", methods=["POST"])
@allow(Role.ADMIN)
def set_active(user_id: int) -> Any:
    user = db.get_or_404(User, user_id)
    active = request.form.get("active") == "1"
    try:
        user_service.set_active(user, active, actor=signed_in_user())
    except user_service.UserError as problem:
        flash(str(problem), "error")
        return redirect(url_for("users.index"))
    db.session.commit()
    if active:
        flash(_("%(email)s reactivated.", email=user.email), "success")
    else:
        flash(_("%(email)s deactivated.", email=user.email), "success")
    return redirect(url_for("users.index"))


@bp.route("/<int:user_id>/unlock", methods=["POST"])
@allow(Role.ADMIN)
def unlock(user_id: int) -> Any:
    user = db.get_or_404(User, user_id)
    user_service.unlock(user, actor=signed_in_user())
    two_factor.clear_code_failures(user)
    db.session.commit()
    flash(_("%(email)s may sign in again at once.", email=user.email), "success")
    return redirect(url_for("users.index"))


@bp.route("/<int:user_id>/password/reset", methods=["POST"])
@allow(Role.ADMIN)
def reset_password(user_id: int) -> Any:
    user = db.get_or_404(User, user_id)
    try:
        temporary = user_service.reset_password(user, actor=signed_in_user())
    except user_service.UserError as problem:
        flash(str(problem), "error")
        return redirect(url_for("users.index"))
    db.session.commit()
    # Shown once, in this response only: never in a flash (the session cookie) or a log.
    return render_template("users/password_reset.html", account=user, temporary=temporary)


@bp.route("/<int:user_id>/two-factor/reset", methods=["POST"])
@allow(Role.ADMIN)
def reset_two_factor(user_id: int) -> Any:
    user = db.get_or_404(User, user_id)
    actor = signed_in_user()
    try:
        if actor.id != user.id:  # (their own is refused below, in words)
            two_factor.confirm_administrator(actor, request.form.get("password", ""))
        two_factor.reset_two_factor(user, actor=actor)
    except user_service.UserError as problem:
        db.session.commit()  # a wrong password counts, as at sign-in
        flash(str(problem), "error")
        return redirect(url_for("users.index"))
    db.session.commit()
    flash(
        _(
            "Two-factor authentication of %(email)s is reset and their sessions have ended; "
            "they are told by e-mail and can set it up again after signing in.",
            email=user.email,
        ),
        "success",
    )
    return redirect(url_for("users.index"))


@bp.route("/two-factor", methods=["POST"])
@allow(Role.ADMIN)
def two_factor_policy() -> Any:
    required = set(request.form.getlist("required"))
    changed = []
    for role in Role:
        wanted = role.value in required
        if wanted != two_factor.is_totp_required(role):
            two_factor.set_totp_required(role, wanted)
            changed.append(role.value)
    db.session.commit()
    if changed:
        roles = ", ".join(label(code, "role") for code in changed)
        flash(_("Two-factor rule changed for: %(roles)s.", roles=roles), "success")
    else:
        flash(_("No changes."), "success")
    return redirect(url_for("users.index"))


def _render_keys(user: User, key_error: api_keys.ApiKeyError | None = None) -> Any:
    return api_key_forms.render_keys_page(
        "users/api_keys.html",
        user,
        key_error,
        create_url=url_for("users.create_api_key", user_id=user.id),
        revoke_url=lambda key_id: url_for("users.revoke_api_key", user_id=user.id, key_id=key_id),
        account=user,
    )


@bp.route("/<int:user_id>/api-keys")
@allow(Role.ADMIN)
def api_keys_of(user_id: int) -> Any:
    return _render_keys(db.get_or_404(User, user_id))


@bp.route("/<int:user_id>/api-keys", methods=["POST"])
@allow(Role.ADMIN)
def create_api_key(user_id: int) -> Any:
    """An admin makes a key for anyone; the scopes offered are that user's."""
    user = db.get_or_404(User, user_id)
    try:
        made = api_key_forms.create_from_form(user, created_by=signed_in_user())
    except api_keys.ApiKeyError as problem:
        db.session.rollback()
        return _render_keys(user, problem)
    db.session.commit()
    return api_key_forms.render_new_key(
        made, back_url=url_for("users.api_keys_of", user_id=user.id)
    )


@bp.route("/<int:user_id>/api-keys/<int:key_id>/revoke", methods=["POST"])
@allow(Role.ADMIN)
def revoke_api_key(user_id: int, key_id: int) -> Any:
    key = db.session.get(ApiKey, key_id)
    if key is None or key.user_id != user_id:
        abort(404)
    api_keys.revoke_key(key, by=signed_in_user())
    db.session.commit()
    flash(
        _(
            "The key %(name)s of %(email)s is revoked: it no longer works.",
            name=key.name,
            email=key.user.email,
        ),
        "success",
    )
    return redirect(url_for("users.api_keys_of", user_id=user_id))
