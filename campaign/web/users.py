"""Account administration (admins only): create, roles, (de)activate, unlock, two-factor rules."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Role, User
from campaign.models._types import utcnow
from campaign.services import users as user_service
from campaign.web.access import allow, signed_in_user

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
            totp_required={role: user_service.is_totp_required(role) for role in Role},
            now=utcnow(),
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
    flash(f"Account {user.email} created with role {user.role}.", "success")
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
    flash(f"{user.email} is now {role.value}; their open sessions have ended.", "success")
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
    flash(f"{user.email} {'reactivated' if active else 'deactivated'}.", "success")
    return redirect(url_for("users.index"))


@bp.route("/<int:user_id>/unlock", methods=["POST"])
@allow(Role.ADMIN)
def unlock(user_id: int) -> Any:
    user = db.get_or_404(User, user_id)
    user_service.unlock(user)
    db.session.commit()
    flash(f"{user.email} unlocked.", "success")
    return redirect(url_for("users.index"))


@bp.route("/two-factor", methods=["POST"])
@allow(Role.ADMIN)
def two_factor_policy() -> Any:
    required = set(request.form.getlist("required"))
    changed = []
    for role in Role:
        wanted = role.value in required
        if wanted != user_service.is_totp_required(role):
            user_service.set_totp_required(role, wanted)
            changed.append(role.value)
    db.session.commit()
    flash(
        f"Two-factor rule changed for: {', '.join(changed)}." if changed else "No changes.",
        "success",
    )
    return redirect(url_for("users.index"))
