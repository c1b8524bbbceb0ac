"""The Organisation page (admins): the letterhead's address, contact lines and logo."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.exceptions import RequestEntityTooLarge

from campaign.extensions import db
from campaign.mail import organisation_name
from campaign.models import Role
from campaign.services.statements import organisation as organisation_service
from campaign.web.access import allow, signed_in_user

bp = Blueprint("organisation", __name__, url_prefix="/organisation")

# The form's text and a logo well over the limit, so a larger upload is refused unread.
_REQUEST_LIMIT = organisation_service.LOGO_MAX_BYTES + 256 * 1024


def _render(form: dict[str, str], error: str = "", error_field: str = "", status: int = 200) -> Any:
    settings = organisation_service.letterhead_settings()
    return (
        render_template(
            "organisation/index.html",
            name=organisation_name(),
            form=form,
            settings=settings,
            has_logo=organisation_service.logo_path(settings) is not None,
            max_logo_kb=organisation_service.LOGO_MAX_BYTES // 1024,
            error=error,
            error_field=error_field,
        ),
        status,
    )


@bp.route("/")
@allow(Role.ADMIN)
def index() -> Any:
    return _render(organisation_service.letterhead_settings().as_form())


@bp.route("/", methods=["POST"])
@allow(Role.ADMIN)
def update() -> Any:
    request.max_content_length = _REQUEST_LIMIT
    try:
        form = {key: request.form.get(key, "") for key in organisation_service.TEXT_FIELDS}
        upload = request.files.get("logo")
    except RequestEntityTooLarge:
        message = _(
            "The logo is larger than %(size)d MB; save it smaller (a letterhead needs "
            "about 600 pixels wide).",
            size=organisation_service.LOGO_MAX_BYTES // (1024 * 1024),
        )
        return _render(organisation_service.letterhead_settings().as_form(), message, "logo", 413)
    try:
        fields = organisation_service.fields_from_form(form)
        logo = organisation_service.read_logo(upload.stream) if upload and upload.filename else None
        if upload and upload.filename and not logo:
            raise organisation_service.OrganisationError(_("The logo file is empty."), "logo")
        unused = organisation_service.save_letterhead(
            fields,
            logo=logo,
            remove_logo=request.form.get("remove_logo") == "1",
            actor=signed_in_user(),
        )
    except organisation_service.OrganisationError as problem:
        db.session.rollback()
        return _render(form, str(problem), problem.field, 422)
    db.session.commit()
    if unused is not None:
        unused.unlink(missing_ok=True)
    flash(_("The letterhead is saved; letters made from now on carry it."), "success")
    return redirect(url_for("organisation.index"))


@bp.route("/logo")
@allow(Role.ADMIN)
def logo() -> Any:
    """The stored logo, for the page's preview (admins only, never cached)."""
    settings = organisation_service.letterhead_settings()
    path = organisation_service.logo_path(settings)
    if path is None:
        abort(404)
    response = Response(path.read_bytes(), mimetype=settings.logo_type or "image/png")
    response.headers["Content-Disposition"] = "inline"
    return response
