"""Contact pages: the table (search, filters, sorting, pages), detail, edit, delete, export."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from babel import Locale, UnknownLocaleError
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from campaign.extensions import db
from campaign.i18n import LANGUAGES
from campaign.labels import LABELS, label
from campaign.letters.address import address_lines
from campaign.models import (
    AuditEvent,
    Contact,
    ContactKind,
    ContactList,
    GrammaticalGender,
    RiskLevel,
    Role,
    RoleType,
    Segment,
    Style,
)
from campaign.params import page_number, row_id
from campaign.scheduling.pacing import country_zone
from campaign.services.contacts import contacts as contact_service
from campaign.services.contacts import lists as list_service
from campaign.services.contacts.contacts import CONTACT_FIELDS, FIELD_LABELS, ContactInputError
from campaign.services.contacts.search import (
    SORTS,
    ContactFilters,
    filtered_query,
    numbered_page,
    search_page,
)
from campaign.services.replies.correspondence import correspondence
from campaign.services.statements.salutation_rules import current_rule_set
from campaign.web.access import allow
from campaign.web.downloads import file_download
from campaign.web.statements.country_names import country_options

bp = Blueprint("contacts", __name__, url_prefix="/contacts")

CHOICES: dict[str, list[str]] = {
    "kind": [k.value for k in ContactKind],
    "grammatical_gender": [g.value for g in GrammaticalGender],
    "role_type": [r.value for r in RoleType],
    "style": [s.value for s in Style],
    "risk_level": [r.value for r in RiskLevel],
}
# The label table (campaign.labels) of each field whose values are codes.
LABEL_KINDS: dict[str, str] = {
    "kind": "contact_kind",
    "grammatical_gender": "gender",
    "role_type": "role_type",
    "style": "style",
    "risk_level": "risk_level",
}
# Choices the form never makes for the person (decision 0047): the select starts on an
# empty "choose" option, and saving without a choice is refused, naming the field.
MUST_CHOOSE: dict[str, Any] = {
    "role_type": _l("choose one; “Other role” if none fits (letters greet each role differently)"),
    "risk_level": _l("choose one; it decides what pages and invitations may say about the person"),
}
# What a new contact's form starts with: the values that claim nothing about the person.
NEW_CONTACT = {
    "kind": ContactKind.PERSON.value,
    "grammatical_gender": GrammaticalGender.UNKNOWN.value,
    "style": Style.NONE.value,
}
HINTS = {
    "grammatical_gender": _l("Used for grammar in letters; never guessed."),
    "languages": _l("Language tags separated by spaces, e.g. ru fr."),
    "cc_emails": _l("Separated by spaces."),
    "tags": _l("Separated by spaces or commas."),
    "time_zone": _l(
        "Only if their clock is not their country's (a mission abroad, a country with "
        "several zones), e.g. Asia/Almaty. Blank: from the country."
    ),
}
# What the table can be sorted by, as the caption says it.
SORT_LABELS = {
    "name": _l("name"),
    "organisation": _l("organisation"),
    "country": _l("country"),
    "role": _l("role type"),
    "risk": _l("risk level"),
    "email": _l("email"),
}
DATE_FIELDS = {"term_ends_on", "last_verified_on"}
EXPORT_FORMATS = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def field_options(name: str) -> list[tuple[str, str]]:
    """(code, translated label) pairs for the select of an enumerated field."""
    return [(code, label(code, LABEL_KINDS[name])) for code in CHOICES[name]]


def language_names(tags: str) -> str:
    """ "Russian (ru), French (fr)" in the interface language; a tag Babel does not know
    stays as written."""
    locale = get_locale()
    names = []
    for tag in tags.split():
        try:
            name = Locale.parse(tag.replace("-", "_")).get_display_name(locale)
        except (ValueError, TypeError, UnknownLocaleError):
            name = None
        names.append(f"{name} ({tag})" if name else tag)
    return ", ".join(names)


def history_label(action: str) -> str:
    """An audit event's readable name; the code only for an event not in the table yet."""
    return label(action, "audit_event") if action in LABELS["audit_event"] else action


def _filter_choices() -> dict[str, Any]:
    return {
        "roles": field_options("role_type"),
        "risks": field_options("risk_level"),
        "lists": list_service.all_lists(),
        "segments": list(db.session.scalars(select(Segment).order_by(Segment.name))),
    }


@bp.route("/")
@allow(Role.VIEWER)
def index() -> Any:
    filters = ContactFilters.from_visitor(request.args)
    sort = request.args.get("sort", "name")
    descending = request.args.get("dir") == "desc"
    per_page = int(current_app.config["CONTACTS_PER_PAGE"])
    if request.args.get("after") or request.args.get("before"):
        # Addresses saved before pages had numbers (cursor pages) still open.
        page = search_page(
            filters,
            sort=sort,
            descending=descending,
            after=request.args.get("after", ""),
            before=request.args.get("before", ""),
            per_page=per_page,
        )
    else:
        page = numbered_page(
            filters,
            sort=sort,
            descending=descending,
            number=page_number(request.args.get("page")),
            per_page=per_page,
        )
    active_list = db.session.get(ContactList, filters.list_id) if filters.list_id else None
    active_segment = db.session.get(Segment, filters.segment_id) if filters.segment_id else None
    return render_template(
        "contacts/index.html",
        page=page,
        filters=filters,
        args=filters.as_args(),
        sorts=list(SORTS),
        sort_labels=SORT_LABELS,
        active_list=active_list,
        active_segment=active_segment,
        **_country_filter_choices(),
        **_filter_choices(),
    )


@bp.route("/<int:contact_id>")
@allow(Role.VIEWER)
def show(contact_id: int) -> Any:
    contact = db.get_or_404(Contact, contact_id)
    history = db.session.scalars(
        select(AuditEvent)
        .where(AuditEvent.target_type == "contact", AuditEvent.target_id == str(contact.id))
        .order_by(AuditEvent.id.desc())
        .limit(200)
    ).all()
    member_of = list_service.lists_of(contact)
    member_ids = {lst.id for lst in member_of}
    return render_template(
        "contacts/show.html",
        contact=contact,
        letters=correspondence(contact.id),
        fields=CONTACT_FIELDS,
        labels=FIELD_LABELS,
        label_kinds=LABEL_KINDS,
        date_fields=DATE_FIELDS,
        language_names=language_names,
        history_label=history_label,
        zone_from_country=country_zone(contact.country),
        **_address_context(contact),
        history=history,
        member_of=member_of,
        other_lists=[lst for lst in list_service.all_lists() if lst.id not in member_ids],
    )


COUNTRY_FIELDS = frozenset({"country", "location_country"})


def _country_filter_choices() -> dict[str, Any]:
    """The country filter's options: every country by its name in the interface language."""
    pairs = country_options()
    return {"country_choices": pairs, "country_codes": {code for code, _name in pairs}}


def _address_context(contact: Contact) -> dict[str, Any]:
    """The address block in each letter language, and the state of the Russian dative."""
    rules = current_rule_set()
    blocks = [(language, address_lines(contact, language, rules=rules)) for language in LANGUAGES]
    dative = contact_service.dative_of(contact)
    has_dative = bool(dative.name or dative.position_title)
    words = {"name": _("name"), "position title": _("position title")}
    return {
        "address_blocks": blocks,
        "dative": dative if has_dative else None,
        "dative_undeclined_words": ", ".join(str(words[f]) for f in dative.undeclined),
    }


def _dative_suggestions(contact: Contact | None) -> dict[str, str]:
    if contact is None:
        return {}
    dative = contact_service.dative_of(contact)
    return {"name_dative": dative.name, "position_title_dative": dative.position_title}


def _form_values(source: Any) -> dict[str, str]:
    return {name: str(source.get(name, "") or "") for name in CONTACT_FIELDS}


def _contact_values(contact: Contact) -> dict[str, str]:
    values: dict[str, str] = {}
    for name in CONTACT_FIELDS:
        value = getattr(contact, name)
        values[name] = value.isoformat() if hasattr(value, "isoformat") else (value or "")
    return values


def _render_form(contact: Contact | None, values: dict[str, str], errors: dict[str, str]) -> Any:
    status = 422 if errors else 200
    return (
        render_template(
            "contacts/form.html",
            contact=contact,
            values=values,
            errors=errors,
            fields=CONTACT_FIELDS,
            labels=FIELD_LABELS,
            options={name: field_options(name) for name in CHOICES},
            must_choose=MUST_CHOOSE,
            hints=HINTS,
            date_fields=DATE_FIELDS,
            zone_names=contact_service.zone_names(),
            boolean_fields=contact_service.BOOLEAN_FIELDS,
            country_fields=COUNTRY_FIELDS,
            suggestions=_dative_suggestions(contact),
        ),
        status,
    )


def _errors_by_field(problem: ContactInputError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in problem.errors:
        errors[error.field] = (errors.get(error.field, "") + " " + error.message).strip()
    return errors


def _unchosen(values: dict[str, str]) -> dict[str, str]:
    """The form's errors when a choice it needs is missing, with every other field's error
    (checked, not stored), in the form's order; {} when every choice was made."""
    missing = {name: str(message) for name, message in MUST_CHOOSE.items() if not values[name]}
    if not missing:
        return {}
    try:
        contact_service.clean_contact_data(values)
        errors: dict[str, str] = {}
    except ContactInputError as problem:
        errors = _errors_by_field(problem)
    errors.update(missing)
    return {name: errors[name] for name in CONTACT_FIELDS if name in errors}


@bp.route("/new", methods=["GET", "POST"])
@allow(Role.EDITOR)
def create() -> Any:
    if request.method == "GET":
        return _render_form(None, _form_values(NEW_CONTACT), {})
    # Only the contact fields are read: anything else posted (id, email_key...) is ignored.
    values = _form_values(request.form)
    if unchosen := _unchosen(values):
        return _render_form(None, values, unchosen)
    try:
        contact = contact_service.create_contact(values)
    except ContactInputError as problem:
        db.session.rollback()
        return _render_form(None, values, _errors_by_field(problem))
    db.session.commit()
    flash(_("Contact %(name)s created.", name=contact.display_name), "success")
    return redirect(url_for("contacts.show", contact_id=contact.id))


def _in_trash(contact: Contact) -> Any | None:
    """For a contact in the trash: a redirect saying to restore it first (else None)."""
    if contact.deleted_at is None:
        return None
    flash(
        _("%(name)s is in the trash: restore it before changing it.", name=contact.display_name),
        "error",
    )
    return redirect(url_for("contacts.show", contact_id=contact.id))


@bp.route("/<int:contact_id>/dative", methods=["POST"])
@allow(Role.EDITOR)
def confirm_dative(contact_id: int) -> Any:
    contact = db.get_or_404(Contact, contact_id)
    if (refused := _in_trash(contact)) is not None:
        return refused
    try:
        contact_service.confirm_dative(
            contact,
            request.form.get("name_dative", ""),
            request.form.get("position_title_dative", ""),
        )
    except ContactInputError as problem:
        db.session.rollback()
        flash(problem.errors[0].message, "error")
    else:
        db.session.commit()
        flash(_("The Russian dative forms are confirmed."), "success")
    return redirect(url_for("contacts.show", contact_id=contact_id))


@bp.route("/<int:contact_id>/edit", methods=["GET", "POST"])
@allow(Role.EDITOR)
def edit(contact_id: int) -> Any:
    contact = db.get_or_404(Contact, contact_id)
    if (refused := _in_trash(contact)) is not None:
        return refused
    if request.method == "GET":
        return _render_form(contact, _contact_values(contact), {})
    values = _form_values(request.form)
    if unchosen := _unchosen(values):
        return _render_form(contact, values, unchosen)
    try:
        changed = contact_service.update_contact(contact, values)
    except ContactInputError as problem:
        db.session.rollback()
        return _render_form(db.get_or_404(Contact, contact_id), values, _errors_by_field(problem))
    db.session.commit()
    flash(
        _("Saved: %(fields)s.", fields=", ".join(str(FIELD_LABELS[f]).lower() for f in changed))
        if changed
        else _("No changes."),
        "success",
    )
    return redirect(url_for("contacts.show", contact_id=contact.id))


@bp.route("/<int:contact_id>/delete", methods=["GET", "POST"])
@allow(Role.EDITOR)
def delete(contact_id: int) -> Any:
    contact = db.get_or_404(Contact, contact_id)
    if request.method == "GET":
        return render_template("contacts/delete.html", contact=contact)
    name = contact.display_name
    contact_service.delete_contact(contact)
    db.session.commit()
    flash(
        _("%(name)s is in the trash for 30 days; it can be restored from there.", name=name),
        "success",
    )
    return redirect(url_for("contacts.index"))


def _index_url(filters: ContactFilters) -> str:
    query = urlencode(filters.as_args())
    return url_for("contacts.index") + (f"?{query}" if query else "")


def _get_list(raw: str | None) -> ContactList:
    list_id = row_id(raw)
    contact_list = db.session.get(ContactList, list_id) if list_id else None
    if contact_list is None:
        abort(400)
    return contact_list


@bp.route("/<int:contact_id>/lists", methods=["POST"])
@allow(Role.EDITOR)
def add_to_list(contact_id: int) -> Any:
    contact = db.get_or_404(Contact, contact_id)
    if (refused := _in_trash(contact)) is not None:
        return refused
    contact_list = _get_list(request.form.get("list_id"))
    list_service.add_contacts(contact_list, [contact.id])
    db.session.commit()
    flash(_("Added to %(list)s.", list=contact_list.name), "success")
    return redirect(url_for("contacts.show", contact_id=contact.id))


@bp.route("/<int:contact_id>/lists/<int:list_id>/remove", methods=["POST"])
@allow(Role.EDITOR)
def remove_from_list(contact_id: int, list_id: int) -> Any:
    contact = db.get_or_404(Contact, contact_id)
    if (refused := _in_trash(contact)) is not None:
        return refused
    contact_list = _get_list(str(list_id))
    list_service.remove_contacts(contact_list, [contact.id])
    db.session.commit()
    flash(_("Removed from %(list)s.", list=contact_list.name), "success")
    return redirect(url_for("contacts.show", contact_id=contact.id))


@bp.route("/bulk", methods=["POST"])
@allow(Role.EDITOR)
def bulk() -> Any:
    """Add the ticked contacts (or every contact matching the filters) to a list, or remove."""
    contact_list = _get_list(request.form.get("list_id"))
    filters = ContactFilters.from_args(request.form)
    action = request.form.get("action", "")
    ids = [i for i in map(row_id, request.form.getlist("contact_id")) if i is not None]
    if action == "add_selected":
        changed = list_service.add_contacts(contact_list, ids)
    elif action == "remove_selected":
        changed = list_service.remove_contacts(contact_list, ids)
    elif action == "add_all":
        changed = list_service.add_matching(contact_list, filtered_query(filters))
    elif action == "remove_all":
        changed = list_service.remove_matching(contact_list, filtered_query(filters))
    else:
        abort(400)
    db.session.commit()
    if action.startswith("add"):
        message = ngettext(
            "%(num)d contact added to %(list)s.",
            "%(num)d contacts added to %(list)s.",
            changed,
            list=contact_list.name,
        )
    else:
        message = ngettext(
            "%(num)d contact removed from %(list)s.",
            "%(num)d contacts removed from %(list)s.",
            changed,
            list=contact_list.name,
        )
    flash(message, "success")
    return redirect(_index_url(filters))


@bp.route("/export", methods=["POST"])
@allow(Role.SENDER)
def export() -> Any:
    """Download the contacts matching the current filters (senders and admins only)."""
    from campaign.services.contacts.exporting import export_contacts

    fmt = request.form.get("format", "csv")
    if fmt not in EXPORT_FORMATS:
        abort(400)
    filters = ContactFilters.from_args(request.form)
    query = filtered_query(filters).order_by(Contact.family_name, Contact.given_name, Contact.id)
    description = "contacts table" + (
        " filtered by " + ", ".join(f"{k}={v}" for k, v in filters.as_args().items())
        if not filters.is_empty
        else ""
    )
    # A temporary file keeps a 100,000-row export out of memory.
    destination = tempfile.TemporaryFile()  # noqa: SIM115 (closed by file_download)
    try:
        export_contacts(query, fmt, destination, description=description)
        db.session.commit()
    except Exception:
        destination.close()
        raise
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    return file_download(
        destination, mimetype=EXPORT_FORMATS[fmt], filename=f"contacts-{stamp}.{fmt}"
    )
