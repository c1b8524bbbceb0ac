"""Countries page: the names letters print, per language, and an admin's corrections."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from campaign.extensions import db
from campaign.i18n import current_language, language_name
from campaign.models import CountryNameOverride, Role
from campaign.services.statements import country_names
from campaign.web.access import allow

bp = Blueprint("countries", __name__, url_prefix="/countries")

FORM_FIELDS = ("code", "language", "short_name", "formal_name", "note")


def _render(form: dict[str, str] | None = None, errors: dict[str, str] | None = None) -> Any:
    query = " ".join(request.args.get("q", "").split())[:100]
    rows = country_names.country_rows(query, current_language())
    status = 400 if errors else 200
    return (
        render_template(
            "countries/index.html",
            rows=rows,
            query=query,
            languages=country_names.letter_languages(),
            form=form or {"language": current_language()},
            errors=errors or {},
            reviewed=country_names.is_reviewed,
            corrections=country_names.corrections(),
        ),
        status,
    )


@bp.route("/", methods=["GET"])
@allow(Role.VIEWER)
def index() -> Any:
    return _render()


@bp.route("/", methods=["POST"])
@allow(Role.ADMIN)
def save() -> Any:
    form = {name: request.form.get(name, "") for name in FORM_FIELDS}
    try:
        row = country_names.save_country_name(**form)
    except country_names.CountryNameError as problem:
        return _render(form, {problem.field: str(problem)})
    db.session.commit()
    flash(
        _("%(code)s is now named “%(name)s” in letters written in %(language)s.",
          code=row.code, name=row.short_name, language=language_name(row.language)),
        "success",
    )  # fmt: skip
    return redirect(url_for("countries.index", q=row.code))


@bp.route("/<int:row_id>/delete", methods=["POST"])
@allow(Role.ADMIN)
def delete(row_id: int) -> Any:
    row = db.session.get(CountryNameOverride, row_id)
    if row is None:
        abort(404)
    code = row.code
    country_names.delete_country_name(row)
    db.session.commit()
    flash(_("The correction is removed; the reviewed table applies again."), "success")
    return redirect(url_for("countries.index", q=code))
