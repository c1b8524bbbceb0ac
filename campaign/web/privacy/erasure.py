"""Erasure on request: an administrator erases a person by address, after typing it again
(decision 0090)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from campaign.extensions import db
from campaign.models import Contact, Role
from campaign.services.privacy import erased_addresses, erasure
from campaign.web.access import allow, signed_in_user

bp = Blueprint("erasure", __name__, url_prefix="/privacy/erase")

MAX_ADDRESS = 320


def _render(
    *,
    email: str = "",
    about: erasure.StoredAbout | None = None,
    contact: Contact | None = None,
    error: str = "",
    error_field: str = "",
    status: int = 200,
) -> Any:
    return (
        render_template(
            "privacy/erase.html",
            email=email,
            about=about,
            contact=contact,
            refusal=erasure.refusal(about) if about is not None else "",
            still_naming=erasure.still_naming_notice(about) if about is not None else "",
            error=error,
            error_field=error_field,
            errors={error_field: error} if error and error_field else {},
        ),
        status,
    )


def _address(name: str) -> str:
    return request.form.get(name, "").strip()[:MAX_ADDRESS]


# The address is never in a URL (it would reach the server's access log): the form posts it.
@bp.route("/")
@allow(Role.ADMIN)
def index() -> Any:
    """The form taking an address (a signer who is not a contact, or nobody stored at all)."""
    return _render()


@bp.route("/", methods=["POST"])
@allow(Role.ADMIN)
def look_up() -> Any:
    """What is stored about the address typed in, and the confirmation step."""
    email = _address("email")
    try:
        about = erasure.what_is_stored(email)
    except erasure.ErasureError as problem:
        return _render(email=email, error=problem.message, error_field="email", status=422)
    except erased_addresses.ErasureKeyMissing as problem:
        return _render(email=email, error=str(problem), status=503)
    return _render(email=email, about=about)


@bp.route("/contacts/<int:contact_id>")
@allow(Role.ADMIN)
def for_contact(contact_id: int) -> Any:
    """The confirmation step for a contact's address, from the contact page."""
    contact = db.session.get(Contact, contact_id) or abort(404)
    try:
        about = erasure.what_is_stored(contact.email)
    except erased_addresses.ErasureKeyMissing as problem:
        return _render(email=contact.email, contact=contact, error=str(problem), status=503)
    return _render(email=contact.email, about=about, contact=contact)


@bp.route("/confirm", methods=["POST"])
@allow(Role.ADMIN)
def confirm() -> Any:
    """Erase, once the address typed again is the one shown."""
    email = _address("email")
    typed = _address("confirm_email")
    contact_id = request.form.get("contact_id", type=int)
    contact = db.session.get(Contact, contact_id) if contact_id else None
    try:
        about = erasure.what_is_stored(email)
    except erasure.ErasureError as problem:
        return _render(email=email, error=problem.message, error_field="email", status=422)
    except erased_addresses.ErasureKeyMissing as problem:
        return _render(email=email, contact=contact, error=str(problem), status=503)
    if not typed or typed.lower() != email.lower():
        return _render(
            email=email,
            about=about,
            contact=contact,
            error=_("Confirmation: type the address exactly as shown above to erase this person."),
            error_field="confirm_email",
            status=422,
        )
    try:
        result = erasure.erase_person(email, actor=signed_in_user())
    except erasure.ErasureError as problem:
        db.session.rollback()
        return _render(email=email, about=about, contact=contact, error=problem.message, status=409)
    except erased_addresses.ErasureKeyMissing as problem:
        db.session.rollback()
        return _render(email=email, contact=contact, error=str(problem), status=503)
    db.session.commit()
    erasure.scrub_storage()
    if result.already_erased:
        flash(
            _(
                "This address was erased before: nothing is stored about it and its keyed "
                "hash is on the suppression list. Nothing was changed."
            ),
            "info",
        )
    elif result.was_stored:
        flash(
            _(
                "The person was erased. Only a keyed hash of the address is kept on the "
                "suppression list, so nobody will write to them again."
            ),
            "success",
        )
    else:
        flash(
            _(
                "Nothing was stored about this address. Its keyed hash is now on the "
                "suppression list, so nobody will write to it."
            ),
            "success",
        )
    return redirect(url_for("contacts.index"))
