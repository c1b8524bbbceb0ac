"""Statements: creating them, their texts per language, signatories and version history."""

from __future__ import annotations

import hashlib
import io
import re
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext
from sqlalchemy import func, select

from campaign.extensions import db
from campaign.labels import label
from campaign.letters.letter import LetterSource, match_language
from campaign.letters.letter import letter_source as source_of_version
from campaign.letters.signatories import TRANSLATED_FIELDS
from campaign.models import (
    Campaign,
    CampaignStatus,
    PublishAs,
    Signatory,
    SignatoryKind,
    Statement,
    StatementAttachment,
    StatementStatus,
    StatementText,
    StatementVersion,
    User,
)
from campaign.services.accounts.audit import record_event

# What a statement's subject and body may use; everything else is refused when saved.
TEMPLATE_VARIABLES = frozenset(
    {
        "salutation",
        "closing",
        "contact",
        "address_block",
        "signatories",
        "today",
        "statement",
        "cases",  # the campaign's linked cases, letter-safe names (services/cases.py)
    }
)
MAX_TITLE = 300
MAX_SUBJECT = 998  # RFC 5322's line limit; the rendered subject is checked again
MAX_BODY = 200_000
_BCP47 = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*\r?\n?", re.S)
_FRONT_MATTER_KEYS = ("title", "subject", "lang")


class StatementError(ValueError):
    """A statement change that cannot be saved, with a message for its author.

    `field` names the form field at fault ("subject", "body"; "" when none) and `line` the
    template line, so a page can show the message beside what was typed; `problems` lists
    one message per bad line of a paste.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str = "",
        line: int | None = None,
        problems: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.line = line
        self.problems = problems or [message]


@dataclass(frozen=True)
class MarkdownFile:
    title: str
    subject: str
    language: str
    body: str


def parse_markdown_file(text: str, *, source: str | None = None) -> MarkdownFile:
    """Split optional front matter (title, subject, lang: one `key: value` a line) from the body.

    A deliberately small format rather than YAML: three keys, no types, nothing to execute.
    """
    text = text.lstrip("\ufeff")
    source = source or _("the file")
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
                    _(
                        "%(source)s, line %(line)d: front matter lines are `key: value` with "
                        "key one of %(keys)s; found %(found)s",
                        source=source,
                        line=number,
                        keys=", ".join(_FRONT_MATTER_KEYS),
                        found=repr(line.strip()),
                    )
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
        raise StatementError(
            _("%(value)s is not a language tag such as en, fr, ru or pt-BR", value=repr(raw)),
            field="language",
        )
    parts = raw.split("-")
    return "-".join([parts[0].lower(), *[p.upper() if len(p) == 2 else p for p in parts[1:]]])


def check_statement_template(source: str, *, field: str, language: str) -> None:
    """Refuse a subject or body that does not compile or reaches beyond the letter's data.

    `field` is "subject" or "body"; `language` the text's language tag, named in the message.
    """
    from campaign.letters.sandbox import TemplateRefused, check_template

    try:
        check_template(source, allowed_variables=set(TEMPLATE_VARIABLES))
    except TemplateRefused as refused:
        if field == "subject":
            message = _(
                "The %(language)s subject cannot be saved: %(reason)s",
                language=language,
                reason=str(refused),
            )
        else:
            message = _(
                "The %(language)s body cannot be saved: %(reason)s",
                language=language,
                reason=str(refused),
            )
        raise StatementError(
            message,
            field=field,
            line=refused.line,
        ) from None


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
            _(
                "The subject is %(length)d characters; the limit is %(limit)d.",
                length=len(subject),
                limit=MAX_SUBJECT,
            ),
            field="subject",
        )
    if re.search(r"[\r\n\x00]", subject):
        raise StatementError(
            _("The subject must be one line (it becomes a mail header)."), field="subject"
        )
    if len(body) > MAX_BODY:
        raise StatementError(
            _(
                "The body is %(length)d characters; the limit is %(limit)d.",
                length=len(body),
                limit=MAX_BODY,
            ),
            field="body",
        )
    if not body.strip():
        raise StatementError(_("The %(language)s body is empty.", language=language), field="body")
    check_statement_template(subject, field="subject", language=language)
    check_statement_template(body, field="body", language=language)
    text = statement.text_for(language)
    if text is None:
        statement.texts.append(StatementText(language=language, subject=subject, body=body))
    else:
        text.subject, text.body = subject, body


def _clean_title(title: str) -> str:
    cleaned = " ".join(title.split())
    if not cleaned:
        raise StatementError(
            _("A statement needs a title (front matter `title:` or a `# heading`)."),
            field="title",
        )
    if len(cleaned) > MAX_TITLE:
        raise StatementError(
            _(
                "The title is %(length)d characters; the limit is %(limit)d.",
                length=len(cleaned),
                limit=MAX_TITLE,
            ),
            field="title",
        )
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
        "attachments": [
            {
                "id": a.id,
                "filename": a.filename,
                "sha256": a.sha256,
                "size_bytes": a.size_bytes,
                "language": a.language,
            }
            for a in attachments_of(statement)
        ],
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


# What stands in for a withheld name in the version history (shown to staff).
WITHHELD = _l("[name withheld]")


def withheld_names(statement: Statement) -> list[str]:
    """Every name that is, or ever was, withheld on this statement (longest first).

    A signer withheld now is hidden in every version, under every name it ever had.
    """
    withheld_now = {s.id for s in statement.signatories if s.publish_as == PublishAs.WITHHELD.value}
    names = {s.name for s in statement.signatories if s.id in withheld_now}
    for version in statement.versions:
        for signer in version.snapshot.get("signatories", []):
            is_withheld = signer.get("publish_as") == PublishAs.WITHHELD.value
            if (is_withheld or signer.get("id") in withheld_now) and signer.get("name"):
                names.add(str(signer["name"]))
    return sorted((n for n in names if len(n) > 1), key=len, reverse=True)


def redact(text: str, names: list[str]) -> str:
    """`text` with each of `names` (withheld_names) replaced by WITHHELD."""
    # Whole words only: a withheld "Anna" must not turn "Annapurna Rights" into a clue.
    shown = str(WITHHELD)
    for name in names:
        text = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", lambda _match: shown, text)
    return text


def letter_source(statement: Statement | StatementVersion | LetterSource) -> LetterSource:
    """What letters are made from: a Statement's latest version (its snapshot as it is now
    when it has none yet), a StatementVersion's snapshot, or the LetterSource given."""
    if isinstance(statement, Statement):
        version = latest_version(statement)
        if version is not None:
            return LetterSource(statement.id, version.number, version.snapshot)
        return LetterSource(statement.id, 0, snapshot(statement))
    return source_of_version(statement)


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
# Languages a signer's name, role and organisation can be given in (the letter languages
# with catalogues); the letter prints the form of its own language, else the default.
SIGNATORY_LANGUAGES = ("en", "fr", "ru")
# The fields as a message names them ("The signatory's role is longer than 300 characters.").
_SIGNATORY_FIELD_WORDS = {
    "name": _l("name"),
    "acronym": _l("acronym"),
    "role": _l("role"),
    "organisation": _l("organisation"),
    "country": _l("country"),
    "exile_country": _l("country of exile"),
    "group_label": _l("group"),
}
# The per-language inputs (name_ru, role_fr…) as the form labels them; a message names
# the one at fault the same way.
TRANSLATION_LABELS = {
    "name_en": _l("Name in English"),
    "role_en": _l("Role in English"),
    "organisation_en": _l("Organisation in English"),
    "name_fr": _l("Name in French"),
    "role_fr": _l("Role in French"),
    "organisation_fr": _l("Organisation in French"),
    "name_ru": _l("Name in Russian"),
    "role_ru": _l("Role in Russian"),
    "organisation_ru": _l("Organisation in Russian"),
}
TRANSLATION_INPUTS = tuple(f"{n}_{lang}" for lang in SIGNATORY_LANGUAGES for n in TRANSLATED_FIELDS)


def signatory_as_dict(signatory: Signatory) -> dict[str, Any]:
    return {
        # Lets the history hide every past form of someone who is withheld now.
        "id": signatory.id,
        "kind": signatory.kind,
        "publish_as": signatory.publish_as,
        "position": signatory.position,
        **{name: getattr(signatory, name) for name in _SIGNATORY_FIELDS},
        "translations": dict(signatory.translations or {}),
    }


def lock_signatories(statement: Statement) -> None:
    """Hold the statement's row until commit and read its signatories afresh.

    Two editors approving two signers at once would otherwise each snapshot the list they
    loaded, and the newest version (the one a launch freezes) could miss one of them. The
    lock is PostgreSQL's; SQLite has one writer at a time anyway.
    """
    db.session.execute(select(Statement.id).where(Statement.id == statement.id).with_for_update())
    db.session.expire(statement, ["signatories"])


def add_signatory(
    statement: Statement,
    data: Mapping[str, str],
    *,
    actor: User | None = None,
    organisations_first: bool = False,
) -> Signatory:
    """Add a co-signer at the end of the list (with `organisations_first`, an organisation
    goes after the last organisation, before the individuals); records a new version."""
    values = _clean_signatory(data)
    lock_signatories(statement)
    ordered = list(statement.signatories)
    signatory = Signatory(**values)
    at = len(ordered)
    if organisations_first and values.get("kind") == SignatoryKind.ORGANISATION.value:
        at = next(
            (i for i, s in enumerate(ordered) if s.kind != SignatoryKind.ORGANISATION.value),
            len(ordered),
        )
    ordered.insert(at, signatory)
    statement.signatories.append(signatory)
    _renumber(ordered)
    db.session.flush()
    db.session.expire(statement, ["signatories"])
    record_version(statement, f"signatory added: {_public_label(signatory)}", actor=actor)
    return signatory


def translation_inputs(translations: Mapping[str, Any] | None) -> dict[str, str]:
    """The stored per-language forms as the form's inputs (name_ru, role_fr…), all present."""
    stored = translations if isinstance(translations, Mapping) else {}
    inputs: dict[str, str] = {}
    for language in SIGNATORY_LANGUAGES:
        own = stored.get(language)
        own = own if isinstance(own, Mapping) else {}
        for name in TRANSLATED_FIELDS:
            inputs[f"{name}_{language}"] = str(own.get(name) or "")
    return inputs


def _clean_translations(
    data: Mapping[str, Any], current: Mapping[str, Any] | None = None
) -> dict[str, dict[str, str]]:
    """The signer's name, role and organisation per letter language (name_ru, role_fr…).

    An input the data holds replaces that form (empty removes it); one it does not hold
    keeps the `current` form, so a caller that knows nothing of the translations (the
    sign-on moderation, an older form) never wipes what editors gave.
    """
    translations: dict[str, dict[str, str]] = {}
    for language, own in (current or {}).items():
        if isinstance(own, Mapping):
            kept = {str(k): str(v) for k, v in own.items() if v}
            if kept:
                translations[str(language)] = kept
    for language in SIGNATORY_LANGUAGES:
        own = dict(translations.get(language, {}))
        for name in TRANSLATED_FIELDS:
            key = f"{name}_{language}"
            if key not in data:
                continue
            value = " ".join(str(data.get(key) or "").split())
            if len(value) > 300:
                raise StatementError(
                    _(
                        "%(field)s is longer than 300 characters.",
                        field=str(TRANSLATION_LABELS[key]),
                    ),
                    field=key,
                )
            if value:
                own[name] = value
            else:
                own.pop(name, None)
        if own:
            translations[language] = own
        else:
            translations.pop(language, None)
    return translations


def _clean_signatory(
    data: Mapping[str, str], current: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The signatory's columns from `data`; `current` is the stored translations an update
    keeps where the data holds no input for them."""
    values: dict[str, Any] = {}
    for name in _SIGNATORY_FIELDS:
        value = " ".join(str(data.get(name, "") or "").split())
        # The column's own width (a role of 250 characters would otherwise be a database
        # error on PostgreSQL rather than a message).
        limit = min(300, Signatory.__table__.c[name].type.length or 300)
        if len(value) > limit:
            raise StatementError(
                _(
                    "The signatory's %(field)s is longer than %(limit)d characters.",
                    field=str(_SIGNATORY_FIELD_WORDS[name]),
                    limit=limit,
                )
            )
        values[name] = value
    if not values["name"]:
        raise StatementError(_("A signatory needs a name."))
    kind = str(data.get("kind") or SignatoryKind.ORGANISATION.value).strip().lower()
    publish_as = str(data.get("publish_as") or PublishAs.FULL.value).strip().lower()
    if kind not in {k.value for k in SignatoryKind}:
        raise StatementError(_not_a_kind(kind))
    if publish_as not in {p.value for p in PublishAs}:
        raise StatementError(
            _(
                "%(value)s is not a way to publish a signatory "
                "(full, organisation_only or withheld).",
                value=repr(publish_as),
            )
        )
    values["kind"], values["publish_as"] = kind, publish_as
    values["translations"] = _clean_translations(data, current)
    return values


def _not_a_kind(kind: str) -> str:
    return _("%(value)s is not a signatory kind (organisation or individual).", value=repr(kind))


def _public_label(signatory: Signatory) -> str:
    # The version history is visible to every editor: never the name of a withheld signer.
    if signatory.publish_as == PublishAs.WITHHELD.value:
        return "name withheld"
    return signatory.name


# --- Editing from the statement pages ------------------------------------------------------


def set_title(statement: Statement, title: str, *, actor: User | None = None) -> bool:
    """Rename the statement; records a version when the title changes."""
    cleaned = _clean_title(title)
    if cleaned == statement.title:
        return False
    statement.title = cleaned
    db.session.flush()
    record_version(statement, "title changed", actor=actor)
    return True


def update_signatory(
    signatory: Signatory, data: Mapping[str, str], *, actor: User | None = None
) -> bool:
    """Replace a co-signer's details; records a version when anything changed.

    The per-language forms (name_ru, role_fr…) change only where `data` holds their inputs.
    """
    values = _clean_signatory(data, signatory.translations)
    lock_signatories(signatory.statement)
    if all(getattr(signatory, name) == value for name, value in values.items()):
        return False
    for name, value in values.items():
        setattr(signatory, name, value)
    db.session.flush()
    record_version(
        signatory.statement, f"signatory edited: {_public_label(signatory)}", actor=actor
    )
    return True


def move_signatory(signatory: Signatory, offset: int, *, actor: User | None = None) -> bool:
    """Move a co-signer up (-1) or down (+1) the list; records a version when it moved."""
    statement = signatory.statement
    lock_signatories(statement)
    ordered = list(statement.signatories)
    index = ordered.index(signatory)
    target = index + offset
    if offset not in (-1, 1) or not 0 <= target < len(ordered):
        return False
    ordered[index], ordered[target] = ordered[target], ordered[index]
    _renumber(ordered)
    db.session.flush()
    db.session.expire(statement, ["signatories"])
    direction = "up" if offset < 0 else "down"
    record_version(
        statement, f"signatory moved {direction}: {_public_label(signatory)}", actor=actor
    )
    return True


def remove_signatory(signatory: Signatory, *, actor: User | None = None) -> None:
    """Remove a co-signer; records a version and an audit event."""
    statement = signatory.statement
    lock_signatories(statement)
    label = _public_label(signatory)
    statement.signatories.remove(signatory)
    _renumber(statement.signatories)
    db.session.flush()
    record_version(statement, f"signatory removed: {label}", actor=actor)
    record_event(
        "statement.signatory.delete",
        actor=actor,
        target_type="statement",
        target_id=statement.id,
        detail={"signatory": label},
    )


def _renumber(signatories: list[Signatory]) -> None:
    for position, signatory in enumerate(signatories):
        signatory.position = position


def put_organisations_first(statement: Statement, *, actor: User | None = None) -> bool:
    """Reorder the list organisations then individuals (each kept in its order); records a
    version when anything moved. The letters print the list in this order."""
    lock_signatories(statement)
    ordered = list(statement.signatories)
    wanted = sorted(ordered, key=lambda s: 0 if s.kind == SignatoryKind.ORGANISATION.value else 1)
    if wanted == ordered:
        return False
    _renumber(wanted)
    db.session.flush()
    db.session.expire(statement, ["signatories"])
    record_version(statement, "signatories: organisations first", actor=actor)
    return True


# The words "based in exile in" are what the parser reads (_EXILE): translations keep them.
PASTE_FORMATS = {
    SignatoryKind.ORGANISATION.value: _l("Name (ACRONYM), Country, based in exile in Country"),
    SignatoryKind.INDIVIDUAL.value: _l("Name, role, organisation, country"),
}
_ACRONYM = re.compile(r"^(?P<name>.*?)\s*\((?P<acronym>[^()]{1,50})\)$")
_EXILE = re.compile(r"^(?:based\s+)?in\s+exile\s+in\s+", re.IGNORECASE)
MAX_PASTE_LINES = 500


def parse_signatory_lines(
    text: str, *, kind: str, publish_as: str = PublishAs.FULL.value, group_label: str = ""
) -> list[dict[str, str]]:
    """Read pasted co-signers, one a line, in the format of `PASTE_FORMATS[kind]`.

    Blank lines are skipped; a line ending in a colon ("Individuals:") becomes the group
    label of the lines after it. Raises StatementError listing every bad line by number.
    """
    if kind not in PASTE_FORMATS:
        raise StatementError(_not_a_kind(kind))
    rows: list[dict[str, str]] = []
    problems: list[str] = []
    lines = text.splitlines()
    if len(lines) > MAX_PASTE_LINES:
        raise StatementError(_("Paste at most %(limit)d lines at a time.", limit=MAX_PASTE_LINES))
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        if line.endswith(":") and "," not in line:
            group_label = line[:-1].strip()
            continue
        parts = [part.strip() for part in line.split(",")]
        data: dict[str, str] = {"kind": kind, "publish_as": publish_as, "group_label": group_label}
        if kind == SignatoryKind.ORGANISATION.value:
            if len(parts) > 3:
                problems.append(
                    _(
                        "Line %(line)d: %(parts)d parts separated by commas; an organisation "
                        "line has at most 3 (%(format)s): %(found)s",
                        line=number,
                        parts=len(parts),
                        format=str(PASTE_FORMATS[kind]),
                        found=repr(line),
                    )
                )
                continue
            name, country, exile = [*parts, "", ""][:3]
            match = _ACRONYM.match(name)
            if match:
                name, data["acronym"] = match.group("name"), match.group("acronym").strip()
            if exile and not _EXILE.match(exile):
                problems.append(
                    _(
                        "Line %(line)d: the third part must read 'based in exile in Country', "
                        "found %(found)s",
                        line=number,
                        found=repr(exile),
                    )
                )
                continue
            data.update(name=name, country=country, exile_country=_EXILE.sub("", exile))
        else:
            if len(parts) > 4:
                problems.append(
                    _(
                        "Line %(line)d: %(parts)d parts separated by commas; an individual "
                        "line has at most 4 (%(format)s): %(found)s",
                        line=number,
                        parts=len(parts),
                        format=str(PASTE_FORMATS[kind]),
                        found=repr(line),
                    )
                )
                continue
            name, role, organisation, country = [*parts, "", "", ""][:4]
            data.update(name=name, role=role, organisation=organisation, country=country)
        try:
            rows.append({**data, **_clean_signatory(data)})
        except StatementError as error:
            problems.append(_("Line %(line)d: %(problem)s", line=number, problem=str(error)))
    if problems:
        raise StatementError(" ".join(problems), problems=problems)
    if not rows:
        raise StatementError(_("Nothing to add: paste one signatory a line."))
    return rows


def add_signatories(
    statement: Statement, rows: list[dict[str, str]], *, actor: User | None = None
) -> list[Signatory]:
    """Add several co-signers at the end of the list in one version."""
    added: list[Signatory] = []
    for data in rows:
        signatory = Signatory(position=len(statement.signatories), **_clean_signatory(data))
        statement.signatories.append(signatory)
        added.append(signatory)
    db.session.flush()
    record_version(statement, f"{len(added)} signatories added", actor=actor)
    return added


# --- Attachments -----------------------------------------------------------------------------

ATTACHMENT_MAX_BYTES = 10 * 1024 * 1024
ATTACHMENT_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
_UNSAFE_FILENAME = re.compile(r"[^\w.\- ()]+", re.UNICODE)


def attachments_of(statement: Statement) -> list[StatementAttachment]:
    return list(
        db.session.scalars(
            select(StatementAttachment)
            .where(StatementAttachment.statement_id == statement.id)
            .order_by(StatementAttachment.id)
        )
    )


def attachment_folder() -> Path:
    return Path(current_app.instance_path) / "attachments"


def attachment_file(attachment: StatementAttachment) -> Path:
    """The stored file, refusing any stored path that leads outside the attachments folder."""
    folder = attachment_folder().resolve()
    path = (folder / attachment.stored_path).resolve()
    if not path.is_relative_to(folder):
        raise StatementError(_("The attachment's stored path is outside the attachments folder."))
    return path


def sniff_attachment(head: bytes, data: IO[bytes]) -> str:
    """Return 'pdf' or 'docx' from the file's content (never its name) or StatementError."""
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        data.seek(0)
        try:
            with zipfile.ZipFile(data) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError, ValueError):
            names = set()
        if "[Content_Types].xml" in names and "word/document.xml" in names:
            return "docx"
    raise StatementError(
        _(
            "Only PDF and Word (.docx) files can be attached; this file is neither "
            "(judged by its content, not its name)."
        )
    )


# Campaigns that can still send: a file they chose cannot be removed.
_STILL_SENDING = (
    CampaignStatus.DRAFT.value,
    CampaignStatus.SCHEDULED.value,
    CampaignStatus.SENDING.value,
    CampaignStatus.PAUSED.value,
)


def clean_file_language(statement: Statement, language: str) -> str:
    """The file's language: "" (every language) or one of the statement's; StatementError."""
    language = (language or "").strip()
    if not language:
        return ""
    found = match_language(language, list(statement.languages))
    if found is None:
        raise StatementError(
            _l(
                "Language: the statement has no text in %(language)s; choose “every language” "
                "or one of its languages (%(languages)s)",
                language=language,
                languages=", ".join(statement.languages),
            ),
            field="language",
        )
    return found


def campaigns_using(attachment: StatementAttachment) -> list[Campaign]:
    """Campaigns that can still send and chose this file."""
    return [
        campaign
        for campaign in db.session.scalars(
            select(Campaign)
            .where(
                Campaign.statement_id == attachment.statement_id,
                Campaign.status.in_(_STILL_SENDING),
            )
            .order_by(Campaign.id)
        )
        if attachment.id in (campaign.attached_file_ids or [])
    ]


def refuse_removal_if_chosen(attachment: StatementAttachment) -> None:
    """StatementError naming the campaigns that would send this file, if any."""
    users = campaigns_using(attachment)
    if users:
        raise StatementError(
            lazy_ngettext(
                "%(name)s cannot be deleted: campaign %(campaigns)s attaches it and has not "
                "finished; remove it from that campaign first",
                "%(name)s cannot be deleted: campaigns %(campaigns)s attach it and have not "
                "finished; remove it from those campaigns first",
                len(users),
                name=attachment.filename,
                campaigns=", ".join(f"#{c.id} “{c.name}”" for c in users[:5]),
            )
        )


def add_attachment(
    statement: Statement,
    filename: str,
    stream: IO[bytes],
    *,
    max_bytes: int = ATTACHMENT_MAX_BYTES,
    language: str = "",
    actor: User | None = None,
) -> StatementAttachment:
    """Store an uploaded PDF or DOCX under the instance folder; records a version.

    `language` is the letter language the file goes with ("" for every language).
    """
    language = clean_file_language(statement, language)
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise StatementError(
            _(
                "The file is larger than %(size)d MB; attach a smaller one.",
                size=max_bytes // (1024 * 1024),
            )
        )
    if not data:
        raise StatementError(_("The file is empty."))
    kind = sniff_attachment(data[:8], io.BytesIO(data))
    stem = _UNSAFE_FILENAME.sub("_", Path(filename or "attachment").stem).strip("._ ")[:200]
    shown = f"{stem or 'attachment'}.{kind}"
    stored = Path(str(statement.id)) / f"{uuid.uuid4().hex}.{kind}"
    target = attachment_folder() / stored
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    attachment = StatementAttachment(
        statement_id=statement.id,
        filename=shown,
        content_type=ATTACHMENT_TYPES[kind],
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        stored_path=stored.as_posix(),
        language=language,
    )
    db.session.add(attachment)
    db.session.flush()
    record_version(statement, f"attachment added: {shown}", actor=actor)
    return attachment


def remove_attachment(attachment: StatementAttachment, *, actor: User | None = None) -> Path:
    """Delete the attachment's row (version + audit event); return its file for the caller.

    The caller deletes the file after committing, so a rolled-back request keeps it. A file
    that a campaign still to finish attaches is refused (StatementError, decision 0044).
    """
    refuse_removal_if_chosen(attachment)
    statement = db.session.get(Statement, attachment.statement_id)
    path = attachment_file(attachment)
    name = attachment.filename
    db.session.delete(attachment)
    db.session.flush()
    if statement is not None:
        record_version(statement, f"attachment removed: {name}", actor=actor)
    record_event(
        "statement.attachment.delete",
        actor=actor,
        target_type="statement",
        target_id=attachment.statement_id,
        detail={"filename": name, "sha256": attachment.sha256},
    )
    return path


def delete_statement(statement: Statement, *, actor: User | None = None) -> list[Path]:
    """Delete a statement no campaign uses; return its attachment files for the caller.

    A campaign keeps the version it sent as evidence, so a statement any campaign refers to
    (running, finished or still a draft) cannot go: the error names those campaigns.
    """
    users = db.session.execute(
        select(Campaign.id, Campaign.name, Campaign.status)
        .where(Campaign.statement_id == statement.id)
        .order_by(Campaign.id)
    ).all()
    if users:
        named = ", ".join(
            _(
                "#%(id)d “%(name)s” (%(status)s)",
                id=cid,
                name=name,
                status=label(status, "campaign_status"),
            )
            for cid, name, status in users[:5]
        )
        if len(users) > 5:
            named = _("%(campaigns)s and %(more)d more", campaigns=named, more=len(users) - 5)
        raise StatementError(
            _(
                "The statement cannot be deleted: campaigns use it (%(campaigns)s). "
                "Cancel or delete those campaigns first; a sent campaign keeps its statement.",
                campaigns=named,
            )
        )
    paths = [attachment_file(a) for a in attachments_of(statement)]
    title, statement_id = statement.title, statement.id
    db.session.delete(statement)
    db.session.flush()
    record_event(
        "statement.delete",
        actor=actor,
        target_type="statement",
        target_id=statement_id,
        detail={"title": title},
    )
    return paths
