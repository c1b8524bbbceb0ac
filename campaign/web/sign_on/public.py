"""The public sign-on page: a statement's text, who signed, the form, the e-mailed link.

Every page here is in the visitor's language (ARCHITECTURE.md, Languages): an explicit
`?lang=` first (a value that is not a language tag, or one the statement lacks, is passed
over silently), then the language stored for the signer, then the browser's
Accept-Language, then the statement's first language. The statement's text and the
page's own words (form, errors, layout) follow the same choice.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template, request, url_for

from campaign.extensions import db
from campaign.i18n import (
    accepted_languages,
    autonym,
    requested_language,
    use_reader_language,
    use_visitor_language,
)
from campaign.letters.signatories import withheld_text
from campaign.mail import organisation_name
from campaign.models import PublishAs, SignatoryKind, SignOn
from campaign.services.sign_on import pages as sign_on_service
from campaign.services.sign_on import signatures
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


def _reader_language(sign_on: SignOn, stored: str = "") -> str:
    """The statement language this visitor reads; the page's own words follow it."""
    language = signatures.signer_language(
        sign_on, requested_language(), accepted_languages(), stored
    )
    use_reader_language(language)
    return language


def _sign_on(token: str) -> SignOn:
    found = sign_on_service.by_token(token)
    if found is None:
        use_visitor_language()
        abort(404)  # the same page for every unknown address: nothing to learn from it
    return found


def _switcher(
    languages: tuple[str, ...], current: str, endpoint: str, **values: Any
) -> list[tuple[str, str, str, bool]]:
    """The language links of a page: (tag, its name in itself, address, is the current one)."""
    if len(languages) < 2:
        return []
    return [
        (tag, autonym(tag), url_for(endpoint, lang=tag, **values), tag == current)
        for tag in languages
    ]


def _render_page(
    sign_on: SignOn,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    message: str = "",
    closed: str = "",
    status: int = 200,
) -> Any:
    text = signatures.public_text(sign_on, requested_language(), accepted_languages())
    use_reader_language(text.language)
    signed = sign_on_service.public_signatories(sign_on, text.language)
    page = render_template(
        "sign_on/public/page.html",
        sign_on=sign_on,
        text=text,
        languages=_switcher(
            text.languages, text.language, "sign_on_public.page", token=sign_on.token
        ),
        organiser=organisation_name(),
        consent=sign_on_service.consent_text(sign_on),
        deadline=(sign_on_service.deadline_words(sign_on.deadline) if sign_on.deadline else ""),
        signatories=signed if sign_on.shows_names else [],
        signatory_count=len(signed),
        withheld=withheld_text(text.language),
        closed=closed or sign_on_service.closed_reason(sign_on) or signatures.paused_reason(),
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
    # Set before the form is checked: its errors are written in this language.
    language = _reader_language(sign_on)
    try:
        signatures.submit_signature(
            sign_on,
            {**form, signatures.HONEYPOT_FIELD: request.form.get(signatures.HONEYPOT_FIELD, "")},
            language=language,
            client_ip=request.remote_addr or "",
        )
    except signatures.SignOnClosed as error:
        db.session.rollback()
        return _render_page(sign_on, closed=str(error), status=422)
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
    return render_template(
        "sign_on/public/sent.html", sign_on=sign_on, email=form["email"], lang=language
    )


def _link_page(token: str, status: int = 200, **context: Any) -> Any:
    return render_template("sign_on/public/confirm.html", token=token, **context), status


def _link_language(
    check: signatures.LinkCheck | None,
) -> tuple[str, list[tuple[str, str, str, bool]]]:
    """The confirmation pages' language: ?lang=, the signer's, the browser's, the statement's."""
    if check is None:
        return use_visitor_language(), []
    language = _reader_language(check.sign_on, check.signature.language)
    languages = signatures.statement_languages(check.sign_on)
    token = request.view_args["token"] if request.view_args else ""
    return language, _switcher(languages, language, "sign_on_public.confirm_page", token=token)


@bp.route("/sign/confirm/<token>", methods=["GET"])
@public
def confirm_page(token: str) -> Any:
    # A GET never confirms: mail scanners and link previewers open every link they see.
    check = signatures.check_link(token)
    language, languages = _link_language(check)
    if check is None:
        db.session.rollback()
        return _link_page(token, 404, problem=str(signatures.UNKNOWN_MESSAGE))
    response = _link_page(
        token,
        check=check,
        title=signatures.statement_title(check.sign_on, language),
        appears_as=check.appears_as(),
        # A change's link shows the line as it is too, next to the one it would make.
        appears_now=signatures.appears_as(check.signature, check.signature.language),
        languages=languages,
        lang=language,
    )
    db.session.rollback()
    return response


@bp.route("/sign/confirm/<token>", methods=["POST"])
@public
def confirm(token: str) -> Any:
    language, _languages = _link_language(signatures.check_link(token))
    try:
        check = signatures.confirm_signature(token)
    except signatures.ConfirmationError as error:
        db.session.rollback()
        found = signatures.check_link(token)
        status = 404 if found is None else 410
        sign_on = found.sign_on if found else None
        return _link_page(token, status, problem=str(error), sign_on=sign_on, lang=language)
    title = signatures.statement_title(check.sign_on, language)
    db.session.commit()
    return _link_page(token, check=check, title=title, done=True, lang=language)
