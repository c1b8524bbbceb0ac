"""Access requests: export everything stored about one person (admins only, decision 0089)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import format_decimal
from flask_babel import gettext as _
from redis.exceptions import RedisError

from campaign.extensions import db
from campaign.i18n import current_language
from campaign.models import Contact, Role, SubjectExport, SubjectExportStatus
from campaign.services.privacy import erased_addresses
from campaign.services.privacy import subject_export as exports
from campaign.web.access import allow, signed_in_user
from campaign.web.downloads import file_download

log = logging.getLogger(__name__)

bp = Blueprint("subject_exports", __name__, url_prefix="/privacy/exports")

MAX_ADDRESS = 320


@bp.route("/")
@allow(Role.ADMIN)
def index() -> Any:
    """The form taking an address (a signer who is not a contact, say) and recent exports."""
    exports.remove_expired()
    db.session.commit()
    return render_template("subject_exports/index.html", exports=_listed(), address="", errors={})


def _listed() -> list[dict[str, Any]]:
    return [_describe(export) for export in exports.recent_exports()]


def _describe(export: SubjectExport) -> dict[str, Any]:
    contact = db.session.get(Contact, export.contact_id) if export.contact_id else None
    return {
        "export": export,
        "contact": contact,
        "status": _status(export),
        "is_downloadable": exports.is_downloadable(export),
    }


def _status(export: SubjectExport) -> str:
    if exports.is_stale(export):
        return SubjectExportStatus.FAILED.value
    return export.status


@bp.route("/", methods=["POST"])
@allow(Role.ADMIN)
def create() -> Any:
    """Export for an address typed in; nothing stored → say so, and make it only if asked."""
    address = request.form.get("email", "").strip()
    error = ""
    if not address:
        error = _("Address: an email address is required")
    elif len(address) > MAX_ADDRESS:
        error = _("Address: at most %(count)d characters", count=MAX_ADDRESS)
    record = None
    if not error:
        try:
            record = exports.collect_subject(address)
        except exports.SubjectExportError as problem:
            error = _("Address: %(reason)s", reason=str(problem))
    if error or record is None:
        return render_template(
            "subject_exports/index.html",
            exports=_listed(),
            address=address,
            errors={"email": error},
        ), 422
    if record.is_empty and request.form.get("write_empty") != "1":
        return render_template(
            "subject_exports/index.html",
            exports=_listed(),
            address=address,
            errors={},
            nothing_stored=True,
        )
    contact_id = record.contact_ids[0] if len(record.contact_ids) == 1 else None
    return _start(address, contact_id)


@bp.route("/contact/<int:contact_id>", methods=["POST"])
@allow(Role.ADMIN)
def for_contact(contact_id: int) -> Any:
    """The contact page's button: export everything stored about this contact's address."""
    contact = db.get_or_404(Contact, contact_id)
    return _start(contact.email, contact.id)


def _start(address: str, contact_id: int | None) -> Any:
    try:
        export = exports.start_export(
            address, actor=signed_in_user(), language=current_language(), contact_id=contact_id
        )
    except exports.SubjectExportError as problem:
        flash(_("Address: %(reason)s", reason=str(problem)), "error")
        return redirect(url_for("subject_exports.index"))
    except erased_addresses.ErasureKeyMissing as problem:
        db.session.rollback()
        return render_template(
            "subject_exports/index.html",
            exports=_listed(),
            address=address,
            errors={"email": str(problem)},
        ), 503
    export_id, token = export.id, export.token
    try:
        db.session.commit()  # the job is queued once the row is
    except RedisError:
        log.exception("subject export %s: the queue did not take it", export_id)
        db.session.close()
        exports.not_queued(export_id)
        db.session.commit()
    else:
        flash(_("The export is being made; this page shows its progress."), "info")
    return redirect(url_for("subject_exports.show", token=token))


def _found(token: str) -> SubjectExport:
    export = exports.find_export(token)
    if export is None:
        abort(404)
    return export


@bp.route("/<token>")
@allow(Role.ADMIN)
def show(token: str) -> Any:
    export = _found(token)
    exports.remove_expired()
    db.session.commit()
    return render_template(
        "subject_exports/show.html",
        **_describe(export),
        progress=_progress(export),
        failure=exports.failure_text(export) if _status(export) == "failed" else "",
    )


def _progress(export: SubjectExport) -> dict[str, Any]:
    status = _status(export)
    active = status in (SubjectExportStatus.QUEUED.value, SubjectExportStatus.RUNNING.value)
    if status == SubjectExportStatus.QUEUED.value:
        text = _("Waiting for a worker to take the export. If this lasts, is the worker running?")
    elif not export.total:
        text = _("Looking for everything stored about the address…")
    else:
        text = _(
            "%(done)s of %(total)s records written (%(percent)s%%)",
            done=format_decimal(export.done),
            total=format_decimal(export.total),
            percent=exports.percent(export),
        )
    return {
        "is_running": active,
        "status": status,
        "done": export.done,
        "total": export.total,
        "percent": exports.percent(export),
        "text": text,
    }


@bp.route("/<token>/progress")
@allow(Role.ADMIN)
def progress(token: str) -> Any:
    """The export's progress, for the page's poll."""
    return _progress(_found(token))


@bp.route("/<token>/download")
@allow(Role.ADMIN)
def download(token: str) -> Any:
    export = _found(token)
    stream = exports.open_download(export, actor=signed_in_user())
    if stream is None:
        flash(
            _("This export can no longer be downloaded: its file was removed. Make it again."),
            "error",
        )
        return redirect(url_for("subject_exports.show", token=token))
    db.session.commit()  # the download is audited before the first byte goes
    return file_download(
        stream, mimetype="application/zip", filename=f"access-request-{export.id}.zip"
    )


@bp.route("/<token>/remove", methods=["POST"])
@allow(Role.ADMIN)
def remove(token: str) -> Any:
    export = _found(token)
    exports.remove_export(export, actor=signed_in_user())
    db.session.commit()
    flash(_("The export's file was removed."), "info")
    return redirect(url_for("subject_exports.show", token=token))
