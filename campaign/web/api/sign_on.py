"""Sign-on through the API: the editors' settings and moderation, and a public submit.

- `/statements/{id}/sign-on`: the public page's settings (read; update with If-Match) and
  its signatures (list by status, approve, reject): the sign-on services and their audit,
  for editors, as on the statement's sign-on page.
- `/sign-on/{token}` and `/sign-on/{token}/signatures`: public, no key. An organisation's
  own website shows the statement's consent words and posts a signer's form; the same
  service as the public page checks it (fields, honeypot, rate limits, duplicates) and
  e-mails the confirmation link. The answer is the same 202 whatever happened, so it never
  tells whether an address has signed. A browser page may call these from another site
  only when its origin is listed in CAMPAIGN_API_CORS_ORIGINS (docs/decisions/0067).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from flask import Response, current_app, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt
from sqlalchemy import select

from campaign.extensions import db
from campaign.i18n import accepted_languages, requested_language, use_reader_language
from campaign.models import Role, Signature, SignatureStatus, SignOn, SignOnOrder, Statement
from campaign.services.sign_on import moderation, signatures
from campaign.services.sign_on import pages as sign_on_service
from campaign.services.statements.statements import StatementError
from campaign.web.access import signed_in_user
from campaign.web.api.auth import operation
from campaign.web.api.blueprint import bp
from campaign.web.api.conventions import (
    PageQuery,
    etag_of,
    page,
    require_if_match,
    with_etag,
)
from campaign.web.api.problems import ApiProblem, invalid
from campaign.web.api.versions import claim

ACCEPTED = _l(
    "Thank you. We have sent an e-mail to the address given: the signature counts once its "
    "owner follows the link in it."
)
# Longest text field accepted by the schema; the service refuses past each field's own limit
# (signatures.FIELD_LIMITS) with its own message, after folding whitespace as the form does.
_MAX_TEXT = 2000


# The settings' columns, as the ETag covers them (with the token).
SETTING_COLUMNS = (
    "is_open",
    "deadline",
    "shows_names",
    "ordering",
    "reminder_days",
    "consent_text",
)


# --- the editors' side ------------------------------------------------------------------------


class SignOnSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    is_open: StrictBool
    deadline: datetime | None = Field(
        description="When signing closes (RFC 3339 with its offset), or null for no deadline."
    )
    shows_names: StrictBool = Field(description="false: the page shows only how many signed.")
    ordering: SignOnOrder
    reminder_days: StrictInt | None = Field(
        ge=-(2**31),
        le=2**31 - 1,
        description="Days before the deadline when invitees who have not signed are reminded "
        "(1 to 60; needs a deadline), or null.",
    )
    consent_text: str = Field(
        max_length=_MAX_TEXT,
        description="The consent words signers agree to; empty: the standard wording, which "
        "each signer reads in their language. At most 2,000 characters.",
    )


class SignOnOut(SignOnSettings):
    model_config = ConfigDict(extra="ignore")

    statement_id: int
    token: str = Field(description="The public address's secret: /sign/{token}.")
    public_url: str


class SignatureQuery(PageQuery):
    model_config = ConfigDict(extra="forbid")

    status: SignatureStatus | None = Field(None, description="Only signatures in this state.")


class SignatureOut(BaseModel):
    id: int
    status: SignatureStatus
    kind: Literal["organisation", "individual"]
    name: str
    acronym: str
    role: str
    organisation: str
    country: str
    exile_country: str
    publish_as: Literal["full", "organisation_only", "withheld"]
    email: str = Field(description="Private: for the editors, never published.")
    language: str
    wants_notice: bool
    created_at: datetime
    confirmed_at: datetime | None
    moderated_at: datetime | None
    signatory_id: int | None
    merged_into_id: int | None


class SignatureList(BaseModel):
    items: list[SignatureOut]
    next_cursor: str | None


def _statement_sign_on(statement_id: int) -> SignOn:
    statement = db.session.get(Statement, statement_id)
    found = sign_on_service.sign_on_of(statement) if statement is not None else None
    if found is None:
        raise ApiProblem(404, _("This statement has no sign-on page."))
    return found


def _settings_out(sign_on: SignOn) -> SignOnOut:
    consent = sign_on.consent_text
    return SignOnOut(
        statement_id=sign_on.statement_id,
        token=sign_on.token,
        public_url=signatures.sign_url(sign_on),
        is_open=sign_on.is_open,
        # In UTC, as read back from the database (the ETag must not depend on which).
        deadline=sign_on.deadline.astimezone(UTC) if sign_on.deadline else None,
        shows_names=sign_on.shows_names,
        ordering=SignOnOrder(sign_on.ordering),
        reminder_days=sign_on.reminder_days,
        consent_text="" if consent.strip() == sign_on_service.DEFAULT_CONSENT else consent,
    )


def _signature_out(signature: Signature) -> SignatureOut:
    return SignatureOut(
        id=signature.id,
        status=SignatureStatus(signature.status),
        kind=signature.kind,  # type: ignore[arg-type]
        name=signature.name,
        acronym=signature.acronym,
        role=signature.role,
        organisation=signature.organisation,
        country=signature.country,
        exile_country=signature.exile_country,
        publish_as=signature.publish_as,  # type: ignore[arg-type]
        email=signature.email,
        language=signature.language,
        wants_notice=signature.wants_notice,
        created_at=signature.created_at,
        confirmed_at=signature.confirmed_at,
        moderated_at=signature.moderated_at,
        signatory_id=signature.signatory_id,
        merged_into_id=signature.merged_into_id,
    )


@bp.get("/statements/<int:statement_id>/sign-on")
@operation(
    "sign_on:read", role=Role.EDITOR, responses={200: SignOnOut}, tags=("sign-on",), errors=(404,)
)
def read_sign_on(statement_id: int) -> Response:
    """Read the settings of a statement's public sign-on page."""
    return with_etag(_settings_out(_statement_sign_on(statement_id)))


@bp.put("/statements/<int:statement_id>/sign-on")
@operation(
    "sign_on:write",
    role=Role.EDITOR,
    json=SignOnSettings,
    responses={200: SignOnOut},
    tags=("sign-on",),
    errors=(404, 412, 428),
    writes=True,
)
def update_sign_on(statement_id: int, json: SignOnSettings) -> Response:
    """Change the sign-on page's settings (send If-Match with the ETag you read)."""
    sign_on = _statement_sign_on(statement_id)
    require_if_match(etag_of(_settings_out(sign_on)))
    # The check and the write as one step (the settings have no updated_at: the columns the
    # ETag covers must still hold what was read); another request sent at once waits, then 412.
    claim(sign_on, "token", *SETTING_COLUMNS)
    try:
        sign_on_service.update_settings(
            sign_on,
            is_open=json.is_open,
            deadline=json.deadline,
            shows_names=json.shows_names,
            ordering=json.ordering.value,
            reminder_days=json.reminder_days,
            consent_text=json.consent_text,
            actor=signed_in_user(),
        )
    except sign_on_service.SignOnError as error:
        raise invalid(error.field or "body", str(error)) from None
    return with_etag(_settings_out(sign_on))


@bp.get("/statements/<int:statement_id>/sign-on/signatures")
@operation(
    "sign_on:read",
    role=Role.EDITOR,
    query=SignatureQuery,
    responses={200: SignatureList},
    tags=("sign-on",),
    errors=(404,),
)
def list_signatures(statement_id: int, query: SignatureQuery) -> SignatureList:
    """List the signatures sent on the sign-on page, optionally by state."""
    sign_on = _statement_sign_on(statement_id)
    selected = select(Signature).where(Signature.sign_on_id == sign_on.id)
    if query.status is not None:
        selected = selected.where(Signature.status == query.status.value)
    rows, next_cursor = page(
        selected, Signature.id, purpose="signatures", limit=query.limit, cursor=query.cursor
    )
    return SignatureList(items=[_signature_out(s) for s in rows], next_cursor=next_cursor)


def _signature(statement_id: int, signature_id: int) -> Signature:
    sign_on = _statement_sign_on(statement_id)
    signature = db.session.get(Signature, signature_id)
    if signature is None or signature.sign_on_id != sign_on.id:
        raise ApiProblem(404, _("There is no such signature on this sign-on page."))
    return signature


def _moderated(statement_id: int, signature_id: int, decide: Callable[..., object]) -> SignatureOut:
    """Approve or reject one signature of this page; the service's refusal is a 409."""
    signature = _signature(statement_id, signature_id)
    try:
        decide(signature, actor=signed_in_user())
    except (moderation.ModerationError, StatementError) as error:
        raise ApiProblem(409, str(error)) from None
    return _signature_out(signature)


@bp.post("/statements/<int:statement_id>/sign-on/signatures/<int:signature_id>/approve")
@operation(
    "sign_on:write",
    role=Role.EDITOR,
    responses={200: SignatureOut},
    tags=("sign-on",),
    errors=(404, 409),
    writes=True,
)
def approve_signature(statement_id: int, signature_id: int) -> SignatureOut:
    """Approve a confirmed signature: it joins the statement's signatories (a new version)."""
    return _moderated(statement_id, signature_id, moderation.approve)


@bp.post("/statements/<int:statement_id>/sign-on/signatures/<int:signature_id>/reject")
@operation(
    "sign_on:write",
    role=Role.EDITOR,
    responses={200: SignatureOut},
    tags=("sign-on",),
    errors=(404, 409),
    writes=True,
)
def reject_signature(statement_id: int, signature_id: int) -> SignatureOut:
    """Reject a confirmed or approved signature (an approved one leaves the list)."""
    return _moderated(statement_id, signature_id, moderation.reject)


# --- the public side --------------------------------------------------------------------------


class PublicSignOn(BaseModel):
    title: str = Field(description="The statement's name in the reader's language.")
    language: str = Field(description="The statement language chosen for this reader.")
    languages: list[str]
    accepting: bool = Field(description="Whether signatures are taken now.")
    closed_reason: str = Field(description="Why not, when not, in the reader's language.")
    deadline: datetime | None
    consent_text: str = Field(description="The words a signer agrees to; show them by the box.")
    signatory_count: int
    field_limits: dict[str, int] = Field(description="The longest value of each text field.")


def _signer_text(name: str, default: str | None = "", description: str = "") -> Any:
    """A signer's text field: the schema says the service's limit (signatures.FIELD_LIMITS,
    counted after runs of whitespace are folded to one space); a longer value is refused
    with the form's message naming the field."""
    limit = signatures.FIELD_LIMITS[name]
    words = f"At most {limit} characters once runs of spaces are folded."
    extra: dict[str, Any] = {"maxLength": limit}
    described = f"{description} {words}".strip()
    if default is None:
        return Field(max_length=_MAX_TEXT, description=described, json_schema_extra=extra)
    return Field(default, max_length=_MAX_TEXT, description=described, json_schema_extra=extra)


class SignatureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["organisation", "individual"]
    name: str = _signer_text("name", None)
    acronym: str = _signer_text("acronym", description="Organisations only.")
    role: str = _signer_text("role", description="Individuals only.")
    organisation: str = _signer_text("organisation", description="Individuals only.")
    country: str = _signer_text("country")
    exile_country: str = _signer_text("exile_country", description="Organisations only.")
    publish_as: Literal["full", "organisation_only", "withheld"]
    email: str = _signer_text("email", None, "Where the confirmation link goes.")
    wants_notice: StrictBool = Field(False, description="Tell the signer when the letter goes out.")
    consent: StrictBool = Field(
        description="The signer agreed to the consent words (must be true)."
    )
    language: str | None = Field(
        None, max_length=35, description="The signer's language (else Accept-Language)."
    )
    website: str = Field(
        "",
        max_length=_MAX_TEXT,
        description="Leave empty: a field people never see on the form (a honeypot). A "
        "submission with it filled is answered 202 and not recorded.",
    )


class SubmitAccepted(BaseModel):
    detail: str


def _public_sign_on(token: str) -> SignOn:
    found = sign_on_service.by_token(token)
    if found is None:
        # The same answer for every unknown address: nothing to learn from it.
        raise ApiProblem(404, _("There is no sign-on page at this address."))
    return found


@bp.get("/sign-on/<token>")
@operation(None, responses={200: PublicSignOn}, tags=("sign-on",), errors=(404,))
def public_sign_on(token: str) -> PublicSignOn:
    """What an organisation's website shows beside its form (public, no key)."""
    sign_on = _public_sign_on(token)
    text = signatures.public_text(sign_on, requested_language(), accepted_languages())
    use_reader_language(text.language)
    answer = PublicSignOn(
        title=text.title,
        language=text.language,
        languages=list(text.languages),
        accepting=sign_on_service.accepting(sign_on),
        closed_reason=sign_on_service.closed_reason(sign_on),
        deadline=sign_on.deadline,
        consent_text=sign_on_service.consent_text(sign_on),
        signatory_count=len(sign_on_service.public_signatories(sign_on, text.language)),
        field_limits=dict(signatures.FIELD_LIMITS),
    )
    db.session.rollback()  # a read: nothing of this request is kept (as the public page)
    return answer


@bp.post("/sign-on/<token>/signatures")
@operation(
    None,
    json=SignatureIn,
    responses={202: SubmitAccepted},
    tags=("sign-on",),
    errors=(404, 409),
    writes=True,
)
def submit_signature(token: str, json: SignatureIn) -> Any:
    """Sign the statement (public, no key): the form of the public page, as JSON.

    Answered 202 whatever the address's history (new, again, already signed): the signer
    learns the rest from the e-mail. Limited per address, per network and per page (429
    with Retry-After)."""
    sign_on = _public_sign_on(token)
    language = signatures.signer_language(
        sign_on, json.language or requested_language(), accepted_languages()
    )
    # Set before the form is checked: its errors are written in this language.
    use_reader_language(language)
    form = {
        "kind": json.kind,
        "name": json.name,
        "acronym": json.acronym,
        "role": json.role,
        "organisation": json.organisation,
        "country": json.country,
        "exile_country": json.exile_country,
        "publish_as": json.publish_as,
        "email": json.email,
        "wants_notice": "yes" if json.wants_notice else "",
        "consent": "yes" if json.consent else "",
        signatures.HONEYPOT_FIELD: json.website,
    }
    try:
        signatures.submit_signature(
            sign_on, form, language=language, client_ip=request.remote_addr or ""
        )
    except signatures.SignOnClosed as error:
        raise ApiProblem(409, str(error)) from None
    except signatures.SignatureInputError as error:
        raise ApiProblem(
            422,
            _("The signature was not sent: correct the fields named."),
            errors=[{"field": name, "message": message} for name, message in error.errors.items()],
        ) from None
    except signatures.SigningTooOften as error:
        raise ApiProblem(
            429, str(error), headers={"Retry-After": str(max(error.retry_after, 1))}
        ) from None
    return SubmitAccepted(detail=str(ACCEPTED)), 202


# --- CORS for the public endpoints ------------------------------------------------------------

PUBLIC_ENDPOINTS = {"api.public_sign_on": "GET", "api.submit_signature": "POST"}


def allowed_origins() -> set[str]:
    """CAMPAIGN_API_CORS_ORIGINS: the web origins whose pages may call the public endpoints."""
    setting = str(current_app.config.get("API_CORS_ORIGINS") or "")
    return {part.strip().rstrip("/").lower() for part in setting.split(",") if part.strip()}


@bp.after_request
def _cors(response: Response) -> Response:
    method = PUBLIC_ENDPOINTS.get(request.endpoint or "")
    if method is None:
        return response
    response.vary.add("Origin")
    origin = request.headers.get("Origin", "")
    if not origin or origin.rstrip("/").lower() not in allowed_origins():
        return response  # no CORS header: the browser keeps the answer from that page
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = "Retry-After, Content-Language"
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Methods"] = method
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, Accept-Language"
        response.headers["Access-Control-Max-Age"] = "600"
    return response
