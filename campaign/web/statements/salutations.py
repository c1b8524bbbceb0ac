"""Salutation rules page: the effective table for everyone, admin rules and settings for admins."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from campaign.extensions import db
from campaign.labels import label
from campaign.letters.salutations import ANY, GENDERS, KINDS, STYLES, InvalidRuleError
from campaign.models import Role, RoleType, SalutationRule
from campaign.services.statements import salutation_rules as rule_service
from campaign.web.access import allow, signed_in_user

bp = Blueprint("salutations", __name__, url_prefix="/salutations")

RULE_FIELDS = ("language", "kind", "role", "gender", "style", "text")
# The settings of salutation_rules.toml in the interface language; the file's own
# description (English) is shown for a setting not listed here.
SETTING_DESCRIPTIONS = {
    "fr_ambassador_feminine": _l(
        "French salutation for a woman ambassador (the feminine form is disputed)."
    ),
}


def _choices() -> dict[str, list[str]]:
    return {
        "kind": list(KINDS),
        "role": [ANY, *(r.value for r in RoleType)],
        "gender": [ANY, *GENDERS],
        "style": [ANY, *STYLES],
    }


def _rule_form(source: Any) -> dict[str, str]:
    return {name: str(source.get(name, "") or "") for name in RULE_FIELDS}


def _row_values(row: SalutationRule) -> dict[str, str]:
    return {
        "language": row.language,
        "kind": row.kind,
        "role": row.role_type,
        "gender": row.gender,
        "style": row.style,
        "text": "\n".join(row.texts),
    }


def _render_index(
    *,
    values: dict[str, str] | None = None,
    problems: list[str] | None = None,
    setting_problems: list[str] | None = None,
    status: int = 200,
) -> Any:
    rule_set = rule_service.current_rule_set()
    language = request.args.get("lang", "")
    rules = [r for r in rule_set.rules if not language or r.language == language]
    return (
        render_template(
            "salutations/index.html",
            rules=rules,
            languages=rule_set.languages(),
            language=language,
            language_name=rule_set.language_name,
            settings=rule_set.settings,
            chosen=rule_set.chosen_settings,
            admin_rules=rule_service.admin_rules(),
            incomplete=rule_service.incomplete_languages(rule_set),
            setting_descriptions=SETTING_DESCRIPTIONS,
            values=values or {"kind": "salutation", "gender": ANY, "style": ANY},
            problems=problems or [],
            setting_problems=setting_problems or [],
            rule_choices=_choices(),
        ),
        status,
    )


@bp.route("/")
@allow(Role.VIEWER)
def index() -> Any:
    return _render_index()


@bp.route("/rules", methods=["POST"])
@allow(Role.ADMIN)
def create_rule() -> Any:
    values = _rule_form(request.form)
    try:
        row = rule_service.create_rule(values, actor=signed_in_user())
    except InvalidRuleError as error:
        db.session.rollback()
        return _render_index(values=values, problems=error.problems, status=422)
    db.session.commit()
    role = _("any role") if row.role_type == ANY else label(row.role_type, "role_type")
    flash(
        _(
            "Rule added for %(language)s (%(kind)s, %(role)s).",
            language=row.language,
            kind=label(row.kind, "salutation_kind"),
            role=role,
        ),
        "success",
    )
    return redirect(url_for("salutations.index", lang=row.language))


@bp.route("/rules/<int:rule_id>/edit", methods=["GET", "POST"])
@allow(Role.ADMIN)
def edit_rule(rule_id: int) -> Any:
    row = db.get_or_404(SalutationRule, rule_id)
    if request.method == "GET":
        return _render_form(row, _row_values(row), [])
    values = _rule_form(request.form)
    try:
        rule_service.update_rule(row, values, actor=signed_in_user())
    except InvalidRuleError as error:
        db.session.rollback()
        return _render_form(db.get_or_404(SalutationRule, rule_id), values, error.problems, 422)
    db.session.commit()
    flash(_("Rule saved."), "success")
    return redirect(url_for("salutations.index", lang=row.language))


def _render_form(
    row: SalutationRule, values: dict[str, str], problems: list[str], status: int = 200
) -> Any:
    return (
        render_template(
            "salutations/edit.html",
            row=row,
            values=values,
            problems=problems,
            rule_choices=_choices(),
        ),
        status,
    )


@bp.route("/rules/<int:rule_id>/delete", methods=["POST"])
@allow(Role.ADMIN)
def delete_rule(rule_id: int) -> Any:
    row = db.get_or_404(SalutationRule, rule_id)
    rule_service.delete_rule(row, actor=signed_in_user())
    db.session.commit()
    flash(_("Rule deleted; the built-in rule it replaced, if any, applies again."), "success")
    return redirect(url_for("salutations.index"))


@bp.route("/settings", methods=["POST"])
@allow(Role.ADMIN)
def save_settings() -> Any:
    changed = False
    try:
        for name in rule_service.current_rule_set().settings:
            choice = request.form.get(name)
            if choice is not None:
                changed = rule_service.set_setting(name, choice, actor=signed_in_user()) or changed
    except InvalidRuleError as error:
        db.session.rollback()
        return _render_index(setting_problems=error.problems, status=422)
    db.session.commit()
    flash(_("Settings saved.") if changed else _("No changes."), "success")
    return redirect(url_for("salutations.index"))
