"""Statement files sent with letters: each file's language, a campaign's choice of files, the
files each letter carries, and the message size the SMTP server will accept (decision 0044).

A file with language "" goes with every letter; a file in one of the statement's languages
goes only with letters in that language (so an annex in French and its English translation
are two files, one per language). Only the first letter carries files: a follow-up answers
it in the same thread and does not send the annexes again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext
from flask_babel.speaklater import LazyString
from sqlalchemy import select

from campaign.extensions import db
from campaign.i18n import language_name
from campaign.letters.letter import match_language
from campaign.mail import Attachment
from campaign.models import Campaign, CampaignStatus, Statement, StatementAttachment
from campaign.services.statements import StatementError, attachment_file

# Above this, per message (after base64), the check warns: many providers refuse 10 MB and
# more, and a recipient's mailbox may be small.
WARN_BYTES = 10 * 1024 * 1024
# What a letter weighs besides its files, for the estimate: the text and HTML parts with
# their layout, and the generated PDF when the campaign attaches it.
LETTER_ALLOWANCE = 64 * 1024
PDF_ALLOWANCE = 300 * 1024
# A server's SIZE is asked once in this many seconds per account.
PROBE_SECONDS = 300.0
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


def set_file_language(attachment: StatementAttachment, language: str, *, actor: Any = None) -> bool:
    """Give a statement file its letter language; records a version when it changes."""
    from campaign.services.statements import record_version

    statement = db.session.get(Statement, attachment.statement_id)
    assert statement is not None
    cleaned = clean_file_language(statement, language)
    if cleaned == attachment.language:
        return False
    attachment.language = cleaned
    db.session.flush()
    record_version(
        statement,
        f"attachment language: {attachment.filename} -> {cleaned or 'every language'}",
        actor=actor,
    )
    return True


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


def choose_files(campaign: Campaign, ids: Iterable[str | int]) -> list[int]:
    """Set the campaign's attached files (ids of its statement's files); CampaignError."""
    from campaign.services.campaigns import CampaignError

    own = {
        a.id: a
        for a in db.session.scalars(
            select(StatementAttachment).where(
                StatementAttachment.statement_id == campaign.statement_id
            )
        )
    }
    chosen: list[int] = []
    for value in ids:
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = -1
        if number not in own:
            raise CampaignError(
                _l(
                    "Files: %(value)s is not a file of the campaign's statement (it may have "
                    "been deleted, or the statement changed); choose again",
                    value=str(value),
                ),
                "attached_file_ids",
            )
        if number not in chosen:
            chosen.append(number)
    campaign.attached_file_ids = chosen  # a new list: the JSON column notices assignment
    db.session.flush()
    return chosen


# --- sending --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LetterFile:
    language: str  # "" for every letter
    attachment: Attachment


class FileMissing(LookupError):
    """A chosen file cannot be read as it was stored; `message` (lazy) names it."""

    def __init__(self, message: LazyString) -> None:
        super().__init__(message)
        self.message = message


def _frozen_entries(campaign: Campaign, snapshot: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The chosen files as the frozen version recorded them (id, filename, language)."""
    chosen = list(campaign.attached_file_ids or [])
    if not chosen:
        return []
    frozen = {
        entry.get("id"): entry
        for entry in (snapshot or {}).get("attachments") or ()
        if isinstance(entry, Mapping) and entry.get("id") is not None
    }
    entries = []
    for file_id in chosen:
        entry = frozen.get(file_id)
        if entry is None:
            row = db.session.get(StatementAttachment, file_id)
            if row is None:
                continue
            entry = {"id": row.id, "filename": row.filename, "language": row.language}
        entries.append(dict(entry))
    return entries


def campaign_files(campaign: Campaign, snapshot: Mapping[str, Any] | None) -> list[LetterFile]:
    """Read the campaign's chosen files once (for a batch of letters); FileMissing."""
    files = []
    for entry in _frozen_entries(campaign, snapshot):
        row = db.session.get(StatementAttachment, entry["id"])
        name = str(entry.get("filename") or "")
        if row is None:
            raise FileMissing(
                _l("the attached file %(name)s was deleted; restore it or cancel", name=name)
            )
        try:
            data = attachment_file(row).read_bytes()
        except (OSError, StatementError) as error:
            raise FileMissing(
                _l(
                    "the attached file %(name)s cannot be read (%(reason)s); restore it, then "
                    "resume",
                    name=name,
                    reason=str(error),
                )
            ) from None
        expected = str(entry.get("sha256") or row.sha256)
        if hashlib.sha256(data).hexdigest() != expected:
            raise FileMissing(
                _l(
                    "the attached file %(name)s changed on disk since it was stored; restore "
                    "it, then resume",
                    name=name,
                )
            )
        files.append(
            LetterFile(str(entry.get("language") or ""), Attachment(name, row.content_type, data))
        )
    return files


def files_for(files: Sequence[LetterFile], language: str) -> list[Attachment]:
    """The files a letter in `language` carries: those for every language and its own."""
    return [
        f.attachment
        for f in files
        if not f.language or match_language(f.language, [language]) is not None
    ]


# --- size, for the pre-send check -----------------------------------------------------------


def _encoded(size: int) -> int:
    """Bytes after base64 (4 for every 3, lines of 76 with CRLF)."""
    raw = (size + 2) // 3 * 4
    return raw + raw // 76 * 2


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f}"


_probes: dict[str, tuple[float, int | None, str]] = {}


def server_size_limit(settings: Any) -> tuple[int | None, str]:
    """(the SIZE the account's server announces in EHLO, None if it names none; why it could
    not be asked, "" when it was), cached for PROBE_SECONDS per account."""
    from campaign.smtp import SmtpConnection

    key = f"{settings.key}|{settings.host}:{settings.port}"
    cached = _probes.get(key)
    now = time.monotonic()
    if cached is not None and now - cached[0] < PROBE_SECONDS:
        return cached[1], cached[2]
    with SmtpConnection(settings) as connection:
        limit, refused = connection.size_limit()
    reason = refused.summary if refused is not None else ""
    _probes[key] = (now, limit, reason)
    return limit, reason


def size_problems(campaign: Campaign) -> tuple[list[LazyString], list[LazyString]]:
    """(errors, warnings) about the size of the campaign's messages with their files."""
    from campaign.services.smtp_accounts import settings_for

    statement = db.session.get(Statement, campaign.statement_id)
    chosen = [
        row
        for file_id in campaign.attached_file_ids or []
        if (row := db.session.get(StatementAttachment, file_id)) is not None
    ]
    if statement is None or not chosen:
        return [], []
    errors: list[LazyString] = []
    warnings: list[LazyString] = []
    languages = list(statement.languages) or [""]
    base = LETTER_ALLOWANCE + (_encoded(PDF_ALLOWANCE) if campaign.is_pdf_attached else 0)
    # The heaviest letter: the language whose files weigh most.
    heaviest, heaviest_files = "", list[StatementAttachment]()
    for language in languages:
        files = [
            row
            for row in chosen
            if not row.language or match_language(row.language, [language]) is not None
        ]
        if sum(r.size_bytes for r in files) >= sum(r.size_bytes for r in heaviest_files):
            heaviest, heaviest_files = language, files
    total = base + sum(_encoded(r.size_bytes) for r in heaviest_files)
    listed = ", ".join(f"{r.filename} ({_mb(r.size_bytes)} MB)" for r in heaviest_files)
    where = language_name(heaviest) if heaviest else ""
    try:
        limit, unreachable = server_size_limit(settings_for(campaign.smtp_account))
    except Exception as error:  # an unreadable password, a bad account: not this check's say
        limit, unreachable = None, type(error).__name__
    if limit and total > limit:
        errors.append(
            _l(
                "Files: a letter in %(language)s weighs about %(total)s MB once encoded "
                "(%(files)s, plus the letter); the SMTP server accepts at most %(limit)s MB "
                "per message (EHLO SIZE %(bytes)d) and would refuse it; attach fewer or "
                "smaller files",
                language=where,
                total=_mb(total),
                files=listed,
                limit=_mb(limit),
                bytes=limit,
            )
        )
    elif total > WARN_BYTES:
        warnings.append(
            _l(
                "Files: a letter in %(language)s weighs about %(total)s MB once encoded "
                "(%(files)s, plus the letter); above %(warn)s MB many recipients' servers "
                "refuse or delay mail; consider a link instead",
                language=where,
                total=_mb(total),
                files=listed,
                warn=_mb(WARN_BYTES),
            )
        )
    if unreachable:
        warnings.append(
            _l(
                "Files: the SMTP server could not be asked for its size limit (%(reason)s); "
                "letters of about %(total)s MB may be refused",
                reason=unreachable,
                total=_mb(total),
            )
        )
    return errors, warnings


def add_size_problems(campaign: Campaign, check: Any) -> None:
    """Add the size errors and warnings to a CampaignCheck (services.campaigns)."""
    from campaign.scheduling.stored_text import said

    errors, warnings = size_problems(campaign)
    check.errors.extend(said(problem) for problem in errors)
    check.warnings.extend(said(problem) for problem in warnings)
