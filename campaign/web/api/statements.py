"""Statements through the API: list, read, create, a language's text added or replaced, the
version history, and one letter rendered for one contact.

The same services as the statement pages and `campaign render`
(campaign.services.statements): the same checks of a text, the same versions, the same
redaction of withheld signers' names in the history, and the letter made by
`compose_letter`, the function the CLI prints. Reading needs the viewer role, changing a
text the editor role, as on the pages; a rendered letter needs the editor role, as the
preview pages do.
"""

from datetime import datetime
from email.parser import BytesParser
from email.policy import default as default_policy
from typing import Any, Literal

from flask import Response, abort, request, url_for
from flask_babel import gettext as _
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from campaign.extensions import db
from campaign.letters.letter import LanguageUnavailable
from campaign.models import Role, Statement, StatementText, StatementVersion, User
from campaign.services.statements import statements as statement_service
from campaign.services.statements.complete_letters import compose_letter
from campaign.services.statements.statements import StatementError
from campaign.web.access import signed_in_user
from campaign.web.api.auth import operation
from campaign.web.api.blueprint import bp
from campaign.web.api.contacts import live_contact
from campaign.web.api.conventions import (
    PageQuery,
    etag_of,
    found,
    idempotent,
    page,
    require_if_match,
    with_etag,
)
from campaign.web.api.problems import ApiProblem, invalid
from campaign.web.api.versions import claim

StatementStatusCode = Literal["draft", "final"]
RFC822 = "message/rfc822"


# --- models ----------------------------------------------------------------------------------


class StatementListQuery(PageQuery):
    model_config = ConfigDict(extra="forbid")

    status: StatementStatusCode | None = Field(None, description="Only drafts or final ones.")


class StatementSummary(BaseModel):
    id: int
    title: str
    status: StatementStatusCode
    languages: list[str] = Field(description="Languages with a text; the first is the fallback.")
    is_pdf_attached: bool
    created_at: datetime
    updated_at: datetime


class StatementList(BaseModel):
    items: list[StatementSummary]
    next_cursor: str | None


class TextOut(BaseModel):
    language: str = Field(description="A BCP 47 tag: en, fr, pt-BR.")
    subject: str = Field(description="A template, as saved.")
    body: str = Field(description="Markdown with template tags, as saved.")


class FileOut(BaseModel):
    id: int = Field(description="What a campaign's `attached_file_ids` takes.")
    filename: str
    content_type: str
    size_bytes: int
    language: str = Field(description="Sent with letters in this language; empty: with all.")


class StatementOut(StatementSummary):
    texts: list[TextOut]
    files: list[FileOut] = Field(description="Files letters can carry (chosen per campaign).")
    version: int | None = Field(description="The latest version's number (letters use it).")


class StatementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(max_length=2000)
    language: str = Field("en", max_length=35, description="The first text's language.")
    subject: str = Field(max_length=4000)
    body: str = Field(max_length=400_000)


class TextIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(max_length=4000)
    body: str = Field(max_length=400_000)


class VersionOut(BaseModel):
    number: int
    created_at: datetime
    created_by: str | None = Field(description="The author's address, when known.")
    change_summary: str = Field(description="Withheld signers' names are replaced.")


class VersionQuery(PageQuery):
    model_config = ConfigDict(extra="forbid")


class VersionList(BaseModel):
    items: list[VersionOut]
    next_cursor: str | None


class LetterQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: str | None = Field(
        None,
        max_length=35,
        description="Write the letter in this language; default: the first of the "
        "contact's languages that the statement has.",
    )


class LetterProblemOut(BaseModel):
    severity: Literal["error", "warning"]
    code: str
    message: str


class Header(BaseModel):
    name: str
    value: str = Field(description="Decoded (no RFC 2047 encoded words).")


class LetterOut(BaseModel):
    statement_id: int
    statement_version: int = Field(description="0: the statement has no version yet.")
    contact_id: int
    language: str
    to_name: str
    to_address: str
    cc: list[str]
    subject: str
    salutation: str
    closing: str
    body_text: str = Field(description="The merged body as plain text.")
    body_html: str = Field(description="The merged body as an HTML fragment.")
    text: str = Field(description="The text/plain part as sent (letterhead, date, address).")
    html: str = Field(description="The text/html part as sent.")
    signatories: list[str] = Field(description="The signatory block, one line each.")
    headers: list[Header] = Field(description="The message's headers; empty when unsendable.")
    problems: list[LetterProblemOut]
    sendable: bool = Field(description="false: the letter has errors and would not be sent.")


# --- helpers ---------------------------------------------------------------------------------


def _statement(statement_id: int) -> Statement:
    return found(Statement, statement_id, _("There is no statement with this id."))


def _text_out(text: StatementText) -> TextOut:
    return TextOut(language=text.language, subject=text.subject, body=text.body)


def _summary_fields(statement: Statement) -> dict[str, Any]:
    return {
        "id": statement.id,
        "title": statement.title,
        "status": statement.status,
        "languages": statement.languages,
        "is_pdf_attached": statement.is_pdf_attached,
        "created_at": statement.created_at,
        "updated_at": statement.updated_at,
    }


def _representation(statement: Statement) -> StatementOut:
    latest = statement_service.latest_version(statement)
    files = statement_service.attachments_of(statement)
    return StatementOut(
        **_summary_fields(statement),
        texts=[_text_out(t) for t in statement.texts],
        version=latest.number if latest is not None else None,
        files=[
            FileOut(
                id=f.id,
                filename=f.filename,
                content_type=f.content_type,
                size_bytes=f.size_bytes,
                language=f.language,
            )
            for f in files
        ],
    )


def _refused(error: StatementError) -> ApiProblem:
    return ApiProblem(
        422,
        str(error),
        errors=[{"field": error.field or "body", "message": problem} for problem in error.problems],
    )


def _language(tag: str) -> str:
    try:
        return statement_service.clean_language(tag)
    except StatementError as error:
        raise _refused(error) from None


# --- statements ------------------------------------------------------------------------------


@bp.get("/statements")
@operation(
    "statements:read",
    query=StatementListQuery,
    responses={200: StatementList},
    tags=("statements",),
)
def list_statements(query: StatementListQuery) -> StatementList:
    """List statements, oldest first."""
    chosen = select(Statement)
    if query.status is not None:
        chosen = chosen.where(Statement.status == query.status)
    rows, next_cursor = page(
        chosen, Statement.id, purpose="statements", limit=query.limit, cursor=query.cursor
    )
    return StatementList(
        items=[StatementSummary(**_summary_fields(s)) for s in rows], next_cursor=next_cursor
    )


@bp.get("/statements/<int:statement_id>")
@operation("statements:read", responses={200: StatementOut}, tags=("statements",), errors=(404,))
def get_statement(statement_id: int) -> Response:
    """Read a statement with its texts."""
    return with_etag(_representation(_statement(statement_id)))


@bp.post("/statements")
@operation(
    "statements:write",
    role=Role.EDITOR,
    json=StatementIn,
    responses={201: StatementOut},
    tags=("statements",),
    errors=(409,),
    writes=True,
)
@idempotent
def create_statement(json: StatementIn) -> Response:
    """Create a draft statement with its first language.

    The subject and body are checked as the editor checks them (template tags, lengths);
    version 1 records the statement."""
    if not json.title.split():
        # The service's own message speaks of a Markdown file's front matter.
        message = _("The title is empty; a statement needs one.")
        raise invalid("title", message)
    try:
        statement = statement_service.create_statement(
            json.title,
            language=json.language,
            subject=json.subject,
            body=json.body,
            actor=signed_in_user(),
        )
    except StatementError as error:
        raise _refused(error) from None
    return with_etag(
        _representation(statement),
        201,
        location=url_for("api.get_statement", statement_id=statement.id),
    )


@bp.get("/statements/<int:statement_id>/texts/<language>")
@operation("statements:read", responses={200: TextOut}, tags=("statements",), errors=(404,))
def get_text(statement_id: int, language: str) -> Response:
    """Read one language's subject and body (its ETag is what a replacement needs)."""
    statement = _statement(statement_id)
    text = statement.text_for(language)
    if text is None:
        raise ApiProblem(404, _("This statement has no text in this language."))
    return with_etag(_text_out(text))


@bp.put("/statements/<int:statement_id>/texts/<language>")
@operation(
    "statements:write",
    role=Role.EDITOR,
    json=TextIn,
    responses={200: TextOut, 201: TextOut},
    tags=("statements",),
    errors=(404, 412, 428),
    writes=True,
)
def put_text(statement_id: int, language: str, json: TextIn) -> Response:
    """Add a language's text (201) or replace it (200; send If-Match with its ETag).

    Each change records a new version of the statement, as the editor does; the text is
    checked as the editor checks it."""
    statement = _statement(statement_id)
    language = _language(language)
    current = statement.text_for(language)
    if current is not None:
        require_if_match(etag_of(_text_out(current)))
        if (current.subject, current.body) == (json.subject, json.body):
            return with_etag(TextOut(language=language, subject=json.subject, body=json.body))
        # The check and the write as one step: another request sent at once with the same
        # ETag waits for this one, then gets 412 (no lost update).
        claim(current, "subject", "body")
    try:
        statement_service.set_text(
            statement,
            language=language,
            subject=json.subject,
            body=json.body,
            actor=signed_in_user(),
        )
    except StatementError as error:
        raise _refused(error) from None
    saved = TextOut(language=language, subject=json.subject, body=json.body)
    return with_etag(saved, 200 if current is not None else 201)


@bp.get("/statements/<int:statement_id>/versions")
@operation(
    "statements:read",
    query=VersionQuery,
    responses={200: VersionList},
    tags=("statements",),
    errors=(404,),
)
def list_versions(statement_id: int, query: VersionQuery) -> VersionList:
    """The statement's versions, oldest first (each one what letters were made from)."""
    statement = _statement(statement_id)
    rows, next_cursor = page(
        select(StatementVersion).where(StatementVersion.statement_id == statement.id),
        StatementVersion.id,
        purpose=f"statement-versions:{statement.id}",
        limit=query.limit,
        cursor=query.cursor,
    )
    names = statement_service.withheld_names(statement)
    authors = {v.created_by_id for v in rows if v.created_by_id is not None}
    emails = (
        dict(db.session.execute(select(User.id, User.email).where(User.id.in_(authors))).all())
        if authors
        else {}
    )
    return VersionList(
        items=[
            VersionOut(
                number=v.number,
                created_at=v.created_at,
                created_by=emails.get(v.created_by_id) if v.created_by_id else None,
                change_summary=statement_service.redact(v.change_summary, names),
            )
            for v in rows
        ],
        next_cursor=next_cursor,
    )


# --- one letter ------------------------------------------------------------------------------


def _headers(message: bytes) -> list[Header]:
    parsed = BytesParser(policy=default_policy).parsebytes(message, headersonly=True)
    return [Header(name=name, value=str(value)) for name, value in parsed.items()]


@bp.get("/statements/<int:statement_id>/letters/<int:contact_id>")
@operation(
    "statements:read",
    role=Role.EDITOR,
    query=LetterQuery,
    responses={200: LetterOut},
    tags=("statements",),
    errors=(404,),
)
def render_letter(statement_id: int, contact_id: int, query: LetterQuery) -> Any:
    """Render the letter this statement makes for one contact; nothing is sent or stored.

    JSON: the letter's parts and problems. With `Accept: message/rfc822`: the message
    exactly as `campaign render` prints it (headers and MIME body, CRLF line ends); a
    letter with errors is then a 422 problem naming them."""
    statement = _statement(statement_id)
    contact = live_contact(contact_id)
    try:
        composed = compose_letter(statement, contact, language=query.language or None)
    except LanguageUnavailable as error:
        raise invalid("language", str(error)) from None
    letter = composed.letter
    problems = [
        LetterProblemOut(
            severity="error" if p.severity == "error" else "warning",
            code=p.code,
            message=p.message,
        )
        for p in letter.problems
    ]
    wanted = request.accept_mimetypes.best_match(["application/json", RFC822])
    if wanted == RFC822:
        if composed.message is None:
            reason = composed.error
            if letter.has_errors:
                reason = _("the letter cannot be sent as it is; nothing printed")
            raise ApiProblem(
                422,
                _("Error: %(message)s", message=reason),
                errors=[
                    {"field": f"letter.{p.code}", "message": p.message}
                    for p in problems
                    if p.severity == "error"
                ]
                or [{"field": "letter", "message": str(reason)}],
            )
        # The bytes themselves, as `campaign render` prints them: outside the JSON
        # validation of the document (abort hands Flask this very answer).
        abort(Response(composed.message, mimetype=RFC822))
    return LetterOut(
        statement_id=letter.statement_id,
        statement_version=letter.statement_version,
        contact_id=contact.id,
        language=letter.language,
        to_name=letter.to_name,
        to_address=letter.to_address,
        cc=list(letter.cc_addresses),
        subject=letter.subject,
        salutation=letter.salutation,
        closing=letter.closing,
        body_text=letter.text_body,
        body_html=letter.html_body,
        text=composed.parts.text,
        html=composed.parts.html,
        signatories=list(letter.signatory_lines),
        headers=_headers(composed.message) if composed.message is not None else [],
        problems=problems,
        sendable=composed.message is not None,
    )
