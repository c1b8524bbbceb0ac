"""Contact tools: the trash (restore, delete now), merging two contacts, bulk edits as a job."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user

from campaign.extensions import db
from campaign.models import Contact, ContactBulkEdit, Role
from campaign.params import page_number, row_id
from campaign.services.contacts import bulk_edit as bulk_service
from campaign.services.contacts import lists as list_service
from campaign.services.contacts import merge as merge_service
from campaign.services.contacts import trash as trash_service
from campaign.services.contacts.contacts import FIELD_LABELS, ContactInputError
from campaign.services.contacts.search import ContactFilters, filtered_query, search_page
from campaign.web.access import allow
from campaign.web.contacts.contacts import LABEL_KINDS, field_options

bp = Blueprint("contact_tools", __name__, url_prefix="/contacts")

# --- trash -----------------------------------------------------------------------------------


@bp.route("/trash")
@allow(Role.EDITOR)
def trash() -> Any:
    found = trash_service.trashed_contacts(page_number(request.args.get("page")))
    holders = trash_service.address_holders([e.contact for e in found.items])
    return render_template(
        "contacts/trash.html",
        found=found,
        entries=found.items,
        holders=holders,
        days=trash_service.TRASH_DAYS,
    )


@bp.route("/<int:contact_id>/restore", methods=["POST"])
@allow(Role.EDITOR)
def restore(contact_id: int) -> Any:
    contact = db.get_or_404(Contact, contact_id)
    try:
        trash_service.restore_contact(contact)
    except trash_service.TrashError as refused:
        db.session.rollback()
        flash(refused.message, "error")
        return redirect(url_for("contact_tools.trash"))
    db.session.commit()
    flash(_("%(name)s is restored.", name=contact.display_name), "success")
    return redirect(url_for("contacts.show", contact_id=contact.id))


@bp.route("/<int:contact_id>/purge", methods=["POST"])
@allow(Role.ADMIN)
def purge(contact_id: int) -> Any:
    contact = db.get_or_404(Contact, contact_id)
    name = contact.display_name
    try:
        trash_service.purge_contact(contact)
    except trash_service.TrashError as refused:
        db.session.rollback()
        flash(refused.message, "error")
        return redirect(url_for("contact_tools.trash"))
    db.session.commit()
    flash(_("%(name)s is deleted for good.", name=name), "success")
    return redirect(url_for("contact_tools.trash"))


# --- merge -----------------------------------------------------------------------------------


@bp.route("/<int:contact_id>/merge")
@allow(Role.EDITOR)
def merge_pick(contact_id: int) -> Any:
    contact = _live_or_404(contact_id)
    q = request.args.get("q", "").strip()
    found = []
    if q:
        page = search_page(ContactFilters.from_args({"q": q}), per_page=20)
        found = [c for c in page.contacts if c.id != contact.id]
    return render_template("contacts/merge_pick.html", contact=contact, q=q, found=found)


@bp.route("/<int:contact_id>/merge/<int:other_id>", methods=["GET", "POST"])
@allow(Role.EDITOR)
def merge(contact_id: int, other_id: int) -> Any:
    survivor = _live_or_404(contact_id)
    other = db.get_or_404(Contact, other_id)
    try:
        check = merge_service.check_merge(survivor, other)
    except merge_service.MergeError as refused:
        flash(refused.message, "error")
        return redirect(url_for("contacts.show", contact_id=survivor.id))
    if request.method == "POST":
        choices = {f: request.form.get(f, "survivor") for f in merge_service.CHOSEN_FIELDS}
        name = other.display_name
        try:
            merge_service.merge_contacts(survivor, other, choices)
        except (merge_service.MergeError, ContactInputError) as refused:
            db.session.rollback()
            flash(str(getattr(refused, "message", refused)), "error")
            return redirect(
                url_for("contact_tools.merge", contact_id=contact_id, other_id=other_id)
            )
        db.session.commit()
        flash(
            _(
                "%(other)s is merged into %(name)s and moved to the trash.",
                other=name,
                name=survivor.display_name,
            ),
            "success",
        )
        return redirect(url_for("contacts.show", contact_id=survivor.id))
    differing = merge_service.differing_fields(survivor, other)
    return render_template(
        "contacts/merge.html",
        survivor=survivor,
        other=other,
        fields=merge_service.CHOSEN_FIELDS,
        differing=set(differing),
        choices=merge_service.default_choices(survivor, other),
        labels=FIELD_LABELS,
        label_kinds=LABEL_KINDS,
        suppressed=check.suppressed,
        value_of=merge_service.field_value,
    )


def _live_or_404(contact_id: int) -> Contact:
    contact = db.get_or_404(Contact, contact_id)
    if contact.deleted_at is not None:
        abort(404)
    return contact


# --- bulk edit -------------------------------------------------------------------------------


def _selection() -> tuple[Any, str, list[int], ContactFilters]:
    """(query, description, ticked ids, filters) of what the contacts page posted."""
    filters = ContactFilters.from_args(request.form)
    ids = [i for i in map(row_id, request.form.getlist("contact_id")) if i is not None]
    if request.form.get("scope") == "all":
        words = bulk_service.describe_filters(filters)
        label = (
            _("every contact matching: %(filters)s", filters=words) if words else _("every contact")
        )
        return filtered_query(filters), label, [], filters
    label = ngettext("%(num)d ticked contact", "%(num)d ticked contacts", len(ids))
    return bulk_service.ticked_query(ids), label, ids, filters


def _bulk_context(changes_form: dict[str, str] | None = None) -> dict[str, Any]:
    query, label, ids, filters = _selection()
    return {
        "count": bulk_service.count_selection(query),
        "selection_label": label,
        "ticked": ids,
        "scope": request.form.get("scope", "ticked"),
        "args": filters.as_args(),
        "roles": field_options("role_type"),
        "risks": field_options("risk_level"),
        "lists": list_service.all_lists(),
        "values": changes_form or {},
    }


@bp.route("/bulk-edit", methods=["POST"])
@allow(Role.EDITOR)
def bulk_edit() -> Any:
    """The changes to make over the ticked contacts, or every one matching the filters."""
    return render_template("contacts/bulk_edit.html", errors="", **_bulk_context())


@bp.route("/bulk-edit/review", methods=["POST"])
@allow(Role.EDITOR)
def bulk_edit_review() -> Any:
    values = {k: request.form.get(k, "") for k in bulk_service.KEYS}
    context = _bulk_context(values)
    try:
        changes = bulk_service.parse_changes(request.form)
    except bulk_service.BulkEditError as problem:
        return render_template("contacts/bulk_edit.html", errors=problem.message, **context), 422
    return render_template(
        "contacts/bulk_edit_confirm.html",
        descriptions=bulk_service.describe_changes(changes),
        token=bulk_service.new_confirm_token(),
        **context,
    )


@bp.route("/bulk-edit/confirm", methods=["POST"])
@allow(Role.EDITOR)
def bulk_edit_confirm() -> Any:
    token = request.form.get("token", "")
    # The form sent twice (a double click, a reload): the first one's edit, not a second.
    made = bulk_service.take_confirm_token(token)
    if isinstance(made, int):
        return redirect(url_for("contact_tools.bulk_edit_show", edit_id=made))
    if made is not None:
        flash(_("This change is being confirmed already; wait for its page."), "error")
        return redirect(url_for("contacts.index"))
    try:
        changes = bulk_service.parse_changes(request.form)
        query, label, _ids, _filters = _selection()
        # The ids are resolved now: the job changes the contacts counted at this moment.
        ids = bulk_service.resolve_ids(query)
        shown = request.form.get("count", "")
        if shown.isdecimal() and int(shown) != len(ids):
            # The contacts changed since the count was shown: show the new count, ask again.
            values = {k: request.form.get(k, "") for k in bulk_service.KEYS}
            bulk_service.settle_confirm_token(token, None)
            return render_template(
                "contacts/bulk_edit_confirm.html",
                descriptions=bulk_service.describe_changes(changes),
                changed_since=int(shown),
                token=bulk_service.new_confirm_token(),
                **_bulk_context(values),
            )
        edit = bulk_service.create_bulk_edit(changes, ids, label, current_user)
    except bulk_service.BulkEditError as problem:
        db.session.rollback()
        bulk_service.settle_confirm_token(token, None)
        flash(problem.message, "error")
        return redirect(url_for("contacts.index"))
    db.session.commit()
    bulk_service.settle_confirm_token(token, edit.id)
    return redirect(url_for("contact_tools.bulk_edit_show", edit_id=edit.id))


@bp.route("/bulk-edits/<int:edit_id>")
@allow(Role.EDITOR)
def bulk_edit_show(edit_id: int) -> Any:
    edit = db.get_or_404(ContactBulkEdit, edit_id)
    return render_template(
        "contacts/bulk_edit_show.html",
        edit=edit,
        progress=bulk_service.progress_of(edit),
        descriptions=bulk_service.describe_changes(edit.changes),
    )


@bp.route("/bulk-edits/<int:edit_id>/progress")
@allow(Role.EDITOR)
def bulk_edit_progress(edit_id: int) -> Any:
    return jsonify(bulk_service.progress_of(db.get_or_404(ContactBulkEdit, edit_id)))
