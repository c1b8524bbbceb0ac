"""Statements: creating them, their texts per language, signatories and version history."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from campaign.extensions import db
from campaign.models import (
    PublishAs,
    Signatory,
    SignatoryKind,
    Statement,
    StatementStatus,
    StatementText,
    StatementVersion,
    User,
)
from campaign.services.audit import record_event

# What a statement's subject and body may use; everything else is refused when saved.
TEMPLATE_VARIABLES = frozenset(
    {"salutation", "closing", "contact", "address_block", "signatories", "today", "statement"}
)
MAX_TITLE = 300
MAX_SUBJECT = 998  # RFC 5322's line limit; the rendered subject is checked again
MAX_BODY = 200_000
_BCP47 = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*\r?\n?", re.S)
_FRONT_MATTER_KEYS = ("title", "subject", "lang")


class StatementError(ValueError):
    """A statement change that cannot be saved, with a message for its author."""


@dataclass(frozen=True)
class MarkdownFile:
    title: str
    subject: str
    language: str
    body: str


def parse_markdown_file(text: str, *, source: str = "the file") -> MarkdownFile:
    """Split optional front matter (title, subject, lang: one `key: value` a line) from the body.

    A deliberately small format rather than YAML: three keys, no types, nothing to execute.
    """
    text = text.lstrip("\ufeff")
    meta: dict[str, str] = {}
    match = _FRONT_MATTER.match(text)
    if match:
        for number, line in enumerate(match.group(1).splitlines(), start=2):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            key, colon, value = line.partition(":")
            key = key.strip().lower()
            if not colon or key not in _FRONT_MATTER_KEYS:
                raise StatementError(
                    f"{source}, line {number}: front matter lines are `key: value` with key "
                    f"one of {', '.join(_FRONT_MATTER_KEYS)}; found {line.strip()!r}"
                )
            meta[key] = value.strip().strip("\"'")
        text = text[match.end() :]
    body = text.strip("\r\n")
    title = meta.get("title", "")
    if not title:
        heading = re.match(r"#\s+(.+)", body)
        title = heading.group(1).strip() if heading else ""
    return MarkdownFile(title, meta.get("subject", ""), meta.get("lang", ""), body)


def clean_language(tag: str) -> str:
    """Canonical BCP 47 form (language lower-case, region upper-case) or StatementError."""
    raw = tag.strip()
    if not _BCP47.match(raw):
        raise StatementError(f"{raw!r} is not a language tag such as en, fr, ru or pt-BR")
    parts = raw.split("-")
    return "-".join([parts[0].lower(), *[p.upper() if len(p) == 2 else p for p in parts[1:]]])


def check_statement_template(source: str, *, field: str) -> None:
    """Refuse a subject or body that does not compile or reaches beyond the letter's data."""
    from campaign.letters.sandbox import TemplateRefused, check_template

    try:
        check_template(source, allowed_variables=set(TEMPLATE_VARIABLES))
    except TemplateRefused as refused:
        raise StatementError(f"The {field} cannot be saved: {refused}") from None


def create_statement(
    title: str, *, language: str, subject: str, body: str, actor: User | None = None
) -> Statement:
    """Create a draft statement with its first language; version 1 records it."""
    title = _clean_title(title)
    statement = Statement(title=title, created_by_id=actor.id if actor else None)
    db.session.add(statement)
    _apply_text(statement, clean_language(language), subject, body)
    db.session.flush()
    record_version(statement, f"created with {clean_language(language)}", actor=actor)
    record_event(
        "statement.create",
        actor=actor,
        target_type="statement",
        target_id=statement.id,
        detail={"title": title},
    )
    return statement


def set_text(
    statement: Statement, *, language: str, subject: str, body: str, actor: User | None = None
) -> StatementVersion:
    """Add or replace one language's subject and body; records a new version."""
    language = clean_language(language)
    replaced = statement.text_for(language) is not None
    _apply_text(statement, language, subject, body)
    db.session.flush()
    change = f"{language} text {'replaced' if replaced else 'added'}"
    return record_version(statement, change, actor=actor)


def _apply_text(statement: Statement, language: str, subject: str, body: str) -> None:
    if len(subject) > MAX_SUBJECT:
        raise StatementError(
            f"The subject is {len(subject)} characters; the limit is {MAX_SUBJECT}."
        )
    if re.search(r"[\r\n\x00]", subject):
        raise StatementError("The subject must be one line (it becomes a mail header).")
    if len(body) > MAX_BODY:
        raise StatementError(f"The body is {len(body)} characters; the limit is {MAX_BODY}.")
    if not body.strip():
        raise StatementError(f"The {language} body is empty.")
    check_statement_template(subject, field=f"{language} subject")
    check_statement_template(body, field=f"{language} body")
    text = statement.text_for(language)
    if text is None:
        statement.texts.append(StatementText(language=language, subject=subject, body=body))
    else:
        text.subject, text.body = subject, body


def _clean_title(title: str) -> str:
    cleaned = " ".join(title.split())
    if not cleaned:
        raise StatementError("A statement needs a title (front matter `title:` or a `# heading`).")
    if len(cleaned) > MAX_TITLE:
        raise StatementError(f"The title is {len(cleaned)} characters; the limit is {MAX_TITLE}.")
    return cleaned


def set_status(statement: Statement, status: StatementStatus, *, actor: User | None = None) -> None:
    if statement.status == status.value:
        return
    statement.status = status.value
    db.session.flush()
    record_version(statement, f"marked {status.value}", actor=actor)


def snapshot(statement: Statement) -> dict[str, Any]:
    """Everything a letter is made from, as plain data (kept with each version)."""
    return {
        "title": statement.title,
        "status": statement.status,
        "is_pdf_attached": statement.is_pdf_attached,
        "texts": {t.language: {"subject": t.subject, "body": t.body} for t in statement.texts},
        "languages": statement.languages,
        "signatories": [signatory_as_dict(s) for s in statement.signatories],
    }


def record_version(
    statement: Statement, change_summary: str, *, actor: User | None = None
) -> StatementVersion:
    """Freeze the statement as it is now into a new numbered version."""
    last = db.session.scalar(
        select(func.max(StatementVersion.number)).where(
            StatementVersion.statement_id == statement.id
        )
    )
    version = StatementVersion(
        statement_id=statement.id,
        number=(last or 0) + 1,
        created_by_id=actor.id if actor else None,
        change_summary=change_summary[:500],
        snapshot=snapshot(statement),
    )
    db.session.add(version)
    db.session.flush()
    return version


def latest_version(statement: Statement) -> StatementVersion | None:
    return db.session.scalar(
        select(StatementVersion)
        .where(StatementVersion.statement_id == statement.id)
        .order_by(StatementVersion.number.desc())
        .limit(1)
    )


# --- Signatories ----------------------------------------------------------------------

_SIGNATORY_FIELDS = (
    "name",
    "acronym",
    "role",
    "organisation",
    "country",
    "exile_country",
    "group_label",
)


def signatory_as_dict(signatory: Signatory) -> dict[str, Any]:
    return {
        "kind": signatory.kind,
        "publish_as": signatory.publish_as,
        "position": signatory.position,
        **{name: getattr(signatory, name) for name in _SIGNATORY_FIELDS},
    }


def add_signatory(
    statement: Statement, data: Mapping[str, str], *, actor: User | None = None
) -> Signatory:
    """Add a co-signer at the end of the list; records a new version."""
    values = _clean_signatory(data)
    signatory = Signatory(position=len(statement.signatories), **values)
    statement.signatories.append(signatory)
    db.session.flush()
    record_version(statement, f"signatory added: {_public_label(signatory)}", actor=actor)
    return signatory


def _clean_signatory(data: Mapping[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name in _SIGNATORY_FIELDS:
        value = " ".join(str(data.get(name, "") or "").split())
        if len(value) > 300:
            raise StatementError(f"The signatory's {name} is longer than 300 characters.")
        values[name] = value
    if not values["name"]:
        raise StatementError("A signatory needs a name.")
    kind = str(data.get("kind", SignatoryKind.ORGANISATION.value)).strip().lower()
    publish_as = str(data.get("publish_as", PublishAs.FULL.value)).strip().lower()
    if kind not in {k.value for k in SignatoryKind}:
        raise StatementError(f"{kind!r} is not a signatory kind (organisation or individual).")
    if publish_as not in {p.value for p in PublishAs}:
        raise StatementError(
            f"{publish_as!r} is not a way to publish a signatory "
            "(full, organisation_only or withheld)."
        )
    values["kind"], values["publish_as"] = kind, publish_as
    return values


def _public_label(signatory: Signatory) -> str:
    # The version history is visible to every editor: never the name of a withheld signer.
    if signatory.publish_as == PublishAs.WITHHELD.value:
        return "name withheld"
    return signatory.name
