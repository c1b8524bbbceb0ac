"""The contact import wizard: upload, map columns, preview, start, and follow the progress."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge

from campaign.extensions import db
from campaign.models import ContactImport, ContactList, ImportStatus, Role
from campaign.services.contacts import importing
from campaign.services.contacts.contacts import FIELD_LABELS
from campaign.web.access import allow

bp = Blueprint("imports", __name__, url_prefix="/imports")

ALLOWED_SUFFIXES = (".csv", ".txt", ".tsv", ".xlsx")
# Rows shown on the finished page; the downloadable rejects file has all of them.
SHOWN_REJECTS = 5000
_COPY_CHUNK = 1024 * 1024


def _uploads() -> Path:
    # Inside the instance folder, which is never served: uploads are only read by us.
    folder = Path(current_app.instance_path) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class _TooLarge(str):
    """The message for a file over the size cap (answered with 413, not 400)."""

    __slots__ = ()


def _too_large_message() -> str:
    return _TooLarge(
        _(
            "The file is larger than the %(limit)s MB this installation accepts "
            "(CAMPAIGN_IMPORT_MAX_MB). Split it into smaller files.",
            limit=current_app.config["IMPORT_MAX_MB"],
        )
    )


@bp.route("/", methods=["GET", "POST"])
@allow(Role.EDITOR)
def new() -> Any:
    error = ""
    if request.method == "POST":
        try:
            upload = request.files.get("file")
        except RequestEntityTooLarge:
            upload, error = None, _too_large_message()
        if not error:
            record, error = _accept_upload(upload)
            if record is not None:
                return redirect(url_for("imports.mapping", import_id=record.id))
    if importing.purge_old_import_files():
        db.session.commit()
    recent = importing.recent_imports()
    status = 200
    if error:
        status = 413 if isinstance(error, _TooLarge) else 400
    return render_template(
        "imports/new.html",
        error=error,
        recent=recent,
        max_mb=current_app.config["IMPORT_MAX_MB"],
    ), status


def _accept_upload(upload: FileStorage | None) -> tuple[ContactImport | None, str]:
    if upload is None or not upload.filename:
        return None, _("Choose a CSV or Excel (.xlsx) file to upload.")
    original = Path(upload.filename).name[:300]
    suffix = Path(original).suffix.lower()
    if suffix not in ALLOWED_SUFFIXES:
        return (
            None,
            _(
                "%(file)s: only CSV (.csv, .txt, .tsv) and Excel (.xlsx) files can be imported.",
                file=original,
            ),
        )
    stored = _uploads() / f"{secrets.token_hex(16)}{suffix}"
    # The copy is ours to delete on every way out but one: a committed import record.
    try:
        return _keep_upload(upload, stored, original)
    except BaseException:
        stored.unlink(missing_ok=True)
        raise


def _keep_upload(
    upload: FileStorage, stored: Path, original: str
) -> tuple[ContactImport | None, str]:
    size = 0
    with stored.open("wb") as out:
        while chunk := upload.stream.read(_COPY_CHUNK):
            size += len(chunk)
            if size > importing.max_upload_bytes():
                break
            out.write(chunk)
    if size > importing.max_upload_bytes():
        stored.unlink(missing_ok=True)
        return None, _too_large_message()
    try:
        record = importing.record_upload(stored, original, created_by_id=current_user.id)
    except importing.TabularError as problem:
        stored.unlink(missing_ok=True)
        return None, str(problem)
    db.session.commit()
    return record, ""


def _samples(record: ContactImport, count: int = 3) -> tuple[Any, list[list[str]]]:
    info, rows = importing.open_contact_file(
        Path(record.stored_path), filename=record.original_filename
    )
    with rows:
        samples = [row.cells for _index, row in zip(range(count), rows, strict=False)]
    return info, samples


def _give_up(record: ContactImport, problem: Exception) -> None:
    """The stored file cannot be read after all: say why, fail the import, delete the file.

    Any exception, not only a TabularError: whatever stops reading it, the import cannot go
    on, and the file must not wait on disk for the daily purge.
    """
    if not isinstance(problem, importing.TabularError):
        current_app.logger.exception("Import %s: the stored file could not be read", record.id)
        problem = importing.TabularError(
            _(
                "%(file)s could not be read (%(error)s), so the import was stopped and the "
                "file deleted. Save it again from your spreadsheet program, or as CSV, and "
                "upload the new file.",
                file=record.original_filename,
                error=type(problem).__name__,
            )
        )
    flash(str(problem), "error")
    db.session.rollback()
    importing.mark_import_failed(record.id, problem)
    db.session.commit()
    importing.delete_upload(record.id)


# The question for each column letters need that the file lacks (decision 0047).
FALLBACK_QUESTIONS = {
    "role_type": _l("Role for all rows"),
    "grammatical_gender": _l("Grammatical gender for all rows"),
    "languages": _l("Language for all rows"),
}
UNKNOWN_CHOICES = {
    "role_type": _l("leave unknown (role: other)"),
    "grammatical_gender": _l("leave unknown"),
    "languages": _l("leave unknown (no language)"),
}


def _fallback_fields(mapping: dict[str, str], chosen: dict[str, str]) -> list[dict[str, Any]]:
    """The questions the mapping page asks for the letter fields no column fills."""
    return [
        {
            "name": name,
            "question": FALLBACK_QUESTIONS[name],
            "unknown": UNKNOWN_CHOICES[name],
            "options": importing.letter_value_options(name),
            "value": chosen.get(name) or importing.LEAVE_UNKNOWN,
        }
        for name in importing.missing_letter_fields(mapping)
    ]


def _refuse_unoffered(mapping: dict[str, str], fallbacks: dict[str, str]) -> None:
    """Refuse a value for all rows the page did not offer (a crafted or stale form)."""
    for name in importing.missing_letter_fields(mapping):
        value = fallbacks.get(name, "")
        offered = {code for code, _text in importing.letter_value_options(name)}
        if value and value != importing.LEAVE_UNKNOWN and value not in offered:
            raise importing.ImportSetupError(
                _(
                    "%(field)s for all rows: %(value)s is not one of the choices offered",
                    field=FIELD_LABELS[name],
                    value=repr(value),
                )
            )


def _fallback_notes(fallbacks: dict[str, str]) -> list[str]:
    """What the preview says about each letter field the file has no column for."""
    notes = []
    for name, value in fallbacks.items():
        field = FIELD_LABELS[name]
        if value:
            notes.append(
                _(
                    "%(field)s: the file has no column for it; every row gets %(value)s.",
                    field=field,
                    value=importing.letter_value_words(name, value),
                )
            )
        else:
            notes.append(
                _(
                    "%(field)s: the file has no column for it; left unknown (%(value)s).",
                    field=field,
                    value=importing.unknown_meaning(name),
                )
            )
    return notes


@bp.route("/<int:import_id>/mapping", methods=["GET", "POST"])
@allow(Role.EDITOR)
def mapping(import_id: int) -> Any:
    record = db.get_or_404(ContactImport, import_id)
    if record.status != ImportStatus.UPLOADED.value:
        return redirect(url_for("imports.show", import_id=record.id))
    try:
        info, samples = _samples(record)
    except Exception as problem:  # see _give_up
        _give_up(record, problem)
        return redirect(url_for("imports.new"))
    _mapping, remembered = importing.suggest_mapping(info.headers)
    error = ""
    stored, fallbacks = importing.split_mapping(record.mapping)
    chosen = {h: stored.get(h, "") for h in info.headers}
    list_name = ""
    if record.list_id:
        chosen_list = db.session.get(ContactList, record.list_id)
        list_name = chosen_list.name if chosen_list else ""
    on_duplicate = record.on_duplicate
    if request.method == "POST":
        chosen = {h: request.form.get(f"map-{i}", "") for i, h in enumerate(info.headers)}
        on_duplicate = request.form.get("on_duplicate", "skip")
        list_name = request.form.get("list_name", "").strip()
        fallbacks = {
            name: request.form.get(f"fallback-{name}", "") for name in importing.LETTER_FIELDS
        }
        try:
            if on_duplicate not in importing.ON_DUPLICATE:
                raise importing.ImportSetupError(importing.duplicate_choice_message())
            cleaned = importing.clean_mapping(info.headers, chosen)
            _refuse_unoffered(cleaned, fallbacks)
            for_all_rows = importing.clean_fallbacks(cleaned, fallbacks)
            contact_list = importing.find_or_create_list(list_name) if list_name else None
        except importing.ImportSetupError as problem:
            db.session.rollback()
            error = str(problem)
        else:
            record.mapping = importing.stored_mapping(cleaned, for_all_rows)
            record.on_duplicate = on_duplicate
            record.list_id = contact_list.id if contact_list else None
            importing.remember_mapping(info.headers, cleaned)
            db.session.commit()
            return redirect(url_for("imports.preview", import_id=record.id))
    columns = [
        {
            "index": i,
            "header": header,
            "field": chosen.get(header, ""),
            "samples": [s[i] for s in samples if i < len(s) and s[i].strip()],
        }
        for i, header in enumerate(info.headers)
    ]
    lists = db.session.scalars(select(ContactList.name).order_by(ContactList.name)).all()
    return render_template(
        "imports/mapping.html",
        record=record,
        info=info,
        columns=columns,
        labels=FIELD_LABELS,
        remembered=remembered,
        error=error,
        on_duplicate=on_duplicate,
        list_name=list_name,
        lists=lists,
        fallbacks=_fallback_fields(chosen, fallbacks),
    ), (400 if error else 200)


@bp.route("/<int:import_id>/preview")
@allow(Role.EDITOR)
def preview(import_id: int) -> Any:
    record = db.get_or_404(ContactImport, import_id)
    if record.status != ImportStatus.UPLOADED.value:
        return redirect(url_for("imports.show", import_id=record.id))
    try:
        result = importing.preview_import(
            Path(record.stored_path),
            record.mapping,
            on_duplicate=record.on_duplicate,
            filename=record.original_filename,
        )
    except importing.ImportSetupError as problem:
        flash(str(problem), "error")
        return redirect(url_for("imports.mapping", import_id=record.id))
    except Exception as problem:  # see _give_up
        _give_up(record, problem)
        return redirect(url_for("imports.new"))
    mapped = [
        (i, h, result.mapping[h])
        for i, h in enumerate(result.info.headers)
        if result.mapping.get(h)
    ]
    contact_list = db.session.get(ContactList, record.list_id) if record.list_id else None
    return render_template(
        "imports/preview.html",
        record=record,
        preview=result,
        mapped=mapped,
        labels=FIELD_LABELS,
        contact_list=contact_list,
        fallback_notes=_fallback_notes(result.fallbacks),
        fallback_value=importing.letter_value_words,
    )


@bp.route("/<int:import_id>/start", methods=["POST"])
@allow(Role.EDITOR)
def start(import_id: int) -> Any:
    record = db.get_or_404(ContactImport, import_id)
    if record.status == ImportStatus.UPLOADED.value:
        try:
            importing.queue_import(record)
        except importing.TabularError as problem:
            db.session.rollback()
            importing.mark_import_failed(record.id, problem)
        db.session.commit()
        importing.delete_upload(record.id)
    return redirect(url_for("imports.show", import_id=record.id))


def _progress(record: ContactImport) -> dict[str, Any]:
    if importing.fail_if_stopped(record):
        db.session.commit()
    status = record.status
    report = importing.read_progress(record.id) or {}
    if status == ImportStatus.FINISHED.value:
        done = total = max(record.total_rows, 1)
        counts = {
            "imported": record.imported_count,
            "updated": record.updated_count,
            "skipped": record.skipped_count,
            "rejected": record.rejected_count,
        }
    else:
        done = int(report.get("done_lines", 0))
        total = int(report.get("total_lines", 0))
        counts = {k: int(report.get(k, 0)) for k in ("imported", "updated", "skipped", "rejected")}
    summary = importing.ImportResult(
        imported=counts["imported"],
        updated=counts["updated"],
        skipped=counts["skipped"],
        rejected=counts["rejected"],
    ).summary()
    message = (
        _("Line %(done)d of %(total)d: %(summary)s", done=done, total=total, summary=summary)
        if total
        else _("Waiting for the worker to start…")
    )
    return {
        "status": status,
        "is_done": status in (ImportStatus.FINISHED.value, ImportStatus.FAILED.value),
        # In the interface language, for the page and for import-progress.js.
        "summary": summary,
        "message": message,
        "done_lines": done,
        "total_lines": total,
        "percent": int(100 * done / total) if total else 0,
        "error": record.error,
        **counts,
    }


@bp.route("/<int:import_id>")
@allow(Role.EDITOR)
def show(import_id: int) -> Any:
    record = db.get_or_404(ContactImport, import_id)
    if record.status == ImportStatus.UPLOADED.value:
        return redirect(url_for("imports.mapping", import_id=record.id))
    rejects, more = importing.read_rejects(record.rejects_path, limit=SHOWN_REJECTS)
    contact_list = db.session.get(ContactList, record.list_id) if record.list_id else None
    return render_template(
        "imports/show.html",
        record=record,
        progress=_progress(record),
        rejects=rejects,
        more_rejects=more,
        contact_list=contact_list,
    )


@bp.route("/<int:import_id>/progress")
@allow(Role.EDITOR)
def progress(import_id: int) -> Any:
    return _progress(db.get_or_404(ContactImport, import_id))


@bp.route("/<int:import_id>/rejects.csv")
@allow(Role.EDITOR)
def rejects(import_id: int) -> Any:
    record = db.get_or_404(ContactImport, import_id)
    path = Path(record.rejects_path) if record.rejects_path else None
    # Only ever a file we wrote into the uploads folder, whatever the row says.
    if path is None or not path.is_file() or path.resolve().parent != _uploads().resolve():
        abort(404)
    stem = Path(record.original_filename).stem or "import"
    return send_file(
        path,
        mimetype="text/csv",
        as_attachment=True,
        download_name=f"{stem}-rejected-rows.csv",
    )
