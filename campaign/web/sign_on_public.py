"""The public sign-on page: a statement's text, who signed, the form, the e-mailed link."""

from __future__ import annotations

from typing import Any

from babel import Locale, UnknownLocaleError
from flask import Blueprint, abort, render_template, request

from campaign.extensions import db
from campaign.letters.signatories import withheld_text
from campaign.models import PublishAs, SignatoryKind, SignOn
from campaign.services import sign_on as sign_on_service
from campaign.services import signatures
from campaign.web.access import public

bp = Blueprint("sign_on_public", __name__)

FORM_FIELDS = (
    "kind",
    "name",
    "acronym",
    "role",
    "organisation",
    "country",
    "exile_country",
    "publish_as",
    "email",
    "wants_notice",
    "consent",
)


def _sign_on(token: str) -> SignOn:
    found = sign_on_service.by_token(token)
    if found is None:
        abort(404)  # the same page for every unknown address: nothing to learn from it
    return found


def language_name(tag: str) -> str:
    """A language as its own readers write it ("français"), or the tag if unknown."""
    try:
        locale = Locale.parse(tag.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return tag
    return locale.get_display_name(locale) or tag


def _render_page(
    sign_on: SignOn,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    message: str = "",
    status: int = 200,
) -> Any:
    text = signatures.public_text(
        sign_on, request.values.get("lang", ""), list(request.accept_languages.values())
    )
    signed = sign_on_service.public_signatories(sign_on)
    page = render_template(
        "sign_on/public/page.html",
        sign_on=sign_on,
        text=text,
        language_name=language_name,
        signatories=signed if sign_on.shows_names else [],
        signatory_count=len(signed),
        withheld=withheld_text(text.language),
        closed=sign_on_service.closed_reason(sign_on),
        form=form or {"kind": SignatoryKind.ORGANISATION.value, "publish_as": PublishAs.FULL.value},
        errors=errors or {},
        message=message,
        field_limits=signatures.FIELD_LIMITS,
        honeypot=signatures.HONEYPOT_FIELD,
    )
    return page, status


@bp.route("/sign/<token>", methods=["GET"])
@public
def page(token: str) -> Any:
    sign_on = _sign_on(token)
    response = _render_page(sign_on)
    db.session.rollback()
    return response


@bp.route("/sign/<token>", methods=["POST"])
@public
def sign(token: str) -> Any:
    sign_on = _sign_on(token)
    form = {name: request.form.get(name, "") for name in FORM_FIELDS}
    language = signatures.signer_language(
        sign_on, request.values.get("lang", ""), list(request.accept_languages.values())
    )
    try:
        signatures.submit_signature(
            sign_on,
            {**form, signatures.HONEYPOT_FIELD: request.form.get(signatures.HONEYPOT_FIELD, "")},
            language=language,
            client_ip=request.remote_addr or "",
        )
    except signatures.SignOnClosed:
        db.session.rollback()
        return _render_page(sign_on, status=422)
    except signatures.SignatureInputError as error:
        db.session.rollback()
        return _render_page(sign_on, form=form, errors=error.errors, status=422)
    except signatures.SigningTooOften as error:
        db.session.rollback()
        page, status = _render_page(sign_on, form=form, message=str(error), status=429)
        return page, status, {"Retry-After": str(error.retry_after)}
    db.session.commit()
    # The same words whatever happened (new, again, already signed, a robot): the page must
    # not tell a stranger whether an address signed. The e-mail tells its owner.
    return render_template("sign_on/public/sent.html", sign_on=sign_on, email=form["email"])


def _link_page(token: str, status: int = 200, **context: Any) -> Any:
    return render_template("sign_on/public/confirm.html", token=token, **context), status


@bp.route("/sign/confirm/<token>", methods=["GET"])
@public
def confirm_page(token: str) -> Any:
    # A GET never confirms: mail scanners and link previewers open every link they see.
    check = signatures.check_link(token)
    db.session.rollback()
    if check is None:
        return _link_page(token, 404, problem=signatures.UNKNOWN_MESSAGE)
    return _link_page(
        token,
        check=check,
        title=_title(check.sign_on),
        appears_as=signatures.appears_as(check.signature, check.signature.language),
    )


@bp.route("/sign/confirm/<token>", methods=["POST"])
@public
def confirm(token: str) -> Any:
    try:
        check = signatures.confirm_signature(token)
    except signatures.ConfirmationError as error:
        db.session.rollback()
        found = signatures.check_link(token)
        status = 404 if found is None else 410
        sign_on = found.sign_on if found else None
        return _link_page(token, status, problem=str(error), sign_on=sign_on)
    title = _title(check.sign_on)
    db.session.commit()
    return _link_page(token, check=check, title=title, done=True)


def _title(sign_on: SignOn) -> str:
    return signatures.statement_title(sign_on)
