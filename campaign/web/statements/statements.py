"""Statement pages: list, create, texts per language, status, versions, signatories, files."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.i18n import language_name
from campaign.labels import label
from campaign.models import (
    Contact,
    PublishAs,
    Role,
    Signatory,
    SignatoryKind,
    Statement,
    StatementAttachment,
    StatementStatus,
    StatementVersion,
    User,
)
from campaign.params import row_id
from campaign.services.statements import previews as preview_service
from campaign.services.statements import statements as statement_service
from campaign.services.statements.files import set_file_language
from campaign.services.statements.statements import (
    PASTE_FORMATS,
    TRANSLATION_INPUTS,
    TRANSLATION_LABELS,
    StatementError,
)
from campaign.web.access import allow, may, signed_in_user
from campaign.web.statements.previews import FRAME_POLICY

bp = Blueprint("statements", __name__, url_prefix="/statements")

SIGNATORY_FIELDS = ("name", "acronym", "role", "organisation", "country", "exile_country")
SIGNATORY_LABELS = {
    "name": _l("Name"),
    "acronym": _l("Acronym"),
    "role": _l("Role"),
    "organisation": _l("Organisation"),
    "country": _l("Country"),
    "exile_country": _l("Based in exile in"),
    "group_label": _l("Group"),
    "kind": _l("Kind"),
    "publish_as": _l("Publish as"),
}
# The per-language forms of a signer's name, role and organisation (Signatory.translations):
# each letter language's legend and hint.
SIGNATORY_TRANSLATIONS = {
    "en": (
        _l("English"),
        _l(
            "A letter in English prints these instead of the name, role and organisation "
            "above; where one is empty it prints the one above."
        ),
    ),
    "fr": (
        _l("French"),
        _l(
            "A letter in French prints these instead of the name, role and organisation "
            "above; where one is empty it prints the one above."
        ),
    ),
    "ru": (
        _l("Russian"),
        _l(
            "A letter in Russian prints these instead of the name, role and organisation "
            "above; where one is empty it prints the one above."
        ),
    ),
}
# What stands in for a withheld name in the version history (shown to staff).
WITHHELD = statement_service.WITHHELD


def _get_signatory(statement: Statement, signatory_id: int) -> Signatory:
    signatory = db.session.get(Signatory, signatory_id)
    if signatory is None or signatory.statement_id != statement.id:
        abort(404)
    return signatory


def _get_attachment(statement: Statement, attachment_id: int) -> StatementAttachment:
    attachment = db.session.get(StatementAttachment, attachment_id)
    if attachment is None or attachment.statement_id != statement.id:
        abort(404)
    return attachment


@bp.route("/")
@allow(Role.VIEWER)
def index() -> Any:
    signers = (
        select(Signatory.statement_id, func.count(Signatory.id).label("n"))
        .group_by(Signatory.statement_id)
        .subquery()
    )
    changed = (
        select(StatementVersion.statement_id, func.max(StatementVersion.created_at).label("at"))
        .group_by(StatementVersion.statement_id)
        .subquery()
    )
    rows = db.session.execute(
        select(Statement, func.coalesce(signers.c.n, 0), changed.c.at)
        .outerjoin(signers, signers.c.statement_id == Statement.id)
        .outerjoin(changed, changed.c.statement_id == Statement.id)
        .order_by(Statement.id.desc())
    ).all()
    return render_template("statements/index.html", rows=rows)


def _text_form(source: Any) -> dict[str, str]:
    return {name: str(source.get(name, "") or "") for name in ("language", "subject", "body")}


@bp.route("/new", methods=["GET", "POST"])
@allow(Role.EDITOR)
def create() -> Any:
    values = {"title": "", "language": "en", "subject": "", "body": ""}
    if request.method == "GET":
        return render_template("statements/new.html", values=values, errors={})
    values = {"title": request.form.get("title", ""), **_text_form(request.form)}
    try:
        statement = statement_service.create_statement(
            values["title"],
            language=values["language"],
            subject=values["subject"],
            body=values["body"],
            actor=signed_in_user(),
        )
    except StatementError as error:
        db.session.rollback()
        errors = {error.field or "title": str(error)}
        return render_template("statements/new.html", values=values, errors=errors), 422
    db.session.commit()
    flash(_("Statement “%(title)s” created as a draft.", title=statement.title), "success")
    return redirect(url_for("statements.show", statement_id=statement.id))


def _render_show(
    statement: Statement,
    language: str | None = None,
    *,
    forms: dict[str, dict[str, str]] | None = None,
    errors: dict[str, Any] | None = None,
    status: int = 200,
) -> Any:
    languages = statement.languages
    if language not in languages:
        language = languages[0] if languages else None
    text = statement.text_for(language) if language else None
    forms = dict(forms or {})
    if "text" not in forms and text is not None:
        forms["text"] = {"subject": text.subject, "body": text.body}
    versions = statement.versions
    return (
        render_template(
            "statements/show.html",
            statement=statement,
            signatory=None,
            language=language,
            text=text,
            forms=forms,
            errors=errors or {},
            signatories=statement.signatories,
            attachments=statement_service.attachments_of(statement),
            last_version=versions[-1] if versions else None,
            statuses=[s.value for s in StatementStatus],
            paste_formats=PASTE_FORMATS,
            **_signatory_form_words(),
            max_mb=statement_service.ATTACHMENT_MAX_BYTES // (1024 * 1024),
            samples=_samples(statement),
        ),
        status,
    )


@bp.route("/<int:statement_id>")
@allow(Role.VIEWER)
def show(statement_id: int) -> Any:
    return _render_show(db.get_or_404(Statement, statement_id), request.args.get("lang"))


def _refused(
    statement_id: int,
    language: str | None,
    form: str,
    values: dict[str, str],
    error: StatementError,
) -> Any:
    db.session.rollback()
    statement = db.get_or_404(Statement, statement_id)
    errors = {form: {"field": error.field, "message": str(error), "problems": error.problems}}
    return _render_show(statement, language, forms={form: values}, errors=errors, status=422)


@bp.route("/<int:statement_id>/title", methods=["POST"])
@allow(Role.EDITOR)
def rename(statement_id: int) -> Any:
    statement = db.get_or_404(Statement, statement_id)
    values = {"title": request.form.get("title", "")}
    try:
        changed = statement_service.set_title(statement, values["title"], actor=signed_in_user())
    except StatementError as error:
        return _refused(statement_id, None, "title", values, error)
    db.session.commit()
    flash(_("Title saved.") if changed else _("No changes."), "success")
    return redirect(url_for("statements.show", statement_id=statement.id))


@bp.route("/<int:statement_id>/status", methods=["POST"])
@allow(Role.EDITOR)
def set_status(statement_id: int) -> Any:
    statement = db.get_or_404(Statement, statement_id)
    try:
        status = StatementStatus(request.form.get("status", ""))
    except ValueError:
        abort(400)
    statement_service.set_status(statement, status, actor=signed_in_user())
    db.session.commit()
    flash(
        _("Statement marked %(status)s.", status=label(status.value, "statement_status")),
        "success",
    )
    return redirect(url_for("statements.show", statement_id=statement.id))


@bp.route("/<int:statement_id>/delete", methods=["POST"])
@allow(Role.EDITOR)
def delete(statement_id: int) -> Any:
    statement = db.get_or_404(Statement, statement_id)
    try:
        files = statement_service.delete_statement(statement, actor=signed_in_user())
    except StatementError as error:
        db.session.rollback()
        flash(str(error), "error")
        return redirect(url_for("statements.show", statement_id=statement_id))
    db.session.commit()
    for path in files:
        path.unlink(missing_ok=True)
    flash(_("Statement deleted."), "success")
    return redirect(url_for("statements.index"))


@bp.route("/<int:statement_id>/texts/<language>", methods=["POST"])
@allow(Role.EDITOR)
def save_text(statement_id: int, language: str) -> Any:
    statement = db.get_or_404(Statement, statement_id)
    if statement.text_for(language) is None:
        abort(404)
    values = _text_form(request.form)
    text = statement.text_for(language)
    assert text is not None
    if (text.subject, text.body) == (values["subject"], values["body"]):
        flash(_("No changes."), "success")
        return redirect(url_for("statements.show", statement_id=statement.id, lang=language))
    try:
        statement_service.set_text(
            statement,
            language=language,
            subject=values["subject"],
            body=values["body"],
            actor=signed_in_user(),
        )
    except StatementError as error:
        return _refused(statement_id, language, "text", values, error)
    db.session.commit()
    flash(_("The text in %(language)s is saved.", language=language_name(language)), "success")
    return redirect(url_for("statements.show", statement_id=statement.id, lang=language))


@bp.route("/<int:statement_id>/languages", methods=["POST"])
@allow(Role.EDITOR)
def add_language(statement_id: int) -> Any:
    statement = db.get_or_404(Statement, statement_id)
    values = _text_form(request.form)
    try:
        language = statement_service.clean_language(values["language"])
        if statement.text_for(language) is not None:
            raise StatementError(
                _(
                    "The statement has a text in %(language)s already; edit it in its tab.",
                    language=language_name(language),
                ),
                field="language",
            )
        statement_service.set_text(
            statement,
            language=language,
            subject=values["subject"],
            body=values["body"],
            actor=signed_in_user(),
        )
    except StatementError as error:
        return _refused(statement_id, None, "language", values, error)
    db.session.commit()
    flash(_("The text in %(language)s is added.", language=language_name(language)), "success")
    return redirect(url_for("statements.show", statement_id=statement.id, lang=language))


# --- The live letter beside the editor (decision 0049) ------------------------------------


def _samples(statement: Statement) -> list[Contact]:
    """The readers the editor offers for its live letter (editors only)."""
    if not may(Role.EDITOR):
        return []
    return preview_service.sample_recipients(statement)


def _live_refused(message: str, status: int, retry: int | None = None) -> Any:
    answer: dict[str, Any] = {"ok": False, "error": message}
    if retry is not None:
        answer["retry"] = retry  # seconds; the page tries again by itself
    return jsonify(answer), status


@bp.route("/<int:statement_id>/live", methods=["POST"])
@allow(Role.EDITOR)
def live_letter(statement_id: int) -> Any:
    """Render the text being typed for a sample reader, as the letter will be (JSON)."""
    statement = db.get_or_404(Statement, statement_id)
    user = signed_in_user()
    try:
        preview_service.allow_draft_render(user.id)
        language = statement_service.clean_language(request.form.get("language", ""))
    except preview_service.DraftRefused as error:
        return _live_refused(str(error), error.status, error.retry)
    except StatementError as error:
        return _live_refused(str(error), 422)
    contact_id = row_id(request.form.get("contact"))
    contact = db.session.get(Contact, contact_id) if contact_id is not None else None
    if contact is None or contact.deleted_at is not None:
        return _live_refused(_("Choose a reader to see the letter as they will."), 422)
    subject, body = request.form.get("subject", ""), request.form.get("body", "")
    try:
        draft = preview_service.render_draft(
            statement,
            contact,
            language=language,
            subject=subject,
            body=body,
            user_id=user.id,
            pane=preview_service.clean_pane(request.form.get("pane")),
        )
    except preview_service.DraftRefused as error:
        return _live_refused(str(error), error.status, error.retry)
    return jsonify(
        {
            "ok": True,
            "frame": url_for("statements.live_frame", statement_id=statement.id, v=draft.key),
            "text": draft.text,
            "problems": [
                {
                    "severity": problem.severity,
                    "code": problem.code,
                    "text": _(
                        "%(severity)s (%(problem)s): %(message)s",
                        severity=label(problem.severity, "problem_severity"),
                        problem=label(problem.code, "problem"),
                        message=problem.message,
                    ),
                }
                for _place, problem in draft.warnings
            ],
        }
    )


@bp.route("/<int:statement_id>/live/frame")
@allow(Role.EDITOR)
def live_frame(statement_id: int) -> Any:
    """The HTML part of one of the user's live letters (`v`, its render), for the sandboxed
    frame of the pane that asked for it."""
    html = preview_service.stored_draft(
        signed_in_user().id, statement_id, request.args.get("v", "")
    )
    if html is None:
        abort(404)
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = FRAME_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Cache-Control"] = "no-store"
    return response


# --- Versions ------------------------------------------------------------------------------


def _public_snapshot(snapshot: dict[str, Any], names: list[str]) -> dict[str, Any]:
    signers = []
    for signer in snapshot.get("signatories", []):
        if signer.get("publish_as") == PublishAs.WITHHELD.value or signer.get("name") in names:
            # Role, organisation and country can identify a person as surely as a name.
            signers.append(
                {
                    "kind": signer.get("kind", ""),
                    "publish_as": "withheld",
                    "position": signer.get("position", 0),
                    "name": str(WITHHELD),
                }
            )
            continue
        signers.append(
            {key: statement_service.redact(str(value), names) for key, value in signer.items()}
        )
    return {**snapshot, "signatories": signers}


def _authors(versions: list[StatementVersion]) -> dict[int, str]:
    ids = {v.created_by_id for v in versions if v.created_by_id is not None}
    if not ids:
        return {}
    rows = db.session.execute(select(User.id, User.email).where(User.id.in_(ids)))
    return {user_id: email for user_id, email in rows}


@bp.route("/<int:statement_id>/versions")
@allow(Role.VIEWER)
def versions(statement_id: int) -> Any:
    statement = db.get_or_404(Statement, statement_id)
    names = statement_service.withheld_names(statement)
    history = list(reversed(statement.versions))
    summaries = {v.id: statement_service.redact(v.change_summary, names) for v in history}
    return render_template(
        "statements/versions.html",
        statement=statement,
        history=history,
        summaries=summaries,
        authors=_authors(history),
    )


@bp.route("/<int:statement_id>/versions/<int:number>")
@allow(Role.VIEWER)
def version(statement_id: int, number: int) -> Any:
    statement = db.get_or_404(Statement, statement_id)
    found = next((v for v in statement.versions if v.number == number), None)
    if found is None:
        abort(404)
    names = statement_service.withheld_names(statement)
    return render_template(
        "statements/version.html",
        statement=statement,
        version=found,
        summary=statement_service.redact(found.change_summary, names),
        snapshot=_public_snapshot(found.snapshot, names),
        author=_authors([found]).get(found.created_by_id or 0, ""),
    )


# --- Signatories ---------------------------------------------------------------------------


def _signatory_form_words() -> dict[str, Any]:
    """What the signatory form's template needs besides the values (_signatory_fields.html)."""
    return {
        "fields": SIGNATORY_FIELDS,
        "labels": SIGNATORY_LABELS,
        "translation_groups": [
            (language, legend, hint, [n for n in TRANSLATION_INPUTS if n.endswith(f"_{language}")])
            for language, (legend, hint) in SIGNATORY_TRANSLATIONS.items()
        ],
        "translation_labels": TRANSLATION_LABELS,
    }


def _signatory_form(source: Any) -> dict[str, str]:
    names = (*SIGNATORY_FIELDS, "group_label", "kind", "publish_as")
    values = {name: str(source.get(name, "") or "") for name in names}
    # Only the per-language inputs that were sent: one left out keeps its stored form.
    values.update(
        {name: str(source.get(name) or "") for name in TRANSLATION_INPUTS if name in source}
    )
    return values


@bp.route("/<int:statement_id>/signatories", methods=["POST"])
@allow(Role.EDITOR)
def add_signatory(statement_id: int) -> Any:
    statement = db.get_or_404(Statement, statement_id)
    values = _signatory_form(request.form)
    try:
        signatory = statement_service.add_signatory(statement, values, actor=signed_in_user())
    except StatementError as error:
        return _refused(statement_id, None, "signatory", values, error)
    db.session.commit()
    flash(_("Signatory added: %(name)s.", name=_flash_label(signatory)), "success")
    return redirect(url_for("statements.show", statement_id=statement.id) + "#signatories")


def _flash_label(signatory: Signatory) -> str:
    if signatory.publish_as == PublishAs.WITHHELD.value:
        return _("name withheld")
    return signatory.name


@bp.route("/<int:statement_id>/signatories/paste", methods=["POST"])
@allow(Role.EDITOR)
def paste_signatories(statement_id: int) -> Any:
    statement = db.get_or_404(Statement, statement_id)
    values = {
        "lines": request.form.get("lines", ""),
        "kind": request.form.get("kind", SignatoryKind.ORGANISATION.value),
        "publish_as": request.form.get("publish_as", PublishAs.FULL.value),
        "group_label": request.form.get("group_label", ""),
    }
    try:
        rows = statement_service.parse_signatory_lines(
            values["lines"],
            kind=values["kind"],
            publish_as=values["publish_as"],
            group_label=values["group_label"],
        )
        added = statement_service.add_signatories(statement, rows, actor=signed_in_user())
    except StatementError as error:
        return _refused(statement_id, None, "paste", values, error)
    db.session.commit()
    flash(ngettext("%(num)d signatory added.", "%(num)d signatories added.", len(added)), "success")
    return redirect(url_for("statements.show", statement_id=statement.id) + "#signatories")


@bp.route("/<int:statement_id>/signatories/<int:signatory_id>/edit", methods=["GET", "POST"])
@allow(Role.EDITOR)
def edit_signatory(statement_id: int, signatory_id: int) -> Any:
    statement = db.get_or_404(Statement, statement_id)
    signatory = _get_signatory(statement, signatory_id)
    if request.method == "GET":
        values = _signatory_form({n: getattr(signatory, n) for n in _signatory_form({})})
        values.update(statement_service.translation_inputs(signatory.translations))
        return _render_signatory_form(statement, signatory, values, "")
    values = _signatory_form(request.form)
    try:
        changed = statement_service.update_signatory(signatory, values, actor=signed_in_user())
    except StatementError as error:
        db.session.rollback()
        statement = db.get_or_404(Statement, statement_id)
        signatory = _get_signatory(statement, signatory_id)
        return _render_signatory_form(
            statement, signatory, values, str(error), 422, field=error.field
        )
    db.session.commit()
    flash(_("Signatory saved.") if changed else _("No changes."), "success")
    return redirect(url_for("statements.show", statement_id=statement.id) + "#signatories")


def _render_signatory_form(
    statement: Statement,
    signatory: Signatory,
    values: dict[str, str],
    error: str,
    status: int = 200,
    *,
    field: str = "",
) -> Any:
    return (
        render_template(
            "statements/signatory_form.html",
            statement=statement,
            signatory=signatory,
            values=values,
            error=error,
            error_field=field,
            **_signatory_form_words(),
        ),
        status,
    )


@bp.route("/<int:statement_id>/signatories/<int:signatory_id>/move", methods=["POST"])
@allow(Role.EDITOR)
def move_signatory(statement_id: int, signatory_id: int) -> Any:
    statement = db.get_or_404(Statement, statement_id)
    signatory = _get_signatory(statement, signatory_id)
    offset = {"up": -1, "down": 1}.get(request.form.get("direction", ""))
    if offset is None:
        abort(400)
    statement_service.move_signatory(signatory, offset, actor=signed_in_user())
    db.session.commit()
    return redirect(url_for("statements.show", statement_id=statement.id) + "#signatories")


@bp.route("/<int:statement_id>/signatories/<int:signatory_id>/delete", methods=["POST"])
@allow(Role.EDITOR)
def remove_signatory(statement_id: int, signatory_id: int) -> Any:
    statement = db.get_or_404(Statement, statement_id)
    signatory = _get_signatory(statement, signatory_id)
    removed = _flash_label(signatory)
    statement_service.remove_signatory(signatory, actor=signed_in_user())
    db.session.commit()
    flash(_("Signatory removed: %(name)s.", name=removed), "success")
    return redirect(url_for("statements.show", statement_id=statement.id) + "#signatories")


# --- Attachments ---------------------------------------------------------------------------


@bp.route("/<int:statement_id>/attachments", methods=["POST"])
@allow(Role.EDITOR)
def add_attachment(statement_id: int) -> Any:
    statement = db.get_or_404(Statement, statement_id)
    upload = request.files.get("file")
    try:
        if upload is None or not upload.filename:
            raise StatementError(_("Choose a PDF or Word (.docx) file to attach."))
        attachment = statement_service.add_attachment(
            statement,
            upload.filename,
            upload.stream,
            language=request.form.get("language", ""),
            actor=signed_in_user(),
        )
    except StatementError as error:
        return _refused(statement_id, None, "attachment", {}, error)
    db.session.commit()
    flash(_("Attached %(name)s.", name=attachment.filename), "success")
    return redirect(url_for("statements.show", statement_id=statement.id) + "#attachments")


@bp.route("/<int:statement_id>/attachments/<int:attachment_id>")
@allow(Role.VIEWER)
def download_attachment(statement_id: int, attachment_id: int) -> Any:
    statement = db.get_or_404(Statement, statement_id)
    attachment = _get_attachment(statement, attachment_id)
    try:
        path = statement_service.attachment_file(attachment)
    except StatementError:
        abort(404)
    if not path.is_file():
        abort(404)
    return send_file(
        path,
        mimetype=attachment.content_type,
        as_attachment=True,
        download_name=attachment.filename,
    )


@bp.route("/<int:statement_id>/attachments/<int:attachment_id>/language", methods=["POST"])
@allow(Role.EDITOR)
def set_attachment_language(statement_id: int, attachment_id: int) -> Any:
    statement = db.get_or_404(Statement, statement_id)
    attachment = _get_attachment(statement, attachment_id)
    try:
        changed = set_file_language(
            attachment, request.form.get("language", ""), actor=signed_in_user()
        )
    except StatementError as error:
        return _refused(statement_id, None, "attachment", {}, error)
    db.session.commit()
    flash(_("Language saved.") if changed else _("No changes."), "success")
    return redirect(url_for("statements.show", statement_id=statement.id) + "#attachments")


@bp.route("/<int:statement_id>/attachments/<int:attachment_id>/delete", methods=["POST"])
@allow(Role.EDITOR)
def remove_attachment(statement_id: int, attachment_id: int) -> Any:
    statement = db.get_or_404(Statement, statement_id)
    attachment = _get_attachment(statement, attachment_id)
    name = attachment.filename
    try:
        path = statement_service.remove_attachment(attachment, actor=signed_in_user())
    except StatementError as error:
        return _refused(statement_id, None, "attachment", {}, error)
    db.session.commit()
    path.unlink(missing_ok=True)
    flash(_("Attachment %(name)s deleted.", name=name), "success")
    return redirect(url_for("statements.show", statement_id=statement.id) + "#attachments")
